"""Black-76: prices, gamma, vega and implied volatility against vollib, the no-IV rules, and
round trips on real 2020 ES option quote bars (Lean)."""

import io
import math
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import SHARED_DATA
from vollib.black import black as vollib_black
from vollib.black.greeks.analytical import gamma as vollib_gamma
from vollib.black.greeks.analytical import vega as vollib_vega
from vollib.black.implied_volatility import implied_volatility as vollib_iv

from spymaster_assets.silver.black76 import black76_gamma, black76_implied_vol, black76_price, black76_vega

YEAR_MINUTES = 365 * 24 * 60
BOUNDS = (0.01, 5.0)

# A grid that covers 0DTE (minutes to hours) and a month, near and away from the money.
FORWARD = 5000.0
STRIKES = [4800.0, 4950.0, 4990.0, 5000.0, 5005.0, 5050.0, 5200.0]
YEARS = [m / YEAR_MINUTES for m in (5, 30, 120, 390)] + [30 / 365]
VOLS = [0.08, 0.2, 0.6]
RATES = [0.0, 0.05]


def grid():
    return [
        (flag, k, t, r, s)
        for flag in ("c", "p")
        for k in STRIKES
        for t in YEARS
        for r in RATES
        for s in VOLS
    ]


def test_price_gamma_vega_match_vollib_on_grid():
    g = grid()
    flag = np.array([x[0] == "c" for x in g])
    k, t, r, s = (np.array([x[i] for x in g]) for i in range(1, 5))
    price = black76_price(flag, FORWARD, k, t, s, r)
    gamma = black76_gamma(FORWARD, k, t, s, r)
    vega = black76_vega(FORWARD, k, t, s, r)
    for i, (fl, kk, tt, rr, ss) in enumerate(g):
        expected_price = vollib_black(fl, FORWARD, kk, tt, rr, ss)
        # Deep OTM 5-minute prices are ~1e-300: compare absolutely there, relatively elsewhere.
        assert price[i] == pytest.approx(expected_price, rel=1e-9, abs=1e-10), (fl, kk, tt, rr, ss)
        assert gamma[i] == pytest.approx(vollib_gamma(fl, FORWARD, kk, tt, rr, ss), rel=1e-9, abs=1e-300)
        # vollib's vega is per 1 volatility point; ours per unit of volatility.
        assert vega[i] == pytest.approx(100.0 * vollib_vega(fl, FORWARD, kk, tt, rr, ss), rel=1e-9, abs=1e-300)


def test_put_call_parity_and_gamma_is_second_derivative():
    k = np.array(STRIKES)
    t, s, r = 2.0 / (365 * 24), 0.18, 0.03
    call = black76_price(True, FORWARD, k, t, s, r)
    put = black76_price(False, FORWARD, k, t, s, r)
    # C - P = e^{-rt} (F - K) (Black 1976), independent of sigma.
    np.testing.assert_allclose(call - put, math.exp(-r * t) * (FORWARD - k), rtol=0, atol=1e-9)
    # Gamma = d2C/dF2, by a central second difference with h = 0.01 points.
    h = 0.01
    second_diff = (
        black76_price(True, FORWARD + h, k, t, s, r) - 2 * call + black76_price(True, FORWARD - h, k, t, s, r)
    ) / h**2
    np.testing.assert_allclose(black76_gamma(FORWARD, k, t, s, r), second_diff, rtol=1e-4, atol=1e-7)


def test_implied_vol_recovers_sigma_and_matches_vollib():
    checked = 0
    for fl, k, t, r, s in grid():
        price = vollib_black(fl, FORWARD, k, t, r, s)
        # Only where the price identifies sigma to 1e-6: vega well above the price's float noise.
        if 100.0 * vollib_vega(fl, FORWARD, k, t, r, s) < 1e-2 or price < 1e-8:
            continue
        ours = float(black76_implied_vol(price, fl == "c", FORWARD, k, t, r, BOUNDS))
        assert ours == pytest.approx(s, abs=1e-7), (fl, k, t, r, s)
        assert ours == pytest.approx(vollib_iv(price, FORWARD, k, r, t, fl), abs=1e-7)
        checked += 1
    assert checked > 100


def test_implied_vol_no_solution_rules():
    f, k, t = 5000.0, 4999.0, 1.0 / 365  # a call 1 point in the money, one day left
    intrinsic = f - k
    lo_price = float(black76_price(True, f, k, t, BOUNDS[0]))
    hi_price = float(black76_price(True, f, k, t, BOUNDS[1]))
    assert lo_price > intrinsic  # the price at the lower bound carries some time value
    cases = {
        "below intrinsic": (intrinsic - 0.25, f, t),
        "between intrinsic and the lower-bound price": (0.5 * (intrinsic + lo_price), f, t),
        "above the upper-bound price": (hi_price + 0.25, f, t),
        "expired": (intrinsic + 1.0, f, 0.0),
        "negative time": (intrinsic + 1.0, f, -1e-4),
        "zero price": (0.0, f, t),
        "non-positive forward": (intrinsic + 1.0, 0.0, t),
        "nan price": (math.nan, f, t),
    }
    for name, (price, fwd, tt) in cases.items():
        assert math.isnan(float(black76_implied_vol(price, True, fwd, k, tt, 0.0, BOUNDS))), name
    # Prices exactly at the bounds' prices give the bounds.
    assert float(black76_implied_vol(lo_price, True, f, k, t, 0.0, BOUNDS)) == BOUNDS[0]
    assert float(black76_implied_vol(hi_price, True, f, k, t, 0.0, BOUNDS)) == BOUNDS[1]
    # Other model functions: invalid inputs give NaN, not a number.
    assert math.isnan(float(black76_gamma(f, k, 0.0, 0.2)))
    assert math.isnan(float(black76_price(True, f, -1.0, t, 0.2)))
    with pytest.raises(ValueError):
        black76_implied_vol(1.0, True, f, k, t, 0.0, (0.5, 0.1))


