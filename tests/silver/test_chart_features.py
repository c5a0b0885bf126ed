"""The chart blocks on a real ES session: independent recomputation, point in time (truncation), layout and version."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold.vectors import vector_columns, vector_version
from spymaster_assets.sessions import et_to_utc
from spymaster_assets.silver.chart_features import chart_features
from spymaster_assets.silver.feature_names import CHART_BLOCKS, chart_columns
from spymaster_resources import SpymasterResource

from tests.conftest import CHAIN_SESSIONS

ALL = replace(SpymasterConfig(), chart_blocks=CHART_BLOCKS)


@pytest.fixture(scope="module")
def session(materialized_home):
    lake = SpymasterResource(home=str(materialized_home)).lake
    day = CHAIN_SESSIONS[2]
    bars = lake.read("silver", "silver_bars", day)
    state = lake.read("silver", "silver_level_state", day)
    previous = lake.read("bronze", "bronze_futures_ohlcv_1m", CHAIN_SESSIONS[1])
    return day, bars.filter(pl.col("bar_minutes") == 1), state, previous


def test_the_chart_columns_follow_the_blocks_and_leave_the_default_layout_alone():
    assert chart_columns(SpymasterConfig()) == []
    assert chart_columns(ALL) == [
        "vwap_rth_dist_atr", "vwap_session_dist_atr", "overnight_range_atr", "day_range_atr",
        "round_25_dist_atr", "round_50_dist_atr", "round_100_dist_atr", "minutes_since_level_set",
        "prev_rth_high_dist_atr", "prev_rth_low_dist_atr", "prev_rth_close_dist_atr", "open_gap_atr", "daily_atr_atr", "daily_atr_pct_1y",
    ]
    assert chart_columns(replace(ALL, chart_blocks=("level_age", "vwap"))) == ["vwap_rth_dist_atr", "vwap_session_dist_atr", "minutes_since_level_set"]
    assert set(chart_columns(ALL)) <= set(vector_columns(ALL)) and not set(chart_columns(ALL)) & set(vector_columns(SpymasterConfig()))
    assert vector_version(ALL) != vector_version(SpymasterConfig()) != vector_version(replace(ALL, chart_blocks=("vwap",)))
    with pytest.raises(ValueError, match="unknown chart blocks"):
        chart_features(pl.DataFrame(), pl.DataFrame(), CHAIN_SESSIONS[0], replace(ALL, chart_blocks=("fibonacci",)))


def test_the_chart_features_equal_an_independent_computation(session):
    day, bars, state, previous = session
    got = chart_features(state, bars, day, ALL, previous)
    rth_open = et_to_utc(day, ALL.rth_open)
    for row_number in (0, state.height // 2, state.height - 1):
        row = state.row(row_number, named=True)
        seen = bars.filter(pl.col("ts_close") <= row["ts_event"])
        rth = seen.filter(pl.col("ts_close") > rth_open)
        overnight = seen.filter(pl.col("ts_close") <= rth_open)
        typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
        vwap_rth = rth.select((typical * pl.col("volume")).sum() / pl.col("volume").sum()).item()
        vwap_all = seen.select((typical * pl.col("volume")).sum() / pl.col("volume").sum()).item()
        atr = row["atr_points"]
        assert got["vwap_rth_dist_atr"][row_number] == pytest.approx((row["close"] - vwap_rth) / atr, rel=1e-9)
        assert got["vwap_session_dist_atr"][row_number] == pytest.approx((row["close"] - vwap_all) / atr, rel=1e-9)
        assert got["overnight_range_atr"][row_number] == pytest.approx((overnight["high"].max() - overnight["low"].min()) / atr)
        assert got["day_range_atr"][row_number] == pytest.approx((rth["high"].max() - rth["low"].min()) / atr)
        level = row["level_price"]
        assert got["round_100_dist_atr"][row_number] == pytest.approx(abs(level - round(level / 100) * 100) / atr)
    # Level age: the PM high was made by the last pre-market bar whose high is the level.
    pm = state.filter(pl.col("level_kind") == "PM_HIGH").row(0, named=True)
    maker = bars.filter((pl.col("high") == pm["level_price"]) & (pl.col("ts_event") < rth_open))["ts_close"].max()
    row_number = state["ts_event"].to_list().index(pm["ts_event"]) + state.filter(pl.col("ts_event") == pm["ts_event"])["level_kind"].to_list().index("PM_HIGH")
    assert got["minutes_since_level_set"][row_number] == pytest.approx((pm["ts_event"] - maker).total_seconds() / 60)
    moving = (state["level_kind"].is_in(["SMA_90", "EMA_20"])).to_numpy()
    assert np.isnan(got["minutes_since_level_set"][moving]).all()
    # The previous session's regular hours (09:30-16:00 New York) and today's first regular-hours open.
    clock = pl.col("ts_event").dt.convert_time_zone("America/New_York").dt.time()
    regular = previous.filter((clock >= ALL.rth_open) & (clock < ALL.rth_close)).sort("ts_event")
    assert regular.height == 390
    first_open = bars.filter(pl.col("ts_event") == rth_open)["open"].item()
    row = state.row(0, named=True)
    assert got["prev_rth_high_dist_atr"][0] == pytest.approx((row["close"] - regular["high"].max()) / row["atr_points"])
    assert got["prev_rth_low_dist_atr"][0] == pytest.approx((row["close"] - regular["low"].min()) / row["atr_points"])
    assert got["prev_rth_close_dist_atr"][0] == pytest.approx((row["close"] - regular["close"][-1]) / row["atr_points"])
    assert got["open_gap_atr"][0] == pytest.approx((first_open - regular["close"][-1]) / row["atr_points"])
    # Without the previous session (a roll), the block is null, the others are not.
    alone = chart_features(state, bars, day, ALL)
    assert np.isnan(alone["open_gap_atr"]).all() and np.array_equal(alone["day_range_atr"], got["day_range_atr"], equal_nan=True)


def test_each_row_is_what_the_bars_closed_by_its_anchor_give(session):
    """Point in time: truncating the bars at each anchor reproduces the row bit for bit."""
    day, bars, state, previous = session
    full = chart_features(state, bars, day, ALL, previous)
    for row_number in range(0, state.height, max(1, state.height // 12)):
        anchor = state["ts_event"][row_number]
        truncated = chart_features(state[row_number:row_number + 1], bars.filter(pl.col("ts_close") <= anchor), day, ALL, previous)
        for name, values in truncated.items():
            np.testing.assert_array_equal(values, full[name][row_number:row_number + 1], err_msg=f"{name} at {anchor}")


def test_every_chart_column_is_described_for_the_ui():
    from spymaster_assets.silver.schemas import level_state_column_descriptions

    described = level_state_column_descriptions(ALL)
    assert all(described[c] != c and "chart block" in described[c] for c in chart_columns(ALL))
