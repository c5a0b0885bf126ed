"""Silver assets (Dagster wiring only): bars, levels, level-relative state and outcome labels per session."""


from datetime import date

import polars as pl
from dagster import AssetDep, AssetExecutionContext, MaterializeResult, asset

from spymaster_resources import SpymasterResource

from ..bronze.assets import bronze_futures_ohlcv_1m
from ..partitions import WITH_PREVIOUS_SESSION, session_of_partition_key, trading_day_partitions
from ..sessions import trading_sessions
from ..table_metadata import same_columns, table_metadata
from .bars import build_bars
from .feature_names import bars_feature_columns
from .labels import label_outcomes
from .level_state import compute_level_state
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


def _warmup_bars(spymaster: SpymasterResource, day: date, instrument_id: int) -> tuple[pl.DataFrame | None, str]:
    """The previous session's front-month bars when that session is the calendar's previous one and the contract is the same."""
    lake = spymaster.lake
    before = lake.dates_before("bronze", "bronze_futures_ohlcv_1m", day, limit=1)
    if not before:
        return None, "none (no earlier session in the lake)"
    prev = before[0]
    expected = trading_sessions(prev, day)
    if len(expected) != 2:
        return None, f"none ({prev} is not the session before {day})"
    bars = lake.read("bronze", "bronze_futures_ohlcv_1m", prev)
    if bars.height == 0 or int(bars["instrument_id"][0]) != instrument_id:
        return None, f"none ({prev} traded another contract: roll)"
    return bars, str(prev)


@asset(
    partitions_def=trading_day_partitions,
    group_name="silver",
    deps=[AssetDep(bronze_futures_ohlcv_1m, partition_mapping=WITH_PREVIOUS_SESSION)],
)
def silver_bars(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """1- and 2-minute bars over the whole Globex session with ATR, SMA_90 and EMA_20 on the 2-minute bars, one row per bar."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    ohlcv = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
    instrument = int(ohlcv["instrument_id"][0]) if ohlcv.height else -1
    warmup, warmup_source = _warmup_bars(spymaster, day, instrument)
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
            bars_1m=bars.height - two.height,
            bars_2m=two.height,
            rth_bars_2m=int(two["is_rth"].sum()),
            atr_points_median_rth=float(two.filter(pl.col("is_rth"))["atr_points"].median() or float("nan")),
        )
    )


@asset(partitions_def=trading_day_partitions, group_name="silver", deps=[silver_bars])
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


@asset(partitions_def=trading_day_partitions, group_name="silver", deps=[silver_bars, silver_levels])
def silver_level_state(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Level-relative features at each anchor bar (2-minute close, 09:30-12:30 ET), one row per (anchor, known level kind)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    bars = lake.read(TIER, "silver_bars", day)
    state = validate_silver_level_state(compute_level_state(bars, lake.read(TIER, "silver_levels", day), day, cfg), cfg)
    path = lake.write(TIER, "silver_level_state", day, state)
    features = bars_feature_columns(cfg)
    return MaterializeResult(
        metadata=table_metadata(
            state,
            path,
            cfg,
            column_descriptions["silver_level_state"],
            {
                "silver_bars": {c: ["close", "atr_points", "high", "low", "volume"] for c in features} | same_columns(["close", "atr_points"]),
                "silver_levels": {c: ["level_price"] for c in ["level_price", "distance_atr", *features]},
            },
            anchors=state["ts_event"].n_unique(),
            in_zone_rows=int(state["in_zone"].sum()),
        )
    )


@asset(partitions_def=trading_day_partitions, group_name="silver", deps=[silver_bars, silver_level_state])
def silver_outcomes(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """What happened after each anchor: BREAK / REJECT / CHOP by first crossing within the horizon, one row per (anchor, level kind)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    outcomes = validate_silver_outcomes(label_outcomes(lake.read(TIER, "silver_bars", day), lake.read(TIER, "silver_level_state", day), cfg))
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
            horizon_incomplete=int((~outcomes["horizon_complete"]).sum()),
        )
    )
