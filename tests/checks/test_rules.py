"""The check rules on small hand-built frames (no Dagster)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from spymaster_assets.checks.asset_checks import (
    expected_index_sizes,
    index_size_mismatches,
    is_degenerate,
    levels_outside_session_range,
    missing_rth_minutes,
    outcome_distribution,
    paired_level_violations,
    regular_hours_utc,
)
from spymaster_core.config import SpymasterConfig

UTC = timezone.utc
TS = pl.Datetime("ns", "UTC")
CFG = SpymasterConfig()


def _one_minute_bars(opens: list[datetime]) -> pl.DataFrame:
    return pl.DataFrame({"bar_minutes": [1] * len(opens), "ts_event": opens}, schema={"bar_minutes": pl.Int8, "ts_event": TS})


def test_missing_rth_minutes_lists_the_missing_opens_on_a_normal_day():
    # 2013-10-08 is EDT (UTC-4): regular hours 13:30-20:00 UTC, 390 minutes.
    day = date(2013, 10, 8)
    start = datetime(2013, 10, 8, 13, 30, tzinfo=UTC)
    every = [start + timedelta(minutes=i) for i in range(390)]
    dropped = {start + timedelta(minutes=1), start + timedelta(minutes=389)}  # 09:31 and 15:59 ET
    overnight = [start - timedelta(hours=5)]  # outside regular hours: ignored
    two_minute = pl.DataFrame({"bar_minutes": [2], "ts_event": [start + timedelta(minutes=1)]}, schema={"bar_minutes": pl.Int8, "ts_event": TS})
    bars = pl.concat([_one_minute_bars([t for t in every if t not in dropped] + overnight), two_minute])
    missing = missing_rth_minutes(bars, day, CFG)
    assert missing["time_et"].to_list() == ["09:31", "15:59"]
    assert missing["ts_event"].to_list() == sorted(dropped)


def test_early_close_day_expects_bars_only_until_the_exchange_close():
    # 2013-11-29 (day after Thanksgiving, EST = UTC-5): the CME_Equity calendar closes at 13:00 ET.
    day = date(2013, 11, 29)
    start, end = regular_hours_utc(day, CFG)
    assert (start, end) == (datetime(2013, 11, 29, 14, 30, tzinfo=UTC), datetime(2013, 11, 29, 18, 0, tzinfo=UTC))
    bars = _one_minute_bars([start + timedelta(minutes=i) for i in range(210)])  # 09:30-12:59 ET
    assert missing_rth_minutes(bars, day, CFG).height == 0
    assert missing_rth_minutes(bars.head(209), day, CFG)["time_et"].to_list() == ["12:59"]


def test_missing_rth_minutes_rejects_a_holiday():
    with pytest.raises(ValueError, match="not a CME_Equity session"):
        missing_rth_minutes(_one_minute_bars([]), date(2013, 12, 25), CFG)


def _levels(rows: list[tuple[datetime, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"ts_event": TS, "level_kind": pl.Utf8, "level_price": pl.Float64}, orient="row")


def test_paired_level_violations_finds_only_swapped_pairs():
    t1 = datetime(2013, 10, 8, 13, 50, tzinfo=UTC)
    t2 = t1 + timedelta(minutes=2)
    levels = _levels(
        [
            (t1, "PM_HIGH", 1700.0), (t1, "PM_LOW", 1690.0), (t1, "OR_HIGH", 1695.0), (t1, "OR_LOW", 1695.0),  # equal is fine
            (t2, "PM_HIGH", 1690.0), (t2, "PM_LOW", 1700.0), (t2, "OR_HIGH", 1695.0), (t2, "OR_LOW", 1696.5),
            (t2, "SMA_90", 1.0),
        ]
    )
    bad = paired_level_violations(levels)
    assert bad.rows() == [(t2, "OR", 1696.5, 1695.0), (t2, "PM", 1700.0, 1690.0)]


def _bars(rows: list[tuple[int, datetime, float, float]]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema={"bar_minutes": pl.Int8, "ts_event": TS, "high": pl.Float64, "low": pl.Float64}, orient="row")
    return frame.with_columns(ts_close=pl.col("ts_event") + pl.duration(minutes=pl.col("bar_minutes").cast(pl.Int64)))


def test_levels_outside_session_range_uses_only_bars_closed_by_the_level_time():
    t0 = datetime(2013, 10, 8, 13, 30, tzinfo=UTC)
    m = lambda k: t0 + timedelta(minutes=k)  # noqa: E731
    # 1-minute bars: the range after 2 minutes is [99, 101]; the 4th bar (closing at t0+4) reaches 110.
    bars = _bars(
        [
            (1, m(0), 101.0, 100.0), (1, m(1), 100.5, 99.0), (1, m(2), 102.0, 100.0), (1, m(3), 110.0, 101.0),
            (2, m(0), 101.0, 99.0), (2, m(2), 110.0, 100.0),
        ]
    )
    cfg = dataclasses.replace(CFG, sma_period=2, ema_period=1, tick_size_points=0.25)  # MAs checked from the 2nd / 5th 2-minute bar
    levels = _levels(
        [
            (m(2), "PM_HIGH", 101.0),  # = max high closed by t0+2: inside
            (m(2), "PM_LOW", 99.0),  # = min low: inside
            (m(2), "OR_HIGH", 110.0),  # the 110 bar closes at t0+4, after t0+2: outside (look-ahead)
            (m(4), "OR_HIGH", 110.0),  # now inside
            (m(2), "SMA_90", 200.0),  # only one 2-minute bar closed: not checked yet
            (m(4), "SMA_90", 98.9),  # two bars closed: checked, below 99 -> outside
            (m(4), "EMA_20", 98.9),  # EMA needs 5 x 1 bars: not checked
            (m(0), "PM_HIGH", 100.0),  # no bar closed yet: nothing it could come from
        ]
    )
    bad = levels_outside_session_range(levels, bars, cfg)
    assert bad.select("ts_event", "level_kind", "level_price").rows() == [(m(0), "PM_HIGH", 100.0), (m(2), "OR_HIGH", 110.0), (m(4), "SMA_90", 98.9)]
    assert bad.filter(pl.col("level_kind") == "OR_HIGH").select("range_low", "range_high").row(0) == (99.0, 101.0)


def test_outcome_distribution_and_degeneracy():
    def outcomes(*labels: str) -> pl.DataFrame:
        return pl.DataFrame({"outcome": list(labels)})

    assert outcome_distribution(outcomes("BREAK", "CHOP", "CHOP")) == {"BREAK": 1, "REJECT": 0, "CHOP": 2}
    assert is_degenerate(outcome_distribution(outcomes(*["CHOP"] * 30)))
    assert not is_degenerate(outcome_distribution(outcomes(*["CHOP"] * 29)))  # too few to judge
    assert not is_degenerate(outcome_distribution(outcomes(*["CHOP"] * 30, "REJECT")))
    assert not is_degenerate({"BREAK": 0, "REJECT": 0, "CHOP": 0})


def test_expected_index_sizes_follow_schema_membership_and_layout():
    episodes = pl.DataFrame(
        {
            "partition_key": ["PM_HIGH|UP|0-15", "PM_HIGH|UP|0-15", "PM_HIGH|UP|0-15", "OR_LOW|DOWN|15-30", "OR_LOW|DOWN|15-30"],
            "feature_families": ["bars", "bars+tape", "bars+tape", "bars+tape", "bars"],
            "vector_version": ["v2-x", "v2-x", "v2-x", "v2-x", "v1-old"],  # the last is another layout: not indexed
        }
    )
    # The saved index claims only "bars": the bars+tape episodes still call for a bars+tape index.
    expected = expected_index_sizes(episodes, ["bars"], "v2-x").sort("schema", "partition_key")
    assert expected.rows() == [
        ("bars", "OR_LOW|DOWN|15-30", 1),
        ("bars", "PM_HIGH|UP|0-15", 3),
        ("bars+tape", "OR_LOW|DOWN|15-30", 1),
        ("bars+tape", "PM_HIGH|UP|0-15", 2),
    ]
    actual = pl.DataFrame(
        {"schema": ["bars", "bars", "bars+tape", "bars+tape"], "partition_key": ["OR_LOW|DOWN|15-30", "PM_HIGH|UP|0-15", "PM_HIGH|UP|0-15", "SMA_90|UP|0-15"], "n_vectors": [1, 3, 1, 4]}
    )
    mismatches = index_size_mismatches(actual, expected)
    assert mismatches.rows() == [
        ("bars+tape", "OR_LOW|DOWN|15-30", 0, 1),  # missing from the index
        ("bars+tape", "PM_HIGH|UP|0-15", 1, 2),  # short
        ("bars+tape", "SMA_90|UP|0-15", 4, 0),  # vectors no episode accounts for
    ]
