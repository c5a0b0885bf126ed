"""Generate one SYNTHETIC CME Globex ES session as Databento DBN v3 files, for benchmarks and scale tests.

THE OUTPUT IS SIMULATED, NOT MARKET DATA. Every file name begins ``synthetic-`` and a
``SYNTHETIC.txt`` beside the files records the generator, date, scale and seed. Never present it as
data, never put it in the committed sample.

Usage::

    python scripts/generate_session.py --date 2024-03-12 --out data/generated \\
        [--schemas mbo,mbp-10,trades,definition,ohlcv-1m] [--scale 1.0] [--seed 7] [--start-price 5150]

What is simulated (one session, 18:00 ET the day before to 17:00 ET, of the front-month ES contract
chosen by the quarterly cycle, e.g. ESM4 for 2024-03-12):

* A latent "fair" price path on a 1-second grid, in ticks of 0.25 points: a random walk with
  Student-t(4) shocks, volatility clustering (log-volatility follows an AR(1) with a ~30-minute
  memory), a time-of-day volatility curve and small jumps at 08:30 and 10:00 ET (data releases).
  At scale 1 a 1-minute bar in RTH ranges a few points, overnight about one point.
* An intraday intensity curve of book events per second: quiet overnight, a bump at the 18:00
  reopen, a pre-market bump at 08:30, U-shaped RTH activity with peaks at 09:30 and 16:00 ET,
  scaled by the same volatility factor (activity and volatility cluster together). Event counts per
  second are Poisson; event times are uniform within the second.
* An order-level book (Numba, :func:`simulate_events`): limit orders are added near the fair price
  (geometric distance in ticks), cancelled (half near the top, half uniformly over resting orders
  so orders left behind by a move decay), modified (size or price; a size increase or a price
  change loses queue priority, CME FIFO) and hit by marketable orders. The aggressor side leans
  toward the fair price, and a level the fair price has moved through ("stale") is cancelled and
  traded away preferentially, so the book follows the path. Aggressors sometimes sweep several
  levels.

How the schemas relate (the conventions of Databento's CME MBO, checked on the real ESH4 hour in
``shared/data/dbn/nautilus``):

* ``mbo``: the session starts with an ``R`` clear and a snapshot of ``A`` records (flags
  F_SNAPSHOT | F_BAD_TS_RECV, the last with F_LAST). A trade is, per price level consumed: one
  ``T`` (side = aggressor, order_id = the aggressor's), ``F`` fills of the resting orders in FIFO
  order (side = resting side), then ``C`` for each fully filled order and ``M`` (new size) for a
  partially filled one. As in Databento's data and its book-building example, ``T`` and ``F`` do
  not change the book; the ``C``/``M`` that follow do. A marketable remainder rests as an ``A`` at
  its limit price. Every event's last record carries F_LAST; the book is never crossed at any
  record (so never at an F_LAST state).
* ``mbp-10``: one record per mbo record except ``F`` and the snapshot, when it is a ``T`` or
  changes one of the 10 best levels of its side; ``action/side/price/size`` are the mbo record's,
  the levels are the book after it (for ``T``: the book the trade executed against). F_LAST on the
  last mbp-10 record of each event.
* ``trades``: the ``T`` records (depth 0: the generator only trades at the best level).
* ``ohlcv-1m``: aggregated from the trades per minute (ts_event = minute open).
* ``definition``: the ES future with the field values of Databento's real ES definitions
  (``shared/data/dbn/nautilus/definition-glbx-es-fut.dbn.zst``).

All files carry DBN v3 metadata: dataset GLBX.MDP3, stype_in raw_symbol, [start, end) = the
session, symbology mapping raw_symbol -> instrument_id. instrument_id is synthetic: YYYYMM of the
contract month (202406 for ESM4), as in scripts/lean_to_dbn.py; it is not a CME security id.
Records are encoded as NumPy structured arrays with the DBN layout
(:mod:`spymaster_resources.dbn_layout`) and streamed through zstandard in bounded chunks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time as wallclock
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Sequence
from zoneinfo import ZoneInfo

import numpy as np
import zstandard
from numba import njit

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from spymaster_resources import dbn_layout as L  # noqa: E402
from spymaster_core.config import SESSION_TZ, SpymasterConfig  # noqa: E402
from spymaster_assets.sessions import session_bounds_utc, trading_sessions  # noqa: E402

DATASET = "GLBX.MDP3"
PUBLISHER_ID = 1  # GLBX.MDP3 on CME Globex, as in Databento's files
ALL_SCHEMAS = ("mbo", "mbp-10", "trades", "definition", "ohlcv-1m")
MONTH_CODES = "FGHJKMNQUVXZ"
NY = ZoneInfo(SESSION_TZ)
NS = 1_000_000_000

#: Events (adds, cancels, modifies, marketable orders) per session at scale 1.0. Measured for
#: 2024-03-12, seed 7: 31.96 M mbo, 24.75 M mbp-10 records, 1.60 M trades (the issue asks for
#: >= 30 M, >= 15 M and >= 1.5 M); counts scale linearly with ``--scale``.
EVENTS_AT_SCALE_1 = 26_500_000
#: Per-second fair-price volatility (ticks) at intensity-curve value 1.0 (the 09:30 peak).
VOL_TICKS_PER_S_AT_PEAK = 1.0
#: Event mix (probabilities per event).
P_TRADE = 0.06
P_MODIFY = 0.16
#: Geometric parameter of the distance (ticks) from the fair price at which orders are placed.
P_PLACE = 0.16
#: Probability that an add on the fair side of a spread wider than one tick improves it by a tick
#: (liquidity providers close gaps fast: ES quotes a one-tick spread most of the time).
P_IMPROVE = 0.8
#: Fraction of cancels taken near the top (the rest pick a uniformly random resting order).
P_CANCEL_NEAR_TOP = 0.5
#: Resting orders per side the book reverts to, at intensity 0 and its increase at intensity 1.
DEPTH_ORDERS_BASE = 150.0
DEPTH_ORDERS_PEAK = 500.0

# ---------------------------------------------------------------------------------------------
# Numba book simulation
# ---------------------------------------------------------------------------------------------

# Rows of the mbo output buffer (int64) filled by the kernel.
M_TS_EVENT, M_TS_RECV, M_DELTA, M_SEQ, M_OID, M_PX, M_SIZE, M_FLAGS, M_ACTION, M_SIDE = range(10)
M_ROWS = 10
# Rows of the per-record 10-level book (int32): price index (-1 empty), size, count per side.
LV_BID_PX, LV_ASK_PX, LV_BID_SZ, LV_ASK_SZ, LV_BID_CT, LV_ASK_CT = range(6)
# Rows of the order pool (int64).
O_ID, O_PX, O_SIDE, O_SZ, O_PREV, O_NEXT = range(6)
# Scalar state.
S_BEST_BID, S_BEST_ASK, S_NEXT_ID, S_SEQ, S_LAST_RECV, S_LIVE_BID, S_LIVE_ASK, S_NFREE, S_HW = range(9)
S_LEN = 9

ACT_ADD, ACT_CANCEL, ACT_MODIFY, ACT_TRADE, ACT_FILL, ACT_CLEAR = 65, 67, 77, 84, 70, 82  # ASCII A C M T F R
SIDE_BID_CHAR, SIDE_ASK_CHAR, SIDE_NONE_CHAR = 66, 65, 78  # ASCII B A N
BID, ASK = 0, 1
#: Most resting orders one aggressor may fill (bounds the records of one event).
MAX_FILLS_PER_EVENT = 200
#: Most levels one aggressor may consume.
MAX_SWEEP_LEVELS = 8
#: Free room (records) the kernel keeps in its buffer before starting an event.
EVENT_MARGIN = 2 * MAX_FILLS_PER_EVENT + 3 * MAX_SWEEP_LEVELS + 16
#: Longest run of empty price levels scanned for the next level of a side.
SCAN_TICKS = 2000
FLAG_LAST = 128
FLAG_SNAPSHOT_RECORD = 32 | 8  # F_SNAPSHOT | F_BAD_TS_RECV, as on Databento's CME snapshot records


@njit(cache=True)
def seed_numba(seed: int) -> None:
    """Seed Numba's own random generator (separate from NumPy's) so a run is reproducible."""
    np.random.seed(seed)


@njit(cache=True)
def _refresh_best(side, lv_cnt, st):
    """Move the best price of ``side`` to the next non-empty level after it emptied."""
    n_px = lv_cnt.shape[1]
    if side == BID:
        if st[S_LIVE_BID] == 0:
            st[S_BEST_BID] = -1
            return
        p = st[S_BEST_BID]
        steps = 0
        while p >= 0 and lv_cnt[BID, p] == 0 and steps < n_px:
            p -= 1
            steps += 1
        st[S_BEST_BID] = p
    else:
        if st[S_LIVE_ASK] == 0:
            st[S_BEST_ASK] = n_px
            return
        p = st[S_BEST_ASK]
        steps = 0
        while p < n_px and lv_cnt[ASK, p] == 0 and steps < n_px:
            p += 1
            steps += 1
        st[S_BEST_ASK] = p


@njit(cache=True)
def _append(slot, lv_head, lv_tail, orders):
    """Append order ``slot`` at the tail of its level's FIFO queue."""
    side = orders[O_SIDE, slot]
    px = orders[O_PX, slot]
    tail = lv_tail[side, px]
    orders[O_PREV, slot] = tail
    orders[O_NEXT, slot] = -1
    if tail >= 0:
        orders[O_NEXT, tail] = slot
    else:
        lv_head[side, px] = slot
    lv_tail[side, px] = slot


