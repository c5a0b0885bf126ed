"""Point in time of the whole answer on real sessions: what serves day D never saw D or later.

On the five real sample sessions materialized by Dagster (``materialized_home``, whose config.json
gives a model from 2 earlier sessions and a blend fitted from 1), the in-memory walk-forward
reproduces the materialized gold_signals, and changing a day's outcomes or a later day's setups
leaves every answer up to that day (model, blend, calibration, kNN, distance lookup) unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from spymaster_assets.gold import as_of
from spymaster_assets.gold.walk_forward import walk_forward
from spymaster_resources.lake import Lake

from conftest import CHAIN_SESSIONS

KEYS = ["session_date", "ts_event", "level_kind"]


@pytest.fixture(scope="module")
def chain(materialized_home):
    config = SpymasterConfig.for_home(materialized_home)
    lake = Lake(config.lake_dir)
    episodes = lake.read_many("gold", "gold_episodes", CHAIN_SESSIONS)
    return config, lake, episodes


def test_the_materialized_signals_use_a_model_and_a_fitted_blend(chain):
    config, lake, _ = chain
    sources = {d: set(lake.read("gold", "gold_signals", d)["answer_source"].unique().to_list()) for d in CHAIN_SESSIONS}
    assert sources == {
        CHAIN_SESSIONS[0]: {"no_history"},
        CHAIN_SESSIONS[1]: {"knn"},
        CHAIN_SESSIONS[2]: {"blend_default"},
        CHAIN_SESSIONS[3]: {"blend"},
        CHAIN_SESSIONS[4]: {"blend"},
    }
    # Cadence 2: 10-09 trains on 2 sessions, 10-10 reuses that model, 10-11 trains on 4.
    models = {d: as_of.model_as_of(lake, d, config) for d in CHAIN_SESSIONS[2:]}
    assert [len(m.training_sessions) for m in models.values()] == [2, 2, 4]
    assert all(m.trained_through < d for d, m in models.items())


def test_walk_forward_in_memory_reproduces_the_materialized_signals(chain):
    config, lake, episodes = chain
    memory = walk_forward(episodes, config).drop("outcome").sort(KEYS)
    stored = lake.read_many("gold", "gold_signals", CHAIN_SESSIONS).sort(KEYS)
    assert memory.columns == stored.columns
    floats = [c for c, t in stored.schema.items() if t == pl.Float64]
    assert memory.drop(floats).equals(stored.drop(floats))
    np.testing.assert_allclose(memory.select(floats).to_numpy(), stored.select(floats).to_numpy(), rtol=0, atol=1e-12)


def test_changing_a_days_outcomes_moves_nothing_up_to_that_day(chain):
    config, _, episodes = chain
    day = CHAIN_SESSIONS[3]
    before = walk_forward(episodes, config)
    flip = {"BREAK": "CHOP", "REJECT": "BREAK", "CHOP": "REJECT"}
    changed = episodes.with_columns(
        outcome=pl.when(pl.col("session_date") == day).then(pl.col("outcome").replace_strict(flip)).otherwise(pl.col("outcome"))
    )
    after = walk_forward(changed, config)
    signal_columns = [c for c in before.columns if c != "outcome"]
    up_to_day = pl.col("session_date") <= day
    assert after.filter(up_to_day).select(signal_columns).equals(before.filter(up_to_day).select(signal_columns))
    # The change reaches the next day (its model, kNN and blend saw it): the test can fail.
    later = pl.col("session_date") > day
    assert not after.filter(later).select("p_break", "p_knn_break", "p_xgb_break").equals(before.filter(later).select("p_break", "p_knn_break", "p_xgb_break"))


def test_changing_the_future_setups_moves_no_earlier_answer(chain):
    config, _, episodes = chain
    day = CHAIN_SESSIONS[3]
    before = walk_forward(episodes, config)
    noisy = episodes.with_columns(
        vector=pl.when(pl.col("session_date") > day).then(pl.col("vector").arr.eval(pl.element() * 3.0 + 1.0)).otherwise(pl.col("vector")),
        distance_atr=pl.when(pl.col("session_date") > day).then(-pl.col("distance_atr")).otherwise(pl.col("distance_atr")),
    )
    after = walk_forward(noisy, config)
    up_to_day = pl.col("session_date") <= day
    assert after.filter(up_to_day).equals(before.filter(up_to_day))
    assert not after.filter(~up_to_day).equals(before.filter(~up_to_day))


def test_walk_forward_is_deterministic_and_the_seed_matters(chain):
    config, _, episodes = chain
    first, again = walk_forward(episodes, config), walk_forward(episodes, config)
    assert first.equals(again)
    reseeded = walk_forward(episodes, replace(config, xgb_seed=config.xgb_seed + 1))
    assert not reseeded["p_xgb_break"].drop_nulls().equals(first["p_xgb_break"].drop_nulls())


def test_a_missing_or_corrupt_model_file_is_rebuilt_and_a_corrupt_description_is_named(chain, tmp_path):
    import shutil

    config, lake, episodes = chain
    day = CHAIN_SESSIONS[4]
    home = tmp_path / "home"
    shutil.copytree(lake.root / "gold", home / "lake" / "gold")
    copy = Lake(home / "lake")
    config = replace(config, home=home)
    probe = episodes.filter(pl.col("session_date") == day)
    expected = as_of.model_as_of(lake, day, config).predict(probe, config)
    model_file = as_of.model_dir(copy, day) / "model.json"
    model_file.write_text("{ truncated")
    np.testing.assert_array_equal(as_of.model_as_of(copy, day, config).predict(probe, config), expected)
    model_file.unlink()
    np.testing.assert_array_equal(as_of.model_as_of(copy, day, config).predict(probe, config), expected)
    (as_of.model_dir(copy, day) / "meta.json").write_text("not json")
    with pytest.raises(SpymasterError, match="meta.json"):
        as_of.model_as_of(copy, day, config)


def test_one_live_setup_gets_exactly_the_batch_answer(chain):
    """answer_setup (NumPy only, the latency path) equals gold_signals row by row on a real session."""
    from spymaster_assets.gold.signals import answer_setup

    config, lake, _ = chain
    day = CHAIN_SESSIONS[4]
    known = as_of.known_before_from_lake(lake, day, config)
    stored = lake.read("gold", "gold_signals", day)
    episodes = lake.read("gold", "gold_episodes", day).join(stored, on=KEYS, how="left", suffix="_signal")
    assert episodes.height == stored.height > 0
    for row in episodes.iter_rows(named=True):
        one = answer_setup(
            known, np.asarray(row["vector"], dtype=np.float32), row["level_kind"], row["direction"], row["time_bucket"],
            row["distance_atr"], config, row["feature_families"],
        )
        for key, prefix in (("answer", "p_"), ("p_knn", "p_knn_"), ("p_xgb", "p_xgb_"), ("p_dist", "p_dist_"), ("base", "base_")):
            assert one[key].tolist() == [row[f"{prefix}{c}"] for c in ("break", "reject", "chop")], key
        assert one["lower"].tolist() == [row[f"p_{c}_lo"] for c in ("break", "reject", "chop")]
        assert one["answer_source"] == row["answer_source"] and one["n_neighbours"] == row["n_neighbours"]