def test_vectorized_shapes_broadcast():
    k = np.array([[4990.0, 5000.0, 5010.0], [4995.0, 5005.0, 5015.0]])
    out = black76_price(np.array([True, False, True]), 5000.0, k, 0.001, 0.2)
    assert out.shape == (2, 3)
    assert out[0, 1] == float(black76_price(False, 5000.0, 5000.0, 0.001, 0.2))


# ----------------------------------------------------------------------------------------------
# Real data: ES March 2020 quarterly options on 2020-01-06 (Lean minute quote bars).

LEAN = SHARED_DATA / "lean" / "Data"  # ../shared beside the repository (conftest fails the run without it)
OPTIONS_ZIP = LEAN / "futureoption/cme/minute/es/202003/20200106_quote_american.zip"
FUTURES_ZIP = LEAN / "future/cme/minute/es/20200106_trade.zip"
DAY = datetime(2020, 1, 6, tzinfo=timezone.utc)
# ES quarterly options are AM-settled (Special Opening Quotation, 3rd Friday 08:30 CT = 13:30 UTC).
EXPIRY = datetime(2020, 3, 20, 13, 30, tzinfo=timezone.utc)
# Lean quote bar: ms since midnight (this data's CME zone is UTC: the volume spike sits at
# 14:30 UTC = 09:30 ET), bid open/high/low/close, last bid size, ask open/high/low/close, last ask size.
QUOTE_COLUMNS = ["ms", "bid_open", "bid_high", "bid_low", "bid_close", "bid_size", "ask_open", "ask_high", "ask_low", "ask_close", "ask_size"]
TRADE_COLUMNS = ["ms", "open", "high", "low", "close", "volume"]


def read_lean_csv(archive: Path, member: str, columns: list[str]) -> pl.DataFrame:
    with zipfile.ZipFile(archive) as z:
        data = z.read(member)
    return pl.read_csv(io.BytesIO(data), has_header=False, new_columns=columns, schema_overrides={c: pl.Float64 for c in columns[1:]})


def test_implied_vol_round_trips_on_lean_es_option_quotes():
    """Round trip |Black-76(IV(mid)) - mid| < 1e-6 points wherever an IV exists, and near-the-money IVs
    in a plausible 5%-100% range. These are American quarterly options: the Black-76 (European) IV is
    only claimed to invert the mid, not to be the option's true volatility."""
    futures = read_lean_csv(FUTURES_ZIP, "20200106_es_minute_trade_202003.csv", TRADE_COLUMNS).select(
        "ms", pl.col("close").alias("forward")
    )
    options = []
    for kind, strike in (("call", 3200), ("call", 3220), ("call", 3250), ("put", 3150), ("put", 3200), ("put", 3250)):
        member = f"20200106_es_minute_quote_american_{kind}_{strike * 10_000}_20200320.csv"
        bars = read_lean_csv(OPTIONS_ZIP, member, QUOTE_COLUMNS)
        options.append(
            bars.filter((pl.col("ms") >= 14.5 * 3_600_000) & (pl.col("ms") <= 20 * 3_600_000))  # 09:30-15:00 ET
            .filter(pl.col("bid_close").is_not_null() & pl.col("ask_close").is_not_null())
            .select("ms", mid=(pl.col("bid_close") + pl.col("ask_close")) / 2)
            .with_columns(strike=pl.lit(float(strike)), is_call=pl.lit(kind == "call"))
        )
    rows = pl.concat(options).join(futures, on="ms", how="inner")
    assert rows.height > 1000
    seconds_left = (EXPIRY - DAY).total_seconds() - rows["ms"].to_numpy() / 1000.0
    years = seconds_left / (365 * 86400)
    mid, strike, forward = rows["mid"].to_numpy(), rows["strike"].to_numpy(), rows["forward"].to_numpy()
    is_call = rows["is_call"].to_numpy()
    iv = black76_implied_vol(mid, is_call, forward, strike, years, 0.0, BOUNDS)
    solved = ~np.isnan(iv)
    assert solved.mean() > 0.95
    repriced = black76_price(is_call[solved], forward[solved], strike[solved], years[solved], iv[solved])
    assert np.max(np.abs(repriced - mid[solved])) < 1e-6
    near = solved & (np.abs(strike / forward - 1.0) < 0.03)
    assert near.sum() > 500
    assert np.all((iv[near] > 0.05) & (iv[near] < 1.0))