@njit(cache=True)
def _unlink(slot, lv_head, lv_tail, orders):
    """Take order ``slot`` out of its level's queue (the pool slot stays allocated)."""
    side = orders[O_SIDE, slot]
    px = orders[O_PX, slot]
    prev = orders[O_PREV, slot]
    nxt = orders[O_NEXT, slot]
    if prev >= 0:
        orders[O_NEXT, prev] = nxt
    else:
        lv_head[side, px] = nxt
    if nxt >= 0:
        orders[O_PREV, nxt] = prev
    else:
        lv_tail[side, px] = prev


@njit(cache=True)
def _add_order(side, px, size, oid, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st):
    """Rest a new order; returns its pool slot, or -1 when the pool is full (the add is skipped)."""
    if st[S_NFREE] > 0:
        st[S_NFREE] -= 1
        slot = free[st[S_NFREE]]
    elif st[S_HW] < orders.shape[1]:
        slot = st[S_HW]
        st[S_HW] += 1
    else:
        return -1
    orders[O_ID, slot] = oid
    orders[O_PX, slot] = px
    orders[O_SIDE, slot] = side
    orders[O_SZ, slot] = size
    _append(slot, lv_head, lv_tail, orders)
    lv_qty[side, px] += size
    lv_cnt[side, px] += 1
    if side == BID:
        st[S_LIVE_BID] += 1
        if px > st[S_BEST_BID]:
            st[S_BEST_BID] = px
    else:
        st[S_LIVE_ASK] += 1
        if px < st[S_BEST_ASK]:
            st[S_BEST_ASK] = px
    return slot


@njit(cache=True)
def _remove_order(slot, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st):
    """Delete a resting order (cancel or full fill) and free its slot; keeps the best prices right."""
    side = orders[O_SIDE, slot]
    px = orders[O_PX, slot]
    _unlink(slot, lv_head, lv_tail, orders)
    lv_qty[side, px] -= orders[O_SZ, slot]
    lv_cnt[side, px] -= 1
    orders[O_SIDE, slot] = -1  # marks a free slot for the uniform cancel picker
    free[st[S_NFREE]] = slot
    st[S_NFREE] += 1
    if side == BID:
        st[S_LIVE_BID] -= 1
        if lv_cnt[BID, px] == 0 and px == st[S_BEST_BID]:
            _refresh_best(BID, lv_cnt, st)
    else:
        st[S_LIVE_ASK] -= 1
        if lv_cnt[ASK, px] == 0 and px == st[S_BEST_ASK]:
            _refresh_best(ASK, lv_cnt, st)


@njit(cache=True)
def _emit(m, n, ts_event, ts_recv, delta, seq, oid, px, size, flags, action, side_char):
    """Write one mbo record in row ``n`` of the buffer; returns ``n + 1``."""
    m[M_TS_EVENT, n] = ts_event
    m[M_TS_RECV, n] = ts_recv
    m[M_DELTA, n] = delta
    m[M_SEQ, n] = seq
    m[M_OID, n] = oid
    m[M_PX, n] = px
    m[M_SIZE, n] = size
    m[M_FLAGS, n] = flags
    m[M_ACTION, n] = action
    m[M_SIDE, n] = side_char
    return n + 1


@njit(cache=True)
def _side_char(side):
    return SIDE_BID_CHAR if side == BID else SIDE_ASK_CHAR


@njit(cache=True)
def _fill_levels(row, lv_qty, lv_cnt, st, lv):
    """Write the 10 best levels of each side into ``lv[:, row, :]``; returns the 10th bid and ask price indexes.

    An absent 10th level is returned as -1 (bid) or a huge index (ask), so any price qualifies.
    """
    n_px = lv_qty.shape[1]
    p = st[S_BEST_BID]
    k = 0
    steps = 0
    while k < 10 and p >= 0 and steps < SCAN_TICKS:
        if lv_cnt[BID, p] > 0:
            lv[LV_BID_PX, row, k] = p
            lv[LV_BID_SZ, row, k] = lv_qty[BID, p]
            lv[LV_BID_CT, row, k] = lv_cnt[BID, p]
            k += 1
        p -= 1
        steps += 1
    bid10 = lv[LV_BID_PX, row, 9] if k == 10 else -1
    while k < 10:
        lv[LV_BID_PX, row, k] = -1
        lv[LV_BID_SZ, row, k] = 0
        lv[LV_BID_CT, row, k] = 0
        k += 1
    p = st[S_BEST_ASK]
    k = 0
    steps = 0
    while k < 10 and p < n_px and steps < SCAN_TICKS:
        if lv_cnt[ASK, p] > 0:
            lv[LV_ASK_PX, row, k] = p
            lv[LV_ASK_SZ, row, k] = lv_qty[ASK, p]
            lv[LV_ASK_CT, row, k] = lv_cnt[ASK, p]
            k += 1
        p += 1
        steps += 1
    ask10 = lv[LV_ASK_PX, row, 9] if k == 10 else 1 << 40
    while k < 10:
        lv[LV_ASK_PX, row, k] = -1
        lv[LV_ASK_SZ, row, k] = 0
        lv[LV_ASK_CT, row, k] = 0
        k += 1
    return bid10, ask10


@njit(cache=True)
def _emit_mbp(n_p, mbo_row, side, px, px_old, force, lv_qty, lv_cnt, st, p_src, p_flags, lv):
    """Record the book after mbo row ``mbo_row`` when it is a trade (``force``) or touched the top 10 of ``side``.

    ``px_old`` is the previous price of a price-changing modify (-1 otherwise). Returns the new count.
    """
    bid10, ask10 = _fill_levels(n_p, lv_qty, lv_cnt, st, lv)
    keep = force
    if not keep:
        if side == BID:
            keep = px >= bid10 or (px_old >= 0 and px_old >= bid10)
        else:
            keep = px <= ask10 or (px_old >= 0 and px_old <= ask10)
    if keep:
        p_src[n_p] = mbo_row
        p_flags[n_p] = 0
        return n_p + 1
    return n_p


