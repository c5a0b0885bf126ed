"""The distance lookup on a hand-worked example."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold.distance_baseline import distance_probabilities, fit_distance_table

CONFIG = SpymasterConfig(distance_prior_strength=4.0)


def _history():
    # PM_HIGH UP: 4 episodes in bin 0 (|d| < 0.5): BREAK, BREAK, BREAK, REJECT; 2 in bin 3 (|d| >= 1.5): REJECT, CHOP.
    rows = [
        ("PM_HIGH", "UP", -0.1, "BREAK"),
        ("PM_HIGH", "UP", -0.4, "BREAK"),
        ("PM_HIGH", "UP", 0.2, "BREAK"),
        ("PM_HIGH", "UP", -0.49, "REJECT"),
        ("PM_HIGH", "UP", -1.9, "REJECT"),
        ("PM_HIGH", "UP", -2.0, "CHOP"),
    ]
    return pl.DataFrame(rows, schema=["level_kind", "direction", "distance_atr", "outcome"], orient="row").with_columns(session_date=pl.lit(date(2024, 1, 2)))


def test_cells_are_smoothed_toward_the_kind_and_direction_rate():
    table = fit_distance_table(_history(), CONFIG)
    # Prior row: counts B3 R2 C1 of 6, add-one: (4, 3, 2) / 9.
    prior = table.filter(pl.col("distance_bin") == -1).select("rate_break", "rate_reject", "rate_chop").row(0)
    np.testing.assert_allclose(prior, [4 / 9, 3 / 9, 2 / 9])
    # Bin 0: counts (3, 1, 0), s = 4: ((3 + 4*4/9), (1 + 4*3/9), (0 + 4*2/9)) / 8.
    q = np.array([4, 3, 2]) / 9
    expected = (np.array([3, 1, 0]) + 4 * q) / 8
    got = distance_probabilities(pl.DataFrame({"level_kind": ["PM_HIGH"], "direction": ["UP"], "distance_atr": [-0.3]}), table, CONFIG)
    np.testing.assert_allclose(got[0], expected)
    # |d| = 2.0 falls in the last bin (3), like 1.9: counts (0, 1, 1) of 2.
    far = distance_probabilities(pl.DataFrame({"level_kind": ["PM_HIGH"], "direction": ["UP"], "distance_atr": [1.6]}), table, CONFIG)
    np.testing.assert_allclose(far[0], (np.array([0, 1, 1]) + 4 * q) / 6)


def test_unseen_cells_fall_back_to_the_prior_then_to_uniform():
    table = fit_distance_table(_history(), CONFIG)
    queries = pl.DataFrame({"level_kind": ["PM_HIGH", "OR_LOW"], "direction": ["UP", "DOWN"], "distance_atr": [0.7, 0.1]})
    got = distance_probabilities(queries, table, CONFIG)
    np.testing.assert_allclose(got[0], [4 / 9, 3 / 9, 2 / 9])  # bin 1 never seen: the (kind, direction) rate
    np.testing.assert_allclose(got[1], [1 / 3] * 3)  # never seen at all
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_empty_history_and_bad_input():
    empty = fit_distance_table(_history().head(0), CONFIG)
    assert empty.height == 0
    got = distance_probabilities(pl.DataFrame({"level_kind": ["PM_LOW"], "direction": ["UP"], "distance_atr": [0.1]}), empty, CONFIG)
    np.testing.assert_allclose(got[0], [1 / 3] * 3)
    with pytest.raises(ValueError, match="unknown outcome"):
        fit_distance_table(_history().with_columns(outcome=pl.lit("UP")), CONFIG)
    with pytest.raises(ValueError, match="distance_atr"):
        fit_distance_table(_history().with_columns(distance_atr=pl.lit(float("nan"))), CONFIG)
