"""End to end on a synthetic history: episodes -> normalization -> index -> kNN component -> signals, point in time."""

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_assets.gold.episodes import select_episodes
from spymaster_assets.gold.normalization import fit_normalization, normalize
from spymaster_assets.gold.schemas import validate_signals
from spymaster_assets.gold.schema_indexes import SchemaIndexes
from spymaster_assets.gold.signals import answer, answer_vector, knn_answer
from spymaster_assets.gold.walk_forward import known_before
from spymaster_assets.gold.vectors import schema_dims, vector_columns
from spymaster_assets.silver.feature_names import FEATURE_FAMILIES, families_label

ALL_FAMILIES = families_label(FEATURE_FAMILIES)

CONFIG = SpymasterConfig(top_k=6, max_neighbours_per_session=2, dirichlet_prior_strength=10.0, knn_prior="partition_base_rate")
SESSIONS = [date(2024, 3, 4) + timedelta(days=i) for i in range(6)]
DAY = SESSIONS[-1]
LEVELS = (("PM_HIGH", "UP"), ("SMA_90", "DOWN"))
N_ANCHORS = 12


def _synthetic(seed=0):
    """silver_level_state and silver_outcomes for SESSIONS: 12 anchors x 2 level kinds per session.

    Each setup's features are the centre of its outcome class plus noise, so similar setups share
    outcomes and retrieval has something to find.
    """
    rng = np.random.default_rng(seed)
    cols = vector_columns(CONFIG)
    centres = rng.standard_normal((3, len(cols))) * 2.0
    rows, labels = [], []
    for day in SESSIONS:
        open_utc = datetime(day.year, day.month, day.day, 14, 30, tzinfo=timezone.utc)
        for kind, direction in LEVELS:
            for a in range(N_ANCHORS):
                minutes = 2.0 * (a + 1)
                outcome = int(rng.integers(0, 3))
                features = centres[outcome] + 0.7 * rng.standard_normal(len(cols))
                row = dict(zip(cols, features.tolist()))
                row["minutes_since_open"] = minutes
                row["touches_today"] = None if a % 5 == 0 else float(a)
                row.update(
                    session_date=day,
                    ts_event=open_utc + timedelta(minutes=minutes),
                    level_kind=kind,
                    level_price=5000.0,
                    close=4999.0,
                    atr_points=2.5,
                    direction=direction,
                    in_zone=a != 3,  # one anchor per level outside the zone
                    time_bucket="0-15" if minutes < 15 else "15-30",
                    feature_families=ALL_FAMILIES,
                )
                rows.append(row)
                labels.append(OUTCOMES[outcome])
    state = pl.DataFrame(rows).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))
    outcomes = state.select(
        "session_date", "ts_event", "level_kind", "direction", "level_price",
        pl.col("close").alias("anchor_close"), "atr_points",
        outcome=pl.Series(labels), ambiguous=pl.lit(False), horizon_complete=pl.lit(True),
    )
    return state, outcomes


def _as_of(episodes, day, config=CONFIG):
    history = episodes.filter(pl.col("session_date") < day)
    stats = fit_normalization(history, vector_columns(config), config, as_of=day)
    index = SchemaIndexes.build(history, stats, config, as_of=day)
    return history, stats, index


@pytest.fixture(scope="module")
def world():
    state, outcomes = _synthetic()
    episodes = select_episodes(state, outcomes, CONFIG)
    history, stats, index = _as_of(episodes, DAY)
    today = episodes.filter(pl.col("session_date") == DAY)
    signals, neighbours = knn_answer(index, stats, today, CONFIG)
    return state, outcomes, episodes, history, stats, index, today, signals, neighbours


def _known(episodes, day=DAY, config=CONFIG):
    """What the gold assets know before ``day`` (model included: 5 earlier sessions = model_min_sessions)."""
    return known_before(day, episodes.filter(pl.col("session_date") < day), [d for d in SESSIONS if d < day], None, config)


