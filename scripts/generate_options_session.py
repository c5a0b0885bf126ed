"""Generate one SYNTHETIC CME ES session with its same-day (0DTE) ES options, as Databento DBN v3 files.

THE OUTPUT IS SIMULATED, NOT MARKET DATA. Every file name begins ``synthetic-`` and ``SYNTHETIC.txt``
beside the files says so and records the generator, parameters and the model below. It exists to test
the options bronze tables and the dealer-gamma (GEX) features end to end.

Usage::

    python scripts/generate_options_session.py --date 2024-04-10 --out data/generated/options \\
        [--seed 7] [--strikes 60] [--scale 0.01] [--trades 400] [--profile-at 10:00]

Files written (dataset GLBX.MDP3, DBN v3, zstd):

* futures, by :func:`generate_session.generate_session` (scripts/generate_session.py): the front
  month's ``definition``, ``ohlcv-1m`` and ``trades`` (``synthetic-glbx-mdp3-YYYYMMDD.<schema>.dbn.zst``);
* options (``synthetic-glbx-mdp3-YYYYMMDD-es-opt.<schema>.dbn.zst``):

  - ``definition``: ``InstrumentDefMsg`` per option, fields after Databento's real ``EW2F6 C7000``
    record (shared/data/dbn/nautilus/options_exercise): instrument_class C/P, security_type OOF,
    group EW, asset = the expiry's root, underlying = the front month's raw symbol, strike_price,
    expiration 16:00 America/New_York of the expiry day (in UTC), unit_of_measure_qty 50, tick_rule
    15 (variable tick), min_price_increment 0.05 (the smallest tick). The 0DTE chain has ``--strikes``
    5-point strikes (calls and puts) centred on the session's first futures price; a few options of
    the NEXT trading day's expiry (3 strikes, C and P) are added and must not enter the chain.
  - ``statistics``: ``StatMsg`` records. Open interest (stat_type 9, quantity = contracts) of every
    option with OI > 0, describing trade date PP (ts_ref = PP 00:00 UTC), published 06:30 ET on the
    previous session's date P (before the session opens); three options get a revised publication
    at 12:00 ET on P (the latest one wins); ONE in-session record (ts_ref = P, ts_recv = 06:30 ET on
    the session date, quantity 50,000) that a point-in-time reader must ignore; settlement prices
    (stat_type 3, P 17:15 ET) and opening prices (stat_type 1, P's session open) that are never OI.
  - ``bbo-1m``: one ``BBOMsg`` (rtype BBO_1M) per option per minute interval [m, m+1 min) of the
    session while the option lives (0DTE: up to 16:00 ET). As in Databento's bbo-1m, ts_recv is the
    interval end; ts_event (the last book update) is m + 1 min - 1 ns, and the quote is the model
    price at that instant: Black-76 on F = the futures' last trade at or before ts_event (= the
    ohlcv-1m close of minute m, carried forward over minutes without trades), t = (expiration -
    ts_event) / (365 x 86400 s), r = ``config.options_rate``, sigma from the smile below. price /
    size / side carry the option's last trade at or before ts_event (UNDEF / 0 / N before any).
  - ``trades``: ``TradeMsg`` records (a few hundred), timed by the futures generator's intraday
    intensity curve, at the model quote's ask for a buying aggressor (side B) and at its bid for a
    selling aggressor (side A); about 5 % on the next-day options.

Model (documented constants below): smile sigma(K, F) = ATM_VOL + SMILE_SKEW x + SMILE_CURVATURE x^2
with x = ln(K / F) (sticky moneyness), floored at VOL_FLOOR; Black-76 from
spymaster_assets/silver/black76.py. Quote: tick 0.05 below 10.00 points and 0.25 from 10.00 (what
Databento's EW2F6 C7000 bbo-1m shows: 8.35, 7.70 below 10, 10.25 above); bid = the model price
floored to the tick, ask = bid + 1 tick (model price < 1.00) or 2 ticks, so bid <= model <= ask
and no quote is crossed; a bid that floors to 0 is no bid (UNDEF price, size 0).

Root naming rule (CME E-mini S&P 500 weekly options, implemented by :func:`expiry_root`): the last
trading session of a month is the end-of-month ``EW``; otherwise a Friday is ``EW{n}`` and Monday to
Thursday are ``E{n}A`` .. ``E{n}D``, n = which occurrence of that weekday in the month (1-5). The
third-Friday PM option is EW3 (the quarterly ES options expire at 09:30 ET that day and are not
generated). Example: 2024-04-10, the second Wednesday of April -> E2C, symbols ``E2CJ4 C5150``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time as wallclock
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS_DIR.parent
for _p in (str(REPO_ROOT), str(SCRIPTS_DIR)):  # run as a script from anywhere, or imported by path
    if _p not in sys.path:
        sys.path.insert(0, _p)

import generate_session as futures_gen  # noqa: E402
from spymaster_resources import dbn_layout as L  # noqa: E402
from spymaster_core.config import SpymasterConfig  # noqa: E402
from spymaster_assets.sessions import NY, et_to_utc, is_trading_session, session_bounds_utc, trading_sessions  # noqa: E402
from spymaster_assets.silver.black76 import black76_gamma, black76_price  # noqa: E402

NS = 1_000_000_000
MINUTE_NS = 60 * NS
YEAR_SECONDS = 365 * 86400  # time to expiry in years of 365 days (the contract's convention)
PUBLISHER_ID = futures_gen.PUBLISHER_ID
FUTURES_SCHEMAS = ("definition", "ohlcv-1m", "trades")
OPTION_SCHEMAS = ("definition", "statistics", "bbo-1m", "trades")
MULTIPLIER = 50.0  # ES options: one contract = one ES future, USD 50 per index point

#: Smile: at-the-money volatility (annualized), slope and curvature in log-moneyness x = ln(K/F).
ATM_VOL = 0.14
SMILE_SKEW = -1.2
SMILE_CURVATURE = 30.0
VOL_FLOOR = 0.05
#: Strike spacing of the generated chain (points).
STRIKE_STEP = 5.0
#: Quote ticks (points): 0.05 below REDUCED_TICK_BELOW, else 0.25.
SMALL_TICK = 0.05
LARGE_TICK = 0.25
REDUCED_TICK_BELOW = 10.0
#: Model prices below this quote one tick wide, others two.
ONE_TICK_SPREAD_BELOW = 1.0
#: First synthetic option instrument id (real CME option ids are of this magnitude; futures use YYYYMM).
FIRST_OPTION_ID = 40_000_000
#: Open interest published during the session (must be ignored by a point-in-time reader).
IN_SESSION_OI = 50_000
#: Stat types (databento_dbn.StatType).
STAT_OPENING_PRICE, STAT_SETTLEMENT_PRICE, STAT_OPEN_INTEREST = 1, 3, 9
RTYPE_STATISTICS = 24
RTYPE_BBO_1M = 0xC4
UNDEF_TS = np.iinfo(np.uint64).max


def _record_dtype(msg_name: str) -> np.dtype:
    """The DBN v3 record layout of ``databento_dbn.v3.<msg_name>`` as a NumPy dtype (the library's own field list)."""
    from databento_dbn import v3

    return np.dtype(getattr(v3, msg_name)._dtypes)


# ---------------------------------------------------------------------------------------------
# Contract calendar
# ---------------------------------------------------------------------------------------------


def expiry_root(day: date) -> str:
    """CME root of the E-mini S&P 500 options expiring at 16:00 ET on ``day`` (rule in the module docstring).

    ``EW`` on the month's last trading session; else ``EW{n}`` on a Friday and ``E{n}A``..``E{n}D``
    Monday..Thursday, n = (day - 1) // 7 + 1. Raises ValueError on a weekend day.
    """
    if day.weekday() > 4:
        raise ValueError(f"{day} is a weekend day: no options expire")
    month_end = (date(day.year + (day.month == 12), day.month % 12 + 1, 1)) - timedelta(days=1)
    remaining = trading_sessions(day + timedelta(days=1), month_end)
    if not remaining:
        return "EW"
    n = (day.day - 1) // 7 + 1
    if day.weekday() == 4:
        return f"EW{n}"
    return f"E{n}{'ABCD'[day.weekday()]}"


def option_raw_symbol(root: str, expiry: date, is_call: bool, strike: float) -> str:
    """CME Globex option symbol, e.g. ``EW2F6 C7000``: root, expiry month code, one-digit year, C/P strike."""
    return f"{root}{futures_gen.MONTH_CODES[expiry.month - 1]}{expiry.year % 10} {'C' if is_call else 'P'}{int(round(strike))}"


def expiration_utc(day: date) -> datetime:
    """16:00 America/New_York on ``day`` (PM-settled weeklies), as an aware UTC datetime."""
    return et_to_utc(day, time(16, 0))


def previous_session(day: date) -> date:
    """The CME trading session before ``day``."""
    days = trading_sessions(day - timedelta(days=10), day - timedelta(days=1))
    if not days:
        raise ValueError(f"no trading session in the 10 days before {day}")
    return days[-1]


def next_session(day: date) -> date:
    """The CME trading session after ``day``."""
    days = trading_sessions(day + timedelta(days=1), day + timedelta(days=10))
    if not days:
        raise ValueError(f"no trading session in the 10 days after {day}")
    return days[0]


def build_chain(session_date: date, reference_price: float, strikes: int, first_id: int = FIRST_OPTION_ID) -> pl.DataFrame:
    """The generated options: the 0DTE chain, then 3 strikes (C and P) of the next session's expiry.

    Returns one row per option: instrument_id (UInt32, from ``first_id``), raw_symbol, asset (root),
    instrument_class ("C"/"P"), strike_price (Float64 points), expiration (Datetime ns UTC, 16:00 ET),
    underlying (front-month raw symbol), underlying_id, maturity_week (n of the root, 255 for EW),
    zero_dte (bool). 0DTE strikes: ``strikes`` multiples of 5 points centred on ``reference_price``.
    Raises ValueError when ``strikes`` < 1.
    """
    if strikes < 1:
        raise ValueError(f"strikes must be >= 1, got {strikes}")
    centre = round(reference_price / STRIKE_STEP) * STRIKE_STEP
    chain_strikes = centre + STRIKE_STEP * (np.arange(strikes) - (strikes - 1) // 2)
    later = next_session(session_date)
    rows = []
    for expiry, strike_set, zero_dte in ((session_date, chain_strikes, True), (later, centre + STRIKE_STEP * np.arange(-1, 2), False)):
        root = expiry_root(expiry)
        underlying = futures_gen.front_month(expiry)
        digit = re.search(r"\d", root)
        week = int(digit.group()) if digit else 255  # maturity_week: the n of EW2 / E2C; 255 (none) for EW
        for is_call in (True, False):
            for k in strike_set:
                rows.append({
                    "raw_symbol": option_raw_symbol(root, expiry, is_call, k), "asset": root,
                    "instrument_class": "C" if is_call else "P", "strike_price": float(k),
                    "expiration": expiration_utc(expiry), "underlying": underlying.raw_symbol,
                    "underlying_id": underlying.instrument_id, "maturity_week": week, "zero_dte": zero_dte,
                })
    frame = pl.DataFrame(rows).with_columns(pl.col("expiration").dt.cast_time_unit("ns").dt.convert_time_zone("UTC"))
    return frame.with_columns((pl.int_range(pl.len(), dtype=pl.UInt32) + first_id).alias("instrument_id")).select(
        "instrument_id", *[c for c in frame.columns]
    )


# ---------------------------------------------------------------------------------------------
# Pricing model
# ---------------------------------------------------------------------------------------------


def smile_volatility(strike: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Annualized volatility of the generator's smile: ATM_VOL + SMILE_SKEW x + SMILE_CURVATURE x^2, x = ln(K/F), >= VOL_FLOOR."""
    x = np.log(np.asarray(strike, dtype=np.float64) / np.asarray(forward, dtype=np.float64))
    return np.maximum(ATM_VOL + SMILE_SKEW * x + SMILE_CURVATURE * x * x, VOL_FLOOR)


def years_to_expiry(expiration_ns: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
    """(expiration - ts) in years of 365 days; inputs ns since the epoch."""
    return (np.asarray(expiration_ns, np.int64) - np.asarray(ts_ns, np.int64)) / (YEAR_SECONDS * NS)


def model_quote(theo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask (fixed-point int64, 1e-9 points) around model prices ``theo`` (points).

    tick = 0.05 below 10.00, else 0.25; bid = theo floored to its tick; ask = bid + 1 tick when
    theo < 1.00 else 2 ticks, rounded up to the 0.25 grid when it lands above 10.00. So
    bid <= theo < ask. A bid of 0 is returned as ``UNDEF_PRICE`` (no bid).
    """
    theo = np.asarray(theo, np.float64)
    tick = np.where(theo < REDUCED_TICK_BELOW, SMALL_TICK, LARGE_TICK)
    tick_fixed = np.round(tick * L.PRICE_SCALE).astype(np.int64)
    bid_ticks = np.floor(theo / tick + 1e-9).astype(np.int64)  # +1e-9: 1.00/0.05 is 19.999... in floats
    bid = bid_ticks * tick_fixed
    bid = np.where(bid > np.round(theo * L.PRICE_SCALE).astype(np.int64), bid - tick_fixed, bid)  # never above theo
    ask = bid + np.where(theo < ONE_TICK_SPREAD_BELOW, 1, 2) * tick_fixed
    large = int(LARGE_TICK * L.PRICE_SCALE)
    threshold = int(REDUCED_TICK_BELOW * L.PRICE_SCALE)
    ask = np.where(ask > threshold, -(-ask // large) * large, ask)
    bid = np.where(bid <= 0, L.UNDEF_PRICE, bid)
    return bid, ask


def futures_price_at(ts_ns: np.ndarray, trade_ts: np.ndarray, trade_price: np.ndarray) -> np.ndarray:
    """Futures price (points) at each instant: the last trade at or before it (the first trade before any)."""
    idx = np.searchsorted(trade_ts, np.asarray(ts_ns, np.int64), side="right") - 1
    return trade_price[np.maximum(idx, 0)]


def model_prices(chain: pl.DataFrame, option_idx: np.ndarray, ts_ns: np.ndarray, forward: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(Black-76 model price in points, smile volatility) of options ``chain[option_idx]`` at ``ts_ns`` with futures ``forward``."""
    strike = chain["strike_price"].to_numpy()[option_idx]
    is_call = (chain["instrument_class"] == "C").to_numpy()[option_idx]
    expiration = chain["expiration"].dt.epoch("ns").to_numpy()[option_idx]
    sigma = smile_volatility(strike, forward)
    t = years_to_expiry(expiration, ts_ns)
    return black76_price(is_call, forward, strike, t, sigma, rate=rate), sigma


# ---------------------------------------------------------------------------------------------
# Open interest
# ---------------------------------------------------------------------------------------------


def open_interest_profile(chain: pl.DataFrame, reference_price: float, rng: np.random.Generator) -> np.ndarray:
    """Open interest (contracts, int64) per option of ``chain``: larger near round strikes, put-heavy below.

    calls: 800 exp(-((K - F0 - 25)/60)^2 / 2), x0.45 below F0; puts: 1100 exp(-((K - F0 + 30)/70)^2 / 2),
    x0.4 above F0; x3 at multiples of 100, x2 of 50, x1.4 of 25; x lognormal noise (sd 0.25);
    rounded (far wings round to 0: no OI record). Next-day options: about 200 each. F0 = reference_price.
    """
    k = chain["strike_price"].to_numpy()
    is_call = (chain["instrument_class"] == "C").to_numpy()
    zero_dte = chain["zero_dte"].to_numpy()
    roundness = np.where(k % 100 == 0, 3.0, np.where(k % 50 == 0, 2.0, np.where(k % 25 == 0, 1.4, 1.0)))
    calls = 800 * np.exp(-0.5 * ((k - reference_price - 25) / 60) ** 2) * np.where(k >= reference_price, 1.0, 0.45)
    puts = 1100 * np.exp(-0.5 * ((k - reference_price + 30) / 70) ** 2) * np.where(k <= reference_price, 1.0, 0.4)
    level = np.where(is_call, calls, puts) * roundness * np.exp(rng.normal(0.0, 0.25, len(k)))
    level = np.where(zero_dte, level, 200 * np.exp(rng.normal(0.0, 0.25, len(k))))
    return np.round(level).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# DBN records
# ---------------------------------------------------------------------------------------------


def option_definition_bytes(row: dict, ts_ns: int) -> bytes:
    """One option ``InstrumentDefMsg`` (v3) from a :func:`build_chain` row, fields after the real EW2F6 C7000 record.

    ts_event = ts_recv = ``ts_ns`` (the session start, as the futures generator does); activation
    35 days before expiration (the real record: listed ~9 weeks before); low limit 0.05, no high limit.
    """
    import databento_dbn as dbn
    from databento_dbn import v3

    is_call = row["instrument_class"] == "C"
    expiration = row["expiration"]
    activation = expiration - timedelta(days=35)
    return bytes(v3.InstrumentDefMsg(
        publisher_id=PUBLISHER_ID, instrument_id=row["instrument_id"], ts_event=ts_ns, ts_recv=ts_ns,
        raw_symbol=row["raw_symbol"], security_update_action=dbn.SecurityUpdateAction.ADD,
        instrument_class=dbn.InstrumentClass.CALL if is_call else dbn.InstrumentClass.PUT,
        min_price_increment=int(SMALL_TICK * L.PRICE_SCALE), display_factor=10_000_000,
        expiration=int(expiration.timestamp()) * NS, activation=int(activation.timestamp()) * NS,
        high_limit_price=dbn.UNDEF_PRICE, low_limit_price=int(SMALL_TICK * L.PRICE_SCALE),
        max_price_variation=dbn.UNDEF_PRICE, unit_of_measure_qty=int(MULTIPLIER) * L.PRICE_SCALE,
        min_price_increment_amount=int(SMALL_TICK * MULTIPLIER * L.PRICE_SCALE), price_ratio=dbn.UNDEF_PRICE,
        strike_price=int(round(row["strike_price"] * L.PRICE_SCALE)), raw_instrument_id=row["instrument_id"],
        inst_attrib_value=270343, underlying_id=row["underlying_id"], market_depth_implied=0, market_depth=3,
        market_segment_id=54, max_trade_vol=3000, min_lot_size=0, min_lot_size_block=0, min_lot_size_round_lot=0,
        min_trade_vol=1, appl_id=311, maturity_year=expiration.year, channel_id=1, currency="USD", group="EW",
        exchange="XCME", asset=row["asset"], cfi="OCEFPS" if is_call else "OPEFPS", security_type="OOF",
        unit_of_measure="IPNT", underlying=row["underlying"], strike_price_currency="USD",
        match_algorithm=dbn.MatchAlgorithm.FIFO, main_fraction=255, price_display_format=255, sub_fraction=255,
        underlying_product=5, maturity_month=expiration.astimezone(NY).month, maturity_day=255,
        maturity_week=row["maturity_week"], user_defined_instrument=dbn.UserDefinedInstrument.NO,
        contract_multiplier_unit=127, flow_schedule_type=127, tick_rule=15,
    ))


def stat_records(instrument_id, ts_recv, ts_ref, price, quantity, stat_type) -> np.ndarray:
    """``StatMsg`` (v3) records from equal-length arrays; ts_event = ts_recv - 20 us, update_action NEW.

    Pass ``L.UNDEF_PRICE`` for an undefined price or quantity and ``UNDEF_TS`` for no ts_ref.
    """
    n = len(instrument_id)
    out = np.zeros(n, _record_dtype("StatMsg"))
    out["length"] = out.dtype.itemsize // 4
    out["rtype"] = RTYPE_STATISTICS
    out["publisher_id"] = PUBLISHER_ID
    out["instrument_id"] = instrument_id
    out["ts_recv"] = ts_recv
    out["ts_event"] = np.asarray(ts_recv, np.int64) - 20_000
    out["ts_in_delta"] = 20_000
    out["ts_ref"] = ts_ref
    out["price"] = price
    out["quantity"] = quantity
    out["stat_type"] = stat_type
    out["channel_id"] = 1
    out["update_action"] = 1  # StatUpdateAction.NEW
    return out


def options_metadata(schema: str, chain: pl.DataFrame, start: datetime, end: datetime):
    """DBN v3 metadata: GLBX.MDP3, ``schema``, every option's raw_symbol -> instrument_id over ``[start, end)``."""
    return futures_gen.session_metadata(schema, list(zip(chain["raw_symbol"].to_list(), chain["instrument_id"].to_list())), start, end)


def options_output_path(out_dir: Path, session_date: date, schema: str) -> Path:
    """``synthetic-glbx-mdp3-YYYYMMDD-es-opt.<schema>.dbn.zst`` (the prefix marks simulated data)."""
    return out_dir / f"synthetic-glbx-mdp3-{session_date:%Y%m%d}-es-opt.{schema}.dbn.zst"


def _write(path: Path, metadata, records: list[np.ndarray | bytes]) -> int:
    writer = futures_gen.DbnZstWriter(path, metadata)
    try:
        for r in records:
            writer.write(r)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.records


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


@dataclass
class OptionsReport:
    """What a run wrote: paths and record counts per file (keys ``futures/<schema>``, ``options/<schema>``),
    the generated options (:func:`build_chain` columns + open_interest, the value a point-in-time reader
    must find), the reference price (first futures trade, points) and wall seconds."""

    paths: dict[str, Path]
    counts: dict[str, int]
    chain: pl.DataFrame
    reference_price: float
    seconds: float


def _read_futures_trades(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ts_event ns int64, price points float64) of the generated futures trades, in file (time) order."""
    import databento as db

    records = db.DBNStore.from_file(path).to_ndarray()
    return records["ts_event"].astype(np.int64), records["price"].astype(np.int64) / L.PRICE_SCALE


def _option_trades(chain, oi, session_start_ns, trade_ts, trade_px, n_trades, rate, rng) -> np.ndarray:
    """``n_trades`` option TradeMsg records (sorted by ts_event) at the model quote, ~5 % on next-day options."""
    zero_dte = chain["zero_dte"].to_numpy()
    expiration_ns = chain["expiration"].dt.epoch("ns").to_numpy()
    strikes = chain["strike_price"].to_numpy()
    last_ns = int(expiration_ns[zero_dte].min()) - MINUTE_NS  # 0DTE trades stop a minute before expiry
    minutes = np.arange(session_start_ns, last_ns, MINUTE_NS)
    local = [datetime.fromtimestamp(m / NS, tz=timezone.utc).astimezone(NY) for m in minutes[::60]]
    hours = np.repeat([t.hour + t.minute / 60.0 for t in local], 60)[: len(minutes)] + (np.arange(len(minutes)) % 60) / 60.0
    weight = futures_gen.intensity_shape(hours)
    ts = np.sort(rng.choice(minutes, n_trades, p=weight / weight.sum()) + rng.integers(0, MINUTE_NS, n_trades))
    forward = futures_price_at(ts, trade_ts, trade_px)
    # Activity near the money and where open interest sits; a few trades on the next-day expiry.
    on_later = rng.random(n_trades) < 0.05
    option_idx = np.empty(n_trades, np.int64)
    for later in (False, True):
        pool = np.flatnonzero(zero_dte != later)
        rows = np.flatnonzero(on_later == later)
        for r in rows:
            w = (oi[pool] + 50.0) * np.exp(-np.abs(strikes[pool] - forward[r]) / 15.0)
            option_idx[r] = pool[rng.choice(len(pool), p=w / w.sum())]
    theo, _ = model_prices(chain, option_idx, ts, forward, rate)
    bid, ask = model_quote(theo)
    is_put = (chain["instrument_class"] == "P").to_numpy()[option_idx]
    buy = rng.random(n_trades) < np.where(is_put, 0.6, 0.5)  # customers lean to buying puts
    buy |= bid == L.UNDEF_PRICE  # nothing to sell into
    size = np.where(rng.random(n_trades) < 0.02, rng.integers(25, 101, n_trades), rng.geometric(0.35, n_trades))
    out = L.empty_records(L.TRADE_DTYPE, n_trades, L.RTYPE_MBP_0, PUBLISHER_ID, 0)
    out["instrument_id"] = chain["instrument_id"].to_numpy()[option_idx]
    out["ts_event"] = ts
    delta = rng.integers(15_000, 80_000, n_trades)
    out["ts_recv"] = ts + delta
    out["ts_in_delta"] = delta
    out["price"] = np.where(buy, ask, bid)
    out["size"] = size
    out["action"] = b"T"
    out["side"] = np.where(buy, b"B", b"A")
    out["flags"] = L.F_LAST
    out["sequence"] = np.arange(1, n_trades + 1) * 7
    return out


def _bbo_records(chain, session_start_ns, session_end_ns, trade_ts, trade_px, option_trades, rate, rng) -> np.ndarray:
    """bbo-1m records of every option for every minute interval it lives in, ordered by ts_recv then option."""
    expiration_ns = chain["expiration"].dt.epoch("ns").to_numpy()
    strikes = chain["strike_price"].to_numpy()
    ids = chain["instrument_id"].to_numpy()
    interval_end = np.arange(session_start_ns + MINUTE_NS, session_end_ns + 1, MINUTE_NS)
    alive = interval_end[:, None] <= expiration_ns[None, :]  # (minute, option): the interval ends by expiry
    minute_idx, option_idx = np.nonzero(alive)  # row-major: ts_recv order, then option order
    ts_recv = interval_end[minute_idx]
    ts_event = ts_recv - 1  # the quote holds at the interval's last nanosecond
    forward = futures_price_at(ts_event, trade_ts, trade_px)
    theo, _ = model_prices(chain, option_idx, ts_event, forward, rate)
    bid, ask = model_quote(theo)
    n = len(ts_recv)
    # Sizes: larger near the money; order counts at most the size.
    depth = 3.0 + 40.0 * np.exp(-np.abs(strikes[option_idx] - forward) / 20.0)
    bid_sz = 1 + rng.poisson(depth)
    ask_sz = 1 + rng.poisson(depth)
    bid_sz = np.where(bid == L.UNDEF_PRICE, 0, bid_sz)
    out = np.zeros(n, _record_dtype("BBO1MMsg"))
    out["length"] = out.dtype.itemsize // 4
    out["rtype"] = RTYPE_BBO_1M
    out["publisher_id"] = PUBLISHER_ID
    out["instrument_id"] = ids[option_idx]
    out["ts_event"] = ts_event
    out["ts_recv"] = ts_recv
    out["flags"] = L.F_LAST
    out["sequence"] = np.arange(1, n + 1) * 3
    out["bid_px_00"] = bid
    out["ask_px_00"] = ask
    out["bid_sz_00"] = bid_sz
    out["ask_sz_00"] = ask_sz
    out["bid_ct_00"] = np.minimum(bid_sz, 1 + rng.poisson(1.5, n))
    out["ask_ct_00"] = np.minimum(ask_sz, 1 + rng.poisson(1.5, n))
    # The last trade of the option at or before ts_event (UNDEF / 0 / N before its first trade).
    out["price"] = L.UNDEF_PRICE
    out["side"] = b"N"
    for j, iid in enumerate(ids):
        rows = np.flatnonzero(option_idx == j)
        trades = option_trades[option_trades["instrument_id"] == iid]
        if not len(trades) or not len(rows):
            continue
        last = np.searchsorted(trades["ts_event"].astype(np.int64), ts_event[rows], side="right") - 1
        hit = last >= 0
        out["price"][rows[hit]] = trades["price"][last[hit]]
        out["size"][rows[hit]] = trades["size"][last[hit]]
        out["side"][rows[hit]] = trades["side"][last[hit]]
    return out


def _statistics(chain, oi, session_date, reference_price, rate, rng) -> tuple[np.ndarray, np.ndarray]:
    """(StatMsg records sorted by ts_recv, open interest a point-in-time reader must find per option).

    Dates: P = the previous session, PP = the one before. See the module docstring for what is published when.
    """
    prev = previous_session(session_date)
    prev2 = previous_session(prev)
    ids = chain["instrument_id"].to_numpy()
    n = len(ids)
    ref_pp = int(datetime.combine(prev2, time(0), tzinfo=timezone.utc).timestamp()) * NS
    ref_p = int(datetime.combine(prev, time(0), tzinfo=timezone.utc).timestamp()) * NS
    oi_publish = int(et_to_utc(prev, time(6, 30)).timestamp()) * NS
    revision_publish = int(et_to_utc(prev, time(12, 0)).timestamp()) * NS
    settle_publish = int(et_to_utc(prev, time(17, 15)).timestamp()) * NS
    prev_open = int(session_bounds_utc(prev)[0].timestamp()) * NS
    in_session = int(et_to_utc(session_date, time(6, 30)).timestamp()) * NS
    undef = L.UNDEF_PRICE
    parts = []
    has_oi = np.flatnonzero(oi > 0)
    parts.append(stat_records(ids[has_oi], oi_publish + np.arange(len(has_oi)) * 1000, ref_pp, undef, oi[has_oi], STAT_OPEN_INTEREST))
    # Revisions: the three 0DTE puts with the most OI are republished with +250 contracts.
    known = oi.copy()
    puts = np.flatnonzero((chain["instrument_class"] == "P").to_numpy() & chain["zero_dte"].to_numpy() & (oi > 0))
    revised = puts[np.argsort(-oi[puts], kind="stable")[:3]]
    known[revised] += 250
    parts.append(stat_records(ids[revised], revision_publish + np.arange(len(revised)) * 1000, ref_pp, undef, known[revised], STAT_OPEN_INTEREST))
    # Settlement of P (model price at P's 16:00 ET with F = the reference price), opening price of P.
    settle_ts = np.full(n, int(et_to_utc(prev, time(16, 0)).timestamp()) * NS)
    theo, _ = model_prices(chain, np.arange(n), settle_ts, np.full(n, reference_price), rate)
    settle = np.maximum(np.round(theo / SMALL_TICK), 1).astype(np.int64) * int(SMALL_TICK * L.PRICE_SCALE)
    parts.append(stat_records(ids, settle_publish + np.arange(n) * 1000, ref_p, settle, undef, STAT_SETTLEMENT_PRICE))
    opening = np.maximum(np.round(theo * rng.uniform(0.9, 1.1, n) / SMALL_TICK), 1).astype(np.int64) * int(SMALL_TICK * L.PRICE_SCALE)
    parts.append(stat_records(ids, prev_open + 30 * NS + np.arange(n) * 1000, UNDEF_TS, opening, undef, STAT_OPENING_PRICE))
    # One open interest published during the session (trade date P): a point-in-time reader ignores it.
    chain_calls = np.flatnonzero(chain["zero_dte"].to_numpy() & (chain["instrument_class"] == "C").to_numpy())
    atm_call = int(chain_calls[np.argmin(np.abs(chain["strike_price"].to_numpy()[chain_calls] - reference_price))])
    parts.append(stat_records(ids[[atm_call]], [in_session], ref_p, undef, [IN_SESSION_OI], STAT_OPEN_INTEREST))
    records = np.concatenate(parts)
    records = records[np.argsort(records["ts_recv"], kind="stable")]
    records["sequence"] = np.arange(1, len(records) + 1)
    return records, known


def generate_options_session(
    session_date: date,
    out_dir: Path,
    seed: int = 7,
    strikes: int = 60,
    scale: float = 0.01,
    n_trades: int = 400,
    start_price: float = 5150.0,
    config: SpymasterConfig | None = None,
) -> OptionsReport:
    """Write the SYNTHETIC futures and 0DTE options files of ``session_date`` under ``out_dir``.

    Args:
        session_date: a CME trading session (its options expire 16:00 ET that day; root by :func:`expiry_root`).
        out_dir: created if missing; DBN files ``synthetic-...`` and ``SYNTHETIC.txt``.
        seed: seeds the futures path and every options draw; same inputs -> same bytes.
        strikes: 5-point strikes of the 0DTE chain (each a call and a put).
        scale: futures event scale passed to ``generate_session`` (0.01 -> ~17 k futures trades).
        n_trades: option trades.
        start_price: futures fair price at the session start (points).
        config: session clock and ``options_rate``.
    Returns:
        OptionsReport (paths, counts, the generated options with their point-in-time open interest).
    Raises:
        ValueError: the date is not a trading session, strikes < 1, n_trades < 1, or the futures generator fails.
    """
    t0 = wallclock.perf_counter()
    cfg = config or SpymasterConfig()
    if not is_trading_session(session_date):
        raise ValueError(f"{session_date} is not a CME trading session: no 0DTE options expire")
    if n_trades < 1:
        raise ValueError(f"n_trades must be >= 1, got {n_trades}")
    out_dir = Path(out_dir)
    fut = futures_gen.generate_session(session_date, out_dir, schemas=FUTURES_SCHEMAS, scale=scale, seed=seed,
                                       start_price=start_price, config=cfg)
    trade_ts, trade_px = _read_futures_trades(fut.paths["trades"])
    if not len(trade_ts):
        raise ValueError("the futures generator wrote no trades; raise --scale")
    reference_price = float(trade_px[0])
    chain = build_chain(session_date, reference_price, strikes)
    rng = np.random.default_rng([seed, 0x0DE])  # a stream of its own, apart from the futures path
    oi = open_interest_profile(chain, reference_price, rng)
    start, end = session_bounds_utc(session_date, cfg)
    start_ns, end_ns = int(start.timestamp()) * NS, int(end.timestamp()) * NS

    stats, known_oi = _statistics(chain, oi, session_date, reference_price, cfg.options_rate, rng)
    trades = _option_trades(chain, oi, start_ns, trade_ts, trade_px, n_trades, cfg.options_rate, rng)
    bbo = _bbo_records(chain, start_ns, end_ns, trade_ts, trade_px, trades, cfg.options_rate, rng)
    definitions = [option_definition_bytes(row, start_ns) for row in chain.iter_rows(named=True)]

    stats_start = datetime.fromtimestamp(int(stats["ts_recv"].min()) // NS, tz=timezone.utc).replace(hour=0, minute=0, second=0)
    windows = {"definition": (start, end), "statistics": (stats_start, end), "bbo-1m": (start, end), "trades": (start, end)}
    content = {"definition": definitions, "statistics": [stats], "bbo-1m": [bbo], "trades": [trades]}
    paths = {f"futures/{s}": p for s, p in fut.paths.items()}
    counts = {f"futures/{s}": c for s, c in fut.counts.items()}
    for schema in OPTION_SCHEMAS:
        path = options_output_path(out_dir, session_date, schema)
        counts[f"options/{schema}"] = _write(path, options_metadata(schema, chain, *windows[schema]), content[schema])
        paths[f"options/{schema}"] = path
    chain = chain.with_columns(pl.Series("open_interest", known_oi))
    report = OptionsReport(paths, counts, chain, reference_price, wallclock.perf_counter() - t0)
    write_options_notice(out_dir, session_date, report, seed, strikes, scale, n_trades, start_price)
    return report


# ---------------------------------------------------------------------------------------------
# The true gamma profile (for the note's hand check)
# ---------------------------------------------------------------------------------------------


def gex_truth_profile(report: OptionsReport, at_utc: datetime, config: SpymasterConfig | None = None) -> pl.DataFrame:
    """Per-strike dealer GEX of the 0DTE chain at ``at_utc`` under the generator's own model (the truth).

    F = the futures' last trade at or before ``at_utc``; sigma = the smile at F (not an implied vol from
    quotes); t = (expiration - at) in 365-day years; OI = the open interest known before the session.
    GEX per option = sign x gamma x OI x 50 x F^2 x 0.01 (USD per 1 % move; sign config.dealer_call_sign
    for calls, dealer_put_sign for puts; gamma Black-76 per point of F).
    Returns columns strike_price, forward, t_years, call_oi, put_oi, call_vol, put_vol, gamma_call,
    gamma_put, call_gex, put_gex, gex (USD), gex_bn (billions USD), sorted by strike.
    """
    cfg = config or SpymasterConfig()
    trade_ts, trade_px = _read_futures_trades(report.paths["futures/trades"])
    at_ns = int(at_utc.timestamp() * 1e6) * 1000
    forward = float(futures_price_at(np.array([at_ns]), trade_ts, trade_px)[0])
    chain = report.chain.filter(pl.col("zero_dte"))
    k = chain["strike_price"].to_numpy()
    t = years_to_expiry(chain["expiration"].dt.epoch("ns").to_numpy(), np.full(len(k), at_ns))
    sigma = smile_volatility(k, forward)
    gamma = black76_gamma(forward, k, t, sigma, rate=cfg.options_rate)
    is_call = (chain["instrument_class"] == "C").to_numpy()
    sign = np.where(is_call, cfg.dealer_call_sign, cfg.dealer_put_sign)
    gex = sign * gamma * chain["open_interest"].to_numpy() * MULTIPLIER * forward**2 * 0.01
    per_option = chain.select("strike_price", "instrument_class", "open_interest").with_columns(
        pl.Series("vol", sigma), pl.Series("gamma", gamma), pl.Series("gex", gex), pl.Series("t_years", t)
    )
    calls = per_option.filter(pl.col("instrument_class") == "C").select(
        "strike_price", "t_years", call_oi="open_interest", call_vol="vol", gamma_call="gamma", call_gex="gex")
    puts = per_option.filter(pl.col("instrument_class") == "P").select(
        "strike_price", put_oi="open_interest", put_vol="vol", gamma_put="gamma", put_gex="gex")
    return (
        calls.join(puts, on="strike_price", how="full", coalesce=True)
        .with_columns(pl.lit(forward).alias("forward"), (pl.col("call_gex").fill_null(0) + pl.col("put_gex").fill_null(0)).alias("gex"))
        .with_columns((pl.col("gex") / 1e9).alias("gex_bn"))
        .select("strike_price", "forward", "t_years", "call_oi", "put_oi", "call_vol", "put_vol", "gamma_call", "gamma_put", "call_gex", "put_gex", "gex", "gex_bn")
        .sort("strike_price")
    )


def write_options_notice(out_dir: Path, session_date: date, report: OptionsReport, seed: int, strikes: int,
                         scale: float, n_trades: int, start_price: float) -> Path:
    """Append the options part to ``SYNTHETIC.txt`` (the futures generator has written its part)."""
    zero = report.chain.filter(pl.col("zero_dte"))
    later = report.chain.filter(~pl.col("zero_dte"))
    lines = [
        "",
        "OPTIONS (scripts/generate_options_session.py) -- SYNTHETIC, NOT MARKET DATA.",
        f"command: python scripts/generate_options_session.py --date {session_date} --out {out_dir} --seed {seed} "
        f"--strikes {strikes} --scale {scale} --trades {n_trades} --start-price {start_price}",
        f"0DTE chain: root {zero['asset'][0]}, underlying {zero['underlying'][0]}, expiration {zero['expiration'][0]} "
        f"(16:00 ET), {zero.height} options, strikes {zero['strike_price'].min():g}-{zero['strike_price'].max():g} step {STRIKE_STEP:g}, "
        f"synthetic instrument ids {zero['instrument_id'].min()}-{zero['instrument_id'].max()}",
        f"next-day options (NOT in the chain): root {later['asset'][0]}, expiration {later['expiration'][0]}, ids "
        f"{later['instrument_id'].min()}-{later['instrument_id'].max()}",
        f"reference price (first futures trade): {report.reference_price:g}",
        f"model: Black-76, smile sigma = {ATM_VOL} + ({SMILE_SKEW}) x + {SMILE_CURVATURE} x^2, x = ln(K/F), floor {VOL_FLOOR}; "
        "t = (expiration - ts_event)/(365 d); quotes at ts_event = interval end - 1 ns, F = last futures trade <= ts_event",
        f"open interest: stat_type 9 published 06:30 ET on the previous session's date (3 puts revised at 12:00 ET), "
        f"one in-session OI of {IN_SESSION_OI} to ignore; settlement (3) and opening (1) prices are not OI",
        "",
        "files (records):",
        *[f"  {report.paths[k].name}: {report.counts[k]}" for k in report.paths if k.startswith("options/")],
    ]
    notice = out_dir / "SYNTHETIC.txt"
    with notice.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    return notice


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments (see ``--help``)."""
    parser = argparse.ArgumentParser(description="Write one SYNTHETIC ES session with 0DTE ES options as DBN v3 files (not market data).")
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="session trade date, YYYY-MM-DD (a CME session)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "generated" / "options", help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    parser.add_argument("--strikes", type=int, default=60, help="5-point strikes of the 0DTE chain, each a call and a put (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=0.01, help="futures event scale (default: %(default)s)")
    parser.add_argument("--trades", type=int, default=400, help="option trades (default: %(default)s)")
    parser.add_argument("--start-price", type=float, default=5150.0, help="futures price at the session start, points (default: %(default)s)")
    parser.add_argument("--profile-at", type=time.fromisoformat, default=time(10, 0), help="ET time of the printed GEX profile (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, print one ``key: records, path`` line per file, then the true GEX profile near the money."""
    args = parse_args(argv)
    try:
        report = generate_options_session(args.date, args.out, args.seed, args.strikes, args.scale, args.trades, args.start_price)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, path in report.paths.items():
        print(f"{key}: {report.counts[key]} records, {path}")
    at = et_to_utc(args.date, args.profile_at)
    profile = gex_truth_profile(report, at)
    forward = profile["forward"][0]
    print(f"\ntrue GEX profile at {args.profile_at} ET ({at:%Y-%m-%d %H:%M} UTC), F = {forward:g}, t = {profile['t_years'][0]:.6g} years "
          "(GEX in USD per 1% move; dealers long calls, short puts):")
    near = profile.filter((pl.col("strike_price") - forward).abs() <= 40)
    with pl.Config(tbl_rows=40, tbl_cols=20, tbl_width_chars=200, float_precision=6):
        print(near.drop("forward", "t_years"))
    print(f"total GEX: {profile['gex'].sum() / 1e9:.4f} bn USD per 1% move; seconds: {report.seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
