"""Dealer-gamma (GEX) features of silver_level_state from the session's ES 0DTE options.

For every anchor T (state ``ts_event``) and every option of the session's 0DTE chain:

- F_T: the front-month price, the last 1-minute close (silver_bars ``ts_close <= T``).
- t = (expiration - T) in years of 365 days (seconds / (365 * 86400)); options with t <= 0 are dropped.
- Option price: the mid (bid_px_00 + ask_px_00) / 2 of the last top-of-book row with
  ts_event <= T among the rows with both sides > 0 and bid <= ask (one-sided or crossed rows are
  ignored, not treated as "no quote"); when the option has no such row, the price of its last
  trade with ts_event <= T; else the option is skipped (``skip_reason`` "no_price").
- sigma: Black-76 implied volatility of that price (``black76.black76_implied_vol`` within
  ``config.implied_vol_bounds``, rate ``config.options_rate``); none -> skipped ("no_implied_vol").
- gamma: Black-76 d2V/dF2 at (F_T, K, t, sigma), per index point.
- GEX (billions of USD per 1% move of F) = sign x gamma x OI x multiplier x F_T^2 x 0.01 / 1e9 with
  sign ``config.dealer_call_sign`` for calls and ``config.dealer_put_sign`` for puts and OI the
  open interest published before the session (bronze_options_open_interest); an option without OI
  has no GEX ("no_open_interest") but still counts in the traded dealer gamma.

The features (names and definitions: ``feature_names.gamma_columns``) aggregate per strike (calls
and puts summed). Decisions where the contract is open, all documented on ``gamma_features``:
strike interval = the most common spacing among the ``NEAR_MONEY_STRIKES`` distinct chain strikes
nearest F_T; the gamma-flip profile re-evaluates total GEX at hypothetical prices S with each
option's sigma and t held at their values at T (sticky strike) on a grid from the lowest to the
highest usable strike in steps of one strike interval; the traded dealer gamma uses each option's
gamma at T (the gamma the positions opened since 09:30 carry now), not at the trade time.

Point in time: every value at T uses bbo/trades rows with ts_event <= T, 1-minute bars closing at
or before T and the pre-session open interest, and is computed per (anchor, option) in Numba
scalar code, so a run on inputs truncated at T reproduces the row bit for bit
(tests/silver/test_gamma_features.py). Pure code: no Dagster.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import polars as pl
from numba import njit

from spymaster_core.config import SpymasterConfig
from spymaster_core.units import NS_PER_SECOND
from ..sessions import et_to_utc, session_date_of
from .black76 import black76_gamma_nb, black76_implied_vol_nb
from .feature_names import gamma_columns

SECONDS_PER_YEAR = 365 * 86_400
#: Number of distinct strikes nearest F used to find the chain's strike interval.
NEAR_MONEY_STRIKES = 20
#: GEX unit: billions of USD.
USD_PER_GEX_UNIT = 1e9
#: A 1% move of F, as the fraction in "dollar gamma per 1% move" (gamma x F^2 x 0.01).
ONE_PERCENT = 0.01
#: Tolerance (points) of strike-versus-level comparisons (band edges), for float rounding of levels.
STRIKE_TOLERANCE_POINTS = 1e-9
#: Aggressor side -> customer side sign (B: customer bought, A: customer sold, N: unknown).
SIDE_SIGN = {"B": 1, "A": -1, "N": 0}

#: Price source codes of option_snapshots.
_SOURCE_NAMES = (None, "mid", "trade")
#: skip_reason codes: why an option has no GEX at an anchor (0 = used).
_SKIP_NAMES = (None, "expired", "no_futures_price", "no_price", "no_implied_vol", "no_open_interest", "no_multiplier")
_USED, _EXPIRED, _NO_F, _NO_PRICE, _NO_IV, _NO_OI, _NO_MULT = range(7)

_CHAIN_COLUMNS = ("instrument_id", "instrument_class", "strike_price", "expiration", "multiplier")
_OI_COLUMNS = ("instrument_id", "open_interest")
_BBO_COLUMNS = ("instrument_id", "ts_event", "bid_px_00", "ask_px_00")
_TRADE_COLUMNS = ("instrument_id", "ts_event", "price", "size", "side")
_BAR_COLUMNS = ("ts_close", "close")


def _require(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def _epoch_ns(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("ns").to_numpy().astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Inputs -> per (anchor, option) arrays


@njit(cache=True)
def _last_index_at_or_before(seg_start, seg_end, times_ns, query_ns):
    """(n_query, n_segment) index of the last row with time <= query inside each segment, -1 if none.

    Rows are sorted by (segment, time); segment o is rows [seg_start[o], seg_end[o]).
    """
    out = np.full((query_ns.shape[0], seg_start.shape[0]), -1, dtype=np.int64)
    for o in range(seg_start.shape[0]):
        lo, hi = seg_start[o], seg_end[o]
        if hi <= lo:
            continue
        segment = times_ns[lo:hi]
        pos = np.searchsorted(segment, query_ns, side="right")
        for a in range(query_ns.shape[0]):
            if pos[a] > 0:
                out[a, o] = lo + pos[a] - 1
    return out


def _segments(instrument_ids: np.ndarray, chain_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) rows of each chain instrument in ``instrument_ids`` (sorted ascending)."""
    start = np.searchsorted(instrument_ids, chain_ids, side="left").astype(np.int64)
    end = np.searchsorted(instrument_ids, chain_ids, side="right").astype(np.int64)
    return start, end


