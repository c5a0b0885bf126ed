"""silver_levels: pre-market and opening-range windows across DST, moving-average levels, missing kinds."""

from datetime import date, datetime, timedelta, timezone

import polars as pl

from spymaster_core.config import LEVEL_KINDS, SpymasterConfig
from spymaster_assets.silver.bars import build_bars
from spymaster_assets.silver.levels import compute_levels, levels_summary
from spymaster_assets.silver.schemas import validate_silver_levels

UTC = timezone.utc
CONFIG = SpymasterConfig()


def minute_frame(start, n, price=100.0, spikes=None):
    """n flat 1-minute bars from ``start``; ``spikes`` maps minute offset -> (high, low)."""
    spikes = spikes or {}
    ts = [start + timedelta(minutes=i) for i in range(n)]
    high = [spikes.get(i, (price, price))[0] for i in range(n)]
    low = [spikes.get(i, (price, price))[1] for i in range(n)]
    return pl.DataFrame(
        {"ts_event": ts, "open": [price] * n, "high": high, "low": low, "close": [price] * n, "volume": [1] * n},
        schema_overrides={"volume": pl.Int64},
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


def levels_at(levels, ts):
    return dict(levels.filter(pl.col("ts_event") == ts).select("level_kind", "level_price").iter_rows())


def check_windows(session, premarket_utc):
    """Spikes just outside each window must be ignored, spikes just inside must set the level."""
    start = premarket_utc - timedelta(minutes=30)
    rth = premarket_utc + timedelta(hours=5, minutes=30)  # 09:30 ET in the same season
    m = lambda t: int((t - start).total_seconds() // 60)  # noqa: E731 - minute offset of an instant
    spikes = {
        m(premarket_utc) - 1: (500.0, 10.0),  # 03:59 ET: before the pre-market
        m(premarket_utc): (120.0, 99.0),  # 04:00 ET: first pre-market minute
        m(rth) - 1: (110.0, 80.0),  # 09:29 ET: last pre-market minute
        m(rth): (130.0, 99.5),  # 09:30 ET: first opening-range minute (not pre-market)
        m(rth) + 14: (100.5, 70.0),  # 09:44 ET: last opening-range minute
        m(rth) + 15: (400.0, 1.0),  # 09:45 ET: after the opening range
    }
    bars = build_bars(minute_frame(start, 9 * 60, spikes=spikes), session, CONFIG)
    levels = compute_levels(bars, session, CONFIG)
    validate_silver_levels(levels)
    at_open = levels_at(levels, rth)
    assert at_open["PM_HIGH"] == 120.0 and at_open["PM_LOW"] == 80.0
    assert "OR_HIGH" not in at_open
    # 09:44 is a 2-minute close but the opening range is not complete; 09:46 is the first close after it.
    assert "OR_HIGH" not in levels_at(levels, rth + timedelta(minutes=14))
    at_or = levels_at(levels, rth + timedelta(minutes=16))
    assert (at_or["OR_HIGH"], at_or["OR_LOW"]) == (130.0, 70.0)
    # Nothing is known as PM before 09:30, and no row lies outside [04:00, 12:30] ET.
    assert levels.filter(pl.col("level_kind") == "PM_HIGH")["ts_event"].min() == rth
    assert levels["ts_event"].min() >= premarket_utc
    assert levels["ts_event"].max() <= rth + timedelta(hours=3)
    return bars, levels


def test_levels_winter_session_after_dst_end():
    # 2013-11-04: first session after US DST ended, 04:00 ET = 09:00 UTC.
    check_windows(date(2013, 11, 4), datetime(2013, 11, 4, 9, 0, tzinfo=UTC))


def test_levels_summer_session():
    # 2024-07-10: EDT, 04:00 ET = 08:00 UTC.
    check_windows(date(2024, 7, 10), datetime(2024, 7, 10, 8, 0, tzinfo=UTC))


def test_moving_average_levels_are_the_bar_values_at_each_close():
    bars, levels = check_windows(date(2024, 7, 10), datetime(2024, 7, 10, 8, 0, tzinfo=UTC))
    two = bars.filter(pl.col("bar_minutes") == 2).select(pl.col("ts_close").alias("ts_event"), "sma_90", "ema_20")
    sma_levels = levels.filter(pl.col("level_kind") == "SMA_90").join(two, on="ts_event")
    assert sma_levels.height > 0
    assert (sma_levels["level_price"] == sma_levels["sma_90"]).all()
    # Bars start at 03:30 ET (07:30 UTC). The SMA needs 90 two-minute bars (180 minutes): first
    # known at 06:30 ET = 10:30 UTC. The EMA needs 20 bars (40 minutes): 04:10 ET = 08:10 UTC.
    assert sma_levels["ts_event"].min() == datetime(2024, 7, 10, 10, 30, tzinfo=UTC)
    ema_levels = levels.filter(pl.col("level_kind") == "EMA_20")
    assert ema_levels["ts_event"].min() == datetime(2024, 7, 10, 8, 10, tzinfo=UTC)


def test_missing_window_gives_absent_kind_and_summary():
    session = date(2024, 7, 10)
    rth = datetime(2024, 7, 10, 13, 30, tzinfo=UTC)
    # No pre-market bars, and 30 minutes = 15 two-minute bars: too few for the 20-bar EMA or the SMA.
    bars = build_bars(minute_frame(rth, 30), session, CONFIG)
    levels = compute_levels(bars, session, CONFIG)
    assert set(levels["level_kind"].unique()) == {"OR_HIGH", "OR_LOW"}
    summary = levels_summary(levels)
    assert summary["kinds_missing"] == ["PM_HIGH", "PM_LOW", "SMA_90", "EMA_20"]
    assert summary["kinds_present"] == ["OR_HIGH", "OR_LOW"]
    assert summary["rows"] == levels.height
    assert summary["first_known_utc"]["OR_HIGH"] == (rth + timedelta(minutes=16)).isoformat()
    # Rows come out in LEVEL_KINDS order within each bar close.
    first = levels.filter(pl.col("ts_event") == levels["ts_event"].min())["level_kind"].to_list()
    assert first == [k for k in LEVEL_KINDS if k in first]
