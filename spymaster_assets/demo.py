"""``spymaster demo``: the whole pipeline on the embedded real ES sample, then one answer and the scores."""

from __future__ import annotations

import shutil
from datetime import date, time
from pathlib import Path

import polars as pl

from spymaster_core.config import SpymasterConfig
from spymaster_resources.lake import Lake
from spymaster_core.errors import SpymasterError

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RAW = REPO_ROOT / "data" / "sample" / "raw"


def install_sample(home: Path) -> Path:
    """Copy the committed sample DBN files into ``home/raw`` (existing files are left alone). Returns raw/."""
    if not SAMPLE_RAW.is_dir():
        raise SpymasterError(f"{SAMPLE_RAW}: the embedded sample is missing (is this a full clone?)")
    raw = home / "raw"
    for src in SAMPLE_RAW.rglob("*.dbn.zst"):
        dst = raw / src.relative_to(SAMPLE_RAW)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return raw


def pick_query_bar(config: SpymasterConfig, day: date) -> time:
    """A bar of ``day`` where some level is in the approach zone (the first such anchor after 10:00 ET)."""
    from .sessions import NY

    state = Lake(config.lake_dir).read("silver", "silver_level_state", day)
    zone = state.filter(pl.col("in_zone")).sort("ts_event")
    times = [t.astimezone(NY).time() for t in zone["ts_event"].to_list()]
    later = [t for t in times if t >= time(10, 0)]
    return (later or times or [time(10, 0)])[0]


def run_demo(home: Path) -> int:
    """Install the sample under ``home``, backfill every sample session, print a query and the evaluation."""
    from .automation.backfill import backfill
    from .cli import _print_answer
    from .gold.query import answer_query

    home = Path(home)
    install_sample(home)
    config = SpymasterConfig.for_home(home)
    print(f"Spymaster demo: real ES 1-minute bars (QuantConnect Lean, Apache-2.0) under {home}/raw")
    report = backfill(config, date(2000, 1, 1), date.today())
    sessions = sorted(report.materialized + report.skipped)
    print(f"{len(sessions)} sessions through bronze, silver and gold ({len(report.materialized)} built now, {len(report.skipped)} already up to date): {sessions[0]} .. {sessions[-1]}")
    day = sessions[-1]
    bar = pick_query_bar(config, day)
    print(f"\nspymaster query --date {day} --time {bar:%H:%M}   (index as of {day}: only earlier sessions)")
    _print_answer(answer_query(config, day, bar, None))
    from .gold.report import evaluate_lake

    print("\nspymaster evaluate   (every model on the same episodes, walk-forward; 90% session-bootstrap intervals)")
    try:
        print(evaluate_lake(config)[1])
    except SpymasterError as exc:
        print(f"  not enough history to score: {exc}")
    print(f"  reliability diagrams: {config.reports_dir}/reliability_{day}*.png")
    from .catalog.views import write_catalog

    catalog = write_catalog(config.lake_root, home / "spymaster.duckdb")
    print(f"  session charts: {config.reports_dir}/session_<date>.png")
    print(f"  DuckDB catalog ({len(catalog.views)} views): duckdb {catalog.path} -c \"select * from gold_episodes limit 5\"")
    return 0
