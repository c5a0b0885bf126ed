"""Dirichlet posterior by hand, Kish ESS, base rates and the smoothed probability series."""

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from scipy.special import betainc

from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold.retrieval import base_rate, outcome_distribution, smooth_series

CONFIG = SpymasterConfig(dirichlet_prior_strength=10.0, interval_level=0.90, smoothing_span_anchors=3)


def test_dirichlet_posterior_by_hand():
    result = outcome_distribution([0.9, 0.5], ["BREAK", "REJECT"], [0.5, 0.3, 0.2], CONFIG)
    # alpha = 10 * (0.5, 0.3, 0.2) + (0.9, 0.5, 0) = (5.9, 3.5, 2.0), alpha_0 = 11.4
    alpha = np.array([5.9, 3.5, 2.0])
    np.testing.assert_allclose(result.probabilities, alpha / 11.4)
    # The bounds are the 5% / 95% quantiles of Beta(alpha_k, 11.4 - alpha_k): check through the
    # regularized incomplete beta function (the Beta CDF) rather than the same ppf call.
    np.testing.assert_allclose(betainc(alpha, 11.4 - alpha, result.lower), 0.05, atol=1e-8)
    np.testing.assert_allclose(betainc(alpha, 11.4 - alpha, result.upper), 0.95, atol=1e-8)
    assert np.all(result.lower < result.probabilities) and np.all(result.probabilities < result.upper)
    assert result.n_neighbours == 2
    # Kish: (0.9 + 0.5)^2 / (0.81 + 0.25)
    assert result.effective_sample_size == pytest.approx(1.96 / 1.06)


def test_negative_similarity_gets_no_weight_and_no_neighbours_give_the_base_rate():
    prior = np.array([0.2, 0.3, 0.5])
    with_negative = outcome_distribution([0.8, -0.6], ["CHOP", "BREAK"], prior, CONFIG)
    np.testing.assert_allclose(with_negative.probabilities, (10 * prior + [0, 0, 0.8]) / 10.8)
    assert with_negative.effective_sample_size == pytest.approx(1.0)  # one positive weight
    empty = outcome_distribution([], [], prior, CONFIG)
    np.testing.assert_allclose(empty.probabilities, prior)
    assert empty.effective_sample_size == 0.0 and empty.n_neighbours == 0


def test_kish_effective_sample_size():
    equal = outcome_distribution([0.7] * 4, ["BREAK", "REJECT", "CHOP", "CHOP"], [1 / 3] * 3, CONFIG)
    assert equal.effective_sample_size == pytest.approx(4.0)  # equal weights: ESS = n
    skewed = outcome_distribution([1.0, 0.1, 0.1], ["BREAK"] * 3, [1 / 3] * 3, CONFIG)
    assert skewed.effective_sample_size == pytest.approx(1.2**2 / 1.02)


def test_more_neighbours_narrow_the_interval():
    few = outcome_distribution([1.0] * 2, ["BREAK"] * 2, [1 / 3] * 3, CONFIG)
    many = outcome_distribution([1.0] * 40, ["BREAK"] * 40, [1 / 3] * 3, CONFIG)
    assert (many.upper - many.lower)[0] < (few.upper - few.lower)[0]
    assert many.probabilities[0] == pytest.approx((10 / 3 + 40) / 50)


def test_base_rate_add_one_and_uniform_fallback():
    np.testing.assert_allclose(base_rate(["BREAK", "BREAK", "CHOP"]), [3 / 6, 1 / 6, 2 / 6])
    np.testing.assert_allclose(base_rate(["BREAK", "BREAK", "CHOP"], prior=0.0), [2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(base_rate([]), [1 / 3] * 3)
    np.testing.assert_allclose(base_rate([], prior=0.0), [1 / 3] * 3)
    with pytest.raises(ValueError, match="SIDEWAYS"):
        base_rate(["BREAK", "SIDEWAYS"])


def _at(minute):
    return datetime(2024, 3, 4, 15, 0, tzinfo=timezone.utc) + timedelta(minutes=minute)


def test_smooth_series_splits_approaches_and_runs_an_ema_within_each():
    day = date(2024, 3, 4)
    frame = pl.DataFrame(
        {
            "session_date": [day] * 7,
            "ts_event": [_at(m) for m in (0, 2, 4, 10, 12, 2, 4)],
            "level_kind": ["PM_HIGH"] * 5 + ["OR_LOW"] * 2,
            # PM_HIGH: 0-2-4 one approach, 10 after a 6-minute gap a new one, 12 flips direction: a third.
            "direction": ["UP", "UP", "UP", "UP", "DOWN", "DOWN", "DOWN"],
            "p_break": [0.6, 0.2, 0.4, 0.1, 0.5, 0.3, 0.1],
            "p_reject": [0.2, 0.6, 0.4, 0.1, 0.2, 0.3, 0.5],
            "p_chop": [0.2, 0.2, 0.2, 0.8, 0.3, 0.4, 0.4],
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))
    out = smooth_series(frame.sample(fraction=1.0, shuffle=True, seed=1), CONFIG)
    pm = out.filter(pl.col("level_kind") == "PM_HIGH").sort("ts_event")
    assert pm["approach_id"].to_list() == [0, 0, 0, 1, 2]
    # span 3 -> alpha = 0.5; y0 = x0, y_t = 0.5 y_{t-1} + 0.5 x_t.
    # p_break 0.6, 0.2, 0.4 -> 0.6, 0.4, 0.4; p_reject 0.2, 0.6, 0.4 -> 0.2, 0.4, 0.4; p_chop stays 0.2.
    np.testing.assert_allclose(pm["p_break_smooth"].to_numpy(), [0.6, 0.4, 0.4, 0.1, 0.5])
    np.testing.assert_allclose(pm["p_reject_smooth"].to_numpy(), [0.2, 0.4, 0.4, 0.1, 0.2])
    np.testing.assert_allclose(pm["p_chop_smooth"].to_numpy(), [0.2, 0.2, 0.2, 0.8, 0.3])
    orl = out.filter(pl.col("level_kind") == "OR_LOW").sort("ts_event")
    assert orl["approach_id"].to_list() == [0, 0]
    np.testing.assert_allclose(orl["p_break_smooth"].to_numpy(), [0.3, 0.2])
    sums = out.select(pl.sum_horizontal("p_break_smooth", "p_reject_smooth", "p_chop_smooth"))
    np.testing.assert_allclose(sums.to_series().to_numpy(), 1.0)


def test_smoothing_is_causal():
    day = date(2024, 3, 4)
    frame = pl.DataFrame(
        {
            "session_date": [day] * 3,
            "ts_event": [_at(0), _at(2), _at(4)],
            "level_kind": ["SMA_90"] * 3,
            "direction": ["UP"] * 3,
            "p_break": [0.5, 0.5, 0.5],
            "p_reject": [0.3, 0.3, 0.3],
            "p_chop": [0.2, 0.2, 0.2],
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))
    changed_future = frame.with_columns(
        p_break=pl.Series([0.5, 0.5, 0.0]), p_reject=pl.Series([0.3, 0.3, 1.0]), p_chop=pl.Series([0.2, 0.2, 0.0])
    )
    a = smooth_series(frame, replace(CONFIG, smoothing_span_anchors=5))
    b = smooth_series(changed_future, replace(CONFIG, smoothing_span_anchors=5))
    assert a["p_break_smooth"][:2].to_list() == b["p_break_smooth"][:2].to_list()
    assert a["p_break_smooth"][2] != b["p_break_smooth"][2]
