"""silver_level_state: one row per (anchor 2-minute bar close, known level kind) with level-relative features.

Point in time: every value in a row at anchor T is computed from bars whose close instant is at or
before T (``ts_event + bar length <= T``) and from levels known at T, so running the pipeline on
data truncated at T gives the same row (tests/silver/test_point_in_time.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
import scipy.fft

from spymaster_core.config import DIRECTIONS, LEVEL_KINDS, SpymasterConfig
from spymaster_core.units import NS_PER_MINUTE
from ..sessions import et_to_utc
from .feature_names import (
    all_feature_columns,
    distance_columns,
    families_label,
    kinematic_columns,
    stack_columns,
    trajectory_columns,
)
from .levels import level_known_from
from .chart_features import chart_features
from .gamma_features import gamma_features
from .order_flow_features import order_flow_features

TS_DTYPE = pl.Datetime("ns", "UTC")
#: Identity columns of silver_level_state, before the feature columns of feature_names.all_feature_columns.
STATE_KEY_COLUMNS = (
    "session_date",
    "ts_event",
    "level_kind",
    "level_price",
    "close",
    "atr_points",
    "direction",
    "in_zone",
    "time_bucket",
    "feature_families",
)
#: Feature columns stored as Int32 counts; every other feature column is Float64.
COUNT_FEATURE_COLUMNS = ("touches_today",)
_KIND_RANK = {kind: i for i, kind in enumerate(LEVEL_KINDS)}
_UP, _DOWN = DIRECTIONS


@dataclass(frozen=True)
class OrderFlowInputs:
    """The session's order-flow tables for the order-flow feature families (any may be None or empty).

    trades: bronze_futures_trades; book_1s: silver_book_1s; depth_flow_1m: silver_depth_flow_1m;
    tick_size: the front month's min_price_increment in points (0.25 for ES).
    """

    trades: pl.DataFrame | None
    book_1s: pl.DataFrame | None
    depth_flow_1m: pl.DataFrame | None
    tick_size: float


@dataclass(frozen=True)
class OptionsInputs:
    """The session's ES 0DTE options tables for the gamma family (any may be None or empty).

    chain: bronze_options_definitions; open_interest: bronze_options_open_interest; bbo:
    bronze_options_bbo; trades: bronze_options_trades.
    """

    chain: pl.DataFrame | None
    open_interest: pl.DataFrame | None
    bbo: pl.DataFrame | None
    trades: pl.DataFrame | None


def level_state_columns(config: SpymasterConfig) -> list[str]:
    """Column order of silver_level_state: identity columns, then every family's feature columns in vector order."""
    return list(STATE_KEY_COLUMNS) + all_feature_columns(config)


def integer_feature_columns(config: SpymasterConfig) -> list[str]:
    """Feature columns stored as Int32 (counts): stack counts and touches_today."""
    return stack_columns(config) + list(COUNT_FEATURE_COLUMNS)


