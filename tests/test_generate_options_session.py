"""Tests of scripts/generate_options_session.py: a SYNTHETIC ES session with 0DTE options as DBN v3.

One small session (2024-04-10, a Wednesday: root E2C; 16 strikes, futures scale 0.005, 200 option
trades) is generated once. The checks re-derive what the files must satisfy independently of the
generator: the chain rule of the options contract applied to the decoded definitions, open interest
known before the session from the decoded statistics, quotes against vollib's Black-76 on the
ohlcv-1m closes, trades against vollib on the futures trades, the GEX of one strike by hand.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import databento as db
import numpy as np
import polars as pl
import pytest
from vollib.black import black
from vollib.black.implied_volatility import implied_volatility

from spymaster_assets.sessions import session_bounds_utc

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "generate_options_session.py"
SESSION = date(2024, 4, 10)
PREVIOUS_SESSION = date(2024, 4, 9)
NEXT_SESSION = date(2024, 4, 11)
SEED, STRIKES, SCALE, TRADES = 3, 16, 0.005, 200
NY = ZoneInfo("America/New_York")
UNDEF_QTY = np.iinfo(np.int64).max

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _load("generate_options_session", SCRIPT)


@pytest.fixture(scope="module")
def session(gen, tmp_path_factory):
    out = tmp_path_factory.mktemp("options")
    report = gen.generate_options_session(SESSION, out, seed=SEED, strikes=STRIKES, scale=SCALE, n_trades=TRADES)
    return out, report


def _frame(path: Path) -> pl.DataFrame:
    """Decode a DBN file to polars with databento (prices as floats, UNDEF -> null; times UTC)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = db.DBNStore.from_file(path).to_df(price_type="float", pretty_ts=True, map_symbols=False)
    return pl.from_pandas(df.reset_index())


def _store(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return db.DBNStore.from_file(path)


def _smile(strike: float, forward: float, gen) -> float:
    """The smile stated in SYNTHETIC.txt, written out again: atm + skew x + curvature x^2, x = ln(K/F), floored."""
    x = math.log(strike / forward)
    return max(gen.ATM_VOL + gen.SMILE_SKEW * x + gen.SMILE_CURVATURE * x * x, gen.VOL_FLOOR)


# ---------------------------------------------------------------------------------------------
# Calendar and quoting rules (hand examples)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, root",
    [
        (date(2024, 4, 10), "E2C"),  # second Wednesday of April
        (date(2024, 4, 1), "E1A"),  # first Monday
        (date(2024, 4, 5), "EW1"),  # first Friday
        (date(2024, 4, 19), "EW3"),  # third Friday: the PM weekly
        (date(2024, 5, 29), "E5C"),  # fifth Wednesday, not the month's last session (May 31 is)
        (date(2024, 4, 30), "EW"),  # last session of April: end of month
        (date(2024, 3, 28), "EW"),  # Thursday before Good Friday (a CME holiday): last session of March
        (date(2024, 4, 11), "E2D"),
        (date(2024, 4, 16), "E3B"),
    ],
)
def test_expiry_root(gen, day, root):
    assert gen.expiry_root(day) == root


def test_expiry_root_rejects_weekends_and_raw_symbol_format(gen):
    with pytest.raises(ValueError):
        gen.expiry_root(date(2024, 4, 13))
    # The real Databento symbol of the fixture: EW2F6 C7000 (January 2026, second Friday).
    assert gen.option_raw_symbol("EW2", date(2026, 1, 9), True, 7000.0) == "EW2F6 C7000"
    assert gen.option_raw_symbol("E2C", date(2024, 4, 10), False, 5150.0) == "E2CJ4 P5150"


