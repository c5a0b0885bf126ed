"""The daily ATR regime: how volatile the recent sessions were against the last year, from earlier sessions' bars only.

The ``atr_regime`` chart block (``feature_names.CHART_BLOCKS``). A session is summarised by its daily
bar (:func:`daily_bar`: the front month's high, low and last close over the whole Globex session);
the block of session D reads the daily bars of the sessions before D only, so every anchor of D
gets the same values and nothing of D itself enters them.

- True range of session i (J. W. Wilder, *New Concepts in Technical Trading Systems*, 1978):
  ``max(high_i, close_{i-1}) - min(low_i, close_{i-1})``, or ``high_i - low_i`` when session i-1
  is missing or traded another contract (a roll: the two closes are different instruments).
- ``ATR_n`` of session i: the simple mean of the true ranges of sessions i-n+1..i
  (``daily_atr_sessions``, 14), in points. A simple mean rather than Wilder's smoothing, so the value
  depends on those n sessions only, not on where the lake's history starts.
- Regime: the percentile rank of the latest ATR_n (the session before D) among the ATR_n of the
  trailing ``atr_regime_sessions`` sessions (252: a year), the latest included: the fraction of
  them at or below it, in (0, 1]. Null with fewer than ``atr_regime_min_sessions`` of them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig

#: Columns of a daily bar (one row per session, :func:`daily_bar`).
DAILY_BAR_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date(),
    "instrument_id": pl.Int64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
}


def daily_bar(bars_1m: pl.DataFrame) -> pl.DataFrame:
    """One session's daily bar from its bronze_futures_ohlcv_1m rows (session_date, ts_event,
    instrument_id, high, low, close; one instrument): the session's high and low, and the close of
    its last minute, in points. Columns :data:`DAILY_BAR_SCHEMA`; no row for a session without bars.
    """
    if bars_1m.height == 0:
        return pl.DataFrame(schema=DAILY_BAR_SCHEMA)
    ordered = bars_1m.sort("ts_event")
    return pl.DataFrame(
        {
            "session_date": [ordered["session_date"][0]],
            "instrument_id": [int(ordered["instrument_id"][0])],
            "high": [float(ordered["high"].max())],
            "low": [float(ordered["low"].min())],
            "close": [float(ordered["close"][-1])],
        },
        schema=DAILY_BAR_SCHEMA,
    )


def true_ranges(daily: pl.DataFrame) -> np.ndarray:
    """Wilder's true range of each row of ``daily`` (:data:`DAILY_BAR_SCHEMA`, consecutive sessions in
    date order), in points: against the previous row's close when it is the same instrument, else high - low."""
    high, low, close = (daily[c].to_numpy().astype(np.float64) for c in ("high", "low", "close"))
    instrument = daily["instrument_id"].to_numpy()
    previous_close = np.concatenate([[np.nan], close[:-1]])
    continued = np.concatenate([[False], instrument[1:] == instrument[:-1]])
    return np.where(continued, np.maximum(high, previous_close) - np.minimum(low, previous_close), high - low)


def daily_atr_regime(daily: pl.DataFrame, config: SpymasterConfig) -> tuple[float, float]:
    """(ATR_n of the last row in points, its percentile rank over the trailing year) from ``daily``:
    the daily bars of the sessions before the day served, in date order, the calendar's sessions
    without bars left out (their neighbours' true range is then high - low, as at a roll).

    NaN for the ATR with fewer than ``daily_atr_sessions`` rows, NaN for the rank with fewer than
    ``atr_regime_min_sessions`` ATR values. Raises ValueError when ``daily`` is not in date order.
    """
    n = config.daily_atr_sessions
    if n < 1 or config.atr_regime_sessions < 1:
        raise ValueError(f"daily_atr_sessions and atr_regime_sessions must be >= 1, got {n} and {config.atr_regime_sessions}")
    if daily.height and not daily["session_date"].is_sorted():
        raise ValueError("daily bars must be in session_date order")
    if daily.height < n:
        return float("nan"), float("nan")
    tr = true_ranges(daily)
    sums = np.concatenate([[0.0], np.cumsum(tr)])
    atr = (sums[n:] - sums[:-n]) / n  # atr[j]: sessions j..j+n-1
    trailing = atr[-config.atr_regime_sessions:]
    latest = float(atr[-1])
    if trailing.size < config.atr_regime_min_sessions:
        return latest, float("nan")
    return latest, float(np.mean(trailing <= latest))
