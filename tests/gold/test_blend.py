"""The blend and its calibration: identities, a known temperature recovered, defaults, the interval."""

import numpy as np
import pytest

from spymaster_assets.gold.blend import blend, blend_interval, fit_blend


def _dirichlet(n, seed):
    return np.random.default_rng(seed).dirichlet([2.0, 2.0, 2.0], size=n)


def test_blend_identities():
    a, b = _dirichlet(50, 1), _dirichlet(50, 2)
    np.testing.assert_allclose(blend(a, b, 1.0, 1.0), a, rtol=1e-9)
    np.testing.assert_allclose(blend(a, b, 0.0, 1.0), b, rtol=1e-9)
    np.testing.assert_allclose(blend(a, b, 0.3, 1.0), 0.3 * a + 0.7 * b, rtol=1e-9)
    flat = blend(a, b, 0.5, 1e6)
    np.testing.assert_allclose(flat, 1 / 3, atol=1e-5)  # a huge temperature flattens to uniform
    with pytest.raises(ValueError):
        blend(a, b, 1.5, 1.0)
    with pytest.raises(ValueError):
        blend(a, b[:3], 0.5, 1.0)


def test_fit_recovers_the_weight_and_the_temperature_of_the_generating_process():
    """Outcomes drawn from the truth; the model is the truth sharpened by T = 2 (overconfident), the kNN is noise."""
    rng = np.random.default_rng(0)
    n = 20_000
    truth = rng.dirichlet([1.5, 1.5, 1.5], size=n)
    labels = np.array([rng.choice(3, p=p) for p in truth])
    sharpened = truth**2 / (truth**2).sum(axis=1, keepdims=True)  # softmax(log p * 2): needs T = 2 to undo
    noise = rng.dirichlet([5.0, 5.0, 5.0], size=n)
    fit = fit_blend(sharpened, noise, labels, n_sessions=10, min_sessions=3, default_weight=0.5)
    assert fit.fitted and fit.n_episodes == n
    assert fit.weight > 0.9
    assert fit.temperature == pytest.approx(2.0, rel=0.1)


def test_too_few_sessions_give_the_defaults():
    a, b = _dirichlet(30, 3), _dirichlet(30, 4)
    fit = fit_blend(a, b, np.zeros(30, dtype=int), n_sessions=2, min_sessions=3, default_weight=0.4)
    assert (fit.weight, fit.temperature, fit.fitted) == (0.4, 1.0, False)


def test_interval_contains_the_answer_and_narrows_with_more_history():
    p = _dirichlet(20, 5)
    lo_small, hi_small = blend_interval(p, np.full(20, 5.0), 0.9)
    lo_big, hi_big = blend_interval(p, np.full(20, 500.0), 0.9)
    assert (lo_small <= p).all() and (p <= hi_small).all()
    assert ((hi_big - lo_big) < (hi_small - lo_small)).all()


def test_class_bias_corrects_a_shifted_class():
    """The model is right but for a constant log-odds shift of CHOP: the bias fit undoes it, temperature alone cannot."""
    rng = np.random.default_rng(1)
    n = 20_000
    truth = rng.dirichlet([2.0, 2.0, 2.0], size=n)
    labels = np.array([rng.choice(3, p=p) for p in truth])
    shifted = truth * np.array([1.0, 1.0, np.exp(-1.0)])
    shifted /= shifted.sum(axis=1, keepdims=True)
    plain = fit_blend(shifted, shifted, labels, 10, 3, 0.5)
    biased = fit_blend(shifted, shifted, labels, 10, 3, 0.5, class_bias=True)
    assert biased.bias[2] - biased.bias[0] == pytest.approx(1.0, abs=0.1)
    loss = lambda fit: -np.mean(np.log(blend(shifted, shifted, fit.weight, fit.temperature, fit.bias)[np.arange(n), labels]))  # noqa: E731
    assert loss(biased) < loss(plain) - 0.005
