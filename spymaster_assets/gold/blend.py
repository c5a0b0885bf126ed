"""The answer: calibrate(w * P_model + (1 - w) * P_knn), with w and the calibration fitted on earlier sessions.

Calibration is temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks",
ICML): ``p_cal = softmax(log(p_blend) / T)``. The pair (w, T) minimizes the mean log loss of the
calibrated blend over the walk-forward component probabilities of earlier sessions (each of which
was itself answered only from sessions before it), so the fit is an inner walk-forward and never
sees the day it serves. The optimizer is scipy's bounded L-BFGS-B.

The interval of the answer: each marginal is given the Beta distribution with the answer as its
mean and the kNN posterior's concentration alpha_0 (prior strength plus the neighbours' similarity
weight) as its size, ``Beta(p * alpha_0, (1 - p) * alpha_0)``, so its width reflects how much
history stands behind the setup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import betaincinv

_EPS = 1e-9
_T_BOUNDS = (0.25, 4.0)


@dataclass(frozen=True)
class BlendFit:
    """Blend weight ``w`` (of the model, in [0, 1]), temperature ``T`` (> 0), episodes and sessions fitted on, and whether it was fitted (else defaults)."""

    weight: float
    temperature: float
    n_episodes: int
    n_sessions: int
    fitted: bool
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: The distance lookup's own temperature, fitted on the same rows (a calibrated reference; 1 when not fitted).
    distance_temperature: float = 1.0


def blend(
    p_model: np.ndarray, p_knn: np.ndarray, weight: float, temperature: float, bias: tuple[float, float, float] | None = None
) -> np.ndarray:
    """calibrate(w * p_model + (1 - w) * p_knn): float64 (n, 3), rows sum to 1.

    ``calibrate(p) = softmax(log(p) / T + b)``: temperature scaling, plus a per-class bias ``b``
    (the "vector scaling" family of Guo et al. 2017 with one shared scale) when given.
    Inputs (n, 3) in OUTCOMES order. Raises ValueError on mismatched shapes, w outside [0, 1] or T <= 0.
    """
    a, b = np.asarray(p_model, dtype=np.float64), np.asarray(p_knn, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"component probabilities must both be (n, 3), got {a.shape} and {b.shape}")
    if not 0.0 <= weight <= 1.0 or temperature <= 0:
        raise ValueError(f"blend weight must be in [0, 1] and temperature > 0, got w={weight}, T={temperature}")
    mixed = weight * a + (1.0 - weight) * b
    logits = np.log(np.clip(mixed, _EPS, 1.0)) / temperature
    if bias is not None:
        logits = logits + np.asarray(bias, dtype=np.float64)[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _mean_log_loss(p: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(p.shape[0]), labels], _EPS, 1.0))))


def fit_blend(
    p_model: np.ndarray,
    p_knn: np.ndarray,
    labels: np.ndarray,
    n_sessions: int,
    min_sessions: int,
    default_weight: float,
    class_bias: bool = False,
) -> BlendFit:
    """Fit (w, T) — and with ``class_bias`` the biases of REJECT and CHOP relative to BREAK — minimizing
    the log loss of :func:`blend` on earlier sessions' walk-forward components.

    p_model, p_knn: (n, 3); labels: (n,) class indices into OUTCOMES. With fewer than
    ``min_sessions`` sessions (or no rows) returns the defaults (w = ``default_weight``, T = 1,
    no bias, fitted False). Deterministic (fixed starting point). Biases are bounded to +-2.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n_sessions < min_sessions or labels.size == 0:
        return BlendFit(default_weight, 1.0, int(labels.size), n_sessions, False)

    def unpack(theta: np.ndarray) -> tuple[float, float, tuple[float, float, float] | None]:
        bias = (0.0, float(theta[2]), float(theta[3])) if class_bias else None
        return float(theta[0]), float(np.exp(theta[1])), bias

    def objective(theta: np.ndarray) -> float:
        return _mean_log_loss(blend(p_model, p_knn, *unpack(theta)), labels)

    bounds = [(0.0, 1.0), (np.log(_T_BOUNDS[0]), np.log(_T_BOUNDS[1]))] + ([(-2.0, 2.0)] * 2 if class_bias else [])
    result = minimize(objective, x0=np.array([default_weight, 0.0] + [0.0] * (2 if class_bias else 0)), method="L-BFGS-B", bounds=bounds)
    weight, temperature, bias = unpack(result.x)
    return BlendFit(float(np.clip(weight, 0.0, 1.0)), temperature, int(labels.size), n_sessions, True, bias or (0.0, 0.0, 0.0))


def temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities (n, 3): ``softmax(log(p) / T)`` (Guo et al. 2017); T = 1 returns p renormalized."""
    return blend(p, p, 1.0, temperature)


def fit_temperature(p: np.ndarray, labels: np.ndarray, n_sessions: int, min_sessions: int) -> float:
    """The temperature T minimizing the mean log loss of :func:`temper` (p, T) on earlier sessions' forecasts.

    ``p`` (n, 3), ``labels`` (n,) class indices. 1.0 with fewer than ``min_sessions`` sessions or no
    rows; T is bounded to [0.25, 4] as the blend's (scipy's bounded scalar minimizer).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n_sessions < min_sessions or labels.size == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: _mean_log_loss(temper(p, float(np.exp(log_t))), labels), bounds=tuple(np.log(_T_BOUNDS)), method="bounded")
    return float(np.exp(result.x))


def blend_interval(p: np.ndarray, concentration: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of each marginal of Beta(p * c, (1 - p) * c): (lower, upper), each (n, 3).

    ``p`` (n, 3) the answer; ``concentration`` (n,) alpha_0 of the kNN posterior (> 0).
    """
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    c = np.maximum(np.asarray(concentration, dtype=np.float64), _EPS)[:, None]
    tail = (1.0 - level) / 2.0
    # The Beta quantile function itself (what scipy.stats.beta.ppf evaluates), without its per-call checks.
    lower = betaincinv(p * c, (1.0 - p) * c, tail)
    upper = betaincinv(p * c, (1.0 - p) * c, 1.0 - tail)
    return np.minimum(lower, p), np.maximum(upper, p)
