"""pandera.polars schemas of the four silver tables, their validators, and column descriptions for the UI.

Schemas are strict: an unexpected or missing column, or a wrong dtype, is an error. The level-state
schema is built from ``feature_names`` so it follows the vector contract for a given configuration.
"""

from __future__ import annotations

import functools
import re

import pandera.polars as pa
import polars as pl
from pandera.api.polars.model_config import BaseConfig
from pandera.api.polars.types import PolarsData
from pandera.engines.polars_engine import DateTime

from spymaster_core.config import DIRECTIONS, LEVEL_KINDS, OUTCOMES, SpymasterConfig
from ..schema_validation import validate_table
from .feature_names import all_feature_columns
from .level_state import integer_feature_columns

UTC_NS = DateTime(time_zone="UTC", time_unit="ns")


class _StrictConfig(BaseConfig):
    strict = True
    ordered = False


class SilverBars(pa.DataFrameModel):
    """silver_bars: one row per (bar_minutes, bar) of a session."""

    session_date: pl.Date
    bar_minutes: pl.Int8 = pa.Field(isin=[1, 2])
    ts_event: UTC_NS
    ts_close: UTC_NS
    open: pl.Float64
    high: pl.Float64
    low: pl.Float64
    close: pl.Float64
    volume: pl.Int64 = pa.Field(ge=0)
    atr_points: pl.Float64 = pa.Field(nullable=True, ge=0)
    sma_90: pl.Float64 = pa.Field(nullable=True)
    ema_20: pl.Float64 = pa.Field(nullable=True)
    is_rth: pl.Boolean
    indicators_warm: pl.Boolean

    class Config(_StrictConfig):
        name = "silver_bars"
        unique = ["bar_minutes", "ts_event"]

    @pa.dataframe_check
    def high_low_contain_open_close(cls, data: PolarsData) -> pl.LazyFrame:
        """low <= min(open, close) and high >= max(open, close)."""
        return data.lazyframe.select(
            (pl.col("high") >= pl.col("low"))
            & (pl.col("high") >= pl.max_horizontal("open", "close"))
            & (pl.col("low") <= pl.min_horizontal("open", "close"))
        )

    @pa.dataframe_check
    def close_after_open(cls, data: PolarsData) -> pl.LazyFrame:
        """ts_close = ts_event + bar_minutes."""
        return data.lazyframe.select(
            (pl.col("ts_close") - pl.col("ts_event")).dt.total_minutes() == pl.col("bar_minutes").cast(pl.Int64)
        )

    @pa.dataframe_check
    def indicators_only_on_level_bars(cls, data: PolarsData) -> pl.LazyFrame:
        """ATR, SMA and EMA are null on 1-minute rows."""
        return data.lazyframe.select(
            (pl.col("bar_minutes") != 1)
            | pl.all_horizontal(pl.col("atr_points", "sma_90", "ema_20").is_null())
        )


class SilverLevels(pa.DataFrameModel):
    """silver_levels: one row per (2-minute bar close, level kind known then)."""

    session_date: pl.Date
    ts_event: UTC_NS
    level_kind: pl.Utf8 = pa.Field(isin=list(LEVEL_KINDS))
    level_price: pl.Float64

    class Config(_StrictConfig):
        name = "silver_levels"
        unique = ["ts_event", "level_kind"]


class SilverLevelState(pa.DataFrameModel):
    """silver_level_state identity columns; :func:`silver_level_state_schema` adds the feature columns."""

    session_date: pl.Date
    ts_event: UTC_NS
    level_kind: pl.Utf8 = pa.Field(isin=list(LEVEL_KINDS))
    level_price: pl.Float64
    close: pl.Float64
    atr_points: pl.Float64 = pa.Field(gt=0)
    direction: pl.Utf8 = pa.Field(isin=list(DIRECTIONS))
    in_zone: pl.Boolean
    time_bucket: pl.Utf8 = pa.Field(nullable=True)
    feature_families: pl.Utf8 = pa.Field(str_startswith="bars")

    class Config(_StrictConfig):
        name = "silver_level_state"
        unique = ["ts_event", "level_kind"]

    @pa.dataframe_check
    def direction_matches_side(cls, data: PolarsData) -> pl.LazyFrame:
        """UP exactly when close < level."""
        return data.lazyframe.select((pl.col("direction") == DIRECTIONS[0]) == (pl.col("close") < pl.col("level_price")))


