"""Rebuild a 10-level order book (rows of ``bronze_futures_mbp10``) from Databento MBO records.

The engine is :class:`MboBookBuilder`: it takes the MBO records of ONE instrument chunk by chunk
(NumPy structured arrays as ``DBNStore.to_ndarray(count=...)`` yields them), carries the whole book
(every resting order and every price level) between chunks, and returns, per chunk, the output rows
as NumPy columns. Memory is bounded by the live book plus one chunk of input and output, so a 30 M+
record day is never materialized. The hot loop is one Numba kernel (``@njit(cache=True)``).

Sources of the rules: Databento MBO schema https://databento.com/docs/schemas-and-data-formats/mbo,
MBO snapshots https://databento.com/docs/standards-and-conventions/mbo-snapshot, the book-building
examples https://databento.com/docs/examples/order-book/order-tracking and
https://databento.com/docs/examples/order-book/limit-order-book, DBN flags
https://databento.com/docs/standards-and-conventions/common-fields-enums-types#flags.

Rules (each bad-input case is counted in :attr:`MboBookBuilder.counters`, never silent):

* Order. Records are applied in the order they arrive; a DBN file is in (ts_recv, sequence) order.
  A record whose ts_recv is earlier than the previous record's is counted ``out_of_order`` and applied
  anyway, in file order (re-sorting would need the whole day in memory and the exchange sequence of an
  instrument's events is the file order). Records flagged F_BAD_TS_RECV (8) -- every snapshot record,
  whose ts_recv is the snapshot generation time -- are left out of this comparison.
* Snapshot. Records flagged F_SNAPSHOT (32) are a complete picture of the book (Databento: "an
  instrument's snapshot starts with a cleaR action, followed by zero or more Add actions"). The book is
  cleared at the first record of each run of snapshot records, also when the run does not start with
  an 'R' (the nautilus ESH4 test files omit it); ``snapshots`` counts the runs. A snapshot row is
  ``book_ok`` only on the snapshot record carrying F_LAST: before it the book is incomplete.
* 'R' clears the book (``clears``). 'A' adds an order (order_id, side, price, size); an 'A' for an id
  already in the book replaces that order (``duplicate_add``); an 'A' with size 0, an undefined price
  or a side other than B/A is ignored (``invalid_records``). 'C' removes its size from the order and
  removes the order at 0 (Databento CME cancels carry the cancelled size); a cancel larger than the
  order removes the order (``size_mismatch``). 'M' sets a new price and/or size (a price change loses
  queue priority at the exchange; this engine keeps aggregated levels only, so priority is not
  represented); an 'M' to size 0 removes the order.
* 'T' (trade; its side is the aggressor) and 'F' (fill; the resting order's side) do NOT change the
  book. This follows Databento ("Trade and Fill actions do not affect the book because all fills will
  be accompanied by cancel actions that do update the book", order-tracking example) and the data: in
  the ESH4 hour every 'F' of an order in the book is followed, in the same exchange event, by a 'C' or
  'M' of that order removing the filled size (tests/bronze/test_mbo_book.py checks it). Reducing the
  order on 'F' too would remove the filled size twice. 'N' is ignored. Iceberg orders show only their
  displayed size in MBO, so a trade may exceed the size shown at its price.
* Unknown order_id on 'C', 'M' or 'F' is counted ``unknown_order``; the 'C' is ignored, the 'M' is
  applied as an add of its price/size/side, the 'F' is emitted as usual.
* Fill removals. A 'C' or 'M' of an order filled earlier in the same exchange event carries the
  book-side removal of that fill (in the ESH4 hour, every 'F' of a known order is followed by one).
  Its output ``flags`` carries the extra bit :data:`F_FILL_REMOVAL` (256, above the 8 DBN flag bits),
  it is counted ``fill_removals``, and its ``size`` leaves the filled contracts out (they are on the
  'F' row already): a 'C' that only removes a fill has size 0; an 'M' states the size after the fill,
  so its size is new - (old - filled), e.g. an iceberg filled 2 of 3 and refilled to 3 has +2. Summing
  'A' and positive 'M' sizes (added), 'C' and negative 'M' sizes (cancelled) and 'F' sizes (filled)
  then counts every contract once.
* Events and F_LAST. One exchange event may be several records; F_LAST (128) marks its last record and
  the book is only consistent there (Databento: "the book state should only be examined after a
  record with F_LAST set"). ``crossed_books`` counts F_LAST records after which best bid >= best ask.
  In the ESH4 hour these are all in the CME pre-open (17:00-18:00 ET), when orders may cross until
  the opening auction; after the reopen no F_LAST book is crossed.
* book_ok is False on a row when the book after the record is crossed (at F_LAST or inside an event),
  from a record flagged F_MAYBE_BAD_BOOK (4) until the next snapshot or 'R' (``maybe_bad_book`` counts
  the flagged records), and on snapshot records before the snapshot's F_LAST record.
* Output rows. One row per record that changed the top ``levels`` price levels of either side (price,
  size or order count), and one for every 'T', every 'F' and every fill removal (so an iceberg refill
  that leaves the book as it was is still seen), with the book AFTER the record. Row ``size``:
  'A' the size added; 'C' the size removed (at most the order's size); 'F' the size filled; 'T' the
  size traded; 'M' at an unchanged price the signed change new - old, at a new price the new size
  added there, with ``prev_price``/``prev_size`` the level it left and the size removed from it (on
  real CME MBO most modifies move the price, so without them replenishment would miss most removals); an 'M'
  of an unknown order the size added; 'R' 0; rows flagged F_FILL_REMOVAL: see above. ``rows_out``
  counts rows, ``records`` the records read.
* Prices sit on a grid of ticks inferred from the data (the gcd of the prices of 'A'/'M' records,
  refined when a finer price appears); price levels are dense arrays over that grid, grown as prices
  appear. A span of more than :data:`MAX_LEVELS_PER_SIDE` ticks raises ValueError. Records of another
  instrument_id are dropped and counted ``other_instrument``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from spymaster_resources.dbn_layout import F_BAD_TS_RECV, F_LAST, F_MAYBE_BAD_BOOK, F_SNAPSHOT, UNDEF_PRICE

#: Output-only flag bit (not a DBN flag; DBN flags are 8 bits): this 'C'/'M' removes size that an 'F'
#: of the same exchange event already reported as filled.
F_FILL_REMOVAL = 256

#: Largest number of price ticks a side's level array may span (about 4 M; 64 MB for both sides).
MAX_LEVELS_PER_SIDE = 1 << 22

#: Counter names, in the order of the kernel's counter vector.
COUNTER_NAMES: tuple[str, ...] = (
    "records",
    "rows_out",
    "snapshots",
    "clears",
    "out_of_order",
    "unknown_order",
    "crossed_books",
    "maybe_bad_book",
    "duplicate_add",
    "size_mismatch",
    "invalid_records",
    "fill_removals",
    "other_instrument",
)
(_C_RECORDS, _C_ROWS, _C_SNAPSHOTS, _C_CLEARS, _C_OOO, _C_UNKNOWN, _C_CROSSED, _C_MAYBE_BAD, _C_DUP_ADD, _C_SIZE_MISMATCH,
 _C_INVALID, _C_FILL_REMOVALS, _C_OTHER_INSTRUMENT) = range(len(COUNTER_NAMES))

# Scalar state carried between chunks (one int64 vector so the kernel can update it in place).
(_S_PREV_TS, _S_HAVE_PREV, _S_IN_SNAPSHOT, _S_MAYBE_BAD, _S_EVENT_ID, _S_BEST_BID, _S_BEST_ASK, _S_NONEMPTY_BID,
 _S_NONEMPTY_ASK, _S_USED, _S_TOMBSTONES, _S_ORIGIN, _S_TICK) = range(13)
_N_STATE = 13

_ACT_A, _ACT_C, _ACT_M, _ACT_R, _ACT_T, _ACT_F = (ord(c) for c in "ACMRTF")
_SIDE_BID, _SIDE_ASK = ord("B"), ord("A")
_SLOT_EMPTY, _SLOT_LIVE, _SLOT_DEAD = 0, 1, 2
_MIN_TABLE = 1 << 12
_BLOCK_RECORDS = 1 << 15  # records per kernel call: output blocks small enough to stay in cache
_GRID_PAD_TICKS = 4096  # headroom added on each end when the level arrays are (re)built
_HASH_MULT = np.uint64(11400714819323198485)  # 2^64 / golden ratio (Fibonacci hashing, Knuth 6.4)


# ---------------------------------------------------------------- Numba kernels


@njit(cache=True, inline="always")
def _hash_slot(order_id, mask):
    return np.int64((order_id * _HASH_MULT) >> np.uint64(32)) & mask


@njit(cache=True)
def _find(keys, states, order_id):
    """Slot of a live order ``order_id`` in the open-addressing table, or -1 (linear probing)."""
    mask = keys.size - 1
    i = _hash_slot(order_id, mask)
    while states[i] != _SLOT_EMPTY:
        if states[i] == _SLOT_LIVE and keys[i] == order_id:
            return i
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def _insert(keys, states, order_id, st):
    """Insert ``order_id`` (known absent) and return its slot; a dead slot on the probe path is reused."""
    mask = keys.size - 1
    i = _hash_slot(order_id, mask)
    while states[i] == _SLOT_LIVE:
        i = (i + 1) & mask
    if states[i] == _SLOT_DEAD:
        st[_S_TOMBSTONES] -= 1
    states[i] = _SLOT_LIVE
    keys[i] = order_id
    st[_S_USED] += 1
    return i


@njit(cache=True)
def _rehash(keys, states, o_price, o_side, o_size, o_fill, o_fill_event, new_cap):
    """Copy the live orders into fresh arrays of ``new_cap`` slots (power of two); drops tombstones."""
    n_keys = np.zeros(new_cap, np.uint64)
    n_states = np.zeros(new_cap, np.int8)
    n_price = np.zeros(new_cap, np.int64)
    n_side = np.zeros(new_cap, np.int8)
    n_size = np.zeros(new_cap, np.int64)
    n_fill = np.zeros(new_cap, np.int64)
    n_fill_event = np.full(new_cap, -1, np.int64)
    mask = new_cap - 1
    for j in range(keys.size):
        if states[j] == _SLOT_LIVE:
            i = _hash_slot(keys[j], mask)
            while n_states[i] == _SLOT_LIVE:
                i = (i + 1) & mask
            n_states[i] = _SLOT_LIVE
            n_keys[i] = keys[j]
            n_price[i] = o_price[j]
            n_side[i] = o_side[j]
            n_size[i] = o_size[j]
            n_fill[i] = o_fill[j]
            n_fill_event[i] = o_fill_event[j]
    return n_keys, n_states, n_price, n_side, n_size, n_fill, n_fill_event


@njit(cache=True)
def _level_change(lvl_size, lvl_count, side, idx, d_size, d_count, st):
    """Add ``d_size`` contracts / ``d_count`` orders to level ``idx`` of ``side`` (0 bid, 1 ask) and keep
    the best index and the number of non-empty levels of that side up to date."""
    was_empty = lvl_count[side, idx] == 0
    lvl_size[side, idx] += d_size
    lvl_count[side, idx] += d_count
    now_empty = lvl_count[side, idx] == 0
    best_slot = _S_BEST_BID + side
    nonempty_slot = _S_NONEMPTY_BID + side
    if was_empty and not now_empty:
        st[nonempty_slot] += 1
        best = st[best_slot]
        if best < 0 or (side == 0 and idx > best) or (side == 1 and idx < best):
            st[best_slot] = idx
    elif now_empty and not was_empty:
        st[nonempty_slot] -= 1
        if idx == st[best_slot]:
            if st[nonempty_slot] == 0:
                st[best_slot] = -1
            else:
                # The next best level exists (count > 0) and lies on the worse side of the old best.
                step = -1 if side == 0 else 1
                j = idx + step
                while lvl_count[side, j] == 0:
                    j += step
                st[best_slot] = j


@njit(cache=True)
def _in_top(top_px, top_ct, side, price, levels):
    """True when a change at ``price`` on ``side`` can alter that side's top ``levels`` levels."""
    if top_ct[side, levels - 1] == 0:
        return True  # fewer than `levels` levels: any price can enter the top
    if side == 0:
        return price >= top_px[0, levels - 1]
    return price <= top_px[1, levels - 1]


