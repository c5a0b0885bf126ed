"""silver_bars: 2-minute aggregation, session clock, warm-up and errors."""

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.bars import build_bars
from spymaster_assets.silver.indicators import atr_wilder, ema, sma
from spymaster_assets.silver.schemas import validate_silver_bars

UTC = timezone.utc
CONFIG = SpymasterConfig()


def one_minute_frame(rows):
    """rows: (ts_event UTC, open, high, low, close, volume)."""
    ts, o, h, lo, c, v = zip(*rows)
    return pl.DataFrame(
        {"ts_event": list(ts), "open": o, "high": h, "low": lo, "close": c, "volume": v},
        schema_overrides={"volume": pl.Int64},
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


def flat_minutes(start, n, price=100.0, volume=1):
    return [(start + timedelta(minutes=i), price, price, price, price, volume) for i in range(n)]


def test_two_minute_aggregation_hand_worked_winter_session():
    # 2013-11-04 is the first session after DST ended: 09:30 ET = 14:30 UTC.
    rth = datetime(2013, 11, 4, 14, 30, tzinfo=UTC)
    rows = [
        (rth - timedelta(minutes=1), 99.0, 99.5, 98.5, 99.25, 3),  # 09:29 ET, alone in [09:28, 09:30)
        (rth, 100.0, 101.0, 99.5, 100.5, 5),  # 09:30
        (rth + timedelta(minutes=1), 100.5, 102.0, 100.0, 101.75, 7),  # 09:31
        # 09:32 has no trades; 09:33 alone in [09:32, 09:34)
        (rth + timedelta(minutes=3), 101.0, 101.25, 100.25, 100.75, 2),
    ]
    bars = build_bars(one_minute_frame(rows), date(2013, 11, 4), CONFIG)
    validate_silver_bars(bars)
    two = bars.filter(pl.col("bar_minutes") == 2)
    assert two["ts_event"].to_list() == [rth - timedelta(minutes=2), rth, rth + timedelta(minutes=2)]
    assert two["ts_close"].to_list() == [rth, rth + timedelta(minutes=2), rth + timedelta(minutes=4)]
    # [09:30, 09:32): open of 09:30, max high, min low, close of 09:31, volume 5 + 7.
    row = two.row(1, named=True)
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (100.0, 102.0, 99.5, 101.75, 12)
    assert two["is_rth"].to_list() == [False, True, True]
    one = bars.filter(pl.col("bar_minutes") == 1)
    assert one.height == 4  # the missing 09:32 minute is not filled
    assert (one["ts_close"] - one["ts_event"]).dt.total_minutes().to_list() == [1, 1, 1, 1]
    assert one["atr_points"].is_null().all() and one["sma_90"].is_null().all()
    assert one["is_rth"].to_list() == [False, True, True, True]
    assert bars["session_date"].unique().to_list() == [date(2013, 11, 4)]


def test_summer_session_alignment_and_rth_flag():
    # 2024-07-10: 09:30 ET = 13:30 UTC, 16:00 ET = 20:00 UTC.
    rows = flat_minutes(datetime(2024, 7, 10, 13, 28, tzinfo=UTC), 4) + flat_minutes(datetime(2024, 7, 10, 19, 58, tzinfo=UTC), 4)
    bars = build_bars(one_minute_frame(rows), date(2024, 7, 10), CONFIG)
    two = bars.filter(pl.col("bar_minutes") == 2)
    opens = [t.strftime("%H:%M") for t in two["ts_event"].to_list()]
    assert opens == ["13:28", "13:30", "19:58", "20:00"]
    assert two["is_rth"].to_list() == [False, True, True, False]


def test_rows_outside_the_session_are_dropped():
    session = date(2024, 7, 10)
    start = datetime(2024, 7, 9, 22, 0, tzinfo=UTC)  # 18:00 ET the evening before
    rows = flat_minutes(start - timedelta(minutes=2), 4) + flat_minutes(datetime(2024, 7, 10, 13, 30, tzinfo=UTC), 2)
    bars = build_bars(one_minute_frame(rows), session, CONFIG)
    assert bars.filter(pl.col("bar_minutes") == 1)["ts_event"].min() == start


def test_no_regular_hours_bars_raises_with_date():
    rows = flat_minutes(datetime(2024, 7, 10, 8, 0, tzinfo=UTC), 30)  # 04:00-04:30 ET only
    with pytest.raises(ValueError, match="2024-07-10"):
        build_bars(one_minute_frame(rows), date(2024, 7, 10), CONFIG)


def test_warmup_warms_indicators_without_being_returned():
    config = SpymasterConfig(atr_period=3, sma_period=4, ema_period=3)
    rng = np.random.default_rng(3)
    prev_start = datetime(2024, 7, 9, 19, 50, tzinfo=UTC)  # last minutes of the previous session
    prices = 100 + np.cumsum(rng.normal(0, 1, 10))
    warm_rows = [(prev_start + timedelta(minutes=i), p, p + 1, p - 1, p, 1) for i, p in enumerate(prices)]
    rth = datetime(2024, 7, 10, 13, 30, tzinfo=UTC)
    session_prices = 100 + np.cumsum(rng.normal(0, 1, 6))
    rows = [(rth + timedelta(minutes=i), p, p + 0.5, p - 0.5, p, 2) for i, p in enumerate(session_prices)]
    bars = build_bars(one_minute_frame(rows), date(2024, 7, 10), config, warmup_1m=one_minute_frame(warm_rows))
    two = bars.filter(pl.col("bar_minutes") == 2)
    assert two.height == 3 and two["ts_event"].min() == rth  # warm-up rows not returned
    assert two["indicators_warm"].all()

    # Expected: indicators over the 5 warm-up 2-minute bars followed by the 3 session bars.
    def two_minute(p, spread):
        p = np.asarray(p).reshape(-1, 2)
        return p.max(axis=1) + spread, p.min(axis=1) - spread, p[:, 1]

    wh, wl, wc = two_minute(prices, 1.0)
    sh, sl, sc = two_minute(session_prices, 0.5)
    high, low, close = np.r_[wh, sh], np.r_[wl, sl], np.r_[wc, sc]
    np.testing.assert_allclose(two["atr_points"].to_numpy(), atr_wilder(high, low, close, 3)[-3:])
    np.testing.assert_allclose(two["sma_90"].to_numpy(), sma(close, 4)[-3:])
    np.testing.assert_allclose(two["ema_20"].to_numpy(), ema(close, 3)[-3:])

    cold = build_bars(one_minute_frame(rows), date(2024, 7, 10), config).filter(pl.col("bar_minutes") == 2)
    # Without warm-up three bars cannot fill a 4-bar SMA.
    assert cold["sma_90"].is_null().all() and not cold["indicators_warm"].any()
