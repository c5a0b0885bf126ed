"""The Numba MBO book engine: hand-worked sequences, real ESH4/ESM4 MBO files, chunking and throughput."""

from __future__ import annotations

import bisect
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from spymaster_resources.raw_files import iter_records
from spymaster_assets.bronze.mbo_book import (
    F_FILL_REMOVAL,
    MboBookBuilder,
    level_columns,
    output_columns,
    to_polars,
)

NAUTILUS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dbn" / "nautilus"
HOUR = NAUTILUS / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
SNAPSHOT_ONLY = NAUTILUS / "esh4-glbx-mdp3-20231224.mbo.dbn.zst"
CATALOG = NAUTILUS / "order_book_deltas_catalog" / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
ESH4 = 17077

#: The DBN v3 MBO record layout as DBNStore.to_ndarray gives it (checked against the real file below).
MBO_DTYPE = np.dtype(
    [
        ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"), ("ts_event", "<u8"),
        ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"), ("channel_id", "u1"),
        ("action", "S1"), ("side", "S1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4"),
    ]
)
UNDEF = np.iinfo(np.int64).max
LAST, SNAP, BAD_TS, MAYBE_BAD = 128, 32, 8, 4


def _records(rows: list[tuple], instrument_id: int = 1) -> np.ndarray:
    """rows of (action, side, order_id, price points or None, size, flags[, ts_recv]) -> DBN MBO records."""
    out = np.zeros(len(rows), MBO_DTYPE)
    for i, row in enumerate(rows):
        action, side, oid, px, size, flags = row[:6]
        out[i]["action"], out[i]["side"], out[i]["order_id"] = action.encode(), side.encode(), oid
        out[i]["price"] = UNDEF if px is None else round(px * 1e9)
        out[i]["size"], out[i]["flags"] = size, flags
        out[i]["ts_recv"] = row[6] if len(row) > 6 else 1_000 + i
        out[i]["ts_event"] = out[i]["ts_recv"] - 1
        out[i]["sequence"], out[i]["instrument_id"], out[i]["rtype"], out[i]["length"] = i, instrument_id, 160, 14
    return out


def _decode(path: Path) -> np.ndarray:
    return np.concatenate(list(iter_records(path, 20_000)))


def _book(out: dict, row: int, side: str, levels: int) -> list[tuple[float, int, int]]:
    """Non-empty (price, size, count) levels of one output row, best first."""
    got = []
    for k in range(levels):
        ct = int(out[f"{side}_ct_{k:02d}"][row])
        if ct:
            got.append((float(out[f"{side}_px_{k:02d}"][row]), int(out[f"{side}_sz_{k:02d}"][row]), ct))
        else:
            assert math.isnan(out[f"{side}_px_{k:02d}"][row]) and out[f"{side}_sz_{k:02d}"][row] == 0
    return got


# ------------------------------------------------------------------ hand-worked sequence

