"""GC futures and SPY on their real sample data (data/sample/GC, data/sample/SPY): the same asset graph as ES.

The samples are backfilled by the CLI, bronze to gold, in one data root serving ES, GC and SPY
(``conftest.multi_home``; a product's lake there equals the lake of a root serving it alone:
test_multi_product). The levels are checked against an independent computation straight from
Lean's CSV files in ../shared/data (the source the sample DBN was converted from), in the
product's own hours.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from conftest import GC_SESSIONS, SHARED_DATA, SPY_SESSIONS
from spymaster_core.config import SpymasterConfig
from spymaster_core.products import PRODUCTS
from spymaster_resources.lake import Lake

NY = ZoneInfo("America/New_York")
LEAN = SHARED_DATA / "lean" / "Data"


def _lake(multi_home, product: str) -> Lake:
    home, _ = multi_home
    return Lake(SpymasterConfig.for_home(home).for_product(product).lake_dir)


def _lean_bars(zip_path: Path, member: str, base: datetime, price_divisor: float) -> pl.DataFrame:
    """Lean minute bars of one CSV member: ts (bar open, UTC), high, low; times are ms after ``base``."""
    with zipfile.ZipFile(zip_path) as zf:
        rows = [r for r in csv.reader(io.TextIOWrapper(zf.open(member), "ascii")) if r]
    return pl.DataFrame(
        {
            "ts": [base + timedelta(milliseconds=int(r[0])) for r in rows],
            "high": [float(r[2]) / price_divisor for r in rows],
            "low": [float(r[3]) / price_divisor for r in rows],
        }
    )


def _window(bars: pl.DataFrame, day: date, start: time, end: time) -> tuple[float, float]:
    lo, hi = (datetime.combine(day, t, tzinfo=NY).astimezone(timezone.utc) for t in (start, end))
    inside = bars.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    assert inside.height, f"no Lean bar in {day} {start}-{end}"
    return float(inside["high"].max()), float(inside["low"].min())


def _final_levels(lake: Lake, day: date) -> dict[str, float]:
    levels = lake.read("silver", "silver_levels", day)
    return {k: float(v) for k, v in levels.sort("ts_event").group_by("level_kind", maintain_order=True).agg(pl.col("level_price").last()).iter_rows()}


def _assert_on_tick(prices: dict[str, float], tick: float) -> None:
    for kind in ("PM_HIGH", "PM_LOW", "OR_HIGH", "OR_LOW"):
        ticks = prices[kind] / tick
        assert abs(ticks - round(ticks)) < 1e-6, f"{kind} {prices[kind]} is not on the {tick} tick"


@pytest.mark.parametrize("day", GC_SESSIONS)
def test_gc_front_month_and_levels_from_its_own_hours(multi_home, day):
    lake = _lake(multi_home, "GC")
    bronze = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
    assert set(bronze["raw_symbol"]) == {"GCZ3"}  # December 2013 (GCZ13), the volume-dominant active month
    midnight = datetime.combine(day, time(0), tzinfo=timezone.utc)
    lean = _lean_bars(LEAN / "future" / "comex" / "minute" / "gc" / f"{day:%Y%m%d}_trade.zip", f"{day:%Y%m%d}_gc_minute_trade_201312.csv", midnight, 1.0)
    levels = _final_levels(lake, day)
    # GC opens 08:20 New York: pre-market 04:00-08:20, opening range 08:20-08:35.
    assert (levels["PM_HIGH"], levels["PM_LOW"]) == pytest.approx(_window(lean, day, time(4, 0), time(8, 20)), abs=1e-9)
    assert (levels["OR_HIGH"], levels["OR_LOW"]) == pytest.approx(_window(lean, day, time(8, 20), time(8, 35)), abs=1e-9)
    _assert_on_tick(levels, PRODUCTS["GC"].tick_size)
    state = lake.read("silver", "silver_level_state", day)
    first = state["ts_event"].min().astimezone(NY)
    assert first.time() == time(8, 22)  # the first anchor is the first 2-minute close after the open


@pytest.mark.parametrize("day", SPY_SESSIONS[1:])
def test_spy_premarket_from_four_and_levels_from_its_own_hours(multi_home, day):
    lake = _lake(multi_home, "SPY")
    bronze = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
    assert set(bronze["raw_symbol"]) == {"SPY"}
    assert bronze["ts_event"].min().astimezone(NY).time() == time(4, 0)  # the equity session opens 04:00 New York
    ny_midnight = datetime.combine(day, time(0), tzinfo=NY).astimezone(timezone.utc)
    lean = _lean_bars(LEAN / "equity" / "usa" / "minute" / "spy" / f"{day:%Y%m%d}_trade.zip", f"{day:%Y%m%d}_spy_minute_trade.csv", ny_midnight, 10_000.0)
    levels = _final_levels(lake, day)
    assert (levels["PM_HIGH"], levels["PM_LOW"]) == pytest.approx(_window(lean, day, time(4, 0), time(9, 30)), abs=1e-9)
    assert (levels["OR_HIGH"], levels["OR_LOW"]) == pytest.approx(_window(lean, day, time(9, 30), time(9, 45)), abs=1e-9)
    _assert_on_tick(levels, PRODUCTS["SPY"].tick_size)


def test_es_levels_sit_on_the_es_tick():
    pinned = pl.read_parquet(Path(__file__).parent / "fixtures" / "es_sample" / "silver_levels.parquet")
    for day, frame in pinned.group_by("session_date"):
        _assert_on_tick({k: float(v) for k, v in frame.group_by("level_kind").agg(pl.col("level_price").last()).iter_rows()}, PRODUCTS["ES"].tick_size)


@pytest.mark.parametrize("product", ["GC", "SPY"])
def test_evaluate_prints_every_model_beside_the_baselines_per_product(multi_home, product, capsys):
    from spymaster_assets.cli import main

    home, _ = multi_home
    assert main(["--home", str(home), "evaluate", "--product", product]) == 0
    out = capsys.readouterr().out
    for model in ("base_rate", "distance", "knn", "xgboost", "answer"):
        assert f"\n{model} " in out, f"{product}: no {model} row in\n{out}"
    assert "episodes in 2 sessions" in out or "episodes in 3 sessions" in out
