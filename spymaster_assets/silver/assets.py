"""Silver assets (Dagster wiring only): bars, levels, level-relative state and outcome labels per session."""

import functools
from collections.abc import Callable
from datetime import date, timedelta

import polars as pl
from dagster import AssetDep, AssetExecutionContext, MaterializeResult

from pathlib import Path

from spymaster_core.config import CONFIG_FILE, SpymasterConfig
from spymaster_resources import SpymasterResource
from spymaster_resources.lake import Lake
from spymaster_resources.file_memo import FileMemo

from spymaster_resources.raw_files import RawCatalog

from ..availability import absent_partition
from ..bronze.assets import bronze_futures_ohlcv_1m
from ..bronze.market_records import TRADES_SCHEMA
from ..bronze.ingest import session_definitions, session_ohlcv_1m, sessions_with_rth_data
from ..partitions import WITH_PREVIOUS_SESSION, session_of_partition_key
from ..session_range import session_asset
from ..sessions import session_bounds_utc, trading_sessions
from ..table_metadata import same_columns, table_metadata
from .bars import build_bars
from .daily_regime import DAILY_BAR_SCHEMA, daily_bar
from .book_summary import DEPTH_FLOW_DESCRIPTIONS, book_1s, book_1s_column_descriptions, depth_flow_1m, validate_silver_book_1s, validate_silver_depth_flow_1m
from .feature_names import FEATURE_FAMILIES, all_feature_columns, family_columns
from .labels import label_outcomes
from .level_state import OptionsInputs, OrderFlowInputs, compute_level_state
from .levels import compute_levels, levels_summary
from .schemas import (
    column_descriptions,
    validate_silver_bars,
    validate_silver_level_state,
    validate_silver_levels,
    validate_silver_outcomes,
)

TIER = "silver"
_OHLC = ["open", "high", "low", "close"]


def warmup_bars(lake: Lake, day: date, instrument_id: int, config: SpymasterConfig, catalog: RawCatalog | None = None) -> tuple[pl.DataFrame | None, str]:
    """The previous session's front-month 1-minute bars (bronze_futures_ohlcv_1m columns) when the
    calendar's previous session traded the same contract, else None; and where they came from, for
    metadata. silver_bars and the trader's screen warm their indicators with them.

    The previous session is the calendar's (``sessions.trading_sessions``), never "the latest one in
    the lake": its bars come from its bronze partition when written, else, given ``catalog``, from
    the raw files (the bronze ingest in memory, nothing written) when they hold its regular hours.
    So silver_bars is a function of the raw files whatever order sessions were backfilled in.
    Raises RawDataError (naming the file) when the previous session's raw files are unreadable.
    """
    calendar = trading_sessions(day - timedelta(days=14), day, config)
    if len(calendar) < 2 or calendar[-1] != day:
        return None, "none (no calendar session before it)"
    prev = calendar[-2]
    found = _earlier_session_bars(lake, prev, config, catalog)
    if found is None:
        return None, f"none (no bars of the previous session {prev})"
    _, read, source = found
    bars = read()
    if bars.height == 0 or int(bars["instrument_id"][0]) != instrument_id:
        return None, f"none ({prev} traded another contract: roll)"
    return bars, source


def _earlier_session_bars(lake: Lake, session: date, config: SpymasterConfig, catalog: RawCatalog | None) -> tuple[list, Callable[[], pl.DataFrame], str] | None:
    """Where an earlier session's front-month 1-minute bars (bronze_futures_ohlcv_1m columns) come from:
    its bronze partition when written, else (given ``catalog``) the raw files when they hold its
    regular hours (the bronze ingest in memory, nothing written); None when neither. Returns (the
    files read, a reader, the source for metadata). The reader raises RawDataError (naming the file)
    on unreadable raw files."""
    if lake.exists("bronze", "bronze_futures_ohlcv_1m", session):
        path = lake.partition_path("bronze", "bronze_futures_ohlcv_1m", session)
        return [path], lambda: lake.read("bronze", "bronze_futures_ohlcv_1m", session), str(session)
    if catalog is not None and sessions_with_rth_data(catalog, config, session, session):
        start, end = session_bounds_utc(session, config)
        files = [f.path for f in catalog.files_for_window("ohlcv-1m", start, end)]
        return files, lambda: session_ohlcv_1m(catalog, session, session_definitions(catalog, session, config)[0], config).bars, f"{session} (raw files)"
    return None


