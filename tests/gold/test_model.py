"""gold_model's pure code: cadence, determinism, point in time, round trip, bad files, similarity weights."""

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_assets.gold.model import OutcomeModel, feature_matrix, model_feature_names, train_model, training_window
from spymaster_assets.gold.vectors import vector_columns, vector_version

CONFIG = SpymasterConfig(xgb_rounds=30)
SESSIONS = [date(2024, 1, 2) + timedelta(days=i) for i in range(8)]


def _episodes(seed=0, n_per_session=60):
    """Episodes whose outcome depends on the distance (dim 0) and one context column; the rest is noise."""
    rng = np.random.default_rng(seed)
    columns = vector_columns(CONFIG)
    informative = columns.index("minutes_since_open")
    rows = []
    for day in SESSIONS:
        for i in range(n_per_session):
            vector = rng.standard_normal(len(columns)).astype(np.float32)
            vector[0] = rng.uniform(-2, 2)
            vector[informative] = rng.uniform(0, 180)
            score = -abs(vector[0]) * 2 + (vector[informative] > 90) * 1.5
            outcome = "BREAK" if score > -0.8 else ("REJECT" if score > -2.5 else "CHOP")
            rows.append(
                {
                    "session_date": day, "ts_event": None, "level_kind": ["PM_HIGH", "EMA_20"][i % 2], "direction": ["UP", "DOWN"][i % 3 == 0],
                    "time_bucket": "0-15", "partition_key": "", "vector_version": vector_version(CONFIG), "feature_families": "bars",
                    "vector": vector.tolist(), "distance_atr": float(vector[0]), "outcome": outcome, "ambiguous": False, "horizon_complete": True,
                }
            )
    frame = pl.DataFrame(rows, schema_overrides={"vector": pl.Array(pl.Float32, len(columns))})
    return frame.with_columns(ts_event=pl.datetime(2024, 1, 2, time_zone="UTC").cast(pl.Datetime("ns", "UTC")) + pl.duration(minutes=pl.int_range(pl.len())))


def test_training_window_follows_the_cadence():
    config = replace(CONFIG, model_retrain_sessions=5, model_min_sessions=5)
    assert training_window(SESSIONS[:4], config) == []
    assert training_window(SESSIONS[:5], config) == SESSIONS[:5]
    assert training_window(SESSIONS[:7], config) == SESSIONS[:5]  # reused until 10 sessions
    assert training_window(list(reversed(SESSIONS[:7])), config) == SESSIONS[:5]
    capped = replace(config, model_retrain_sessions=2, model_min_sessions=2, model_max_training_sessions=3)
    assert training_window(SESSIONS[:7], capped) == SESSIONS[3:6]  # window of 6, its latest 3
    # A slower cadence does not delay the first model: one at 5 sessions, the next at 5 + 20.
    slow = replace(config, model_retrain_sessions=20)
    history = [SESSIONS[0] + timedelta(days=i) for i in range(60)]
    assert [len(training_window(history[:n], slow)) for n in (4, 5, 24, 25, 44, 45, 60)] == [0, 5, 5, 25, 25, 45, 45]


def test_training_is_deterministic_and_learns_the_informative_dimensions():
    history = _episodes()
    first = train_model(history, CONFIG, as_of=SESSIONS[-1] + timedelta(days=1))
    again = train_model(history.sample(fraction=1.0, shuffle=True, seed=3), CONFIG, as_of=SESSIONS[-1] + timedelta(days=1))
    probe = _episodes(seed=9).head(40)
    np.testing.assert_array_equal(first.predict(probe, CONFIG), again.predict(probe, CONFIG))
    assert first.gain == again.gain
    weights = first.similarity_weights(CONFIG)
    assert weights.shape == (len(vector_columns(CONFIG)),) and weights.sum() == pytest.approx(1.0)
    top = {vector_columns(CONFIG)[i] for i in np.argsort(-weights)[:2]}
    assert top == {"distance_atr", "minutes_since_open"}
    # It predicts better than the training base rate on fresh episodes.
    labels = np.array([OUTCOMES.index(o) for o in probe["outcome"]])
    p = first.predict(probe, CONFIG)
    base = np.bincount([OUTCOMES.index(o) for o in history["outcome"]], minlength=3) / history.height
    assert np.mean(np.log(p[np.arange(len(labels)), labels])) > np.mean(np.log(base[labels]))


def test_a_model_never_trains_on_or_serves_its_own_day():
    history = _episodes()
    with pytest.raises(ValueError, match="point-in-time"):
        train_model(history, CONFIG, as_of=SESSIONS[-1])
    model = train_model(history.filter(pl.col("session_date") < SESSIONS[5]), CONFIG, as_of=SESSIONS[5])
    assert model.as_of_day(SESSIONS[7]).as_of == SESSIONS[7]
    with pytest.raises(ValueError, match="point-in-time"):
        model.as_of_day(SESSIONS[4])


def test_save_load_round_trip_and_bad_files_name_the_file(tmp_path):
    history = _episodes()
    model = train_model(history, CONFIG, as_of=SESSIONS[-1] + timedelta(days=1))
    directory = model.save(tmp_path / "m")
    loaded = OutcomeModel.load(directory)
    probe = _episodes(seed=4).head(10)
    np.testing.assert_array_equal(loaded.predict(probe, CONFIG), model.predict(probe, CONFIG))
    assert loaded.training_sessions == SESSIONS and loaded.features == model_feature_names(CONFIG)
    (directory / "model.json").write_text("{ not json")
    with pytest.raises(ValueError, match="model.json"):
        OutcomeModel.load(directory)
    (directory / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="model.json"):
        OutcomeModel.load(directory)


