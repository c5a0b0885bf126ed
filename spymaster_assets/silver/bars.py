"""silver_bars: 1-minute and 2-minute bars of one Globex session with ATR, SMA and EMA on the 2-minute bars."""

from __future__ import annotations

from datetime import date, time, timedelta

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from ..sessions import et_to_utc, session_bounds_utc
from .indicators import atr_wilder, ema, sma

#: End of US regular trading hours (ET). Not in SpymasterConfig; the RTH close is fixed by the exchange.
RTH_CLOSE = time(16, 0)

TS_DTYPE = pl.Datetime("ns", "UTC")
OHLCV_COLUMNS = ("ts_event", "open", "high", "low", "close", "volume")
#: Column order of silver_bars.
BARS_COLUMNS = (
    "session_date",
    "bar_minutes",
    "ts_event",
    "ts_close",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "atr_points",
    "sma_90",
    "ema_20",
    "is_rth",
    "indicators_warm",
)


def _normalize_ohlcv(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}")
    return (
        frame.select(
            pl.col("ts_event").cast(TS_DTYPE),
            pl.col("open", "high", "low", "close").cast(pl.Float64),
            pl.col("volume").cast(pl.Int64),
        )
        .sort("ts_event")
    )


def aggregate_bars(ohlcv_1m: pl.DataFrame, minutes: int) -> pl.DataFrame:
    """Aggregate 1-minute bars to ``minutes``-minute bars aligned to multiples of ``minutes`` since the Unix epoch.

    Input: ts_event (Datetime ns UTC, bar open), open/high/low/close (points), volume (contracts),
    sorted or not. Output: the same columns plus ts_close (= ts_event + ``minutes``), one row per
    bucket that has at least one 1-minute bar (empty buckets are not filled): open of the first,
    max high, min low, close of the last, summed volume. Epoch alignment makes 09:30 and 18:00 ET
    2-minute boundaries in every season, because New York offsets are whole hours.
    """
    length = timedelta(minutes=minutes)
    return (
        ohlcv_1m.sort("ts_event")
        .group_by(pl.col("ts_event").dt.truncate(f"{minutes}m"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .sort("ts_event")
        .with_columns(ts_close=(pl.col("ts_event") + length).cast(TS_DTYPE))
    )


def build_bars(
    ohlcv_1m: pl.DataFrame,
    session_date: date,
    config: SpymasterConfig,
    warmup_1m: pl.DataFrame | None = None,
    require_rth: bool = True,
) -> pl.DataFrame:
    """Build silver_bars for one session: 1-minute and 2-minute bars with indicators on the 2-minute bars.

    Input ``ohlcv_1m`` (bronze_futures_ohlcv_1m): ts_event (Datetime ns UTC, bar open), open, high,
    low, close (Float64, points), volume (Int64, contracts); other columns are ignored, rows outside
    the session ``[18:00 ET previous day, 17:00 ET)`` are dropped. ``warmup_1m``: the previous
    session's 1-minute bars of the same instrument (or None); it only warms the indicators.

    Output columns: session_date (Date), bar_minutes (Int8: 1 or ``config.level_bar_minutes``),
    ts_event (bar open, Datetime ns UTC), ts_close (bar close instant = open + bar length), open,
    high, low, close (Float64, points), volume (Int64, contracts), atr_points (Wilder ATR of
    ``config.atr_period`` 2-minute bars, points), sma_90 / ema_20 (``config.sma_period`` SMA and
    ``config.ema_period`` EMA of 2-minute closes, points) — null on 1-minute rows and before warm —,
    is_rth (bar lies inside [rth_open, 16:00) ET), indicators_warm (all three indicators defined at
    the row's 2-minute bar; on a 1-minute row, at the last 2-minute bar closed by the row's close).
    Sorted by bar_minutes, ts_event. Minutes without trades get no row.

    Raises ValueError (naming the session date) when the session has no regular-hours bar (unless
    ``require_rth`` is false: the trader's screen builds the bars of a session so far, before 09:30)
    or the input lacks a required column.
    """
    session_start, session_end = session_bounds_utc(session_date, config)
    session = _normalize_ohlcv(ohlcv_1m, f"ohlcv_1m of session {session_date}").filter(
        pl.col("ts_event").is_between(session_start, session_end, closed="left")
    )
    rth_open = et_to_utc(session_date, config.rth_open)
    rth_close = et_to_utc(session_date, RTH_CLOSE)
    if require_rth and session.filter(pl.col("ts_event").is_between(rth_open, rth_close, closed="left")).is_empty():
        raise ValueError(f"session {session_date}: no regular-hours bars between {rth_open} and {rth_close} UTC")

    level_minutes = config.level_bar_minutes
    bars_2m = aggregate_bars(session, level_minutes)
    if warmup_1m is not None and not warmup_1m.is_empty():
        warmup = _normalize_ohlcv(warmup_1m, f"warmup_1m of session {session_date}").filter(
            pl.col("ts_event") < session_start
        )
        # Aggregated separately so a warm-up bucket never merges with a session bucket.
        history = pl.concat([aggregate_bars(warmup, level_minutes), bars_2m])
    else:
        history = bars_2m
    high, low, close = (history[c].to_numpy().astype(np.float64) for c in ("high", "low", "close"))
    n_warmup = history.height - bars_2m.height
    indicators = pl.DataFrame(
        {
            "atr_points": atr_wilder(high, low, close, config.atr_period)[n_warmup:],
            "sma_90": sma(close, config.sma_period)[n_warmup:],
            "ema_20": ema(close, config.ema_period)[n_warmup:],
        }
    ).with_columns(pl.all().fill_nan(None))
    bars_2m = pl.concat([bars_2m, indicators], how="horizontal").with_columns(
        bar_minutes=pl.lit(level_minutes, dtype=pl.Int8),
        indicators_warm=pl.all_horizontal(pl.col("atr_points", "sma_90", "ema_20").is_not_null()),
    )

    bars_1m = session.with_columns(
        ts_close=(pl.col("ts_event") + timedelta(minutes=1)).cast(TS_DTYPE),
        bar_minutes=pl.lit(1, dtype=pl.Int8),
        atr_points=pl.lit(None, dtype=pl.Float64),
        sma_90=pl.lit(None, dtype=pl.Float64),
        ema_20=pl.lit(None, dtype=pl.Float64),
    )
    # A 1-minute row is warm when the latest 2-minute bar it can see (closed by its own close) is warm.
    bars_1m = bars_1m.join_asof(
        bars_2m.select("ts_close", "indicators_warm"), on="ts_close", strategy="backward"
    ).with_columns(pl.col("indicators_warm").fill_null(False))

    return (
        pl.concat([bars_1m, bars_2m], how="diagonal")
        .with_columns(
            session_date=pl.lit(session_date, dtype=pl.Date),
            is_rth=(pl.col("ts_event") >= rth_open) & (pl.col("ts_close") <= rth_close),
        )
        .select(BARS_COLUMNS)
        .sort("bar_minutes", "ts_event")
    )