@njit(cache=True)
def _order_size(big):
    """Resting or aggressor order size in contracts: many 1-lots, a log-normal tail (x3 when ``big``)."""
    if np.random.random() < 0.4:
        return 1
    s = int(np.exp(np.random.normal(0.6, 0.9))) + 1
    if big:
        s *= 3
    return min(s, 500)


@njit(cache=True)
def _pick_near_top(side, st, lv_cnt, p_geo):
    """A non-empty level of ``side`` at a geometric distance from the best (-1 when the side is empty)."""
    n_px = lv_cnt.shape[1]
    best = st[S_BEST_BID] if side == BID else st[S_BEST_ASK]
    if best < 0 or best >= n_px:
        return -1
    d = np.random.geometric(p_geo) - 1
    step = -1 if side == BID else 1
    p = best + step * d
    if p < 0 or p >= n_px:
        p = best
    # Walk back toward the best until a non-empty level (the best itself is non-empty).
    while lv_cnt[side, p] == 0:
        p -= step
    return p


@njit(cache=True)
def _pick_in_level(side, px, lv_cnt, lv_head, orders):
    """A uniformly chosen order of level (side, px)."""
    k = np.random.randint(0, lv_cnt[side, px])
    slot = lv_head[side, px]
    for _ in range(k):
        slot = orders[O_NEXT, slot]
    return slot


@njit(cache=True)
def _trade(buy, size, limit, rest, t, recv, delta, m, n_m, n_p,
           lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st, p_src, p_flags, lv):
    """One marketable order: consume levels up to ``limit`` (price index) FIFO, then rest the remainder when ``rest``.

    Per level: T (aggressor side and order id), F per resting order, then C (fully filled) / M
    (partially filled, new size). Returns (n_m, n_p).
    """
    n_px = lv_qty.shape[1]
    rside = ASK if buy else BID
    agg_char = SIDE_BID_CHAR if buy else SIDE_ASK_CHAR
    res_char = SIDE_ASK_CHAR if buy else SIDE_BID_CHAR
    agg_id = st[S_NEXT_ID]
    st[S_NEXT_ID] += 1
    remaining = size
    fills = 0
    levels = 0
    while remaining > 0 and fills < MAX_FILLS_PER_EVENT and levels < MAX_SWEEP_LEVELS:
        p = st[S_BEST_ASK] if buy else st[S_BEST_BID]
        if p < 0 or p >= n_px or (buy and p > limit) or ((not buy) and p < limit):
            break
        take = min(remaining, lv_qty[rside, p])
        # Do not split the level past the fill cap: take only what the first orders hold.
        slot = lv_head[rside, p]
        acc = 0
        k = 0
        while slot >= 0 and acc < take and fills + k < MAX_FILLS_PER_EVENT:
            acc += orders[O_SZ, slot]
            k += 1
            slot = orders[O_NEXT, slot]
        take = min(take, acc)
        st[S_SEQ] += 1
        seq = st[S_SEQ]
        n_m = _emit(m, n_m, t, recv, delta, seq, agg_id, p, take, 0, ACT_TRADE, agg_char)
        n_p = _emit_mbp(n_p, n_m - 1, rside, p, -1, True, lv_qty, lv_cnt, st, p_src, p_flags, lv)
        left = take
        slot = lv_head[rside, p]
        while left > 0:
            f = min(left, orders[O_SZ, slot])
            n_m = _emit(m, n_m, t, recv, delta, seq, orders[O_ID, slot], p, f, 0, ACT_FILL, res_char)
            left -= f
            slot = orders[O_NEXT, slot]
            fills += 1
        st[S_SEQ] += 1
        seq = st[S_SEQ]
        left = take
        slot = lv_head[rside, p]
        while left > 0:
            nxt = orders[O_NEXT, slot]
            f = min(left, orders[O_SZ, slot])
            oid = orders[O_ID, slot]
            if f == orders[O_SZ, slot]:
                _remove_order(slot, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st)
                n_m = _emit(m, n_m, t, recv, delta, seq, oid, p, f, 0, ACT_CANCEL, res_char)
            else:
                orders[O_SZ, slot] -= f
                lv_qty[rside, p] -= f
                n_m = _emit(m, n_m, t, recv, delta, seq, oid, p, orders[O_SZ, slot], 0, ACT_MODIFY, res_char)
            n_p = _emit_mbp(n_p, n_m - 1, rside, p, -1, False, lv_qty, lv_cnt, st, p_src, p_flags, lv)
            left -= f
            slot = nxt
        remaining -= take
        levels += 1
    if remaining > 0 and rest and 0 <= limit < n_px:
        # The remainder rests only where it does not cross the other side.
        ok = limit < st[S_BEST_ASK] if buy else limit > st[S_BEST_BID]
        if ok:
            aside = BID if buy else ASK
            if _add_order(aside, limit, remaining, agg_id, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st) >= 0:
                st[S_SEQ] += 1
                n_m = _emit(m, n_m, t, recv, delta, st[S_SEQ], agg_id, limit, remaining, 0, ACT_ADD, agg_char)
                n_p = _emit_mbp(n_p, n_m - 1, aside, limit, -1, False, lv_qty, lv_cnt, st, p_src, p_flags, lv)
    return n_m, n_p


@njit(cache=True)
def build_snapshot(fair, t0, depth_orders, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st, m):
    """The opening book: an R clear then snapshot adds (flags F_SNAPSHOT|F_BAD_TS_RECV, last + F_LAST).

    ``depth_orders`` resting orders per side around the fair price (tick index ``fair``), placed at
    a geometric distance from it. All records are stamped ``t0`` (session start, ns). Returns the
    number of mbo rows written into ``m``.
    """
    n = 0
    st[S_SEQ] += 1
    n = _emit(m, n, t0, t0, 0, st[S_SEQ], 0, -1, 0, FLAG_SNAPSHOT_RECORD, ACT_CLEAR, SIDE_NONE_CHAR)
    x = int(np.floor(fair))
    for side in range(2):
        for _ in range(depth_orders):
            d = np.random.geometric(P_PLACE) - 1
            px = x - d if side == BID else x + 1 + d
            oid = st[S_NEXT_ID]
            st[S_NEXT_ID] += 1
            size = _order_size(False)
            if _add_order(side, px, size, oid, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st) >= 0:
                n = _emit(m, n, t0, t0, 0, st[S_SEQ], oid, px, size, FLAG_SNAPSHOT_RECORD, ACT_ADD, _side_char(side))
    m[M_FLAGS, n - 1] |= FLAG_LAST
    st[S_LAST_RECV] = t0
    return n


