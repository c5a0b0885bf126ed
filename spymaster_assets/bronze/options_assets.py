"""Bronze assets of the session's ES 0DTE options (Dagster wiring only): chain, open interest, trades, top of book."""


import polars as pl
from dagster import AssetExecutionContext, MaterializeResult

from spymaster_resources import SpymasterResource

from ..availability import absent_partition
from ..partitions import session_of_partition_key
from ..session_range import session_asset
from ..sessions import session_bounds_utc
from ..table_metadata import table_metadata
from .assets import TIER, BronzeConfig, _order_flow_partition
from spymaster_resources.raw_files import empty_definitions
from .options_chain import empty_chain, select_chain
from .options_ingest import session_option_definitions, session_options_bbo, session_options_open_interest, session_options_trades
from .options_statistics import OPEN_INTEREST_SCHEMA
from .schemas import (
    BRONZE_OPTIONS_BBO,
    BRONZE_OPTIONS_DEFINITIONS,
    BRONZE_OPTIONS_OPEN_INTEREST,
    BRONZE_OPTIONS_TRADES,
    DESCRIPTIONS,
)

CHAIN_TABLE = "bronze_options_definitions"
#: Upstream bronze assets (by key: importing the asset objects would load them twice from this module).
FUTURES_DEPS = ["bronze_definitions", "bronze_futures_ohlcv_1m"]


def _front_month(spymaster: SpymasterResource, day) -> tuple[int, str] | None:
    front = spymaster.lake.scan(TIER, "bronze_futures_ohlcv_1m", day).select("instrument_id", "raw_symbol").head(1).collect()
    return (int(front["instrument_id"][0]), str(front["raw_symbol"][0])) if front.height else None


def _written(context: AssetExecutionContext, spymaster: SpymasterResource, table: str, run: BronzeConfig) -> pl.DataFrame | None:
    day = session_of_partition_key(context.partition_key)
    if run.overwrite or not spymaster.lake.exists(TIER, table, day):
        return None
    context.log.info(f"{table} {day} already written; bronze is not rewritten (set overwrite: true to force)")
    return spymaster.lake.read(TIER, table, day)


@session_asset(parallel=True, group_name="bronze", deps=FUTURES_DEPS)
def bronze_options_definitions(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """The session's 0DTE ES option chain (calls and puts on the front month expiring that day), one row per option."""
    day = session_of_partition_key(context.partition_key)
    lake, cfg = spymaster.lake, spymaster.config
    frame = _written(context, spymaster, CHAIN_TABLE, config)
    if frame is None and (absent := absent_partition(context, spymaster, CHAIN_TABLE)) is not None:
        return absent
    extra: dict[str, object] = {"rewritten": frame is None}
    if frame is None:
        front = _front_month(spymaster, day)
        known = lake.read(TIER, "bronze_definitions", day) if lake.exists(TIER, "bronze_definitions", day) else empty_definitions()
        definitions, files = session_option_definitions(spymaster.catalog, day, cfg, known.drop("session_date", strict=False))
        has_options = definitions.filter(pl.col("instrument_class").is_in(["C", "P"])).height > 0
        if front is None or not has_options:
            frame = empty_chain()
            extra.update(source="none", chain_size=0)
            context.log.info(f"{CHAIN_TABLE} {day}: no option definitions (or no front month) for the session; wrote an empty chain")
        else:
            chain = select_chain(definitions, day, front[1], cfg)
            frame = chain.chain
            low, high = chain.strike_range
            extra.update(
                source="definition",
                **chain.counts,
                roots=", ".join(chain.roots) or "none",
                unlisted_roots=", ".join(chain.unlisted_roots) or "none",
                strike_min=low if low is not None else "none",
                strike_max=high if high is not None else "none",
                expirations=", ".join(sorted({str(t) for t in frame["expiration"].to_list()})) or "none",
            )
        BRONZE_OPTIONS_DEFINITIONS.validate(frame)
        lake.write(TIER, CHAIN_TABLE, day, frame)
        extra.update(
            front_month=front[1] if front else "none",
            definition_files=", ".join(files) or "none",
            options_in_bronze_definitions=int(known.filter(pl.col("instrument_class").is_in(["C", "P"])).height),
        )
    return MaterializeResult(
        metadata=table_metadata(frame, lake.partition_path(TIER, CHAIN_TABLE, day), cfg, DESCRIPTIONS[CHAIN_TABLE], **extra)
    )


def _chain(spymaster: SpymasterResource, day) -> pl.DataFrame:
    return spymaster.lake.read(TIER, CHAIN_TABLE, day)


@session_asset(parallel=True, group_name="bronze", deps=[*FUTURES_DEPS, bronze_options_definitions])
def bronze_options_open_interest(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Open interest of each chain option as published before the session opened (statistics type 9), one row per option."""
    day = session_of_partition_key(context.partition_key)
    lake, cfg = spymaster.lake, spymaster.config
    table = "bronze_options_open_interest"
    frame = _written(context, spymaster, table, config)
    if frame is None and (absent := absent_partition(context, spymaster, table)) is not None:
        return absent
    extra: dict[str, object] = {"rewritten": frame is None}
    if frame is None:
        chain = _chain(spymaster, day)
        frame, counts, files = session_options_open_interest(spymaster.catalog, day, chain, cfg)
        if not files:
            frame = pl.DataFrame(schema=OPEN_INTEREST_SCHEMA)
            context.log.info(f"{table} {day}: no statistics file holds the chain's options; wrote an empty partition")
        BRONZE_OPTIONS_OPEN_INTEREST.validate(frame)
        lake.write(TIER, table, day, frame)
        extra.update(
            source="statistics" if files else "none",
            statistics_files=", ".join(files) or "none",
            chain_size=chain.height,
            session_open_utc=str(session_bounds_utc(day, cfg)[0]),
            **counts,
        )
    return MaterializeResult(metadata=table_metadata(frame, lake.partition_path(TIER, table, day), cfg, DESCRIPTIONS[table], **extra))


def _options_partition(context: AssetExecutionContext, spymaster: SpymasterResource, run: BronzeConfig, table: str, session_stream, checked) -> MaterializeResult:
    """Stream one options table of the partition through the futures order-flow pattern, the chain replacing the front month."""
    day = session_of_partition_key(context.partition_key)

    def build(catalog, session_date, _front_instrument_id, definitions, cfg):
        return session_stream(catalog, session_date, _chain(spymaster, day), definitions, cfg)

    return _order_flow_partition(context, spymaster, run, table, build, checked)


@session_asset(parallel=True, group_name="bronze", deps=[*FUTURES_DEPS, bronze_options_definitions])
def bronze_options_trades(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Trades of the session's 0DTE chain options (premium, size, aggressor side), one row per trade in receive order; empty when none exist."""
    return _options_partition(context, spymaster, config, "bronze_options_trades", session_options_trades, BRONZE_OPTIONS_TRADES)


@session_asset(parallel=True, group_name="bronze", deps=[*FUTURES_DEPS, bronze_options_definitions])
def bronze_options_bbo(context: AssetExecutionContext, spymaster: SpymasterResource, config: BronzeConfig) -> MaterializeResult:
    """Top of book of the session's 0DTE chain options (mbp-1, bbo-1s/1m, tbbo or cbbo), one row per record in receive order; empty when none exist."""
    return _options_partition(context, spymaster, config, "bronze_options_bbo", session_options_bbo, BRONZE_OPTIONS_BBO)
