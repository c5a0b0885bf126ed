#!/usr/bin/env python
"""Spymaster benchmarks: pipeline time per session and retrieval latency/throughput, as ``name: value`` lines.

What is measured (units are in each name; progress goes to stderr, results to stdout):

1. ``answer_*`` / ``knn_only_*``: wall time of the pure domain pipeline for one session of the
   embedded real ES sample (``data/sample/raw``), no Dagster, no Parquet, no pandera:
   build_bars -> compute_levels -> compute_level_state -> label_outcomes -> select_episodes ->
   walk_forward.known_before (normalization of the trailing sessions, the XGBoost model under its
   retraining cadence, the learned-similarity index of every earlier session, the distance lookup,
   the blend fit on earlier signals) -> signals.answer. ``answer_*`` is the product's answer (model,
   blend); ``knn_only_*`` the answer before the model (equal weights, no model) on the same
   sessions in the same run, and ``*_ratio_answer_over_knn_only`` their ratio. ``query_blend_*``:
   one live setup answered through the blend (answer_setup) on the last session. Bronze frames
   are decoded from the DBN files beforehand (``bronze.ingest``) and not timed here. Numba JIT and
   import costs are paid by an untimed warm-up run first. Optionally ``dagster_materialize_*``: one
   ``materialize`` of every asset for one partition under ``DagsterInstance.ephemeral()``.
2. ``query_flat_*`` / ``query_hnsw_*``: ``SetupIndex.search_batch`` (top_k=50, at most 2 per
   session) against ONE partition of synthetic random L2-normalized vectors of the real dimension
   (``len(vector_columns(config))``), ``--episodes`` vectors spread over sessions of
   ``--episodes-per-session``; flat (threshold raised above the size) and HNSW (threshold forced
   to the size). ``query_numpy_*`` is a brute-force NumPy baseline measured in the same run: X @ q,
   argpartition of the same over-fetch, the same per-session cap; single queries and batches.
3. ``env_*``: CPU count and library versions.

Usage: ``.venv/bin/python scripts/benchmark.py [--quick] [--sessions N] [--episodes N] [--no-dagster]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import faiss  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from spymaster_resources.raw_files import RawCatalog  # noqa: E402
from spymaster_assets.bronze.ingest import session_definitions, session_ohlcv_1m, sessions_with_rth_data  # noqa: E402
from spymaster_core.config import OUTCOMES, SpymasterConfig  # noqa: E402
from spymaster_assets.gold.episodes import episodes_schema, select_episodes  # noqa: E402
from spymaster_assets.gold.setup_index import SetupIndex  # noqa: E402
from spymaster_assets.gold.signals import answer, answer_setup  # noqa: E402
from spymaster_assets.gold.walk_forward import known_before  # noqa: E402
from spymaster_assets.gold.vectors import vector_columns  # noqa: E402
from spymaster_assets.sessions import trading_sessions  # noqa: E402
from spymaster_assets.silver.bars import build_bars  # noqa: E402
from spymaster_assets.silver.labels import label_outcomes  # noqa: E402
from spymaster_assets.silver.level_state import compute_level_state  # noqa: E402
from spymaster_assets.silver.levels import compute_levels  # noqa: E402

SAMPLE_RAW = REPO_ROOT / "data" / "sample" / "raw"
PIPELINE_TARGET_SECONDS = 1.0
QUERY_P99_TARGET_MS = 2.0
THROUGHPUT_TARGET_QPS = 20_000.0
SYNTHETIC_PARTITION = ("PM_HIGH", "UP", "30-60")


# ----------------------------------------------------------------------------------------- output
def emit(name: str, value: object) -> None:
    """Print one ``name: value`` line (floats with 4 decimals, or 3 significant digits when tiny)."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.4f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    else:
        text = str(value)
    print(f"{name}: {text}", flush=True)