def _close_at(close_times_ns: np.ndarray, closes: np.ndarray, query_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Last 1-minute close at or before each query instant (forward fill); also the index (-1 before the first bar)."""
    idx = np.searchsorted(close_times_ns, query_ns, side="right") - 1
    return closes[np.maximum(idx, 0)], idx


def _trajectory_and_kinematics(
    bars_1m: pl.DataFrame, state: pl.DataFrame, config: SpymasterConfig
) -> dict[str, np.ndarray]:
    """DCT-II trajectory coefficients and finite-difference kinematics of d, one value per state row (NaN = missing)."""
    close_times = bars_1m["ts_close"].dt.epoch("ns").to_numpy()
    closes = bars_1m["close"].to_numpy().astype(np.float64)
    volumes = bars_1m["volume"].to_numpy().astype(np.float64)
    anchor_ns = state["ts_event"].dt.epoch("ns").to_numpy()
    level = state["level_price"].to_numpy()[:, None]
    atr = state["atr_points"].to_numpy()[:, None]
    out: dict[str, np.ndarray] = {}

    # Trajectory: samples at the 1-minute closes T-(n-1) .. T min; before the first bar the index
    # clips to 0, which back-fills with the session's first close (and volume counts as 0 there).
    n = config.trajectory_minutes
    offsets = np.arange(n - 1, -1, -1, dtype=np.int64) * NS_PER_MINUTE
    sample_ns = anchor_ns[:, None] - offsets[None, :]
    close_s, idx = _close_at(close_times, closes, sample_ns)
    exact = (idx >= 0) & (close_times[np.maximum(idx, 0)] == sample_ns)
    volume_s = np.where(exact, volumes[np.maximum(idx, 0)], 0.0)
    d_series = (close_s - level) / atr
    # Orthonormal DCT-II (Ahmed, Natarajan & Rao 1974; scipy.fft.dct docs), one call over all rows.
    k = config.dct_coefficients
    d_dct = scipy.fft.dct(d_series, type=2, norm="ortho", axis=1)[:, :k]
    vol_dct = scipy.fft.dct(np.log1p(volume_s), type=2, norm="ortho", axis=1)[:, :k]
    names = trajectory_columns(config)
    for i in range(k):
        out[names[i]] = d_dct[:, i]
        out[names[k + i]] = vol_dct[:, i]

    # Kinematics: backward finite differences of d at T, T-L, T-2L, T-3L (level and ATR fixed at T).
    def d_at(minutes_back: int) -> np.ndarray:
        close_x, idx_x = _close_at(close_times, closes, anchor_ns - minutes_back * NS_PER_MINUTE)
        return np.where(idx_x >= 0, (close_x - level[:, 0]) / atr[:, 0], np.nan)

    d0 = d_at(0)
    kin_names = iter(kinematic_columns(config))
    for lag in config.kinematic_lags_minutes:
        d1, d2, d3 = d_at(lag), d_at(2 * lag), d_at(3 * lag)
        out[next(kin_names)] = (d0 - d1) / lag
        out[next(kin_names)] = (d0 - 2 * d1 + d2) / lag**2
        out[next(kin_names)] = (d0 - 3 * d1 + 3 * d2 - d3) / lag**3
    return out


def _or_empty(frame: pl.DataFrame | None) -> pl.DataFrame:
    return frame if frame is not None else pl.DataFrame()


def _touch_history(
    levels: pl.DataFrame, bars_2m: pl.DataFrame, session_date: date, config: SpymasterConfig
) -> pl.DataFrame:
    """Per (2-minute close, kind): touches so far and the last touch instant, counting from when the kind became known."""
    known_from = pl.DataFrame(
        {"level_kind": list(LEVEL_KINDS), "known_from": list(level_known_from(session_date, config).values())}
    ).with_columns(pl.col("known_from").cast(TS_DTYPE))
    return (
        levels.select("ts_event", "level_kind", "level_price")
        .join(bars_2m.select(pl.col("ts_close").alias("ts_event"), "low", "high"), on="ts_event", how="inner")
        .join(known_from, on="level_kind", how="inner")
        .filter(pl.col("ts_event") > pl.col("known_from"))
        .sort("level_kind", "ts_event")
        .with_columns(touched=pl.col("level_price").is_between(pl.col("low"), pl.col("high"), closed="both"))
        .with_columns(
            touches_today=pl.col("touched").cast(pl.Int32).cum_sum().over("level_kind"),
            last_touch=pl.when(pl.col("touched")).then(pl.col("ts_event")).forward_fill().over("level_kind"),
        )
        .select("ts_event", "level_kind", "touches_today", "last_touch")
    )


def _epoch_ns(instant: datetime) -> int:
    return int(pl.Series([instant]).cast(TS_DTYPE).dt.epoch("ns")[0])


def _time_bucket_expr(config: SpymasterConfig) -> pl.Expr:
    """Label of the (lo, hi] minutes-since-open bucket; null outside every bucket."""
    edges, labels = config.time_bucket_edges_minutes, config.time_bucket_labels
    expr = pl.lit(None, dtype=pl.Utf8)
    for lo, hi, label in reversed(list(zip(edges[:-1], edges[1:], labels))):
        expr = pl.when((pl.col("minutes_since_open") > lo) & (pl.col("minutes_since_open") <= hi)).then(pl.lit(label)).otherwise(expr)
    return expr


def compute_level_state(
    bars: pl.DataFrame,
    levels: pl.DataFrame,
    session_date: date,
    config: SpymasterConfig,
    order_flow: OrderFlowInputs | None = None,
    options: OptionsInputs | None = None,
    previous_1m: pl.DataFrame | None = None,
    daily_history: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Level-relative state and bars-only features per (anchor, level kind known at the anchor).

    Inputs: silver_bars and silver_levels of the session; ``previous_1m``: the previous session's
    1-minute bars of the same contract (for the ``prior_session`` chart block; None: null); ``daily_history``: the
    daily bars of the sessions before it (``silver.assets.daily_history``, for the ``atr_regime`` block; None: null). Anchors are the 2-minute bar closes T
    with ``anchor_start < T <= anchor_end`` ET whose ATR is defined and positive (an anchor without
    a usable ATR has no level-relative scale and is skipped).

    Output (silver_level_state), sorted by ts_event then LEVEL_KINDS order:

    - session_date (Date); ts_event (Datetime ns UTC, = T); level_kind (Utf8); level_price (points,
      known at T); close (2-minute close at T, points); atr_points (2-minute ATR at T, points);
      direction ("UP" when close < level, else "DOWN"); in_zone (|distance_atr| <=
      ``approach_zone_atr``); time_bucket (Utf8 label of ``config.time_bucket_labels`` containing
      minutes_since_open in (lo, hi]; null outside every bucket).
    - Features, in ``feature_names.bars_feature_columns(config)`` order, Float64 unless noted:
      distance_atr d = (close - level) / ATR. traj_d_dct_i / traj_logvol_dct_i: the first
      ``dct_coefficients`` orthonormal DCT-II coefficients (Ahmed, Natarajan & Rao 1974) of the
      ``trajectory_minutes`` 1-minute samples ending at T of d_s = (close_s - level_T) / ATR_T and of
      log1p(volume_s) (contracts); a missing minute repeats the previous close with volume 0, minutes
      before the session's first bar take its close. d_velocity_Lm (ATR/min), d_acceleration_Lm
      (ATR/min^2), d_jerk_Lm (ATR/min^3): backward differences (d_T - d_{T-L}) / L,
      (d_T - 2 d_{T-L} + d_{T-2L}) / L^2, (d_T - 3 d_{T-L} + 3 d_{T-2L} - d_{T-3L}) / L^3 with d at
      the last 1-minute close at or before each instant; null when an instant precedes the first bar.
      minutes_since_open (minutes from rth_open to T). dist_atr_<kind>: (close - that level) / ATR
      for each other known kind, null for the own kind or an unknown one. stack_count_<x>atr (Int32):
      other known levels with |other - level| <= x * ATR. touches_today (Int32): 2-minute bars
      closing in (instant the kind became known, T] whose [low, high] contains that bar's level
      price (known from: rth_open for PM and the moving averages, rth_open + opening range for OR).
      minutes_since_last_touch: T minus the last such bar close in minutes (null if none).
      or_width_atr: (OR_HIGH - OR_LOW) / ATR, null before the opening range is known. Then the
      enabled chart blocks (``config.chart_blocks``: VWAP, ranges, round numbers, level age;
      definitions in ``chart_features``).
    - The order-flow families (tape, book, depth, mbo; ``feature_names`` gives each column's
      definition) from ``order_flow``, computed by ``order_flow_features.order_flow_features`` from
      events with ts_event <= T; a family whose data the session lacks is null, never zero.
    - The gamma family from ``options`` (``gamma_features.gamma_features``: open interest known
      before the session, option quotes and trades with ts_event <= T, F the last 1-minute close at
      or before T); absent (null) when the session has no 0DTE chain with open interest.
    - feature_families (Utf8): the families computed for the row, e.g. ``"bars+tape+book"``.

    Raises ValueError when ``bars`` has no 1-minute rows.
    """
    bars_1m = bars.filter(pl.col("bar_minutes") == 1).sort("ts_event")
    bars_2m = bars.filter(pl.col("bar_minutes") == config.level_bar_minutes).sort("ts_event")
    if bars_1m.is_empty():
        raise ValueError(f"session {session_date}: silver_bars has no 1-minute bars")
    rth_open = et_to_utc(session_date, config.rth_open)
    anchors = bars_2m.filter(
        (pl.col("ts_close") > et_to_utc(session_date, config.anchor_start))
        & (pl.col("ts_close") <= et_to_utc(session_date, config.anchor_end))
        & (pl.col("atr_points") > 0)
    ).select(pl.col("ts_close").alias("ts_event"), "close", "atr_points")

    # Known level prices at each anchor, one column per kind, to relate a level to the others.
    level_cols = {kind: f"_level_{kind}" for kind in LEVEL_KINDS}
    wide = anchors.select("ts_event").join(
        levels.select("ts_event", "level_kind", "level_price"), on="ts_event", how="inner"
    )
    wide = wide.pivot(on="level_kind", index="ts_event", values="level_price") if not wide.is_empty() else anchors.select("ts_event")
    wide = wide.with_columns(
        [pl.lit(None, dtype=pl.Float64).alias(kind) for kind in LEVEL_KINDS if kind not in wide.columns]
    ).rename(level_cols)

    state = (
        anchors.join(levels.select("ts_event", "level_kind", "level_price"), on="ts_event", how="inner")
        .join(wide, on="ts_event", how="left")
        .sort("ts_event", pl.col("level_kind").replace_strict(_KIND_RANK, return_dtype=pl.Int8))
    )
    touches = _touch_history(levels, bars_2m, session_date, config)
    state = state.join(touches, on=["ts_event", "level_kind"], how="left").with_columns(
        session_date=pl.lit(session_date, dtype=pl.Date),
        direction=pl.when(pl.col("close") < pl.col("level_price")).then(pl.lit(_UP)).otherwise(pl.lit(_DOWN)),
        touches_today=pl.col("touches_today").fill_null(0).cast(pl.Int32),
    )

    # Ratios are computed in NumPy: element-wise IEEE division is exact and independent of the
    # frame's shape, so a truncated run reproduces a full run bit for bit (polars may take a
    # different arithmetic path for a broadcast column).
    close = state["close"].to_numpy()
    level = state["level_price"].to_numpy()
    atr = state["atr_points"].to_numpy()
    anchor_ns = state["ts_event"].dt.epoch("ns").to_numpy()
    kind = state["level_kind"].to_numpy()
    arrays: dict[str, np.ndarray] = {
        "distance_atr": (close - level) / atr,
        "minutes_since_open": (anchor_ns - _epoch_ns(rth_open)) / NS_PER_MINUTE,
    }
    last_touch_ns = state["last_touch"].dt.epoch("ns").fill_null(np.iinfo(np.int64).min).to_numpy()
    arrays["minutes_since_last_touch"] = np.where(
        state["last_touch"].is_null().to_numpy(), np.nan, (anchor_ns - last_touch_ns) / NS_PER_MINUTE
    )
    other_levels = {k: state[level_cols[k]].fill_null(np.nan).to_numpy() for k in LEVEL_KINDS}
    for k, name in zip(LEVEL_KINDS, distance_columns()):
        arrays[name] = np.where(kind != k, (close - other_levels[k]) / atr, np.nan)
    arrays["or_width_atr"] = (other_levels["OR_HIGH"] - other_levels["OR_LOW"]) / atr
    counts: dict[str, np.ndarray] = {}
    for x, name in zip(config.stack_thresholds_atr, stack_columns(config)):
        # NaN (unknown level) compares False, so unknown kinds are never counted.
        counts[name] = sum(
            ((kind != k) & (np.abs(other_levels[k] - level) <= x * atr)).astype(np.int32) for k in LEVEL_KINDS
        )
    arrays |= _trajectory_and_kinematics(bars_1m, state, config)
    arrays |= chart_features(state, bars_1m, session_date, config, previous_1m, daily_history)
    state = state.with_columns(
        [pl.Series(name, values, dtype=pl.Float64).fill_nan(None) for name, values in arrays.items()]
        + [pl.Series(name, values, dtype=pl.Int32) for name, values in counts.items()]
    ).with_columns(
        in_zone=pl.col("distance_atr").abs() <= config.approach_zone_atr,
        time_bucket=_time_bucket_expr(config),
    )
    families = ["bars"]
    if order_flow is not None and state.height:
        flow, present = order_flow_features(
            state, order_flow.trades, order_flow.book_1s, order_flow.depth_flow_1m, order_flow.tick_size, config
        )
        state = state.hstack(flow)
        families += list(present)
    if options is not None and state.height and options.chain is not None and options.open_interest is not None:
        gamma, has_gamma = gamma_features(
            state, options.chain, options.open_interest, _or_empty(options.bbo), _or_empty(options.trades), bars_1m, config
        )
        if has_gamma:
            state = state.hstack(gamma)
            families.append("gamma")
    state = state.with_columns(
        [pl.lit(None, dtype=pl.Float64).alias(c) for c in all_feature_columns(config) if c not in state.columns]
    ).with_columns(feature_families=pl.lit(families_label(families)))
    columns = level_state_columns(config)
    ints = set(integer_feature_columns(config))
    return state.select(
        pl.col("session_date"),
        pl.col("ts_event").cast(TS_DTYPE),
        *[pl.col(c) for c in STATE_KEY_COLUMNS[2:]],
        *[pl.col(c).cast(pl.Int32 if c in ints else pl.Float64) for c in columns[len(STATE_KEY_COLUMNS):]],
    )