def test_signals_cover_every_episode_of_the_day_and_pass_the_schema(world):
    _, _, episodes, *_, today, knn, neighbours = world
    equal = replace(CONFIG, similarity_weighting="equal")  # the world's kNN index has equal weights
    signals, full_neighbours = answer(_known(episodes, config=equal), today, equal)
    validate_signals(signals, CONFIG)
    assert full_neighbours.equals(neighbours)
    assert (signals["answer_source"] == "blend_default").all() and signals["p_xgb_break"].is_not_null().all()
    # The kNN component is kept beside the answer, unchanged.
    knn_columns = knn.select("ts_event", "level_kind", *[pl.col(f"p_{c}").alias(f"p_knn_{c}") for c in ("break", "reject", "chop")])
    assert signals.select(knn_columns.columns).sort("ts_event", "level_kind").equals(knn_columns.sort("ts_event", "level_kind"))
    signals = knn
    assert signals.height == today.height == 2 * (N_ANCHORS - 1)
    assert set(signals["session_date"].to_list()) == {DAY}
    assert (signals["n_neighbours"] == CONFIG.top_k).all()
    # Neighbours: earlier sessions only, at most 2 per session per query, ranks 1..k.
    assert neighbours["neighbour_session_date"].max() < DAY
    per_session = neighbours.group_by("ts_event", "level_kind", "neighbour_session_date").len()
    assert per_session["len"].max() <= 2
    assert neighbours.group_by("ts_event", "level_kind").agg(pl.col("rank").max())["rank"].max() == CONFIG.top_k
    # Neighbours come from the query's own partition.
    joined = neighbours.join(signals.select("ts_event", "level_kind", "partition_key"), on=["ts_event", "level_kind"])
    assert joined.height == neighbours.height


def test_probabilities_match_an_independent_brute_force(world):
    _, _, _, history, stats, _, today, signals, _ = world
    dims = schema_dims(CONFIG, ALL_FAMILIES)
    hist_vectors = normalize(history["vector"].to_numpy(), stats, CONFIG.robust_z_clip, dims)
    for row_number in (0, 7, 15):
        query = today.row(row_number, named=True)
        in_partition = (history["partition_key"] == query["partition_key"]).to_numpy()
        candidates = hist_vectors[in_partition]
        sessions = history["session_date"].to_numpy()[in_partition]
        labels = history["outcome"].to_numpy()[in_partition]
        q = normalize(np.array(query["vector"])[None, :], stats, CONFIG.robust_z_clip, dims)[0]
        sims = candidates @ q
        kept, seen = [], {}
        for i in np.argsort(-sims):
            if seen.get(sessions[i], 0) < 2:
                seen[sessions[i]] = seen.get(sessions[i], 0) + 1
                kept.append(i)
            if len(kept) == CONFIG.top_k:
                break
        counts = np.array([np.sum(labels == o) for o in OUTCOMES], dtype=float)
        prior = (counts + 1) / (counts.sum() + 3)
        w = np.maximum(sims[kept], 0)
        alpha = 10.0 * prior + np.array([w[labels[kept] == o].sum() for o in OUTCOMES])
        got = signals.filter((pl.col("ts_event") == query["ts_event"]) & (pl.col("level_kind") == query["level_kind"]))
        np.testing.assert_allclose(got.select("p_break", "p_reject", "p_chop").row(0), alpha / alpha.sum(), rtol=1e-5)
        np.testing.assert_allclose(got.select("base_break", "base_reject", "base_chop").row(0), prior, rtol=1e-9)
        assert got["effective_sample_size"][0] == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-5)


def test_retrieval_beats_the_base_rate_on_clustered_setups(world):
    *_, today, signals, _ = world
    actual = today.select("ts_event", "level_kind", "outcome")
    scored = signals.join(actual, on=["ts_event", "level_kind"])
    p_actual = scored.select(
        pl.when(pl.col("outcome") == "BREAK").then("p_break").when(pl.col("outcome") == "REJECT").then("p_reject").otherwise("p_chop")
    ).to_series()
    base_actual = scored.select(
        pl.when(pl.col("outcome") == "BREAK").then("base_break").when(pl.col("outcome") == "REJECT").then("base_reject").otherwise("base_chop")
    ).to_series()
    assert p_actual.mean() > base_actual.mean() + 0.1


