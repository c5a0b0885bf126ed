#!/usr/bin/env python
"""Backfill benchmark: generated bars-only sessions bronze to gold, as ``name: value`` lines.

1. ``--sessions`` consecutive SIMULATED sessions of ohlcv-1m (``generate_session.py --bars-only``),
   plus one more, are written into a fresh data root under a temporary directory.
2. ``cold_*``: ``spymaster backfill --no-charts`` over the ``--sessions`` from an empty lake, as a
   separate process: one Dagster run per range (wall seconds, peak resident memory), and the gold
   walk's seconds per session over the first and the last ``--window`` sessions and their ratio (from
   the modification times of each gold as-of table, summed over the tables: 1.0 when gold does not
   grow with history). ``cold_daily_job_wall_seconds``: then the extra session alone, as the daily
   job adds one session at the end of the history (download excluded).
3. Beyond a year (``--sessions`` > 250, e.g. 2520 for a decade), the same ``year_*`` figures for the
   first 250 sessions in a data root of their own, in the same run; nothing else.
4. Up to a year: ``rerun_*``, the same command again over the materialized range (it only checks
   and skips); ``stale_*``, the first session's episodes touched (as if rebuilt) and that one session
   backfilled: it rebuilds every later session in the same run; ``per_session_*`` beside
   ``range_*``, the first ``--window`` sessions as one Dagster run per session (the path before
   range runs) and as one range run; ``range_speedup`` is their wall-time ratio.

With ``--products ES,NQ,CL`` it measures what adding products costs instead: the same ``--sessions``
generated for each product into one data root configured for all of them, backfilled product after
product (``spymaster backfill --product P``), beside the first product alone in a data root of its
own, in the same run: ``products_wall_seconds``, ``one_product_wall_seconds`` and their ratio
``products_ratio`` (the target: at most 1.1 x the number of products).

Usage: ``.venv/bin/python scripts/benchmark_backfill.py [--sessions 250|2520] [--window N] [--keep DIR] [--raw DIR] [--products ES,NQ,CL]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
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


#: One Dagster run per session, as ``spymaster backfill`` ran before range runs (the comparison path).
PER_SESSION_SCRIPT = """
import sys, warnings
from datetime import date
from pathlib import Path
from dagster import materialize
from spymaster_assets.definitions import all_assets
from spymaster_resources import SpymasterResource
from spymaster_resources.instance import open_instance
warnings.simplefilter("ignore")
home = Path(sys.argv[1])
instance, _ = open_instance(home)
assets = [a for a in all_assets if not any(a.group_names_by_key[k] == "reports" for k in a.keys)]
for day in sys.argv[2:]:
    result = materialize(assets, partition_key=day, instance=instance, resources={"spymaster": SpymasterResource(home=str(home))},
                         run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert result.success, day
"""


def run_backfill(home: Path, start: date, end: date, product: str | None = None) -> tuple[float, float]:
    """Run ``spymaster backfill --quiet --no-charts [--product P]`` as a child process; (wall seconds, peak RSS MB of the children so far)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(SPYMASTER), "--home", str(home), "backfill", "--quiet", "--no-charts", "--start", start.isoformat(), "--end", end.isoformat(),
         *(["--product", product] if product else [])],
        capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"spymaster backfill exited with {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


#: The gold tables a range run builds session after session in date order (as-of artefacts).
GOLD_WALK = ("gold_normalization", "gold_model", "gold_setup_index", "gold_signals", "gold_evaluation")


def gold_seconds_per_session(home: Path, days: list[date]) -> list[float]:
    """Per session (from the second), the gold walk's seconds: for each GOLD_WALK table the time between
    writing the session's partition and the previous one's (file or directory mtimes), summed."""
    total = [0.0] * (len(days) - 1)
    for table in GOLD_WALK:
        ends = []
        for d in days:
            partition = home / "lake" / "gold" / table / f"date={d.isoformat()}"
            target = partition / "part-0.parquet" if (partition / "part-0.parquet").is_file() else partition
            ends.append(target.stat().st_mtime if target.exists() else float("nan"))
        for i, (a, b) in enumerate(zip(ends, ends[1:])):
            if b == b and a == a:  # a pruned index directory has no mtime: that step is left out
                total[i] += b - a
    return total