#: Daily bars by the files they were read from: a range's sessions share most of their trailing
#: year, so each earlier session is summarised once per process.
_DAILY_BARS: FileMemo[pl.DataFrame] = FileMemo()


def daily_history(lake: Lake, day: date, config: SpymasterConfig, catalog: RawCatalog | None = None) -> pl.DataFrame:
    """The daily bars (``daily_regime.daily_bar``) of the calendar's sessions before ``day`` that the
    ``atr_regime`` block reads: the last ``daily_atr_sessions + atr_regime_sessions - 1``, in date
    order, a session without bars left out.

    Like :func:`warmup_bars`, the sessions are the calendar's, each read from its
    bronze_futures_ohlcv_1m partition when written, else (given ``catalog``) from the raw files, so
    the block is a function of the raw files whatever order sessions were backfilled in. Raises
    RawDataError (naming the file) when an earlier session's raw files are unreadable.
    """
    wanted = config.daily_atr_sessions + config.atr_regime_sessions - 1
    calendar = trading_sessions(day - timedelta(days=2 * wanted + 30), day, config)
    earlier = [d for d in calendar if d < day][-wanted:]
    frames = []
    for session in earlier:
        found = _earlier_session_bars(lake, session, config, catalog)
        if found is not None:
            files, read, _ = found
            frames.append(_DAILY_BARS.get(files, lambda: daily_bar(read()), tag=session))  # noqa: B023 (called at once)
    _DAILY_BARS.retain_used()
    return pl.concat(frames) if frames else pl.DataFrame(schema=DAILY_BAR_SCHEMA)


