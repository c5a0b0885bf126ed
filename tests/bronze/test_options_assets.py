"""Dagster wiring of the options bronze assets on the real EW2F6 C7000 expiry day (2026-01-09) plus a generated statistics file."""

from __future__ import annotations

import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import databento_dbn as dbn
import polars as pl
import pytest
from dagster import instance_for_test, materialize

from spymaster_assets.bronze.assets import bronze_definitions, bronze_futures_ohlcv_1m
from spymaster_assets.bronze.market_records import TRADES_SCHEMA
from spymaster_assets.bronze.options_assets import (
    bronze_options_bbo,
    bronze_options_definitions,
    bronze_options_open_interest,
    bronze_options_trades,
)
from spymaster_resources import SpymasterResource

from .test_options_statistics import stat, write_statistics

EXERCISE = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn" / "nautilus" / "options_exercise"
ASSETS = [bronze_definitions, bronze_futures_ohlcv_1m, bronze_options_definitions, bronze_options_open_interest, bronze_options_trades, bronze_options_bbo]
PARTITION = "2026-01-09"  # Globex session 2026-01-08 18:00 ET - 01-09 17:00 ET
C7000 = 42780620
UTC = timezone.utc

pytestmark = [
    pytest.mark.filterwarnings("ignore"),
]


def _meta(result, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _run(home: Path, instance, run_config=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(ASSETS, partition_key=PARTITION, instance=instance, resources={"spymaster": SpymasterResource(home=str(home))}, run_config=run_config)
    assert result.success
    return result


def test_options_assets_on_the_ew2f6_expiry_day(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(EXERCISE, raw)
    published = datetime(2026, 1, 8, 11, tzinfo=UTC)  # 06:00 ET the day before: known at the 18:00 ET open
    write_statistics(
        raw / "options_statistics.dbn.zst",
        [
            stat(C7000, dbn.StatType.OPEN_INTEREST, published, quantity=4321, ref=datetime(2026, 1, 7, tzinfo=UTC), sequence=1),
            stat(C7000, dbn.StatType.SETTLEMENT_PRICE, published, price=55.0, quantity=99, sequence=2),
            stat(C7000, dbn.StatType.OPEN_INTEREST, datetime(2026, 1, 9, 12, tzinfo=UTC), quantity=9999, sequence=3),  # during the session
        ],
        {C7000: "EW2F6 C7000"},
    )
    part = lambda table: tmp_path / "lake" / "bronze" / table / f"date={PARTITION}" / "part-0.parquet"  # noqa: E731

    with instance_for_test() as instance:
        first = _run(tmp_path, instance)
        chain = pl.read_parquet(part("bronze_options_definitions"))
        assert chain["raw_symbol"].to_list() == ["EW2F6 C7000"] and chain["underlying"].to_list() == ["ESH6"]
        meta = _meta(first, "bronze_options_definitions")
        assert meta["source"] == "definition" and meta["chain_size"] == 1 and meta["calls"] == 1 and meta["puts"] == 0
        assert meta["roots"] == "EW2" and meta["strike_min"] == meta["strike_max"] == 7000.0
        assert meta["front_month"] == "ESH6" and meta["unlisted_root"] == 0
        # Definition files are chosen by their header range (the records' ts_event is the instrument's last
        # change, days earlier), so bronze_definitions holds the option too.
        assert meta["options_in_bronze_definitions"] == 1 and "options_definition.dbn.zst" in meta["definition_files"]

        oi = pl.read_parquet(part("bronze_options_open_interest"))
        assert oi.select("instrument_id", "open_interest", "ts_recv").rows() == [(C7000, 4321, published)]
        meta = _meta(first, "bronze_options_open_interest")
        assert meta["source"] == "statistics" and meta["open_interest_after_open"] == 1
        assert meta["stat_types_seen"] == "3:1, 9:2" and meta["stat_records_not_open_interest"] == 1

        bbo = pl.read_parquet(part("bronze_options_bbo"))
        assert bbo.height == 8 and bbo["instrument_id"].unique().to_list() == [C7000]
        assert bbo["source"].unique().to_list() == ["bbo-1m"]
        # bbo-1m rows are placed at the interval end: ts_event = ts_recv (whole minutes).
        assert (bbo["ts_event"] == bbo["ts_recv"]).all() and (bbo["ts_recv"].dt.second() == 0).all()

        trades = pl.read_parquet(part("bronze_options_trades"))
        assert trades.height == 0 and trades.schema == pl.Schema(TRADES_SCHEMA)
        assert _meta(first, "bronze_options_trades")["source"] == "none"

        # Bronze is never rewritten, even after the raw statistics changed ...
        stamp = part("bronze_options_open_interest").stat().st_mtime_ns
        (raw / "options_statistics.dbn.zst").unlink()
        again = _run(tmp_path, instance)
        assert part("bronze_options_open_interest").stat().st_mtime_ns == stamp
        assert _meta(again, "bronze_options_open_interest")["rewritten"] is False
        assert pl.read_parquet(part("bronze_options_open_interest")).height == 1
        # ... unless asked: then the missing statistics give an empty, flagged partition.
        rerun = _run(tmp_path, instance, {"ops": {"bronze_options_open_interest": {"config": {"overwrite": True}}}})
        assert _meta(rerun, "bronze_options_open_interest")["source"] == "none"
        assert pl.read_parquet(part("bronze_options_open_interest")).height == 0
