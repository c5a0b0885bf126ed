"""silver_book_1s and silver_depth_flow_1m: bounded-memory summaries of the order book.

``silver_book_1s`` reduces every book state of bronze_futures_mbp10 (10 levels) or
bronze_futures_bbo (top of book) to one row per 1-second bin: the book at the last good state of
the bin and the order-flow imbalance (OFI) accumulated over the bin, best level (Cont, Kukanov &
Stoikov 2014) and per level (Xu, Gould & Howison 2018).

``silver_depth_flow_1m`` reduces the MBO-rebuilt rows of bronze_futures_mbp10 to the contracts
added, cancelled and filled per (1-minute bin, side, price): the raw material of replenishment.

Both read the bronze partition as an iterator of frames (``Lake.iter_batches``): each batch is
reduced with NumPy / polars and only per-bin partial aggregates and the last book state are kept,
so a 15 M-row full-depth day never sits in memory. Pure code: no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import numpy as np
import pandera.polars as pa
import polars as pl
from numba import njit
from pandera.api.polars.types import PolarsData
from pandera.engines.polars_engine import DateTime

from spymaster_resources.dbn_layout import F_SNAPSHOT
from spymaster_core.config import SpymasterConfig
from spymaster_core.units import NS_PER_MINUTE, NS_PER_SECOND
from ..schema_validation import validate_table

TS_DTYPE = pl.Datetime("ns", "UTC")
UTC_NS = DateTime(time_zone="UTC", time_unit="ns")
#: Book sources of bronze_futures_mbp10 and bronze_futures_bbo.
TOP_OF_BOOK_LEVELS = 1
_MBO_SOURCE = "mbo"


def _lv(i: int) -> str:
    return f"{i:02d}"


def book_1s_columns(config: SpymasterConfig) -> list[str]:
    """Column order of silver_book_1s for ``config.book_levels`` levels."""
    levels = range(config.book_levels)
    return (
        ["session_date", "ts_event", "source", "n_events"]
        + [f"bid_px_{_lv(i)}" for i in levels]
        + [f"ask_px_{_lv(i)}" for i in levels]
        + [f"bid_sz_{_lv(i)}" for i in levels]
        + [f"ask_sz_{_lv(i)}" for i in levels]
        + ["ofi_best"]
        + [f"ofi_level_{_lv(i)}" for i in levels]
        + ["book_levels"]
    )


def book_1s_dtypes(config: SpymasterConfig) -> dict[str, pl.DataType]:
    """Column -> polars dtype of silver_book_1s."""
    out: dict[str, pl.DataType] = {}
    for name in book_1s_columns(config):
        if name == "session_date":
            out[name] = pl.Date()
        elif name == "ts_event":
            out[name] = TS_DTYPE
        elif name == "source":
            out[name] = pl.Utf8()
        elif name == "n_events":
            out[name] = pl.Int64()
        elif name == "book_levels":
            out[name] = pl.Int8()
        elif "_sz_" in name:
            out[name] = pl.Int64()
        else:
            out[name] = pl.Float64()
    return out


DEPTH_FLOW_DTYPES: dict[str, pl.DataType] = {
    "session_date": pl.Date(),
    "ts_event": TS_DTYPE,
    "side": pl.Utf8(),
    "price": pl.Float64(),
    "added_size": pl.Int64(),
    "cancelled_size": pl.Int64(),
    "filled_size": pl.Int64(),
}


def empty_book_1s(config: SpymasterConfig) -> pl.DataFrame:
    """An empty silver_book_1s frame with the full schema (for an empty partition)."""
    return pl.DataFrame(schema=book_1s_dtypes(config))


def empty_depth_flow_1m() -> pl.DataFrame:
    """An empty silver_depth_flow_1m frame with the full schema (no MBO source that day)."""
    return pl.DataFrame(schema=DEPTH_FLOW_DTYPES)


# ----------------------------------------------------------------------------------------------
# OFI


def level_ofi(
    bid_px: np.ndarray,
    bid_sz: np.ndarray,
    ask_px: np.ndarray,
    ask_sz: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """Order-flow imbalance e_n of each book state against the state before it, per level.

    Inputs are ``(n, L)`` arrays of consecutive good book states in event order: prices in points
    (an empty bid level is ``-inf``, an empty ask level ``+inf``, so a level appearing counts as size
    added and a level emptying as size removed), sizes in contracts. ``previous`` is the state
    (four ``(L,)`` arrays) before the first row, or None at the start of the session, where the
    first state has no predecessor and e = 0.

    Cont, Kukanov & Stoikov (2014), "The price impact of order book events", eq. (2), applied to
    each level m as in Xu, Gould & Howison (2018), "Multi-level order-flow imbalance in a limit
    order book":
    e_n = 1{Pb_n >= Pb_{n-1}} qb_n - 1{Pb_n <= Pb_{n-1}} qb_{n-1}
          - 1{Pa_n <= Pa_{n-1}} qa_n + 1{Pa_n >= Pa_{n-1}} qa_{n-1}.

    Returns an ``(n, L)`` Float64 array of e_n in contracts.
    """
    # The first state differenced with itself gives exactly 0: the "no predecessor" rule.
    first = previous if previous is not None else (bid_px[0], bid_sz[0], ask_px[0], ask_sz[0])
    if bid_px.shape[0] == 0:
        return np.zeros(bid_px.shape, dtype=np.float64)
    return _ofi_kernel(bid_px, bid_sz, ask_px, ask_sz, first[0], first[1], first[2], first[3])


@njit(cache=True)
def _ofi_kernel(bid_px, bid_sz, ask_px, ask_sz, prev_bid_px, prev_bid_sz, prev_ask_px, prev_ask_sz):
    """Loop form of level_ofi's eq. (2) (one pass, no shifted copies of the batch).

    Level-major output (polars' to_numpy gives column-major inputs), returned transposed so that
    each level's column is contiguous.
    """
    n, n_levels = bid_px.shape
    out_by_level = np.empty((n_levels, n), dtype=np.float64)
    for m in range(n_levels):
        pb, qb, pa, qa = prev_bid_px[m], prev_bid_sz[m], prev_ask_px[m], prev_ask_sz[m]
        for i in range(n):
            bp, bq, ap, aq = bid_px[i, m], bid_sz[i, m], ask_px[i, m], ask_sz[i, m]
            # Branch-free form: price moves are unpredictable, so branches would mispredict.
            e = (bp >= pb) * bq - (bp <= pb) * qb - (ap <= pa) * aq + (ap >= pa) * qa
            out_by_level[m, i] = e
            pb, qb, pa, qa = bp, bq, ap, aq
    return out_by_level.T


def _bin_end_ns(ts: pl.Expr, bin_ns: int) -> pl.Expr:
    """End of the (end - bin, end] bin holding each instant (an instant on a boundary closes its bin)."""
    ns = ts.dt.epoch("ns")
    return ((ns + (bin_ns - 1)) // bin_ns) * bin_ns


class BookReducer:
    """Streams batches of book rows into per-second partial aggregates, carrying the last good state.

    ``add(batch)`` takes the next rows in file order (ts_recv, sequence); ``result(session_date)``
    is silver_book_1s of every row added so far and may be called again after more rows (the
    trader's screen grows the book this way, bar by bar). ``counts`` tallies skipped rows.
    """

    def __init__(self, config: SpymasterConfig, levels: int, counts: dict[str, int]):
        self.config = config
        self.levels = levels
        self.counts = counts
        self.previous: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.partials: list[pl.DataFrame] = []

    def _matrix(self, frame: pl.DataFrame, prefix: str, fill: float) -> np.ndarray:
        cols = [f"{prefix}_{_lv(i)}" for i in range(self.levels)]
        return frame.select(pl.col(cols).cast(pl.Float64).fill_null(fill)).to_numpy().reshape(frame.height, self.levels)

    def add(self, batch: pl.DataFrame) -> None:
        if batch.is_empty():
            return
        has_book_ok = "book_ok" in batch.columns
        ok = pl.col("book_ok").fill_null(False) if has_book_ok else pl.lit(True)
        quoted = (
            pl.col("bid_px_00").is_not_null()
            & pl.col("ask_px_00").is_not_null()
            & (pl.col("bid_px_00") < pl.col("ask_px_00"))
        )
        snapshot = (pl.col("flags").cast(pl.Int64) & F_SNAPSHOT) != 0 if "flags" in batch.columns else pl.lit(False)
        frame = batch.with_columns(
            _bin=_bin_end_ns(pl.col("ts_event"), NS_PER_SECOND),
            _ok=ok,
            _quoted=quoted.fill_null(False),
            _snapshot=snapshot.fill_null(False),
        )
        self.counts["rows"] += frame.height
        self.counts["skipped_book_not_ok"] += int((~frame["_ok"]).sum())
        self.counts["skipped_crossed_or_empty"] += int((frame["_ok"] & ~frame["_quoted"]).sum())
        events = frame.group_by("_bin", maintain_order=True).agg(
            n_events=pl.len(), source=pl.col("source").last()
        )
        good = frame.filter(pl.col("_ok") & pl.col("_quoted"))
        if good.is_empty():
            self.partials.append(events.with_columns(_has_state=pl.lit(False)))
            return
        # Empty deeper levels: bid -inf / ask +inf with size 0 (see level_ofi).
        bid_px = self._matrix(good, "bid_px", -np.inf)
        ask_px = self._matrix(good, "ask_px", np.inf)
        bid_sz = self._matrix(good, "bid_sz", 0.0)
        ask_sz = self._matrix(good, "ask_sz", 0.0)
        ofi = level_ofi(bid_px, bid_sz, ask_px, ask_sz, self.previous)
        # A book being (re)built from snapshot records is not order flow: its states only serve
        # as the predecessor of the next live event.
        ofi[good["_snapshot"].to_numpy()] = 0.0
        self.previous = (bid_px[-1].copy(), bid_sz[-1].copy(), ask_px[-1].copy(), ask_sz[-1].copy())

        levels = range(self.levels)
        book_cols = (
            [f"bid_px_{_lv(i)}" for i in levels]
            + [f"ask_px_{_lv(i)}" for i in levels]
            + [f"bid_sz_{_lv(i)}" for i in levels]
            + [f"ask_sz_{_lv(i)}" for i in levels]
        )
        ofi_cols = [f"ofi_level_{_lv(i)}" for i in levels]
        states = (
            good.select("_bin", *book_cols)
            .with_columns([pl.Series(name, ofi[:, i]) for i, name in enumerate(ofi_cols)])
            .group_by("_bin", maintain_order=True)
            .agg([pl.col(c).last() for c in book_cols] + [pl.col(c).sum() for c in ofi_cols])
        )
        self.partials.append(
            events.join(states, on="_bin", how="left", maintain_order="left").with_columns(
                _has_state=pl.col(book_cols[0]).is_not_null()
            )
        )

    def result(self, session_date: date) -> pl.DataFrame:
        config = self.config
        dtypes = book_1s_dtypes(config)
        if not self.partials:
            return empty_book_1s(config)
        levels = range(self.levels)
        book_cols = (
            [f"bid_px_{_lv(i)}" for i in levels]
            + [f"ask_px_{_lv(i)}" for i in levels]
            + [f"bid_sz_{_lv(i)}" for i in levels]
            + [f"ask_sz_{_lv(i)}" for i in levels]
        )
        ofi_cols = [f"ofi_level_{_lv(i)}" for i in levels]
        partial = pl.concat(self.partials, how="diagonal_relaxed")
        # A bin can straddle two batches (rows sorted by ts_recv, binned by ts_event): sum its counts
        # and OFI, and keep the book of its last batch that had a good state.
        merged = (
            partial.group_by("_bin", maintain_order=True)
            .agg(
                n_events=pl.col("n_events").sum(),
                source=pl.col("source").last(),
                **{c: pl.col(c).filter(pl.col("_has_state")).last() for c in book_cols},
                **{c: pl.col(c).fill_null(0.0).sum() for c in ofi_cols},
            )
            .sort("_bin")
        )
        top_only = self.levels == TOP_OF_BOOK_LEVELS
        out = merged.with_columns(
            session_date=pl.lit(session_date, dtype=pl.Date),
            ts_event=pl.from_epoch(pl.col("_bin"), time_unit="ns").dt.replace_time_zone("UTC"),
            ofi_best=pl.col("ofi_level_00"),
            book_levels=pl.lit(self.levels, dtype=pl.Int8),
        )
        if top_only:
            # Top-of-book source: deeper levels and per-level OFI are unknown (null), not zero.
            out = out.with_columns(
                [pl.lit(None, dtype=dtypes[c]).alias(c) for c in book_1s_columns(config) if c not in out.columns]
            ).with_columns(pl.lit(None, dtype=pl.Float64).alias("ofi_level_00"))
        return out.select([pl.col(c).cast(dtypes[c]) for c in book_1s_columns(config)])


def book_1s(
    batches: Iterable[pl.DataFrame],
    session_date: date,
    config: SpymasterConfig,
    counts: dict[str, int] | None = None,
) -> pl.DataFrame:
    """silver_book_1s: the book and its order-flow imbalance per 1-second bin, streamed over batches.

    Input: the rows of one session of bronze_futures_mbp10 (columns ts_event, book_ok, source,
    bid/ask_px_00..09 points, bid/ask_sz_00..09 contracts) or of bronze_futures_bbo (no book_ok,
    levels _00 only), as an iterator of frames in file order (ts_recv, sequence). The depth is
    ``config.book_levels`` when the frames carry ``bid_px_{book_levels-1}``, else top of book (1).

    Rule for bad rows (counted in ``counts`` when given: "rows", "skipped_book_not_ok",
    "skipped_crossed_or_empty"): a row with book_ok false, or with a null bid or ask or bid >= ask,
    is skipped for OFI and for the book snapshot; the next good state is differenced against the
    last good state before it. Such rows still count in their bin's n_events. Rows of a book
    snapshot (flags & F_SNAPSHOT, when a flags column exists) update the book with e_n = 0.

    Output, one row per 1-second bin holding at least one record, sorted by ts_event:
    session_date (Date); ts_event (bin END, Datetime ns UTC; the bin covers ts_event in
    (end - 1 s, end]); source (Utf8, the last record's); n_events (Int64, records in the bin);
    bid_px_00..09, ask_px_00..09 (Float64 points) and bid_sz_00..09, ask_sz_00..09 (Int64
    contracts): the book at the last good record of the bin (all null when the bin has none; levels
    01..09 null for a top-of-book source); ofi_best (Float64 contracts): sum over the bin's good
    states of the Cont-Kukanov-Stoikov e_n (see :func:`level_ofi`; 0 with no good state);
    ofi_level_00..09 (Float64 contracts): the same per level (Xu, Gould & Howison 2018; null for
    a top-of-book source); book_levels (Int8: 10 or 1). The first good state of the session has
    e = 0; the first state of a batch is differenced against the last good state of the previous
    batch, so the result does not depend on the batch size.

    Raises KeyError when a batch lacks ts_event, source or the _00 price / size columns.
    """
    reducer: BookReducer | None = None
    tally = {"rows": 0, "skipped_book_not_ok": 0, "skipped_crossed_or_empty": 0}
    for batch in batches:
        if reducer is None:
            deep = f"bid_px_{_lv(config.book_levels - 1)}" in batch.columns
            reducer = BookReducer(config, config.book_levels if deep else TOP_OF_BOOK_LEVELS, tally)
        reducer.add(batch)
    if counts is not None:
        counts.update(tally)
    if reducer is None:
        return empty_book_1s(config)
    return reducer.result(session_date)


# ----------------------------------------------------------------------------------------------
# MBO depth flow


def depth_flow_1m(
    batches: Iterable[pl.DataFrame],
    session_date: date,
    config: SpymasterConfig,
    counts: dict[str, int] | None = None,
) -> pl.DataFrame:
    """silver_depth_flow_1m: contracts added, cancelled and filled per (1-minute bin, side, price), from MBO.

    Input: bronze_futures_mbp10 rows of one session as an iterator of frames (columns ts_event,
    source, action, side, price, size, flags, book_ok, and prev_price/prev_size when present).
    Only rows with source "mbo" are used; when there are none the result is the empty frame with
    the schema.

    Rules: action A adds ``size``, C cancels ``size`` (the cancelled remainder), F fills ``size``
    (F is on the resting order's side), M adds ``size`` when positive and cancels ``-size`` when
    negative (size is new - old); an M that moved the order (``prev_price`` not null) adds ``size``
    at ``price`` and cancels ``prev_size`` at ``prev_price``; T is ignored (the F rows carry the fills) and so is R. Rows of a
    book snapshot (flags & F_SNAPSHOT) are not market activity and are skipped, and so are rows
    with book_ok false (the engine's order sizes may be wrong then), rows with side N or a null
    price; ``counts`` (when given) receives "rows", "used", "skipped_snapshot",
    "skipped_book_not_ok".

    Output, sorted by ts_event, side, price: session_date (Date); ts_event (bin END, Datetime ns
    UTC; the bin covers (end - 1 min, end]); side (Utf8: B resting bid, A resting ask); price
    (Float64 points); added_size, cancelled_size, filled_size (Int64 contracts, >= 0).
    ``config`` is accepted for symmetry with the other silver builders.
    """
    del config  # the bin length and rules are fixed by the table's contract
    reducer = DepthFlowReducer()
    for batch in batches:
        reducer.add(batch)
    if counts is not None:
        counts.update(reducer.tally)
    return reducer.result(session_date)


class DepthFlowReducer:
    """silver_depth_flow_1m streamed: ``add(batch)`` takes the next bronze_futures_mbp10 rows (see
    :func:`depth_flow_1m` for the rules), ``result(session_date)`` is the table of every row added so
    far and may be called again after more rows (the trader's screen grows it bar by bar).
    ``tally``: rows, used, skipped_snapshot, skipped_book_not_ok."""

    def __init__(self) -> None:
        self.tally = {"rows": 0, "used": 0, "skipped_snapshot": 0, "skipped_book_not_ok": 0}
        self.partials: list[pl.DataFrame] = []

    def add(self, batch: pl.DataFrame) -> None:
        """Fold in one batch of rows (file order)."""
        tally, partials = self.tally, self.partials
        if batch.is_empty():
            return
        mbo = batch.filter(pl.col("source") == _MBO_SOURCE)
        if mbo.is_empty():
            return
        tally["rows"] += mbo.height
        snapshot = (pl.col("flags").cast(pl.Int64) & F_SNAPSHOT) != 0
        ok = pl.col("book_ok").fill_null(False)
        tally["skipped_snapshot"] += int(mbo.select(snapshot.sum()).item())
        tally["skipped_book_not_ok"] += int(mbo.select((~snapshot & ~ok).sum()).item())
        size = pl.col("size").cast(pl.Int64)
        action = pl.col("action")
        used = mbo.filter(
            ~snapshot
            & ok
            & action.is_in(["A", "C", "F", "M"])
            & pl.col("side").is_in(["B", "A"])
            & pl.col("price").is_not_null()
        )
        tally["used"] += used.height
        if used.is_empty():
            return
        if "prev_price" not in used.columns:
            used = used.with_columns(prev_price=pl.lit(None, dtype=pl.Float64), prev_size=pl.lit(0, dtype=pl.Int64))
        moved = pl.col("prev_price").is_not_null() & (action == "M")
        at_price = used.select(
            _bin=_bin_end_ns(pl.col("ts_event"), NS_PER_MINUTE),
            side=pl.col("side"),
            price=pl.col("price").cast(pl.Float64),
            added_size=pl.when(action == "A").then(size).when(action == "M").then(size.clip(lower_bound=0)).otherwise(0),
            cancelled_size=pl.when(action == "C").then(size).when(action == "M").then((-size).clip(lower_bound=0)).otherwise(0),
            filled_size=pl.when(action == "F").then(size).otherwise(0),
        )
        # The level a moved order left loses its size: a cancellation there.
        left = used.filter(moved).select(
            _bin=_bin_end_ns(pl.col("ts_event"), NS_PER_MINUTE),
            side=pl.col("side"),
            price=pl.col("prev_price").cast(pl.Float64),
            added_size=pl.lit(0, dtype=pl.Int64),
            cancelled_size=pl.col("prev_size").cast(pl.Int64),
            filled_size=pl.lit(0, dtype=pl.Int64),
        )
        partials.append(
            pl.concat([at_price, left], how="vertical_relaxed")
            .group_by("_bin", "side", "price")
            .agg(pl.col("added_size", "cancelled_size", "filled_size").sum())
        )

    def result(self, session_date: date) -> pl.DataFrame:
        """The table of every row added so far (sorted by ts_event, side, price)."""
        partials = self.partials
        if not partials:
            return empty_depth_flow_1m()
        return (
            pl.concat(partials)
            .group_by("_bin", "side", "price")
            .agg(pl.col("added_size", "cancelled_size", "filled_size").sum())
            .sort("_bin", "side", "price")
            .select(
                session_date=pl.lit(session_date, dtype=pl.Date),
                ts_event=pl.from_epoch(pl.col("_bin"), time_unit="ns").dt.replace_time_zone("UTC"),
                side=pl.col("side"),
                price=pl.col("price"),
                added_size=pl.col("added_size").cast(pl.Int64),
                cancelled_size=pl.col("cancelled_size").cast(pl.Int64),
                filled_size=pl.col("filled_size").cast(pl.Int64),
            )
        )


# ----------------------------------------------------------------------------------------------
# Schemas and descriptions


def book_1s_column_descriptions(config: SpymasterConfig) -> dict[str, str]:
    """Column -> description (with units) of silver_book_1s."""
    out = {
        "session_date": "CME Globex trade date of the session.",
        "ts_event": "End of the 1-second bin (UTC); the bin covers record ts_event in (end - 1 s, end].",
        "source": "Bronze source of the book: mbp-10, mbo (rebuilt), mbp-1, bbo-1s, bbo-1m or tbbo.",
        "n_events": "Book records in the bin (including skipped crossed / bad-book rows).",
        "ofi_best": "Sum over the bin of the Cont-Kukanov-Stoikov (2014) best-level OFI e_n, contracts.",
        "book_levels": "Depth of the source: 10 (mbp-10 / mbo) or 1 (top of book).",
    }
    for i in range(config.book_levels):
        lv = _lv(i)
        out[f"bid_px_{lv}"] = f"Bid price of level {i} at the last good record of the bin, points (null: empty or unknown)."
        out[f"ask_px_{lv}"] = f"Ask price of level {i} at the last good record of the bin, points (null: empty or unknown)."
        out[f"bid_sz_{lv}"] = f"Bid size of level {i} at the last good record of the bin, contracts."
        out[f"ask_sz_{lv}"] = f"Ask size of level {i} at the last good record of the bin, contracts."
        out[f"ofi_level_{lv}"] = f"Sum over the bin of the level-{i} OFI (Xu, Gould & Howison 2018), contracts; null for top of book."
    return {c: out[c] for c in book_1s_columns(config)}


DEPTH_FLOW_DESCRIPTIONS: dict[str, str] = {
    "session_date": "CME Globex trade date of the session.",
    "ts_event": "End of the 1-minute bin (UTC); the bin covers MBO event ts_event in (end - 1 min, end].",
    "side": "Side of the resting orders: B bid, A ask.",
    "price": "Price of the orders, points.",
    "added_size": "Contracts added (A, and the positive part of M size changes), contracts.",
    "cancelled_size": "Contracts cancelled (C, and the negative part of M size changes), contracts.",
    "filled_size": "Contracts of resting orders filled (F), contracts.",
}


def silver_book_1s_schema(config: SpymasterConfig) -> pa.DataFrameSchema:
    """Strict pandera schema of silver_book_1s: dtypes, unique bin ends, sizes >= 0, best bid < best ask."""
    descriptions = book_1s_column_descriptions(config)
    dtypes = book_1s_dtypes(config)
    columns: dict[str, pa.Column] = {}
    for name in book_1s_columns(config):
        dtype = UTC_NS if name == "ts_event" else dtypes[name]
        checks = None
        if name == "n_events":
            checks = pa.Check.ge(1)
        elif name == "book_levels":
            checks = pa.Check.isin([TOP_OF_BOOK_LEVELS, config.book_levels])
        elif "_sz_" in name:
            checks = pa.Check.ge(0)
        nullable = name not in ("session_date", "ts_event", "source", "n_events", "ofi_best", "book_levels")
        columns[name] = pa.Column(dtype, checks=checks, nullable=nullable, description=descriptions[name])

    def best_bid_below_ask(data: PolarsData) -> pl.LazyFrame:
        bid, ask = pl.col("bid_px_00"), pl.col("ask_px_00")
        return data.lazyframe.select((bid.is_null() | ask.is_null() | (bid < ask)).alias("check"))

    return pa.DataFrameSchema(
        columns,
        checks=[pa.Check(best_bid_below_ask, name="best_bid_below_ask")],
        strict=True,
        unique=["ts_event"],
        name="silver_book_1s",
    )


def silver_depth_flow_1m_schema() -> pa.DataFrameSchema:
    """Strict pandera schema of silver_depth_flow_1m: sides B/A, sizes >= 0, unique (ts_event, side, price)."""
    d = DEPTH_FLOW_DESCRIPTIONS
    return pa.DataFrameSchema(
        {
            "session_date": pa.Column(pl.Date, description=d["session_date"]),
            "ts_event": pa.Column(UTC_NS, description=d["ts_event"]),
            "side": pa.Column(pl.Utf8, checks=pa.Check.isin(["B", "A"]), description=d["side"]),
            "price": pa.Column(pl.Float64, description=d["price"]),
            "added_size": pa.Column(pl.Int64, checks=pa.Check.ge(0), description=d["added_size"]),
            "cancelled_size": pa.Column(pl.Int64, checks=pa.Check.ge(0), description=d["cancelled_size"]),
            "filled_size": pa.Column(pl.Int64, checks=pa.Check.ge(0), description=d["filled_size"]),
        },
        strict=True,
        unique=["ts_event", "side", "price"],
        name="silver_depth_flow_1m",
    )


def validate_silver_book_1s(frame: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Validate a silver_book_1s frame; returns it, or raises SchemaError whose message starts with "silver_book_1s:"."""
    return validate_table(silver_book_1s_schema(config), frame, "silver_book_1s")


def validate_silver_depth_flow_1m(frame: pl.DataFrame) -> pl.DataFrame:
    """Validate a silver_depth_flow_1m frame; raises SchemaError whose message starts with "silver_depth_flow_1m:"."""
    return validate_table(silver_depth_flow_1m_schema(), frame, "silver_depth_flow_1m")