class SilverOutcomes(pa.DataFrameModel):
    """silver_outcomes: one row per level-state row with its first-crossing outcome."""

    session_date: pl.Date
    ts_event: UTC_NS
    level_kind: pl.Utf8 = pa.Field(isin=list(LEVEL_KINDS))
    direction: pl.Utf8 = pa.Field(isin=list(DIRECTIONS))
    level_price: pl.Float64
    anchor_close: pl.Float64
    atr_points: pl.Float64 = pa.Field(gt=0)
    outcome: pl.Utf8 = pa.Field(isin=list(OUTCOMES))
    first_event_ts: UTC_NS = pa.Field(nullable=True)
    time_to_event_s: pl.Float64 = pa.Field(nullable=True, ge=0)
    mfe_atr: pl.Float64 = pa.Field(ge=0)
    mae_atr: pl.Float64 = pa.Field(ge=0)
    ambiguous: pl.Boolean
    resolved_by_trades: pl.Boolean
    horizon_complete: pl.Boolean

    class Config(_StrictConfig):
        name = "silver_outcomes"
        unique = ["ts_event", "level_kind"]

    @pa.dataframe_check
    def event_time_iff_decided(cls, data: PolarsData) -> pl.LazyFrame:
        """first_event_ts and time_to_event_s are null exactly for CHOP."""
        chop = pl.col("outcome") == "CHOP"
        return data.lazyframe.select(
            (chop == pl.col("first_event_ts").is_null()) & (chop == pl.col("time_to_event_s").is_null())
        )


def silver_level_state_schema(config: SpymasterConfig) -> pa.DataFrameSchema:
    """Strict schema of silver_level_state for ``config``: identity columns plus every family's feature column.

    Counts (stack_count_*, touches_today) are Int32 >= 0, every other feature is nullable Float64;
    distance_atr and minutes_since_open are never null; time_bucket is one of the config's labels.
    """
    return _level_state_schema(tuple(all_feature_columns(config)), frozenset(integer_feature_columns(config)), tuple(config.time_bucket_labels))


@functools.lru_cache(maxsize=16)
def _level_state_schema(feature_columns: tuple[str, ...], integer_columns: frozenset[str], time_bucket_labels: tuple[str, ...]) -> pa.DataFrameSchema:
    # Built once per layout: building it (the model's schema copied, ~200 columns added) costs more
    # than validating a session's rows.
    features: dict[str, pa.Column] = {}
    for name in feature_columns:
        if name in integer_columns:
            features[name] = pa.Column(pl.Int32, checks=pa.Check.ge(0))
        else:
            features[name] = pa.Column(pl.Float64, nullable=name not in ("distance_atr", "minutes_since_open"))
    return SilverLevelState.to_schema().add_columns(features).update_column("time_bucket", checks=[pa.Check.isin(list(time_bucket_labels))])


def validate_silver_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Validate a silver_bars frame; returns it, or raises SchemaError whose message starts with "silver_bars:"."""
    return validate_table(SilverBars.to_schema(), frame, "silver_bars")


def validate_silver_levels(frame: pl.DataFrame) -> pl.DataFrame:
    """Validate a silver_levels frame; returns it, or raises SchemaError whose message starts with "silver_levels:"."""
    return validate_table(SilverLevels.to_schema(), frame, "silver_levels")


def validate_silver_level_state(frame: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Validate a silver_level_state frame for ``config``; raises SchemaError starting with "silver_level_state:"."""
    return validate_table(silver_level_state_schema(config), frame, "silver_level_state")


def validate_silver_outcomes(frame: pl.DataFrame) -> pl.DataFrame:
    """Validate a silver_outcomes frame; returns it, or raises SchemaError whose message starts with "silver_outcomes:"."""
    return validate_table(SilverOutcomes.to_schema(), frame, "silver_outcomes")