def _sorted_events(frame: pl.DataFrame, chain_ids: np.ndarray) -> pl.DataFrame:
    """Rows of the chain's instruments sorted by instrument, ts_event, then feed order (ts_recv, sequence)."""
    keys = ["instrument_id", "ts_event"] + [c for c in ("ts_recv", "sequence") if c in frame.columns]
    return (
        frame.filter(pl.col("instrument_id").cast(pl.Int64).is_in(chain_ids.tolist()))
        .with_columns(pl.col("instrument_id").cast(pl.Int64))
        .sort(keys, maintain_order=True)
    )


@njit(cache=True)
def _option_grid(
    anchor_ns, futures_price, is_call, strike, expiration_ns, multiplier, open_interest, dealer_sign,
    mid_price, trade_price, rate, vol_low, vol_high,
):
    """Per (anchor, option): t (years), option price, source, sigma, gamma, GEX (bn USD / 1%), skip code."""
    n_a, n_o = mid_price.shape
    years = np.full((n_a, n_o), np.nan)
    price = np.full((n_a, n_o), np.nan)
    source = np.zeros((n_a, n_o), dtype=np.int8)
    sigma = np.full((n_a, n_o), np.nan)
    gamma = np.full((n_a, n_o), np.nan)
    gex = np.full((n_a, n_o), np.nan)
    skip = np.zeros((n_a, n_o), dtype=np.int8)
    for a in range(n_a):
        f = futures_price[a]
        for o in range(n_o):
            t = (expiration_ns[o] - anchor_ns[a]) / 1e9 / SECONDS_PER_YEAR
            years[a, o] = t
            if not t > 0.0:
                skip[a, o] = _EXPIRED
                continue
            if not f > 0.0:
                skip[a, o] = _NO_F
                continue
            if mid_price[a, o] > 0.0:
                price[a, o] = mid_price[a, o]
                source[a, o] = 1
            elif trade_price[a, o] > 0.0:
                price[a, o] = trade_price[a, o]
                source[a, o] = 2
            else:
                skip[a, o] = _NO_PRICE
                continue
            iv = black76_implied_vol_nb(price[a, o], is_call[o], f, strike[o], t, rate, vol_low, vol_high)
            if not iv > 0.0:
                skip[a, o] = _NO_IV
                continue
            sigma[a, o] = iv
            gamma[a, o] = black76_gamma_nb(f, strike[o], t, rate, iv)
            if not multiplier[o] > 0.0:
                skip[a, o] = _NO_MULT
                continue
            if not open_interest[o] >= 0.0:
                skip[a, o] = _NO_OI
                continue
            gex[a, o] = dealer_sign[o] * gamma[a, o] * open_interest[o] * multiplier[o] * f * f * ONE_PERCENT / USD_PER_GEX_UNIT
    return years, price, source, sigma, gamma, gex, skip


