"""Benchmark of the trader's screen, as ``name: value`` lines.

For each replayed session of a data root's lake (``--home``, default ``data/demo``: run
``scripts/demo.sh`` first):

- ``bar_latency_ms_p50`` / ``_p99`` / ``_max``: from a 1-minute bar arriving (the last record of
  the minute) to the JSON of the 2-minute bar close it completes being ready to push, over the bar
  closes of the anchor window (09:32-12:30 New York, where answers are computed), in process;
- ``sessions_per_minute``: whole sessions replayed as fast as possible (04:00 to the close) per
  wall minute, in process;
- baseline in the same run, on the same sessions: ``batch_session_seconds``, the batch silver and
  gold computation of the whole session at once (``compute_level_state`` then ``signals.answer``
  on every setup), and ``replay_vs_batch``: the bar-by-bar replay's seconds over it (the price of
  recomputing on the session so far at every bar close);
- ``server_*``: the same through a real ``spymaster serve`` (server-sent events read over HTTP):
  the latency the server measures per pushed bar and sessions per minute end to end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=REPO / "data" / "demo", help="data root with a backfilled lake and its raw/ (default data/demo)")
    parser.add_argument("--sessions", type=int, default=5, help="latest sessions of the lake to replay (default 5)")
    parser.add_argument("--no-server", action="store_true", help="skip the end-to-end run through spymaster serve")
    args = parser.parse_args()


    from spymaster_assets.gold.as_of import known_before_from_lake
    from spymaster_assets.gold.episodes import setups_in_zone, with_vectors
    from spymaster_assets.gold.signals import answer
    from spymaster_assets.screen.session import open_replay, payload, screen_start, sessions_in_lake
    from spymaster_assets.sessions import et_to_utc
    from spymaster_assets.silver.bars import build_bars
    from spymaster_assets.silver.level_state import compute_level_state
    from spymaster_assets.silver.levels import compute_levels
    from spymaster_core.config import SpymasterConfig
    from spymaster_resources.lake import Lake
    from spymaster_resources.raw_files import RawCatalog

    config = SpymasterConfig.for_home(args.home)
    lake = Lake(config.lake_dir)
    days = sessions_in_lake(lake)[-args.sessions:]
    if not days:
        raise SystemExit(f"{args.home}: no session with gold_signals in its lake; run scripts/demo.sh (or spymaster backfill) first")
    catalog = RawCatalog(config.raw_dir, config.spec)
    latencies: list[float] = []
    replay_seconds: list[float] = []
    batch_seconds: list[float] = []
    for day in days:
        session = open_replay(config, day, catalog)
        first, last = et_to_utc(day, config.anchor_start), et_to_utc(day, config.anchor_end)
        start = screen_start(day)
        began = time.perf_counter()
        for bar in session.bars.iter_rows(named=True):
            received = time.perf_counter()
            for close in session.engine.add_minute(bar):
                if close.ts_close > start:
                    json.dumps(payload(close), default=str)
                if first < close.ts_close <= last:
                    latencies.append((time.perf_counter() - received) * 1000)
        replay_seconds.append(time.perf_counter() - began)
        # Baseline: the whole session computed at once by the batch code (what the assets do).
        began = time.perf_counter()
        bars = build_bars(session.bars, day, session.engine.config, warmup_1m=session.engine.warmup_1m)
        state = compute_level_state(bars, compute_levels(bars, day, session.engine.config), day, session.engine.config)
        known = known_before_from_lake(lake, day, session.engine.config)
        answer(known, with_vectors(setups_in_zone(state).sort("session_date", "ts_event", "level_kind"), session.engine.config), session.engine.config)
        batch_seconds.append(time.perf_counter() - began)
    print(f"sessions: {len(days)}")
    print(f"first_session: {days[0]}")
    print(f"last_session: {days[-1]}")
    print(f"anchor_bar_closes: {len(latencies)}")
    print(f"bar_latency_ms_p50: {statistics.median(latencies):.2f}")
    print(f"bar_latency_ms_p99: {_percentile(latencies, 0.99):.2f}")
    print(f"bar_latency_ms_max: {max(latencies):.2f}")
    print(f"replay_session_seconds: {statistics.mean(replay_seconds):.3f}")
    print(f"sessions_per_minute: {60 / statistics.mean(replay_seconds):.1f}")
    print(f"batch_session_seconds: {statistics.mean(batch_seconds):.3f}")
    print(f"replay_vs_batch: {statistics.mean(replay_seconds) / statistics.mean(batch_seconds):.1f}")
    if not args.no_server:
        _server(args.home, days)


def _server(home: Path, days) -> None:
    """The same sessions through a real ``spymaster serve``: server-measured latency and sessions per minute."""
    import tempfile

    from servers import running_screen

    with tempfile.TemporaryDirectory() as scratch, running_screen(home, Path(scratch) / "serve.log") as url:
        latencies, walls = [], []
        for day in days:
            began = time.perf_counter()
            with urllib.request.urlopen(f"{url}/api/replay?date={day}&speed=0", timeout=600) as response:
                for raw in response:
                    line = raw.decode()
                    if line.startswith("data: ") and '"latency_ms"' in line:
                        data = json.loads(line[6:])
                        if data["answers"] or data["levels"]:
                            latencies.append(data["latency_ms"])
            walls.append(time.perf_counter() - began)
        print(f"server_bar_latency_ms_p50: {statistics.median(latencies):.2f}")
        print(f"server_bar_latency_ms_p99: {_percentile(latencies, 0.99):.2f}")
        print(f"server_sessions_per_minute: {60 / statistics.mean(walls):.1f}")


if __name__ == "__main__":
    main()
