"""Point in time: the silver features at anchor T only use bars closed by T.

The whole chain bars -> levels -> level_state runs once on the full session and once on 1-minute
data truncated to bars with close <= T; the rows at T must be identical in every column. Also
holds the synthetic random-walk session used by other silver tests.
"""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from spymaster_core.config import SpymasterConfig
from spymaster_assets.sessions import et_to_utc, session_bounds_utc
from spymaster_assets.silver.bars import build_bars
from spymaster_assets.silver.labels import label_outcomes
from spymaster_assets.silver.level_state import compute_level_state
from spymaster_assets.silver.levels import compute_levels
from spymaster_assets.silver.schemas import (
    validate_silver_bars,
    validate_silver_level_state,
    validate_silver_levels,
    validate_silver_outcomes,
)

CONFIG = SpymasterConfig()
SESSION = date(2024, 3, 12)  # first week of EDT
PREVIOUS = date(2024, 3, 11)


def random_walk_session(session_date: date, seed: int, start_price: float = 5000.0, drop_fraction: float = 0.05) -> pl.DataFrame:
    """Bronze-like 1-minute ES bars over a full Globex session (18:00 ET .. 17:00 ET), random walk in 0.25 ticks.

    A fraction of minutes is dropped (no trades) to exercise forward-filling.
    """
    start, end = session_bounds_utc(session_date, CONFIG)
    n = int((end - start).total_seconds() // 60)
    rng = np.random.default_rng(seed)
    close = start_price + np.round(np.cumsum(rng.normal(0, 1.0, n)) * 4) / 4
    open_ = np.r_[start_price, close[:-1]]
    high = np.maximum(open_, close) + np.round(rng.exponential(0.5, n) * 4) / 4
    low = np.minimum(open_, close) - np.round(rng.exponential(0.5, n) * 4) / 4
    frame = pl.DataFrame(
        {
            "session_date": [session_date] * n,
            "ts_event": pl.datetime_range(start, end - timedelta(minutes=1), "1m", time_unit="ns", time_zone="UTC", eager=True),
            "instrument_id": pl.Series([4916] * n, dtype=pl.UInt32),
            "raw_symbol": ["ESM4"] * n,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.poisson(200, n).astype(np.int64),
        }
    )
    keep = rng.random(n) >= drop_fraction
    return frame.filter(pl.Series(keep))


def run_silver(session_1m: pl.DataFrame, warmup_1m: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    bars = build_bars(session_1m, SESSION, CONFIG, warmup_1m=warmup_1m)
    levels = compute_levels(bars, SESSION, CONFIG)
    state = compute_level_state(bars, levels, SESSION, CONFIG)
    return bars, levels, state


@pytest.fixture(scope="module")
def full_run():
    session = random_walk_session(SESSION, seed=11)
    warmup = random_walk_session(PREVIOUS, seed=10)
    return session, warmup, run_silver(session, warmup)


def test_full_session_tables_match_their_schemas(full_run):
    _, _, (bars, levels, state) = full_run
    validate_silver_bars(bars)
    validate_silver_levels(levels)
    validate_silver_level_state(state, CONFIG)
    validate_silver_outcomes(label_outcomes(bars, state, CONFIG))
    # 90 anchors (09:32 .. 12:30) x 6 kinds, minus OR_HIGH/OR_LOW at 09:32 .. 09:44 (7 anchors).
    assert state.height == 90 * 6 - 7 * 2


@pytest.mark.parametrize("anchor_et", ["09:32", "09:44", "09:46", "10:30", "12:30"])
def test_level_state_at_anchor_uses_only_bars_closed_by_it(full_run, anchor_et):
    session, warmup, (_, full_levels, full_state) = full_run
    anchor = et_to_utc(SESSION, datetime.strptime(anchor_et, "%H:%M").time())
    truncated = session.filter(pl.col("ts_event") + timedelta(minutes=1) <= anchor)
    _, levels, state = run_silver(truncated, warmup)

    expected = full_state.filter(pl.col("ts_event") == anchor)
    got = state.filter(pl.col("ts_event") == anchor)
    assert expected.height >= 4
    assert_frame_equal(got, expected, check_exact=True)
    assert_frame_equal(
        levels.filter(pl.col("ts_event") == anchor), full_levels.filter(pl.col("ts_event") == anchor), check_exact=True
    )


def test_changing_the_future_does_not_change_the_present(full_run):
    session, warmup, (_, _, full_state) = full_run
    anchor = et_to_utc(SESSION, datetime.strptime("10:00", "%H:%M").time())
    # Shift every bar opening at or after the anchor by 50 points: only data after T changes.
    shocked = session.with_columns(
        [
            pl.when(pl.col("ts_event") >= anchor).then(pl.col(c) + 50.0).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close")
        ]
    )
    _, _, state = run_silver(shocked, warmup)
    assert_frame_equal(
        state.filter(pl.col("ts_event") <= anchor), full_state.filter(pl.col("ts_event") <= anchor), check_exact=True
    )
    # ...while the later rows do change (the test would notice a feature that ignored the data).
    assert not state.filter(pl.col("ts_event") > anchor)["close"].equals(full_state.filter(pl.col("ts_event") > anchor)["close"])