def _feature_description(name: str) -> str:
    """Description (with units) of a bars-only feature column, from its name pattern."""
    patterns = (
        (r"distance_atr", "Signed distance (close - level) / ATR, in ATR."),
        (r"traj_d_dct_(\d+)", "Orthonormal DCT-II coefficient {0} of the last trajectory_minutes of d (ATR) at 1-minute closes."),
        (r"traj_logvol_dct_(\d+)", "Orthonormal DCT-II coefficient {0} of log1p(1-minute volume in contracts) over the trajectory window."),
        (r"d_velocity_(\d+)m", "(d_T - d_T-{0}m) / {0}, in ATR per minute."),
        (r"d_acceleration_(\d+)m", "Second backward difference of d over {0}-minute steps, in ATR per minute^2."),
        (r"d_jerk_(\d+)m", "Third backward difference of d over {0}-minute steps, in ATR per minute^3."),
        (r"minutes_since_open", "Minutes from the RTH open (09:30 ET) to the anchor."),
        (r"dist_atr_(\w+)", "(close - {0} level) / ATR, in ATR; null for the row's own kind or when {0} is unknown."),
        (r"stack_count_(\w+)atr", "Number of other known levels within {0} ATR of this level (p = decimal point)."),
        (r"touches_today", "2-minute bars since the level became known whose [low, high] contained the level."),
        (r"minutes_since_last_touch", "Minutes from the last touching 2-minute bar close to the anchor; null if none."),
        (r"or_width_atr", "(OR_HIGH - OR_LOW) / ATR; null before the opening range is known."),
        (r"vwap_rth_dist_atr", "(close - VWAP of the bars since the regular open) / ATR, in ATR (chart block vwap)."),
        (r"vwap_session_dist_atr", "(close - VWAP of the bars since the Globex open) / ATR, in ATR (chart block vwap)."),
        (r"overnight_range_atr", "(high - low of the bars before the regular open) / ATR, in ATR (chart block ranges)."),
        (r"day_range_atr", "(high - low of the regular-hours bars up to T) / ATR, in ATR (chart block ranges)."),
        (r"round_(\w+)_dist_atr", "|level - nearest multiple of the {0}-point handle (ES points, scaled by the tick)| / ATR (chart block round_numbers)."),
        (r"minutes_since_level_set", "Minutes from the close of the bar that made the level's price to T; null for SMA/EMA (chart block level_age)."),
        (r"prev_rth_(high|low|close)_dist_atr", "(close - the previous session's regular-hours {0}) / ATR, in ATR (chart block prior_session)."),
        (r"open_gap_atr", "(first regular-hours open - previous regular-hours close) / ATR, in ATR, from the open on (chart block prior_session)."),
        (r"daily_atr_atr", "14-session daily ATR (Wilder's true range, simple mean, earlier sessions) / the anchor's 2-minute ATR (chart block atr_regime)."),
        (r"daily_atr_pct_1y", "Percentile rank in (0, 1] of the daily ATR among the trailing 252 sessions' (chart block atr_regime)."),
        (r"tape_(buy|sell)_volume_(\d+)s", "Contracts bought (buy) / sold (sell) by aggressors in the {1} s up to T."),
        (r"tape_imbalance_(\d+)s", "(buy - sell) / (buy + sell) aggressor volume over {0} s; 0 when no aggressor volume."),
        (r"tape_trade_rate_(\d+)s", "Trades per second over the {0} s up to T."),
        (r"tape_level_volume_(\d+)s", "Contracts traded within +-level_band_ticks[0] ticks of the level over {0} s."),
        (r"tape_(buy|sell)_sweeps_(\d+)s", "Sweeps by {0} aggressors (same-side trades through >= 3 prices within 100 ms) ending in the {1} s up to T."),
        (r"traj_trade_imbalance_dct_(\d+)", "Orthonormal DCT-II coefficient {0} of the 1-minute trade imbalance over the trajectory window."),
        (r"book_imbalance", "(bid_sz_00 - ask_sz_00) / (bid_sz_00 + ask_sz_00) at T."),
        (r"microprice_offset_ticks", "Microprice minus mid at T, in ticks."),
        (r"microprice_dist_atr", "(microprice - level) / ATR at T."),
        (r"spread_ticks", "ask_px_00 - bid_px_00 at T, in ticks."),
        (r"ofi_(\d+)s", "Cont-Kukanov-Stoikov best-level order-flow imbalance over {0} s / mean best-level depth (dimensionless)."),
        (r"traj_ofi_dct_(\d+)", "Orthonormal DCT-II coefficient {0} of the 1-minute best-level OFI (scaled by mean depth)."),
        (r"mlofi_(\d+)s", "Multi-level (10-level) OFI over {0} s / mean depth per level (Xu, Gould & Howison 2018)."),
        (r"depth_(\d+)t", "Contracts resting within +-{0} ticks of the level on the defending side (ask if UP, bid if DOWN) at T."),
        (r"depth_(\d+)t_change_(\d+)m", "depth_{0}t at T minus at T - {1} min, contracts."),
        (r"wall_ratio_(\d+)t", "depth_{0}t / mean size per level of the defending side's 10 levels."),
        (r"traj_depth_dct_(\d+)", "Orthonormal DCT-II coefficient {0} of log1p(depth at the level) sampled each minute."),
        (r"repl_(added|cancelled|filled)_(\d+)t_(\d+)m", "Contracts {0} within +-{1} ticks of the level on the defending side over {2} min (MBO)."),
        (r"replenishment_ratio_(\d+)t_(\d+)m", "Added / (cancelled + filled) within +-{0} ticks of the level over {1} min; null when nothing was removed."),
    )
    for pattern, text in patterns:
        match = re.fullmatch(pattern, name)
        if match:
            return text.format(*match.groups())
    return name