@pytest.mark.parametrize("candidates", ["partition", "distance_band"])
def test_the_distance_lookup_prior_and_the_distance_band_match_a_brute_force(world, candidates):
    """knn_prior "distance_lookup": the posterior is centred on the setup's distance-lookup rate;
    knn_candidates "distance_band": only neighbours in the query's |distance| band, best first."""
    from spymaster_assets.gold.distance_baseline import DistanceLookup, fit_distance_table

    _, _, _, history, stats, index, today, _, _ = world
    config = replace(CONFIG, knn_prior="distance_lookup", knn_candidates=candidates, distance_bin_atr=0.05, distance_bins=8)
    lookup = DistanceLookup(fit_distance_table(history, config), config)
    signals, neighbours = knn_answer(index, stats, today, config, lookup)
    dims = schema_dims(config, ALL_FAMILIES)
    hist_vectors = normalize(history["vector"].to_numpy(), stats, config.robust_z_clip, dims)
    band = lambda d: np.minimum(np.floor(np.abs(d) / 0.05), 7)  # noqa: E731
    checked_band = False
    for row_number in range(today.height):
        query = today.row(row_number, named=True)
        keep = (history["partition_key"] == query["partition_key"]).to_numpy()
        if candidates == "distance_band":
            keep &= band(history["distance_atr"].to_numpy()) == band(query["distance_atr"])
        sessions, labels = history["session_date"].to_numpy()[keep], history["outcome"].to_numpy()[keep]
        sims = hist_vectors[keep] @ normalize(np.array(query["vector"])[None, :], stats, config.robust_z_clip, dims)[0]
        kept, seen = [], {}
        for i in np.argsort(-sims, kind="stable"):
            if seen.get(sessions[i], 0) < 2:
                seen[sessions[i]] = seen.get(sessions[i], 0) + 1
                kept.append(i)
            if len(kept) == config.top_k:
                break
        prior = lookup.probabilities([query["level_kind"]], [query["direction"]], np.array([query["distance_atr"]]))[0]
        w = np.maximum(sims[kept], 0)
        alpha = 10.0 * prior + np.array([w[labels[kept] == o].sum() for o in OUTCOMES])
        got = signals.filter((pl.col("ts_event") == query["ts_event"]) & (pl.col("level_kind") == query["level_kind"]))
        np.testing.assert_allclose(got.select("p_break", "p_reject", "p_chop").row(0), alpha / alpha.sum(), rtol=1e-5)
        assert got["n_neighbours"][0] == len(kept)
        if candidates == "distance_band" and len(kept) < config.top_k:
            checked_band = True  # the band really restricted the candidates of this query
    if candidates == "distance_band":
        assert checked_band
    with pytest.raises(ValueError, match="knn_prior"):
        knn_answer(index, stats, today, replace(config, knn_prior="uniform"), lookup)
    with pytest.raises(ValueError, match="distance lookup"):
        knn_answer(index, stats, today, config)


def test_the_days_own_outcomes_never_influence_its_signals(world):
    *_, stats, index, today, signals, _ = world
    flipped = today.with_columns(outcome=pl.lit("CHOP"), ambiguous=pl.lit(True))
    again, _ = knn_answer(index, stats, flipped, CONFIG)
    assert again.equals(signals)


def test_point_in_time_violations_raise(world):
    _, _, episodes, _, stats, index, today, _, _ = world
    # An index that already holds day D (built as of a later day).
    leaky = SchemaIndexes.build(episodes, stats, CONFIG, as_of=DAY + timedelta(days=1))
    with pytest.raises(ValueError, match="point-in-time"):
        knn_answer(leaky, stats, today, CONFIG)
    # An index and statistics as of an earlier day answer D's questions from the past alone: allowed.
    _, old_stats, old_index = _as_of(episodes, SESSIONS[-2])
    signals, neighbours = knn_answer(old_index, old_stats, today, CONFIG)
    assert neighbours["neighbour_session_date"].max() < SESSIONS[-2]
    # ... but an index and statistics of a later day, or of different days, do not.
    with pytest.raises(ValueError, match="point-in-time"):
        knn_answer(old_index, old_stats, episodes.filter(pl.col("session_date") == SESSIONS[-3]), CONFIG)
    with pytest.raises(ValueError, match="normalized"):
        knn_answer(index, old_stats, today, CONFIG)
    with pytest.raises(ValueError, match="one session"):
        knn_answer(index, stats, episodes.filter(pl.col("session_date") >= SESSIONS[-2]), CONFIG)