HAND = [
    # snapshot: R then adds, F_SNAPSHOT | F_BAD_TS_RECV, F_LAST on its last record
    ("R", "N", 0, None, 0, SNAP | BAD_TS),               # 0 empty -> empty: no row
    ("A", "B", 1, 100.00, 5, SNAP | BAD_TS),             # 1
    ("A", "B", 2, 99.75, 3, SNAP | BAD_TS),              # 2
    ("A", "A", 3, 100.25, 4, SNAP | BAD_TS),             # 3
    ("A", "A", 4, 100.50, 2, SNAP | BAD_TS | LAST),      # 4 snapshot complete
    ("A", "B", 5, 100.00, 2, LAST),                      # 5 joins the best bid
    ("A", "B", 6, 99.00, 1, LAST),                       # 6 third bid level
    ("A", "B", 7, 98.75, 9, LAST),                       # 7 fourth bid level: outside the top 3, no row
    ("C", "B", 5, 100.00, 1, LAST),                      # 8 partial cancel 2 -> 1
    ("M", "B", 2, 99.75, 1, LAST),                       # 9 size 3 -> 1 at the same price
    ("M", "B", 2, 99.50, 1, LAST),                       # 10 price change 99.75 -> 99.50
    ("T", "A", 0, 100.00, 5, 0),                         # 11 sell aggressor hits 100.00
    ("F", "B", 1, 100.00, 5, 0),                         # 12 resting order 1 filled
    ("C", "B", 1, 100.00, 5, LAST),                      # 13 book-side removal of that fill
    ("C", "B", 999, 100.00, 1, LAST),                    # 14 unknown order: ignored
    ("M", "A", 998, 100.75, 3, LAST),                    # 15 unknown order: applied as an add
    ("A", "A", 8, 101.00, 1, LAST),                      # 16 fourth ask level: no row
    ("A", "A", 9, 99.75, 1, MAYBE_BAD | LAST),           # 17 crossed book, maybe-bad from here
    ("C", "A", 9, 99.75, 1, LAST),                       # 18 uncrossed, still maybe-bad
    ("A", "B", 10, 100.00, 2, LAST),                     # 19 still maybe-bad
    ("R", "N", 0, None, 0, LAST),                        # 20 clear: book empty and ok again
    ("A", "B", 11, 99.00, 1, SNAP | BAD_TS),             # 21 a new snapshot (no leading R)
    ("A", "A", 12, 99.25, 1, SNAP | BAD_TS | LAST),      # 22
    ("N", "N", 0, None, 0, LAST, 2_000),                 # 23 none: no row
    ("A", "B", 13, 99.00, 2, LAST, 1_999),               # 24 ts_recv earlier than record 23
]

