"""Black-76 prices, greeks and implied volatility of options on futures, vectorized with Numba.

Model (Black 1976, "The pricing of commodity contracts", J. Financial Economics 3, 167-179): with
futures price F, strike K, time to expiry t (years), continuously compounded rate r and volatility
sigma (annualized), d1 = (ln(F/K) + sigma^2 t / 2) / (sigma sqrt(t)), d2 = d1 - sigma sqrt(t),

    call = e^{-rt} (F N(d1) - K N(d2)),   put = e^{-rt} (K N(-d2) - F N(-d1)),
    gamma = d2V/dF2 = e^{-rt} phi(d1) / (F sigma sqrt(t))   (per index point of F, calls and puts alike),
    vega  = dV/dsigma = e^{-rt} F phi(d1) sqrt(t)           (points per unit of volatility, i.e. per 100 vol points).

Conventions are those of vollib (``vollib.black``), against which tests/silver/test_black76.py checks
every function; vollib's own vega is per 1 vol point, i.e. ``black76_vega / 100``.

Input rules (every function): F, K, t, sigma must be finite and > 0, else the result is NaN (no
model value: an expired option, t <= 0, has no gamma we could use). Prices are in index points.
The out-of-the-money side is priced directly and the in-the-money side through put-call parity
(``itm = otm + e^{-rt} |F - K|``) so deep-in-the-money prices do not lose the time value to
cancellation.

Pure code: no Dagster, NumPy arrays in and out (inputs are broadcast together).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_FLOAT_EPS = float(np.finfo(np.float64).eps)
#: Implied-volatility solver: relative price tolerance and iteration cap (bisection halves the
#: bracket each step, so 200 steps reach float resolution from any bracket within the bounds).
IV_PRICE_RTOL = 1e-13
IV_MAX_ITERATIONS = 200


@njit(cache=True)
def _norm_cdf(x: float) -> float:
    # erfc keeps full relative precision in the lower tail, where OTM prices live.
    return 0.5 * math.erfc(-x / _SQRT2)


@njit(cache=True)
def _valid(forward: float, strike: float, time_to_expiry: float, volatility: float) -> bool:
    return (
        forward > 0.0 and strike > 0.0 and time_to_expiry > 0.0 and volatility > 0.0
        and math.isfinite(forward) and math.isfinite(strike)
        and math.isfinite(time_to_expiry) and math.isfinite(volatility)
    )


@njit(cache=True)
def black76_price_nb(is_call: bool, forward: float, strike: float, time_to_expiry: float, rate: float, volatility: float) -> float:
    """Scalar Black-76 option price (points); NaN on invalid inputs (see the module docstring)."""
    if not _valid(forward, strike, time_to_expiry, volatility):
        return np.nan
    total_vol = volatility * math.sqrt(time_to_expiry)
    d1 = (math.log(forward / strike) + 0.5 * total_vol * total_vol) / total_vol
    d2 = d1 - total_vol
    discount = math.exp(-rate * time_to_expiry)
    # The out-of-the-money option: a call when F <= K, a put when F > K.
    if forward <= strike:
        otm = forward * _norm_cdf(d1) - strike * _norm_cdf(d2)
    else:
        otm = strike * _norm_cdf(-d2) - forward * _norm_cdf(-d1)
    otm = max(otm, 0.0)
    call_is_itm = forward > strike
    if is_call == call_is_itm:
        return discount * (otm + abs(forward - strike))
    return discount * otm


@njit(cache=True)
def black76_gamma_nb(forward: float, strike: float, time_to_expiry: float, rate: float, volatility: float) -> float:
    """Scalar Black-76 gamma d2V/dF2 (per index point of F; calls and puts alike); NaN on invalid inputs."""
    if not _valid(forward, strike, time_to_expiry, volatility):
        return np.nan
    total_vol = volatility * math.sqrt(time_to_expiry)
    d1 = (math.log(forward / strike) + 0.5 * total_vol * total_vol) / total_vol
    return math.exp(-rate * time_to_expiry) * _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1) / (forward * total_vol)


@njit(cache=True)
def black76_vega_nb(forward: float, strike: float, time_to_expiry: float, rate: float, volatility: float) -> float:
    """Scalar Black-76 vega dV/dsigma (points per unit volatility); NaN on invalid inputs."""
    if not _valid(forward, strike, time_to_expiry, volatility):
        return np.nan
    sqrt_t = math.sqrt(time_to_expiry)
    total_vol = volatility * sqrt_t
    d1 = (math.log(forward / strike) + 0.5 * total_vol * total_vol) / total_vol
    return math.exp(-rate * time_to_expiry) * forward * _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1) * sqrt_t


@njit(cache=True)
def black76_implied_vol_nb(
    option_price: float, is_call: bool, forward: float, strike: float, time_to_expiry: float, rate: float,
    vol_low: float, vol_high: float,
) -> float:
    """Scalar implied volatility in [vol_low, vol_high]; NaN when none exists there.

    NaN when: the inputs are invalid (F, K, t not finite and > 0, price not finite and > 0), the price is
    below the price at ``vol_low`` (this includes every price at or below intrinsic value), above
    the price at ``vol_high``, or the two bound prices are equal (price insensitive to volatility
    at float precision: the volatility is not identifiable). Otherwise a bracketed Newton iteration
    (Newton step on price(sigma) - option_price, price being increasing in sigma; a step leaving
    the current bracket, or a zero vega, is replaced by bisection) until the price matches to
    ``IV_PRICE_RTOL`` relative (1e-300 absolute floor) or the bracket collapses to float resolution.
    """
    if not (math.isfinite(option_price) and option_price > 0.0 and _valid(forward, strike, time_to_expiry, vol_low) and vol_high > vol_low):
        return np.nan
    price_low = black76_price_nb(is_call, forward, strike, time_to_expiry, rate, vol_low)
    price_high = black76_price_nb(is_call, forward, strike, time_to_expiry, rate, vol_high)
    if not (price_low <= option_price <= price_high) or price_high == price_low:
        return np.nan
    tolerance = max(IV_PRICE_RTOL * option_price, 1e-300)
    if option_price - price_low <= tolerance:
        return vol_low
    if price_high - option_price <= tolerance:
        return vol_high
    lo, hi = vol_low, vol_high
    # Start at the Brenner-Subrahmanyam (1988) at-the-money approximation, clipped into the bracket.
    sigma = math.sqrt(2.0 * math.pi / time_to_expiry) * option_price * math.exp(rate * time_to_expiry) / forward
    if not (lo < sigma < hi):
        sigma = 0.5 * (lo + hi)
    for _ in range(IV_MAX_ITERATIONS):
        diff = black76_price_nb(is_call, forward, strike, time_to_expiry, rate, sigma) - option_price
        if abs(diff) <= tolerance:
            return sigma
        if diff > 0.0:
            hi = sigma
        else:
            lo = sigma
        if hi - lo <= 4.0 * _FLOAT_EPS * hi:
            return sigma
        vega = black76_vega_nb(forward, strike, time_to_expiry, rate, sigma)
        step_ok = False
        if vega > 0.0:
            candidate = sigma - diff / vega
            if lo < candidate < hi:
                sigma = candidate
                step_ok = True
        if not step_ok:
            sigma = 0.5 * (lo + hi)
    return sigma


@njit(cache=True)
def _price_vec(is_call, forward, strike, time_to_expiry, rate, volatility):
    out = np.empty(forward.shape[0])
    for i in range(forward.shape[0]):
        out[i] = black76_price_nb(is_call[i], forward[i], strike[i], time_to_expiry[i], rate[i], volatility[i])
    return out


@njit(cache=True)
def _gamma_vec(forward, strike, time_to_expiry, rate, volatility):
    out = np.empty(forward.shape[0])
    for i in range(forward.shape[0]):
        out[i] = black76_gamma_nb(forward[i], strike[i], time_to_expiry[i], rate[i], volatility[i])
    return out


@njit(cache=True)
def _vega_vec(forward, strike, time_to_expiry, rate, volatility):
    out = np.empty(forward.shape[0])
    for i in range(forward.shape[0]):
        out[i] = black76_vega_nb(forward[i], strike[i], time_to_expiry[i], rate[i], volatility[i])
    return out


@njit(cache=True)
def _iv_vec(option_price, is_call, forward, strike, time_to_expiry, rate, vol_low, vol_high):
    out = np.empty(forward.shape[0])
    for i in range(forward.shape[0]):
        out[i] = black76_implied_vol_nb(
            option_price[i], is_call[i], forward[i], strike[i], time_to_expiry[i], rate[i], vol_low, vol_high
        )
    return out


def _flat(*arrays, bool_first: bool = False):
    """Broadcast the inputs together and flatten: (shape, [is_call as bool,] float64 arrays)."""
    broadcast = np.broadcast_arrays(*[np.asarray(a) for a in arrays])
    shape = broadcast[0].shape
    out = []
    for i, a in enumerate(broadcast):
        dtype = np.bool_ if (bool_first and i == 0) else np.float64
        out.append(np.array(a, dtype=dtype).reshape(-1))  # a copy: broadcast views are read-only
    return shape, out


def black76_price(is_call, forward, strike, time_to_expiry, volatility, rate=0.0) -> np.ndarray:
    """Black-76 option prices in index points.

    Arguments broadcast together: is_call (bool; False = put), forward F and strike K (points),
    time_to_expiry t (years), volatility sigma (annualized), rate r (continuously compounded).
    Returns a float64 array of the broadcast shape; NaN where F, K, t or sigma is not finite and > 0.
    """
    shape, (c, f, k, t, s, r) = _flat(is_call, forward, strike, time_to_expiry, volatility, rate, bool_first=True)
    return _price_vec(c, f, k, t, r, s).reshape(shape)


def black76_gamma(forward, strike, time_to_expiry, volatility, rate=0.0) -> np.ndarray:
    """Black-76 gamma d2V/dF2 (per index point of F, identical for calls and puts), broadcast shape.

    NaN where F, K, t or sigma is not finite and > 0.
    """
    shape, (f, k, t, s, r) = _flat(forward, strike, time_to_expiry, volatility, rate)
    return _gamma_vec(f, k, t, r, s).reshape(shape)


def black76_vega(forward, strike, time_to_expiry, volatility, rate=0.0) -> np.ndarray:
    """Black-76 vega dV/dsigma (points per unit of volatility; vollib's vega is this / 100), broadcast shape.

    NaN where F, K, t or sigma is not finite and > 0.
    """
    shape, (f, k, t, s, r) = _flat(forward, strike, time_to_expiry, volatility, rate)
    return _vega_vec(f, k, t, r, s).reshape(shape)


def black76_implied_vol(option_price, is_call, forward, strike, time_to_expiry, rate=0.0, vol_bounds=(0.01, 5.0)) -> np.ndarray:
    """Black-76 implied volatility (annualized) of option prices (points), broadcast shape.

    ``vol_bounds`` = (low, high) is the admissible range (``SpymasterConfig.implied_vol_bounds``).
    NaN when no volatility in [low, high] reproduces the price: price below the price at ``low``
    (in particular at or below intrinsic value), above the price at ``high``, t <= 0, F or K not
    positive, or a price not finite (rules and solver: ``black76_implied_vol_nb``). A solution
    reprices to the input within a relative 1e-13.
    Raises ValueError when the bounds are not 0 < low < high.
    """
    vol_low, vol_high = float(vol_bounds[0]), float(vol_bounds[1])
    if not (0.0 < vol_low < vol_high):
        raise ValueError(f"implied volatility bounds must satisfy 0 < low < high, got {vol_bounds}")
    shape, (c, p, f, k, t, r) = _flat(is_call, option_price, forward, strike, time_to_expiry, rate, bool_first=True)
    return _iv_vec(p, c, f, k, t, r, vol_low, vol_high).reshape(shape)