@njit(cache=True)
def simulate_events(ev_ts, ev_fair, ev_depth, ev_start, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st,
                    m, p_src, p_flags, lv):
    """Run events ``ev_start..`` of a time slice against the book until the buffers are nearly full.

    Args:
        ev_ts: event times, ns since the epoch (UTC), non-decreasing.
        ev_fair: fair price at each event, in tick-index units (float).
        ev_depth: resting orders per side the book reverts to at each event.
        ev_start: first event to run.
        lv_*, orders, free, st: the book (price-indexed levels, order pool, scalar state), updated in place.
        m: int64[M_ROWS, cap] mbo output rows; p_src/p_flags/lv: mbp-10 rows (source mbo row,
            flags, 10 levels).
    Returns:
        (next event index, mbo rows written, mbp-10 rows written).
    """
    n_px = lv_qty.shape[1]
    cap = m.shape[1]
    n_m = 0
    n_p = 0
    i = ev_start
    while i < ev_ts.shape[0] and n_m + EVENT_MARGIN <= cap:
        t = ev_ts[i]
        fair = ev_fair[i]
        x = int(np.floor(fair))  # desired best bid; desired best ask is x + 1
        # Feed latency ~ 60-400 us, ts_recv never goes backwards (files are in ts_recv order).
        recv = max(st[S_LAST_RECV], t + 60_000 + int(np.random.exponential(90_000.0)))
        st[S_LAST_RECV] = recv
        delta = 9_000 + int(np.random.exponential(6_000.0))
        m0 = n_m
        p0 = n_p
        bb = st[S_BEST_BID]
        ba = st[S_BEST_ASK]
        stale_ask = ba < n_px and ba <= x  # the fair price is at or above the ask
        stale_bid = bb >= 0 and bb >= x + 1  # the fair price is below the bid
        u = np.random.random()
        if u < P_TRADE:
            if stale_ask:
                buy = np.random.random() < 0.9
            elif stale_bid:
                buy = np.random.random() < 0.1
            else:
                mid = 0.5 * (bb + ba) if (bb >= 0 and ba < n_px) else fair
                lean = min(max(0.5 + 0.3 * (fair - mid), 0.2), 0.8)
                buy = np.random.random() < lean
            best_opp = ba if buy else bb
            if 0 <= best_opp < n_px:
                stale = stale_ask if buy else stale_bid
                r = np.random.random()
                if stale and r < 0.3:
                    # Take every level the fair price has moved through in one sweep.
                    limit = x if buy else x + 1
                    size = 0
                    p = best_opp
                    step = 1 if buy else -1
                    for _ in range(MAX_SWEEP_LEVELS):
                        if (buy and p > limit) or ((not buy) and p < limit) or p < 0 or p >= n_px:
                            break
                        size += lv_qty[ASK if buy else BID, p]
                        p += step
                    rest = False
                elif r < 0.003:
                    # A momentum sweep through 3-5 levels.
                    k = 2 + np.random.randint(0, 3)
                    limit = best_opp + k if buy else best_opp - k
                    size = 0
                    p = best_opp
                    for _ in range(k + 1):
                        if 0 <= p < n_px:
                            size += lv_qty[ASK if buy else BID, p]
                        p += 1 if buy else -1
                    rest = False
                else:
                    limit = best_opp
                    size = _order_size(stale)
                    rest = np.random.random() < 0.5
                if size > 0:
                    n_m, n_p = _trade(buy, size, limit, rest, t, recv, delta, m, n_m, n_p,
                                      lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st, p_src, p_flags, lv)
        elif u < P_TRADE + P_MODIFY:
            side = BID if np.random.random() < 0.5 else ASK
            px = _pick_near_top(side, st, lv_cnt, P_PLACE)
            if px >= 0:
                slot = _pick_in_level(side, px, lv_cnt, lv_head, orders)
                old = orders[O_SZ, slot]
                new_px = px
                if np.random.random() < 0.55:
                    new_sz = old + np.random.randint(-3, 4)
                    if new_sz < 1 or new_sz == old:
                        new_sz = old + 1
                else:
                    new_sz = old
                    shift = 1 + np.random.randint(0, 2)
                    new_px = px + shift if np.random.random() < 0.5 else px - shift
                    # Never cross the other side; stay on the grid.
                    if side == BID:
                        new_px = min(new_px, st[S_BEST_ASK] - 1)
                    else:
                        new_px = max(new_px, st[S_BEST_BID] + 1)
                    new_px = min(max(new_px, 0), n_px - 1)
                    if new_px == px:
                        new_sz = old + 1
                oid = orders[O_ID, slot]
                st[S_SEQ] += 1
                action = ACT_MODIFY
                if new_px == px and new_sz < old:
                    # A size decrease keeps queue priority (CME).
                    orders[O_SZ, slot] = new_sz
                    lv_qty[side, px] -= old - new_sz
                elif new_px == px:
                    # A size increase loses it: back of the queue.
                    _unlink(slot, lv_head, lv_tail, orders)
                    orders[O_SZ, slot] = new_sz
                    lv_qty[side, px] += new_sz - old
                    _append(slot, lv_head, lv_tail, orders)
                else:
                    _remove_order(slot, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st)
                    if _add_order(side, new_px, new_sz, oid, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st) < 0:
                        action = ACT_CANCEL  # order pool full: the order leaves the book instead
                        new_px = px
                        new_sz = old
                n_m = _emit(m, n_m, t, recv, delta, st[S_SEQ], oid, new_px, new_sz, 0, action, _side_char(side))
                n_p = _emit_mbp(n_p, n_m - 1, side, new_px, px if new_px != px else -1, False,
                                lv_qty, lv_cnt, st, p_src, p_flags, lv)
        else:
            side = BID if np.random.random() < 0.5 else ASK
            live = st[S_LIVE_BID] if side == BID else st[S_LIVE_ASK]
            target = ev_depth[i]
            # Adds and cancels balance around `target` resting orders per side.
            if live == 0 or np.random.random() < target / (target + live):
                d = np.random.geometric(P_PLACE) - 1
                bb = st[S_BEST_BID]
                ba = st[S_BEST_ASK]
                wide = bb >= 0 and ba < n_px and ba - bb > 1
                if side == BID:
                    px = x - d
                    if wide and bb + 1 <= x and np.random.random() < P_IMPROVE:
                        px = bb + 1  # close a gap in the spread on the fair side
                    if ba < n_px:
                        px = min(px, ba - 1)
                else:
                    px = x + 1 + d
                    if wide and ba - 1 >= x + 1 and np.random.random() < P_IMPROVE:
                        px = ba - 1
                    if bb >= 0:
                        px = max(px, bb + 1)
                if 0 <= px < n_px:
                    oid = st[S_NEXT_ID]
                    size = _order_size(False)
                    if _add_order(side, px, size, oid, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st) >= 0:
                        st[S_NEXT_ID] += 1
                        st[S_SEQ] += 1
                        n_m = _emit(m, n_m, t, recv, delta, st[S_SEQ], oid, px, size, 0, ACT_ADD, _side_char(side))
                        n_p = _emit_mbp(n_p, n_m - 1, side, px, -1, False, lv_qty, lv_cnt, st, p_src, p_flags, lv)
            else:
                slot = -1
                stale = stale_bid if side == BID else stale_ask
                if stale and np.random.random() < 0.6:
                    px = st[S_BEST_BID] if side == BID else st[S_BEST_ASK]
                    slot = _pick_in_level(side, px, lv_cnt, lv_head, orders)
                elif np.random.random() < P_CANCEL_NEAR_TOP:
                    px = _pick_near_top(side, st, lv_cnt, P_PLACE)
                    if px >= 0:
                        slot = _pick_in_level(side, px, lv_cnt, lv_head, orders)
                else:
                    # Uniform over resting orders of this side: stale far orders decay too.
                    for _ in range(64):
                        cand = np.random.randint(0, st[S_HW])
                        if orders[O_SIDE, cand] == side:
                            slot = cand
                            break
                if slot >= 0:
                    px = orders[O_PX, slot]
                    oid = orders[O_ID, slot]
                    size = orders[O_SZ, slot]
                    _remove_order(slot, lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st)
                    st[S_SEQ] += 1
                    n_m = _emit(m, n_m, t, recv, delta, st[S_SEQ], oid, px, size, 0, ACT_CANCEL, _side_char(side))
                    n_p = _emit_mbp(n_p, n_m - 1, side, px, -1, False, lv_qty, lv_cnt, st, p_src, p_flags, lv)
        if n_m > m0:
            m[M_FLAGS, n_m - 1] |= FLAG_LAST
        if n_p > p0:
            p_flags[n_p - 1] |= FLAG_LAST
        i += 1
    return i, n_m, n_p