@pytest.mark.parametrize(
    "theo, bid, ask",
    [
        (1.00, 1.00, 1.10),  # 0.05 tick, two ticks wide from 1.00
        (0.97, 0.95, 1.00),  # below 1.00: one tick wide
        (0.03, None, 0.05),  # floors to 0: no bid
        (12.30, 12.25, 12.75),  # 0.25 tick from 10.00
        (9.98, 9.95, 10.25),  # 9.95 + 2 x 0.05 = 10.05 lands above 10.00: up to the 0.25 grid
        (5.2, 5.20, 5.30),
    ],
)
def test_model_quote_hand_examples(gen, theo, bid, ask):
    b, a = gen.model_quote(np.array([theo]))
    if bid is None:
        assert b[0] == np.iinfo(np.int64).max
    else:
        assert b[0] == round(bid * 1e9)
    assert a[0] == round(ask * 1e9)


def test_not_a_session_is_rejected(gen, tmp_path):
    with pytest.raises(ValueError, match="not a CME trading session"):
        gen.generate_options_session(date(2024, 3, 29), tmp_path)  # Good Friday
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_files_decode_with_expected_schemas_and_counts(session):
    out, report = session
    start, end = session_bounds_utc(SESSION)
    expiry = datetime.combine(SESSION, time(16), tzinfo=NY)
    zero_dte_minutes = int((expiry - start).total_seconds()) // 60  # 18:00 ET to 16:00 ET: 22 h
    next_day_minutes = int((end - start).total_seconds()) // 60  # next-day options live the whole session
    expected = {
        "definition": 2 * STRIKES + 6,
        "bbo-1m": 2 * STRIKES * zero_dte_minutes + 6 * next_day_minutes,
        "trades": TRADES,
    }
    for schema in ("definition", "statistics", "bbo-1m", "trades"):
        path = report.paths[f"options/{schema}"]
        assert path.name.startswith("synthetic-")
        store = _store(path)
        assert str(store.schema) == schema and store.dataset == "GLBX.MDP3" and store.metadata.version == 3
        n = len(store.to_ndarray())
        assert n == report.counts[f"options/{schema}"]
        if schema in expected:
            assert n == expected[schema], schema
    for schema in ("definition", "ohlcv-1m", "trades"):
        assert str(_store(report.paths[f"futures/{schema}"]).schema) == schema
    notice = (out / "SYNTHETIC.txt").read_text()
    assert notice.startswith("SYNTHETIC DATA") and "OPTIONS" in notice and "E2C" in notice
    assert all(p.name.startswith("synthetic-") for p in out.glob("*.dbn.zst"))


def test_definitions_select_as_the_0dte_chain(session, gen):
    _, report = session
    defs = _frame(report.paths["options/definition"])
    futures = _frame(report.paths["futures/definition"])
    front = futures["raw_symbol"][0]
    start, _ = session_bounds_utc(SESSION)
    # The contract's rule, applied to the decoded fields only.
    chain = defs.filter(
        pl.col("instrument_class").is_in(["C", "P"])
        & (pl.col("underlying") == front)
        & (pl.col("expiration").dt.convert_time_zone("America/New_York").dt.date() == SESSION)
        & (pl.col("expiration") > start)
    )
    assert chain.height == 2 * STRIKES
    assert set(chain["asset"]) == {"E2C"}
    assert (chain["unit_of_measure_qty"] == 50).all() and (chain["min_price_increment"] == 0.05).all()
    assert chain["expiration"].unique().to_list() == [datetime(2024, 4, 10, 20, tzinfo=timezone.utc)]  # 16:00 EDT
    others = defs.join(chain, on="instrument_id", how="anti")
    assert others.height == 6 and set(others["asset"]) == {"E2D"}
    assert (others["expiration"].dt.convert_time_zone("America/New_York").dt.date() == NEXT_SESSION).all()
    # Calls and puts at the same 5-point strikes, centred on the first futures trade.
    first_trade = _frame(report.paths["futures/trades"])["price"][0]
    for cls in ("C", "P"):
        k = np.sort(chain.filter(pl.col("instrument_class") == cls)["strike_price"].to_numpy())
        assert np.allclose(np.diff(k), 5.0) and len(k) == STRIKES
        assert k[0] <= first_trade <= k[-1] and np.min(np.abs(k - first_trade)) <= 2.5
    assert (chain["raw_symbol"].str.extract(r"(\d+)$").cast(pl.Float64) == chain["strike_price"]).all()


