"""Dagster wiring of the order-flow bronze assets on the real ESU4 file set (trades, mbp-1, ohlcv-1m; no mbp-10/mbo)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest
from dagster import instance_for_test, materialize

from spymaster_assets.bronze.assets import (
    bronze_definitions,
    bronze_futures_bbo,
    bronze_futures_mbp10,
    bronze_futures_ohlcv_1m,
    bronze_futures_trades,
)
from spymaster_resources import SpymasterResource

ESU4 = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn" / "nautilus" / "historical_bars_catalog"
ASSETS = [bronze_definitions, bronze_futures_ohlcv_1m, bronze_futures_trades, bronze_futures_bbo, bronze_futures_mbp10]
PARTITION = "2024-07-02"  # Globex session 2024-07-01 18:00 ET - 07-02 17:00 ET



def _meta(result, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _run(home: Path, instance, run_config=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(
            ASSETS, partition_key=PARTITION, instance=instance,
            resources={"spymaster": SpymasterResource(home=str(home))}, run_config=run_config,
        )
    assert result.success
    return result


def test_order_flow_assets_write_once_and_empty_when_a_schema_is_missing(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for f in ESU4.iterdir():
        shutil.copy2(f, raw / f.name)
    lake = tmp_path / "lake" / "bronze"
    part = lambda table: lake / table / f"date={PARTITION}" / "part-0.parquet"  # noqa: E731

    with instance_for_test() as instance:
        first = _run(tmp_path, instance)
        trades = pl.read_parquet(part("bronze_futures_trades"))
        assert trades.height == 120 and trades["source"].unique().to_list() == ["trades"]
        assert trades["instrument_id"].unique().to_list() == [118]  # the ohlcv partition's front month
        assert trades["ts_recv"].is_sorted()
        bbo = pl.read_parquet(part("bronze_futures_bbo"))
        assert bbo.height == 2288 and bbo["source"].unique().to_list() == ["mbp-1"]
        # No mbp-10 or mbo file: no partition at all, and the materialization says why.
        assert not part("bronze_futures_mbp10").parent.exists()
        assert _meta(first, "bronze_futures_mbp10") == {"absent": f"no mbp-10 or mbo in raw/ for {PARTITION}"}
        meta = _meta(first, "bronze_futures_trades")
        assert meta["dagster/row_count"] == 120 and meta["out_of_order_records"] == 0 and meta["rewritten"] is True

        # Materializing again does not rewrite bronze, even after the raw file changed.
        stamp = part("bronze_futures_trades").stat().st_mtime_ns
        next(raw.glob("futures_trades_*")).unlink()
        again = _run(tmp_path, instance)
        assert part("bronze_futures_trades").stat().st_mtime_ns == stamp
        meta = _meta(again, "bronze_futures_trades")
        assert meta["rewritten"] is False and meta["dagster/row_count"] == 120 and meta["source"] == "trades"

        # overwrite: true rewrites it from what raw/ now holds: the mbp-1 file's trade records.
        cfg = {"ops": {"bronze_futures_trades": {"config": {"overwrite": True}}}}
        rewritten = _run(tmp_path, instance, cfg)
        assert _meta(rewritten, "bronze_futures_trades")["source"] == "mbp-1"
        assert pl.read_parquet(part("bronze_futures_trades"))["source"].unique().to_list() == ["mbp-1"]