# ---------------------------------------------------------------------------------------------
# Contract calendar
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """A futures contract (quarterly ES by default): its month, raw symbol, synthetic instrument id and expiration."""

    year: int
    month: int
    root: str = "ES"

    @property
    def raw_symbol(self) -> str:
        """CME Globex symbol with a one-digit year, e.g. ``ESM4``, ``CLX3``."""
        return f"{self.root}{MONTH_CODES[self.month - 1]}{self.year % 10}"

    @property
    def instrument_id(self) -> int:
        """Synthetic, stable instrument id ``YYYYMM`` (scripts/lean_to_dbn.py convention; not a CME id)."""
        return self.year * 100 + self.month

    @property
    def expiration(self) -> datetime:
        """ES and other quarterlies: 09:30 America/New_York (13:30 UTC in summer time) on the third Friday
        of the contract month. CL: 14:30 New York three business days (weekdays here) before the 25th of
        the month before the contract month (NYMEX WTI: trading terminates 3 business days before the
        25th calendar day of the month prior to the contract month)."""
        if self.root == "CL":
            prior = date(self.year - (self.month == 1), (self.month - 2) % 12 + 1, 25)
            day, left = prior, 3
            while left:
                day -= timedelta(days=1)
                left -= day.weekday() < 5
            return datetime.combine(day, time(14, 30), tzinfo=NY).astimezone(timezone.utc)
        return datetime.combine(third_friday(self.year, self.month), time(9, 30), tzinfo=NY).astimezone(timezone.utc)


def third_friday(year: int, month: int) -> date:
    """The third Friday of ``month`` in ``year`` (CME equity index futures expiry day)."""
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


#: Volume moves to the next contract on the roll date, 8 days before expiration (the Thursday before).
ROLL_DAYS_BEFORE_EXPIRY = 8


def front_month(session_date: date, root: str = "ES", months: str = "HMUZ") -> Contract:
    """The contract of ``root`` that is front month on ``session_date``: the nearest listed month (month
    codes ``months``) whose roll date (expiration - 8 days: CME's customary roll Thursday for the
    quarterlies, about a week before a CL contract's last trade) is after the date.

    2024-03-12 -> ESM4 (ESH4 expires 2024-03-15 and rolled on 2024-03-07); CL rolls every month
    (2013-10-08 -> CLX3, 2013-10-14 -> CLZ3: CLX3 expires 2013-10-22).
    """
    year, month = session_date.year, session_date.month
    for _ in range(40):
        if MONTH_CODES[month - 1] in months:
            contract = Contract(year, month, root)
            if contract.expiration.date() - timedelta(days=ROLL_DAYS_BEFORE_EXPIRY) > session_date:
                return contract
        month += 1
        if month > 12:
            year, month = year + 1, 1
    raise ValueError(f"no {root} contract month in {months!r} after {session_date}")


# ---------------------------------------------------------------------------------------------
# Price path and intensity
# ---------------------------------------------------------------------------------------------


def intensity_shape(hours_et: np.ndarray) -> np.ndarray:
    """Relative book-event intensity at New York wall-clock ``hours_et`` (e.g. 9.5 = 09:30), peak ~1.

    Quiet overnight (0.06), a bump at the 18:00 reopen, Europe from 03:00 (0.12), a pre-market bump
    at 08:30 (data releases), U-shaped RTH (09:30 peak ~1, midday ~0.35, rising to ~0.9 at the
    16:00 cash close), thin after 16:15. A stylised curve after the shape of ES volume profiles;
    values are relative, not calibrated to a particular day.
    """
    h = np.asarray(hours_et, dtype=np.float64)
    evening = h >= 17.5  # 18:00-24:00 belongs to the session's first part
    s = np.full(h.shape, 0.06)
    s = np.where(evening, 0.06 + 0.25 * np.exp(-np.clip(h - 18.0, 0, None) / 0.3), s)
    s = np.where(~evening & (h >= 3.0), 0.12, s)
    s = np.where(~evening & (h >= 7.0), 0.18, s)
    pre = ~evening & (h >= 8.5) & (h < 9.5)
    s = np.where(pre, 0.25 + 0.55 * np.exp(-(h - 8.5) / 0.12), s)
    rth = ~evening & (h >= 9.5) & (h < 16.0)
    s = np.where(rth, 0.35 + 0.65 * np.exp(-(h - 9.5) / 0.45) + 0.55 * np.exp(-(16.0 - h) / 0.4), s)
    post = ~evening & (h >= 16.0) & (h < 17.0)
    s = np.where(post, 0.08 + 0.6 * np.exp(-(h - 16.0) / 0.12), s)
    return s


@dataclass
class SessionPath:
    """Per-second inputs of the simulation (arrays of length ``n_seconds``, second ``k`` = [start + k s, start + (k+1) s))."""

    start_ns: int
    fair_ticks: np.ndarray  # fair price at each second's start (length n_seconds + 1), tick index units
    events: np.ndarray  # events in each second (int64)
    depth_orders: np.ndarray  # resting orders per side the book reverts to (float64)


def session_path(start: datetime, end: datetime, scale: float, start_tick: float, rng: np.random.Generator) -> SessionPath:
    """Draw the fair-price path and the per-second event counts of a session ``[start, end)``.

    Volatility per second (ticks) = VOL_TICKS_PER_S_AT_PEAK * shape**0.6 * exp(h - var/2), with h an
    AR(1) log-volatility (phi = exp(-1/1800): ~30-minute memory, stationary sd 0.35) -- a discrete
    stochastic-volatility model (Taylor 1986) giving volatility clustering; shocks are Student-t
    with 4 degrees of freedom scaled to unit variance (fat tails). Event intensity is proportional
    to shape * exp(h / 2) and normalised so the session expects ``EVENTS_AT_SCALE_1 * scale`` events.
    """
    n = int((end - start).total_seconds())
    start_ns = int(start.timestamp()) * NS
    local = [start.astimezone(NY) + timedelta(seconds=int(k)) for k in range(0, n, 60)]
    hours_min = np.array([t.hour + t.minute / 60.0 for t in local])
    hours = np.repeat(hours_min, 60)[:n] + (np.arange(n) % 60) / 3600.0
    shape = intensity_shape(hours)
    phi, sd = np.exp(-1.0 / 1800.0), 0.35
    innov = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
    from scipy.signal import lfilter

    h = lfilter([1.0], [1.0, -phi], innov)  # h_k = phi h_{k-1} + e_k
    h += rng.normal(0.0, sd) * phi ** np.arange(1, n + 1)  # start in the stationary law
    vol = VOL_TICKS_PER_S_AT_PEAK * shape**0.6 * np.exp(h - sd**2 / 2)
    shocks = rng.standard_t(4, n) / np.sqrt(2.0)  # t(4) has variance 2
    steps = vol * shocks
    # Data-release jumps at 08:30 and 10:00 ET: a few points either way.
    for hh in (8.5, 10.0):
        k = int(np.searchsorted(hours, hh))
        if 0 < k < n and abs(hours[k] - hh) < 1e-6:
            steps[k] += rng.normal(0.0, 8.0)
    fair = start_tick + np.concatenate([[0.0], np.cumsum(steps)])
    weight = shape * np.exp(h / 2)
    lam = EVENTS_AT_SCALE_1 * scale * weight / weight.sum()
    events = rng.poisson(lam).astype(np.int64)
    depth = DEPTH_ORDERS_BASE + DEPTH_ORDERS_PEAK * np.minimum(shape, 1.0)
    return SessionPath(start_ns, fair, events, depth)


# ---------------------------------------------------------------------------------------------
# DBN writing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass(frozen=True)
class _Mapping:
    raw_symbol: str
    intervals: list


def build_metadata(schema: str, contract: Contract, start: datetime, end: datetime):
    """DBN v3 metadata for one schema of the session: dataset GLBX.MDP3, raw_symbol -> instrument_id mapping."""
    return session_metadata(schema, [(contract.raw_symbol, contract.instrument_id)], start, end)