@njit(cache=True)
def _refresh_top(lvl_size, lvl_count, side, st, levels, top_px, top_sz, top_ct):
    """Rescan the top ``levels`` levels of ``side`` from its best; return True when any changed."""
    origin = st[_S_ORIGIN]
    tick = st[_S_TICK]
    changed = False
    n_found = 0
    limit = min(levels, st[_S_NONEMPTY_BID + side])
    j = st[_S_BEST_BID + side]
    step = -1 if side == 0 else 1
    while n_found < limit:
        ct = lvl_count[side, j]
        if ct > 0:
            px = origin + j * tick
            sz = lvl_size[side, j]
            if top_ct[side, n_found] != ct or top_sz[side, n_found] != sz or top_px[side, n_found] != px:
                changed = True
                top_ct[side, n_found] = ct
                top_sz[side, n_found] = sz
                top_px[side, n_found] = px
            n_found += 1
        j += step
    for k in range(n_found, levels):
        if top_ct[side, k] != 0:
            changed = True
            top_ct[side, k] = 0
            top_sz[side, k] = 0
            top_px[side, k] = 0
    return changed


@njit(cache=True)
def _clear_book(lvl_size, lvl_count, states, st):
    lvl_size[:] = 0
    lvl_count[:] = 0
    states[:] = _SLOT_EMPTY
    st[_S_USED] = 0
    st[_S_TOMBSTONES] = 0
    st[_S_BEST_BID] = -1
    st[_S_BEST_ASK] = -1
    st[_S_NONEMPTY_BID] = 0
    st[_S_NONEMPTY_ASK] = 0


