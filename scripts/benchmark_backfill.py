#!/usr/bin/env python
"""Backfill benchmark: generated bars-only sessions through every asset, as ``name: value`` lines.

1. ``--sessions`` consecutive SIMULATED sessions of ohlcv-1m (``generate_session.py --bars-only``)
   are written into a fresh data root under a temporary directory.
2. ``cold_*``: ``spymaster backfill`` over all of them from an empty lake, as a separate process
   (wall seconds, seconds per session over the first and the last ``--window`` sessions, the peak
   resident memory of the process).
3. ``rerun_*``: the same command again over the materialized range (every session is already built
   on the current history, so it only checks and skips).
4. ``stale_*``: the first session's episodes are touched (as if it were rebuilt), then the backfill
   of that one session: it rebuilds every later session in the same run.

Usage: ``.venv/bin/python scripts/benchmark_backfill.py [--sessions 250] [--window 20] [--keep DIR]``.
A year (250 sessions) takes about 25 minutes on 2 cores with today's session-by-session runs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SPYMASTER = Path(sys.executable).with_name("spymaster")


def emit(name: str, value: object) -> None:
    """One ``name: value`` line (floats with 3 decimals)."""
    print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}", flush=True)


def run_backfill(home: Path, start: date, end: date) -> tuple[float, float]:
    """Run ``spymaster backfill --quiet`` as a child process; (wall seconds, peak RSS MB of the children so far)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(SPYMASTER), "--home", str(home), "backfill", "--quiet", "--start", start.isoformat(), "--end", end.isoformat()],
        capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"spymaster backfill exited with {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def seconds_per_session(home: Path, days: list[date]) -> list[float]:
    """Per session, the time between the end of its run and the end of the previous one (mtimes of gold_evaluation, the last lake table a run writes)."""
    ends = [(home / "lake" / "gold" / "gold_evaluation" / f"date={d.isoformat()}" / "part-0.parquet").stat().st_mtime for d in days]
    return [b - a for a, b in zip(ends, ends[1:])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=250, help="generated sessions (default 250: a year)")
    parser.add_argument("--window", type=int, default=20, help="sessions averaged at the start and at the end (default 20)")
    parser.add_argument("--first", type=date.fromisoformat, default=date(2024, 1, 2), help="first session date (default 2024-01-02)")
    parser.add_argument("--keep", type=Path, help="data root to use and keep (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from generate_session import generate_bars_sessions

    with tempfile.TemporaryDirectory(prefix="spymaster-backfill-bench-") as tmp:
        home = args.keep or Path(tmp) / "home"
        reports = generate_bars_sessions(args.first, args.sessions, home / "raw" / "GLBX.MDP3")
        days = sorted(datetime.strptime(re.search(r"(\d{8})", r.paths["ohlcv-1m"].name).group(1), "%Y%m%d").date() for r in reports)
        emit("sessions", len(days))
        emit("first_session", days[0].isoformat())
        emit("last_session", days[-1].isoformat())
        emit("cpu_count", os.cpu_count())

        wall, peak = run_backfill(home, days[0], days[-1])
        per_session = seconds_per_session(home, days)
        emit("cold_wall_seconds", wall)
        emit("cold_seconds_per_session_mean", wall / len(days))
        if len(per_session) >= 2 * args.window:
            emit(f"cold_seconds_per_session_first_{args.window}", sum(per_session[: args.window]) / args.window)
            emit(f"cold_seconds_per_session_last_{args.window}", sum(per_session[-args.window:]) / args.window)
        emit("cold_peak_rss_mb", peak)

        wall, _ = run_backfill(home, days[0], days[-1])
        emit("rerun_wall_seconds", wall)

        episodes = home / "lake" / "gold" / "gold_episodes" / f"date={days[0].isoformat()}" / "part-0.parquet"
        st = episodes.stat()
        os.utime(episodes, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        wall, _ = run_backfill(home, days[0], days[0])
        emit("stale_rebuild_wall_seconds", wall)
        emit("stale_rebuild_sessions", len(days))
    return 0


if __name__ == "__main__":
    sys.exit(main())
