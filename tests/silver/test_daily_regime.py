"""The atr_regime chart block: Wilder's true range, the daily ATR and its rank, from earlier sessions only, the same from the lake or the raw files."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.assets import daily_history
from spymaster_assets.silver.chart_features import chart_features
from spymaster_assets.silver.daily_regime import DAILY_BAR_SCHEMA, daily_atr_regime, true_ranges
from spymaster_assets.silver.feature_names import chart_columns
from spymaster_resources import SpymasterResource

from tests.conftest import CHAIN_SESSIONS, sample_root

#: Small windows, so the five real chain sessions reach a defined ATR and rank.
SMALL = replace(SpymasterConfig(), chart_blocks=("atr_regime",), daily_atr_sessions=2, atr_regime_sessions=3, atr_regime_min_sessions=2)


def _daily(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=list(DAILY_BAR_SCHEMA), orient="row").cast(DAILY_BAR_SCHEMA)


def test_true_range_uses_the_previous_close_of_the_same_contract_only():
    daily = _daily([
        (date(2024, 3, 11), 1, 105.0, 100.0, 104.0),
        (date(2024, 3, 12), 1, 110.0, 106.0, 107.0),  # gap up: 110 - min(106, 104) = 6
        (date(2024, 3, 13), 1, 106.0, 103.0, 105.0),  # the previous close above the high: 107 - 103 = 4
        (date(2024, 3, 14), 2, 130.0, 127.0, 128.0),  # roll to another contract: 130 - 127 = 3, not 130 - 105
    ])
    np.testing.assert_array_equal(true_ranges(daily), [5.0, 6.0, 4.0, 3.0])


def test_the_daily_atr_and_its_rank_equal_a_direct_computation():
    rng = np.random.default_rng(7)
    n = 40
    close = 4000 + np.cumsum(rng.normal(0, 10, n))
    high, low = close + rng.uniform(1, 20, n), close - rng.uniform(1, 20, n)
    daily = _daily([(date(2024, 1, 1).fromordinal(date(2024, 1, 1).toordinal() + i), 7, high[i], low[i], close[i]) for i in range(n)])
    config = replace(SpymasterConfig(), daily_atr_sessions=5, atr_regime_sessions=12, atr_regime_min_sessions=4)
    atr, rank = daily_atr_regime(daily, config)
    tr = [high[0] - low[0]] + [max(high[i], close[i - 1]) - min(low[i], close[i - 1]) for i in range(1, n)]
    atrs = [sum(tr[i - 4:i + 1]) / 5 for i in range(4, n)]
    assert atr == pytest.approx(atrs[-1], rel=1e-12)
    assert rank == pytest.approx(sum(a <= atrs[-1] for a in atrs[-12:]) / 12)
    # Too little history: no ATR below 5 sessions, no rank below 4 ATR values.
    assert all(np.isnan(daily_atr_regime(daily.head(4), config)))
    short_atr, short_rank = daily_atr_regime(daily.head(7), config)
    assert not np.isnan(short_atr) and np.isnan(short_rank)
    with pytest.raises(ValueError, match="date order"):
        daily_atr_regime(daily.reverse(), config)


def test_the_history_holds_only_earlier_sessions_and_is_the_same_from_the_lake_or_the_raw_files(materialized_home, tmp_path):
    """Point in time, and the lake a function of the raw files: the day's own bars and later sessions
    never enter, and a data root where no bronze of those sessions was written yet (only raw files up
    to the day before) gives the same daily bars."""
    lake = SpymasterResource(home=str(materialized_home)).lake
    day = CHAIN_SESSIONS[3]
    got = daily_history(lake, day, SMALL)
    assert got["session_date"].to_list() == CHAIN_SESSIONS[:3][-(SMALL.daily_atr_sessions + SMALL.atr_regime_sessions - 1):]
    for row in got.iter_rows(named=True):
        bars = lake.read("bronze", "bronze_futures_ohlcv_1m", row["session_date"]).sort("ts_event")
        assert (row["high"], row["low"], row["close"], row["instrument_id"]) == (bars["high"].max(), bars["low"].min(), bars["close"][-1], bars["instrument_id"][0])
    raw_only = SpymasterResource(home=str(sample_root(tmp_path / "raw_only", through=(day.replace(day=day.day - 1)).strftime("%Y%m%d"))))
    from_raw = daily_history(raw_only.lake, day, SMALL, raw_only.catalog)
    assert from_raw.equals(got)
    assert daily_history(raw_only.lake, day, SMALL).height == 0  # neither bronze nor a catalog: nothing, not an error


def test_the_block_gives_every_anchor_the_day_s_regime_over_its_own_atr(materialized_home):
    lake = SpymasterResource(home=str(materialized_home)).lake
    day = CHAIN_SESSIONS[4]
    state = lake.read("silver", "silver_level_state", day)
    bars = lake.read("silver", "silver_bars", day).filter(pl.col("bar_minutes") == 1)
    history = daily_history(lake, day, SMALL)
    got = chart_features(state, bars, day, SMALL, None, history)
    assert list(got) == chart_columns(SMALL) == ["daily_atr_atr", "daily_atr_pct_1y"]
    atr, rank = daily_atr_regime(history, SMALL)
    assert not np.isnan(atr) and not np.isnan(rank)
    np.testing.assert_allclose(got["daily_atr_atr"], atr / state["atr_points"].to_numpy(), rtol=1e-12)
    assert (got["daily_atr_pct_1y"] == rank).all()
    assert np.isnan(chart_features(state, bars, day, SMALL)["daily_atr_pct_1y"]).all()  # without the history: null
