"""Robust normalization: hand-worked median/IQR, clipping, zero IQR, L2 norm, point-in-time guard."""

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold.normalization import (
    fit_normalization,
    normalization_window,
    normalize,
    stats_from_frame,
    stats_to_frame,
)
from spymaster_assets.gold.schemas import GoldNormalization

CONFIG = SpymasterConfig()
COLUMNS = ["d", "flat", "never"]
AS_OF = date(2024, 3, 11)


def _history(rows, days):
    matrix = np.array(rows, dtype=np.float32)
    return pl.DataFrame(
        {
            "session_date": days,
            "vector_version": ["v-test"] * len(rows),
            "vector": pl.Series("vector", matrix, dtype=pl.Array(pl.Float32, matrix.shape[1])),
        }
    )


def _fitted():
    nan = float("nan")
    # Column d: 1, 2, 3, 4 and an outlier 100. Sorted positions 0..4; linear percentiles:
    # q25 at position 1 -> 2, median at 2 -> 3, q75 at 3 -> 4, so IQR = 2 (the outlier does not matter).
    # Column flat: constant 5 -> IQR 0 -> scale 1. Column never: all missing -> median 0, scale 1.
    rows = [[1, 5, nan], [2, 5, nan], [3, 5, nan], [4, 5, nan], [100, 5, nan]]
    days = [date(2024, 3, 4), date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 7), date(2024, 3, 8)]
    return fit_normalization(_history(rows, days), COLUMNS, CONFIG, as_of=AS_OF)


def test_median_and_iqr_by_hand():
    stats = _fitted()
    np.testing.assert_allclose(stats.median, [3.0, 5.0, 0.0])
    assert stats.iqr[0] == pytest.approx(2.0) and stats.iqr[1] == 0.0 and np.isnan(stats.iqr[2])
    np.testing.assert_allclose(stats.scale, [2.0, 1.0, 1.0])
    assert (stats.n_episodes, stats.n_sessions) == (5, 4)
    assert (stats.first_session, stats.last_session) == (date(2024, 3, 4), date(2024, 3, 8))
    assert stats.vector_version == "v-test" and stats.as_of == AS_OF


