"""What a level trader reads off the chart, from the session's 1-minute bars only, at each anchor T.

Blocks of the bars family, each switched on by ``chart_blocks`` (``feature_names.CHART_BLOCKS``), so
adding one changes the vector layout and its version (``vectors.vector_version``) and a lake without
it is untouched. Every value at anchor T uses the 1-minute bars that closed at or before T only (a
truncation test checks it). Distances are in units of the anchor's 2-minute ATR.

- ``vwap``: ``vwap_rth_dist_atr`` = (close - VWAP of the bars closing in (rth_open, T]) / ATR and
  ``vwap_session_dist_atr`` = (close - VWAP of every session bar closing at or before T) / ATR, the
  session starting at the Globex open. VWAP from bars: sum(typical price * volume) / sum(volume),
  typical price (high + low + close) / 3 (the usual bar approximation of the trade-weighted mean).
  Null without volume.
- ``ranges``: ``overnight_range_atr`` = (max high - min low of the bars closing at or before
  rth_open) / ATR and ``day_range_atr`` = (max high - min low of the bars closing in (rth_open, T]) / ATR.
- ``round_numbers``: ``round_<h>_dist_atr`` = |level - nearest multiple of the handle| / ATR for each
  handle of ``round_number_handles_points`` (25, 50, 100 points for ES), scaled by the product's
  tick (tick_size_points / 0.25), so GC's are 10, 20, 40 dollars.
- ``level_age``: ``minutes_since_level_set`` = minutes from the close of the last 1-minute bar that
  made the level's price (the bar whose high is PM_HIGH / OR_HIGH, whose low is PM_LOW / OR_LOW, in
  the level's window) to T; null for the moving averages, which change every bar.
- ``prior_session``: from the previous session's 1-minute bars of the same contract (``previous_1m``,
  the bars silver_bars warms up with; null after a roll or without them): ``prev_rth_<x>_dist_atr`` =
  (close - the previous session's regular-hours high / low / close) / ATR, regular hours being the
  bars opening in [rth_open, rth_close) ET; ``open_gap_atr`` = (the first regular-hours open of the
  day - the previous regular-hours close) / ATR.
- ``atr_regime``: from the daily bars of the sessions before the day (``daily_history``,
  ``daily_regime``): ``daily_atr_atr`` = the 14-session daily ATR (points) / the anchor's 2-minute
  ATR, and ``daily_atr_pct_1y`` = that daily ATR's percentile rank over the trailing 252 sessions;
  null without enough earlier sessions.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from spymaster_core.units import NS_PER_MINUTE
from ..sessions import et_to_utc
from .daily_regime import daily_atr_regime
from .feature_names import CHART_BLOCKS, chart_columns

#: ES's tick, the unit the round-number handles of the configuration are written in.
_ES_TICK = 0.25


def chart_features(
    state: pl.DataFrame,
    bars_1m: pl.DataFrame,
    session_date: date,
    config: SpymasterConfig,
    previous_1m: pl.DataFrame | None = None,
    daily_history: pl.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The enabled chart blocks' columns (``feature_names.chart_columns``) for each row of ``state``.

    ``state``: rows with ts_event (anchor T), level_kind, level_price, close, atr_points (points);
    ``bars_1m``: the session's 1-minute silver_bars (ts_event open, ts_close, high, low, close,
    volume), any order; ``previous_1m``: the previous session's 1-minute bars of the same contract
    (ts_event open, open, high, low, close) or None; ``daily_history``: the daily bars of the
    sessions before ``session_date`` (``daily_regime.DAILY_BAR_SCHEMA``, date order) or None.
    Returns float64 arrays of len(state), NaN where undefined. Raises ValueError for an unknown
    block in ``config.chart_blocks``.
    """
    unknown = sorted(set(config.chart_blocks) - set(CHART_BLOCKS))
    if unknown:
        raise ValueError(f"unknown chart blocks {unknown}; choose from {CHART_BLOCKS}")
    if not config.chart_blocks:
        return {}
    bars = bars_1m.sort("ts_close")
    closes_ns = bars["ts_close"].dt.epoch("ns").to_numpy()
    anchor_ns = state["ts_event"].dt.epoch("ns").to_numpy()
    seen = np.searchsorted(closes_ns, anchor_ns, side="right")  # bars [0, seen) closed at or before T
    rth_ns = int(pl.Series([et_to_utc(session_date, config.rth_open)]).dt.epoch("ns")[0])
    before_rth = int(np.searchsorted(closes_ns, rth_ns, side="right"))
    high, low = bars["high"].to_numpy().astype(np.float64), bars["low"].to_numpy().astype(np.float64)
    close_1m, volume = bars["close"].to_numpy().astype(np.float64), bars["volume"].to_numpy().astype(np.float64)
    close, atr = state["close"].to_numpy(), state["atr_points"].to_numpy()
    level = state["level_price"].to_numpy()
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "vwap" in config.chart_blocks:
            pv = np.concatenate([[0.0], np.cumsum((high + low + close_1m) / 3.0 * volume)])
            v = np.concatenate([[0.0], np.cumsum(volume)])
            start = np.minimum(before_rth, seen)
            rth_v = v[seen] - v[start]
            out["vwap_rth_dist_atr"] = np.where(rth_v > 0, (close - (pv[seen] - pv[start]) / np.where(rth_v > 0, rth_v, 1.0)) / atr, np.nan)
            out["vwap_session_dist_atr"] = np.where(v[seen] > 0, (close - pv[seen] / np.where(v[seen] > 0, v[seen], 1.0)) / atr, np.nan)
        if "ranges" in config.chart_blocks:
            overnight = (high[:before_rth].max() - low[:before_rth].min()) if before_rth else np.nan
            out["overnight_range_atr"] = np.where(seen >= before_rth, overnight, np.nan) / atr
            day_high = np.concatenate([[np.nan] * (before_rth + 1), np.maximum.accumulate(high[before_rth:])])
            day_low = np.concatenate([[np.nan] * (before_rth + 1), np.minimum.accumulate(low[before_rth:])])
            out["day_range_atr"] = (day_high[seen] - day_low[seen]) / atr
        if "round_numbers" in config.chart_blocks:
            scale = config.tick_size_points / _ES_TICK
            for handle, name in zip(config.round_number_handles_points, _round_columns(config)):
                step = handle * scale
                out[name] = np.abs(level - np.round(level / step) * step) / atr
        if "level_age" in config.chart_blocks:
            set_ns = _level_set_close_ns(bars, session_date, config)
            made = np.array([set_ns.get((kind, price), np.nan) for kind, price in zip(state["level_kind"].to_list(), level.tolist())], dtype=np.float64)
            out["minutes_since_level_set"] = np.where(made <= anchor_ns, (anchor_ns - made) / NS_PER_MINUTE, np.nan)
        if "prior_session" in config.chart_blocks:
            previous = _regular_hours(previous_1m, config) if previous_1m is not None else None
            if previous is None or previous.height == 0:
                for name in ("prev_rth_high_dist_atr", "prev_rth_low_dist_atr", "prev_rth_close_dist_atr", "open_gap_atr"):
                    out[name] = np.full(state.height, np.nan)
            else:
                prev_close = float(previous["close"][-1])
                out["prev_rth_high_dist_atr"] = (close - float(previous["high"].max())) / atr
                out["prev_rth_low_dist_atr"] = (close - float(previous["low"].min())) / atr
                out["prev_rth_close_dist_atr"] = (close - prev_close) / atr
                today = bars.filter(pl.col("ts_event") >= et_to_utc(session_date, config.rth_open)).head(1)
                opened = today["ts_close"].dt.epoch("ns")[0] if today.height else None
                gap = (float(today["open"][0]) - prev_close) if today.height else np.nan
                out["open_gap_atr"] = np.where(opened is not None and np.asarray(anchor_ns) >= (opened or 0), gap, np.nan) / atr
        if "atr_regime" in config.chart_blocks:
            daily_atr, rank = daily_atr_regime(daily_history, config) if daily_history is not None else (np.nan, np.nan)
            out["daily_atr_atr"] = daily_atr / atr
            out["daily_atr_pct_1y"] = np.full(state.height, rank)
    return {name: out[name] for name in chart_columns(config)}


