"""Dealer-gamma (GEX) features: hand-checked GEX, bands, walls, gamma flip, traded dealer gamma,
absent data, and point in time (truncating every input at the anchor reproduces the row bit for bit)."""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from vollib.black import black as vollib_black

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.feature_names import gamma_columns
from spymaster_assets.silver.gamma_features import gamma_features, gex_profile, option_snapshots

CONFIG = SpymasterConfig()
TS = pl.Datetime("ns", "UTC")
MULT = 50.0
# Session 2024-03-12 (EDT, UTC-4): 09:30 ET = 13:30 UTC, the 0DTE expiry 16:00 ET = 20:00 UTC.
OPEN = datetime(2024, 3, 12, 13, 30, tzinfo=timezone.utc)
EXPIRY = datetime(2024, 3, 12, 20, 0, tzinfo=timezone.utc)
T = datetime(2024, 3, 12, 18, 0, tzinfo=timezone.utc)  # two hours before expiry
YEARS_AT_T = 7200 / (365 * 86400)


def hand_gamma(f: float, k: float, t: float, sigma: float) -> float:
    """Black-76 gamma with r = 0, written out: phi(d1) / (F sigma sqrt(t))."""
    v = sigma * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * v * v) / v
    return math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (f * v)


def hand_gex(is_call: bool, f: float, k: float, t: float, sigma: float, oi: float) -> float:
    """sign x gamma x OI x 50 x F^2 x 0.01, in billions of USD."""
    sign = 1.0 if is_call else -1.0
    return sign * hand_gamma(f, k, t, sigma) * oi * MULT * f * f * 0.01 / 1e9


