"""Two-stage Optuna tuning of the answer, nested walk-forward (DESIGN.md "The answer": tuning).

Stage 1 tunes how a setup is retrieved (k, per-session cap, prior strength and mean, candidates, similarity weighting,
block weights, DCT coefficients counted) with the model at its current settings; stage 2 tunes the
XGBoost parameters, the blend window and the calibration map (temperature, or temperature and
per-class bias) with stage 1's best values fixed. Labels and the vector
layout are never tuned (``tuned_params.TUNABLE_FIELDS``).

The objective of a trial is the walk-forward Brier skill score of the answer against the partition
base rate over the *tuning window*: every session up to ``through`` that has
``min_history_sessions`` earlier sessions, each answered by ``gold.walk_forward`` from the sessions
before it. The values found are written to a parameter file stamped ``tuned_through = through``
and serve only days after it (``tuned_params.config_for_day``), so no scored session ever informs a
tuned value it is scored with (nested). Studies live in Optuna's RDB storage (SQLite under
``<home>/params`` by default), seeded TPE (Bergstra et al. 2011, "Algorithms for Hyper-Parameter
Optimization", NeurIPS), and resume where they stopped.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import optuna
import polars as pl

from spymaster_resources.lake import Lake

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from ..gold.answer import probability_columns
from ..gold.evaluation import brier_skill_score
from ..gold.retrieval import outcome_codes
from ..gold.walk_forward import walk_forward
from spymaster_core.tuned_params import params_dir, write_params

STAGES = (1, 2)
_BARS_BLOCKS = ("distance", "trajectory", "kinematics", "context")


@dataclass(frozen=True)
class TuningResult:
    """What a tuning run found: the stage, best walk-forward BSS, best values, trials run, the study and the file written."""

    stage: int
    best_bss: float
    default_bss: float
    values: dict[str, object]
    n_trials: int
    study_name: str
    storage: str
    params_file: Path | None


def default_storage(config: SpymasterConfig) -> str:
    """SQLite file ``<home>/params/optuna.db`` as an Optuna RDB storage URL."""
    folder = params_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def stage1_space(trial: optuna.Trial, families: set[str]) -> dict[str, object]:
    """Stage 1 values of a trial: retrieval and similarity (block weights only for blocks the episodes have)."""
    blocks = [*_BARS_BLOCKS, *sorted(families - {"bars"})]
    return {
        "top_k": trial.suggest_categorical("top_k", [10, 20, 30, 50, 80]),
        "max_neighbours_per_session": trial.suggest_int("max_neighbours_per_session", 1, 4),
        "dirichlet_prior_strength": trial.suggest_float("dirichlet_prior_strength", 1.0, 50.0, log=True),
        "knn_prior": trial.suggest_categorical("knn_prior", ["distance_lookup", "partition_base_rate"]),
        "knn_candidates": trial.suggest_categorical("knn_candidates", ["partition", "distance_band"]),
        "similarity_weighting": trial.suggest_categorical("similarity_weighting", ["model_gain", "equal"]),
        "similarity_dct_coefficients": trial.suggest_int("similarity_dct_coefficients", 2, 8),
        "similarity_block_weights": tuple((b, trial.suggest_float(f"block_{b}", 0.25, 4.0, log=True)) for b in blocks),
    }


def stage2_space(trial: optuna.Trial) -> dict[str, object]:
    """Stage 2 values of a trial: the XGBoost parameters, the blend's fitting window and the calibration map."""
    return {
        "xgb_rounds": trial.suggest_int("xgb_rounds", 50, 400, step=25),
        "xgb_max_depth": trial.suggest_int("xgb_max_depth", 2, 6),
        "xgb_learning_rate": trial.suggest_float("xgb_learning_rate", 0.01, 0.3, log=True),
        "xgb_min_child_weight": trial.suggest_float("xgb_min_child_weight", 1.0, 30.0, log=True),
        "xgb_subsample": trial.suggest_float("xgb_subsample", 0.5, 1.0),
        "xgb_colsample_bytree": trial.suggest_float("xgb_colsample_bytree", 0.3, 1.0),
        "xgb_reg_lambda": trial.suggest_float("xgb_reg_lambda", 0.1, 10.0, log=True),
        "blend_sessions": trial.suggest_categorical("blend_sessions", [10, 20, 60]),
        "calibration": trial.suggest_categorical("calibration", ["temperature", "temperature_bias"]),
    }


def values_of(stage: int, params: dict[str, object]) -> dict[str, object]:
    """Configuration values from a study's ``best_params`` (block_* entries folded into similarity_block_weights)."""
    blocks = tuple((k[len("block_"):], float(v)) for k, v in params.items() if k.startswith("block_"))
    values = {k: v for k, v in params.items() if not k.startswith("block_")}
    if stage == 1:
        values["similarity_block_weights"] = blocks
    return values


def walk_forward_bss(episodes: pl.DataFrame, sessions: list[date], config: SpymasterConfig) -> float:
    """Walk-forward BSS of the answer against the partition base rate over the sessions with enough history.

    Raises SpymasterError when no session has ``min_history_sessions`` earlier sessions.
    """
    scored_days = sessions[config.min_history_sessions:]
    if not scored_days:
        raise SpymasterError(f"the tuning window has {len(sessions)} sessions: at least {config.min_history_sessions + 1} are needed to score one")
    out = walk_forward(episodes, config, days=scored_days, sessions=sessions)
    labels = outcome_codes(out["outcome"])
    return brier_skill_score(out.select(probability_columns("p_")).to_numpy(), out.select(probability_columns("base_")).to_numpy(), labels)


