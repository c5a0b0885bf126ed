"""gold_signals: what the trader would have seen on day D — outcome probabilities per episode, and their neighbours.

Every episode of D is answered by what was known before D (:class:`answer.KnownBefore`): the kNN
component from the index as of D (only earlier sessions), with query vectors normalized by D's
statistics and learned similarity weights, then the model, the distance lookup and the calibrated
blend (``answer.compose_answer``; DESIGN.md "Evaluation": walk-forward, point in time). The same
code path answers a single live state row for the CLI (:func:`answer_vector`).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from spymaster_core.config import OUTCOMES, SpymasterConfig
from .episodes import SETUP_KEY_SCHEMA, partition_key_expr
from .normalization import NormalizationStats, normalize
from .answer import SIGNALS_SCHEMA, KnownBefore, compose_answer, compose_arrays
from .distance_baseline import DistanceLookup
from .model import setup_features
from .retrieval import base_rate, posterior_batch
from .schema_indexes import SchemaIndexes
from .setup_index import SetupIndex
from .vectors import layout_of_schema_version, schema_dims, state_to_matrix, vector_columns, vector_version

_CLASS = [o.lower() for o in OUTCOMES]  # break, reject, chop

_KNN_SCHEMA: dict[str, pl.DataType] = {
    **SETUP_KEY_SCHEMA,
    "partition_key": pl.String(),
    **{f"p_{c}": pl.Float64() for c in _CLASS},
    "effective_sample_size": pl.Float64(),
    "n_neighbours": pl.Int32(),
    "knn_concentration": pl.Float64(),
    **{f"base_{c}": pl.Float64() for c in _CLASS},
    "vector_version": pl.String(),
}

NEIGHBOURS_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date(),
    "ts_event": pl.Datetime("ns", "UTC"),
    "level_kind": pl.String(),
    "direction": pl.String(),
    "time_bucket": pl.String(),
    "rank": pl.Int32(),
    "neighbour_session_date": pl.Date(),
    "neighbour_ts_event": pl.Datetime("ns", "UTC"),
    "similarity": pl.Float32(),
    "outcome": pl.String(),
}


def check_point_in_time(index: SetupIndex, stats: NormalizationStats, day: date) -> None:
    """Raise ValueError unless the index and statistics only know sessions before ``day`` and belong together.

    Checks: every index session < day; index.as_of (when recorded) <= day; stats.as_of <= day and
    stats.last_session < day; index and stats built as of the same day (the index vectors were
    normalized with those statistics) and with the same vector version.
    """
    if index.sessions and index.sessions[-1] >= day:
        late = [s for s in index.sessions if s >= day]
        raise ValueError(f"point-in-time violation: the index used for {day} holds sessions {[d.isoformat() for d in late[:5]]} on or after it")
    if index.as_of is not None and index.as_of > day:
        raise ValueError(f"point-in-time violation: index as of {index.as_of} used for earlier day {day}")
    if stats.as_of > day or (stats.last_session is not None and stats.last_session >= day):
        raise ValueError(
            f"point-in-time violation: normalization as of {stats.as_of} (last session {stats.last_session}) used for {day}"
        )
    if index.as_of is not None and index.as_of != stats.as_of:
        raise ValueError(f"index as of {index.as_of} was not normalized with the statistics as of {stats.as_of}")
    if index.vector_version is not None and layout_of_schema_version(index.vector_version) != stats.vector_version:
        raise ValueError(f"index vector version {index.vector_version!r} is not of the normalization's layout {stats.vector_version!r}")


def answer(known: KnownBefore, episodes_of_day: pl.DataFrame, config: SpymasterConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Answer every episode of one day D with everything known before D: (gold_signals, neighbours).

    gold_signals: :data:`answer.SIGNALS_SCHEMA`, one row per episode (the kNN component of
    :func:`knn_answer`, the model, the distance lookup and the blend; see ``answer``).
    neighbours: as :func:`knn_answer`. Raises as :func:`knn_answer`, and ValueError when ``known``
    serves another day or its model saw the day.
    """
    if episodes_of_day.height == 0:
        return pl.DataFrame(schema=SIGNALS_SCHEMA), pl.DataFrame(schema=NEIGHBOURS_SCHEMA)
    day = episodes_of_day["session_date"][0]
    if known.as_of != day:
        raise ValueError(f"what was known before {known.as_of} cannot answer the episodes of {day}")
    if known.model is not None and known.model.trained_through >= day:
        raise ValueError(f"point-in-time violation: the model used for {day} was trained through {known.model.trained_through}")
    knn, neighbours = knn_answer(known.indexes, known.stats, episodes_of_day, config, known.distance_lookup)
    return compose_answer(knn, episodes_of_day, known, config), neighbours


