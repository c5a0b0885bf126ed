"""silver_levels: the six level prices of a session, as known at each 2-minute bar close."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from spymaster_core.config import LEVEL_KINDS, SpymasterConfig
from ..sessions import et_to_utc

TS_DTYPE = pl.Datetime("ns", "UTC")
LEVELS_COLUMNS = ("session_date", "ts_event", "level_kind", "level_price")
#: Sort rank of each kind, so rows come out in LEVEL_KINDS order within a bar close.
_KIND_RANK = {kind: i for i, kind in enumerate(LEVEL_KINDS)}


def level_known_from(session_date: date, config: SpymasterConfig) -> dict[str, datetime]:
    """UTC instant from which each level kind counts as complete (PM: rth_open, OR: rth_open + OR length, SMA/EMA: rth_open).

    For SMA_90 / EMA_20 the value exists all session; this instant is where the trader starts
    watching it, used e.g. to count touches. Keys are LEVEL_KINDS.
    """
    rth_open = et_to_utc(session_date, config.rth_open)
    or_end = rth_open + timedelta(minutes=config.opening_range_minutes)
    return {"PM_HIGH": rth_open, "PM_LOW": rth_open, "OR_HIGH": or_end, "OR_LOW": or_end, "SMA_90": rth_open, "EMA_20": rth_open}


def _window_extremes(bars_1m: pl.DataFrame, start: datetime, end: datetime) -> tuple[float | None, float | None]:
    """Max high and min low of 1-minute bars whose open lies in ``[start, end)``; None when no bar."""
    window = bars_1m.filter(pl.col("ts_event").is_between(start, end, closed="left"))
    if window.is_empty():
        return None, None
    return float(window["high"].max()), float(window["low"].min())


def compute_levels(bars: pl.DataFrame, session_date: date, config: SpymasterConfig) -> pl.DataFrame:
    """Level prices known at each 2-minute bar close of the session's level window (long format).

    Input: silver_bars of the session (see :func:`spymaster_assets.silver.bars.build_bars`).
    Output (silver_levels): session_date (Date), ts_event (Datetime ns UTC: the 2-minute bar CLOSE
    instant T at which the value is known), level_kind (Utf8, one of LEVEL_KINDS), level_price
    (Float64, points). One row per 2-minute bar with close T in ``[premarket_start, anchor_end]`` ET
    and per kind known at T:

    - PM_HIGH / PM_LOW: max high / min low of 1-minute bars with open in [premarket_start,
      rth_open) ET; known at T >= rth_open.
    - OR_HIGH / OR_LOW: the same over [rth_open, rth_open + opening_range_minutes); known at
      T >= the end of that window.
    - SMA_90 / EMA_20: the 2-minute bar's own sma_90 / ema_20 at T, when not null.

    A kind whose window has no bars is absent (see :func:`levels_summary`). Only bars closed at or
    before T feed a value known at T, because each window ends at or before the instant it becomes
    known. Times are converted with zoneinfo America/New_York (DST-correct).
    """
    premarket_start = et_to_utc(session_date, config.premarket_start)
    rth_open = et_to_utc(session_date, config.rth_open)
    or_end = rth_open + timedelta(minutes=config.opening_range_minutes)
    window_end = et_to_utc(session_date, config.anchor_end)

    bars_1m = bars.filter(pl.col("bar_minutes") == 1)
    closes_2m = bars.filter(
        (pl.col("bar_minutes") == config.level_bar_minutes)
        & pl.col("ts_close").is_between(premarket_start, window_end, closed="both")
    ).select(pl.col("ts_close").alias("ts_event"), "sma_90", "ema_20")

    pm_high, pm_low = _window_extremes(bars_1m, premarket_start, rth_open)
    or_high, or_low = _window_extremes(bars_1m, rth_open, or_end)
    # (kind, price expression, instant from which it is known)
    window_levels = (
        ("PM_HIGH", pm_high, rth_open),
        ("PM_LOW", pm_low, rth_open),
        ("OR_HIGH", or_high, or_end),
        ("OR_LOW", or_low, or_end),
    )
    parts: list[pl.DataFrame] = []
    for kind, price, known_from in window_levels:
        if price is None:
            continue
        parts.append(
            closes_2m.filter(pl.col("ts_event") >= known_from).select(
                "ts_event", level_kind=pl.lit(kind), level_price=pl.lit(price, dtype=pl.Float64)
            )
        )
    for kind, column in (("SMA_90", "sma_90"), ("EMA_20", "ema_20")):
        parts.append(
            closes_2m.filter(pl.col(column).is_not_null()).select(
                "ts_event", level_kind=pl.lit(kind), level_price=pl.col(column)
            )
        )
    levels = pl.concat(parts) if parts else pl.DataFrame(schema={"ts_event": TS_DTYPE, "level_kind": pl.Utf8, "level_price": pl.Float64})
    return (
        levels.with_columns(
            session_date=pl.lit(session_date, dtype=pl.Date),
            ts_event=pl.col("ts_event").cast(TS_DTYPE),
            level_kind=pl.col("level_kind").cast(pl.Utf8),
        )
        .sort("ts_event", pl.col("level_kind").replace_strict(_KIND_RANK, return_dtype=pl.Int8))
        .select(LEVELS_COLUMNS)
    )


def levels_summary(levels: pl.DataFrame) -> dict[str, object]:
    """Which level kinds a silver_levels frame holds, for materialization metadata.

    Returns ``{"rows": int, "kinds_present": [...], "kinds_missing": [...],
    "first_known_utc": {kind: ISO-8601 string}}``, kinds in LEVEL_KINDS order.
    """
    first_known = {
        row["level_kind"]: row["ts_event"]
        for row in levels.group_by("level_kind").agg(pl.col("ts_event").min()).iter_rows(named=True)
    }
    present = [k for k in LEVEL_KINDS if k in first_known]
    return {
        "rows": levels.height,
        "kinds_present": present,
        "kinds_missing": [k for k in LEVEL_KINDS if k not in first_known],
        "first_known_utc": {k: first_known[k].isoformat() for k in present},
    }
