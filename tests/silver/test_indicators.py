"""Wilder ATR, SMA and EMA against hand-worked values and plain-Python reference implementations."""

import math

import numpy as np
import pytest

from spymaster_assets.silver.indicators import atr_wilder, ema, sma, true_range


def reference_atr(high, low, close, period):
    """Wilder's ATR written directly from the definition, one bar at a time."""
    trs = []
    for i in range(len(high)):
        if i == 0:
            trs.append(high[0] - low[0])
        else:
            trs.append(max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])))
    out = [math.nan] * len(high)
    if len(high) >= period:
        out[period - 1] = sum(trs[:period]) / period
        for i in range(period, len(high)):
            out[i] = (out[i - 1] * (period - 1) + trs[i]) / period
    return out


def reference_sma(x, period):
    return [math.nan if i < period - 1 else sum(x[i - period + 1 : i + 1]) / period for i in range(len(x))]


def reference_ema(x, period):
    alpha = 2 / (period + 1)
    out = [math.nan] * len(x)
    if len(x) >= period:
        out[period - 1] = sum(x[:period]) / period
        for i in range(period, len(x)):
            out[i] = alpha * x[i] + (1 - alpha) * out[i - 1]
    return out


def test_true_range_and_atr_hand_worked():
    high = np.array([10.0, 12.0, 15.0, 11.0])
    low = np.array([8.0, 11.0, 13.0, 9.0])
    close = np.array([9.0, 11.5, 14.0, 10.0])
    # TR: first bar h-l = 2; then max(1, |12-9|, |11-9|) = 3; max(2, |15-11.5|, |13-11.5|) = 3.5;
    # max(2, |11-14|, |9-14|) = 5.
    np.testing.assert_allclose(true_range(high, low, close), [2.0, 3.0, 3.5, 5.0])
    # Period 2: seed (2+3)/2 = 2.5, then (2.5*1 + 3.5)/2 = 3.0, then (3.0 + 5)/2 = 4.0.
    np.testing.assert_allclose(atr_wilder(high, low, close, 2), [np.nan, 2.5, 3.0, 4.0])


def test_sma_and_ema_hand_worked():
    x = np.array([2.0, 4.0, 6.0, 10.0, 2.0])
    np.testing.assert_allclose(sma(x, 3), [np.nan, np.nan, 4.0, 20 / 3, 6.0])
    # alpha = 2/(3+1) = 0.5; seed = (2+4+6)/3 = 4; 0.5*10 + 0.5*4 = 7; 0.5*2 + 0.5*7 = 4.5.
    np.testing.assert_allclose(ema(x, 3), [np.nan, np.nan, 4.0, 7.0, 4.5])


@pytest.mark.parametrize("period", [1, 3, 14])
def test_indicators_match_reference_on_random_walk(period):
    rng = np.random.default_rng(7)
    close = 4000 + np.cumsum(rng.normal(0, 1.0, 200))
    high = close + rng.uniform(0, 2, 200)
    low = close - rng.uniform(0, 2, 200)
    np.testing.assert_allclose(atr_wilder(high, low, close, period), reference_atr(list(high), list(low), list(close), period), rtol=1e-12)
    np.testing.assert_allclose(sma(close, period), reference_sma(list(close), period), rtol=1e-9)
    np.testing.assert_allclose(ema(close, period), reference_ema(list(close), period), rtol=1e-12)


def test_short_input_is_all_nan_and_prefix_property():
    x = np.arange(5, dtype=float)
    assert np.isnan(sma(x, 6)).all() and np.isnan(ema(x, 6)).all() and np.isnan(atr_wilder(x, x, x, 6)).all()
    rng = np.random.default_rng(1)
    y = rng.normal(size=100)
    # An indicator at i depends only on values up to i: a prefix gives the same prefix.
    np.testing.assert_array_equal(ema(y[:40], 10), ema(y, 10)[:40])
    np.testing.assert_array_equal(sma(y[:40], 10), sma(y, 10)[:40])


def test_invalid_arguments_raise():
    x = np.ones(5)
    with pytest.raises(ValueError, match="period"):
        sma(x, 0)
    with pytest.raises(ValueError, match="lengths differ"):
        atr_wilder(x, x[:4], x, 2)