def test_feature_matrix_shape_and_errors():
    history = _episodes().head(6)
    x = feature_matrix(history, CONFIG)
    assert x.shape == (6, len(model_feature_names(CONFIG)))
    assert x[:, len(vector_columns(CONFIG)):-1].sum(axis=1).tolist() == [1.0] * 6  # one level kind each
    with pytest.raises(ValueError, match="unknown level kinds"):
        feature_matrix(history.with_columns(level_kind=pl.lit("VWAP")), CONFIG)
    assert feature_matrix(history.head(0), CONFIG).shape[0] == 0


def test_between_retrains_the_saved_model_is_reused_not_retrained(tmp_path):
    """gold_model of a day inside the cadence loads the earlier day's model (same window) instead of training."""
    from spymaster_assets.gold import as_of
    from spymaster_resources.lake import Lake

    config = replace(CONFIG, model_retrain_sessions=5, model_min_sessions=5)
    lake = Lake(tmp_path / "lake")
    episodes = _episodes()
    for day in SESSIONS:
        lake.write("gold", "gold_episodes", day, episodes.filter(pl.col("session_date") == day))
    first, how = as_of.fit_model_as_of(lake, SESSIONS[5], config)
    assert how == "trained" and first.training_sessions == SESSIONS[:5]
    first.save(as_of.model_dir(lake, SESSIONS[5]))
    reused, how = as_of.fit_model_as_of(lake, SESSIONS[6], config)
    assert how == f"reused from {SESSIONS[5]}" and reused.as_of == SESSIONS[6]
    probe = _episodes(seed=5).head(20)
    np.testing.assert_array_equal(reused.predict(probe, config), first.predict(probe, config))
    # Another window (different rounds) is trained, not taken from the saved model.
    _, how = as_of.fit_model_as_of(lake, SESSIONS[6], replace(config, xgb_rounds=10))
    assert how == "trained"


def test_models_trained_ahead_for_a_range_equal_the_walks_own(tmp_path):
    """A range run trains its windows side by side before the date-order walk; the walk then gets the same models."""
    import json as _json
    from concurrent.futures import ThreadPoolExecutor

    from spymaster_assets.gold import as_of
    from spymaster_resources.lake import Lake

    settings = {"model_retrain_sessions": 2, "model_min_sessions": 2, "xgb_rounds": 30}
    (tmp_path / "config.json").write_text(_json.dumps(settings))
    config = replace(CONFIG, **settings)
    lake = Lake(tmp_path / "lake")
    episodes = _episodes()
    for day in SESSIONS:
        lake.write("gold", "gold_episodes", day, episodes.filter(pl.col("session_date") == day))
    days = SESSIONS[2:]
    with ThreadPoolExecutor(2) as pool:
        trained = as_of.pretrain_models(lake, str(tmp_path), days, lambda d: config, pool)
    assert trained == 3  # windows of 2, 4 and 6 sessions, first needed on days 2, 4 and 6
    walked = {}
    for day in days:
        model, how = as_of.fit_model_as_of(lake, day, config)
        model.save(as_of.model_dir(lake, day))
        walked[day] = (how, (as_of.model_dir(lake, day) / "model.json").read_bytes())
    assert as_of.PRETRAINED == {}  # every model trained ahead was taken by the walk
    assert [how for how, _ in walked.values()] == [h for d in days[::2] for h in ("trained", f"reused from {d}")]
    for day in (days[0], days[2], days[4]):
        serial = train_model(lake.read_many("gold", "gold_episodes", training_window(SESSIONS[: SESSIONS.index(day)], config)), config, as_of=day)
        serial.save(tmp_path / "serial")
        assert walked[day][1] == (tmp_path / "serial" / "model.json").read_bytes()


def test_approach_weighting_gives_each_approach_a_total_weight_of_one_and_a_different_model(tmp_path):
    from spymaster_assets.gold.model import sample_weights
    from spymaster_assets.gold.retrieval import with_approach_ids

    history = _episodes().sort("session_date", "ts_event", "level_kind")
    config = replace(CONFIG, model_sample_weighting="approach")
    weights = sample_weights(history, config)
    assert sample_weights(history, CONFIG) is None
    ids = with_approach_ids(history.select("session_date", "ts_event", "level_kind", "direction").with_row_index("_row"), config).sort("_row")
    totals = ids.with_columns(w=pl.Series(weights)).group_by("session_date", "level_kind", "approach_id").agg(pl.col("w").sum())
    assert np.allclose(totals["w"].to_numpy(), 1.0) and totals.height < history.height  # some approaches have several anchors
    anchor = train_model(history, CONFIG, as_of=SESSIONS[-1] + timedelta(days=1))
    approach = train_model(history, config, as_of=SESSIONS[-1] + timedelta(days=1))
    assert approach.params["sample_weighting"] == "approach" and "sample_weighting" not in anchor.params
    features = feature_matrix(history.head(20), CONFIG)
    assert not np.allclose(anchor.predict_features(features), approach.predict_features(features))
    with pytest.raises(ValueError, match="model_sample_weighting"):
        sample_weights(history, replace(CONFIG, model_sample_weighting="session"))
