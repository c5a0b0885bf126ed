"""Bar indicators on float64 arrays: Wilder's ATR, simple and exponential moving averages.

Each public function validates its arguments and calls a Numba kernel (``@njit(cache=True)``); the
kernels are sequential recursions, so the value at index i depends only on inputs ``[0, i]`` (a
prefix of the series always gives the same prefix of the output: the point-in-time property).
Values before the indicator is warm are NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _as_float_array(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_period(period: int) -> int:
    if int(period) != period or period < 1:
        raise ValueError(f"period must be a positive integer, got {period!r}")
    return int(period)


@njit(cache=True)
def _true_range_kernel(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    n = high.shape[0]
    tr = np.empty(n, dtype=np.float64)
    if n == 0:
        return tr
    tr[0] = high[0] - low[0]  # no previous close for the first bar
    for i in range(1, n):
        prev_close = close[i - 1]
        tr[i] = max(high[i] - low[i], abs(high[i] - prev_close), abs(low[i] - prev_close))
    return tr


@njit(cache=True)
def _atr_wilder_kernel(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    n = high.shape[0]
    out = np.full(n, np.nan)
    if n < period:
        return out
    tr = _true_range_kernel(high, low, close)
    total = 0.0
    for i in range(period):
        total += tr[i]
    atr = total / period
    out[period - 1] = atr
    for i in range(period, n):
        atr = (atr * (period - 1) + tr[i]) / period
        out[i] = atr
    return out


@njit(cache=True)
def _sma_kernel(x: np.ndarray, period: int) -> np.ndarray:
    n = x.shape[0]
    out = np.full(n, np.nan)
    window_sum = 0.0
    for i in range(n):
        window_sum += x[i]
        if i >= period:
            window_sum -= x[i - period]
        if i >= period - 1:
            out[i] = window_sum / period
    return out


@njit(cache=True)
def _ema_kernel(x: np.ndarray, period: int) -> np.ndarray:
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n < period:
        return out
    alpha = 2.0 / (period + 1.0)
    seed = 0.0
    for i in range(period):
        seed += x[i]
    value = seed / period
    out[period - 1] = value
    for i in range(period, n):
        value = alpha * x[i] + (1.0 - alpha) * value
        out[i] = value
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range per bar (points): ``max(h - l, |h - c_prev|, |l - c_prev|)``; the first bar's TR is ``h - l``.

    Source: J. Welles Wilder, *New Concepts in Technical Trading Systems* (1978).
    Inputs are equal-length 1-D float arrays (points); raises ValueError otherwise.
    """
    h, lo, c = _as_float_array(high, "high"), _as_float_array(low, "low"), _as_float_array(close, "close")
    if not (h.shape == lo.shape == c.shape):
        raise ValueError(f"high, low, close lengths differ: {h.shape}, {lo.shape}, {c.shape}")
    return _true_range_kernel(h, lo, c)


def atr_wilder(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Average true range with Wilder's smoothing, in points; shape ``(n,)``, NaN for the first ``period - 1`` bars.

    ATR at index ``period - 1`` is the simple mean of the first ``period`` true ranges, then
    ``ATR_t = (ATR_{t-1} * (period - 1) + TR_t) / period`` (Wilder 1978; TR as in :func:`true_range`).
    Raises ValueError for unequal lengths, non-1-D input or a period < 1.
    """
    p = _check_period(period)
    h, lo, c = _as_float_array(high, "high"), _as_float_array(low, "low"), _as_float_array(close, "close")
    if not (h.shape == lo.shape == c.shape):
        raise ValueError(f"high, low, close lengths differ: {h.shape}, {lo.shape}, {c.shape}")
    return _atr_wilder_kernel(h, lo, c, p)


def sma(x: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average of the last ``period`` values; shape ``(n,)``, NaN until ``period`` values exist.

    Units are those of ``x`` (points for closes). Raises ValueError for non-1-D input or a period < 1.
    """
    return _sma_kernel(_as_float_array(x, "x"), _check_period(period))


def ema(x: np.ndarray, period: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (period + 1)``; shape ``(n,)``, NaN for the first ``period - 1`` values.

    Seeded at index ``period - 1`` with the simple mean of the first ``period`` values (the TA-Lib
    convention), then ``EMA_t = alpha * x_t + (1 - alpha) * EMA_{t-1}``. Units are those of ``x``.
    Raises ValueError for non-1-D input or a period < 1.
    """
    return _ema_kernel(_as_float_array(x, "x"), _check_period(period))