def tune(
    config: SpymasterConfig,
    trials: int,
    through: date | None = None,
    stage: int | None = None,
    storage: str | None = None,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[TuningResult]:
    """Run stage 1, stage 2 or both (``stage`` None) for ``trials`` trials each on the sessions up to ``through``.

    ``through`` defaults to the latest session with gold_episodes. Each stage's study is named
    ``spymaster-stage<k>-<through>`` in ``storage`` (default :func:`default_storage`) and resumed
    when it exists: trials already in it count towards ``trials``. After the last stage the best
    values of both stages are written to the next ``tuned-v<N>.json`` (tuned_through = through).
    Raises SpymasterError when the lake holds too few sessions or ``trials`` < 1.
    """
    if trials < 1:
        raise SpymasterError(f"--trials must be at least 1, got {trials}")
    lake = Lake(config.lake_dir)
    sessions = lake.dates("gold", "gold_episodes")
    if through is not None:
        sessions = [d for d in sessions if d <= through]
    if len(sessions) <= config.min_history_sessions:
        raise SpymasterError(f"{len(sessions)} sessions with gold_episodes up to {through or 'now'} in {config.lake_dir}: tuning needs at least {config.min_history_sessions + 1}")
    through = sessions[-1]
    episodes = lake.read_many("gold", "gold_episodes", sessions)
    families = set("+".join(episodes["feature_families"].unique().to_list()).split("+"))
    storage = storage or default_storage(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)

    default_bss = walk_forward_bss(episodes, sessions, config)
    log(f"tuning window {sessions[0]} .. {through} ({len(sessions)} sessions, {episodes.height} episodes); defaults score BSS {default_bss:+.4f}")
    results: list[TuningResult] = []
    fixed: dict[str, object] = {}
    for k in STAGES if stage is None else (stage,):
        if k == 2 and stage is None:
            fixed = results[-1].values
        elif k == 2:
            fixed = _best_values(storage, _study_name(1, through), 1) or {}
        name = _study_name(k, through)
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed + k),
        )

        def objective(trial: optuna.Trial, k: int = k) -> float:
            values = stage1_space(trial, families) if k == 1 else {**fixed, **stage2_space(trial)}
            return walk_forward_bss(episodes, sessions, dataclasses.replace(config, **values))

        done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
        if done == 0:
            study.enqueue_trial(_defaults_as_trial(k, config, families))  # the defaults are trial 0: tuning never ends worse
        remaining = max(trials - done, 0)
        if remaining:
            study.optimize(objective, n_trials=remaining, show_progress_bar=progress)
        values = {**fixed, **values_of(k, study.best_params)} if k == 2 else values_of(k, study.best_params)
        results.append(TuningResult(k, float(study.best_value), default_bss, values, len(study.trials), name, storage, None))
        log(f"stage {k}: best walk-forward BSS {study.best_value:+.4f} after {len(study.trials)} trials (defaults {default_bss:+.4f})")
    final = results[-1]
    path = write_params(
        config,
        final.values,
        through,
        {
            "tuning_window": [sessions[0].isoformat(), through.isoformat()],
            "objective": "walk-forward Brier skill score of the answer vs the partition base rate",
            "best_bss": final.best_bss,
            "default_bss": default_bss,
            "studies": [r.study_name for r in results],
            "storage": storage,
            "trials": {r.study_name: r.n_trials for r in results},
        },
    )
    results[-1] = dataclasses.replace(final, params_file=path)
    log(f"wrote {path}: serves sessions after {through}")
    return results


def _study_name(stage: int, through: date) -> str:
    return f"spymaster-stage{stage}-{through.isoformat()}"


def _best_values(storage: str, name: str, stage: int) -> dict[str, object] | None:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        return values_of(stage, study.best_params)
    except (KeyError, ValueError):
        return None


def _defaults_as_trial(stage: int, config: SpymasterConfig, families: set[str]) -> dict[str, object]:
    """The current configuration as an Optuna trial of the stage's space (enqueued as trial 0)."""
    if stage == 1:
        factors = dict(config.similarity_block_weights)
        blocks = [*_BARS_BLOCKS, *sorted(families - {"bars"})]
        return {
            "top_k": config.top_k if config.top_k in (10, 20, 30, 50, 80) else 50,
            "max_neighbours_per_session": config.max_neighbours_per_session,
            "dirichlet_prior_strength": config.dirichlet_prior_strength,
            "similarity_weighting": config.similarity_weighting,
            "similarity_dct_coefficients": config.similarity_dct_coefficients,
            **{f"block_{b}": float(factors.get(b, 1.0)) for b in blocks},
        }
    return {
        "xgb_rounds": config.xgb_rounds,
        "xgb_max_depth": config.xgb_max_depth,
        "xgb_learning_rate": config.xgb_learning_rate,
        "xgb_min_child_weight": config.xgb_min_child_weight,
        "xgb_subsample": config.xgb_subsample,
        "xgb_colsample_bytree": config.xgb_colsample_bytree,
        "xgb_reg_lambda": config.xgb_reg_lambda,
        "blend_sessions": config.blend_sessions if config.blend_sessions in (10, 20, 60) else 60,
        "calibration": config.calibration,
    }


def study_summary(storage: str, name: str) -> tuple[pl.DataFrame, dict[str, float]]:
    """(trial history: number, value, best_so_far; parameter importances by Optuna's fANOVA) of a stored study."""
    study = optuna.load_study(study_name=name, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    values = np.array([t.value for t in done], dtype=np.float64)
    history = pl.DataFrame({"number": [t.number for t in done], "value": values, "best_so_far": np.maximum.accumulate(values) if values.size else values})
    importances = optuna.importance.get_param_importances(study) if len(done) >= 2 else {}
    return history, {k: float(v) for k, v in importances.items()}