def test_answer_vector_from_a_silver_state_row_matches_the_batch_answer(world):
    state, _, episodes, _, _, _, today, _, _ = world
    known = _known(episodes)
    signals, neighbours = answer(known, today, CONFIG)
    row = state.filter((pl.col("session_date") == DAY) & (pl.col("level_kind") == "SMA_90")).sort("ts_event")[5]
    one, its_neighbours = answer_vector(known, row, CONFIG)
    batch = signals.filter((pl.col("ts_event") == row["ts_event"][0]) & (pl.col("level_kind") == "SMA_90"))
    cols = ["partition_key", "p_break", "p_reject", "p_chop", "p_break_lo", "p_chop_hi", "p_knn_break", "p_xgb_chop", "p_dist_reject", "effective_sample_size", "n_neighbours"]
    assert one.select(cols).equals(batch.select(cols))
    expected_neighbours = neighbours.filter((pl.col("ts_event") == row["ts_event"][0]) & (pl.col("level_kind") == "SMA_90"))
    assert its_neighbours.equals(expected_neighbours)
    with pytest.raises(ValueError, match="exactly one row"):
        answer_vector(known, state.head(2), CONFIG)


def test_unknown_partition_falls_back_to_the_uniform_prior(world):
    *_, stats, index, today, _, _ = world
    lone = today.head(1).with_columns(level_kind=pl.lit("OR_LOW"), partition_key=pl.lit("OR_LOW|UP|0-15"))
    signals, neighbours = knn_answer(index, stats, lone, CONFIG)
    assert neighbours.height == 0 and signals["n_neighbours"][0] == 0
    np.testing.assert_allclose(signals.select("p_break", "p_reject", "p_chop").row(0), [1 / 3] * 3)
    assert signals["effective_sample_size"][0] == 0.0


def test_an_index_never_mixes_vector_schemas_and_queries_use_the_richest_with_history():
    """Sessions without order flow are indexed in the bars schema only; full-family queries use the
    full schema once it has min_history_sessions sessions, else fall back to bars."""
    state, outcomes = _synthetic(seed=3)
    bars_only_days = SESSIONS[:3]
    state = state.with_columns(
        feature_families=pl.when(pl.col("session_date").is_in(bars_only_days)).then(pl.lit("bars")).otherwise(pl.lit(ALL_FAMILIES))
    )
    episodes = select_episodes(state, outcomes, CONFIG)
    history, stats, indexes = _as_of(episodes, DAY)
    assert set(indexes.schemas) == {"bars", ALL_FAMILIES}
    assert indexes.indexes["bars"].dim == len(schema_dims(CONFIG, "bars")) < indexes.indexes[ALL_FAMILIES].dim
    assert indexes.indexes["bars"].sessions == SESSIONS[:-1]  # every episode has the bars family
    assert indexes.indexes[ALL_FAMILIES].sessions == SESSIONS[3:-1]  # only 2 sessions with order flow
    # 2 sessions < min_history_sessions (3): a full-family query falls back to bars.
    label, _ = indexes.for_families(ALL_FAMILIES)
    assert label == "bars"
    signals, _ = knn_answer(indexes, stats, episodes.filter(pl.col("session_date") == DAY), CONFIG)
    assert signals["vector_version"].str.ends_with("[bars]").all()
    # With a smaller minimum the richer schema answers, from order-flow sessions only.
    lenient = replace(CONFIG, min_history_sessions=2)
    history, stats, indexes = _as_of(episodes, DAY, lenient)
    signals, neighbours = knn_answer(indexes, stats, episodes.filter(pl.col("session_date") == DAY), lenient)
    assert signals["vector_version"].str.ends_with(f"[{ALL_FAMILIES}]").all()
    assert set(neighbours["neighbour_session_date"].to_list()) <= set(SESSIONS[3:-1])
    # A bars-only query is answered by the bars index even when a richer one exists.
    bars_query = episodes.filter(pl.col("session_date") == DAY).with_columns(feature_families=pl.lit("bars"))
    signals, _ = knn_answer(indexes, stats, bars_query, lenient)
    assert signals["vector_version"].str.ends_with("[bars]").all()


def test_schema_indexes_round_trip_through_disk(world, tmp_path):
    *_, stats, indexes, today, signals, _ = world
    loaded = SchemaIndexes.load(indexes.save(tmp_path / "idx"), CONFIG)
    assert loaded.schemas == indexes.schemas and loaded.sessions == indexes.sessions
    again, _ = knn_answer(loaded, stats, today, CONFIG)
    assert again.equals(signals)
