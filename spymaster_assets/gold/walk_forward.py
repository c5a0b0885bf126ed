"""The gold tier's day-by-day answer computed in memory: what each day's assets compute, for tuning and checks.

:func:`known_before` builds, from the episodes of sessions before D, exactly what the gold assets
build for D from the lake (normalization, model, learned-similarity index, distance lookup, blend
fit), with the same functions; :func:`walk_forward` answers every episode of a range of days with it,
day by day, feeding each day's components to the next day's blend fit. ``spymaster tune`` scores
parameter sets with it; a test checks that it reproduces the materialized gold_signals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from .answer import KnownBefore, fit_blend_on_signals
from .class_mix import counts_before, fit_class_mix
from .distance_baseline import fit_distance_table
from .model import OutcomeModel, train_model, training_window, xgb_params
from .normalization import fit_normalization, normalization_window
from .schema_indexes import SchemaIndexes
from .signals import answer
from .vectors import SIMILARITY_BLOCKS, dct_index, similarity_blocks, vector_columns, vector_version


def similarity_weights_of(model: OutcomeModel | None, config: SpymasterConfig) -> tuple[np.ndarray | None, str]:
    """(weights or None, source label) for the index as of a day.

    Base weights: the model's gain shares under ``similarity_weighting='model_gain'`` when a model
    exists, else equal. Then each dimension is multiplied by its block's factor in
    ``similarity_block_weights`` (``vectors.similarity_blocks``) and DCT coefficients past
    ``similarity_dct_coefficients`` get weight 0. None (plain equal weights) when nothing applies.
    Raises ValueError for an unknown ``similarity_weighting`` or block name.
    """
    if config.similarity_weighting not in ("model_gain", "equal"):
        raise ValueError(f"similarity_weighting must be 'model_gain' or 'equal', got {config.similarity_weighting!r}")
    columns = vector_columns(config)
    blocks = similarity_blocks(config)
    factors = dict(config.similarity_block_weights)
    unknown = sorted(set(factors) - set(SIMILARITY_BLOCKS))
    if unknown:
        raise ValueError(f"unknown similarity blocks {unknown}; choose from {SIMILARITY_BLOCKS}")
    dct_order = np.array([dct_index(c) for c in columns])
    masked = (dct_order >= config.similarity_dct_coefficients).any()
    use_model = model is not None and config.similarity_weighting == "model_gain"
    if not use_model and not factors and not masked:
        return None, "equal"
    weights = model.similarity_weights(config) if use_model else np.full(len(columns), 1.0 / len(columns))
    weights = weights * np.array([factors.get(b, 1.0) for b in blocks]) * (dct_order < config.similarity_dct_coefficients)
    if weights.sum() <= 0:
        raise ValueError("the similarity weights are all zero: check similarity_block_weights and similarity_dct_coefficients")
    source = f"model_gain (trained through {model.trained_through})" if use_model else "equal"
    if factors or masked:
        source += f", blocks {dict(sorted(factors.items()))}, {config.similarity_dct_coefficients} DCT coefficients"
    return weights / weights.sum(), source


def known_before(
    day: date,
    history: pl.DataFrame,
    sessions_before: list[date],
    earlier_signals: pl.DataFrame | None,
    config: SpymasterConfig,
    model_cache: dict[tuple, OutcomeModel] | None = None,
) -> KnownBefore:
    """What the gold assets know before ``day``, built in memory.

    ``history``: gold_episodes rows of the sessions before ``day`` (with outcomes);
    ``sessions_before``: those sessions' dates (sessions without episodes included);
    ``earlier_signals``: earlier days' gold_signals joined with outcomes (for the blend fit), or None.
    ``model_cache`` maps (training window, model parameters) to its model so a cadence's days share one training.
    Raises ValueError on a point-in-time violation (a history row on or after ``day``).
    """
    late = history.filter(pl.col("session_date") >= day)
    if late.height:
        raise ValueError(f"point-in-time violation: history for {day} holds sessions on or after it")
    layout = history.filter(pl.col("vector_version") == vector_version(config))
    before = [d for d in sessions_before if d < day]
    trailing = normalization_window(before, config)
    stats = fit_normalization(layout.filter(pl.col("session_date").is_in(trailing)), vector_columns(config), config, as_of=day)
    window = training_window(before, config)
    model = None
    if window:
        key = (tuple(window), config.xgb_rounds, config.model_sample_weighting, tuple(sorted(xgb_params(config).items())))
        cache = model_cache if model_cache is not None else {}
        if key not in cache:
            cache[key] = train_model(history.filter(pl.col("session_date").is_in(window)), config, as_of=day)
        model = cache[key].as_of_day(day)
    weights, source = similarity_weights_of(model, config)
    indexes = SchemaIndexes.build(history if history.height else None, stats, config, as_of=day, weights=weights, weights_source=source)
    mix = fit_class_mix(counts_before(history, before, day, config), config)
    return KnownBefore(day, indexes, stats, model, fit_distance_table(history, config), fit_blend_on_signals(earlier_signals, config), mix)


def walk_forward(
    episodes: pl.DataFrame,
    config: SpymasterConfig,
    days: Iterable[date] | None = None,
    sessions: Iterable[date] | None = None,
    progress: Callable[[date], None] | None = None,
    config_of_day: Callable[[date], SpymasterConfig] | None = None,
) -> pl.DataFrame:
    """Answer every episode of each of ``days`` (default: every session of ``episodes``) walk-forward.

    ``episodes``: gold_episodes rows (with outcome) of every session involved; ``sessions``: all
    session dates (default those of ``episodes``). Day D is answered by :func:`known_before` from the
    sessions before D only, and the blend of D is fitted on the answers of the earlier days of this
    same walk (as gold_signals of earlier sessions feed the asset). Days are walked in date order
    from the first session, so the blend sees the same earlier answers the assets would.

    Returns gold_signals rows (``answer.SIGNALS_SCHEMA``) of the requested days joined with
    ``outcome``. ``progress`` is called with each day after it is answered. ``config_of_day`` gives
    the configuration serving each day (default ``config`` for all; the assets use
    ``tuned_params.config_for_day``, so a tuned file serves only days after its tuning window).
    """
    all_sessions = sorted(set(sessions) if sessions is not None else set(episodes["session_date"].unique().to_list()))
    wanted = set(days) if days is not None else set(all_sessions)
    last = max(wanted) if wanted else None
    cache: dict[tuple, OutcomeModel] = {}
    answered: list[pl.DataFrame] = []
    for day in all_sessions:
        if last is None or day > last:
            break
        history = episodes.filter(pl.col("session_date") < day)
        earlier = pl.concat(answered, how="vertical_relaxed") if answered else None
        day_config = config if config_of_day is None else config_of_day(day)
        known = known_before(day, history, [d for d in all_sessions if d < day], earlier, day_config, cache)
        today = episodes.filter(pl.col("session_date") == day)
        signals, _ = answer(known, today, day_config)
        answered.append(signals.join(today.select("session_date", "ts_event", "level_kind", "outcome"), on=["session_date", "ts_event", "level_kind"], how="left"))
        if progress is not None:
            progress(day)
    if not answered:
        return pl.DataFrame()
    out = pl.concat(answered, how="vertical_relaxed")
    return out.filter(pl.col("session_date").is_in(sorted(wanted)))