def chain(options: list[tuple[int, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "instrument_id": pl.Series([o[0] for o in options], dtype=pl.UInt32),
            "raw_symbol": [f"EW2H4 {o[1]}{int(o[2])}" for o in options],
            "instrument_class": [o[1] for o in options],
            "strike_price": [float(o[2]) for o in options],
            "expiration": pl.Series([EXPIRY] * len(options), dtype=TS),
            "multiplier": [MULT] * len(options),
        }
    )


def open_interest(oi: dict[int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"instrument_id": pl.Series(list(oi), dtype=pl.UInt32), "open_interest": pl.Series(list(oi.values()), dtype=pl.Int64)}
    )


def bbo(rows: list[tuple[int, datetime, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "instrument_id": pl.Series([r[0] for r in rows], dtype=pl.UInt32),
            "ts_event": pl.Series([r[1] for r in rows], dtype=TS),
            "bid_px_00": pl.Series([r[2] for r in rows], dtype=pl.Float64),
            "ask_px_00": pl.Series([r[3] for r in rows], dtype=pl.Float64),
        }
    )


def trades(rows: list[tuple[int, datetime, float, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "instrument_id": pl.Series([r[0] for r in rows], dtype=pl.UInt32),
            "ts_event": pl.Series([r[1] for r in rows], dtype=TS),
            "price": pl.Series([r[2] for r in rows], dtype=pl.Float64),
            "size": pl.Series([r[3] for r in rows], dtype=pl.Int64),
            "side": pl.Series([r[4] for r in rows], dtype=pl.Utf8),
        }
    )


def bars(closes: list[tuple[datetime, float]], two_minute_noise: bool = True) -> pl.DataFrame:
    """silver_bars-like rows (1-minute closes; a wild 2-minute bar that must be ignored)."""
    rows = [(1, ts, c) for ts, c in closes]
    if two_minute_noise:
        rows.append((2, closes[-1][0], 9999.0))
    return pl.DataFrame(
        {
            "bar_minutes": pl.Series([r[0] for r in rows], dtype=pl.Int8),
            "ts_close": pl.Series([r[1] for r in rows], dtype=TS),
            "close": [r[2] for r in rows],
        }
    )


def state(rows: list[tuple[datetime, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": pl.Series([r[0] for r in rows], dtype=TS),
            "level_kind": ["PM_HIGH"] * len(rows),
            "level_price": [r[1] for r in rows],
            "atr_points": [r[2] for r in rows],
            "direction": ["UP"] * len(rows),
        }
    )


def price(flag: str, f: float, k: float, sigma: float, t: float = YEARS_AT_T) -> float:
    return vollib_black(flag, f, k, t, 0.0, sigma)


def quote_at_sigma(iid: int, flag: str, f: float, k: float, sigma: float, when: datetime) -> tuple:
    p = price(flag, f, k, sigma)
    return (iid, when, p, p)  # bid = ask = the model price: the mid is exactly it


F_T = 5002.0
FUTURES = bars([(T - timedelta(minutes=2), 4999.0), (T - timedelta(minutes=1), F_T), (T + timedelta(minutes=1), 5100.0)])
NO_TRADES = trades([])


def one_strike_case():
    """Call and put at 5000 (sigma 0.15, OI 1000 / 600), neighbours 4995 / 5005 without OI or quotes."""
    opts = [(1, "C", 5000), (2, "P", 5000), (3, "C", 4995), (4, "P", 4995), (5, "C", 5005), (6, "P", 5005)]
    quotes = [
        quote_at_sigma(1, "c", F_T, 5000, 0.15, T - timedelta(minutes=5)),
        quote_at_sigma(2, "p", F_T, 5000, 0.15, T - timedelta(minutes=5)),
        (1, T - timedelta(minutes=3), 30.0, 20.0),  # crossed: ignored
        (1, T - timedelta(minutes=2), 0.0, 25.0),  # one-sided: ignored
        (1, T + timedelta(seconds=1), 80.0, 81.0),  # after T: ignored
    ]
    return chain(opts), open_interest({1: 1000, 2: 600, 3: 0, 4: 0}), bbo(quotes)


def test_gex_of_one_strike_by_hand():
    ch, oi, quotes = one_strike_case()
    frame, present = gamma_features(state([(T, 4999.0, 4.0)]), ch, oi, quotes, NO_TRADES, FUTURES, CONFIG)
    assert present
    assert frame.columns == gamma_columns(CONFIG)
    assert all(dtype == pl.Float64 for dtype in frame.dtypes)
    # By hand: t = 7200 / 31,536,000 = 2.28311e-4 y, sqrt(t) = 0.0151099, sigma sqrt(t) = 0.00226649,
    # ln(5002/5000) = 3.99920e-4, d1 = (3.99920e-4 + 0.5 * 0.00226649^2) / 0.00226649 = 0.177582,
    # phi(d1) = 0.392701, gamma = 0.392701 / (5002 * 0.00226649) = 0.0346389 per point (call = put).
    # GEX(5000) = (+1 * 1000 - 1 * 600) * 0.0346389 * 50 * 5002^2 * 0.01 / 1e9 = 0.173333 bn USD / 1%.
    expected = hand_gamma(F_T, 5000, YEARS_AT_T, 0.15) * (1000 - 600) * 50 * F_T**2 * 0.01 / 1e9
    assert expected == pytest.approx(0.173333, abs=1e-6)
    row = frame.row(0, named=True)
    assert row["gex_total"] == pytest.approx(expected, rel=1e-7)
    # Level 4999, interval 5: above_1 = (4999, 5004] holds 5000; below_1 = [4994, 4999) holds 4995 (no OI).
    assert row["gex_above_1strikes"] == pytest.approx(expected, rel=1e-7)
    assert row["gex_below_1strikes"] == 0.0
    assert row["gex_asymmetry_3strikes"] == 1.0
    # Both walls at 5000: (5000 - 4999) / 4 ATR.
    assert row["call_wall_dist_atr"] == pytest.approx(0.25)
    assert row["put_wall_dist_atr"] == pytest.approx(0.25)
    assert row["gamma_flip_dist_atr"] is None  # net positive everywhere (call OI > put OI at one strike)
    assert row["dealer_gamma_traded_since_open"] == 0.0

    snaps = option_snapshots(pl.Series([T], dtype=TS), ch, oi, quotes, NO_TRADES, FUTURES, CONFIG)
    call = snaps.filter(pl.col("instrument_id") == 1).row(0, named=True)
    assert call["price_source"] == "mid" and call["futures_price"] == F_T
    assert call["implied_vol"] == pytest.approx(0.15, abs=1e-9)
    assert call["time_to_expiry_years"] == pytest.approx(YEARS_AT_T, rel=1e-12)
    assert snaps.filter(pl.col("instrument_id") == 3)["skip_reason"].to_list() == ["no_price"]


def band_case():
    """Strikes 4970..5030 by 5 (calls and puts), wings by 25 out to +-150 without quotes; sigma 0.15."""
    fine = list(range(4970, 5031, 5))
    wings = [k for k in range(4850, 5151, 25) if k < 4970 or k > 5030]
    opts, oi, quotes = [], {}, []
    iid = 0
    for k in sorted(fine + wings):
        for flag in ("C", "P"):
            iid += 1
            opts.append((iid, flag, k))
            if k in fine:
                # OI rising with the strike so every strike's GEX differs; puts OI half the calls'.
                oi[iid] = (1000 + 10 * (k - 4970)) // (1 if flag == "C" else 2)
                quotes.append(quote_at_sigma(iid, flag.lower(), F_T, k, 0.15, T - timedelta(minutes=1)))
    return opts, oi, quotes


def strike_gex_by_hand(opts, oi) -> dict[float, float]:
    out: dict[float, float] = {}
    for iid, flag, k in opts:
        if iid in oi:
            out[k] = out.get(k, 0.0) + hand_gex(flag == "C", F_T, k, YEARS_AT_T, 0.15, oi[iid])
    return out


@pytest.mark.parametrize("level", [5001.0, 5000.0, 4987.5])
def test_bands_above_and_below_the_level(level):
    opts, oi, quotes = band_case()
    frame, present = gamma_features(
        state([(T, level, 3.0)]), chain(opts), open_interest(oi), bbo(quotes), NO_TRADES, FUTURES, CONFIG
    )
    assert present
    row = frame.row(0, named=True)
    by_strike = strike_gex_by_hand(opts, oi)
    interval = 5.0  # 13 fine strikes among the 20 nearest: spacing 5 wins over the wings' 25
    for k in CONFIG.gex_strike_intervals:
        above = sum(g for s, g in by_strike.items() if level < s <= level + k * interval)
        below = sum(g for s, g in by_strike.items() if level - k * interval <= s < level)
        assert row[f"gex_above_{k}strikes"] == pytest.approx(above, rel=1e-7), k
        assert row[f"gex_below_{k}strikes"] == pytest.approx(below, rel=1e-7), k
    if level == 5000.0:  # the strike at the level belongs to neither band
        assert row["gex_above_1strikes"] == pytest.approx(by_strike[5005], rel=1e-7)
        assert row["gex_below_1strikes"] == pytest.approx(by_strike[4995], rel=1e-7)
    k3 = max(CONFIG.gex_strike_intervals)
    a, b = row[f"gex_above_{k3}strikes"], row[f"gex_below_{k3}strikes"]
    assert row[f"gex_asymmetry_{k3}strikes"] == pytest.approx((a - b) / (abs(a) + abs(b)))
    assert row["gex_total"] == pytest.approx(sum(by_strike.values()), rel=1e-7)


def test_call_and_put_walls():
    opts, oi, quotes = band_case()
    by_id = {iid: (flag, k) for iid, flag, k in opts}
    for iid, (flag, k) in by_id.items():
        if (flag, k) == ("C", 5015):
            oi[iid] = 60_000  # 60x the others: dominates any gamma ratio within +-30 points
        if (flag, k) == ("P", 4985):
            oi[iid] = 60_000
    level, atr = 5001.0, 2.5
    frame, _ = gamma_features(state([(T, level, atr)]), chain(opts), open_interest(oi), bbo(quotes), NO_TRADES, FUTURES, CONFIG)
    row = frame.row(0, named=True)
    assert row["call_wall_dist_atr"] == pytest.approx((5015 - level) / atr)
    assert row["put_wall_dist_atr"] == pytest.approx((4985 - level) / atr)


def flip_case(call_oi: int):
    """Puts at 4990 and calls at 5010 with equal OI and sigma; strikes every point between (no OI)."""
    opts = [(1, "P", 4990), (2, "C", 5010)] + [(10 + i, "C", 4990 + i) for i in range(1, 20)]
    quotes = [
        quote_at_sigma(1, "p", F_T, 4990, 0.15, T - timedelta(seconds=30)),
        quote_at_sigma(2, "c", F_T, 5010, 0.15, T - timedelta(seconds=30)),
    ]
    return chain(opts), open_interest({1: 5000, 2: call_oi}), bbo(quotes)


def test_gamma_flip_on_a_two_strike_chain():
    ch, oi, quotes = flip_case(5000)
    level, atr = 5003.0, 4.0
    frame, _ = gamma_features(state([(T, level, atr)]), ch, oi, quotes, NO_TRADES, FUTURES, CONFIG)
    # G(S) is proportional to gamma(S, 5010) - gamma(S, 4990) (same OI, sigma, t): zero where
    # d1(S, 5010) = -d1(S, 4990), i.e. ln(S/5010) + v^2/2 = -ln(S/4990) - v^2/2 with v = sigma sqrt(t):
    # S* = sqrt(5010 * 4990) * exp(-v^2 / 2). Negative below (puts), positive above (calls).
    v2 = 0.15**2 * YEARS_AT_T
    s_star = math.sqrt(5010 * 4990) * math.exp(-v2 / 2)
    flip = frame["gamma_flip_dist_atr"][0]
    # Linear interpolation on the 1-point grid of the chain's strikes: within 0.01 points of S*.
    assert flip * atr + level == pytest.approx(s_star, abs=0.01)
    snaps = option_snapshots(pl.Series([T], dtype=TS), ch, oi, quotes, NO_TRADES, FUTURES, CONFIG)
    profile = gex_profile(snaps, np.array([s_star - 1.0, s_star + 1.0]), CONFIG)
    assert profile[0] < 0 < profile[1]

    # Calls only: GEX is positive at every price, no flip.
    ch, oi, quotes = flip_case(5000)
    frame, _ = gamma_features(state([(T, level, atr)]), ch, open_interest({2: 5000}), quotes, NO_TRADES, FUTURES, CONFIG)
    assert frame["gamma_flip_dist_atr"][0] is None


def test_dealer_gamma_traded_since_open():
    opts = [(1, "C", 5000), (2, "P", 4990)]
    ch = chain(opts)
    quotes = bbo([quote_at_sigma(1, "c", F_T, 5000, 0.15, T - timedelta(minutes=1))])
    put_price = price("p", F_T, 4990, 0.20)  # the put has no quote: its IV comes from its last trade
    tape = trades(
        [
            (1, OPEN - timedelta(minutes=30), 20.0, 10, "B"),  # before the open: excluded
            (1, OPEN, 20.0, 3, "B"),  # at 09:30:00 exactly: excluded, the window is (open, T]
            (1, OPEN + timedelta(minutes=5), 20.0, 5, "B"),
            (1, OPEN + timedelta(minutes=6), 20.0, 2, "A"),
            (1, OPEN + timedelta(minutes=7), 20.0, 7, "N"),  # unknown side: 0
            (2, OPEN + timedelta(minutes=8), put_price, 4, "A"),
            (2, T, put_price, 0 + 1, "A"),  # at T: included
            (1, T + timedelta(seconds=1), 20.0, 100, "B"),  # after T: excluded
        ]
    )
    frame, present = gamma_features(state([(T, 5000.0, 4.0)]), ch, open_interest({1: 100}), quotes, tape, FUTURES, CONFIG)
    assert present
    # Customers net: call +5 - 2 = +3 (bought), put -4 - 1 = -5 (sold). Dealers take the other side:
    # change = -(3 * gamma_call + (-5) * gamma_put) * 50 * F^2 * 0.01 / 1e9.
    g_call = hand_gamma(F_T, 5000, YEARS_AT_T, 0.15)
    g_put = hand_gamma(F_T, 4990, YEARS_AT_T, 0.20)
    expected = -(3 * g_call - 5 * g_put) * 50 * F_T**2 * 0.01 / 1e9
    assert frame["dealer_gamma_traded_since_open"][0] == pytest.approx(expected, rel=1e-7)
    snaps = option_snapshots(pl.Series([T], dtype=TS), ch, open_interest({1: 100}), quotes, tape, FUTURES, CONFIG)
    put = snaps.filter(pl.col("instrument_id") == 2).row(0, named=True)
    assert put["price_source"] == "trade" and put["implied_vol"] == pytest.approx(0.20, abs=1e-9)
    assert put["skip_reason"] == "no_open_interest" and put["net_customer_size_since_open"] == -5


def test_absent_options_data_gives_no_block():
    ch, oi, quotes = one_strike_case()
    st = state([(T, 5000.0, 4.0)])
    for chain_frame, oi_frame in (
        (ch.clear(), oi),
        (ch, oi.clear()),
        (ch, open_interest({99: 1000})),  # OI only for an instrument outside the chain
    ):
        frame, present = gamma_features(st, chain_frame, oi_frame, quotes, NO_TRADES, FUTURES, CONFIG)
        assert present is False
        assert frame.width == 0 and frame.height == 0


def test_anchor_without_prices_is_null_not_zero():
    ch, oi, _ = one_strike_case()
    frame, present = gamma_features(state([(T, 5000.0, 4.0)]), ch, oi, bbo([]), NO_TRADES, FUTURES, CONFIG)
    assert present
    assert all(v is None for v in frame.row(0))


# ----------------------------------------------------------------------------------------------
# Point in time


def random_session(seed: int = 7):
    """A morning of quotes every 20 s (some crossed or one-sided), random trades, a random-walk F."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 3, 12, 13, 0, tzinfo=timezone.utc)
    minutes = 150
    f_path = 5000.0 + np.cumsum(rng.normal(0, 1.5, minutes)).round(2)
    futures = bars([(start + timedelta(minutes=i + 1), float(f_path[i])) for i in range(minutes)])
    opts = [(i * 2 + j + 1, "CP"[j], k) for i, k in enumerate(range(4960, 5041, 5)) for j in range(2)]
    oi = {iid: int(rng.integers(0, 5000)) for iid, _, _ in opts if rng.random() < 0.9}
    quote_rows, trade_rows = [], []
    for iid, flag, k in opts:
        for step in range(0, minutes * 60, 20):
            when = start + timedelta(seconds=step + int(rng.integers(0, 20)))
            f = float(f_path[min(step // 60, minutes - 1)])
            t = (EXPIRY - when).total_seconds() / (365 * 86400)
            p = vollib_black(flag.lower(), f, k, t, 0.0, float(rng.uniform(0.1, 0.3)))
            roll = rng.random()
            bid, ask = (p * 0.95, p * 1.05) if roll > 0.1 else ((p * 1.1, p * 0.9) if roll > 0.05 else (0.0, p))
            quote_rows.append((iid, when, bid, ask))
            if rng.random() < 0.1:
                trade_rows.append((iid, when + timedelta(seconds=1), p, int(rng.integers(1, 20)), "BAN"[int(rng.integers(0, 3))]))
    anchors = [datetime(2024, 3, 12, 14, 0, tzinfo=timezone.utc) + timedelta(minutes=2 * i) for i in range(1, 31)]
    st = state([(a, lv, 3.5) for a in anchors for lv in (4990.3, 5000.0, 5012.7)])
    return st, chain(opts), open_interest(oi), bbo(quote_rows), trades(trade_rows), futures


def test_point_in_time_truncated_inputs_reproduce_each_row():
    st, ch, oi, quotes, tape, futures = random_session()
    full, present = gamma_features(st, ch, oi, quotes, tape, futures, CONFIG)
    assert present and full.height == st.height
    assert full["gex_total"].null_count() == 0 and full["gamma_flip_dist_atr"].null_count() < full.height
    for anchor in st["ts_event"].unique().sort():
        rows = st.with_row_index().filter(pl.col("ts_event") == anchor)
        truncated, _ = gamma_features(
            rows.drop("index"),
            ch,
            oi,
            quotes.filter(pl.col("ts_event") <= anchor),
            tape.filter(pl.col("ts_event") <= anchor),
            futures.filter(pl.col("ts_close") <= anchor),
            CONFIG,
        )
        expected = full[rows["index"].to_list()]
        assert_frame_equal(truncated, expected, check_exact=True)


def test_output_follows_state_row_order():
    st, ch, oi, quotes, tape, futures = random_session()
    full, _ = gamma_features(st, ch, oi, quotes, tape, futures, CONFIG)
    order = np.random.default_rng(1).permutation(st.height)
    shuffled, _ = gamma_features(st[order.tolist()], ch.reverse(), oi, quotes.reverse(), tape, futures, CONFIG)
    assert_frame_equal(shuffled, full[order.tolist()], check_exact=True)