def test_normalize_clips_at_four_fills_missing_with_median_and_l2_normalizes():
    stats = _fitted()
    x = np.array(
        [
            [100.0, 5.0, np.nan],  # z = (97/2 -> clipped 4, 0, 0) -> unit vector (1, 0, 0)
            [-100.0, 5.0, 2.0],  # z = (-4 clipped, 0, 2) -> (-4, 0, 2) / sqrt(20)
            [5.0, 7.0, np.nan],  # z = (1, 2, 0) -> (1, 2, 0) / sqrt(5)
            [3.0, 5.0, np.nan],  # z = 0 everywhere: stays the zero vector
        ]
    )
    out = normalize(x, stats, clip=4.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [1.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(out[1], np.array([-4.0, 0.0, 2.0]) / np.sqrt(20.0), rtol=1e-6)
    np.testing.assert_allclose(out[2], np.array([1.0, 2.0, 0.0]) / np.sqrt(5.0), rtol=1e-6)
    np.testing.assert_array_equal(out[3], [0.0, 0.0, 0.0])
    # Unit rows: inner product is cosine similarity.
    np.testing.assert_allclose(np.linalg.norm(out[:3], axis=1), 1.0, rtol=1e-6)


def test_clip_is_applied_before_the_l2_norm():
    stats = _fitted()
    # z = (1, 10 -> clipped 4 with clip 4, 0) -> (1, 4, 0)/sqrt(17); with clip 20 it is (1, 10, 0)/sqrt(101).
    x = np.array([[5.0, 15.0, np.nan]])
    np.testing.assert_allclose(normalize(x, stats, 4.0)[0], np.array([1, 4, 0]) / np.sqrt(17), rtol=1e-6)
    np.testing.assert_allclose(normalize(x, stats, 20.0)[0], np.array([1, 10, 0]) / np.sqrt(101), rtol=1e-6)


def test_point_in_time_guard_rejects_history_on_or_after_the_day():
    rows = [[1.0, 5.0, 0.0], [2.0, 5.0, 0.0]]
    with pytest.raises(ValueError, match="2024-03-11"):
        fit_normalization(_history(rows, [date(2024, 3, 8), AS_OF]), COLUMNS, CONFIG, as_of=AS_OF)
    with pytest.raises(ValueError, match="point-in-time"):
        fit_normalization(_history(rows, [date(2024, 3, 8), date(2024, 3, 12)]), COLUMNS, CONFIG, as_of=AS_OF)


def test_history_longer_than_the_window_is_refused():
    config = replace(CONFIG, normalization_sessions=2)
    days = [AS_OF - timedelta(days=i) for i in (1, 2, 3)]
    with pytest.raises(ValueError, match="normalization_sessions=2"):
        fit_normalization(_history([[1.0, 1.0, 1.0]] * 3, days), COLUMNS, config, as_of=AS_OF)


def test_empty_history_gives_identity_centering():
    empty = _history([[0.0, 0.0, 0.0]], [date(2024, 3, 1)]).clear()
    stats = fit_normalization(empty, COLUMNS, CONFIG, as_of=AS_OF)
    np.testing.assert_array_equal(stats.median, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(stats.scale, [1.0, 1.0, 1.0])
    assert stats.n_episodes == 0 and stats.first_session is None


def test_frame_round_trip_and_schema():
    stats = _fitted()
    frame = GoldNormalization.validate(stats_to_frame(stats))
    assert frame["dim"].to_list() == [0, 1, 2]
    assert frame["scale_used"].to_list() == [2.0, 1.0, 1.0]
    back = stats_from_frame(frame.reverse())
    assert back.features == stats.features
    np.testing.assert_array_equal(back.median, stats.median)
    np.testing.assert_array_equal(back.iqr, stats.iqr)  # NaN survives the round trip
    assert (back.n_episodes, back.n_sessions, back.last_session, back.as_of) == (5, 4, date(2024, 3, 8), AS_OF)


def test_normalization_window_refits_daily_while_filling_then_on_the_cadence():
    config = replace(CONFIG, normalization_sessions=4, normalization_refit_sessions=3, model_min_sessions=3)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(12)]
    windows = [normalization_window(days[:n], config) for n in range(len(days) + 1)]
    # Filling (n < 4): every earlier session, a refit each day.
    assert windows[:4] == [days[:n] for n in range(4)]
    # Full: m = max(4, 3 * floor(n / 3)), the trailing 4 of the first m.
    assert windows[4] == windows[5] == days[0:4]
    assert windows[6] == windows[7] == windows[8] == days[2:6]
    assert windows[9] == days[5:9] and windows[12] == days[8:12]
    for n, window in enumerate(windows):
        assert len(window) <= 4 and all(d in days[:n] for d in window)  # never the day itself or later
    # Refits fall on the model's retrain sessions (m = f + c * floor((n - f) / c)), so the index,
    # which depends on both, is rebuilt once per cadence: here f = 5, c = 3 -> n = 5, 8, 11.
    from spymaster_assets.gold.model import training_window

    anchored = replace(config, model_min_sessions=5, model_retrain_sessions=3)
    windows = [normalization_window(days[:n], anchored) for n in range(len(days) + 1)]
    assert windows[4] == days[0:4] and windows[5] == windows[6] == windows[7] == days[1:5] and windows[8] == days[4:8] and windows[11] == days[7:11]
    changes = {n for n in range(5, len(days) + 1) if windows[n] != windows[n - 1]}
    model_changes = {n for n in range(6, len(days) + 1) if training_window(days[:n], anchored) != training_window(days[:n - 1], anchored)}
    assert changes == model_changes | {5} == {5, 8, 11}
    # A cadence of 1 is the daily trailing window.
    daily = replace(config, normalization_refit_sessions=1)
    assert [normalization_window(days[:n], daily) for n in range(13)] == [days[:n][-4:] for n in range(13)]
    with pytest.raises(ValueError, match="normalization_refit_sessions must be >= 1"):
        normalization_window(days, replace(config, normalization_refit_sessions=0))


def test_statistics_digest_ignores_the_day_served_and_sees_every_value():
    stats = _fitted()
    assert replace(stats, as_of=date(2030, 1, 1)).digest() == stats.digest()
    moved = stats.median.copy()
    moved[0] = np.nextafter(moved[0], np.inf)
    assert replace(stats, median=moved).digest() != stats.digest()


def test_normalize_in_row_blocks_equals_the_whole_array_formula_bit_for_bit():
    """The blocked, in-place normalize gives exactly what one pass over the whole array gives."""
    from datetime import date as _date

    from spymaster_assets.gold.normalization import NormalizationStats, normalize

    rng = np.random.default_rng(0)
    n, width = 10_000, 7
    x = rng.normal(size=(n, width))
    x[rng.random((n, width)) < 0.05] = np.nan
    x[0, 3], x[1, 2], x[2, :] = np.inf, -np.inf, np.nan
    stats = NormalizationStats(tuple(f"f{i}" for i in range(width)), rng.normal(size=width), np.abs(rng.normal(size=width)), 1, 1, None, None, "v", _date(2024, 1, 2))
    weights, dims, clip = rng.random(width), np.array([0, 2, 3, 5, 6]), 4.0

    def whole(x, dims, weights):
        median, scale = stats.median[dims], stats.scale[dims]
        z = (x[:, dims] - median) / scale
        z = np.clip(np.nan_to_num(z, nan=0.0, posinf=clip, neginf=-clip), -clip, clip) * np.sqrt(weights[dims])
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return np.ascontiguousarray(np.divide(z, norms, out=np.zeros_like(z), where=norms > 0), dtype=np.float32)

    assert np.array_equal(normalize(x, stats, clip, dims, weights), whole(x, dims, weights))
