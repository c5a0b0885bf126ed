"""Bronze assets (Dagster wiring only): raw DBN -> front-month Parquet, never rewritten once written."""


import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult

from spymaster_resources import SpymasterResource

from ..availability import absent_partition
from ..partitions import session_of_partition_key
from ..session_range import session_asset
from ..table_metadata import table_metadata
from spymaster_resources.raw_files import empty_definitions
from .ingest import session_bbo, session_definitions, session_mbp10, session_ohlcv_1m, session_trades
from .schemas import (
    BRONZE_DEFINITIONS,
    BRONZE_FUTURES_BBO,
    BRONZE_FUTURES_MBP10,
    BRONZE_FUTURES_OHLCV_1M,
    BRONZE_FUTURES_TRADES,
    DESCRIPTIONS,
)

TIER = "bronze"


class BronzeConfig(Config):
    """Run configuration of bronze assets."""

    overwrite: bool = False  # rewrite a partition already written (e.g. after a corrected raw file)


def _existing(context: AssetExecutionContext, spymaster: SpymasterResource, table: str, run: BronzeConfig):
    """The written partition when bronze must not be rewritten, else None."""
    day = session_of_partition_key(context.partition_key)
    if run.overwrite or not spymaster.lake.exists(TIER, table, day):
        return None
    context.log.info(f"{table} {day} already written; bronze is not rewritten (set overwrite: true to force)")
    return spymaster.lake.read(TIER, table, day)


@session_asset(parallel=True, group_name="bronze")
def bronze_definitions(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Instrument definitions known by the session close: ES futures outrights and options, one row per instrument."""
    day = session_of_partition_key(context.partition_key)
    frame = _existing(context, spymaster, "bronze_definitions", config)
    files: list[str] = []
    if frame is None:
        frame, files = session_definitions(spymaster.catalog, day, spymaster.config)
        BRONZE_DEFINITIONS.validate(frame)
        spymaster.lake.write(TIER, "bronze_definitions", day, frame)
    return MaterializeResult(
        metadata=table_metadata(
            frame,
            spymaster.lake.partition_path(TIER, "bronze_definitions", day),
            spymaster.config,
            DESCRIPTIONS["bronze_definitions"],
            definitions_present=frame.height > 0,
            source_files=", ".join(files) or "none (front month chosen from symbology mappings)",
        )
    )


@session_asset(parallel=True, group_name="bronze", deps=[bronze_definitions])
def bronze_futures_ohlcv_1m(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """One-minute OHLCV bars of the session's front-month ES future (volume-dominant outright), one row per minute traded."""
    day = session_of_partition_key(context.partition_key)
    lake = spymaster.lake
    frame = _existing(context, spymaster, "bronze_futures_ohlcv_1m", config)
    extra: dict[str, object] = {}
    if frame is None:
        defs = lake.read(TIER, "bronze_definitions", day) if lake.exists(TIER, "bronze_definitions", day) else None
        if defs is None:
            defs = empty_definitions()
        result = session_ohlcv_1m(spymaster.catalog, day, defs, spymaster.config)
        frame = result.bars
        BRONZE_FUTURES_OHLCV_1M.validate(frame)
        lake.write(TIER, "bronze_futures_ohlcv_1m", day, frame)
        extra = {
            "source": result.source,
            "trade_source": result.trade_source or "none",
            "front_month": result.front_month.raw_symbol,
            "front_month_volume_share": round(result.front_month.volume_share, 4),
            "outright_volumes": str(result.front_month.candidates),
            "source_files": ", ".join(result.files),
        }
    return MaterializeResult(
        metadata=table_metadata(
            frame,
            lake.partition_path(TIER, "bronze_futures_ohlcv_1m", day),
            spymaster.config,
            DESCRIPTIONS["bronze_futures_ohlcv_1m"],
            first_bar=str(frame["ts_event"].min()) if frame.height else "none",
            last_bar=str(frame["ts_event"].max()) if frame.height else "none",
            **extra,
        )
    )


def _order_flow_partition(context: AssetExecutionContext, spymaster: SpymasterResource, run: BronzeConfig, table: str, build, checked) -> MaterializeResult:
    """Stream one order-flow table of the partition's session to the lake (or report the one already written)."""
    day = session_of_partition_key(context.partition_key)
    lake, cfg = spymaster.lake, spymaster.config
    path = lake.partition_path(TIER, table, day)
    if not run.overwrite and lake.exists(TIER, table, day):
        context.log.info(f"{table} {day} already written; bronze is not rewritten (set overwrite: true to force)")
        # The first row's source only: the file is read by row groups, not whole (it may be remote).
        source = next(lake.iter_batches(TIER, table, day, batch_rows=1, columns=["source"]), pl.DataFrame({"source": []}))
        return MaterializeResult(
            metadata=table_metadata(
                pl.DataFrame(schema=lake.schema(TIER, table, day)),
                path,
                cfg,
                DESCRIPTIONS[table],
                row_count=lake.row_count(TIER, table, day),
                source=(source["source"][0] if source.height and source["source"][0] is not None else "none"),
                rewritten=False,
            )
        )
    if (absent := absent_partition(context, spymaster, table)) is not None:
        return absent
    front = lake.scan(TIER, "bronze_futures_ohlcv_1m", day).select("instrument_id", "raw_symbol").head(1).collect()
    defs = lake.read(TIER, "bronze_definitions", day) if lake.exists(TIER, "bronze_definitions", day) else empty_definitions()
    stream = build(spymaster.catalog, day, int(front["instrument_id"][0]), defs, cfg)
    with lake.stream_writer(TIER, table, day) as writer:
        writer.empty_schema = stream.schema
        for frame in stream.frames:
            checked.validate(frame)
            writer.write(frame)
    if stream.source == "none":
        context.log.info(f"{table} {day}: no raw file of an accepted schema covers the session; wrote an empty partition")
    return MaterializeResult(
        metadata=table_metadata(
            pl.DataFrame(schema=stream.schema),
            path,
            cfg,
            DESCRIPTIONS[table],
            row_count=writer.rows,
            source=stream.source,
            source_files=", ".join(stream.files) or "none",
            front_month=str(front["raw_symbol"][0]),
            rewritten=True,
            **stream.counters,
        )
    )


@session_asset(parallel=True, group_name="bronze", deps=[bronze_definitions, bronze_futures_ohlcv_1m])
def bronze_futures_trades(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Trades of the session's front month (price, size, aggressor side), one row per trade in receive order; empty when no trade data exists."""
    return _order_flow_partition(context, spymaster, config, "bronze_futures_trades", session_trades, BRONZE_FUTURES_TRADES)


@session_asset(parallel=True, group_name="bronze", deps=[bronze_definitions, bronze_futures_ohlcv_1m])
def bronze_futures_bbo(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Top of book of the session's front month (mbp-1, bbo-1s/1m or tbbo), one row per record in receive order; empty when none exists."""
    return _order_flow_partition(context, spymaster, config, "bronze_futures_bbo", session_bbo, BRONZE_FUTURES_BBO)


@session_asset(parallel=True, group_name="bronze", deps=[bronze_definitions, bronze_futures_ohlcv_1m])
def bronze_futures_mbp10(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Ten-level book of the session's front month after each event (mbp-10, or rebuilt from mbo), in receive order; empty when neither exists."""
    return _order_flow_partition(context, spymaster, config, "bronze_futures_mbp10", session_mbp10, BRONZE_FUTURES_MBP10)
