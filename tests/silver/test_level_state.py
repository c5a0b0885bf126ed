"""silver_level_state on a hand-built session: a linear price path, ATR fixed at 2 points, known levels.

1-minute bars open at 09:20 ET + (s - 1) min and close at minute s (s = 1..40, minutes after 09:20 ET)
with close p(s) = 100 + 0.5 s, high = close + 0.25, low = close - 0.25, volume 10.
"""

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.bars import aggregate_bars
from spymaster_assets.silver.feature_names import all_feature_columns, bars_feature_columns
from spymaster_assets.silver.level_state import compute_level_state
from spymaster_assets.silver.schemas import validate_silver_level_state

UTC = timezone.utc
CONFIG = SpymasterConfig()
SESSION = date(2024, 7, 10)
ORIGIN = datetime(2024, 7, 10, 13, 20, tzinfo=UTC)  # 09:20 ET (EDT)
ATR = 2.0


def at(s):
    """Instant s minutes after 09:20 ET."""
    return ORIGIN + timedelta(minutes=s)


def price(s):
    return 100 + 0.5 * s


def silver_bars(close_of=price, n=40, missing=(), volume=10):
    """silver_bars-like frame: 1-minute bars closing at s = 1..n (minus ``missing``), their 2-minute bars with ATR 2."""
    closes = [s for s in range(1, n + 1) if s not in missing]
    one = pl.DataFrame(
        {
            "ts_event": [at(s - 1) for s in closes],
            "open": [close_of(s) - 0.5 for s in closes],
            "high": [close_of(s) + 0.25 for s in closes],
            "low": [close_of(s) - 0.25 for s in closes],
            "close": [close_of(s) for s in closes],
            "volume": [volume] * len(closes),
        },
        schema_overrides={"volume": pl.Int64},
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))
    two = aggregate_bars(one, 2).with_columns(bar_minutes=pl.lit(2, dtype=pl.Int8), atr_points=pl.lit(ATR))
    one = one.with_columns(
        ts_close=(pl.col("ts_event") + timedelta(minutes=1)).cast(pl.Datetime("ns", "UTC")),
        bar_minutes=pl.lit(1, dtype=pl.Int8),
        atr_points=pl.lit(None, dtype=pl.Float64),
    )
    return pl.concat([one, two], how="diagonal")


def known_levels(prices_from):
    """Levels frame: {kind: (price, first s)} repeated at every 2-minute close from that s up to s = 40."""
    rows = [
        (at(s), kind, level)
        for kind, (level, first) in prices_from.items()
        for s in range(first, 41, 2)
    ]
    ts, kind, level = zip(*rows)
    return pl.DataFrame(
        {"session_date": [SESSION] * len(ts), "ts_event": list(ts), "level_kind": list(kind), "level_price": list(level)}
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


LEVELS = {
    "PM_HIGH": (110.5, 10),  # known from 09:30 (s = 10)
    "PM_LOW": (104.75, 10),
    "OR_HIGH": (112.0, 26),  # first 2-minute close after 09:45
    "OR_LOW": (104.0, 26),
    "EMA_20": (109.0, 0),
}


@pytest.fixture(scope="module")
def state():
    out = compute_level_state(silver_bars(missing=(30,)), known_levels(LEVELS), SESSION, CONFIG)
    validate_silver_level_state(out, CONFIG)
    return out


def row(state, s, kind):
    rows = state.filter((pl.col("ts_event") == at(s)) & (pl.col("level_kind") == kind))
    assert rows.height == 1
    return rows.row(0, named=True)


def dct2_ortho(x):
    """DCT-II, orthonormal, straight from its definition: X_k = c_k sum_n x_n cos(pi k (2n + 1) / (2N))."""
    n_samples = x.shape[-1]
    n = np.arange(n_samples)
    k = n[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_samples))
    scale = np.where(k == 0, np.sqrt(1 / n_samples), np.sqrt(2 / n_samples))
    return (scale * basis) @ x