@njit(cache=True)
def _remove_order(slot, states, o_price, o_side, o_size, lvl_size, lvl_count, st):
    side = o_side[slot]
    idx = (o_price[slot] - st[_S_ORIGIN]) // st[_S_TICK]
    _level_change(lvl_size, lvl_count, side, idx, -o_size[slot], -1, st)
    states[slot] = _SLOT_DEAD
    st[_S_USED] -= 1
    st[_S_TOMBSTONES] += 1


@njit(cache=True)
def _book_kernel(
    start, stop, n_out, levels, price_scale,
    action, side_code, price, size, flags, order_id, ts_recv,
    st, counters,
    keys, states, o_price, o_side, o_size, o_fill, o_fill_event,
    lvl_size, lvl_count, top_px, top_sz, top_ct,
    out_rec, out_size, out_flags, out_ok, out_bid_px, out_ask_px, out_bid_sz, out_ask_sz, out_bid_ct, out_ask_ct,
    out_prev_px, out_prev_size,
):
    """Apply records ``start..stop-1`` of one chunk; write output rows from row ``n_out``.

    Returns (next record, rows written so far). Stops early (next record < ``stop``) when the order
    table must grow before an insert; the caller rehashes and calls again from there.
    """
    max_load = keys.size // 2
    origin = st[_S_ORIGIN]
    tick = st[_S_TICK]
    for i in range(start, stop):
        act = action[i]
        fl = np.int64(flags[i])
        if (act == _ACT_A or act == _ACT_M) and st[_S_USED] + st[_S_TOMBSTONES] + 1 > max_load:
            return i, n_out
        counters[_C_RECORDS] += 1
        if fl & F_BAD_TS_RECV == 0:
            if st[_S_HAVE_PREV] == 1 and ts_recv[i] < st[_S_PREV_TS]:
                counters[_C_OOO] += 1
            st[_S_PREV_TS] = ts_recv[i]
            st[_S_HAVE_PREV] = 1
        dirty_bid = False
        dirty_ask = False
        if fl & F_SNAPSHOT:
            if st[_S_IN_SNAPSHOT] == 0:
                # A snapshot is the whole book: start it from empty even without a leading 'R'.
                _clear_book(lvl_size, lvl_count, states, st)
                st[_S_IN_SNAPSHOT] = 1
                st[_S_MAYBE_BAD] = 0
                counters[_C_SNAPSHOTS] += 1
                dirty_bid = True
                dirty_ask = True
        else:
            st[_S_IN_SNAPSHOT] = 0
        if act == _ACT_R:
            _clear_book(lvl_size, lvl_count, states, st)
            st[_S_MAYBE_BAD] = 0
            counters[_C_CLEARS] += 1
            dirty_bid = True
            dirty_ask = True
        if fl & F_MAYBE_BAD_BOOK:
            st[_S_MAYBE_BAD] = 1
            counters[_C_MAYBE_BAD] += 1
        row_size = np.int64(0)
        prev_px = UNDEF_PRICE  # an 'M' that moves an order: the price it left and the size removed there
        prev_size = np.int64(0)
        extra_flags = 0
        always_emit = False
        oid = order_id[i]
        if act == _ACT_T:
            always_emit = True
            row_size = np.int64(size[i])
        elif act == _ACT_F:
            always_emit = True
            row_size = np.int64(size[i])
            slot = _find(keys, states, oid)
            if slot < 0:
                counters[_C_UNKNOWN] += 1
            else:
                # Remember the fill so the same event's C/M that removes it can be flagged.
                if o_fill_event[slot] != st[_S_EVENT_ID]:
                    o_fill[slot] = 0
                    o_fill_event[slot] = st[_S_EVENT_ID]
                o_fill[slot] += row_size
        elif act == _ACT_C:
            slot = _find(keys, states, oid)
            if slot < 0:
                counters[_C_UNKNOWN] += 1
            elif size[i] > 0:
                s = o_side[slot]
                px = o_price[slot]
                removed = np.int64(size[i])
                if removed > o_size[slot]:
                    counters[_C_SIZE_MISMATCH] += 1
                    removed = o_size[slot]
                from_fill = np.int64(0)
                if o_fill_event[slot] == st[_S_EVENT_ID] and o_fill[slot] > 0:
                    from_fill = min(removed, o_fill[slot])
                    o_fill[slot] -= from_fill
                    extra_flags = F_FILL_REMOVAL
                    counters[_C_FILL_REMOVALS] += 1
                if _in_top(top_px, top_ct, s, px, levels):
                    if s == 0:
                        dirty_bid = True
                    else:
                        dirty_ask = True
                if removed == o_size[slot]:
                    _remove_order(slot, states, o_price, o_side, o_size, lvl_size, lvl_count, st)
                else:
                    o_size[slot] -= removed
                    _level_change(lvl_size, lvl_count, s, (px - origin) // tick, -removed, 0, st)
                row_size = removed - from_fill
        elif act == _ACT_A or act == _ACT_M:
            slot = _find(keys, states, oid)
            new_px = price[i]
            new_sz = np.int64(size[i])
            rec_side = side_code[i]
            if act == _ACT_A and slot >= 0:
                counters[_C_DUP_ADD] += 1
                s = o_side[slot]
                if _in_top(top_px, top_ct, s, o_price[slot], levels):
                    if s == 0:
                        dirty_bid = True
                    else:
                        dirty_ask = True
                _remove_order(slot, states, o_price, o_side, o_size, lvl_size, lvl_count, st)
                slot = -1
            if act == _ACT_M and slot < 0:
                counters[_C_UNKNOWN] += 1
            if slot < 0:
                # Add (or modify of an unknown order, applied as an add).
                if new_sz <= 0 or new_px == UNDEF_PRICE or (rec_side != _SIDE_BID and rec_side != _SIDE_ASK):
                    counters[_C_INVALID] += 1
                else:
                    s = 0 if rec_side == _SIDE_BID else 1
                    slot = _insert(keys, states, oid, st)
                    o_price[slot] = new_px
                    o_side[slot] = s
                    o_size[slot] = new_sz
                    o_fill[slot] = 0
                    o_fill_event[slot] = -1
                    if _in_top(top_px, top_ct, s, new_px, levels):
                        if s == 0:
                            dirty_bid = True
                        else:
                            dirty_ask = True
                    _level_change(lvl_size, lvl_count, s, (new_px - origin) // tick, new_sz, 1, st)
                    row_size = new_sz
            elif new_px == UNDEF_PRICE:
                counters[_C_INVALID] += 1
            else:
                s = o_side[slot]
                old_px = o_price[slot]
                old_sz = o_size[slot]
                if _in_top(top_px, top_ct, s, old_px, levels) or _in_top(top_px, top_ct, s, new_px, levels):
                    if s == 0:
                        dirty_bid = True
                    else:
                        dirty_ask = True
                # An M after a fill of the order in the same event states its size after that fill:
                # the trader's own change is measured from old size - filled size.
                from_fill = np.int64(0)
                if o_fill_event[slot] == st[_S_EVENT_ID] and o_fill[slot] > 0:
                    from_fill = min(o_fill[slot], old_sz)
                    o_fill[slot] = 0
                    extra_flags = F_FILL_REMOVAL
                    counters[_C_FILL_REMOVALS] += 1
                if new_sz <= 0:
                    _remove_order(slot, states, o_price, o_side, o_size, lvl_size, lvl_count, st)
                    row_size = -(old_sz - from_fill)
                elif new_px == old_px:
                    o_size[slot] = new_sz
                    _level_change(lvl_size, lvl_count, s, (old_px - origin) // tick, new_sz - old_sz, 0, st)
                    row_size = new_sz - (old_sz - from_fill)
                else:
                    _level_change(lvl_size, lvl_count, s, (old_px - origin) // tick, -old_sz, -1, st)
                    _level_change(lvl_size, lvl_count, s, (new_px - origin) // tick, new_sz, 1, st)
                    o_price[slot] = new_px
                    o_size[slot] = new_sz
                    row_size = new_sz
                    prev_px = old_px
                    prev_size = old_sz - from_fill
        changed = False
        if dirty_bid:
            changed = _refresh_top(lvl_size, lvl_count, 0, st, levels, top_px, top_sz, top_ct) or changed
        if dirty_ask:
            changed = _refresh_top(lvl_size, lvl_count, 1, st, levels, top_px, top_sz, top_ct) or changed
        crossed = st[_S_BEST_BID] >= 0 and st[_S_BEST_ASK] >= 0 and st[_S_BEST_BID] >= st[_S_BEST_ASK]
        if fl & F_LAST:
            if crossed:
                counters[_C_CROSSED] += 1
            st[_S_EVENT_ID] += 1
        if changed or always_emit or extra_flags != 0:
            r = n_out
            out_rec[r] = i
            out_size[r] = row_size
            out_prev_px[r] = prev_px
            out_prev_size[r] = prev_size
            out_flags[r] = fl | extra_flags
            incomplete_snapshot = (fl & F_SNAPSHOT) != 0 and (fl & F_LAST) == 0
            out_ok[r] = not (crossed or st[_S_MAYBE_BAD] == 1 or incomplete_snapshot)
            for k in range(levels):
                if top_ct[0, k] > 0:
                    out_bid_px[k, r] = np.float64(top_px[0, k]) / price_scale
                else:
                    out_bid_px[k, r] = np.nan
                out_bid_sz[k, r] = top_sz[0, k]
                out_bid_ct[k, r] = top_ct[0, k]
                if top_ct[1, k] > 0:
                    out_ask_px[k, r] = np.float64(top_px[1, k]) / price_scale
                else:
                    out_ask_px[k, r] = np.nan
                out_ask_sz[k, r] = top_sz[1, k]
                out_ask_ct[k, r] = top_ct[1, k]
            n_out += 1
            counters[_C_ROWS] += 1
    return stop, n_out


# ---------------------------------------------------------------- Python wrapper


def level_columns(levels: int = 10) -> list[str]:
    """Book column names in table order: bid_px_00.., ask_px_00.., bid_sz.., ask_sz.., bid_ct.., ask_ct.."""
    return [f"{kind}_{k:02d}" for kind in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct") for k in range(levels)]


def output_columns(levels: int = 10) -> list[str]:
    """Every column :meth:`MboBookBuilder.process` returns, in ``bronze_futures_mbp10`` order."""
    return ["ts_event", "ts_recv", "sequence", "action", "side", "price", "size", "flags", "book_ok", "prev_price", "prev_size", *level_columns(levels)]


class MboBookBuilder:
    """Incremental MBO -> ``levels``-level book builder for one instrument (rules: module docstring).

    Args:
        instrument_id: the instrument whose records are applied; records of others are dropped and
            counted ``other_instrument``.
        levels: price levels per side in the output (10 for ``bronze_futures_mbp10``).
        price_scale: DBN price units per index point (1e9); prices are divided by it, as DBNStore.to_df does (exact for every tick price, where multiplying by 1e-9 is one ulp off for some).

    Attributes:
        counters: cumulative over all chunks, names in :data:`COUNTER_NAMES` (records, rows_out,
            snapshots, clears, out_of_order, unknown_order, crossed_books, maybe_bad_book,
            duplicate_add, size_mismatch, invalid_records, fill_removals, other_instrument).

    Raises:
        ValueError: ``levels`` < 1.
    """

    def __init__(self, instrument_id: int, levels: int = 10, price_scale: float = 1e9):
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.instrument_id = int(instrument_id)
        self.levels = int(levels)
        self.price_scale = float(price_scale)
        self._state = np.zeros(_N_STATE, np.int64)
        self._state[_S_BEST_BID] = -1
        self._state[_S_BEST_ASK] = -1
        self._state[_S_TICK] = 0  # 0 = no price grid yet
        self._counters = np.zeros(len(COUNTER_NAMES), np.int64)
        self._alloc_table(_MIN_TABLE)
        self._lvl_size = np.zeros((2, 1), np.int64)
        self._lvl_count = np.zeros((2, 1), np.int64)
        self._top_px = np.zeros((2, self.levels), np.int64)
        self._top_sz = np.zeros((2, self.levels), np.int64)
        self._top_ct = np.zeros((2, self.levels), np.int64)
        # Reused kernel output blocks, (level, row) layout so each output column is a contiguous row.
        k = self.levels
        self._px_block = [np.empty((k, _BLOCK_RECORDS), np.float64) for _ in range(2)]
        self._int_block = [np.empty((k, _BLOCK_RECORDS), np.int32) for _ in range(4)]
        self._block: dict[str, np.ndarray] = {
            "rec": np.empty(_BLOCK_RECORDS, np.int64),
            "size": np.empty(_BLOCK_RECORDS, np.int64),
            "flags": np.empty(_BLOCK_RECORDS, np.int16),
            "book_ok": np.empty(_BLOCK_RECORDS, np.bool_),
            "prev_price_fixed": np.empty(_BLOCK_RECORDS, np.int64),
            "prev_size": np.empty(_BLOCK_RECORDS, np.int64),
        }
        for kind, block in zip(("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"), self._px_block + self._int_block):
            for j in range(k):
                self._block[f"{kind}_{j:02d}"] = block[j]

    @property
    def counters(self) -> dict[str, int]:
        """Cumulative bad-input and volume counters (see the module docstring for each rule)."""
        return {name: int(v) for name, v in zip(COUNTER_NAMES, self._counters)}

    def _alloc_table(self, cap: int) -> None:
        self._keys = np.zeros(cap, np.uint64)
        self._states = np.zeros(cap, np.int8)
        self._o_price = np.zeros(cap, np.int64)
        self._o_side = np.zeros(cap, np.int8)
        self._o_size = np.zeros(cap, np.int64)
        self._o_fill = np.zeros(cap, np.int64)
        self._o_fill_event = np.full(cap, -1, np.int64)

    def _grow_table(self) -> None:
        live = int(self._state[_S_USED])
        cap = _MIN_TABLE
        while cap < 4 * (live + 1):
            cap *= 2
        (self._keys, self._states, self._o_price, self._o_side, self._o_size, self._o_fill, self._o_fill_event) = _rehash(
            self._keys, self._states, self._o_price, self._o_side, self._o_size, self._o_fill, self._o_fill_event, cap
        )
        self._state[_S_TOMBSTONES] = 0

    def _ensure_grid(self, new_prices: np.ndarray) -> None:
        """Make the level arrays' tick grid and span cover ``new_prices`` (DBN units), remapping levels."""
        if not new_prices.size:
            return
        st = self._state
        tick = int(st[_S_TICK])
        g = int(np.gcd.reduce(np.abs(new_prices)))
        new_tick = int(np.gcd(tick, g)) if tick else g
        new_tick = max(new_tick, 1)
        lo, hi = int(new_prices.min()), int(new_prices.max())
        n_old = self._lvl_count.shape[1]
        if tick:
            origin = int(st[_S_ORIGIN])
            if new_tick == tick and lo >= origin and hi < origin + n_old * tick:
                return
            nz_side, nz_idx = np.nonzero(self._lvl_count)
            if nz_idx.size:
                old_prices = origin + nz_idx.astype(np.int64) * tick
                lo, hi = min(lo, int(old_prices.min())), max(hi, int(old_prices.max()))
        else:
            nz_idx = np.zeros(0, np.int64)
        new_origin = (lo // new_tick - _GRID_PAD_TICKS) * new_tick
        n_new = (hi - new_origin) // new_tick + 1 + _GRID_PAD_TICKS
        if n_new > MAX_LEVELS_PER_SIDE:
            raise ValueError(
                f"instrument {self.instrument_id}: MBO prices span {(hi - lo) / self.price_scale} points "
                f"= {n_new} ticks of {new_tick / self.price_scale} points, more than {MAX_LEVELS_PER_SIDE} levels per side"
            )
        size = np.zeros((2, n_new), np.int64)
        count = np.zeros((2, n_new), np.int64)
        if nz_idx.size:
            new_idx = (origin + nz_idx.astype(np.int64) * tick - new_origin) // new_tick
            size[nz_side, new_idx] = self._lvl_size[nz_side, nz_idx]
            count[nz_side, new_idx] = self._lvl_count[nz_side, nz_idx]
            for side, best_slot in ((0, _S_BEST_BID), (1, _S_BEST_ASK)):
                if st[best_slot] >= 0:
                    st[best_slot] = (origin + int(st[best_slot]) * tick - new_origin) // new_tick
        self._lvl_size, self._lvl_count = size, count
        st[_S_ORIGIN] = new_origin
        st[_S_TICK] = new_tick

    def process(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        """Apply one chunk of MBO records and return the output rows it produced.

        Args:
            chunk: NumPy structured array of DBN MBO records (``DBNStore.to_ndarray`` fields: ts_event,
                ts_recv, sequence, instrument_id, order_id, price, size, flags, action, side), in file
                order. Records of another instrument are dropped (counted ``other_instrument``).

        Returns:
            Columns of :func:`output_columns`, one entry per output row, in record order:
            ts_event, ts_recv (int64 ns since the epoch, UTC), sequence (int64), action and side
            (``S1`` bytes: b"A"/b"C"/b"M"/b"T"/b"F"/b"R", b"B"/b"A"/b"N"), price (float64 points,
            NaN when undefined), size (int64 contracts, see the module docstring), flags (int16: DBN
            flags, plus :data:`F_FILL_REMOVAL`), book_ok (bool), prev_price (float64 points) and
            prev_size (int64 contracts): for an 'M' that moved the order to a new price, the price it
            left and the size removed there (NaN / 0 otherwise), bid_px_00.. / ask_px_00.. (float64
            points, NaN for an empty level), bid_sz/ask_sz (int32 contracts) and bid_ct/ask_ct
            (int32 orders), 0 for an empty level.

        Raises:
            ValueError: the prices span more than :data:`MAX_LEVELS_PER_SIDE` ticks.
        """
        ours = chunk["instrument_id"] == self.instrument_id
        if not ours.all():
            self._counters[_C_OTHER_INSTRUMENT] += int((~ours).sum())
            chunk = chunk[ours]
        action = np.ascontiguousarray(chunk["action"]).view(np.uint8)
        side_code = np.ascontiguousarray(chunk["side"]).view(np.uint8)
        price = np.ascontiguousarray(chunk["price"], dtype=np.int64)
        size = np.ascontiguousarray(chunk["size"], dtype=np.int64)
        flags = np.ascontiguousarray(chunk["flags"], dtype=np.uint8)
        order_id = np.ascontiguousarray(chunk["order_id"], dtype=np.uint64)
        ts_recv = np.ascontiguousarray(chunk["ts_recv"]).astype(np.int64)

        priced = ((action == _ACT_A) | (action == _ACT_M)) & (price != UNDEF_PRICE)
        self._ensure_grid(price[priced])
        # A tick of 0 (no priced record yet) is never divided by: without a priced 'A'/'M' the book is empty.

        n, k = len(chunk), self.levels
        names = ["size", "flags", "book_ok", "prev_price_fixed", "prev_size", *level_columns(k)]
        # Final columns are allocated for the worst case (a row per record); only the pages that rows
        # fill are ever touched, so the resident size follows the rows actually produced.
        final = {name: np.empty(n, self._block[name].dtype) for name in names}
        rec = np.empty(n, np.int64)
        pos, total = 0, 0
        while pos < n:
            # The kernel writes into small reused blocks that stay in cache; they are copied out below.
            stop = min(n, pos + _BLOCK_RECORDS)
            n_out = 0
            while pos < stop:
                pos, n_out = _book_kernel(
                    pos, stop, n_out, k, self.price_scale,
                    action, side_code, price, size, flags, order_id, ts_recv,
                    self._state, self._counters,
                    self._keys, self._states, self._o_price, self._o_side, self._o_size, self._o_fill, self._o_fill_event,
                    self._lvl_size, self._lvl_count, self._top_px, self._top_sz, self._top_ct,
                    self._block["rec"], self._block["size"], self._block["flags"], self._block["book_ok"],
                    self._px_block[0], self._px_block[1],
                    self._int_block[0], self._int_block[1], self._int_block[2], self._int_block[3],
                    self._block["prev_price_fixed"], self._block["prev_size"],
                )
                if pos < stop:
                    self._grow_table()
            rec[total : total + n_out] = self._block["rec"][:n_out]
            for name in names:
                final[name][total : total + n_out] = self._block[name][:n_out]
            total += n_out

        rec = rec[:total]
        event_price = price[rec]
        out: dict[str, np.ndarray] = {
            "ts_event": chunk["ts_event"][rec].astype(np.int64),
            "ts_recv": ts_recv[rec],
            "sequence": chunk["sequence"][rec].astype(np.int64),
            "action": action[rec].view("S1"),
            "side": side_code[rec].view("S1"),
            "price": np.where(event_price == UNDEF_PRICE, np.nan, event_price.astype(np.float64) / self.price_scale),
        }
        for name in names:
            out[name] = final[name][:total]
        prev = out.pop("prev_price_fixed")
        out["prev_price"] = np.where(prev == UNDEF_PRICE, np.nan, prev.astype(np.float64) / self.price_scale)
        return {name: out[name] for name in output_columns(k)}


def to_polars(columns: dict[str, np.ndarray], levels: int = 10) -> pl.DataFrame:
    """The rows of :meth:`MboBookBuilder.process` as a Polars frame with ``bronze_futures_mbp10`` dtypes.

    ts_event/ts_recv -> Datetime("ns", "UTC"); action/side -> Utf8; NaN prices -> null; level sizes
    and counts Int32, size Int64, flags Int16, book_ok Boolean. session_date, instrument_id and source
    are left to the caller.
    """
    data = {name: columns[name] for name in output_columns(levels)}
    for name in ("action", "side"):
        data[name] = columns[name].astype("U1")  # vectorized bytes -> str in NumPy
    px_cols = ["price", "prev_price", *[c for c in level_columns(levels) if "_px_" in c]]
    return pl.DataFrame(data).with_columns(
        pl.col("ts_event", "ts_recv").cast(pl.Datetime("ns", "UTC")),
        pl.col(px_cols).fill_nan(None),
    )