def test_open_interest_is_published_before_the_session(session):
    _, report = session
    start, _ = session_bounds_utc(SESSION)
    stats = _frame(report.paths["options/statistics"])
    oi = stats.filter(pl.col("stat_type") == 9)
    before = oi.filter(pl.col("ts_recv") < start)
    during = oi.filter(pl.col("ts_recv") >= start)
    # Exactly one OI published in the session (trade date P); it must not count.
    assert during.height == 1
    assert during["ts_ref"][0] == datetime(2024, 4, 9, tzinfo=timezone.utc)
    # Pre-session OI describes trade date PP = 2024-04-08; the latest publication per option wins.
    assert set(before["ts_ref"]) == {datetime(2024, 4, 8, tzinfo=timezone.utc)}
    latest = before.sort("ts_recv").group_by("instrument_id").agg(pl.col("quantity").last(), pl.len().alias("n"))
    revised = latest.filter(pl.col("n") > 1)
    assert revised.height == 3
    first = before.sort("ts_recv").group_by("instrument_id").agg(pl.col("quantity").first().alias("first"))
    assert (revised.join(first, on="instrument_id")["quantity"] != revised.join(first, on="instrument_id")["first"]).all()
    truth = report.chain.filter(pl.col("open_interest") > 0).select("instrument_id", "open_interest")
    merged = truth.join(latest.with_columns(pl.col("instrument_id").cast(pl.UInt32)), on="instrument_id", how="full", coalesce=True)
    assert (merged["open_interest"] == merged["quantity"]).all() and merged.null_count().sum_horizontal()[0] == 0
    assert int(during["quantity"][0]) not in set(latest["quantity"].to_list())
    # Settlement (3) and opening (1) prices: prices, no quantity, one per option.
    for stat_type in (3, 1):
        rows = stats.filter(pl.col("stat_type") == stat_type)
        assert rows.height == report.chain.height
        assert (rows["quantity"] == UNDEF_QTY).all() and (rows["price"] > 0).all()
    assert set(stats["stat_type"]) == {1, 3, 9}


def test_open_interest_profile_is_put_heavy_below_and_peaks_at_round_strikes(session):
    _, report = session
    chain = report.chain.filter(pl.col("zero_dte"))
    ref = report.reference_price
    below = chain.filter(pl.col("strike_price") < ref)
    put_below = below.filter(pl.col("instrument_class") == "P")["open_interest"].sum()
    call_below = below.filter(pl.col("instrument_class") == "C")["open_interest"].sum()
    assert put_below > 1.5 * call_below
    puts = chain.filter((pl.col("instrument_class") == "P") & ((pl.col("strike_price") - ref).abs() <= 30))
    round_mean = puts.filter(pl.col("strike_price") % 25 == 0)["open_interest"].mean()
    other_mean = puts.filter(pl.col("strike_price") % 25 != 0)["open_interest"].mean()
    assert round_mean > 1.2 * other_mean


def _quotes_with_forward(report) -> pl.DataFrame:
    """bbo-1m rows with F = the ohlcv-1m close of the minute holding ts_event (bars carried forward)."""
    bbo = _frame(report.paths["options/bbo-1m"])
    bars = _frame(report.paths["futures/ohlcv-1m"]).select(pl.col("ts_event").alias("bar_open"), pl.col("close").alias("forward")).sort("bar_open")
    defs = _frame(report.paths["options/definition"]).select("instrument_id", "instrument_class", "strike_price", "expiration")
    return (
        bbo.sort("ts_event")
        .join_asof(bars, left_on="ts_event", right_on="bar_open", strategy="backward")
        .join(defs, on="instrument_id")
        .with_columns(((pl.col("expiration") - pl.col("ts_event")).dt.total_nanoseconds() / (365 * 86400 * 1e9)).alias("t"))
    )