def test_anchors_columns_and_basic_geometry(state):
    assert state.columns[-len(all_feature_columns(CONFIG)) :] == all_feature_columns(CONFIG)
    # Without order-flow inputs only the bars family is computed; the other families are null, not zero.
    assert state["feature_families"].unique().to_list() == ["bars"]
    order_flow = [c for c in all_feature_columns(CONFIG) if c not in bars_feature_columns(CONFIG)]
    assert state.select(pl.all_horizontal(pl.col(order_flow).is_null())).to_series().all()
    # Anchors are 2-minute closes after 09:30: 09:32 (s = 12) is the first, 09:30 is excluded.
    assert state["ts_event"].min() == at(12)
    assert state.filter(pl.col("ts_event") == at(12))["level_kind"].to_list() == ["PM_HIGH", "PM_LOW", "EMA_20"]
    r = row(state, 12, "PM_HIGH")  # close p(12) = 106
    assert r["close"] == 106.0 and r["distance_atr"] == (106.0 - 110.5) / ATR
    assert r["direction"] == "UP" and not r["in_zone"]  # |-2.25| > 2
    assert r["minutes_since_open"] == 2.0 and r["time_bucket"] == "0-15"
    ema = row(state, 12, "EMA_20")
    assert ema["direction"] == "UP" and ema["in_zone"] and ema["distance_atr"] == -1.5
    assert row(state, 12, "PM_LOW")["direction"] == "DOWN"
    assert row(state, 24, "PM_HIGH")["time_bucket"] == "0-15"  # 09:44, 14 minutes
    assert row(state, 26, "PM_HIGH")["time_bucket"] == "15-30"  # 09:46, 16 minutes
    assert row(state, 40, "PM_HIGH")["time_bucket"] == "15-30"  # 10:00, exactly 30 minutes -> (15, 30]


def test_trajectory_dct_with_back_fill_before_first_bar(state):
    # At 09:32 (s = 12) the 20 samples are s = -7 .. 12; the first bar closes at s = 1, so s <= 0
    # repeat its close p(1) with zero volume.
    samples = np.arange(-7, 13)
    closes = np.where(samples >= 1, price(samples), price(1))
    volumes = np.where(samples >= 1, 10.0, 0.0)
    expected_d = dct2_ortho((closes - 110.5) / ATR)[:8]
    expected_vol = dct2_ortho(np.log1p(volumes))[:8]
    r = row(state, 12, "PM_HIGH")
    np.testing.assert_allclose([r[f"traj_d_dct_{i}"] for i in range(8)], expected_d, atol=1e-12)
    np.testing.assert_allclose([r[f"traj_logvol_dct_{i}"] for i in range(8)], expected_vol, atol=1e-12)


def test_trajectory_of_a_constant_path_has_only_the_mean_coefficient():
    bars = silver_bars(close_of=lambda s: 100.0, n=40)
    out = compute_level_state(bars, known_levels({"PM_HIGH": (101.0, 10)}), SESSION, CONFIG)
    r = out.filter(pl.col("ts_event") == at(40)).row(0, named=True)  # samples s = 21..40, all present
    # Orthonormal DCT-II of a constant c over N points: X_0 = c sqrt(N), X_k = 0 for k > 0.
    assert r["traj_d_dct_0"] == pytest.approx(-0.5 * np.sqrt(20), abs=1e-12)
    assert r["traj_logvol_dct_0"] == pytest.approx(np.log1p(10) * np.sqrt(20), abs=1e-12)
    for i in range(1, 8):
        assert abs(r[f"traj_d_dct_{i}"]) < 1e-12 and abs(r[f"traj_logvol_dct_{i}"]) < 1e-12
    assert r["d_velocity_1m"] == 0.0 and r["d_acceleration_3m"] == 0.0


def test_kinematics_of_a_linear_path_and_nulls_before_the_first_bar(state):
    r = row(state, 12, "PM_HIGH")  # d rises 0.5 / 2 = 0.25 ATR per minute
    for lag in (1, 3):
        assert r[f"d_velocity_{lag}m"] == pytest.approx(0.25)
        assert r[f"d_acceleration_{lag}m"] == pytest.approx(0.0, abs=1e-12)
        assert r[f"d_jerk_{lag}m"] == pytest.approx(0.0, abs=1e-12)
    # Lag 5 needs s = 12, 7, 2, -3: the jerk reaches before the first bar (closed at s = 1).
    assert r["d_acceleration_5m"] == pytest.approx(0.0, abs=1e-12) and r["d_jerk_5m"] is None
    assert r["d_velocity_10m"] == pytest.approx(0.25) and r["d_acceleration_10m"] is None
    assert r["d_velocity_20m"] is None


