"""Vector columns, version, matrix and episode selection (gold_episodes)."""

from dataclasses import replace
from datetime import date, datetime, timezone

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold.episodes import select_episodes
from spymaster_assets.gold.schemas import validate_episodes
from spymaster_assets.gold.vectors import schema_dims, schema_version, state_to_matrix, vector_columns, vector_version
from spymaster_assets.silver.feature_names import FEATURE_FAMILIES, VECTOR_LAYOUT_VERSION, bars_feature_columns, family_columns

CONFIG = SpymasterConfig()


def test_vector_columns_follow_the_silver_contract():
    cols = vector_columns(CONFIG)
    assert cols[: len(bars_feature_columns(CONFIG))] == bars_feature_columns(CONFIG)
    assert cols == [c for family in FEATURE_FAMILIES for c in family_columns(family, CONFIG)]
    assert cols[0] == "distance_atr" and len(set(cols)) == len(cols)


def test_schema_dims_pick_each_familys_columns_from_the_full_layout():
    cols = vector_columns(CONFIG)
    assert [cols[i] for i in schema_dims(CONFIG, "bars")] == bars_feature_columns(CONFIG)
    picked = [cols[i] for i in schema_dims(CONFIG, "bars+depth")]
    assert picked == bars_feature_columns(CONFIG) + family_columns("depth", CONFIG)
    assert len(schema_dims(CONFIG, "+".join(FEATURE_FAMILIES))) == len(cols)
    with pytest.raises(ValueError, match="bars"):
        schema_dims(CONFIG, "tape")
    with pytest.raises(ValueError, match="unknown"):
        schema_dims(CONFIG, "bars+vanna")
    assert schema_version(CONFIG, "tape+bars") == f"{vector_version(CONFIG)}[bars+tape]"


def test_vector_version_changes_with_anything_that_changes_the_vector():
    base = vector_version(CONFIG)
    assert base.startswith(VECTOR_LAYOUT_VERSION + "-")
    assert vector_version(replace(CONFIG, order_flow_windows_seconds=(60, 300))) != base
    assert vector_version(SpymasterConfig()) == base
    assert vector_version(replace(CONFIG, dct_coefficients=6)) != base  # fewer columns
    assert vector_version(replace(CONFIG, atr_period=20)) != base  # same columns, different values
    assert vector_version(replace(CONFIG, kinematic_lags_minutes=(1, 2))) != base
    # Outcome thresholds and retrieval settings do not change a vector.
    assert vector_version(replace(CONFIG, break_atr=1.5, top_k=10)) == base


def test_state_to_matrix_orders_columns_and_turns_nulls_into_nan():
    frame = pl.DataFrame({"a": [1.0, None], "b": [3, 4], "c": ["x", "y"]})
    matrix = state_to_matrix(frame, ["b", "a"])
    assert matrix.dtype == np.float32 and matrix.shape == (2, 2)
    assert matrix[0].tolist() == [3.0, 1.0]
    assert matrix[1, 0] == 4.0 and np.isnan(matrix[1, 1])


@pytest.mark.parametrize("label", ["outcome", "mfe_atr", "mae_atr", "time_to_event_s", "ambiguous"])
def test_label_columns_cannot_enter_a_vector(label):
    frame = pl.DataFrame({"a": [1.0], label: [1.0]})
    with pytest.raises(ValueError, match=label):
        state_to_matrix(frame, ["a", label])


def _ts(hour, minute):
    return datetime(2024, 3, 4, hour, minute, tzinfo=timezone.utc)


def _state_and_outcomes():
    cols = vector_columns(CONFIG)
    n = 4
    day = date(2024, 3, 4)
    features = {c: [float(j + 10 * i) for i in range(n)] for j, c in enumerate(cols)}
    features["or_width_atr"] = [None, 1.0, 2.0, 3.0]
    state = pl.DataFrame(
        {
            "session_date": [day] * n,
            "ts_event": [_ts(14, 40), _ts(14, 42), _ts(14, 44), _ts(14, 46)],
            "level_kind": ["PM_HIGH", "PM_HIGH", "OR_LOW", "PM_HIGH"],
            "level_price": [5000.0] * n,
            "close": [4999.0] * n,
            # row 1 out of zone, row 2 has a zero ATR: neither is an episode.
            "atr_points": [2.0, 2.0, 0.0, 2.0],
            "direction": ["UP", "UP", "DOWN", "DOWN"],
            "in_zone": [True, False, True, True],
            "minutes_since_open": [10.0, 12.0, 14.0, 16.0],
            "time_bucket": ["0-15", "0-15", "0-15", "15-30"],
            **{c: v for c, v in features.items() if c not in ("minutes_since_open",)},
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))
    outcomes = state.select(
        "session_date",
        "ts_event",
        "level_kind",
        "direction",
        "level_price",
        pl.col("close").alias("anchor_close"),
        "atr_points",
        outcome=pl.Series(["BREAK", "CHOP", "REJECT", "REJECT"]),
        ambiguous=pl.lit(False),
        horizon_complete=pl.lit(True),
        mfe_atr=pl.lit(0.5),
        mae_atr=pl.lit(0.2),
    )
    return state, outcomes


def test_select_episodes_keeps_in_zone_rows_with_positive_atr_and_their_outcome():
    state, outcomes = _state_and_outcomes()
    episodes = select_episodes(state, outcomes, CONFIG)
    validate_episodes(episodes, CONFIG)
    assert episodes["ts_event"].to_list() == [_ts(14, 40), _ts(14, 46)]
    assert episodes["partition_key"].to_list() == ["PM_HIGH|UP|0-15", "PM_HIGH|DOWN|15-30"]
    assert episodes["outcome"].to_list() == ["BREAK", "REJECT"]
    assert episodes["vector_version"].unique().to_list() == [vector_version(CONFIG)]
    assert episodes["feature_families"].unique().to_list() == ["bars"]  # the state names no families
    vectors = episodes["vector"].to_numpy()
    cols = vector_columns(CONFIG)
    # Row 0 of the state: feature j = j, except minutes_since_open = 10 and or_width_atr null.
    expected = np.array([float(j) for j in range(len(cols))], dtype=np.float32)
    expected[cols.index("minutes_since_open")] = 10.0
    expected[cols.index("or_width_atr")] = np.nan
    np.testing.assert_array_equal(vectors[0], expected)


def test_select_episodes_names_the_session_of_an_unlabelled_setup():
    state, outcomes = _state_and_outcomes()
    with pytest.raises(ValueError, match="2024-03-04"):
        select_episodes(state, outcomes.filter(pl.col("ts_event") != _ts(14, 46)), CONFIG)