def test_quotes_are_black76_at_the_stated_vol_and_never_crossed(session, gen):
    _, report = session
    q = _quotes_with_forward(report)
    # Never crossed; bid undefined only as "no bid" (size 0); ask always there.
    with_bid = q.filter(pl.col("bid_px_00").is_not_null())
    assert (with_bid["bid_px_00"] < with_bid["ask_px_00"]).all()
    assert (q.filter(pl.col("bid_px_00").is_null())["bid_sz_00"] == 0).all()
    assert q["ask_px_00"].null_count() == 0
    # One or two ticks wide (0.05 below 10, 0.25 above; one 0.25 step more where the ask crosses 10).
    width = with_bid["ask_px_00"] - with_bid["bid_px_00"]
    assert (width > 0).all() and (width <= 0.75 + 1e-9).all()
    # 0DTE quotes stop at expiry.
    assert (q["ts_recv"] <= q["expiration"]).all()
    # Black-76 (vollib) at the stated smile on a sample: bid <= model <= ask, and the mid's
    # implied vol is the stated vol within half the spread / vega.
    rng = np.random.default_rng(0)
    sample = q[np.sort(rng.choice(q.height, 400, replace=False))]
    rate = 0.0
    checked_iv = 0
    for row in sample.iter_rows(named=True):
        flag = "c" if row["instrument_class"] == "C" else "p"
        f, k, t = row["forward"], row["strike_price"], row["t"]
        sigma = _smile(k, f, gen)
        theo = black(flag, f, k, t, rate, sigma)
        bid, ask = row["bid_px_00"], row["ask_px_00"]
        assert theo <= ask + 1e-9, row
        assert bid is None or bid <= theo + 1e-9, row
        if bid is not None and theo >= 2.0:
            mid = 0.5 * (bid + ask)
            d1 = (math.log(f / k) + 0.5 * sigma * sigma * t) / (sigma * math.sqrt(t))
            vega = f * math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * math.sqrt(t)
            iv = implied_volatility(mid, f, k, rate, t, flag)
            assert abs(iv - sigma) <= 1.2 * 0.5 * (ask - bid) / vega + 1e-6, (row, iv, sigma)
            checked_iv += 1
    assert checked_iv >= 20


def test_quote_carries_the_options_last_trade(session):
    _, report = session
    bbo = _frame(report.paths["options/bbo-1m"]).select("instrument_id", "ts_event", "price", "size", "side")
    trades = _frame(report.paths["options/trades"]).select(
        "instrument_id", pl.col("ts_event").alias("trade_ts"), pl.col("price").alias("trade_price"),
        pl.col("size").alias("trade_size"), pl.col("side").alias("trade_side"),
    ).sort("trade_ts")
    joined = bbo.sort("instrument_id", "ts_event").join_asof(
        trades.sort("instrument_id", "trade_ts"), left_on="ts_event", right_on="trade_ts", by="instrument_id", strategy="backward", check_sortedness=False
    )
    none = joined.filter(pl.col("trade_ts").is_null())
    assert (none["side"] == "N").all() and none["price"].is_null().all() and (none["size"] == 0).all()
    some = joined.filter(pl.col("trade_ts").is_not_null())
    assert some.height > 0
    assert (some["price"] == some["trade_price"]).all() and (some["size"] == some["trade_size"]).all()
    assert (some["side"] == some["trade_side"]).all()


