"""Train/serve parity: the bar-by-bar engine, fed a session's 1-minute bars one at a time, answers at
every anchor exactly as the batch silver_level_state and gold_signals of that session (real sample sessions)."""

from __future__ import annotations

import polars as pl
import pytest

from spymaster_assets.gold.as_of import known_before_from_lake
from spymaster_assets.screen.engine import BAR_COLUMNS, BarOrderError, SessionEngine
from spymaster_assets.silver.assets import warmup_bars
from spymaster_core.config import SpymasterConfig
from spymaster_resources.lake import Lake

from conftest import CHAIN_SESSIONS


def _engine(home, day) -> tuple[SessionEngine, pl.DataFrame, Lake, SpymasterConfig]:
    config = SpymasterConfig.for_home(home)
    lake = Lake(config.lake_dir)
    minutes = lake.read("bronze", "bronze_futures_ohlcv_1m", day).sort("ts_event")
    warmup, _ = warmup_bars(lake, day, int(minutes["instrument_id"][0]), config)  # silver_bars' own rule
    engine = SessionEngine(day, config, known_before_from_lake(lake, day, config), warmup_1m=warmup)
    return engine, minutes, lake, config


@pytest.mark.parametrize("day", CHAIN_SESSIONS, ids=str)
def test_bar_by_bar_answers_equal_the_batch_tables_at_every_anchor(materialized_home, day):
    engine, minutes, lake, _ = _engine(materialized_home, day)
    closes = []
    for bar in minutes.select(BAR_COLUMNS).iter_rows(named=True):
        closes.extend(engine.add_minute(bar))
    state = pl.concat([c.state for c in closes if c.state.height])
    signals = pl.concat([c.signals for c in closes if c.signals.height])
    batch_state = lake.read("silver", "silver_level_state", day)
    batch_signals = lake.read("gold", "gold_signals", day)
    assert state.height == batch_state.height and signals.height == batch_signals.height > 0
    assert state.select(batch_state.columns).equals(batch_state)
    assert signals.equals(batch_signals)
    # The level lines drawn at each close (from 04:00) are silver_levels' rows of that close.
    levels = pl.concat([c.levels for c in closes if c.levels.height])
    batch_levels = lake.read("silver", "silver_levels", day)
    assert levels.select(batch_levels.columns).equals(batch_levels)


def test_a_bar_out_of_order_is_refused_and_changes_nothing(materialized_home):
    engine, minutes, _, _ = _engine(materialized_home, CHAIN_SESSIONS[1])
    rows = list(minutes.select(BAR_COLUMNS).iter_rows(named=True))
    for bar in rows[:10]:
        engine.add_minute(bar)
    with pytest.raises(BarOrderError, match="out of order"):
        engine.add_minute(rows[5])
    assert engine.last_bar == rows[9]["ts_event"]
