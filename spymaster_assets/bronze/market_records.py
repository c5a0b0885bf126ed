"""Bounded, vectorized decoding of Databento trades / top-of-book / mbp-10 / mbo records of one session.

Path of every record: ``iter_records`` (NumPy structured chunks of ``decode_chunk_records``) ->
selection mask (front month, session window, trade actions) -> NumPy column arithmetic (a Numba
kernel transposes the 10 book levels in one pass over the record bytes) -> ordering by
``(ts_recv, sequence)`` -> ``pl.DataFrame`` chunks. No per-record Python, no ``DBNStore.to_df()``, and
at most a few chunks are in memory whatever the file size.

Bad-input rules (each counted in the ``counters`` dict that bronze reports as metadata):

* ``other_instrument_records``: records in the session window of an instrument a symbology mapping
  or definition names, other than the front month (back months, calendar spreads): dropped.
* ``unknown_instrument_records``: records in the window of an instrument_id that neither the file's
  symbology mappings nor the session's definitions name: dropped.
* ``out_of_order_records``: records (kept ones) whose ``(ts_recv, sequence)`` is smaller than that of
  a record before them in their file. A record flagged F_BAD_TS_RECV (every MBO snapshot record:
  its ts_recv is the snapshot time, its sequence the order's original one) has no receive time of
  its own: it is ordered with the record before it and never moved or counted. They are put back in order, stably (records with equal keys keep
  file order, which matters for the T/F records of one CME packet), within a look-ahead of one decode
  chunk; ``late_records_dropped`` counts records that arrive after rows with a larger key were already
  written (more than a whole chunk late): they are dropped, since bronze rows must stay sorted.
* Several files of a schema are merged by key (Databento daily splits, or one file per symbol);
  ``duplicate files`` (two files holding the front month over the same receive-time span) raise
  :class:`RawDataError` naming both rather than doubling every record.
* ``undefined_price_trades``: trade records with the undefined price (``UNDEF_PRICE``): dropped.
* ``crossed_book_records``: book records whose best bid >= best ask (both defined). A locked or
  crossed book cannot rest on one CME matching engine, so such a state is flagged (``book_ok`` false
  in mbp-10) and kept.
* ``maybe_bad_book_records``: records flagged ``F_MAYBE_BAD_BOOK`` (a gap in the venue feed): from
  such a record until the next snapshot record (``F_SNAPSHOT``) or book clear (action ``R``) the
  mbp-10 book is not trusted (``book_ok`` false).
* A truncated or corrupt file raises :class:`RawDataError` naming it (from ``iter_records``).

Record layouts and flags: Databento DBN encoding, https://databento.com/docs/standards-and-conventions/databento-binary-encoding
and https://databento.com/docs/schemas-and-data-formats. Prices are fixed-point 1e-9 points; they
are divided by 1e9 (as ``DBNStore.to_df`` does: exact for every tick price, where multiplying by 1e-9
is off by one ulp for about one quarter-point price in six).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit

from spymaster_core.errors import RawDataError
from spymaster_resources.raw_files import UNDEF_PRICE, iter_records
from spymaster_resources.dbn_layout import F_MAYBE_BAD_BOOK, PRICE_SCALE

UTC_NS = pl.Datetime("ns", "UTC")


#: Where each bronze table's rows come from, in order of preference (contract of issue 3).
TRADE_SOURCES: tuple[str, ...] = ("trades", "tbbo", "mbp-1", "mbp-10", "mbo")
BBO_SOURCES: tuple[str, ...] = ("mbp-1", "bbo-1s", "bbo-1m", "tbbo")
MBP10_SOURCES: tuple[str, ...] = ("mbp-10", "mbo")
BOOK_LEVELS = 10

_ACTION_CODES = np.frombuffer(b"ACMTFRN", dtype=np.uint8)
_SIDE_CODES = np.frombuffer(b"BAN", dtype=np.uint8)
_NONE_CODE = ord("N")


def level_names(prefix: str, levels: int = BOOK_LEVELS) -> list[str]:
    """``["bid_px_00", ..., "bid_px_09"]`` for prefix ``bid_px`` (Databento's level column names)."""
    return [f"{prefix}_{i:02d}" for i in range(levels)]


def _level_columns(levels: int) -> dict[str, pl.DataType]:
    cols: dict[str, pl.DataType] = {}
    for prefix in ("bid_px", "ask_px"):
        cols.update({c: pl.Float64 for c in level_names(prefix, levels)})
    for prefix in ("bid_sz", "ask_sz", "bid_ct", "ask_ct"):
        cols.update({c: pl.Int32 for c in level_names(prefix, levels)})
    return cols


_KEY_COLUMNS: dict[str, pl.DataType] = {
    "session_date": pl.Date,
    "ts_event": UTC_NS,
    "ts_recv": UTC_NS,
    "sequence": pl.Int64,
    "instrument_id": pl.UInt32,
}

#: Column names and dtypes of bronze_futures_trades (see of_contract "Bronze tables").
TRADES_SCHEMA: dict[str, pl.DataType] = {
    **_KEY_COLUMNS,
    "price": pl.Float64,
    "size": pl.Int64,
    "side": pl.Utf8,
    "source": pl.Utf8,
}
#: Column names and dtypes of bronze_futures_bbo.
BBO_SCHEMA: dict[str, pl.DataType] = {**_KEY_COLUMNS, **_level_columns(1), "source": pl.Utf8}
#: Column names and dtypes of bronze_futures_mbp10.
MBP10_SCHEMA: dict[str, pl.DataType] = {
    **_KEY_COLUMNS,
    "action": pl.Utf8,
    "side": pl.Utf8,
    "price": pl.Float64,
    "size": pl.Int64,
    "flags": pl.Int16,
    "book_ok": pl.Boolean,
    "prev_price": pl.Float64,
    "prev_size": pl.Int64,
    **_level_columns(BOOK_LEVELS),
    "source": pl.Utf8,
}

Batch = dict[str, np.ndarray]
"""Selected records of one chunk as named, equally long NumPy columns (``ts_recv``/``sequence`` are the sort key)."""


def new_counters() -> dict[str, int]:
    """The bad-input counters reported per partition, all zero (see the module docstring for each rule)."""
    return {
        "records_read": 0,
        "records_kept": 0,
        "other_instrument_records": 0,
        "unknown_instrument_records": 0,
        "out_of_order_records": 0,
        "late_records_dropped": 0,
        "undefined_price_trades": 0,
        "crossed_book_records": 0,
        "maybe_bad_book_records": 0,
    }


# ------------------------------------------------------------------------------------------------
# Column decoding
# ------------------------------------------------------------------------------------------------


def prices_to_points(fixed: np.ndarray) -> np.ndarray:
    """DBN fixed-point prices (int64, 1e-9 points) -> Float64 index points, NaN where ``UNDEF_PRICE``."""
    out = fixed.astype(np.float64) / PRICE_SCALE
    out[fixed == UNDEF_PRICE] = np.nan
    return out


def _codes(raw: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """One-byte DBN chars (``S1``) as uint8 codes; anything outside ``allowed`` becomes ``N`` (none)."""
    codes = np.ascontiguousarray(raw).view(np.uint8)
    return np.where(np.isin(codes, allowed), codes, np.uint8(_NONE_CODE)).astype(np.uint8)


@njit(cache=True)
def _levels_kernel(words, rows, base_word, levels, bid_px, ask_px, bid_sz, ask_sz, bid_ct, ask_ct):
    # One pass over each selected record's level block (4 int64 words per level: bid_px, ask_px,
    # bid_sz|ask_sz, bid_ct|ask_ct) writing contiguous per-level columns: reading each column as a
    # strided NumPy field would touch every record's cache lines once per column (60 times).
    undef = np.int64(9223372036854775807)
    lo_mask = np.int64(0xFFFFFFFF)
    for k in range(rows.shape[0]):
        r = rows[k]
        for j in range(levels):
            w = base_word + 4 * j
            b = words[r, w]
            a = words[r, w + 1]
            bid_px[j, k] = np.nan if b == undef else b / 1e9
            ask_px[j, k] = np.nan if a == undef else a / 1e9
            sz = words[r, w + 2]
            ct = words[r, w + 3]
            bid_sz[j, k] = sz & lo_mask
            ask_sz[j, k] = (sz >> 32) & lo_mask
            bid_ct[j, k] = ct & lo_mask
            ask_ct[j, k] = (ct >> 32) & lo_mask


def decode_levels(records: np.ndarray, rows: np.ndarray | slice, levels: int) -> Batch:
    """Book levels ``0..levels-1`` of the selected ``rows`` (indices or a slice) of an MBP/BBO structured chunk.

    Returns ``bid_px_NN``/``ask_px_NN`` (Float64 points, NaN for an empty level) and
    ``bid_sz_NN``/``ask_sz_NN``/``bid_ct_NN``/``ask_ct_NN`` (int32 contracts / orders, 0 when empty).

    Raises:
        RawDataError: the record layout is not DBN's (px, px, sz, sz, ct, ct) 32-byte level block.
    """
    fields = records.dtype.fields
    base = fields["bid_px_00"][1]
    expected = {"ask_px_00": 8, "bid_sz_00": 16, "ask_sz_00": 20, "bid_ct_00": 24, "ask_ct_00": 28}
    if base % 8 or records.dtype.itemsize % 8 or any(fields[k][1] != base + off for k, off in expected.items()):
        raise RawDataError(f"unexpected DBN book record layout {records.dtype}")
    words = np.ascontiguousarray(records).view(np.int64).reshape(len(records), records.dtype.itemsize // 8)
    if isinstance(rows, slice):
        rows = np.arange(len(records))[rows]
    n = len(rows)
    bid_px = np.empty((levels, n), np.float64)
    ask_px = np.empty((levels, n), np.float64)
    ints = [np.empty((levels, n), np.int32) for _ in range(4)]
    _levels_kernel(words, rows.astype(np.int64), base // 8, levels, bid_px, ask_px, *ints)
    out: Batch = {}
    for prefix, arr in zip(("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"), (bid_px, ask_px, *ints)):
        for j, name in enumerate(level_names(prefix, levels)):
            out[name] = arr[j]
    return out


def _header(records: np.ndarray, rows: np.ndarray) -> Batch:
    return {
        "ts_event": records["ts_event"][rows].astype(np.int64),
        "ts_recv": records["ts_recv"][rows].astype(np.int64),
        "sequence": records["sequence"][rows].astype(np.int64),
        "instrument_id": records["instrument_id"][rows].astype(np.uint32),
        "flags": records["flags"][rows].astype(np.int16),
    }


def decode_trades(records: np.ndarray, rows: np.ndarray) -> Batch:
    """Trade columns of ``rows``: header, ``price`` (points), ``size`` (contracts), ``side`` (uint8 code B/A/N)."""
    out = _header(records, rows)
    out["price"] = prices_to_points(records["price"][rows])
    out["size"] = records["size"][rows].astype(np.int64)
    out["side"] = _codes(records["side"][rows], _SIDE_CODES)
    return out


def decode_bbo(records: np.ndarray, rows: np.ndarray) -> Batch:
    """Top-of-book columns of ``rows`` (mbp-1, bbo-1s, bbo-1m, tbbo records): header and level 00."""
    return {**_header(records, rows), **decode_levels(records, rows, 1)}


def decode_mbp10(records: np.ndarray, rows: np.ndarray) -> Batch:
    """mbp-10 columns of ``rows``: header, event action/side (uint8 codes), price, size, flags, 10 levels."""
    out = _header(records, rows)
    out["action"] = _codes(records["action"][rows], _ACTION_CODES)
    out["side"] = _codes(records["side"][rows], _SIDE_CODES)
    out["price"] = prices_to_points(records["price"][rows])
    out["size"] = records["size"][rows].astype(np.int64)
    n = len(out["size"])
    out["prev_price"] = np.full(n, np.nan)  # only the MBO engine knows where a modified order came from
    out["prev_size"] = np.zeros(n, np.int64)
    out.update(decode_levels(records, rows, BOOK_LEVELS))
    return out


def decode_mbo(records: np.ndarray, rows: np.ndarray) -> Batch:
    """The raw MBO fields of ``rows`` (DBN units: fixed-point price, u8 order_id...), for the book engine.

    ``ts_event``/``ts_recv``/``sequence`` are widened to int64 like every other batch (the sort key).
    """
    out = {name: records[name][rows] for name in records.dtype.names if not name.startswith("_")}
    out.update(_header(records, rows))
    return out


def _string_column(codes: np.ndarray) -> pa.Array:
    # One-byte codes straight into an Arrow utf8 array (offsets 0,1,2,...): no Python strings.
    n = len(codes)
    offsets = np.arange(n + 1, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(codes)))


def batch_frame(batch: Batch, schema: dict[str, pl.DataType], session_date, source: str) -> pl.DataFrame:
    """Build the polars frame of ``schema`` from a decoded batch (session_date and source as literals).

    Float columns turn NaN into null (an undefined price or an empty level); uint8 code columns of
    Utf8 columns become one-character strings.
    """
    n = len(batch["ts_recv"])
    columns: list[pl.Series] = []
    for name, dtype in schema.items():
        if name == "session_date":
            columns.append(pl.repeat(session_date, n, dtype=pl.Date, eager=True).alias(name))
        elif name == "source":
            columns.append(pl.repeat(source, n, dtype=pl.Utf8, eager=True).alias(name))
        elif dtype == UTC_NS:
            columns.append(pl.Series(name, batch[name].view("datetime64[ns]")).dt.replace_time_zone("UTC"))
        elif dtype == pl.Utf8:
            columns.append(pl.Series(name, pl.from_arrow(_string_column(batch[name]))))
        elif dtype == pl.Float64:
            columns.append(pl.Series(name, batch[name], dtype=pl.Float64, nan_to_null=True))
        else:
            columns.append(pl.Series(name, batch[name], dtype=dtype))
    return pl.DataFrame(columns)


# ------------------------------------------------------------------------------------------------
# Selection and ordering
# ------------------------------------------------------------------------------------------------


@dataclass
class RecordSelection:
    """Which records of a session a bronze table keeps.

    ``instrument_id`` is the front month; ``instrument_ids``, when given, replaces it by a set of
    instruments (an options chain); ``known_ids`` every instrument a mapping or definition names;
    ``[start_ns, end_ns)`` the session window on ``window_field`` (ts_event unless told); ``trades_only`` keeps action 'T' records
    only; ``replay_from_start`` (MBO) also keeps the records before the window, since the book at
    the session open is built from the file's first snapshot onwards.
    """

    instrument_id: int
    known_ids: set[int]
    start_ns: int
    end_ns: int
    trades_only: bool = False
    replay_from_start: bool = False
    counters: dict[str, int] = field(default_factory=new_counters)
    instrument_ids: frozenset[int] | None = None
    window_field: str = "ts_event"  # "ts_recv" for interval schemas (bbo-1s/1m: ts_event is the last trade's)

    def _selected(self, ids: np.ndarray) -> np.ndarray:
        if self.instrument_ids is None:
            return ids == np.uint32(self.instrument_id)
        wanted = np.fromiter(self.instrument_ids, dtype=np.uint32, count=len(self.instrument_ids))
        return np.isin(ids, wanted)

    def rows(self, records: np.ndarray) -> np.ndarray | slice:
        """Indices of the kept records of ``records`` (``slice(None)`` when all are kept, to spare a
        gather); counts dropped ones in ``counters``."""
        self.counters["records_read"] += len(records)
        ts = records[self.window_field]
        in_window = (ts >= np.uint64(self.start_ns)) & (ts < np.uint64(self.end_ns))
        if self.trades_only:
            in_window &= records["action"] == b"T"
        ids = records["instrument_id"]
        front = self._selected(ids)
        others = in_window & ~front
        if others.any():
            known = np.isin(ids[others], np.fromiter(self.known_ids, dtype=np.uint32, count=len(self.known_ids)))
            self.counters["other_instrument_records"] += int(known.sum())
            self.counters["unknown_instrument_records"] += int((~known).sum())
        keep = front & (ts < np.uint64(self.end_ns)) if self.replay_from_start else front & in_window
        if self.trades_only and self.replay_from_start:
            keep &= records["action"] == b"T"
        return slice(None) if keep.all() else np.flatnonzero(keep)


@njit(cache=True)
def _order_keys(ts_recv, sequence, flags, state):
    # Sort keys in file order. A record flagged F_BAD_TS_RECV (every MBO snapshot record: its ts_recv
    # is the snapshot time and its sequence the order's original one) has no receive time of its own:
    # it takes the key of the record before it, so sorting never moves it. A record is out of order
    # when its key is below the running lexicographic maximum of the keys before it in the file.
    # state = [previous key ts, previous key sequence, max ts, max sequence, has previous].
    n = ts_recv.shape[0]
    key_ts = np.empty(n, np.int64)
    key_seq = np.empty(n, np.int64)
    bad = np.zeros(n, np.bool_)
    prev_ts, prev_seq, max_ts, max_seq, has_prev = state[0], state[1], state[2], state[3], state[4]
    for i in range(n):
        if (flags[i] & 8) != 0 and has_prev == 1:
            t = prev_ts
            s = prev_seq
        else:
            t = ts_recv[i]
            s = sequence[i]
        key_ts[i] = t
        key_seq[i] = s
        prev_ts = t
        prev_seq = s
        has_prev = 1
        if t < max_ts or (t == max_ts and s < max_seq):
            bad[i] = True
        else:
            max_ts = t
            max_seq = s
    state[0], state[1], state[2], state[3], state[4] = prev_ts, prev_seq, max_ts, max_seq, has_prev
    return key_ts, key_seq, bad


def _take(batch: Batch, rows: np.ndarray) -> Batch:
    return {k: v[rows] for k, v in batch.items()}


def _concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


# The sort key of a batch row is (KEY_TS, KEY_SEQ): (ts_recv, sequence), except for records flagged
# F_BAD_TS_RECV, which carry their predecessor's key (see _order_keys).
KEY_TS = "_key_ts"
KEY_SEQ = "_key_seq"


def _stable_key_order(batch: Batch) -> np.ndarray:
    """Permutation sorting by the key, keeping input order among equal keys."""
    order = np.argsort(batch[KEY_SEQ], kind="stable")
    return order[np.argsort(batch[KEY_TS][order], kind="stable")]


def _key_le(batch: Batch, ts: int, seq: int) -> np.ndarray:
    t = batch[KEY_TS]
    return (t < ts) | ((t == ts) & (batch[KEY_SEQ] <= seq))


def _key_lt(batch: Batch, ts: int, seq: int) -> np.ndarray:
    t = batch[KEY_TS]
    return (t < ts) | ((t == ts) & (batch[KEY_SEQ] < seq))


def _first_key(batch: Batch) -> tuple[int, int]:
    return int(batch[KEY_TS][0]), int(batch[KEY_SEQ][0])


def _last_key(batch: Batch) -> tuple[int, int]:
    return int(batch[KEY_TS][-1]), int(batch[KEY_SEQ][-1])


def _size(batch: Batch) -> int:
    return len(batch["ts_recv"])


#: Rows within this receive-time span of a chunk's end are held back until the next chunk is read, so
#: a record up to this late is put back in order even across a chunk boundary (ns).
REORDER_HORIZON_NS = 1_000_000_000


def _copy(batch: Batch) -> Batch:
    return {k: v.copy() for k, v in batch.items()}


def ordered_file_batches(
    path: Path,
    selection: RecordSelection,
    decode: Callable[[np.ndarray, np.ndarray], Batch],
    chunk_records: int,
) -> Iterator[Batch]:
    """Decoded, selected records of one file, sorted by (ts_recv, sequence), in bounded chunks.

    Rule: a chunk is sorted (stably) when it holds out-of-order records; its rows within
    ``REORDER_HORIZON_NS`` of its last key (at most ``chunk_records`` rows) are held back and merged
    with the next chunk, so disorder up to that span is repaired wherever chunks split. A record whose
    key is below a row already emitted is dropped (``late_records_dropped``). Updates
    ``records_kept`` and ``out_of_order_records``.

    Raises:
        RawDataError: the file is truncated or corrupt, naming it.
    """
    counters = selection.counters
    key_state = np.array([0, 0, np.iinfo(np.int64).min, -1, 0], dtype=np.int64)
    carry: Batch | None = None
    emitted_key: tuple[int, int] | None = None

    def emit(batch: Batch) -> Batch:
        nonlocal emitted_key
        emitted_key = _last_key(batch)
        counters["records_kept"] += _size(batch)
        return batch

    for records in iter_records(path, chunk_records):
        rows = selection.rows(records)
        if not isinstance(rows, slice) and not len(rows):
            continue
        batch = decode(records, rows)
        if not _size(batch):
            continue
        batch[KEY_TS], batch[KEY_SEQ], bad = _order_keys(batch["ts_recv"], batch["sequence"], batch["flags"], key_state)
        n_bad = int(bad.sum())
        counters["out_of_order_records"] += n_bad
        if n_bad:
            if emitted_key is not None:
                late = _key_lt(batch, *emitted_key)
                if late.any():
                    counters["late_records_dropped"] += int(late.sum())
                    batch = _take(batch, np.flatnonzero(~late))
                    if not _size(batch):
                        continue
            batch = _take(batch, _stable_key_order(batch))
        if carry is not None:
            if _last_key(carry) <= _first_key(batch):
                yield emit(carry)  # the usual case: no disorder across the boundary, no copy of the chunk
            else:
                batch = _concat([carry, batch])
                batch = _take(batch, _stable_key_order(batch))
            carry = None
        n = _size(batch)
        cut = int(np.searchsorted(batch[KEY_TS], batch[KEY_TS][-1] - REORDER_HORIZON_NS, side="left"))
        cut = max(cut, n - chunk_records)
        if cut:
            yield emit({k: v[:cut] for k, v in batch.items()})
        # A copy, so the held-back rows do not keep the whole chunk's arrays alive.
        carry = _copy({k: v[cut:] for k, v in batch.items()})
    if carry is not None and _size(carry):
        yield emit(carry)


def merge_ordered(streams: list[Iterator[Batch]], names: list[str], check_overlap: bool = True) -> Iterator[Batch]:
    """Merge per-file sorted batch streams into one stream sorted by (ts_recv, sequence).

    Equal keys keep file order (``streams`` order). One batch per file is held at a time.
    ``check_overlap=False`` skips the duplicate-file check (callers selecting several instruments,
    whose files legitimately overlap in time, check duplicates per instrument themselves).

    Raises:
        RawDataError: two files both hold records over the same receive-time span (a duplicated
            download would double every record), naming both files.
    """
    if len(streams) == 1:
        yield from streams[0]
        return
    buffers: list[Batch | None] = [None] * len(streams)
    done = [False] * len(streams)
    spans: list[tuple[int, int] | None] = [None] * len(streams)
    while True:
        for i, stream in enumerate(streams):
            while buffers[i] is None and not done[i]:
                nxt = next(stream, None)
                if nxt is None:
                    done[i] = True
                elif _size(nxt):
                    buffers[i] = nxt
                    lo, hi = int(nxt[KEY_TS][0]), int(nxt[KEY_TS][-1])
                    spans[i] = (lo, hi) if spans[i] is None else (spans[i][0], hi)
        live = [i for i in range(len(streams)) if buffers[i] is not None]
        if not live:
            return
        if check_overlap:
            _check_overlap(spans, names)
        # Rows up to the smallest last key among files still running cannot be preceded by anything
        # those files have not yet delivered.
        pending = [i for i in live if not done[i]]
        bound = min((_last_key(buffers[i]) for i in pending), default=None)
        parts = []
        for i in live:
            buf = buffers[i]
            if bound is None:
                parts.append(buf)
                buffers[i] = None
                continue
            ready = _key_le(buf, *bound)
            if ready.all():
                parts.append(buf)
                buffers[i] = None
            elif ready.any():
                parts.append(_take(buf, np.flatnonzero(ready)))
                buffers[i] = _take(buf, np.flatnonzero(~ready))
        if not parts:
            continue
        out = _concat(parts)
        if len(parts) > 1:
            out = _take(out, _stable_key_order(out))
        yield out


def _check_overlap(spans: list[tuple[int, int] | None], names: list[str]) -> None:
    known = [(s, n) for s, n in zip(spans, names) if s is not None]
    for a in range(len(known)):
        for b in range(a + 1, len(known)):
            (lo_a, hi_a), name_a = known[a]
            (lo_b, hi_b), name_b = known[b]
            if lo_a <= hi_b and lo_b <= hi_a:
                raise RawDataError(
                    f"{name_a} and {name_b} both hold the front month's records over the same time: "
                    "remove the duplicate file"
                )


def session_batches(
    paths: Iterable[Path],
    selection: RecordSelection,
    decode: Callable[[np.ndarray, np.ndarray], Batch],
    chunk_records: int,
    check_overlap: bool = True,
) -> Iterator[Batch]:
    """Selected records of every file of one schema, decoded, merged and sorted by (ts_recv, sequence).

    ``check_overlap``: see :func:`merge_ordered`.
    Raises:
        RawDataError: a file is truncated/corrupt, or two files duplicate each other, naming them.
    """
    paths = list(paths)
    streams = [ordered_file_batches(p, selection, decode, chunk_records) for p in paths]
    yield from merge_ordered(streams, [p.name for p in paths], check_overlap)


# ------------------------------------------------------------------------------------------------
# Book quality
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def _book_ok_kernel(action, flags, bid_px, ask_px, bad_state):
    # Walk the events in order: an F_MAYBE_BAD_BOOK record opens a "bad" episode closed by the next
    # snapshot record or book clear; a crossed/locked top of book is bad only while it lasts.
    n = action.shape[0]
    ok = np.empty(n, np.bool_)
    crossed = 0
    maybe_bad = 0
    for i in range(n):
        f = flags[i]
        if action[i] == 82 or (f & 32) != 0:  # 'R' clear or F_SNAPSHOT
            bad_state = False
        if (f & 4) != 0:  # F_MAYBE_BAD_BOOK
            bad_state = True
            maybe_bad += 1
        is_crossed = bid_px[i] >= ask_px[i]  # False when either side is NaN (empty)
        if is_crossed:
            crossed += 1
        ok[i] = not (bad_state or is_crossed)
    return ok, bad_state, crossed, maybe_bad


class BookQuality:
    """Stateful ``book_ok`` over an ordered event stream of mbp-10 batches (see the module docstring)."""

    def __init__(self, counters: dict[str, int]):
        self.counters = counters
        self._bad = False

    def __call__(self, batch: Batch) -> np.ndarray:
        """``book_ok`` of each event of ``batch`` (ordered), carrying the F_MAYBE_BAD_BOOK state over."""
        flags = batch["flags"].astype(np.int64)
        ok, self._bad, crossed, maybe_bad = _book_ok_kernel(
            batch["action"], flags, batch["bid_px_00"], batch["ask_px_00"], self._bad
        )
        self.counters["crossed_book_records"] += int(crossed)
        self.counters["maybe_bad_book_records"] += int(maybe_bad)
        return ok


def count_crossed(batch: Batch, counters: dict[str, int]) -> None:
    """Add the top-of-book records of ``batch`` with best bid >= best ask to ``crossed_book_records``,
    and those flagged F_MAYBE_BAD_BOOK to ``maybe_bad_book_records``."""
    with np.errstate(invalid="ignore"):
        counters["crossed_book_records"] += int((batch["bid_px_00"] >= batch["ask_px_00"]).sum())
    if "flags" in batch:
        counters["maybe_bad_book_records"] += int(((batch["flags"] & F_MAYBE_BAD_BOOK) != 0).sum())


def at_interval_end(decode):
    """Wrap a decoder of interval records: ``ts_event`` becomes ``ts_recv`` (the instant the interval's book describes: Databento's ts_event of bbo-1s/bbo-1m/cbbo records is the last trade's time, often earlier, and using it would let a feature at T see a book published after T)."""

    def decoded(records: np.ndarray, rows: np.ndarray | slice) -> Batch:
        batch = decode(records, rows)
        batch["ts_event"] = batch["ts_recv"].copy()
        return batch

    return decoded