# Expected rows, worked by hand from the rules: (record, size, flags, book_ok, bids, asks), 3 levels.
HAND_ROWS = [
    (1, 5, 40, False, [(100.0, 5, 1)], []),
    (2, 3, 40, False, [(100.0, 5, 1), (99.75, 3, 1)], []),
    (3, 4, 40, False, [(100.0, 5, 1), (99.75, 3, 1)], [(100.25, 4, 1)]),
    (4, 2, 168, True, [(100.0, 5, 1), (99.75, 3, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (5, 2, 128, True, [(100.0, 7, 2), (99.75, 3, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (6, 1, 128, True, [(100.0, 7, 2), (99.75, 3, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (8, 1, 128, True, [(100.0, 6, 2), (99.75, 3, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (9, -2, 128, True, [(100.0, 6, 2), (99.75, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (10, 1, 128, True, [(100.0, 6, 2), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (11, 5, 0, True, [(100.0, 6, 2), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (12, 5, 0, True, [(100.0, 6, 2), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    # the fill's removal: 5 contracts leave the book, none of them cancelled by the trader
    (13, 0, 128 | F_FILL_REMOVAL, True, [(100.0, 1, 1), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1)]),
    (15, 3, 128, True, [(100.0, 1, 1), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1), (100.75, 3, 1)]),
    (17, 1, 132, False, [(100.0, 1, 1), (99.5, 1, 1), (99.0, 1, 1)], [(99.75, 1, 1), (100.25, 4, 1), (100.5, 2, 1)]),
    (18, 1, 128, False, [(100.0, 1, 1), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1), (100.75, 3, 1)]),
    (19, 2, 128, False, [(100.0, 3, 2), (99.5, 1, 1), (99.0, 1, 1)], [(100.25, 4, 1), (100.5, 2, 1), (100.75, 3, 1)]),
    (20, 0, 128, True, [], []),
    (21, 1, 40, False, [(99.0, 1, 1)], []),
    (22, 1, 168, True, [(99.0, 1, 1)], [(99.25, 1, 1)]),
    (24, 2, 128, True, [(99.0, 3, 2)], [(99.25, 1, 1)]),
]


def test_hand_worked_sequence():
    records = _records(HAND)
    builder = MboBookBuilder(instrument_id=1, levels=3)
    out = builder.process(records)
    assert list(out) == output_columns(3)
    assert len(out["size"]) == len(HAND_ROWS)
    # Only record 10 moves an order (99.75 -> 99.50, 1 contract): the level it left and the size removed there.
    moved = {int(out["sequence"][r]): (float(out["prev_price"][r]), int(out["prev_size"][r])) for r in range(len(out["size"])) if not math.isnan(out["prev_price"][r])}
    assert moved == {10: (99.75, 1)}
    assert (out["prev_size"][[r for r in range(len(out["size"])) if out["sequence"][r] != 10]] == 0).all()
    for row, (rec, size, flags, ok, bids, asks) in enumerate(HAND_ROWS):
        assert out["sequence"][row] == rec
        assert out["action"][row] == HAND[rec][0].encode() and out["side"][row] == HAND[rec][1].encode()
        assert out["ts_recv"][row] == records["ts_recv"][rec] and out["ts_event"][row] == records["ts_event"][rec]
        px = HAND[rec][3]
        assert math.isnan(out["price"][row]) if px is None else out["price"][row] == px
        assert (out["size"][row], out["flags"][row], bool(out["book_ok"][row])) == (size, flags, ok), f"record {rec}"
        assert _book(out, row, "bid", 3) == bids, f"record {rec}"
        assert _book(out, row, "ask", 3) == asks, f"record {rec}"
    assert builder.counters == {
        "records": 25, "rows_out": 20, "snapshots": 2, "clears": 2, "out_of_order": 1, "unknown_order": 2,
        "crossed_books": 1, "maybe_bad_book": 1, "duplicate_add": 0, "size_mismatch": 0, "invalid_records": 0,
        "fill_removals": 1, "other_instrument": 0,
    }


def test_hand_sequence_is_chunking_invariant():
    records = _records(HAND)
    whole = MboBookBuilder(1, levels=3).process(records)
    for cut in range(1, len(HAND)):
        builder = MboBookBuilder(1, levels=3)
        parts = [builder.process(records[:cut]), builder.process(records[cut:])]
        for name in whole:
            np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name], err_msg=f"{name} cut {cut}")


def test_fill_modify_iceberg_and_bad_records():
    records = _records(
        [
            ("A", "A", 1, 10.0, 3, LAST),
            ("T", "B", 0, 10.0, 2, 0),
            ("F", "A", 1, 10.0, 2, 0),
            ("M", "A", 1, 10.0, 3, LAST),   # iceberg refilled to 3 after a fill of 2: 2 contracts added
            ("A", "A", 2, 10.5, 0, LAST),   # size 0: invalid, ignored
            ("A", "N", 3, 10.5, 1, LAST),   # no side: invalid
            ("A", "A", 1, 11.0, 4, LAST),   # duplicate id: replaces order 1 (3 @ 10.0)
            ("C", "A", 1, 11.0, 9, LAST),   # cancels more than the order's 4: removes it
            ("A", "B", 4, 9.0, 1, LAST),
            ("M", "B", 4, 9.0, 0, LAST),    # modify to 0 removes the order
        ]
    )
    builder = MboBookBuilder(1, levels=2)
    out = builder.process(records)
    assert out["sequence"].tolist() == [0, 1, 2, 3, 6, 7, 8, 9]
    assert out["size"].tolist() == [3, 2, 2, 2, 4, 4, 1, -1]
    assert (out["flags"] & F_FILL_REMOVAL).tolist() == [0, 0, 0, F_FILL_REMOVAL, 0, 0, 0, 0]
    assert [_book(out, r, "ask", 2) for r in range(len(out["size"]))] == [
        [(10.0, 3, 1)], [(10.0, 3, 1)], [(10.0, 3, 1)], [(10.0, 3, 1)], [(11.0, 4, 1)], [], [], []
    ]
    assert _book(out, 6, "bid", 2) == [(9.0, 1, 1)] and _book(out, 7, "bid", 2) == []
    c = builder.counters
    assert (c["invalid_records"], c["duplicate_add"], c["size_mismatch"], c["fill_removals"]) == (2, 1, 1, 1)


def test_other_instrument_dropped_and_counted():
    records = _records([("A", "B", 1, 10.0, 1, LAST), ("A", "B", 2, 10.0, 1, LAST)])
    records["instrument_id"][1] = 2
    builder = MboBookBuilder(1)
    out = builder.process(records)
    assert len(out["size"]) == 1 and builder.counters["other_instrument"] == 1


def test_empty_chunk():
    builder = MboBookBuilder(1)
    out = builder.process(np.zeros(0, MBO_DTYPE))
    assert list(out) == output_columns(10) and all(len(v) == 0 for v in out.values())
    assert to_polars(out).height == 0 and builder.counters["records"] == 0


def test_price_grid_refines_across_chunks():
    # Whole points first, then a quarter: the tick grid is refined and the earlier levels kept.
    builder = MboBookBuilder(1, levels=3)
    builder.process(_records([("A", "B", 1, 4800.0, 1, LAST), ("A", "B", 2, 4790.0, 2, LAST)]))
    out = builder.process(_records([("A", "B", 3, 4800.25, 3, LAST), ("A", "A", 4, 6000.5, 1, LAST)]))
    assert _book(out, 1, "bid", 3) == [(4800.25, 3, 1), (4800.0, 1, 1), (4790.0, 2, 1)]
    assert _book(out, 1, "ask", 3) == [(6000.5, 1, 1)]


# ------------------------------------------------------------------ independent reference on real data


class _ReferenceBook:
    """A plain-Python order book (dicts + sorted price lists) following the module's rules."""

    def __init__(self):
        self.orders: dict[int, tuple[int, int, int]] = {}  # order_id -> (side 0 bid / 1 ask, price, size)
        self.levels = [dict(), dict()]  # price -> [size, count]
        self.prices = [[], []]  # sorted ascending

    def clear(self):
        self.__init__()

    def _level(self, side, price, d_size, d_count):
        lv = self.levels[side].get(price)
        if lv is None:
            lv = self.levels[side][price] = [0, 0]
            bisect.insort(self.prices[side], price)
        lv[0] += d_size
        lv[1] += d_count
        assert lv[0] >= 0 and lv[1] >= 0
        if lv[1] == 0:
            del self.levels[side][price]
            self.prices[side].remove(price)

    def apply(self, action, side, oid, price, size, flags):
        """Returns 1 when the record referred to an unknown order."""
        if action == "A" or (action == "M" and oid not in self.orders):
            if action == "A" and oid in self.orders:
                s, p, q = self.orders.pop(oid)
                self._level(s, p, -q, -1)
            s = 0 if side == "B" else 1
            self.orders[oid] = (s, price, size)
            self._level(s, price, size, 1)
            return int(action == "M")
        if action in "CM" and oid in self.orders:
            s, p, q = self.orders[oid]
            new_p, new_q = (p, q - min(size, q)) if action == "C" else (price, size)
            self._level(s, p, -q, -1)
            if new_q > 0:
                self.orders[oid] = (s, new_p, new_q)
                self._level(s, new_p, new_q, 1)
            else:
                del self.orders[oid]
            return 0
        return int(action in "CF" and oid not in self.orders)

    def top(self, side, k):
        prices = self.prices[side][::-1][:k] if side == 0 else self.prices[side][:k]
        return [(p, *self.levels[side][p]) for p in prices]


def _reference(records: np.ndarray, levels: int = 10):
    """Records that must give a row, their books, crossed F_LAST states, unknown orders, and the
    (event, price) of fills larger than the filled order's displayed size (iceberg orders)."""
    book = _ReferenceBook()
    rows, books = [], []
    crossed = unknown = 0
    crossed_times = []
    icebergs: set[tuple[int, int]] = set()
    in_snapshot = False
    event = 0
    pending_fill: dict[int, tuple[int, int]] = {}  # order_id -> (event, filled size not yet removed)
    prev = (book.top(0, levels), book.top(1, levels))
    for i, (act, side, oid, price, size, flags, ts) in enumerate(
        zip(
            records["action"].astype("U1").tolist(), records["side"].astype("U1").tolist(),
            records["order_id"].tolist(), records["price"].tolist(), records["size"].tolist(),
            records["flags"].tolist(), records["ts_event"].tolist(),
        )
    ):
        if flags & SNAP and not in_snapshot:
            book.clear()
        in_snapshot = bool(flags & SNAP)
        fill_removal = False
        if act == "F" and oid in book.orders and size > book.orders[oid][2]:
            icebergs.add((event, price))
        if act == "F" and oid in book.orders:
            ev, amount = pending_fill.get(oid, (event, 0))
            pending_fill[oid] = (event, (amount if ev == event else 0) + size)
        elif act in "CM" and oid in book.orders and pending_fill.get(oid, (-1, 0))[0] == event:
            amount = pending_fill[oid][1]
            fill_removal = amount > 0
            left = max(amount - min(size, book.orders[oid][2]), 0) if act == "C" else 0
            pending_fill[oid] = (event, left)
        if act == "R":
            book.clear()
        else:
            unknown += book.apply(act, side, oid, price, size, flags)
        now = (book.top(0, levels), book.top(1, levels))
        if now != prev or act in "TF" or fill_removal:
            rows.append(i)
            books.append(now)
        prev = now
        if flags & LAST and now[0] and now[1] and now[0][0][0] >= now[1][0][0]:
            crossed += 1
            crossed_times.append(ts)
        event += bool(flags & LAST)
    return rows, books, crossed, unknown, crossed_times, icebergs


@pytest.fixture(scope="module")
def hour() -> np.ndarray:
    return _decode(HOUR)


@pytest.fixture(scope="module")
def hour_rows(hour):
    builder = MboBookBuilder(ESH4)
    return builder.process(hour), builder.counters


def test_real_dtype_matches_hand_built_records(hour):
    assert hour.dtype == MBO_DTYPE


@pytest.mark.parametrize("path", [HOUR, SNAPSHOT_ONLY, CATALOG], ids=["hour", "snapshot", "catalog"])
def test_real_file_matches_reference_book(path):
    records = _decode(path)
    (instrument,) = np.unique(records["instrument_id"])
    builder = MboBookBuilder(int(instrument))
    out = builder.process(records)
    rows, books, crossed, unknown, _, _ = _reference(records)
    # Same rows (records identified by ts_recv, sequence, order of appearance), same books.
    np.testing.assert_array_equal(out["ts_recv"], records["ts_recv"][rows].astype(np.int64))
    np.testing.assert_array_equal(out["sequence"], records["sequence"][rows].astype(np.int64))
    np.testing.assert_array_equal(out["action"], records["action"][rows])
    for r, (bids, asks) in enumerate(books):
        assert _book(out, r, "bid", 10) == [(p / 1e9, s, c) for p, s, c in bids], f"row {r}"
        assert _book(out, r, "ask", 10) == [(p / 1e9, s, c) for p, s, c in asks], f"row {r}"
    c = builder.counters
    assert c["records"] == len(records) and c["rows_out"] == len(rows)
    assert c["crossed_books"] == crossed and c["unknown_order"] == unknown
    assert c["snapshots"] == 1 and c["out_of_order"] == 0 and c["invalid_records"] == 0
    assert c["clears"] == int((records["action"] == b"R").sum())
    for side in ("bid", "ask"):
        for kind in ("sz", "ct"):
            assert all((out[f"{side}_{kind}_{k:02d}"] >= 0).all() for k in range(10))
    if path == SNAPSHOT_ONLY:
        # A snapshot alone: its rows are not book_ok (the book is incomplete) except at F_LAST, and the
        # complete book is not crossed.
        np.testing.assert_array_equal(out["book_ok"], (out["flags"] & LAST) > 0)
        assert out["bid_px_00"][-1] < out["ask_px_00"][-1] and c["crossed_books"] == 0


def test_hour_crossed_only_in_preopen(hour, hour_rows):
    """The ESH4 hour's F_LAST books cross only before the 18:00 ET reopen (CME pre-open, when orders
    may cross until the opening auction); the count equals the reference book's."""
    out, counters = hour_rows
    _, _, crossed, _, crossed_times, _ = _reference(hour)
    reopen = int(datetime(2023, 12, 25, 23, 0, tzinfo=timezone.utc).timestamp()) * 10**9
    assert counters["crossed_books"] == crossed > 0
    assert max(crossed_times) < reopen
    last = (out["flags"] & LAST) > 0
    crossed_rows = last & (out["bid_px_00"] >= out["ask_px_00"])
    assert not out["book_ok"][crossed_rows].any()
    assert (out["ts_event"][crossed_rows] < reopen).all()


def test_hour_trades_agree_with_book(hour, hour_rows):
    """Every aggressor trade is at or through the touch of the book just before it, and the first
    trade of each exchange event is exactly at the touch (buy at the best ask, sell at the best bid).
    'T' and 'F' do not change the book, so a 'T' row's book is the book before that trade. A trade
    larger than the displayed size at its price happens only where an iceberg order was filled beyond
    its displayed size (its hidden quantity is not in the MBO book)."""
    out, _ = hour_rows
    rows, _, _, _, _, icebergs = _reference(hour)
    record_event = np.concatenate([[0], np.cumsum((hour["flags"] & LAST) > 0)[:-1]])
    frame = to_polars(out).with_columns(
        event=pl.Series(record_event[rows]), price_units=pl.Series(hour["price"][rows].astype(np.int64))
    )
    trades = frame.filter(pl.col("action") == "T").with_row_index("t")
    aggressor = trades.filter(pl.col("side") != "N")
    assert aggressor.height == 2972
    buy = pl.col("side") == "B"
    touch = pl.when(buy).then(pl.col("ask_px_00")).otherwise(pl.col("bid_px_00"))
    at_or_through = pl.when(buy).then(pl.col("price") >= touch).otherwise(pl.col("price") <= touch)
    assert aggressor.select(at_or_through.all()).item()
    first = aggressor.filter(pl.col("t") == pl.col("t").min().over("event"))
    assert first.height == aggressor["event"].n_unique()
    assert first.select((pl.col("price") == touch).all()).item()
    # Traded size per (event, price) against the displayed size at the first trade at that price.
    displayed = pl.coalesce(
        *[
            pl.when(buy & (pl.col(f"ask_px_{k:02d}") == pl.col("price"))).then(pl.col(f"ask_sz_{k:02d}"))
            .when(~buy & (pl.col(f"bid_px_{k:02d}") == pl.col("price"))).then(pl.col(f"bid_sz_{k:02d}"))
            for k in range(10)
        ]
    )
    per_price = aggressor.with_columns(displayed=displayed).group_by("event", "price_units").agg(
        pl.col("size").sum(), pl.col("displayed").first()
    )
    assert per_price["displayed"].null_count() == 0  # every trade price is a level of the book
    excess = per_price.filter(pl.col("size") > pl.col("displayed"))
    assert set(excess.select("event", "price_units").iter_rows()) <= icebergs
    assert excess.height <= 0.01 * per_price.height
    # The one side-N trade is the 18:00 ET opening auction: it prints inside the crossed pre-open book.
    (auction,) = trades.filter(pl.col("side") == "N").iter_rows(named=True)
    assert auction["ask_px_00"] <= auction["price"] <= auction["bid_px_00"] and not auction["book_ok"]


def test_hour_fills_are_removed_by_cancel_or_modify(hour, hour_rows):
    """Databento: 'F' does not change the book, a C/M of the same order in the same event does. Every
    fill of a known order is followed by one, and the engine flags exactly those C/M records."""
    out, counters = hour_rows
    d = pl.DataFrame(
        {
            "i": np.arange(len(hour)),
            "order_id": hour["order_id"],
            "action": hour["action"].astype("U1"),
            "last": (hour["flags"] & LAST) > 0,
        }
    ).with_columns(event=pl.col("last").cast(pl.Int64).cum_sum().shift(1, fill_value=0))
    known = d.filter(pl.col("action") == "A")["order_id"].implode()
    fills = d.filter((pl.col("action") == "F") & pl.col("order_id").is_in(known))
    removals = fills.join(
        d.filter(pl.col("action").is_in(["C", "M"])), on=["order_id", "event"], suffix="_r"
    ).filter(pl.col("i_r") > pl.col("i"))
    assert fills.join(removals, on="i", how="anti").height == 0
    assert counters["fill_removals"] == removals["i_r"].n_unique()
    flagged = (out["flags"] & F_FILL_REMOVAL) > 0
    assert flagged.sum() == counters["fill_removals"]
    assert set(out["action"][flagged].tolist()) <= {b"C", b"M"}
    # The F rows carry the filled size; all flagged rows together add nothing that the fills removed.
    assert counters["unknown_order"] == d.filter(pl.col("action") == "F").height - fills.height


def test_chunking_invariance(hour, hour_rows):
    whole, counters = hour_rows
    builder = MboBookBuilder(ESH4)
    parts = [builder.process(hour[i : i + 1_000]) for i in range(0, len(hour), 1_000)]
    for name in output_columns(10):
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), whole[name], err_msg=name)
    assert builder.counters == counters


def test_to_polars_dtypes(hour_rows):
    out, _ = hour_rows
    frame = to_polars(out)
    assert frame.columns == output_columns(10)
    assert frame.schema["ts_event"] == pl.Datetime("ns", "UTC") and frame.schema["action"] == pl.Utf8
    assert frame.schema["flags"] == pl.Int16 and frame.schema["book_ok"] == pl.Boolean
    assert frame.schema["bid_sz_00"] == pl.Int32 and frame.schema["size"] == pl.Int64
    assert frame["bid_px_09"].null_count() == int(np.isnan(out["bid_px_09"]).sum())
    assert set(frame["action"].unique()) <= set("ACMRTF")
    assert all(c in frame.columns for c in level_columns(10))


def test_throughput_on_repeated_hour(hour):
    """Ten copies of the hour (order ids and times shifted, each starting with its snapshot). The
    snapshot clears the book, so every copy must give the same rows as the first."""
    copies = []
    for r in range(10):
        x = hour.copy()
        x["order_id"] += np.uint64(r * 10**12) * (x["order_id"] > 0)
        x["ts_recv"] += np.uint64(r * 86_400 * 10**9)
        x["ts_event"] += np.uint64(r * 86_400 * 10**9)
        copies.append(x)
    stream = np.concatenate(copies)
    MboBookBuilder(ESH4).process(hour[:1_000])  # compile outside the timing
    builder = MboBookBuilder(ESH4)
    start = time.perf_counter()
    parts = [builder.process(stream[i : i + 250_000]) for i in range(0, len(stream), 250_000)]
    seconds = time.perf_counter() - start
    rate = len(stream) / seconds
    print(f"mbo_book_records_per_second: {rate:,.0f} ({len(stream):,} records, {seconds:.2f} s)")
    sizes = np.concatenate([p["bid_sz_00"] for p in parts])
    n = len(sizes) // 10
    assert len(sizes) == 10 * n
    np.testing.assert_array_equal(sizes.reshape(10, n), np.broadcast_to(sizes[:n], (10, n)))
    assert builder.counters["snapshots"] == 10 and builder.counters["out_of_order"] == 0
    assert rate > 300_000  # a floor against an accidental Python path; the real rate is in the report