class _Snapshot:
    """Per (anchor, option) arrays for one session: the common core of the public functions."""

    def __init__(self, anchor_ns, chain, open_interest, option_bbo, option_trades, futures_1m, config):
        ids = chain["instrument_id"].cast(pl.Int64).to_numpy()
        self.open_ns = np.array(
            [int(et_to_utc(session_date_of(_ns_to_datetime(t), config), config.rth_open).timestamp()) * NS_PER_SECOND for t in anchor_ns],
            dtype=np.int64,
        )

        # F at T: the last 1-minute close at or before T.
        bars = futures_1m
        if "bar_minutes" in bars.columns:
            bars = bars.filter(pl.col("bar_minutes") == 1)
        bars = bars.filter(pl.col("close").is_not_null()).sort("ts_close")
        bar_ns = _epoch_ns(bars["ts_close"])
        bar_close = bars["close"].cast(pl.Float64).to_numpy()
        pos = np.searchsorted(bar_ns, anchor_ns, side="right") - 1
        self.futures_price = np.where(pos >= 0, bar_close[np.maximum(pos, 0)] if bar_close.size else np.nan, np.nan)

        # Quote mid at T (valid two-sided rows only).
        bbo = _sorted_events(
            option_bbo.filter(
                (pl.col("bid_px_00") > 0) & (pl.col("ask_px_00") > 0) & (pl.col("bid_px_00") <= pl.col("ask_px_00"))
                & pl.col("bid_px_00").is_finite() & pl.col("ask_px_00").is_finite()
            ),
            ids,
        )
        start, end = _segments(bbo["instrument_id"].to_numpy(), ids)
        idx = _last_index_at_or_before(start, end, _epoch_ns(bbo["ts_event"]), anchor_ns)
        mid = ((bbo["bid_px_00"].cast(pl.Float64) + bbo["ask_px_00"].cast(pl.Float64)) / 2.0).to_numpy()
        mid_price = np.where(idx >= 0, mid[np.maximum(idx, 0)] if mid.size else np.nan, np.nan)

        # Last trade at T, and the customers' net signed size over (09:30, T].
        trades = _sorted_events(
            option_trades.filter((pl.col("price") > 0) & (pl.col("size") > 0) & pl.col("price").is_finite()), ids
        )
        start, end = _segments(trades["instrument_id"].to_numpy(), ids)
        trade_ns = _epoch_ns(trades["ts_event"])
        idx = _last_index_at_or_before(start, end, trade_ns, anchor_ns)
        last_trade = trades["price"].cast(pl.Float64).to_numpy()
        trade_price = np.where(idx >= 0, last_trade[np.maximum(idx, 0)] if last_trade.size else np.nan, np.nan)
        signed = (
            trades["side"].replace_strict(SIDE_SIGN, default=0, return_dtype=pl.Int64) * trades["size"].cast(pl.Int64)
        ).to_numpy()
        cumulative = np.zeros(signed.shape[0] + 1, dtype=np.int64)
        np.cumsum(signed, out=cumulative[1:])
        # cumulative[upto_t] - cumulative[upto_open] = signed size of the segment's rows in (open, T].
        upto_t = idx + 1
        upto_open = _last_index_at_or_before(start, end, trade_ns, self.open_ns) + 1
        # A segment with no trade at or before an instant gives index -1 -> use its start instead.
        upto_t = np.where(idx >= 0, upto_t, start[None, :])
        upto_open = np.where(upto_open > 0, upto_open, start[None, :])
        upto_open = np.minimum(upto_open, upto_t)  # T before the open: empty window
        self.net_customer_size = cumulative[upto_t] - cumulative[upto_open]

        oi_map = open_interest.select(pl.col("instrument_id").cast(pl.Int64), pl.col("open_interest").cast(pl.Float64))
        oi = chain.select(pl.col("instrument_id").cast(pl.Int64)).join(oi_map, on="instrument_id", how="left")
        self.open_interest = oi["open_interest"].fill_null(np.nan).to_numpy()
        self.is_call = (chain["instrument_class"] == "C").to_numpy()
        self.strike = chain["strike_price"].cast(pl.Float64).to_numpy()
        self.multiplier = chain["multiplier"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.dealer_sign = np.where(self.is_call, config.dealer_call_sign, config.dealer_put_sign).astype(np.float64)
        expiration_ns = _epoch_ns(chain["expiration"])
        low, high = config.implied_vol_bounds
        (self.years, self.price, self.source, self.sigma, self.gamma, self.gex, self.skip) = _option_grid(
            anchor_ns, self.futures_price.astype(np.float64), self.is_call, self.strike, expiration_ns,
            self.multiplier, self.open_interest, self.dealer_sign, mid_price.astype(np.float64),
            trade_price.astype(np.float64), float(config.options_rate), float(low), float(high),
        )


def _ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(int(ns) // NS_PER_SECOND, tz=timezone.utc)


def _prepare_chain(chain: pl.DataFrame, open_interest: pl.DataFrame) -> pl.DataFrame:
    _require(chain, _CHAIN_COLUMNS, "chain")
    _require(open_interest, _OI_COLUMNS, "open_interest")
    for name, frame in (("chain", chain), ("open_interest", open_interest)):
        if frame["instrument_id"].is_duplicated().any():
            raise ValueError(f"{name} has duplicate instrument_id rows")
    if chain["instrument_class"].is_in(["C", "P"]).not_().any():
        raise ValueError("chain instrument_class must be 'C' or 'P'")
    # A fixed option order (strike, class, id) makes every per-anchor sum independent of input order.
    return chain.sort("strike_price", "instrument_class", "instrument_id")


def option_snapshots(
    anchors: pl.Series,
    chain: pl.DataFrame,
    open_interest: pl.DataFrame,
    option_bbo: pl.DataFrame,
    option_trades: pl.DataFrame,
    futures_1m: pl.DataFrame,
    config: SpymasterConfig,
) -> pl.DataFrame:
    """Every chain option's greeks and GEX at each anchor: the per-option layer under ``gamma_features``.

    Inputs as for ``gamma_features``; ``anchors`` is a Datetime("ns", "UTC") series (duplicates
    allowed, output is per distinct anchor). Output, one row per (distinct anchor, chain option),
    sorted by ts_event, strike_price, instrument_class, instrument_id: ts_event; instrument_id
    (UInt32); instrument_class; strike_price (points); multiplier (USD per point); open_interest
    (contracts, null when none was published); futures_price F_T (points); time_to_expiry_years;
    option_price (points); price_source ("mid" / "trade" / null); implied_vol (annualized);
    gamma (per point); gex_bn (billions of USD per 1% move); net_customer_size_since_open (Int64
    contracts: aggressor-B minus aggressor-A size of trades in (09:30 ET, T]); skip_reason (null
    when the option's GEX is used, else "expired", "no_futures_price", "no_price",
    "no_implied_vol", "no_open_interest" or "no_multiplier"). NaN values are nulls.
    Raises ValueError on missing columns or duplicate instrument ids.
    """
    chain = _prepare_chain(chain, open_interest)
    anchor_ns = np.unique(_epoch_ns(anchors.cast(pl.Datetime("ns", "UTC"))))
    snap = _snapshot(anchor_ns, chain, open_interest, option_bbo, option_trades, futures_1m, config)
    n_a, n_o = snap.years.shape

    def flat(values):
        return pl.Series(values.reshape(-1), nan_to_null=True) if values.dtype.kind == "f" else pl.Series(values.reshape(-1))

    frame = pl.DataFrame(
        {
            "ts_event": pl.Series(np.repeat(anchor_ns, n_o)).cast(pl.Datetime("ns", "UTC")),
            "instrument_id": np.tile(chain["instrument_id"].cast(pl.UInt32).to_numpy(), n_a),
            "instrument_class": np.tile(chain["instrument_class"].to_numpy(), n_a),
            "strike_price": np.tile(snap.strike, n_a),
            "multiplier": flat(np.tile(snap.multiplier, n_a)),
            "open_interest": flat(np.tile(snap.open_interest, n_a)),
            "futures_price": flat(np.repeat(snap.futures_price, n_o)),
            "time_to_expiry_years": flat(snap.years),
            "option_price": flat(snap.price),
            "price_source": pl.Series(snap.source.reshape(-1)).replace_strict(
                dict(enumerate(_SOURCE_NAMES)), return_dtype=pl.Utf8
            ),
            "implied_vol": flat(snap.sigma),
            "gamma": flat(snap.gamma),
            "gex_bn": flat(snap.gex),
            "net_customer_size_since_open": flat(snap.net_customer_size),
            "skip_reason": pl.Series(snap.skip.reshape(-1)).replace_strict(dict(enumerate(_SKIP_NAMES)), return_dtype=pl.Utf8),
        }
    )
    return frame.with_columns(
        pl.col("instrument_id").cast(pl.UInt32),
        pl.col("open_interest").cast(pl.Int64),
        pl.col("net_customer_size_since_open").cast(pl.Int64),
    )


def _snapshot(anchor_ns, chain, open_interest, option_bbo, option_trades, futures_1m, config) -> _Snapshot:
    _require(option_bbo, _BBO_COLUMNS, "option_bbo")
    _require(option_trades, _TRADE_COLUMNS, "option_trades")
    _require(futures_1m, _BAR_COLUMNS, "futures_1m")
    return _Snapshot(anchor_ns, chain, open_interest, option_bbo, option_trades, futures_1m, config)


# ----------------------------------------------------------------------------------------------
# Per-anchor aggregation


@njit(cache=True)
def _strike_interval(distinct_strikes, futures_price, n_nearest):
    """Most common positive spacing among the ``n_nearest`` distinct strikes nearest F (ties: the smallest)."""
    n = distinct_strikes.shape[0]
    if n < 2 or not futures_price > 0.0:
        return np.nan
    order = np.argsort(np.abs(distinct_strikes - futures_price), kind="mergesort")
    near = np.sort(distinct_strikes[order[: min(n_nearest, n)]])
    diffs = np.empty(near.shape[0] - 1)
    for i in range(diffs.shape[0]):
        # Round to micro-points so spacings that differ only by float noise count as equal.
        diffs[i] = round((near[i + 1] - near[i]) * 1e6) / 1e6
    diffs = np.sort(diffs)
    best, best_count, i = np.nan, 0, 0
    while i < diffs.shape[0]:
        j = i
        while j < diffs.shape[0] and diffs[j] == diffs[i]:
            j += 1
        if diffs[i] > 0.0 and j - i > best_count:
            best, best_count = diffs[i], j - i
        i = j
    return best


@njit(cache=True)
def _gex_at_price(s, strike, years, sigma, weight, sign, rate):
    """Total GEX (bn USD / 1%) if F were s, holding each option's sigma and t (sticky strike)."""
    total = 0.0
    for o in range(strike.shape[0]):
        if weight[o] > 0.0:
            total += sign[o] * black76_gamma_nb(s, strike[o], years[o], rate, sigma[o]) * weight[o]
    return total * s * s * ONE_PERCENT / USD_PER_GEX_UNIT


@njit(cache=True)
def _anchor_rows(
    row_anchor, level, atr, strike_of_option, distinct_strikes, is_call, strike, years, sigma, gamma, gex,
    open_interest, multiplier, dealer_sign, net_customer_size, futures_price, intervals, rate, n_nearest,
):
    """Feature matrix (n_rows, 2 * len(intervals) + 6) in ``gamma_columns`` order (NaN = null; the
    flip column is filled by ``_flip_distances``), the strike interval per anchor, and the flip
    profile's weights OI x multiplier per (anchor, option) (0 where the option has no GEX)."""
    n_rows = row_anchor.shape[0]
    n_a, n_o = gex.shape
    n_s = distinct_strikes.shape[0]
    n_k = intervals.shape[0]
    out = np.full((n_rows, 2 * n_k + 6), np.nan)
    # Per anchor: GEX per strike (all, calls, puts), totals, strike interval, flip profile.
    strike_gex = np.zeros((n_a, n_s))
    call_gex = np.zeros((n_a, n_s))
    put_gex = np.zeros((n_a, n_s))
    has_call = np.zeros((n_a, n_s), dtype=np.bool_)
    has_put = np.zeros((n_a, n_s), dtype=np.bool_)
    total = np.full(n_a, np.nan)
    dealer = np.full(n_a, np.nan)
    interval = np.full(n_a, np.nan)
    used = np.zeros(n_a, dtype=np.int64)
    for a in range(n_a):
        f = futures_price[a]
        live = np.zeros(n_s, dtype=np.bool_)
        n_gamma = 0
        traded = 0.0
        for o in range(n_o):
            if years[a, o] > 0.0:
                live[strike_of_option[o]] = True
            if gamma[a, o] > 0.0 and multiplier[o] > 0.0:
                n_gamma += 1
                if net_customer_size[a, o] != 0:
                    # Customers' net buying leaves dealers short that gamma: -size x gamma x mult x F^2 x 1%.
                    traded += -net_customer_size[a, o] * gamma[a, o] * multiplier[o] * f * f * ONE_PERCENT / USD_PER_GEX_UNIT
            if math.isnan(gex[a, o]):
                continue
            used[a] += 1
            s = strike_of_option[o]
            strike_gex[a, s] += gex[a, o]
            if is_call[o]:
                call_gex[a, s] += gex[a, o]
                has_call[a, s] = True
            else:
                put_gex[a, s] += gex[a, o]
                has_put[a, s] = True
        if n_gamma > 0:
            dealer[a] = traded
        if used[a] > 0:
            acc = 0.0
            for s in range(n_s):
                acc += strike_gex[a, s]
            total[a] = acc
        interval[a] = _strike_interval(distinct_strikes[live], f, n_nearest)

    # OI x multiplier of the options with a GEX: the weights of the flip profile.
    weight = np.zeros((n_a, n_o))
    for a in range(n_a):
        for o in range(n_o):
            if not math.isnan(gex[a, o]):
                weight[a, o] = open_interest[o] * multiplier[o]

    for r in range(n_rows):
        a = row_anchor[r]
        out[r, 2 * n_k + 5] = dealer[a]
        if used[a] == 0:
            continue
        out[r, 2 * n_k + 1] = total[a]
        lv = level[r]
        step = interval[a]
        # Bands: strikes in (level, level + k step] and [level - k step, level).
        if step > 0.0 and not math.isnan(lv):
            for ki in range(n_k):
                reach = intervals[ki] * step + STRIKE_TOLERANCE_POINTS
                above = 0.0
                below = 0.0
                for s in range(n_s):
                    gap = distinct_strikes[s] - lv
                    if STRIKE_TOLERANCE_POINTS < gap <= reach:
                        above += strike_gex[a, s]
                    elif STRIKE_TOLERANCE_POINTS < -gap <= reach:
                        below += strike_gex[a, s]
                out[r, ki] = above
                out[r, n_k + ki] = below
            above, below = out[r, n_k - 1], out[r, 2 * n_k - 1]
            scale = abs(above) + abs(below)
            if scale > 0.0:
                out[r, 2 * n_k] = (above - below) / scale
        if not atr[r] > 0.0:
            continue
        # Walls: the strike with the largest |call GEX| / |put GEX| (lowest strike on ties).
        best_call, best_put = 0.0, 0.0
        for s in range(n_s):
            if has_call[a, s] and abs(call_gex[a, s]) > best_call:
                best_call = abs(call_gex[a, s])
                out[r, 2 * n_k + 2] = (distinct_strikes[s] - lv) / atr[r]
            if has_put[a, s] and abs(put_gex[a, s]) > best_put:
                best_put = abs(put_gex[a, s])
                out[r, 2 * n_k + 3] = (distinct_strikes[s] - lv) / atr[r]
    return out, interval, weight


@njit(cache=True)
def _flip_distances(row_anchor, level, atr, interval, strike, years, sigma, weight, sign, rate):
    """(price where the sticky-strike GEX profile crosses zero nearest the level - level) / ATR, NaN if none."""
    n_rows = row_anchor.shape[0]
    n_a = interval.shape[0]
    out = np.full(n_rows, np.nan)
    for a in range(n_a):
        step = interval[a]
        lo, hi = np.inf, -np.inf
        for o in range(strike.shape[0]):
            if weight[a, o] > 0.0:
                lo = min(lo, strike[o])
                hi = max(hi, strike[o])
        if not (step > 0.0 and hi > lo):
            continue
        n_grid = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if n_grid < 2:
            continue
        grid = np.empty(n_grid)
        values = np.empty(n_grid)
        for j in range(n_grid):
            grid[j] = lo + j * step
            values[j] = _gex_at_price(grid[j], strike, years[a], sigma[a], weight[a], sign, rate)
        # Crossings: a strict sign change between neighbours (linear interpolation of the zero),
        # or an exact zero whose neighbours have strictly opposite signs.
        crossings = np.empty(2 * n_grid)
        n_cross = 0
        for j in range(n_grid - 1):
            if values[j] * values[j + 1] < 0.0:
                crossings[n_cross] = grid[j] + (grid[j + 1] - grid[j]) * values[j] / (values[j] - values[j + 1])
                n_cross += 1
            elif values[j] == 0.0 and j > 0 and values[j - 1] * values[j + 1] < 0.0:
                crossings[n_cross] = grid[j]
                n_cross += 1
        if n_cross == 0:
            continue
        for r in range(n_rows):
            if row_anchor[r] != a or not atr[r] > 0.0:
                continue
            best = np.inf
            for c in range(n_cross):
                if abs(crossings[c] - level[r]) < abs(best - level[r]):
                    best = crossings[c]
            out[r] = (best - level[r]) / atr[r]
    return out


def gamma_features(
    state: pl.DataFrame,
    chain: pl.DataFrame,
    open_interest: pl.DataFrame,
    option_bbo: pl.DataFrame,
    option_trades: pl.DataFrame,
    futures_1m: pl.DataFrame,
    config: SpymasterConfig,
) -> tuple[pl.DataFrame, bool]:
    """The ``gamma`` feature family at every state row: (frame, present).

    Inputs (one session):
    - state: silver_level_state rows with ts_event (anchor T, Datetime ns UTC), level_price
      (points), atr_points (points).
    - chain: bronze_options_definitions (instrument_id, instrument_class "C"/"P", strike_price
      points, expiration Datetime UTC, multiplier USD per point).
    - open_interest: bronze_options_open_interest (instrument_id, open_interest contracts),
      published before the session opened.
    - option_bbo: bronze_options_bbo (instrument_id, ts_event, bid_px_00, ask_px_00; ts_recv and
      sequence, when present, order rows with equal ts_event).
    - option_trades: bronze_options_trades (instrument_id, ts_event, price points, size
      contracts, side "B"/"A"/"N").
    - futures_1m: silver_bars (rows with bar_minutes == 1 are used when the column exists;
      ts_close, close).

    Output: ``feature_names.gamma_columns(config)`` as Float64 columns (null where undefined), the
    same height and row order as ``state``; present = True. When the chain is empty or none of
    its options has open interest, returns (an empty frame without columns, False): the family is
    absent for the day, never zeros. Per option values: module docstring and
    ``option_snapshots``. Per row (level L, ATR A, strike interval i):

    - gex_above_{k}strikes / gex_below_{k}strikes: sum of strike GEX over distinct strikes K with
      L < K <= L + k i / L - k i <= K < L (1e-9 point tolerance; a strike equal to L is in
      neither band); gex_asymmetry_{K}strikes for the largest k; gex_total: all strikes.
      Strike interval i: the most common positive difference between consecutive distinct
      strikes among the ``NEAR_MONEY_STRIKES`` (20) unexpired chain strikes nearest F_T (ties:
      the smaller spacing), so the fine grid near the money wins over the wide far wings.
    - call_wall_dist_atr / put_wall_dist_atr: (K* - L) / A, K* the strike whose call (put) GEX
      has the largest |GEX| (lowest strike on ties); null when every usable call (put) has GEX 0.
    - gamma_flip_dist_atr: total GEX G(S) = sum sign x gamma(S, K, t, sigma) x OI x mult x S^2 x
      1% / 1e9 with each option's sigma and t fixed at their values at T, evaluated on the grid
      S = K_min, K_min + i, ..., K_max (usable strikes); zero crossings by linear interpolation
      between grid points with strictly opposite signs (or an exact grid zero between opposite
      signs); the crossing nearest L gives (S0 - L) / A; null when G never changes sign.
    - dealer_gamma_traded_since_open: sum over options with a gamma at T (OI not needed) of
      -(B size - A size of its trades in (09:30 ET, T]) x gamma_T x mult x F_T^2 x 1% / 1e9
      (a customer buying leaves dealers short gamma, calls and puts alike; side N counts 0). The
      gamma is the option's gamma at T, the current exposure of today's traded positions.
    - Every column is null at an anchor where no option has a usable GEX (no F_T, or no option
      priced within the IV bounds); the dealer-traded column only needs a gamma.

    Raises ValueError on missing input columns, duplicate instrument ids or an instrument_class
    other than C/P.
    """
    columns = gamma_columns(config)
    _require(state, ("ts_event", "level_price", "atr_points"), "state")
    if chain.is_empty() or open_interest.is_empty():
        return pl.DataFrame(), False
    chain = _prepare_chain(chain, open_interest)
    oi_ids = open_interest.filter(pl.col("open_interest").is_not_null())["instrument_id"].cast(pl.Int64)
    if not chain["instrument_id"].cast(pl.Int64).is_in(oi_ids.to_list()).any():
        return pl.DataFrame(), False
    if state.is_empty():
        return pl.DataFrame({c: pl.Series([], dtype=pl.Float64) for c in columns}), True

    state_ns = _epoch_ns(state["ts_event"].cast(pl.Datetime("ns", "UTC")))
    anchor_ns = np.unique(state_ns)
    snap = _snapshot(anchor_ns, chain, open_interest, option_bbo, option_trades, futures_1m, config)
    row_anchor = np.searchsorted(anchor_ns, state_ns).astype(np.int64)
    level = state["level_price"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    atr = state["atr_points"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    distinct_strikes = np.unique(snap.strike)
    strike_of_option = np.searchsorted(distinct_strikes, snap.strike).astype(np.int64)
    intervals = np.asarray(config.gex_strike_intervals, dtype=np.float64)
    rate = float(config.options_rate)
    values, interval, weight = _anchor_rows(
        row_anchor, level, atr, strike_of_option, distinct_strikes, snap.is_call, snap.strike, snap.years,
        snap.sigma, snap.gamma, snap.gex, snap.open_interest, snap.multiplier, snap.dealer_sign,
        snap.net_customer_size, snap.futures_price, intervals, rate, NEAR_MONEY_STRIKES,
    )
    values[:, 2 * intervals.shape[0] + 4] = _flip_distances(
        row_anchor, level, atr, interval, snap.strike, snap.years, snap.sigma, weight, snap.dealer_sign, rate
    )
    frame = pl.DataFrame({name: pl.Series(name, values[:, i], nan_to_null=True) for i, name in enumerate(columns)})
    return frame, True


def gex_profile(
    snapshots: pl.DataFrame, prices: np.ndarray, config: SpymasterConfig
) -> np.ndarray:
    """Total GEX (billions of USD per 1% move) as a function of the futures price, at one anchor.

    ``snapshots``: ``option_snapshots`` rows of ONE anchor; ``prices``: hypothetical F values
    (points). Each option with a GEX at the anchor keeps its implied vol and time to expiry
    (sticky strike), as in ``gamma_flip_dist_atr``. Returns an array shaped like ``prices``.
    Raises ValueError when ``snapshots`` holds more than one anchor.
    """
    if snapshots["ts_event"].n_unique() > 1:
        raise ValueError("gex_profile takes the snapshots of one anchor")
    used = snapshots.filter(pl.col("gex_bn").is_not_null())
    strike = used["strike_price"].to_numpy()
    years = used["time_to_expiry_years"].to_numpy()
    sigma = used["implied_vol"].to_numpy()
    weight = (used["open_interest"].cast(pl.Float64) * used["multiplier"]).to_numpy()
    sign = np.where(used["instrument_class"] == "C", config.dealer_call_sign, config.dealer_put_sign).astype(np.float64)
    flat_prices = np.asarray(prices, dtype=np.float64).reshape(-1)
    out = np.array(
        [_gex_at_price(p, strike, years, sigma, weight, sign, float(config.options_rate)) for p in flat_prices]
    )
    return out.reshape(np.shape(prices))
