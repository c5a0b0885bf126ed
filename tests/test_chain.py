"""Five real sample sessions materialized through every asset (Dagster, in process), then checked."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from spymaster_core.config import LEVEL_KINDS, OUTCOMES, SpymasterConfig
from spymaster_resources.lake import Lake

from conftest import CHAIN_SESSIONS

TABLES = {
    "bronze": ["bronze_definitions", "bronze_futures_ohlcv_1m"],
    "silver": ["silver_bars", "silver_levels", "silver_level_state", "silver_outcomes"],
    "gold": ["gold_episodes", "gold_normalization", "gold_signals", "gold_evaluation"],
}


@pytest.fixture(scope="module")
def lake(materialized_home) -> Lake:
    return Lake(SpymasterConfig(home=materialized_home).lake_dir)


def test_every_table_has_every_session(lake):
    for tier, tables in TABLES.items():
        for table in tables:
            assert lake.dates(tier, table) == CHAIN_SESSIONS, table
    for day in CHAIN_SESSIONS:
        assert (lake.partition_dir("gold", "gold_setup_index", day) / "manifest.json").is_file()


def test_levels_equal_an_independent_computation_from_the_raw_bars(lake):
    """PM and OR levels of two sessions recomputed here straight from bronze with New York wall-clock filters."""
    for day in (date(2013, 10, 8), date(2013, 10, 10)):
        bars = lake.read("bronze", "bronze_futures_ohlcv_1m", day).with_columns(
            et=pl.col("ts_event").dt.convert_time_zone("America/New_York")
        )
        local = bars.filter(pl.col("et").dt.date() == day)
        minutes = local["et"].dt.hour().cast(pl.Int32) * 60 + local["et"].dt.minute().cast(pl.Int32)
        pm = local.filter((minutes >= 4 * 60) & (minutes < 9 * 60 + 30))
        orng = local.filter((minutes >= 9 * 60 + 30) & (minutes < 9 * 60 + 45))
        expected = {"PM_HIGH": pm["high"].max(), "PM_LOW": pm["low"].min(), "OR_HIGH": orng["high"].max(), "OR_LOW": orng["low"].min()}
        levels = lake.read("silver", "silver_levels", day)
        last = levels.sort("ts_event").group_by("level_kind").last()
        got = dict(zip(last["level_kind"], last["level_price"]))
        for kind, value in expected.items():
            assert got[kind] == pytest.approx(value), (day, kind)
        # Known only once complete: no PM level before 09:30 ET, no OR level before 09:45 ET.
        first = levels.group_by("level_kind").agg(pl.col("ts_event").min().dt.convert_time_zone("America/New_York"))
        first_at = {k: (t.hour, t.minute) for k, t in zip(first["level_kind"], first["ts_event"])}
        assert first_at["PM_HIGH"] >= (9, 30) and first_at["OR_HIGH"] >= (9, 45)
        assert set(got) == set(LEVEL_KINDS)


def test_sma_matches_a_direct_computation(lake):
    """SMA_90 of the session's last 2-minute bar equals the mean of the last 90 closes, warm-up from the
    previous session included (EMA_20 is checked against a direct recursion in tests/silver/test_indicators.py)."""
    day = date(2013, 10, 9)
    bars = lake.read("silver", "silver_bars", day).filter(pl.col("bar_minutes") == 2).sort("ts_event")
    closes = bars["close"].to_numpy()
    i = bars.height - 1
    assert bars["sma_90"][i] == pytest.approx(closes[i - 89 : i + 1].mean())


def test_outcomes_and_signals_are_well_formed(lake):
    for day in CHAIN_SESSIONS:
        outcomes = lake.read("silver", "silver_outcomes", day)
        assert set(outcomes["outcome"].unique()) <= set(OUTCOMES)
        signals = lake.read("gold", "gold_signals", day)
        total = signals["p_break"] + signals["p_reject"] + signals["p_chop"]
        assert ((total - 1).abs() < 1e-6).all()
        episodes = lake.read("gold", "gold_episodes", day)
        assert signals.height == episodes.height
        assert (episodes["distance_atr"].abs() <= 2.0).all()


def test_statistics_and_index_hold_nothing_from_the_day_or_later(lake):
    for day in CHAIN_SESSIONS:
        stats = lake.read("gold", "gold_normalization", day)
        last = stats["last_session"].drop_nulls()
        assert (last < day).all()
        manifest = json.loads((lake.partition_dir("gold", "gold_setup_index", day) / "manifest.json").read_text())
        sessions = [date.fromisoformat(s) for s in manifest["source_session_dates"]]
        assert sessions == [d for d in CHAIN_SESSIONS if d < day]
        neighbours = lake.read("gold", "gold_signal_neighbours", day)
        assert (neighbours["neighbour_session_date"] < day).all()


def test_first_session_has_no_history_and_later_ones_do(lake):
    first = lake.read("gold", "gold_signals", CHAIN_SESSIONS[0])
    assert (first["n_neighbours"] == 0).all()
    later = lake.read("gold", "gold_signals", CHAIN_SESSIONS[-1])
    assert (later["n_neighbours"] > 0).any()


def test_evaluation_scores_every_model_on_the_sessions_with_enough_history(lake):
    evaluation = lake.read("gold", "gold_evaluation", CHAIN_SESSIONS[-1])
    overall = evaluation.filter((pl.col("scope") == "cumulative") & (pl.col("level_kind") == "ALL"))
    assert overall["model"].to_list() == ["base_rate", "class_mix", "distance", "distance_calibrated", "knn", "xgboost", "answer_t1", "answer"]
    # min_history_sessions = 3: 10-10 and 10-11 are scored, every model answered each of their episodes.
    scored = sum(lake.read("gold", "gold_episodes", d).height for d in CHAIN_SESSIONS[3:])
    assert (overall["n_sessions"] == 2).all() and (overall["n_episodes"] == scored).all()
    for row in overall.iter_rows(named=True):
        assert 0.0 <= row["brier"] <= 2.0 and 0.0 <= row["ece"] <= 1.0
        assert row["bss_base_lo"] <= row["bss_base"] + 1e-12 and row["bss_base"] <= row["bss_base_hi"] + 1e-12
    base = overall.filter(pl.col("model") == "base_rate").row(0, named=True)
    assert base["bss_base"] == 0.0
    best = base["best_baseline"]
    assert best in ("base_rate", "class_mix", "distance", "distance_calibrated")
    briers = dict(zip(overall["model"], overall["brier"]))
    assert briers[best] == min(briers[name] for name in ("base_rate", "class_mix", "distance", "distance_calibrated"))
    assert overall.filter(pl.col("model") == best)["bss_best"][0] == 0.0
    assert set(evaluation["scope"].unique().to_list()) == {"cumulative", "cumulative_all", "cumulative_approach", "session"}


def test_models_are_saved_with_their_training_window(lake):
    for day in CHAIN_SESSIONS[:2]:
        note = json.loads((lake.partition_dir("gold", "gold_model", day) / "meta.json").read_text())
        assert note["model"] is None  # fewer than model_min_sessions (2) earlier sessions
    for day in CHAIN_SESSIONS[2:]:
        meta = json.loads((lake.partition_dir("gold", "gold_model", day) / "meta.json").read_text())
        assert meta["as_of"] == day.isoformat()
        assert max(meta["training_sessions"]) < day.isoformat()
        assert (lake.partition_dir("gold", "gold_model", day) / "model.json").is_file()
