"""Outcome distribution of retrieved neighbours: Dirichlet smoothing toward the partition base rate.

Model: the outcome of a setup is categorical over OUTCOMES = (BREAK, REJECT, CHOP) with unknown
probabilities p ~ Dirichlet(s * base_rate), s = ``config.dirichlet_prior_strength`` pseudo-setups.
Each neighbour i counts as w_i = max(similarity_i, 0) observations of its outcome. By
Dirichlet-multinomial conjugacy (Gelman et al., *Bayesian Data Analysis*, 3rd ed., ch. 3.4/5.3,
and the fractional-count form of weighted likelihoods) the posterior is Dirichlet(alpha) with
alpha_k = s * base_rate_k + sum_i w_i [outcome_i = k]; its mean is alpha_k / alpha_0 and each
marginal is Beta(alpha_k, alpha_0 - alpha_k). The effective sample size of the weighted neighbours
is Kish's (sum w)^2 / sum w^2 (Kish, *Survey Sampling*, 1965).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import beta as beta_distribution

from spymaster_core.config import OUTCOMES, SpymasterConfig

_OUTCOME_CODE = {name: code for code, name in enumerate(OUTCOMES)}


@dataclass(frozen=True)
class OutcomeDistribution:
    """Posterior outcome distribution of one query, arrays in OUTCOMES order.

    probabilities, lower, upper: shape (3,), unitless; lower/upper bound the central
    ``config.interval_level`` interval of each marginal. effective_sample_size: Kish ESS of the
    neighbour weights (0 when no neighbour has positive similarity). n_neighbours: neighbours used.
    base_rate: the prior mean, shape (3,).
    """

    probabilities: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    effective_sample_size: float
    n_neighbours: int
    base_rate: np.ndarray


def outcome_codes(outcomes: Sequence[str] | np.ndarray | pl.Series) -> np.ndarray:
    """Outcome labels -> int8 codes (index into OUTCOMES); integer input is passed through.

    Raises ValueError on a label that is not in OUTCOMES (a null included).
    """
    if isinstance(outcomes, pl.Series):
        if outcomes.dtype.is_integer():
            return outcomes.to_numpy().astype(np.int8)
        unknown = sorted({str(o) for o in outcomes.unique().to_list()} - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcome labels {unknown}; expected one of {OUTCOMES}")
        return outcomes.replace_strict(list(OUTCOMES), list(range(len(OUTCOMES))), return_dtype=pl.Int8).to_numpy()
    array = np.asarray(outcomes)
    if array.size and np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int8)
    unknown = sorted({str(o) for o in array.ravel().tolist()} - set(OUTCOMES))
    if unknown:
        raise ValueError(f"unknown outcome labels {unknown}; expected one of {OUTCOMES}")
    lookup = np.vectorize(_OUTCOME_CODE.__getitem__, otypes=[np.int8])
    return lookup(array) if array.size else np.zeros(array.shape, dtype=np.int8)


def base_rate(outcomes: Sequence[str] | np.ndarray | pl.Series, prior: float = 1.0) -> np.ndarray:
    """Smoothed outcome frequencies, shape (3,) in OUTCOMES order: (count_k + prior) / (n + 3 * prior).

    ``prior=1.0`` is add-one (Laplace) smoothing. An empty input gives the uniform (1/3, 1/3, 1/3)
    whatever the prior. Raises ValueError on an unknown label or a negative prior.
    """
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    codes = outcome_codes(outcomes).ravel()
    counts = np.bincount(codes, minlength=len(OUTCOMES)).astype(np.float64)
    total = counts.sum() + len(OUTCOMES) * prior
    if total == 0:
        return np.full(len(OUTCOMES), 1.0 / len(OUTCOMES))
    return (counts + prior) / total


def posterior_batch(
    similarities: np.ndarray, codes: np.ndarray, base_rates: np.ndarray, config: SpymasterConfig, intervals: bool = True
) -> dict[str, np.ndarray]:
    """Vectorized posterior for m queries at once.

    Inputs: similarities (m, k) float (NaN where there is no neighbour), codes (m, k) int outcome
    codes (-1 where there is no neighbour), base_rates (m, 3) or (3,).
    Output dict: ``probabilities``, ``lower``, ``upper`` (m, 3); ``alpha`` (m, 3);
    ``effective_sample_size`` (m,); ``n_neighbours`` (m,) int.
    Formulas in the module docstring. ``intervals=False`` skips ``lower``/``upper`` (NaN), the
    costly Beta quantiles, when only the mean and the concentration are needed.
    Raises ValueError if the prior strength is negative.
    """
    strength = float(config.dirichlet_prior_strength)
    if strength < 0:
        raise ValueError(f"dirichlet_prior_strength must be >= 0, got {strength}")
    sims = np.atleast_2d(np.asarray(similarities, dtype=np.float64))
    codes = np.atleast_2d(np.asarray(codes))
    present = (codes >= 0) & np.isfinite(sims)
    weights = np.where(present, np.maximum(np.nan_to_num(sims, nan=0.0), 0.0), 0.0)
    n_classes = len(OUTCOMES)
    one_hot = codes[:, :, None] == np.arange(n_classes)[None, None, :]
    weighted_counts = (weights[:, :, None] * one_hot).sum(axis=1)
    prior = np.broadcast_to(np.asarray(base_rates, dtype=np.float64), weighted_counts.shape)
    alpha = strength * prior + weighted_counts
    alpha0 = alpha.sum(axis=1, keepdims=True)
    # With no prior and no weight the posterior is undefined: report the base rate itself.
    probabilities = np.where(alpha0 > 0, alpha / np.where(alpha0 > 0, alpha0, 1.0), prior)
    if intervals:
        rest = alpha0 - alpha
        tail = (1.0 - config.interval_level) / 2.0
        valid = (alpha > 0) & (rest > 0)
        a = np.where(valid, alpha, 1.0)
        b = np.where(valid, rest, 1.0)
        lower = beta_distribution.ppf(tail, a, b)
        upper = beta_distribution.ppf(1.0 - tail, a, b)
        # Degenerate marginals: all mass at 0 (alpha_k = 0) or at 1 (no mass elsewhere).
        degenerate_value = np.where(alpha > 0, 1.0, 0.0)
        lower = np.where(valid, lower, degenerate_value)
        upper = np.where(valid, upper, degenerate_value)
    else:
        lower = upper = np.full_like(alpha, np.nan)
    sum_w = weights.sum(axis=1)
    sum_w2 = (weights**2).sum(axis=1)
    ess = np.divide(sum_w**2, sum_w2, out=np.zeros_like(sum_w), where=sum_w2 > 0)
    return {
        "probabilities": probabilities,
        "lower": lower,
        "upper": upper,
        "alpha": alpha,
        "effective_sample_size": ess,
        "n_neighbours": present.sum(axis=1).astype(np.int64),
    }


def outcome_distribution(
    similarities: np.ndarray | Sequence[float],
    outcomes: Sequence[str] | np.ndarray | pl.Series,
    base_rate: np.ndarray | Sequence[float],
    config: SpymasterConfig,
) -> OutcomeDistribution:
    """Posterior outcome distribution of one query from its neighbours.

    similarities: (k,) cosine similarities (unitless, [-1, 1]); outcomes: (k,) labels or codes;
    base_rate: (3,) prior mean in OUTCOMES order. Weights w_i = max(similarity_i, 0);
    alpha_k = dirichlet_prior_strength * base_rate_k + sum_i w_i [outcome_i = k]; probability =
    alpha_k / alpha_0; interval = central ``interval_level`` interval of Beta(alpha_k, alpha_0 - alpha_k)
    (scipy.stats.beta.ppf); ESS = (sum w)^2 / sum w^2 (Kish 1965), 0 with no weight.
    Raises ValueError on mismatched lengths or unknown labels.
    """
    sims = np.asarray(similarities, dtype=np.float64).ravel()
    codes = outcome_codes(outcomes).ravel()
    if sims.shape != codes.shape:
        raise ValueError(f"{sims.size} similarities but {codes.size} outcomes")
    prior = np.asarray(base_rate, dtype=np.float64)
    result = posterior_batch(sims[None, :], codes[None, :], prior, config)
    return OutcomeDistribution(
        probabilities=result["probabilities"][0],
        lower=result["lower"][0],
        upper=result["upper"][0],
        effective_sample_size=float(result["effective_sample_size"][0]),
        n_neighbours=int(result["n_neighbours"][0]),
        base_rate=prior,
    )


_PROBABILITY_COLUMNS = ("p_break", "p_reject", "p_chop")


def with_approach_ids(frame: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """``frame`` (session_date, ts_event, level_kind, direction, ...) sorted by (session_date, level_kind,
    ts_event) with approach_id (Int32): approaches numbered 0, 1, ... within each (session_date,
    level_kind); an approach is a run of anchors at most ``level_bar_minutes`` apart whose direction does not flip."""
    gap_limit = pl.duration(minutes=config.level_bar_minutes)
    group = ["session_date", "level_kind"]
    new_approach = (
        (pl.col("ts_event").diff().over(group) > gap_limit)
        | (pl.col("direction") != pl.col("direction").shift(1).over(group))
    ).fill_null(True)  # the first anchor of a group starts an approach
    return frame.sort([*group, "ts_event"]).with_columns(approach_id=(new_approach.cast(pl.Int32).cum_sum().over(group) - 1).cast(pl.Int32))


def smooth_series(frame: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Add approach_id and EMA-smoothed probabilities along each approach to a level.

    Input columns: session_date, ts_event (anchor close, Datetime), level_kind, direction,
    p_break, p_reject, p_chop. An approach is a run of anchors of one (session_date, level_kind)
    where successive anchors are at most ``level_bar_minutes`` apart and the direction does not
    flip; approach_id (Int32) numbers the approaches 0, 1, ... within each (session_date, level_kind)
    in time order.

    Adds p_break_smooth, p_reject_smooth, p_chop_smooth: the recursive EMA (alpha = 2/(span+1),
    span = ``smoothing_span_anchors``, seeded with the first anchor, polars ``ewm_mean(adjust=False)``)
    within each approach, renormalized to sum 1. The EMA is causal: an anchor's smooth value uses
    only that anchor and earlier ones. Output is sorted by (session_date, level_kind, ts_event).
    """
    ordered = with_approach_ids(frame, config)
    approach = ["session_date", "level_kind", "approach_id"]
    smoothed = ordered.with_columns(
        pl.col(c).ewm_mean(span=config.smoothing_span_anchors, adjust=False).over(approach).alias(f"{c}_smooth")
        for c in _PROBABILITY_COLUMNS
    )
    total = pl.sum_horizontal(f"{c}_smooth" for c in _PROBABILITY_COLUMNS)
    return smoothed.with_columns(pl.col(f"{c}_smooth") / total for c in _PROBABILITY_COLUMNS)
