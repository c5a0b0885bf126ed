#!/usr/bin/env python
"""Which similarity should retrieval use? The kNN component under three metrics, walk-forward, as ``name: value`` lines.

Candidates (issue "learned similarity"; DESIGN.md "The answer"), each learned from the sessions
before the day only:

- ``equal``: robust z-scores, every dimension weighted the same (the answer before the model);
- ``model_gain``: each dimension weighted by its share of the XGBoost model's split gain (what
  gold_setup_index does by default; here the model trains on the cadence's window, or on every
  earlier session before the first window, so every scored day has weights);
- ``nca``: scikit-learn's NeighborhoodComponentsAnalysis (Goldberger et al. 2004, "Neighbourhood
  Components Analysis", NeurIPS), a linear map learned on the earlier sessions' normalized vectors
  and outcomes, then cosine similarity in the mapped space;
- ``leaf``: similarity in the model's leaf space: each setup becomes the one-hot vector of the leaf
  it reaches in every tree of the XGBoost model trained as for ``model_gain``
  (``Booster.predict(pred_leaf=True)``), so the cosine of two setups is the share of trees in which
  they fall in the same leaf (the "proximity" of Breiman's random forests, 2001).

For every session with ``min_history_sessions`` earlier ones, each episode is answered by its
partition's top ``top_k`` neighbours (at most ``max_neighbours_per_session`` per session) and the
Dirichlet posterior of ``retrieval.posterior_batch`` around ``--prior``: the partition base rate, or
the setup's distance-lookup rate (``distance_lookup``, fitted on the earlier sessions). The lines give
the Brier skill score of each candidate against the partition base rate and against the distance
lookup over the same episodes, with 90% session-bootstrap intervals. Reads ``gold_episodes`` from the
lake of ``--home`` (after ``spymaster demo`` or a backfill).

Usage: ``.venv/bin/python scripts/compare_similarity.py [--home data/demo] [--nca-components 16] [--prior distance_lookup]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from sklearn.neighbors import NeighborhoodComponentsAnalysis  # noqa: E402

from spymaster_core.config import SpymasterConfig  # noqa: E402
from spymaster_assets.gold.evaluation import session_bootstrap_skill  # noqa: E402
from spymaster_assets.gold.distance_baseline import distance_probabilities, fit_distance_table  # noqa: E402
from spymaster_assets.gold.model import feature_matrix, train_model, training_window  # noqa: E402
from spymaster_assets.gold.normalization import fit_normalization, normalize  # noqa: E402
from spymaster_assets.gold.retrieval import outcome_codes, posterior_batch  # noqa: E402
from spymaster_assets.gold.setup_index import META_COLUMNS, SetupIndex  # noqa: E402
from spymaster_assets.gold.vectors import schema_dims, vector_columns, vector_version  # noqa: E402
from spymaster_resources.lake import Lake  # noqa: E402

CANDIDATES = ("equal", "model_gain", "nca", "leaf")


def leaf_space(model, history: pl.DataFrame, today: pl.DataFrame, config: SpymasterConfig) -> tuple[np.ndarray, np.ndarray]:
    """One-hot leaf vectors (float32, one column per (tree, node)) of the history's and today's setups under ``model``."""
    import xgboost as xgb

    def leaves(frame: pl.DataFrame) -> np.ndarray:
        matrix = xgb.DMatrix(feature_matrix(frame, config), missing=np.nan, feature_names=model.features)
        return model.booster.predict(matrix, pred_leaf=True).astype(np.int64)

    hl, dl = leaves(history), leaves(today)
    width = int(max(hl.max(), dl.max())) + 1
    offsets = np.arange(hl.shape[1]) * width

    def one_hot(ids: np.ndarray) -> np.ndarray:
        out = np.zeros((ids.shape[0], hl.shape[1] * width), dtype=np.float32)
        out[np.arange(ids.shape[0])[:, None], ids + offsets[None, :]] = 1.0
        return out

    return one_hot(hl), one_hot(dl)


def knn_probabilities(history_x: np.ndarray, history: pl.DataFrame, day_x: np.ndarray, today: pl.DataFrame, config: SpymasterConfig, priors: np.ndarray | None = None):
    """(posterior probabilities (n, 3), partition base rates (n, 3)) of today's episodes against the history's vectors
    (``priors`` (n, 3): the posterior's prior mean per episode instead of the partition base rate)."""
    norms = np.linalg.norm(history_x, axis=1, keepdims=True)
    index = SetupIndex.build(np.divide(history_x, norms, out=np.zeros_like(history_x), where=norms > 0), history.select("partition_key", *META_COLUMNS), config)
    q_norms = np.linalg.norm(day_x, axis=1, keepdims=True)
    queries = np.divide(day_x, q_norms, out=np.zeros_like(day_x), where=q_norms > 0).astype(np.float32)
    rates = index.partition_base_rates()
    probs, bases = np.zeros((today.height, 3)), np.zeros((today.height, 3))
    keys = today["partition_key"].to_list()
    for key in sorted(set(keys)):
        rows = np.flatnonzero(np.asarray(keys) == key)
        prior = rates.get(key, np.full(3, 1 / 3))
        ids, sims = index.search_batch(key, queries[rows])
        post = posterior_batch(sims, index.outcome_codes_of(key, ids), prior if priors is None else priors[rows], config, intervals=False)
        probs[rows], bases[rows] = post["probabilities"], prior
    return probs, bases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("data/demo"), help="data root with materialized gold_episodes (default data/demo)")
    parser.add_argument("--nca-components", type=int, default=16, help="dimensions of the NCA map (default 16)")
    parser.add_argument("--prior", choices=("partition_base_rate", "distance_lookup"), default="partition_base_rate", help="prior mean of the kNN posterior (default partition_base_rate)")
    args = parser.parse_args(argv)
    config = SpymasterConfig.for_home(args.home)
    lake = Lake(config.lake_dir)
    sessions = lake.dates("gold", "gold_episodes")
    if len(sessions) <= config.min_history_sessions:
        raise SystemExit(f"{config.lake_dir}: {len(sessions)} sessions with gold_episodes; run `spymaster demo` or a backfill first")
    episodes = lake.read_many("gold", "gold_episodes", sessions).filter(pl.col("vector_version") == vector_version(config))
    dims = schema_dims(config, "bars")
    brier: dict[str, list[np.ndarray]] = {name: [] for name in (*CANDIDATES, "base_rate", "distance")}
    session_of: list[np.ndarray] = []
    seconds = dict.fromkeys(CANDIDATES, 0.0)
    for i, day in enumerate(sessions[config.min_history_sessions:], start=config.min_history_sessions):
        history = episodes.filter(pl.col("session_date") < day)
        today = episodes.filter(pl.col("session_date") == day)
        if today.height == 0:
            continue
        trailing = sessions[max(0, i - config.normalization_sessions):i]
        stats = fit_normalization(history.filter(pl.col("session_date").is_in(trailing)), vector_columns(config), config, as_of=day)
        hist_vectors = history["vector"].to_numpy().reshape(history.height, -1)
        day_vectors = today["vector"].to_numpy().reshape(today.height, -1)
        labels = outcome_codes(today["outcome"])
        one_hot = np.eye(3)[labels]
        p_dist = distance_probabilities(today, fit_distance_table(history, config), config)
        window = training_window(sessions[:i], config) or sessions[:i]
        model = train_model(history.filter(pl.col("session_date").is_in(window)), config, as_of=day)
        for name in CANDIDATES:
            t0 = time.perf_counter()
            weights = model.similarity_weights(config) if name == "model_gain" else None
            hx = normalize(hist_vectors, stats, config.robust_z_clip, dims, weights)
            dx = normalize(day_vectors, stats, config.robust_z_clip, dims, weights)
            if name == "leaf":
                hx, dx = leaf_space(model, history, today, config)
            if name == "nca":
                nca = NeighborhoodComponentsAnalysis(n_components=min(args.nca_components, hx.shape[1]), max_iter=50, random_state=0)
                nca.fit(hx, outcome_codes(history["outcome"]))
                hx, dx = nca.transform(hx), nca.transform(dx)
            probs, bases = knn_probabilities(hx.astype(np.float32), history, dx, today, config, p_dist if args.prior == "distance_lookup" else None)
            brier[name].append(((probs - one_hot) ** 2).sum(axis=1))
            seconds[name] += time.perf_counter() - t0
        brier["base_rate"].append(((bases - one_hot) ** 2).sum(axis=1))
        brier["distance"].append(((p_dist - one_hot) ** 2).sum(axis=1))
        session_of.append(np.full(today.height, i))
        print(f"[compare_similarity] {day}: {today.height} episodes", file=sys.stderr, flush=True)
    sessions_index = np.concatenate(session_of)
    codes = np.unique(sessions_index, return_inverse=True)[1]
    per_session = {name: np.bincount(codes, weights=np.concatenate(values)) for name, values in brier.items()}
    print(f"sessions_scored: {codes.max() + 1}")
    print(f"episodes_scored: {codes.size}")
    print(f"knn_prior: {args.prior}")
    for name in CANDIDATES:
        for reference in ("base_rate", "distance"):
            bss = 1.0 - per_session[name].sum() / per_session[reference].sum()
            lo, hi = session_bootstrap_skill(per_session[name], per_session[reference], 0.90, config.bootstrap_replicates, config.bootstrap_seed)
            print(f"knn_{name}_bss_vs_{reference}: {bss:+.4f}")
            print(f"knn_{name}_bss_vs_{reference}_90pct_interval: [{lo:+.4f}, {hi:+.4f}]")
        print(f"knn_{name}_seconds_total: {seconds[name]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