@session_asset(
    parallel=True,
    group_name="silver",
    deps=[AssetDep(bronze_futures_ohlcv_1m, partition_mapping=WITH_PREVIOUS_SESSION)],
)
def silver_bars(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """1- and 2-minute bars over the whole Globex session with ATR, SMA_90 and EMA_20 on the 2-minute bars, one row per bar."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    ohlcv = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
    instrument = int(ohlcv["instrument_id"][0]) if ohlcv.height else -1
    warmup, warmup_source = warmup_bars(lake, day, instrument, cfg, spymaster.catalog)
    tick, mismatch = tick_size_and_mismatch(lake, day, instrument, cfg)
    if mismatch:
        context.log.warning(f"silver_bars {day}: {mismatch}")
    bars = validate_silver_bars(build_bars(ohlcv, day, cfg, warmup_1m=warmup))
    path = lake.write(TIER, "silver_bars", day, bars)
    two = bars.filter(pl.col("bar_minutes") == cfg.level_bar_minutes)
    return MaterializeResult(
        metadata=table_metadata(
            bars,
            path,
            cfg,
            column_descriptions["silver_bars"],
            {"bronze_futures_ohlcv_1m": {**same_columns(_OHLC + ["volume", "ts_event"]), "atr_points": _OHLC, "sma_90": ["close"], "ema_20": ["close"]}},
            warmup_source=warmup_source,
            tick_size=tick,
            bars_1m=bars.height - two.height,
            bars_2m=two.height,
            rth_bars_2m=int(two["is_rth"].sum()),
            atr_points_median_rth=float(two.filter(pl.col("is_rth"))["atr_points"].median() or float("nan")),
        )
    )


@session_asset(parallel=True, group_name="silver", deps=[silver_bars])
def silver_levels(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """The six level prices (PM high/low, OR high/low, SMA_90, EMA_20) as known at each 2-minute bar close, one row per (bar close, level kind)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    levels = validate_silver_levels(compute_levels(lake.read(TIER, "silver_bars", day), day, cfg))
    path = lake.write(TIER, "silver_levels", day, levels)
    summary = levels_summary(levels)
    return MaterializeResult(
        metadata=table_metadata(
            levels,
            path,
            cfg,
            column_descriptions["silver_levels"],
            {"silver_bars": {"level_price": ["high", "low", "sma_90", "ema_20"], "ts_event": ["ts_close"]}},
            **{f"levels/{k}": v for k, v in summary.items()},
        )
    )


def _book_source(spymaster: SpymasterResource, day: date) -> tuple[str | None, int]:
    """The bronze table the book summary is built from: the 10-level book when it has rows, else the top of book."""
    for table in ("bronze_futures_mbp10", "bronze_futures_bbo"):
        rows = spymaster.lake.row_count("bronze", table, day)
        if rows:
            return table, rows
    return None, 0


@session_asset(parallel=True, group_name="silver", deps=["bronze_futures_mbp10", "bronze_futures_bbo"])
def silver_book_1s(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """The order book each second: 10-level (or top-of-book) state at the second's end and the order-flow imbalance within it, one row per active second."""
    if (absent := absent_partition(context, spymaster, "silver_book_1s")) is not None:
        return absent
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    source, rows = _book_source(spymaster, day)
    levels = [f"{side}_{kind}_{i:02d}" for side in ("bid", "ask") for kind in ("px", "sz") for i in range(cfg.book_levels)]
    batches = lake.iter_batches("bronze", source, day, columns=["ts_event", "source", "book_ok", "flags", *levels]) if source else iter(())
    counts: dict[str, int] = {}
    frame = validate_silver_book_1s(book_1s(batches, day, cfg, counts), cfg)
    path = lake.write(TIER, "silver_book_1s", day, frame)
    if source is None:
        context.log.info(f"silver_book_1s {day}: no top-of-book or depth data; the book families are absent for this session")
    lineage_columns = ["bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00"]
    return MaterializeResult(
        metadata=table_metadata(
            frame,
            path,
            cfg,
            book_1s_column_descriptions(cfg),
            {source: {c: [c] for c in lineage_columns} | {"ofi_best": lineage_columns}} if source else None,
            source_table=source or "none",
            source_rows=rows,
            **{f"rows/{k}": int(v) for k, v in counts.items()},
        )
    )


@session_asset(parallel=True, group_name="silver", deps=["bronze_futures_mbp10"])
def silver_depth_flow_1m(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Size added, cancelled and filled per minute, side and price, from MBO (empty without MBO), one row per (minute, side, price)."""
    if (absent := absent_partition(context, spymaster, "silver_depth_flow_1m")) is not None:
        return absent
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    has_rows = lake.row_count("bronze", "bronze_futures_mbp10", day) > 0
    columns = ["ts_event", "source", "action", "side", "price", "size", "flags", "book_ok", "prev_price", "prev_size"]
    batches = lake.iter_batches("bronze", "bronze_futures_mbp10", day, columns=columns) if has_rows else iter(())
    counts: dict[str, int] = {}
    frame = validate_silver_depth_flow_1m(depth_flow_1m(batches, day, cfg, counts))
    path = lake.write(TIER, "silver_depth_flow_1m", day, frame)
    return MaterializeResult(
        metadata=table_metadata(
            frame,
            path,
            cfg,
            DEPTH_FLOW_DESCRIPTIONS,
            {"bronze_futures_mbp10": {c: ["action", "size"] for c in ("added_size", "cancelled_size", "filled_size")} | same_columns(["side", "price"])},
            source="mbo" if has_rows and frame.height else "none (no MBO-sourced book: the mbo family is absent)",
            **{f"rows/{k}": int(v) for k, v in counts.items()},
        )
    )


def _tick_size(lake: Lake, day: date, instrument_id: int, config: SpymasterConfig) -> float:
    """The front month's min_price_increment from bronze_definitions, else the config's tick_size_points."""
    return tick_size_and_mismatch(lake, day, instrument_id, config)[0]


def tick_size_and_mismatch(lake: Lake, day: date, instrument_id: int, config: SpymasterConfig) -> tuple[float, str | None]:
    """The session's tick size (price units) and, when the Databento definitions and the product
    table disagree, one line saying so (the definitions win; DESIGN.md "Products").

    The tick is the front month's ``min_price_increment`` from bronze_definitions when they carry
    it, else the product table's (``config.tick_size_points``, from ``product_table`` in
    config.json when overridden there).
    """
    if instrument_id >= 0 and lake.exists("bronze", "bronze_definitions", day):
        defs = lake.read("bronze", "bronze_definitions", day).filter(pl.col("instrument_id") == instrument_id)
        if defs.height and defs["min_price_increment"][0] is not None:
            tick = float(defs["min_price_increment"][0])
            if abs(tick - config.tick_size_points) > 1e-12:
                overridden = any(symbol == config.product and "tick_size" in dict(fields) for symbol, fields in config.product_table)
                source = f"{Path(config.home) / CONFIG_FILE}: product_table.{config.product}.tick_size" if overridden else f"the product table's {config.product} tick_size"
                return tick, (
                    f"{source} {config.tick_size_points:g} disagrees with the definitions' min_price_increment {tick:g} of "
                    f"{defs['raw_symbol'][0]} on {day}: the definitions win"
                )
            return tick, None
    return config.tick_size_points, None


def order_flow_inputs(lake: Lake, day: date, config: SpymasterConfig) -> OrderFlowInputs:
    """The session's trades, book summary and MBO depth flow from the lake, as silver_level_state reads
    them (the trader's screen passes them to its engine bar by bar). An absent partition (no such data
    in raw/: ``availability``) is the empty table its asset would have built, so a session reads the same either way."""
    ohlcv = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
    instrument = int(ohlcv["instrument_id"][0]) if ohlcv.height else -1
    tape = ["ts_event", "price", "size", "side"]
    if lake.exists("bronze", "bronze_futures_trades", day):
        trades = lake.scan("bronze", "bronze_futures_trades", day).select(tape).collect()
    else:
        trades = pl.DataFrame(schema={c: TRADES_SCHEMA[c] for c in tape})
    book = lake.read(TIER, "silver_book_1s", day) if lake.exists(TIER, "silver_book_1s", day) else _empty_book_1s(config)
    depth = lake.read(TIER, "silver_depth_flow_1m", day) if lake.exists(TIER, "silver_depth_flow_1m", day) else _empty_depth_flow_1m(config)
    return OrderFlowInputs(trades=trades, book_1s=book, depth_flow_1m=depth, tick_size=_tick_size(lake, day, instrument, config))


@functools.lru_cache(maxsize=8)
def _empty_book_1s(config: SpymasterConfig) -> pl.DataFrame:
    """The silver_book_1s table of a session without book data (no rows, so no day in it), validated
    once per configuration: a bars-only decade would otherwise check the same empty table 2,520 times."""
    return validate_silver_book_1s(book_1s(iter(()), date(2000, 1, 3), config, {}), config)


@functools.lru_cache(maxsize=8)
def _empty_depth_flow_1m(config: SpymasterConfig) -> pl.DataFrame:
    """The silver_depth_flow_1m table of a session without MBO data (no rows), validated once per configuration."""
    return validate_silver_depth_flow_1m(depth_flow_1m(iter(()), date(2000, 1, 3), config, {}))


def options_inputs(lake: Lake, day: date) -> OptionsInputs:
    """The session's 0DTE chain, open interest, option quotes and trades from the lake (None where a partition is absent)."""

    def optional(table: str) -> pl.DataFrame | None:
        return lake.read("bronze", table, day) if lake.exists("bronze", table, day) else None

    return OptionsInputs(
        chain=optional("bronze_options_definitions"),
        open_interest=optional("bronze_options_open_interest"),
        bbo=optional("bronze_options_bbo"),
        trades=optional("bronze_options_trades"),
    )


_OPTIONS_TABLES = ["bronze_options_definitions", "bronze_options_open_interest", "bronze_options_bbo", "bronze_options_trades"]


@session_asset(
    parallel=True,
    group_name="silver",
    deps=[
        silver_bars, silver_levels, "bronze_futures_trades", silver_book_1s, silver_depth_flow_1m, *_OPTIONS_TABLES,
        AssetDep(bronze_futures_ohlcv_1m, partition_mapping=WITH_PREVIOUS_SESSION),
    ],
)
def silver_level_state(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Level-relative features at each anchor bar (2-minute close, 09:30-12:30 ET), with the order-flow and dealer-gamma families the session has data for, one row per (anchor, known level kind)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    bars = lake.read(TIER, "silver_bars", day)
    flow = order_flow_inputs(lake, day, cfg)
    options = options_inputs(lake, day)
    previous = None
    if "prior_session" in cfg.chart_blocks:  # the previous session's regular hours, as silver_bars warms up with
        ohlcv = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
        previous, _ = warmup_bars(lake, day, int(ohlcv["instrument_id"][0]) if ohlcv.height else -1, cfg, spymaster.catalog)
    daily = daily_history(lake, day, cfg, spymaster.catalog) if "atr_regime" in cfg.chart_blocks else None  # the trailing year's daily bars
    state = validate_silver_level_state(compute_level_state(bars, lake.read(TIER, "silver_levels", day), day, cfg, flow, options, previous, daily), cfg)
    path = lake.write(TIER, "silver_level_state", day, state)
    features = family_columns("bars", cfg)
    families = state["feature_families"].unique().to_list()
    present = set(families[0].split("+")) if families else {"bars"}
    lineage = {
        "silver_bars": {c: ["close", "atr_points", "high", "low", "volume"] for c in features} | same_columns(["close", "atr_points"]),
        "silver_levels": {c: ["level_price"] for c in ["level_price", "distance_atr", *features]},
        "bronze_futures_trades": {c: ["ts_event", "price", "size", "side"] for c in family_columns("tape", cfg)},
        "silver_book_1s": {c: ["bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00", "ofi_best"] for c in family_columns("book", cfg)}
        | {c: ["bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00", "ofi_level_00"] for c in family_columns("depth", cfg)},
        "silver_depth_flow_1m": {c: ["added_size", "cancelled_size", "filled_size", "price", "side"] for c in family_columns("mbo", cfg)},
        "bronze_options_open_interest": {c: ["open_interest"] for c in family_columns("gamma", cfg)},
        "bronze_options_bbo": {c: ["bid_px_00", "ask_px_00"] for c in family_columns("gamma", cfg)},
        "bronze_options_trades": {"dealer_gamma_traded_since_open": ["price", "size", "side"]},
        "bronze_options_definitions": {c: ["strike_price", "expiration", "instrument_class"] for c in family_columns("gamma", cfg)},
    }
    return MaterializeResult(
        metadata=table_metadata(
            state,
            path,
            cfg,
            column_descriptions["silver_level_state"],
            lineage,
            anchors=state["ts_event"].n_unique(),
            in_zone_rows=int(state["in_zone"].sum()),
            feature_families=", ".join(families) or "none",
            **{f"family/{f}": f in present for f in FEATURE_FAMILIES},
            vector_dims_present=sum(len(family_columns(f, cfg)) for f in FEATURE_FAMILIES if f in present),
            vector_dims_total=len(all_feature_columns(cfg)),
            tick_size_points=flow.tick_size,
            options_chain_size=options.chain.height if options.chain is not None else 0,
        )
    )


@session_asset(parallel=True, group_name="silver", deps=[silver_bars, silver_level_state, "bronze_futures_trades"])
def silver_outcomes(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """What happened after each anchor: BREAK / REJECT / CHOP by first crossing within the horizon, one row per (anchor, level kind)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    trades = None
    if lake.row_count("bronze", "bronze_futures_trades", day):
        trades = lake.scan("bronze", "bronze_futures_trades", day).select("ts_event", "price").collect()
    outcomes = validate_silver_outcomes(label_outcomes(lake.read(TIER, "silver_bars", day), lake.read(TIER, "silver_level_state", day), cfg, trades))
    path = lake.write(TIER, "silver_outcomes", day, outcomes)
    counts = dict(outcomes.group_by("outcome").len().iter_rows())
    return MaterializeResult(
        metadata=table_metadata(
            outcomes,
            path,
            cfg,
            column_descriptions["silver_outcomes"],
            {
                "silver_level_state": same_columns(["ts_event", "level_kind", "direction", "level_price", "atr_points"]) | {"anchor_close": ["close"]},
                "silver_bars": {c: ["high", "low", "open", "ts_close"] for c in ["outcome", "first_event_ts", "time_to_event_s", "mfe_atr", "mae_atr", "ambiguous"]},
            },
            **{f"outcomes/{k}": int(v) for k, v in counts.items()},
            ambiguous=int(outcomes["ambiguous"].sum()),
            ambiguous_resolved_by_trades=int(outcomes["resolved_by_trades"].sum()),
            horizon_incomplete=int((~outcomes["horizon_complete"]).sum()),
        )
    )