def progress(message: str) -> None:
    """A progress note on stderr (stdout holds only ``name: value`` lines)."""
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (linear interpolation, numpy default) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def environment_lines() -> None:
    """env_* lines: CPU count, FAISS OpenMP threads, Python and library versions."""
    emit("env_cpu_count", os.cpu_count())
    emit("env_faiss_omp_threads", faiss.omp_get_max_threads())
    emit("env_python_version", platform.python_version())
    emit("env_numpy_version", np.__version__)
    emit("env_faiss_version", faiss.__version__)
    emit("env_polars_version", pl.__version__)
    emit("env_numba_version", numba.__version__)
    emit("env_platform", platform.platform())
    # Other work on the machine shows up in the latency tails; record how busy it was.
    emit("env_load_average_1min_at_start", os.getloadavg()[0])


# ------------------------------------------------------------------------------ 1. pipeline time
def load_bronze_sessions(config: SpymasterConfig, max_sessions: int) -> list[tuple[date, pl.DataFrame, pl.DataFrame | None]]:
    """Bronze 1-minute bars of the first ``max_sessions`` sample sessions, with each one's warm-up bars.

    Returns (session_date, bronze_futures_ohlcv_1m frame, warm-up frame or None) in date order. The
    warm-up is the previous session's bars when that session is the calendar's previous one and
    traded the same contract (the rule of ``silver.assets.warmup_bars``).
    """
    catalog = RawCatalog(config.raw_dir, config.spec)
    days = sessions_with_rth_data(catalog, config)[:max_sessions]
    frames: list[tuple[date, pl.DataFrame]] = []
    for day in days:
        definitions, _ = session_definitions(catalog, day, config)
        frames.append((day, session_ohlcv_1m(catalog, day, definitions, config).bars))
    out: list[tuple[date, pl.DataFrame, pl.DataFrame | None]] = []
    for i, (day, bars) in enumerate(frames):
        warmup = None
        if i > 0:
            prev_day, prev_bars = frames[i - 1]
            same_contract = prev_bars.height and bars.height and prev_bars["instrument_id"][0] == bars["instrument_id"][0]
            if len(trading_sessions(prev_day, day)) == 2 and same_contract:
                warmup = prev_bars
        out.append((day, bars, warmup))
    return out


