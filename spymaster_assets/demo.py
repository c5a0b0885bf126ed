"""``spymaster demo``: the whole pipeline on the embedded real samples (ES, GC futures, SPY), then one answer and the scores of each."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl

from spymaster_core.config import CONFIG_FILE, SpymasterConfig
from spymaster_resources.lake import Lake
from spymaster_core.errors import SpymasterError

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RAW = REPO_ROOT / "data" / "sample" / "raw"
#: The products of the embedded samples, and where each one's raw files are (ES's at data/sample/raw).
DEMO_PRODUCTS: dict[str, Path] = {
    "ES": SAMPLE_RAW,
    "GC": REPO_ROOT / "data" / "sample" / "GC" / "raw",
    "SPY": REPO_ROOT / "data" / "sample" / "SPY" / "raw",
}


def install_sample(home: Path) -> Path:
    """Copy the committed sample DBN files into ``home/raw`` (existing files are left alone): ES's at
    raw/, every other product's under raw/<SYMBOL>/ (GC's daily files have ES's names). Returns raw/."""
    raw = home / "raw"
    for product, source in DEMO_PRODUCTS.items():
        if not source.is_dir():
            raise SpymasterError(f"{source}: the embedded {product} sample is missing (is this a full clone?)")
        target = raw if product == "ES" else raw / product
        for src in source.rglob("*.dbn.zst"):
            dst = target / src.relative_to(source)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    return raw


def configure_products(home: Path) -> None:
    """Make the data root serve the demo's products: ``"products"`` in its config.json (other fields kept;
    a config.json that already names products is left as it is)."""
    path = home / CONFIG_FILE
    values = json.loads(path.read_text()) if path.is_file() else {}
    if "products" not in values:
        values["products"] = list(DEMO_PRODUCTS)
        path.write_text(json.dumps(values, indent=2) + "\n")


def pick_query_bar(config: SpymasterConfig, day: date) -> time:
    """A bar of ``day`` where some level is in the approach zone (the first such anchor 30 minutes or
    more after the product's open: 10:00 ET for ES)."""
    from .sessions import NY

    state = Lake(config.lake_dir).read("silver", "silver_level_state", day)
    zone = state.filter(pl.col("in_zone")).sort("ts_event")
    times = [t.astimezone(NY).time() for t in zone["ts_event"].to_list()]
    start = (datetime.combine(day, config.rth_open) + timedelta(minutes=30)).time()
    later = [t for t in times if t >= start]
    return (later or times or [start])[0]


def run_demo(home: Path) -> int:
    """Install the samples under ``home``, and for each product (ES, GC, SPY) backfill every sample
    session, print a query and the evaluation; then write the DuckDB catalog."""
    home = Path(home)
    install_sample(home)
    configure_products(home)
    base = SpymasterConfig.for_home(home)
    print(f"Spymaster demo: real 1-minute bars of {', '.join(base.products)} (QuantConnect Lean, Apache-2.0) under {home}/raw")
    for product in base.products:
        _demo_product(base.for_product(product))
    from .catalog.views import write_catalog

    catalog = write_catalog(base.lake_root, home / "spymaster.duckdb")
    print(f"\nDuckDB catalog ({len(catalog.views)} views, a product column in each table's view): duckdb {catalog.path} -c \"select product, count(*) from gold_episodes group by 1\"")
    return 0


def _demo_product(config: SpymasterConfig) -> None:
    """One product of the demo: backfill, one answer, the walk-forward scores."""
    from .automation.backfill import backfill
    from .cli import _print_answer
    from .gold.query import answer_query
    from .gold.report import evaluate_lake

    spec = config.spec
    print(f"\n=== {config.product}: {spec.price_unit}, regular hours from {spec.rth_open:%H:%M} New York, pre-market from {spec.premarket_start:%H:%M} ===")
    report = backfill(config, date(2000, 1, 1), date.today())
    sessions = sorted(report.materialized + report.skipped)
    print(f"{len(sessions)} sessions through bronze, silver and gold ({len(report.materialized)} built now, {len(report.skipped)} already up to date): {sessions[0]} .. {sessions[-1]}")
    day = sessions[-1]
    bar = pick_query_bar(config, day)
    print(f"\nspymaster query --product {config.product} --date {day} --time {bar:%H:%M}   (index as of {day}: only earlier sessions)")
    _print_answer(answer_query(config, day, bar, None))
    print(f"\nspymaster evaluate --product {config.product}   (every model on the same episodes, walk-forward; 90% session-bootstrap intervals)")
    try:
        print(evaluate_lake(config)[1])
    except SpymasterError as exc:
        print(f"  not enough history to score: {exc}")
    print(f"  reliability diagrams: {config.reports_dir}/reliability_{day}*.png; session charts: {config.reports_dir}/session_<date>.png")