def session_metadata(schema: str, instruments: list[tuple[str, int]], start: datetime, end: datetime):
    """DBN v3 metadata of GLBX.MDP3 ``schema`` over ``[start, end)``, mapping each (raw_symbol, instrument_id).

    The mapping intervals cover the UTC days from ``start`` to the day after the last instant, as
    Databento writes them. Raises KeyError for a schema the generators do not write.
    """
    import databento_dbn as dbn

    schemas = {
        "mbo": dbn.Schema.MBO, "mbp-10": dbn.Schema.MBP_10, "trades": dbn.Schema.TRADES,
        "definition": dbn.Schema.DEFINITION, "ohlcv-1m": dbn.Schema.OHLCV_1M,
        "statistics": dbn.Schema.STATISTICS, "bbo-1m": dbn.Schema.BBO_1M,
    }
    first_day = start.astimezone(timezone.utc).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(timezone.utc).date() + timedelta(days=1)
    return dbn.Metadata(
        dataset=DATASET,
        start=int(start.timestamp()) * NS,
        end=int(end.timestamp()) * NS,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schemas[schema],
        symbols=[symbol for symbol, _ in instruments],
        partial=[],
        not_found=[],
        mappings=[_Mapping(symbol, [_Interval(first_day, last_day, str(iid))]) for symbol, iid in instruments],
        ts_out=False,
        version=3,
    )