def run_session_pipeline(
    day: date,
    ohlcv_1m: pl.DataFrame,
    warmup_1m: pl.DataFrame | None,
    history: list[pl.DataFrame],
    earlier_signals: list[pl.DataFrame],
    config: SpymasterConfig,
    model_cache: dict,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, float]]:
    """Silver + gold for one session in memory; returns (gold_episodes, gold_signals with outcome, seconds per stage).

    ``history``: gold_episodes frames of the earlier sessions, oldest first (point in time: only
    sessions before ``day``); ``earlier_signals``: their gold_signals joined with outcomes (the blend
    is fitted on them). Stages: silver (bars, levels, level state, labels), episodes, as_of
    (``walk_forward.known_before``: normalization, the model under its cadence (``model_cache``
    reuses a window's model, so training is amortized as in the assets), index, distance lookup,
    blend fit), answer (``signals.answer``), total.
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    bars = build_bars(ohlcv_1m, day, config, warmup_1m=warmup_1m)
    levels = compute_levels(bars, day, config)
    state = compute_level_state(bars, levels, day, config)
    outcomes = label_outcomes(bars, state, config)
    t1 = time.perf_counter()
    episodes = select_episodes(state, outcomes, config)
    t2 = time.perf_counter()
    everything = pl.concat(history, how="diagonal_relaxed") if history else pl.DataFrame(schema=episodes_schema(len(vector_columns(config))))
    sessions_before = sorted({d for h in history for d in h["session_date"].unique().to_list()})
    earlier = pl.concat(earlier_signals, how="vertical_relaxed") if earlier_signals else None
    known = known_before(day, everything, sessions_before, earlier, config, model_cache)
    t3 = time.perf_counter()
    signals, _ = answer(known, episodes, config)
    t4 = time.perf_counter()
    seconds.update(silver=t1 - t0, episodes=t2 - t1, as_of=t3 - t2, answer=t4 - t3, total=t4 - t0)
    scored = signals.join(episodes.select("session_date", "ts_event", "level_kind", "outcome"), on=["session_date", "ts_event", "level_kind"])
    return episodes, scored, seconds


#: Today's answer before the model (kNN with equal weights, no XGBoost, no blend): the baseline the
#: gold time with the model is compared with, in the same run.
def knn_only(config: SpymasterConfig) -> SpymasterConfig:
    """The configuration of the kNN-only answer: equal similarity weights and no model ever."""
    return replace(config, similarity_weighting="equal", model_min_sessions=10**9)


def benchmark_pipeline(home: Path, n_sessions: int) -> dict[str, float]:
    """Time the domain pipeline per sample session (after an untimed warm-up); emit the pipeline lines.

    Runs twice over the same sessions: the answer with the model (``answer_*``) and the kNN-only
    answer (``knn_only_*``), then times single-setup queries through the blend on the last session.
    Returns {session_date iso: bronze ingest + pipeline seconds} for the Dagster overhead estimate.
    """
    config = SpymasterConfig(home=home)
    t0 = time.perf_counter()
    sessions = load_bronze_sessions(config, n_sessions)
    ingest_seconds = (time.perf_counter() - t0) / max(len(sessions), 1)
    if len(sessions) < 2:
        raise SystemExit(f"benchmark needs at least 2 sample sessions, found {len(sessions)} under {config.raw_dir}")
    progress(f"bronze frames of {len(sessions)} sessions built ({ingest_seconds:.2f} s/session); warming up")

    # Untimed warm-up: one session without history and one with, so every Numba kernel and the
    # FAISS/search path are compiled and imported before timing.
    first, first_signals, _ = run_session_pipeline(sessions[0][0], sessions[0][1], sessions[0][2], [], [], config, {})
    run_session_pipeline(sessions[1][0], sessions[1][1], sessions[1][2], [first], [first_signals], config, {})

    per_day: dict[str, float] = {}
    for label, variant in (("answer", config), ("knn_only", knn_only(config))):
        history: list[pl.DataFrame] = []
        earlier: list[pl.DataFrame] = []
        cache: dict = {}
        per_stage: dict[str, list[float]] = {}
        for day, bars, warmup in sessions:
            episodes, scored, seconds = run_session_pipeline(day, bars, warmup, history, earlier, variant, cache)
            history.append(episodes)
            earlier.append(scored)
            for stage, s in seconds.items():
                per_stage.setdefault(stage, []).append(s)
            if label == "answer":
                per_day[day.isoformat()] = seconds["total"] + ingest_seconds
            progress(f"{label} {day}: {seconds['total']:.3f} s, {episodes.height} episodes, history of {sum(h.height for h in history[:-1])}")
        totals = per_stage["total"]
        emit(f"{label}_sessions_timed", len(totals))
        emit(f"{label}_silver_gold_seconds_per_session_mean", float(np.mean(totals)))
        emit(f"{label}_silver_gold_seconds_per_session_p50", percentile(totals, 50))
        emit(f"{label}_silver_gold_seconds_per_session_max", max(totals))
        for stage in ("silver", "episodes", "as_of", "answer"):
            emit(f"{label}_{stage}_seconds_per_session_mean", float(np.mean(per_stage[stage])))
        if label == "answer":
            answer_mean = float(np.mean(totals))
            gold_answer = float(np.mean(per_stage["as_of"]) + np.mean(per_stage["answer"]))
            benchmark_blend_queries(history, earlier, variant)
        else:
            gold_knn = float(np.mean(per_stage["as_of"]) + np.mean(per_stage["answer"]))
            emit("gold_seconds_per_session_ratio_answer_over_knn_only", gold_answer / gold_knn)
            emit("silver_gold_seconds_per_session_ratio_answer_over_knn_only", answer_mean / float(np.mean(totals)))
    emit("silver_gold_first_session", sessions[0][0].isoformat())
    emit("silver_gold_last_session", sessions[-1][0].isoformat())
    emit("bronze_ingest_seconds_per_session_mean", ingest_seconds)
    # The mean over the sessions amortizes the model's training over its retraining cadence.
    emit("target_silver_gold_under_1s_per_session_amortized_met", answer_mean < PIPELINE_TARGET_SECONDS)
    return per_day


def benchmark_blend_queries(history: list[pl.DataFrame], earlier: list[pl.DataFrame], config: SpymasterConfig) -> None:
    """Latency of one live setup answered through the blend (``signals.answer_setup``: normalization,
    kNN search, posterior, distance lookup, model prediction, blend, calibration, interval) against
    what was known before the last session, every episode of that session in turn."""
    day = history[-1]["session_date"][0]
    before = pl.concat(history[:-1], how="diagonal_relaxed")
    sessions_before = sorted(before["session_date"].unique().to_list())
    known = known_before(day, before, sessions_before, pl.concat(earlier[:-1], how="vertical_relaxed"), config)
    setups = [
        (np.asarray(r["vector"], dtype=np.float32), r["level_kind"], r["direction"], r["time_bucket"], r["distance_atr"], r["feature_families"])
        for r in history[-1].iter_rows(named=True)
    ]
    for vector, kind, direction, bucket, distance, families in setups[:5]:  # warm-up
        answer_setup(known, vector, kind, direction, bucket, distance, config, families)
    latencies = []
    for vector, kind, direction, bucket, distance, families in setups:
        t0 = time.perf_counter()
        answer_setup(known, vector, kind, direction, bucket, distance, config, families)
        latencies.append(time.perf_counter() - t0)
    emit("query_blend_setups_timed", len(latencies))
    emit("query_blend_model", "yes" if known.model is not None else "no")
    emit("query_blend_latency_ms_p50", percentile(latencies, 50) * 1e3)
    emit("query_blend_latency_ms_p99", percentile(latencies, 99) * 1e3)
    emit("target_query_blend_p99_under_5ms_met", percentile(latencies, 99) < 0.005)


def benchmark_dagster(home: Path, days: list[date], pipeline_seconds: dict[str, float]) -> None:
    """Time ``materialize`` of every asset for one partition (ephemeral instance) after an untimed one.

    Emits dagster_materialize_seconds_per_session (median over the timed partitions) and an estimate
    of Dagster's overhead: that minus bronze decode + the pure pipeline of the same sessions (the
    difference is Dagster orchestration, pandera validation, Parquet reads and writes, metadata).
    """
    from dagster import DagsterInstance, materialize

    from spymaster_assets.definitions import all_assets
    from spymaster_resources import SpymasterResource

    instance = DagsterInstance.ephemeral()
    resources = {"spymaster": SpymasterResource(home=str(home))}
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    timed: list[float] = []
    overhead: list[float] = []
    for i, day in enumerate(days):
        t0 = time.perf_counter()
        result = materialize(all_assets, partition_key=day.isoformat(), instance=instance, resources=resources, run_config=quiet, raise_on_error=False)
        elapsed = time.perf_counter() - t0
        if not result.success:
            raise SystemExit(f"dagster materialize of {day} failed")
        progress(f"dagster materialize {day}: {elapsed:.2f} s{' (untimed warm-up)' if i == 0 else ''}")
        if i > 0:
            timed.append(elapsed)
            overhead.append(elapsed - pipeline_seconds.get(day.isoformat(), float("nan")))
    emit("dagster_materialize_sessions_timed", len(timed))
    emit("dagster_materialize_seconds_per_session", percentile(timed, 50))
    emit("dagster_overhead_seconds_per_session_estimate", percentile(overhead, 50))


# ------------------------------------------------------------------------------- 2. query speed
def synthetic_partition(n_sessions: int, per_session: int, dim: int, seed: int) -> tuple[np.ndarray, pl.DataFrame, date]:
    """Random L2-normalized float32 vectors (n, dim) in one partition, ``per_session`` per session.

    Returns (vectors, metadata with partition_key + META_COLUMNS and random outcomes, as_of day
    after the last session). Sessions are consecutive calendar days (the index does not care).
    """
    rng = np.random.default_rng(seed)
    n = n_sessions * per_session
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first = date(2005, 1, 3)
    session_idx = np.repeat(np.arange(n_sessions), per_session)
    days = np.datetime64(first, "D") + session_idx
    # Anchors every 2 minutes from 14:30 UTC: their exact time does not affect the search.
    ts = days.astype("datetime64[ns]") + np.timedelta64(14 * 60 + 30, "m") + np.tile(np.arange(per_session), n_sessions) * np.timedelta64(2, "m")
    kind, direction, bucket = SYNTHETIC_PARTITION
    meta = pl.DataFrame(
        {
            "partition_key": f"{kind}|{direction}|{bucket}",
            "session_date": pl.Series(days).cast(pl.Date),
            "ts_event": pl.Series(ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
            "level_kind": kind,
            "direction": direction,
            "time_bucket": bucket,
            "distance_atr": pl.Series(rng.uniform(-2.0, 2.0, n)),
            "outcome": pl.Series(np.array(OUTCOMES)[rng.integers(0, len(OUTCOMES), n)]),
        }
    )
    return vectors, meta, first + timedelta(days=n_sessions)


def random_queries(m: int, dim: int, seed: int) -> np.ndarray:
    """(m, dim) float32 random unit vectors (not taken from the index)."""
    q = np.random.default_rng(seed).standard_normal((m, dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def numpy_top_k_capped(
    x: np.ndarray, session_code: np.ndarray, queries: np.ndarray, k: int, max_per_session: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force NumPy baseline of ``SetupIndex.search_batch``: exact top-k by inner product, capped per session.

    x: (n, D) float32; session_code: (n,) int session of each row; queries: (m, D) float32.
    sims = queries @ x.T; argpartition the best ``4k`` (the index's over-fetch), sort them, keep at
    most ``max_per_session`` per session in similarity order, the first k kept; rows still short
    refetch with the over-fetch doubled. Returns (ids (m, k) int64, -1 padded; sims (m, k) float32, NaN padded).
    """
    n = x.shape[0]
    sims_all = queries @ x.T
    m = sims_all.shape[0]
    out_ids = np.full((m, k), -1, dtype=np.int64)
    out_sims = np.full((m, k), np.nan, dtype=np.float32)
    rows = np.arange(m)
    fetch = min(n, 4 * k)
    while rows.size:
        sims = sims_all[rows]
        cand = np.argpartition(-sims, fetch - 1, axis=1)[:, :fetch] if fetch < n else np.tile(np.arange(n), (rows.size, 1))
        cand_sims = np.take_along_axis(sims, cand, axis=1)
        order = np.argsort(-cand_sims, axis=1, kind="stable")
        cand = np.take_along_axis(cand, order, axis=1)
        cand_sims = np.take_along_axis(cand_sims, order, axis=1)
        # Rank of each candidate among earlier candidates of the same session in its row.
        group = (np.arange(rows.size)[:, None] * (int(session_code.max()) + 1) + session_code[cand]).ravel()
        by_group = np.argsort(group, kind="stable")
        sorted_group = group[by_group]
        starts = np.r_[True, sorted_group[1:] != sorted_group[:-1]]
        position = np.arange(group.size)
        rank = np.empty_like(position)
        rank[by_group] = position - np.maximum.accumulate(np.where(starts, position, 0))
        keep = (rank < max_per_session).reshape(cand.shape)
        keep &= np.cumsum(keep, axis=1) <= k
        found = keep.sum(axis=1)
        done = (found >= k) | (fetch >= n)
        slot = np.cumsum(keep, axis=1) - 1  # output column of each kept candidate
        r_idx, c_idx = np.nonzero(keep & done[:, None])
        out_ids[rows[r_idx], slot[r_idx, c_idx]] = cand[r_idx, c_idx]
        out_sims[rows[r_idx], slot[r_idx, c_idx]] = cand_sims[r_idx, c_idx]
        rows = rows[~done]
        fetch = min(n, fetch * 2)
    return out_ids, out_sims