def knn_prior(config: SpymasterConfig, base: np.ndarray, distance_lookup: DistanceLookup | None, level_kinds, directions, distances_atr) -> np.ndarray:
    """Prior mean of the kNN posterior for n setups: (n, 3) or the partition's base rate (3,).

    ``knn_prior`` "partition_base_rate": ``base``; "distance_lookup": the lookup's rate of each
    setup's (level kind, direction, |distance| bin) cell. Raises ValueError for another value, or
    for "distance_lookup" without a lookup.
    """
    if config.knn_prior == "partition_base_rate":
        return base
    if config.knn_prior != "distance_lookup":
        raise ValueError(f"knn_prior must be 'partition_base_rate' or 'distance_lookup', got {config.knn_prior!r}")
    if distance_lookup is None or distances_atr is None:
        raise ValueError("knn_prior 'distance_lookup' needs the distance lookup of the day and each setup's distance_atr")
    return distance_lookup.probabilities(list(level_kinds), list(directions), np.asarray(distances_atr, dtype=np.float64))


def candidate_band(config: SpymasterConfig, distances_atr) -> np.ndarray | None:
    """The queries' distances for the search's band filter under ``knn_candidates`` "distance_band", None under "partition".

    Raises ValueError for another value, or for "distance_band" without the setups' distance_atr.
    """
    if config.knn_candidates == "partition":
        return None
    if config.knn_candidates != "distance_band":
        raise ValueError(f"knn_candidates must be 'partition' or 'distance_band', got {config.knn_candidates!r}")
    if distances_atr is None:
        raise ValueError("knn_candidates 'distance_band' needs each setup's distance_atr")
    return np.asarray(distances_atr, dtype=np.float64)