class DbnZstWriter:
    """Stream ``metadata`` then record arrays to ``path`` through zstandard, renaming a temp file at the end."""

    def __init__(self, path: Path, metadata, level: int = 3):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self._file = open(self.tmp, "wb")
        self._zst = zstandard.ZstdCompressor(level=level).stream_writer(self._file, closefd=False)
        self._zst.write(metadata.encode())
        self.records = 0

    def write(self, records: np.ndarray | bytes) -> None:
        """Append encoded records (a DBN-layout structured array, or raw record bytes)."""
        if isinstance(records, np.ndarray):
            self.records += len(records)
            self._zst.write(records.data if records.flags.c_contiguous else records.tobytes())
        else:
            self.records += 1
            self._zst.write(records)

    def close(self) -> None:
        """Finish the zstd frame and move the file into place."""
        self._zst.flush(zstandard.FLUSH_FRAME)
        self._zst.close()
        self._file.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._zst.close()
            self._file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def definition_bytes(contract: Contract, ts_ns: int, reference_price: float, tick_size: float = 0.25, multiplier: float = 50.0) -> bytes:
    """The outright definition record (v3) with the values of Databento's real ES definitions.

    Contract-independent fields (display factor 0.01, market depth 10, segment 64, ...) are copied
    from the real ESM3/ESM4 definitions in ``shared/data``; the tick (``tick_size``, price units),
    multiplier (``unit_of_measure_qty``) and root are the product's (ES: 0.25 and 50). Price limits are
    +-7 % of ``reference_price`` (CME's first equity limit band), rounded to a tick; activation is the
    expiration 27 months earlier (ESM4: 2022-03-18 13:30 UTC, as in the real record).
    """
    import databento_dbn as dbn
    from databento_dbn import v3

    tick = int(round(tick_size * L.PRICE_SCALE))
    ref = int(round(reference_price / tick_size)) * tick
    band = int(round(reference_price * 0.07 / tick_size)) * tick
    months = contract.year * 12 + contract.month - 1 - 27
    activation = Contract(months // 12, months % 12 + 1, contract.root).expiration
    return bytes(v3.InstrumentDefMsg(
        publisher_id=PUBLISHER_ID, instrument_id=contract.instrument_id, ts_event=ts_ns, ts_recv=ts_ns,
        raw_symbol=contract.raw_symbol, security_update_action=dbn.SecurityUpdateAction.ADD,
        instrument_class=dbn.InstrumentClass.FUTURE, min_price_increment=tick, display_factor=10_000_000,
        expiration=int(contract.expiration.timestamp()) * NS, activation=int(activation.timestamp()) * NS,
        high_limit_price=ref + band, low_limit_price=ref - band, max_price_variation=6_000_000_000,
        unit_of_measure_qty=int(round(multiplier * L.PRICE_SCALE)), min_price_increment_amount=int(round(tick * multiplier / 100)),
        price_ratio=dbn.UNDEF_PRICE, inst_attrib_value=270351, underlying_id=0,
        raw_instrument_id=contract.instrument_id, market_depth_implied=0, market_depth=10,
        market_segment_id=64, max_trade_vol=3000, min_lot_size=0, min_lot_size_block=0,
        min_lot_size_round_lot=0, min_trade_vol=1, appl_id=310, maturity_year=contract.year,
        maturity_month=contract.month, maturity_day=255, maturity_week=255, channel_id=0, currency="USD",
        group=contract.root, exchange="XCME", asset=contract.root, cfi="FFIXSX", security_type="FUT", unit_of_measure="IPNT",
        underlying="", strike_price=dbn.UNDEF_PRICE, match_algorithm=dbn.MatchAlgorithm.FIFO,
        main_fraction=255, price_display_format=255, sub_fraction=255, underlying_product=5,
        user_defined_instrument=dbn.UserDefinedInstrument.NO, contract_multiplier_unit=127,
        flow_schedule_type=127, tick_rule=255,
    ))


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

#: Price slots of the book array (ticks): +-2048 points around the session's starting price.
N_PRICE_SLOTS = 16_384
ORDER_POOL = 1 << 18
BUFFER_ROWS = 1 << 18
SLICE_SECONDS = 300


@dataclass
class GenerationReport:
    """What a run wrote: per-schema record counts and file paths, and the wall time in seconds."""

    paths: dict[str, Path]
    counts: dict[str, int]
    seconds: float


class _Encoder:
    """Turns kernel buffers into DBN-layout arrays (price index -> fixed-point price)."""

    def __init__(self, base_tick: int, tick_fixed: int, instrument_id: int):
        self.base_tick = base_tick
        self.tick_fixed = tick_fixed
        self.iid = instrument_id

    def price(self, idx: np.ndarray) -> np.ndarray:
        idx = idx.astype(np.int64)
        return np.where(idx >= 0, (self.base_tick + idx) * self.tick_fixed, L.UNDEF_PRICE)

    def mbo(self, m: np.ndarray, n: int) -> np.ndarray:
        out = L.empty_records(L.MBO_DTYPE, n, L.RTYPE_MBO, PUBLISHER_ID, self.iid)
        out["ts_event"] = m[M_TS_EVENT, :n]
        out["order_id"] = m[M_OID, :n]
        out["price"] = self.price(m[M_PX, :n])
        out["size"] = m[M_SIZE, :n]
        out["flags"] = m[M_FLAGS, :n]
        out["action"] = m[M_ACTION, :n].astype(np.uint8).view("S1")
        out["side"] = m[M_SIDE, :n].astype(np.uint8).view("S1")
        out["ts_recv"] = m[M_TS_RECV, :n]
        out["ts_in_delta"] = m[M_DELTA, :n]
        out["sequence"] = m[M_SEQ, :n]
        return out

    def trades(self, mbo: np.ndarray) -> np.ndarray:
        t = mbo[mbo["action"] == b"T"]
        out = L.empty_records(L.TRADE_DTYPE, len(t), L.RTYPE_MBP_0, PUBLISHER_ID, self.iid)
        for f in ("ts_event", "price", "size", "action", "side", "flags", "ts_recv", "ts_in_delta", "sequence"):
            out[f] = t[f]
        return out

    def mbp10(self, mbo: np.ndarray, p_src: np.ndarray, p_flags: np.ndarray, lv: np.ndarray, n: int) -> np.ndarray:
        src = mbo[p_src[:n]]
        out = L.empty_records(L.MBP10_DTYPE, n, L.RTYPE_MBP_10, PUBLISHER_ID, self.iid)
        for f in ("ts_event", "price", "size", "action", "side", "ts_recv", "ts_in_delta", "sequence"):
            out[f] = src[f]
        out["flags"] = p_flags[:n]
        for k in range(L.MBP10_LEVELS):
            out[f"bid_px_{k:02d}"] = self.price(lv[LV_BID_PX, :n, k])
            out[f"ask_px_{k:02d}"] = self.price(lv[LV_ASK_PX, :n, k])
            out[f"bid_sz_{k:02d}"] = lv[LV_BID_SZ, :n, k]
            out[f"ask_sz_{k:02d}"] = lv[LV_ASK_SZ, :n, k]
            out[f"bid_ct_{k:02d}"] = lv[LV_BID_CT, :n, k]
            out[f"ask_ct_{k:02d}"] = lv[LV_ASK_CT, :n, k]
        return out


def ohlcv_from_trades(ts_event: np.ndarray, price: np.ndarray, size: np.ndarray, instrument_id: int) -> np.ndarray:
    """1-minute OHLCV records (DBN layout) from trades sorted by time: one bar per minute with a trade.

    ``ts_event`` of a bar is its minute's open (ns), prices fixed-point, volume the summed sizes.
    """
    minute = ts_event // (60 * NS)
    if len(minute) == 0:
        return L.empty_records(L.OHLCV_DTYPE, 0, L.RTYPE_OHLCV_1M, PUBLISHER_ID, instrument_id)
    starts = np.flatnonzero(np.concatenate([[True], minute[1:] != minute[:-1]]))
    ends = np.concatenate([starts[1:], [len(minute)]]) - 1
    out = L.empty_records(L.OHLCV_DTYPE, len(starts), L.RTYPE_OHLCV_1M, PUBLISHER_ID, instrument_id)
    out["ts_event"] = minute[starts] * 60 * NS
    out["open"] = price[starts]
    out["close"] = price[ends]
    out["high"] = np.maximum.reduceat(price, starts)
    out["low"] = np.minimum.reduceat(price, starts)
    out["volume"] = np.add.reduceat(size.astype(np.uint64), starts)
    return out


def output_path(out_dir: Path, session_date: date, schema: str) -> Path:
    """``synthetic-glbx-mdp3-YYYYMMDD.<schema>.dbn.zst`` (the prefix marks simulated data)."""
    return out_dir / f"synthetic-glbx-mdp3-{session_date:%Y%m%d}.{schema}.dbn.zst"


def generate_session(
    session_date: date,
    out_dir: Path,
    schemas: Sequence[str] = ALL_SCHEMAS,
    scale: float = 1.0,
    seed: int = 7,
    start_price: float = 5150.0,
    config: SpymasterConfig | None = None,
    progress: bool = False,
) -> GenerationReport:
    """Simulate the session of ``session_date`` and write the requested schemas under ``out_dir``.

    Args:
        session_date: trade date D; the session is ``session_bounds_utc(D, config)``.
        out_dir: created if missing; gets the DBN files (``synthetic-...``) and ``SYNTHETIC.txt``.
        schemas: any of ``ALL_SCHEMAS``.
        scale: events relative to a full session (1.0 -> ~26.5 M events, ~32 M mbo records).
        seed: seeds both NumPy (path) and Numba (book) generators; same inputs -> same bytes.
        start_price: fair price at the session start, index points.
        config: session clock and tick size (``tick_size_points``).
    Returns:
        GenerationReport with the written paths, record counts per schema and wall seconds.
    Raises:
        ValueError: unknown schema, non-positive scale, or a price path leaving the book's price range.
    """
    t_begin = wallclock.perf_counter()
    cfg = config or SpymasterConfig()
    unknown = set(schemas) - set(ALL_SCHEMAS)
    if unknown:
        raise ValueError(f"unknown schema(s) {sorted(unknown)}; choose from {ALL_SCHEMAS}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    start, end = session_bounds_utc(session_date, cfg)
    contract = front_month(session_date)
    tick_fixed = int(round(cfg.tick_size_points * L.PRICE_SCALE))
    start_tick_abs = int(round(start_price / cfg.tick_size_points))
    base_tick = start_tick_abs - N_PRICE_SLOTS // 2

    rng = np.random.default_rng(seed)
    path = session_path(start, end, scale, start_tick_abs - base_tick + 0.5, rng)
    margin = 64
    if path.fair_ticks.min() < margin or path.fair_ticks.max() > N_PRICE_SLOTS - margin:
        raise ValueError("the simulated price path left the book's price range; use another seed")
    seed_numba(seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {s: output_path(out_dir, session_date, s) for s in schemas}
    writers = {s: DbnZstWriter(paths[s], build_metadata(s, contract, start, end)) for s in schemas}
    counts = {s: 0 for s in schemas}
    enc = _Encoder(base_tick, tick_fixed, contract.instrument_id)
    try:
        lv_qty = np.zeros((2, N_PRICE_SLOTS), np.int64)
        lv_cnt = np.zeros((2, N_PRICE_SLOTS), np.int64)
        lv_head = np.full((2, N_PRICE_SLOTS), -1, np.int64)
        lv_tail = np.full((2, N_PRICE_SLOTS), -1, np.int64)
        orders = np.zeros((6, ORDER_POOL), np.int64)
        orders[O_SIDE] = -1
        free = np.zeros(ORDER_POOL, np.int64)
        st = np.zeros(S_LEN, np.int64)
        st[S_BEST_BID] = -1
        st[S_BEST_ASK] = N_PRICE_SLOTS
        st[S_NEXT_ID] = 6_400_000_000_000  # the magnitude of CME order ids in Databento's ESH4 file
        m = np.zeros((M_ROWS, BUFFER_ROWS), np.int64)
        p_src = np.zeros(BUFFER_ROWS, np.int64)
        p_flags = np.zeros(BUFFER_ROWS, np.int64)
        lv = np.zeros((6, BUFFER_ROWS, L.MBP10_LEVELS), np.int32)
        trade_parts: list[np.ndarray] = []

        n = build_snapshot(path.fair_ticks[0], path.start_ns, int(path.depth_orders[0]),
                           lv_qty, lv_cnt, lv_head, lv_tail, orders, free, st, m)
        if "mbo" in writers:
            writers["mbo"].write(enc.mbo(m, n))

        n_seconds = len(path.events)
        for s0 in range(0, n_seconds, SLICE_SECONDS):
            s1 = min(s0 + SLICE_SECONDS, n_seconds)
            counts_s = path.events[s0:s1]
            total = int(counts_s.sum())
            if total == 0:
                continue
            sec = np.repeat(np.arange(s0, s1, dtype=np.int64), counts_s)
            offsets = rng.integers(0, NS, total)
            ev_ts = path.start_ns + np.sort(sec * NS + offsets)  # uniform within each second, time ordered
            pos = (ev_ts - path.start_ns) / NS
            ev_fair = np.interp(pos, np.arange(len(path.fair_ticks)), path.fair_ticks)
            ev_depth = path.depth_orders[np.minimum(pos.astype(np.int64), n_seconds - 1)]
            i = 0
            while i < total:
                i, n_m, n_p = simulate_events(ev_ts, ev_fair, ev_depth, i, lv_qty, lv_cnt, lv_head, lv_tail,
                                              orders, free, st, m, p_src, p_flags, lv)
                mbo = enc.mbo(m, n_m)
                if "mbo" in writers:
                    writers["mbo"].write(mbo)
                trades = enc.trades(mbo)
                trade_parts.append(np.stack([trades["ts_event"].astype(np.int64), trades["price"], trades["size"].astype(np.int64)]))
                if "trades" in writers:
                    writers["trades"].write(trades)
                if "mbp-10" in writers:
                    writers["mbp-10"].write(enc.mbp10(mbo, p_src, p_flags, lv, n_p))
            if progress and (s1 // SLICE_SECONDS) % 24 == 0:
                done = s1 / n_seconds
                print(f"\r{done:6.1%} simulated, {wallclock.perf_counter() - t_begin:6.1f} s", end="", file=sys.stderr)
        if progress:
            print(file=sys.stderr)
        if "ohlcv-1m" in writers:
            allt = np.concatenate(trade_parts, axis=1) if trade_parts else np.zeros((3, 0), np.int64)
            writers["ohlcv-1m"].write(ohlcv_from_trades(allt[0], allt[1], allt[2], contract.instrument_id))
        if "definition" in writers:
            writers["definition"].write(definition_bytes(contract, path.start_ns, start_price))
        for s, w in writers.items():
            w.close()
            counts[s] = w.records
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    seconds = wallclock.perf_counter() - t_begin
    write_notice(out_dir, session_date, contract, scale, seed, start_price, counts, paths)
    return GenerationReport(paths, counts, seconds)


def generate_bars_sessions(
    first_date: date,
    n_sessions: int,
    out_dir: Path,
    seed: int = 7,
    start_price: float = 5150.0,
    volume_scale: float = 0.05,
    config: SpymasterConfig | None = None,
    product: str = "ES",
) -> list[GenerationReport]:
    """Write ``n_sessions`` consecutive SIMULATED sessions of ``ohlcv-1m`` and ``definition`` only (no order book)
    of futures product ``product`` (its root, contract cycle, tick, calendar and clock from the product table).

    Sessions are the product's trading sessions from ``first_date`` on (exchange calendar). Each draws the
    fair-price path of :func:`session_path` (stochastic volatility, fat tails, the U-shaped day,
    jumps at 08:30 and 10:00 ET); a second with events "trades" once at the path's price rounded to
    the tick, with size ``max(1, round(events * volume_scale))``; the 1-minute bars are built from
    those trades as ohlcv-1m records. The next session opens where the last one closed. Seconds per
    session: about 0.3 (no book is simulated). Writes ``SYNTHETIC.txt``. Raises ValueError for
    ``n_sessions`` < 1.
    """
    if n_sessions < 1:
        raise ValueError(f"--sessions must be at least 1, got {n_sessions}")
    cfg = (config or SpymasterConfig()).for_product(product)
    spec = cfg.spec
    if not spec.is_future:
        raise ValueError(f"--product {product}: the bars-only generator writes futures sessions (GLBX.MDP3), not {spec.dataset}")
    days = trading_sessions(first_date, first_date + timedelta(days=2 * n_sessions + 14), cfg)[:n_sessions]
    out_dir.mkdir(parents=True, exist_ok=True)
    tick_fixed = int(round(cfg.tick_size_points * L.PRICE_SCALE))
    reports = []
    price = start_price
    for i, day in enumerate(days):
        t_begin = wallclock.perf_counter()
        rng = np.random.default_rng(seed + i)
        start, end = session_bounds_utc(day, cfg)
        contract = front_month(day, spec.root, spec.contract_months)
        start_tick = price / cfg.tick_size_points
        path = session_path(start, end, 1.0, start_tick, rng)
        seconds = np.flatnonzero(path.events > 0)
        ticks = np.round(path.fair_ticks[seconds]).astype(np.int64)
        trade_px = ticks * tick_fixed
        sizes = np.maximum(1, np.round(path.events[seconds] * volume_scale)).astype(np.int64)
        bars = ohlcv_from_trades(path.start_ns + seconds * NS, trade_px, sizes, contract.instrument_id)
        paths, counts = {}, {}
        for schema, payload in (("ohlcv-1m", bars), ("definition", definition_bytes(contract, path.start_ns, price, spec.tick_size, spec.multiplier))):
            paths[schema] = output_path(out_dir, day, schema)
            writer = DbnZstWriter(paths[schema], build_metadata(schema, contract, start, end))
            try:
                writer.write(payload)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            counts[schema] = writer.records
        price = float(path.fair_ticks[-1]) * cfg.tick_size_points
        reports.append(GenerationReport(paths, counts, wallclock.perf_counter() - t_begin))
    lines = [
        "SYNTHETIC DATA -- SIMULATED, NOT MARKET DATA. Do not present it as data.",
        "",
        f"Generated by scripts/generate_session.py --bars-only (Spymaster): 1-minute bars of a simulated {product} price path.",
        f"sessions: {len(days)} from {days[0]} to {days[-1]}  seed: {seed}  start price: {start_price}  volume scale: {volume_scale}",
        f"command: python scripts/generate_session.py --bars-only --product {product} --date {first_date} --sessions {n_sessions} --out {out_dir} --seed {seed} --start-price {start_price}",
    ]
    (out_dir / "SYNTHETIC.txt").write_text("\n".join(lines) + "\n")
    return reports


def write_notice(out_dir: Path, session_date: date, contract: Contract, scale: float, seed: int,
                 start_price: float, counts: dict[str, int], paths: dict[str, Path]) -> Path:
    """Write ``SYNTHETIC.txt``: these files are simulated, by which script, with which parameters."""
    lines = [
        "SYNTHETIC DATA -- SIMULATED, NOT MARKET DATA. Do not present it as data.",
        "",
        "Generated by scripts/generate_session.py (Spymaster), an order-level simulation of an ES book.",
        f"session date: {session_date}  contract: {contract.raw_symbol} (synthetic instrument_id {contract.instrument_id})",
        f"scale: {scale}  seed: {seed}  start price: {start_price}",
        f"command: python scripts/generate_session.py --date {session_date} --out {out_dir} "
        f"--schemas {','.join(paths)} --scale {scale} --seed {seed} --start-price {start_price}",
        "",
        "files (records):",
        *[f"  {paths[s].name}: {counts[s]}" for s in paths],
    ]
    notice = out_dir / "SYNTHETIC.txt"
    notice.write_text("\n".join(lines) + "\n")
    return notice


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments (see ``--help``)."""
    parser = argparse.ArgumentParser(description="Write one SYNTHETIC ES Globex session as DBN v3 files (not market data).")
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="session trade date, YYYY-MM-DD")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "generated", help="output directory (default: %(default)s)")
    parser.add_argument("--schemas", default=",".join(ALL_SCHEMAS), help="comma-separated DBN schemas (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help="events relative to a full session (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    parser.add_argument("--start-price", type=float, default=5150.0, help="fair price at the session start, points (default: %(default)s)")
    parser.add_argument("--bars-only", action="store_true", help="only ohlcv-1m and definition, from the price path (no order book): fast, for backfill benchmarks")
    parser.add_argument("--sessions", type=int, default=1, help="with --bars-only: this many consecutive trading sessions from --date (default: %(default)s)")
    parser.add_argument("--product", default="ES", help="with --bars-only: the futures product of the product table (ES, NQ, CL, ...; its root, cycle, tick and clock; default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, then print one ``schema: records, MB, path`` line per file and the wall time."""
    args = parse_args(argv)
    if args.bars_only:
        try:
            reports = generate_bars_sessions(args.date, args.sessions, args.out, args.seed, args.start_price, product=args.product)
        except (ValueError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        bars = sum(r.counts["ohlcv-1m"] for r in reports)
        print(f"sessions: {len(reports)}, ohlcv-1m records: {bars}, seconds: {sum(r.seconds for r in reports):.1f}, out: {args.out}")
        return 0
    if args.sessions != 1:
        print("error: --sessions needs --bars-only (a full-depth session takes about a minute each)", file=sys.stderr)
        return 2
    schemas = [s.strip() for s in args.schemas.split(",") if s.strip()]
    try:
        report = generate_session(args.date, args.out, schemas, args.scale, args.seed, args.start_price, progress=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for s, p in report.paths.items():
        print(f"{s}: {report.counts[s]} records, {p.stat().st_size / 1e6:.1f} MB, {p}")
    print(f"seconds: {report.seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