def time_single(search, queries: np.ndarray, warmup: int = 5) -> np.ndarray:
    """Seconds of ``search(queries[i:i+1])`` for each query, after ``warmup`` untimed calls."""
    for i in range(min(warmup, len(queries))):
        search(queries[i : i + 1])
    out = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        search(queries[i : i + 1])
        out[i] = time.perf_counter() - t0
    return out


def time_batches(search, queries: np.ndarray, batch: int) -> float:
    """Queries per second of ``search`` over ``queries`` in batches of ``batch`` (after one untimed batch)."""
    search(queries[:batch])
    t0 = time.perf_counter()
    for start in range(0, len(queries), batch):
        search(queries[start : start + batch])
    return len(queries) / (time.perf_counter() - t0)


def overlap(ids_a: np.ndarray, ids_b: np.ndarray) -> float:
    """Mean over rows of |a & b| / |b| for id rows (-1 ignored): recall of a against reference b."""
    total = 0.0
    for a, b in zip(ids_a, ids_b):
        b = b[b >= 0]
        total += len(np.intersect1d(a[a >= 0], b)) / max(len(b), 1)
    return total / len(ids_b)


def benchmark_queries(n_episodes: int, per_session: int, n_single: int, n_batch: int, batch: int, numpy_batch: int) -> None:
    """Flat and HNSW single-query latency and batch throughput vs the NumPy baseline; emits query_* lines."""
    base = SpymasterConfig()
    dim = len(vector_columns(base))
    n_sessions = max(1, n_episodes // per_session)
    vectors, meta, as_of = synthetic_partition(n_sessions, per_session, dim, seed=7)
    n = vectors.shape[0]
    key = meta["partition_key"][0]
    k, cap = base.top_k, base.max_neighbours_per_session
    emit("query_dim", dim)
    emit("query_index_vectors_in_partition", n)
    emit("query_index_sessions", n_sessions)
    emit("query_top_k", k)
    emit("query_max_per_session", cap)
    emit("query_default_config_approximate_index_min_vectors", base.approximate_index_min_vectors)
    emit("query_default_config_partition_kind", "flat" if n < base.approximate_index_min_vectors else "hnsw")

    singles = random_queries(n_single, dim, seed=11)
    batches = random_queries(n_batch, dim, seed=13)
    session_code = np.repeat(np.arange(n_sessions), per_session)

    progress(f"numpy baseline on {n} vectors")
    numpy_single = time_single(lambda q: numpy_top_k_capped(vectors, session_code, q, k, cap), singles)
    numpy_qps = time_batches(lambda q: numpy_top_k_capped(vectors, session_code, q, k, cap), batches, numpy_batch)
    reference_ids, _ = numpy_top_k_capped(vectors, session_code, singles, k, cap)
    emit("query_numpy_latency_ms_p50", percentile(numpy_single, 50) * 1e3)
    emit("query_numpy_latency_ms_p99", percentile(numpy_single, 99) * 1e3)
    emit("query_numpy_batch_size", numpy_batch)
    emit("query_numpy_batch_queries_per_second", numpy_qps)

    variants = (
        ("flat", replace(base, approximate_index_min_vectors=n + 1)),
        ("hnsw", replace(base, approximate_index_min_vectors=min(base.approximate_index_min_vectors, n))),
    )
    for name, config in variants:
        progress(f"building {name} index of {n} vectors")
        t0 = time.perf_counter()
        index = SetupIndex.build(vectors, meta, config, as_of=as_of)
        build_seconds = time.perf_counter() - t0
        stats = index.stats[key]
        progress(f"{name}: built ({stats.kind}) in {build_seconds:.1f} s; timing {n_single} single queries and {n_batch} batched")

        def search(q, index=index):
            return index.search_batch(key, q)

        single = time_single(search, singles)
        qps = time_batches(search, batches, batch)
        frames_single = time_single(lambda q, index=index: index.search(key, q), singles[: max(1, n_single // 4)])
        # Diagnosis only (private attribute): the bare FAISS index of the partition, to split the
        # time of search_batch into FAISS search and SetupIndex's own work (cap filter, Python).
        raw_index = index._partitions[key].index
        fetch = min(n, 4 * k)  # what search_batch asks FAISS for first
        raw_single = time_single(lambda q: raw_index.search(q, fetch), singles)
        raw_qps_fetch = time_batches(lambda q: raw_index.search(q, fetch), batches, batch)
        raw_qps_k = time_batches(lambda q: raw_index.search(q, k), batches, batch)
        ids, _ = index.search_batch(key, singles)
        p99 = percentile(single, 99)
        emit(f"query_{name}_partition_kind", stats.kind)
        emit(f"query_{name}_build_seconds", build_seconds)
        emit(f"query_{name}_recall_at_{k}_from_index_stats", stats.recall)
        emit(f"query_{name}_capped_top_{k}_overlap_with_numpy_exact", overlap(ids, reference_ids))
        emit(f"query_{name}_latency_ms_p50", percentile(single, 50) * 1e3)
        emit(f"query_{name}_latency_ms_p99", p99 * 1e3)
        emit(f"query_{name}_search_frames_latency_ms_p50", percentile(frames_single, 50) * 1e3)
        emit(f"query_{name}_search_frames_latency_ms_p99", percentile(frames_single, 99) * 1e3)
        emit(f"query_{name}_p99_speedup_vs_numpy", percentile(numpy_single, 99) / p99)
        emit(f"query_{name}_batch_size", batch)
        emit(f"query_{name}_batch_queries_per_second", qps)
        emit(f"query_{name}_batch_speedup_vs_numpy", qps / numpy_qps)
        emit(f"query_{name}_raw_faiss_fetch_{fetch}_latency_ms_p50", percentile(raw_single, 50) * 1e3)
        emit(f"query_{name}_raw_faiss_fetch_{fetch}_latency_ms_p99", percentile(raw_single, 99) * 1e3)
        emit(f"query_{name}_raw_faiss_fetch_{fetch}_batch_queries_per_second", raw_qps_fetch)
        emit(f"query_{name}_raw_faiss_fetch_{k}_batch_queries_per_second", raw_qps_k)
        emit(f"target_query_{name}_p99_under_2ms_met", p99 * 1e3 < QUERY_P99_TARGET_MS)
        emit(f"target_query_{name}_batch_20000_qps_met", qps >= THROUGHPUT_TARGET_QPS)
        del index


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every size (explicit options still win)."""
    parser = argparse.ArgumentParser(
        description="Spymaster benchmarks: silver+gold wall time per session on the real sample, and setup-index "
        "query latency/throughput against a brute-force NumPy baseline. Prints `name: value` lines."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (4 sessions, 20,000 episodes, fewer queries, no Dagster run)")
    parser.add_argument("--sessions", type=int, default=None, help="sample sessions to time (default 14 = all; quick 4; at least 2)")
    parser.add_argument("--episodes", type=int, default=None, help="vectors in the one benchmark index partition (default 200,000; quick 20,000)")
    parser.add_argument("--episodes-per-session", type=int, default=100, help="synthetic episodes per past session (default 100)")
    parser.add_argument("--single-queries", type=int, default=None, help="single queries timed per index (default 1,000; quick 200)")
    parser.add_argument("--batch-queries", type=int, default=None, help="queries for the throughput figure (default 10,000; quick 2,000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="queries per search_batch call (default 1,000)")
    parser.add_argument("--numpy-batch-size", type=int, default=100, help="queries per NumPy matrix multiply (default 100: bounds the (m, n) similarity matrix)")
    parser.add_argument("--no-dagster", action="store_true", help="skip the Dagster materialize timing")
    parser.add_argument("--skip-pipeline", action="store_true", help="skip the per-session pipeline timing")
    parser.add_argument("--skip-queries", action="store_true", help="skip the query benchmark")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sessions = args.sessions or (4 if quick else 14)
    args.episodes = args.episodes or (20_000 if quick else 200_000)
    args.single_queries = args.single_queries or (200 if quick else 1000)
    args.batch_queries = args.batch_queries or (2000 if quick else 10_000)
    args.no_dagster = args.no_dagster or quick
    if args.sessions < 2:
        parser.error("--sessions must be at least 2 (one is needed as history)")
    return args


def benchmark_partitioned_layout(n_episodes: int, per_session: int, n_batch: int) -> None:
    """The design's layout: the same history spread over 60 partitions (6 kinds x 2 directions x 5 buckets).

    Each query goes to one partition, as a live query does. Emits query_partitioned_* lines: the
    exact flat index per partition against the NumPy brute force over the same partition.
    """
    from spymaster_core.config import DIRECTIONS, LEVEL_KINDS

    base = SpymasterConfig()
    dim = len(vector_columns(base))
    vectors, meta, as_of = synthetic_partition(max(1, n_episodes // per_session), per_session, dim, seed=17)
    rng = np.random.default_rng(19)
    keys = [f"{k}|{d}|{b}" for k in LEVEL_KINDS for d in DIRECTIONS for b in base.time_bucket_labels]
    meta = meta.with_columns(partition_key=pl.Series(np.array(keys)[rng.integers(0, len(keys), meta.height)]))
    index = SetupIndex.build(vectors, meta, base, as_of=as_of)
    k, cap = base.top_k, base.max_neighbours_per_session
    queries = random_queries(n_batch, dim, seed=23)
    query_keys = np.array(keys)[rng.integers(0, len(keys), n_batch)]
    codes = meta["session_date"].to_physical().to_numpy()
    part_of = meta["partition_key"].to_numpy()
    groups = {key: np.flatnonzero(query_keys == key) for key in keys}
    latencies = []
    for i in range(min(n_batch, 2000)):
        t = time.perf_counter()
        index.search_batch(query_keys[i], queries[i : i + 1], k, cap)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    for key, rows in groups.items():
        index.search_batch(key, queries[rows], k, cap)
    flat_qps = n_batch / (time.perf_counter() - t)
    t = time.perf_counter()
    for key, rows in groups.items():
        sel = part_of == key
        numpy_top_k_capped(vectors[sel], codes[sel], queries[rows], k, cap)
    numpy_qps = n_batch / (time.perf_counter() - t)
    emit("query_partitioned_total_vectors", vectors.shape[0])
    emit("query_partitioned_partitions", len(keys))
    emit("query_partitioned_latency_ms_p50", float(np.percentile(latencies, 50) * 1e3))
    emit("query_partitioned_latency_ms_p99", float(np.percentile(latencies, 99) * 1e3))
    emit("query_partitioned_batch_queries_per_second", flat_qps)
    emit("query_partitioned_numpy_batch_queries_per_second", numpy_qps)
    emit("query_partitioned_batch_speedup_vs_numpy", flat_qps / numpy_qps)
    emit("target_query_partitioned_p99_under_2ms_met", "yes" if np.percentile(latencies, 99) < 0.002 else "no")
    emit("target_query_partitioned_batch_20000_qps_met", "yes" if flat_qps >= 20_000 else "no")


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and print their ``name: value`` lines."""
    args = parse_args(argv)
    # databento's import installs an "always" filter for DeprecationWarning and its to_df then
    # triggers pandas 3 deprecation warnings that say nothing about speed: import it first, then
    # put the ignore filters in front of its filter.
    import databento  # noqa: F401
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    started = time.perf_counter()
    emit("benchmark_started_utc", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    emit("benchmark_mode", "quick" if args.quick else "default")
    environment_lines()
    with tempfile.TemporaryDirectory(prefix="spymaster-bench-") as tmp:
        if not args.skip_pipeline:
            home = Path(tmp) / "pipeline"
            shutil.copytree(SAMPLE_RAW, home / "raw")
            per_day = benchmark_pipeline(home, args.sessions)
            if not args.no_dagster:
                dagster_home = Path(tmp) / "dagster"
                shutil.copytree(SAMPLE_RAW, dagster_home / "raw")
                days = [date.fromisoformat(d) for d in sorted(per_day)][:3]
                benchmark_dagster(dagster_home, days, per_day)
        if not args.skip_queries:
            benchmark_queries(args.episodes, args.episodes_per_session, args.single_queries, args.batch_queries, args.batch_size, args.numpy_batch_size)
            benchmark_partitioned_layout(args.episodes, args.episodes_per_session, args.batch_queries)
    emit("env_load_average_1min_at_end", os.getloadavg()[0])
    emit("benchmark_wall_seconds", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