def knn_answer(
    indexes: SchemaIndexes,
    stats: NormalizationStats,
    episodes_of_day: pl.DataFrame,
    config: SpymasterConfig,
    distance_lookup: DistanceLookup | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The kNN component for every episode of one day D: (kNN rows, neighbours).

    Input ``episodes_of_day``: gold_episodes rows of a single session D (session_date, ts_event,
    level_kind, direction, time_bucket, partition_key, vector, vector_version, feature_families);
    outcome columns, if present, are never read. Episodes are answered by the index of the richest
    vector schema their families allow (:meth:`SchemaIndexes.for_families`); each vector is
    projected onto that schema, normalized with ``stats`` (robust z clipped to
    ``robust_z_clip``, the indexes' similarity weights, L2), searched in its partition for the top ``top_k`` neighbours (at most
    ``max_neighbours_per_session`` per past session, sessions before D only) and turned into a
    Dirichlet posterior around the prior of :func:`knn_prior` (``retrieval.posterior_batch``): the
    partition's base rate (uniform for a partition absent from the index), or with ``knn_prior``
    "distance_lookup" the rate of ``distance_lookup`` for the setup (episodes need distance_atr).

    kNN rows (one per episode, sorted by ts_event, level_kind): the episode keys and partition_key,
    p_break/p_reject/p_chop (posterior mean; the answer's interval is computed around the blend, so
    the kNN marginals' own Beta quantiles are not), effective_sample_size (Kish), n_neighbours, knn_concentration (alpha_0 of the posterior:
    prior strength plus the neighbours' weight), base_* (prior mean), vector_version (the schema
    version of the index used).
    neighbours (:data:`NEIGHBOURS_SCHEMA`): per episode its neighbours, rank 1 = most similar,
    with the neighbour's session_date, ts_event, cosine similarity and outcome.

    Raises ValueError if the frame holds more than one session, if the vector version differs
    from the statistics', or on any point-in-time violation (:func:`check_point_in_time`).
    """
    if episodes_of_day.height == 0:
        return pl.DataFrame(schema=_KNN_SCHEMA), pl.DataFrame(schema=NEIGHBOURS_SCHEMA)
    days = episodes_of_day["session_date"].unique().to_list()
    if len(days) != 1:
        raise ValueError(f"answer() takes the episodes of one session, got {sorted(days)}")
    day = days[0]
    versions = set(episodes_of_day["vector_version"].unique().to_list())
    if versions != {stats.vector_version}:
        raise ValueError(f"episodes of {day} have vector versions {sorted(versions)}, statistics {stats.vector_version!r}")
    if "feature_families" not in episodes_of_day.columns:
        episodes_of_day = episodes_of_day.with_columns(feature_families=pl.lit("bars"))

    uniform = base_rate([])
    signal_parts: list[pl.DataFrame] = []
    neighbour_parts: list[pl.DataFrame] = []
    for (families,), same_families in episodes_of_day.partition_by("feature_families", as_dict=True, maintain_order=True).items():
        label, index = indexes.for_families(families)
        check_point_in_time(index, stats, day)
        dims = schema_dims(config, label)
        base_rates = index.partition_base_rates()
        for (key,), group in same_families.partition_by("partition_key", as_dict=True, maintain_order=True).items():
            group = group.with_columns(vector_version=pl.lit(index.vector_version))
            signals_part, neighbours_part = _answer_partition(index, key, group, stats, dims, indexes.weights, base_rates.get(key, uniform), day, config, distance_lookup)
            signal_parts.append(signals_part)
            neighbour_parts.append(neighbours_part)
    signals = pl.concat(signal_parts, how="vertical_relaxed").sort("ts_event", "level_kind").select(
        [pl.col(name).cast(dtype) for name, dtype in _KNN_SCHEMA.items()]
    )
    neighbours = (
        pl.concat(neighbour_parts, how="vertical_relaxed")
        .select([pl.col(name).cast(dtype) for name, dtype in NEIGHBOURS_SCHEMA.items()])
        .sort("ts_event", "level_kind", "rank")
    )
    return signals, neighbours


def _answer_partition(
    index: SetupIndex,
    key: str,
    group: pl.DataFrame,
    stats: NormalizationStats,
    dims: np.ndarray,
    weights: np.ndarray | None,
    prior: np.ndarray,
    day: date,
    config: SpymasterConfig,
    distance_lookup: DistanceLookup | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Answer the episodes of one index partition: (their signal rows before smoothing, their neighbour rows)."""
    vectors = group["vector"].to_numpy().reshape(group.height, -1)
    queries = normalize(vectors, stats, config.robust_z_clip, dims, weights)
    ids, sims = index.search_batch(key, queries, exclude_on_or_after=day, distance_atr=candidate_band(config, group["distance_atr"] if "distance_atr" in group.columns else None), bands=(config.distance_bin_atr, config.distance_bins))
    centre = knn_prior(config, prior, distance_lookup, group["level_kind"], group["direction"], group["distance_atr"] if "distance_atr" in group.columns else None)
    posterior = posterior_batch(sims, index.outcome_codes_of(key, ids), centre, config, intervals=False)
    columns: dict[str, np.ndarray] = {}
    for j, c in enumerate(_CLASS):
        columns[f"p_{c}"] = posterior["probabilities"][:, j]
        columns[f"base_{c}"] = np.full(group.height, prior[j])
    columns["effective_sample_size"] = posterior["effective_sample_size"]
    columns["knn_concentration"] = posterior["alpha"].sum(axis=1)
    columns["n_neighbours"] = posterior["n_neighbours"].astype(np.int32)
    signals = group.hstack(pl.DataFrame(columns))

    found = index.neighbours_frame(key, ids, sims)
    query_keys = group.select("session_date", "ts_event", "level_kind", "direction", "time_bucket")
    neighbours = (
        query_keys.select(pl.all().gather(pl.Series(found["query"].to_numpy())))
        .hstack(
            found.select(
                "rank",
                pl.col("session_date").alias("neighbour_session_date"),
                pl.col("ts_event").alias("neighbour_ts_event"),
                "similarity",
                "outcome",
            )
        )
    )
    return signals, neighbours


def answer_vector(known: KnownBefore, state_row: pl.DataFrame, config: SpymasterConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Answer one live setup (the CLI query) through the same path as :func:`answer`.

    ``state_row``: a one-row frame, either a gold_episodes row (with ``vector``) or a
    silver_level_state row (session_date, ts_event, level_kind, direction, time_bucket and the
    :func:`vector_columns` features, from which the vector and partition key are built here).
    Returns (one signals row, its neighbours). Raises ValueError if the frame does not hold exactly
    one row, plus the errors of :func:`answer`.
    """
    if state_row.height != 1:
        raise ValueError(f"answer_vector() takes exactly one row, got {state_row.height}")
    episode = state_row
    if "vector" not in episode.columns:
        columns = vector_columns(config)
        matrix = state_to_matrix(episode, columns)
        episode = episode.with_columns(
            vector=pl.Series("vector", matrix, dtype=pl.Array(pl.Float32, len(columns))),
            vector_version=pl.lit(vector_version(config)),
        )
    if "partition_key" not in episode.columns:
        episode = episode.with_columns(partition_key=partition_key_expr())
    if "feature_families" not in episode.columns:
        episode = episode.with_columns(feature_families=pl.lit("bars"))
    return answer(known, episode, config)


def answer_setup(
    known: KnownBefore,
    vector: np.ndarray,
    level_kind: str,
    direction: str,
    time_bucket: str,
    distance_atr: float,
    config: SpymasterConfig,
    families: str = "bars",
) -> dict[str, object]:
    """The answer for one live setup, in NumPy only (the latency path; equal to :func:`answer`'s row).

    ``vector``: the setup's full-layout vector (D,) before normalization (NaN = missing);
    ``distance_atr``: its signed distance in ATR; ``families``: its feature-families label.
    Returns: ``answer``, ``lower``, ``upper`` (3,) in OUTCOMES order; ``p_knn``, ``p_dist``, ``p_xgb``
    (None without a model), ``base`` (3,); ``effective_sample_size``, ``n_neighbours``,
    ``knn_concentration``; ``answer_source``; ``vector_version`` (the schema that answered);
    ``neighbour_ids`` and ``similarities`` (the partition rows found, best first, for
    ``SetupIndex.neighbours_frame``), ``partition_key`` and ``index`` (the SetupIndex searched).
    Raises ValueError on a point-in-time violation (:func:`check_point_in_time`) or an unknown
    level kind, direction or family. Smoothing along an approach is not applied (one setup).
    """
    label, index = known.indexes.for_families(families)
    check_point_in_time(index, known.stats, known.as_of)
    dims = schema_dims(config, label)
    key = f"{level_kind}|{direction}|{time_bucket}"
    query = normalize(np.asarray(vector)[None, :], known.stats, config.robust_z_clip, dims, known.indexes.weights)
    ids, sims = index.search_batch(key, query, exclude_on_or_after=known.as_of, distance_atr=candidate_band(config, [distance_atr]), bands=(config.distance_bin_atr, config.distance_bins))
    prior = index.partition_base_rates().get(key, base_rate([]))
    centre = knn_prior(config, prior, known.distance_lookup, [level_kind], [direction], [distance_atr])
    posterior = posterior_batch(sims, index.outcome_codes_of(key, ids), centre, config, intervals=False)
    p_dist = known.distance_lookup.probabilities([level_kind], [direction], np.array([distance_atr]))
    p_xgb = known.model.predict_features(setup_features(vector, level_kind, direction)) if known.model is not None else None
    concentration = posterior["alpha"].sum(axis=1)
    parts = compose_arrays(known, posterior["probabilities"], concentration, p_dist, p_xgb, config.interval_level)
    return {
        "answer": parts["answer"][0],
        "lower": parts["lower"][0],
        "upper": parts["upper"][0],
        "p_knn": posterior["probabilities"][0],
        "p_dist": p_dist[0],
        "p_xgb": None if p_xgb is None else p_xgb[0],
        "base": np.asarray(prior, dtype=np.float64),
        "effective_sample_size": float(posterior["effective_sample_size"][0]),
        "n_neighbours": int(posterior["n_neighbours"][0]),
        "knn_concentration": float(concentration[0]),
        "answer_source": known.answer_source,
        "vector_version": index.vector_version,
        "partition_key": key,
        "neighbour_ids": ids[0][ids[0] >= 0],
        "similarities": sims[0][ids[0] >= 0],
        "index": index,
    }
