"""Bronze assets (Dagster wiring only): raw DBN -> front-month Parquet, never rewritten once written."""


from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from spymaster_resources import SpymasterResource

from ..partitions import session_of_partition_key, trading_day_partitions
from ..table_metadata import table_metadata
from .dbn_files import empty_definitions
from .ingest import session_definitions, session_ohlcv_1m
from .schemas import BRONZE_DEFINITIONS, BRONZE_FUTURES_OHLCV_1M, DESCRIPTIONS

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


@asset(partitions_def=trading_day_partitions, group_name="bronze")
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


@asset(partitions_def=trading_day_partitions, group_name="bronze", deps=[bronze_definitions])
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