def link_generated(source: Path, target: Path, sessions: int) -> list[date]:
    """Hard-link the DBN files of the first ``sessions`` sessions (by the date in their names) under
    ``source`` into ``target``; returns those sessions. Raises SystemExit when ``source`` has fewer."""
    by_day: dict[date, list[Path]] = {}
    for path in source.glob("*.dbn*"):
        found = re.search(r"(\d{8})", path.name)
        if found:
            by_day.setdefault(datetime.strptime(found.group(1), "%Y%m%d").date(), []).append(path)
    days = sorted(by_day)[:sessions]
    if len(days) < sessions:
        raise SystemExit(f"--raw {source}: {len(by_day)} sessions of DBN files, {sessions} needed")
    target.mkdir(parents=True, exist_ok=True)
    for day in days:
        for path in by_day[day]:
            os.link(path, target / path.name)
    return days


def fresh_root(source: Path, target: Path, days: list[date]) -> Path:
    """A data root at ``target`` whose raw/ holds the files of ``days`` from ``source``/raw (hard links)."""
    stamps = {d.strftime("%Y%m%d") for d in days}
    for path in (source / "raw").rglob("*.dbn*"):
        if re.search(r"(\d{8})", path.name).group(1) in stamps:
            out = target / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, out)
    return target


def run_per_session(home: Path, days: list[date]) -> float:
    """Wall seconds of one Dagster run per session over ``days`` (a child process)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PER_SESSION_SCRIPT, str(home), *(d.isoformat() for d in days)], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


#: Sessions in a year of the benchmark (the comparison run beside a longer history).
YEAR = 250


def cold_figures(home: Path, days: list[date], daily: date, window: int, prefix: str) -> None:
    """Cold backfill of ``days`` from an empty lake, then the daily job (session ``daily`` alone, its raw
    files already in raw/): ``<prefix>_wall_seconds``, ``_seconds_per_session_mean``, the gold walk's seconds
    per session over the first and the last ``window`` sessions and their ratio, ``_peak_rss_mb`` (the
    largest child process so far), ``_daily_job_wall_seconds``."""
    wall, peak = run_backfill(home, days[0], days[-1])
    gold = gold_seconds_per_session(home, days)
    emit(f"{prefix}_wall_seconds", wall)
    emit(f"{prefix}_seconds_per_session_mean", wall / len(days))
    if len(gold) >= 2 * window:
        first, last = sum(gold[:window]) / window, sum(gold[-window:]) / window
        emit(f"{prefix}_gold_seconds_per_session_first_{window}", first)
        emit(f"{prefix}_gold_seconds_per_session_last_{window}", last)
        emit(f"{prefix}_gold_last_over_first", last / first if first > 0 else float("nan"))
    if len(gold) >= 2 * YEAR:
        # What each year of history costs the gold walk: "adding a year costs no more than 1.3x the first".
        # A backfill splits a decade into range runs; the mtime gap across a run boundary holds the next
        # range's bronze and silver, so those few sessions (over 20x the median) are left out of the sums.
        median = sorted(gold)[len(gold) // 2]
        boundaries = {i for i, g in enumerate(gold) if g > 20 * median}
        emit(f"{prefix}_gold_range_boundaries_left_out", len(boundaries))
        years = [sum(g for j, g in enumerate(gold[i:i + YEAR], i) if j not in boundaries) for i in range(0, len(gold) - YEAR + 1, YEAR)]
        for number, seconds in enumerate(years, 1):
            emit(f"{prefix}_gold_seconds_year_{number}", seconds)
        emit(f"{prefix}_gold_last_year_over_first", years[-1] / years[0] if years[0] > 0 else float("nan"))
    emit(f"{prefix}_peak_rss_mb", peak)
    wall, _ = run_backfill(home, daily, daily)
    emit(f"{prefix}_daily_job_wall_seconds", wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=250, help="generated sessions (default 250: a year)")
    parser.add_argument("--window", type=int, default=0, help="sessions averaged at the start and at the end (default 100 from 1,000 sessions, else 20)")
    parser.add_argument("--first", type=date.fromisoformat, default=date(2024, 1, 2), help="first session date (default 2024-01-02)")
    parser.add_argument("--keep", type=Path, help="data root to use and keep (default: a temporary directory, removed)")
    parser.add_argument("--raw", type=Path, help="use the generated DBN files under this directory (e.g. an earlier run's raw/GLBX.MDP3, hard-linked) instead of generating them: its first --sessions + 1 sessions")
    parser.add_argument("--products", help="comma-separated futures products (e.g. ES,NQ,CL): measure several products in one data root against the first alone")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from generate_session import generate_bars_sessions

    if args.products:
        return bench_products(args, [p.strip().upper() for p in args.products.split(",") if p.strip()], generate_bars_sessions)

    with tempfile.TemporaryDirectory(prefix="spymaster-backfill-bench-") as tmp:
        home = args.keep or Path(tmp) / "home"
        # One session more than asked: the last one lands after the cold backfill, as the daily job.
        if args.raw is not None:
            all_days = link_generated(args.raw, home / "raw" / "GLBX.MDP3", args.sessions + 1)
        else:
            reports = generate_bars_sessions(args.first, args.sessions + 1, home / "raw" / "GLBX.MDP3")
            all_days = sorted(datetime.strptime(re.search(r"(\d{8})", r.paths["ohlcv-1m"].name).group(1), "%Y%m%d").date() for r in reports)
        days, daily = all_days[:-1], all_days[-1]
        emit("sessions", len(days))
        emit("first_session", days[0].isoformat())
        emit("last_session", days[-1].isoformat())
        emit("cpu_count", os.cpu_count())
        window = args.window or (100 if len(days) >= 1000 else 20)
        cold_figures(home, days, daily, window, "cold")
        if len(days) > YEAR:
            # The same figures for the first year alone, in a data root of its own, in the same run.
            year = all_days[: YEAR + 1]
            cold_figures(fresh_root(home, Path(tmp) / "year", year), year[:-1], year[-1], min(window, YEAR // 5), "year")
            return 0

        wall, _ = run_backfill(home, days[0], days[-1])
        emit("rerun_wall_seconds", wall)

        episodes = home / "lake" / "gold" / "gold_episodes" / f"date={days[0].isoformat()}" / "part-0.parquet"
        st = episodes.stat()
        os.utime(episodes, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        wall, _ = run_backfill(home, days[0], days[0])
        emit("stale_rebuild_wall_seconds", wall)
        emit("stale_rebuild_sessions", len(days) + 1)

        first = days[: args.window or 20]
        per_session_wall = run_per_session(fresh_root(home, Path(tmp) / "per_session", first), first)
        range_wall, _ = run_backfill(fresh_root(home, Path(tmp) / "range", first), first[0], first[-1])
        emit(f"per_session_wall_seconds_first_{len(first)}", per_session_wall)
        emit(f"range_wall_seconds_first_{len(first)}", range_wall)
        emit("range_speedup", per_session_wall / range_wall)
    return 0


#: A plausible starting price per product for the generated path (only the tick grid matters).
START_PRICES = {"ES": 5150.0, "MES": 5150.0, "NQ": 18000.0, "MNQ": 18000.0, "RTY": 2000.0, "YM": 39000.0, "GC": 2000.0, "SI": 23.0, "CL": 78.0, "6E": 1.09}


def bench_products(args, products: list[str], generate_bars_sessions) -> int:
    """``--products``: every product's sessions in one data root, backfilled product by product, beside the first alone."""
    import json

    with tempfile.TemporaryDirectory(prefix="spymaster-products-bench-") as tmp:
        root = args.keep or Path(tmp) / "products"
        alone = Path(tmp) / "alone"
        spans = {}
        for product in products:
            reports = generate_bars_sessions(args.first, args.sessions, root / "raw" / product.lower(), start_price=START_PRICES.get(product, 100.0), product=product)
            days = sorted(datetime.strptime(re.search(r"(\d{8})", r.paths["ohlcv-1m"].name).group(1), "%Y%m%d").date() for r in reports)
            spans[product] = (days[0], days[-1])
        (root / "config.json").write_text(json.dumps({"products": products}))
        shutil.copytree(root / "raw" / products[0].lower(), alone / "raw" / products[0].lower())
        (alone / "config.json").write_text(json.dumps({"products": [products[0]]}))
        emit("products", ",".join(products))
        emit("sessions_per_product", args.sessions)
        emit("cpu_count", os.cpu_count())
        one, _ = run_backfill(alone, *spans[products[0]])
        emit("one_product_wall_seconds", one)
        total = 0.0
        for product in products:
            wall, peak = run_backfill(root, *spans[product], product=product)
            emit(f"product_{product}_wall_seconds", wall)
            total += wall
        emit("products_wall_seconds", total)
        emit("products_ratio", total / one)
        emit("products_peak_rss_mb", peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
