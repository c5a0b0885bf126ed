"""Generated (SIMULATED) NQ and CL sessions cover what the real samples cannot: another equity-index
root, and a product that rolls every month (CL) with its own 09:00 New York open."""

from __future__ import annotations

import json
import warnings
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from conftest import CHAIN_CONFIG, load_script
from spymaster_core.config import SpymasterConfig
from spymaster_resources.lake import Lake

NY = ZoneInfo("America/New_York")


def _generator():
    return load_script("generate_session")


@pytest.fixture(scope="module")
def cl_home(tmp_path_factory) -> Path:
    """Six generated CL sessions across the CLX3 -> CLZ3 roll (CLX3's last trade: 2013-10-22, the roll 8 days before), backfilled bronze to gold."""
    from spymaster_assets.cli import main

    home = tmp_path_factory.mktemp("cl")
    _generator().generate_bars_sessions(date(2013, 10, 9), 6, home / "raw" / "GLBX.MDP3", start_price=102.0, product="CL")
    (home / "config.json").write_text(json.dumps({"products": ["CL"], **CHAIN_CONFIG}))
    assert main(["--home", str(home), "backfill", "--start", "2013-10-09", "--end", "2013-10-16", "--quiet", "--no-charts"]) == 0
    return home


def test_cl_rolls_monthly_and_its_levels_start_at_nine(cl_home):
    lake = Lake(SpymasterConfig.for_home(cl_home).lake_dir)
    days = lake.dates("bronze", "bronze_futures_ohlcv_1m")
    assert len(days) == 6
    fronts = {d: lake.read("bronze", "bronze_futures_ohlcv_1m", d)["raw_symbol"].unique().to_list() for d in days}
    assert fronts[date(2013, 10, 9)] == ["CLX3"] and fronts[date(2013, 10, 16)] == ["CLZ3"]
    assert sorted({s for v in fronts.values() for s in v}) == ["CLX3", "CLZ3"]
    levels = lake.read("silver", "silver_levels", date(2013, 10, 10))
    known = {k: t.astimezone(NY).time() for k, t in levels.group_by("level_kind").agg(pl.col("ts_event").min()).iter_rows()}
    assert known["PM_HIGH"] == time(9, 0) and known["OR_HIGH"] == time(9, 16)  # the 15-minute range after 09:00, at the next 2-minute close
    prices = levels.filter(pl.col("level_kind").is_in(["PM_HIGH", "PM_LOW", "OR_HIGH", "OR_LOW"]))["level_price"]
    assert ((prices / 0.01).round(6) % 1 == 0).all()  # on CL's 0.01 tick
    assert lake.dates("gold", "gold_signals") == days  # the whole graph, bronze to gold


def test_the_roll_does_not_warm_the_new_contract_with_the_old_ones_bars(cl_home):
    from spymaster_assets.silver.assets import warmup_bars

    config = SpymasterConfig.for_home(cl_home)
    lake = Lake(config.lake_dir)
    days = lake.dates("bronze", "bronze_futures_ohlcv_1m")
    roll = next(d for d, prev in zip(days[1:], days) if lake.read("bronze", "bronze_futures_ohlcv_1m", d)["raw_symbol"][0] != lake.read("bronze", "bronze_futures_ohlcv_1m", prev)["raw_symbol"][0])
    instrument = int(lake.read("bronze", "bronze_futures_ohlcv_1m", roll)["instrument_id"][0])
    bars, why = warmup_bars(lake, roll, instrument, config)
    assert bars is None and "roll" in why


def test_generated_nq_sessions_are_nq_and_not_es(tmp_path):
    from dagster import DagsterInstance, materialize

    from spymaster_assets.product_graph import product_assets
    from spymaster_resources import SpymasterResource

    _generator().generate_bars_sessions(date(2024, 3, 11), 2, tmp_path / "raw" / "nq", start_price=18000.0, product="NQ")
    (tmp_path / "config.json").write_text(json.dumps({"products": ["ES", "NQ"]}))
    assets = product_assets("NQ")
    wanted = {"nq/bronze_definitions", "nq/bronze_futures_ohlcv_1m", "nq/silver_bars", "nq/silver_levels"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(assets, selection=[a for a in assets if a.key.to_user_string() in wanted], partition_key="2024-03-12",
                             instance=DagsterInstance.ephemeral(), resources={"spymaster": SpymasterResource(home=str(tmp_path))})
    assert result.success
    lake = Lake(SpymasterConfig.for_home(tmp_path).for_product("NQ").lake_dir)
    assert lake.read("bronze", "bronze_futures_ohlcv_1m", date(2024, 3, 12))["raw_symbol"].unique().to_list() == ["NQM4"]
    assert not (tmp_path / "lake" / "bronze").exists()  # nothing written where ES's tables live
    # ES has no file in raw/: its bronze fails naming the product, the NQ files are not its.
    es = [a for a in product_assets("ES") if a.key.to_user_string() == "bronze_futures_ohlcv_1m"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failed = materialize(es, partition_key="2024-03-12", instance=DagsterInstance.ephemeral(), resources={"spymaster": SpymasterResource(home=str(tmp_path))}, raise_on_error=False)
    assert not failed.success