def level_state_column_descriptions(config: SpymasterConfig) -> dict[str, str]:
    """Column -> description (with units) of silver_level_state for ``config``."""
    keys = {
        "session_date": "CME Globex trade date of the session.",
        "ts_event": "Anchor T: close instant of the 2-minute bar (UTC).",
        "level_kind": f"Level kind, one of {', '.join(LEVEL_KINDS)}.",
        "level_price": "Level price known at T, in index points.",
        "close": "Close of the 2-minute bar ending at T, in index points.",
        "atr_points": "14-period Wilder ATR of 2-minute bars at T, in index points.",
        "direction": "UP when close < level (testing resistance from below), else DOWN.",
        "in_zone": "|distance_atr| <= approach_zone_atr: the row is a setup (episode).",
        "time_bucket": "Minutes-since-open bucket (lo, hi], e.g. 0-15.",
        "feature_families": "Feature families computed for the row (bars, tape, book, depth, mbo) joined by +; the others are null.",
    }
    return keys | {name: _feature_description(name) for name in all_feature_columns(config)}


#: Table -> column -> description with units, for dagster/column_schema metadata and the UI.
column_descriptions: dict[str, dict[str, str]] = {
    "silver_bars": {
        "session_date": "CME Globex trade date of the session.",
        "bar_minutes": "Bar length in minutes (1 or 2).",
        "ts_event": "Bar open instant (UTC); the bar covers [ts_event, ts_close).",
        "ts_close": "Bar close instant (UTC) = ts_event + bar_minutes.",
        "open": "First trade price, index points.",
        "high": "Highest trade price, index points.",
        "low": "Lowest trade price, index points.",
        "close": "Last trade price, index points.",
        "volume": "Traded volume, contracts.",
        "atr_points": "14-period Wilder ATR of 2-minute bars, index points (2-minute rows only).",
        "sma_90": "90-period simple moving average of 2-minute closes, index points (2-minute rows only).",
        "ema_20": "20-period EMA (alpha 2/21, SMA-seeded) of 2-minute closes, index points (2-minute rows only).",
        "is_rth": "Bar lies inside regular trading hours 09:30-16:00 ET.",
        "indicators_warm": "ATR, SMA and EMA are all defined at the latest 2-minute bar closed by this bar's close.",
    },
    "silver_levels": {
        "session_date": "CME Globex trade date of the session.",
        "ts_event": "2-minute bar close instant at which the level value is known (UTC).",
        "level_kind": f"Level kind, one of {', '.join(LEVEL_KINDS)}.",
        "level_price": "Level price, index points.",
    },
    "silver_level_state": level_state_column_descriptions(SpymasterConfig()),
    "silver_outcomes": {
        "session_date": "CME Globex trade date of the session.",
        "ts_event": "Anchor T: close instant of the 2-minute bar (UTC).",
        "level_kind": f"Level kind, one of {', '.join(LEVEL_KINDS)}.",
        "direction": "Approach direction at T: UP (close below level) or DOWN.",
        "level_price": "Level price known at T, index points.",
        "anchor_close": "2-minute close at T, index points.",
        "atr_points": "ATR at T, index points.",
        "outcome": "First crossing within the horizon: BREAK, REJECT or CHOP.",
        "first_event_ts": "Close instant of the 1-minute bar that decided the outcome (UTC); null for CHOP.",
        "time_to_event_s": "Seconds from T to first_event_ts; null for CHOP.",
        "mfe_atr": "Maximum favourable excursion from the anchor close over the horizon, in ATR.",
        "mae_atr": "Maximum adverse excursion from the anchor close over the horizon, in ATR.",
        "ambiguous": "One 1-minute bar touched both thresholds.",
        "resolved_by_trades": "An ambiguous bar settled by the session's trades (the first trade through either threshold; first_event_ts is that trade's time); false: settled by the bar's open.",
        "horizon_complete": "The session's bars reach T + horizon; False means the label uses partial data.",
    },
}