def test_trades_hit_the_model_quote_by_aggressor_side(session, gen):
    _, report = session
    trades = _frame(report.paths["options/trades"])
    fut = _frame(report.paths["futures/trades"]).select(pl.col("ts_event").alias("fut_ts"), pl.col("price").alias("forward")).sort("fut_ts")
    defs = _frame(report.paths["options/definition"]).select("instrument_id", "instrument_class", "strike_price", "expiration", "asset")
    t = (
        trades.sort("ts_event").join_asof(fut, left_on="ts_event", right_on="fut_ts", strategy="backward")
        .join(defs, on="instrument_id")
    )
    assert set(t["side"]) == {"A", "B"} and (t["action"] == "T").all()
    assert (t["ts_event"] < datetime(2024, 4, 10, 20, tzinfo=timezone.utc)).all()
    assert t.filter(pl.col("asset") == "E2C").height > 0.8 * TRADES
    for row in t.iter_rows(named=True):
        flag = "c" if row["instrument_class"] == "C" else "p"
        years = (row["expiration"] - row["ts_event"]).total_seconds() / (365 * 86400)
        theo = black(flag, row["forward"], row["strike_price"], years, 0.0, _smile(row["strike_price"], row["forward"], gen))
        if row["side"] == "B":  # buyer lifts the ask: at most two 0.25 ticks (+ one at the 10.00 step) above
            assert -1e-9 <= row["price"] - theo <= 0.75 + 1e-9, row
        else:  # seller hits the bid: the model price floored to its tick
            assert -1e-9 <= theo - row["price"] < 0.25 + 1e-9, row


def test_gex_of_one_strike_by_hand(session, gen):
    """The printed truth profile, re-derived for the strike nearest F at 10:00 ET from the decoded files."""
    _, report = session
    at = datetime(2024, 4, 10, 10, tzinfo=NY)
    profile = gen.gex_truth_profile(report, at)
    fut = _frame(report.paths["futures/trades"])
    forward = fut.filter(pl.col("ts_event") <= at.astimezone(timezone.utc))["price"][-1]
    start, _ = session_bounds_utc(SESSION)
    stats = _frame(report.paths["options/statistics"])
    oi = (stats.filter((pl.col("stat_type") == 9) & (pl.col("ts_recv") < start)).sort("ts_recv")
          .group_by("instrument_id").agg(pl.col("quantity").last()))
    defs = _frame(report.paths["options/definition"]).filter(pl.col("asset") == "E2C")
    strike = defs["strike_price"].to_numpy()[np.argmin(np.abs(defs["strike_price"].to_numpy() - forward))]
    t = (datetime(2024, 4, 10, 16, tzinfo=NY) - at).total_seconds() / (365 * 86400)  # 6 h
    sigma = _smile(strike, forward, gen)
    d1 = (math.log(forward / strike) + 0.5 * sigma**2 * t) / (sigma * math.sqrt(t))
    gamma = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (forward * sigma * math.sqrt(t))
    gex = 0.0
    for cls, sign in (("C", 1.0), ("P", -1.0)):
        iid = defs.filter((pl.col("strike_price") == strike) & (pl.col("instrument_class") == cls))["instrument_id"][0]
        contracts = oi.filter(pl.col("instrument_id") == iid)["quantity"]
        gex += sign * gamma * (float(contracts[0]) if contracts.len() else 0.0) * 50 * forward**2 * 0.01
    row = profile.filter(pl.col("strike_price") == strike)
    assert row["forward"][0] == forward
    assert row["gamma_call"][0] == pytest.approx(gamma, rel=1e-9)
    assert row["gex"][0] == pytest.approx(gex, rel=1e-9)
    assert row["gex_bn"][0] == pytest.approx(gex / 1e9, rel=1e-9)


def test_cli_reproduces_the_same_bytes(session, gen, tmp_path, capsys):
    _, report = session
    code = gen.main(["--date", str(SESSION), "--out", str(tmp_path), "--seed", str(SEED), "--strikes", str(STRIKES),
                     "--scale", str(SCALE), "--trades", str(TRADES)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "true GEX profile at 10:00:00 ET" in printed and "options/bbo-1m" in printed
    for schema in ("definition", "statistics", "bbo-1m", "trades"):
        again = gen.options_output_path(tmp_path, SESSION, schema)
        assert again.read_bytes() == report.paths[f"options/{schema}"].read_bytes(), schema