def _regular_hours(bars: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """The bars opening in [rth_open, rth_close) New York time, in time order (a session's regular hours occur once)."""
    clock = pl.col("ts_event").dt.convert_time_zone("America/New_York").dt.time()
    return bars.filter((clock >= config.rth_open) & (clock < config.rth_close)).sort("ts_event")


def _round_columns(config: SpymasterConfig) -> list[str]:
    return [c for c in chart_columns(config) if c.startswith("round_")]


def _level_set_close_ns(bars: pl.DataFrame, session_date: date, config: SpymasterConfig) -> dict[tuple[str, float], float]:
    """(level kind, price) -> close instant (ns) of the last bar of the level's window that made that price
    (PM: bars opening in [premarket_start, rth_open); OR: in [rth_open, rth_open + opening_range_minutes))."""
    rth_open = et_to_utc(session_date, config.rth_open)
    windows = {
        "PM": (et_to_utc(session_date, config.premarket_start), rth_open),
        "OR": (rth_open, rth_open + timedelta(minutes=config.opening_range_minutes)),
    }
    found: dict[tuple[str, float], float] = {}
    for prefix, (start, end) in windows.items():
        window = bars.filter(pl.col("ts_event").is_between(start, end, closed="left"))
        if window.is_empty():
            continue
        for kind, column, extreme in ((f"{prefix}_HIGH", "high", window["high"].max()), (f"{prefix}_LOW", "low", window["low"].min())):
            made = window.filter(pl.col(column) == extreme)["ts_close"].dt.epoch("ns")
            found[(kind, float(extreme))] = float(made.max())
    return found