def test_kinematics_of_a_quadratic_and_cubic_path():
    # close = 100 + a s^2: the second difference over step L is 2 a L^2, so acceleration = 2a / ATR.
    quad = compute_level_state(silver_bars(close_of=lambda s: 100 + 0.01 * s**2), known_levels({"PM_HIGH": (130.0, 10)}), SESSION, CONFIG)
    r = quad.filter(pl.col("ts_event") == at(40)).row(0, named=True)
    assert r["d_acceleration_3m"] == pytest.approx(2 * 0.01 / ATR)
    assert r["d_jerk_3m"] == pytest.approx(0.0, abs=1e-9)
    # Velocity is the backward difference: (p(40) - p(37)) / 3 / ATR.
    assert r["d_velocity_3m"] == pytest.approx(0.01 * (40**2 - 37**2) / 3 / ATR)
    # close = 100 + b s^3: the third difference over step L is 6 b L^3, so jerk = 6b / ATR.
    cubic = compute_level_state(silver_bars(close_of=lambda s: 100 + 0.001 * s**3), known_levels({"PM_HIGH": (130.0, 10)}), SESSION, CONFIG)
    assert cubic.filter(pl.col("ts_event") == at(40))["d_jerk_10m"][0] == pytest.approx(6 * 0.001 / ATR)


def test_missing_minute_is_forward_filled_with_zero_volume(state):
    # The bar closing at s = 30 (09:50) is missing: the 2-minute close at 09:50 is p(29) = 114.5.
    r = row(state, 30, "PM_HIGH")
    assert r["close"] == price(29)
    assert r["d_velocity_1m"] == 0.0  # d at 09:50 and 09:49 are both p(29)
    samples = np.arange(11, 31)
    closes = np.where(samples == 30, price(29), price(samples))
    volumes = np.where(samples == 30, 0.0, 10.0)
    np.testing.assert_allclose([r[f"traj_d_dct_{i}"] for i in range(8)], dct2_ortho((closes - 110.5) / ATR)[:8], atol=1e-12)
    np.testing.assert_allclose([r[f"traj_logvol_dct_{i}"] for i in range(8)], dct2_ortho(np.log1p(volumes))[:8], atol=1e-12)


def test_context_other_levels_stacking_and_opening_range(state):
    r = row(state, 30, "PM_HIGH")  # close 114.5, ATR 2
    assert r["dist_atr_pm_high"] is None and r["dist_atr_sma_90"] is None  # own kind, unknown kind
    assert r["dist_atr_or_high"] == (114.5 - 112.0) / ATR
    assert r["dist_atr_pm_low"] == (114.5 - 104.75) / ATR
    assert r["or_width_atr"] == (112.0 - 104.0) / ATR
    # Others vs 110.5: OR_HIGH 1.5, EMA 1.5, PM_LOW 5.75, OR_LOW 6.5 points; thresholds 1, 2, 4 points.
    assert (r["stack_count_0p5atr"], r["stack_count_1p0atr"], r["stack_count_2p0atr"]) == (0, 2, 2)
    e = row(state, 30, "EMA_20")  # vs 109: PM_HIGH 1.5, OR_HIGH 3, PM_LOW 4.25, OR_LOW 5
    assert (e["stack_count_0p5atr"], e["stack_count_1p0atr"], e["stack_count_2p0atr"]) == (0, 1, 2)
    assert row(state, 24, "PM_HIGH")["or_width_atr"] is None  # before the opening range is known


def test_touches_count_from_when_the_level_is_known(state):
    # 2-minute bar closing at s covers [p(s-1) - 0.25, p(s) + 0.25]; 110.5 = p(21) lies only in the bar closing at s = 22.
    assert row(state, 20, "PM_HIGH")["touches_today"] == 0
    assert row(state, 20, "PM_HIGH")["minutes_since_last_touch"] is None
    assert row(state, 22, "PM_HIGH")["touches_today"] == 1
    assert row(state, 22, "PM_HIGH")["minutes_since_last_touch"] == 0.0
    assert row(state, 30, "PM_HIGH")["touches_today"] == 1
    assert row(state, 30, "PM_HIGH")["minutes_since_last_touch"] == 8.0
    # 104.75 lies only in the bar closing at 09:30 (s = 10), the instant PM becomes known: not counted.
    assert state.filter(pl.col("level_kind") == "PM_LOW")["touches_today"].max() == 0


def test_anchor_without_atr_is_skipped():
    bars = silver_bars().with_columns(
        atr_points=pl.when((pl.col("bar_minutes") == 2) & (pl.col("ts_close") == at(14))).then(None).otherwise(pl.col("atr_points"))
    )
    out = compute_level_state(bars, known_levels(LEVELS), SESSION, CONFIG)
    assert at(14) not in out["ts_event"].to_list() and at(16) in out["ts_event"].to_list()
