"""Build the bronze tables of one session from the raw DBN catalog (pure: no Dagster)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import RawDataError
from ..sessions import et_to_utc, session_bounds_utc, trading_sessions
from spymaster_resources.raw_files import BadDbnFile, DbnFileInfo, RawCatalog, _ns, read_definitions, read_ohlcv_1m, symbol_map
from .front_month import FrontMonth, select_front_month
from .market_records import (
    BBO_SCHEMA,
    BBO_SOURCES,
    MBP10_SCHEMA,
    MBP10_SOURCES,
    TRADE_SOURCES,
    TRADES_SCHEMA,
    Batch,
    BookQuality,
    RecordSelection,
    at_interval_end,
    batch_frame,
    count_crossed,
    decode_bbo,
    decode_mbo,
    decode_mbp10,
    decode_trades,
    new_counters,
    session_batches,
)
from .trade_bars import trade_volume_by_instrument, trades_to_ohlcv_1m


def definition_files_for_session(catalog: RawCatalog, session_date: date, config: SpymasterConfig) -> list[DbnFileInfo]:
    """Definition files published between 24 h before the session opens and its close.

    A file is taken when its header request range ``[start, end)`` overlaps that window, or (no
    header end) when its records' ts_event range does. Sorted by path.

    Raises:
        RawDataError: an unreadable file, naming it.
    """
    start, end = session_bounds_utc(session_date, config)
    lo, hi = _ns(start - timedelta(days=1)), _ns(end)
    out = []
    for info in catalog.files("definition"):
        span = file_span(info)
        if span is not None and span[0] < hi and span[1] > lo:
            out.append(info)
    return sorted(out, key=lambda f: str(f.path))


def file_span(info: DbnFileInfo) -> tuple[int, int] | None:
    """``[lo, hi)`` ns a file covers: its header request range, else its record ts_event range; None when empty.

    Both come from the file's inspection (``raw_files.inspect_file``, kept in raw/'s inventory), so
    choosing a session's definition files does not reopen every file of raw/ for every session.
    """
    if info.header_start is not None and info.header_end is not None and info.header_end > info.header_start:
        return info.header_start, info.header_end
    if info.ts_min is None or info.ts_max is None:
        return None
    return info.ts_min, info.ts_max + 1


def session_definitions(catalog: RawCatalog, session_date: date, config: SpymasterConfig) -> tuple[pl.DataFrame, list[str]]:
    """Definitions known by the session's end, futures outrights and options only (spreads dropped).

    Reads the ``definition`` files of :func:`definition_files_for_session` (chosen by their header
    request range: a definition record's ts_event is the instrument's last modification, often weeks
    earlier); the latest definition per instrument published before the close wins. Returns the bronze_definitions
    frame (read_definitions columns + session_date) and the file names used (empty when none exist).
    """
    _, end = session_bounds_utc(session_date, config)
    files = definition_files_for_session(catalog, session_date, config)
    defs = read_definitions([f.path for f in files], until=end)
    defs = defs.filter(pl.col("instrument_class").is_in(["F", "C", "P"]))
    return defs.with_columns(pl.lit(session_date).alias("session_date")).select("session_date", *defs.columns), [f.path.name for f in files]


@dataclass(frozen=True)
class SessionBars:
    """The front month's 1-minute bars of one session and how they were chosen."""

    bars: pl.DataFrame
    front_month: FrontMonth
    files: list[str]
    source: str = "ohlcv-1m"  # "trades" when aggregated from trades
    trade_source: str | None = None  # DBN schema of those trades


def session_ohlcv_1m(catalog: RawCatalog, session_date: date, definitions: pl.DataFrame, config: SpymasterConfig) -> SessionBars:
    """The bronze_futures_ohlcv_1m frame of a session: front-month 1-minute bars within the session bounds.

    Columns: session_date, ts_event (bar open, UTC), instrument_id, raw_symbol, open/high/low/close
    (index points), volume (contracts), source ("ohlcv-1m", or "trades" when no ohlcv-1m file covers
    the session but trades do: see :func:`session_ohlcv_1m_from_trades`).

    Raises:
        RawDataError: neither an ohlcv-1m file nor trades cover the session, or no ES outright traded in it.
    """
    start, end = session_bounds_utc(session_date, config)
    files = catalog.files_for_window("ohlcv-1m", start, end)
    if not files:
        if find_source(catalog, TRADE_SOURCES, session_date, config) is not None:
            return session_ohlcv_1m_from_trades(catalog, session_date, definitions, config)
        raise RawDataError(f"session {session_date}: no ohlcv-1m or trades DBN file under {catalog.raw_dir} covers {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
    bars = read_ohlcv_1m([f.path for f in files], start, end)
    front = select_front_month(bars, definitions, session_date, config.spec)
    out = (
        bars.filter(pl.col("instrument_id") == front.instrument_id)
        .with_columns(raw_symbol=pl.lit(front.raw_symbol), session_date=pl.lit(session_date), source=pl.lit("ohlcv-1m"))
        .select("session_date", "ts_event", "instrument_id", "raw_symbol", "open", "high", "low", "close", "volume", "source")
    )
    return SessionBars(bars=out, front_month=front, files=[f.path.name for f in files])


def sessions_with_rth_data(catalog: RawCatalog, config: SpymasterConfig, start: date | None = None, end: date | None = None) -> list[date]:
    """Calendar sessions whose regular-hours open (09:30 ET) lies inside some ohlcv-1m file's records,
    or inside the records of a file bars can be aggregated from (trades, tbbo, mbp-1, mbp-10, mbo).

    A session that only has its evening opening in the raw files (the next UTC file is missing) is
    not listed: it has no regular-hours bars to anchor on. A bar file whose header is readable but
    whose records are not counts with its header range, so its sessions are listed and then fail
    naming it, instead of silently dropping out of the range.
    """
    bar_schemas = ("ohlcv-1m", *TRADE_SOURCES)
    files = [f for schema in bar_schemas for f in catalog.files(schema)]
    spans = [(f.ts_min, f.ts_max) for f in files if f.ts_min is not None]
    spans += [
        (bad.start, bad.end - 1)
        for bad in catalog.problems()
        if isinstance(bad, BadDbnFile) and bad.schema in bar_schemas and bad.start is not None and bad.end is not None
    ]
    if not spans:
        return []
    lo = start or datetime.fromtimestamp(min(s for s, _ in spans) / 1e9).date()
    hi = end or datetime.fromtimestamp(max(e for _, e in spans) / 1e9).date() + timedelta(days=1)
    out = []
    for d in trading_sessions(lo, hi, config):
        open_ns = int(et_to_utc(d, config.rth_open).timestamp()) * 1_000_000_000
        if any(s <= open_ns <= e for s, e in spans):
            out.append(d)
    return out


# ------------------------------------------------------------------------------------------------
# Order flow: trades, top of book, 10-level book (issue 3)
# ------------------------------------------------------------------------------------------------


@dataclass
class SessionStream:
    """One bronze order-flow table of a session, produced chunk by chunk.

    ``frames`` yields polars frames of ``schema`` in (ts_recv, sequence) order; ``counters`` (the
    bad-input counts of :mod:`.market_records`) are complete once ``frames`` is exhausted. ``source``
    is the DBN schema read, or ``"none"`` when no file of any accepted schema covers the session
    (``frames`` then yields nothing and the partition is written empty).
    """

    table: str
    source: str
    files: list[str]
    schema: dict[str, pl.DataType]
    frames: Iterator[pl.DataFrame]
    counters: dict[str, int] = field(default_factory=new_counters)


def find_source(
    catalog: RawCatalog, schemas: tuple[str, ...], session_date: date, config: SpymasterConfig, instrument_id: int | None = None
) -> tuple[str, list[DbnFileInfo]] | None:
    """The first DBN schema of ``schemas`` with files covering the session, and those files.

    With ``instrument_id``, a file whose symbology mappings name instruments but not this one (an
    options file beside the futures, say) does not count; a file without mappings does.
    Files are ordered by first record time then path (the merge keeps that order among equal keys).
    Returns None when no schema has a file in the session window.
    """
    start, end = session_bounds_utc(session_date, config)
    for schema in schemas:
        files = catalog.files_for_window(schema, start, end)
        if instrument_id is not None:
            files = [f for f in files if not (mapped := symbol_map(f.path)) or int(instrument_id) in mapped]
        if files:
            return schema, sorted(files, key=lambda f: (f.ts_min or 0, str(f.path)))
    return None


def known_instrument_ids(files: list[DbnFileInfo], definitions: pl.DataFrame) -> set[int]:
    """Instrument ids named by the files' symbology mappings or by the session's definitions."""
    ids: set[int] = set()
    for f in files:
        ids.update(symbol_map(f.path))
    if definitions.height:
        ids.update(int(i) for i in definitions["instrument_id"].to_list())
    return ids


def _selection(files, instrument_id, definitions, session_date, config, **kw) -> RecordSelection:
    start, end = session_bounds_utc(session_date, config)
    return RecordSelection(
        instrument_id=int(instrument_id),
        known_ids=known_instrument_ids(files, definitions),
        start_ns=_ns(start),
        end_ns=_ns(end),
        **kw,
    )


def _empty_stream(table: str, schema: dict[str, pl.DataType]) -> SessionStream:
    return SessionStream(table=table, source="none", files=[], schema=schema, frames=iter(()))


def _frames(batches: Iterator[Batch], schema, session_date, source, on_batch: Callable[[Batch], None] | None = None) -> Iterator[pl.DataFrame]:
    for batch in batches:
        if on_batch is not None:
            on_batch(batch)
        yield batch_frame(batch, schema, session_date, source)


def defined_price_trades(batches: Iterator[Batch], counters: dict[str, int]) -> Iterator[Batch]:
    """The trade batches without their trades of undefined price (dropped, counted ``undefined_price_trades``); empty batches skipped."""
    for batch in batches:
        undefined = np.isnan(batch["price"])
        if undefined.any():
            counters["undefined_price_trades"] += int(undefined.sum())
            batch = {k: v[~undefined] for k, v in batch.items()}
        if len(batch["ts_recv"]):
            yield batch


def session_trades(catalog: RawCatalog, session_date: date, instrument_id: int, definitions: pl.DataFrame, config: SpymasterConfig) -> SessionStream:
    """bronze_futures_trades of a session: the front month's trades, sorted by (ts_recv, sequence).

    Source: the ``trades`` schema, else the trade records (action 'T') of ``tbbo``, ``mbp-1``,
    ``mbp-10`` or ``mbo`` files, the first that covers the session. Trades with an undefined price are
    dropped (``undefined_price_trades``). ``side`` is the aggressor (B buyer, A seller, N none), as
    Databento reports it for trades in every one of these schemas.

    Columns: see ``TRADES_SCHEMA`` (session_date, ts_event, ts_recv, sequence, instrument_id, price
    points, size contracts, side, source).
    Raises:
        RawDataError: a truncated/corrupt or duplicated file, naming it.
    """
    found = find_source(catalog, TRADE_SOURCES, session_date, config, instrument_id)
    if found is None:
        return _empty_stream("bronze_futures_trades", TRADES_SCHEMA)
    schema, files = found
    selection = _selection(files, instrument_id, definitions, session_date, config, trades_only=schema != "trades")
    counters = selection.counters

    batches = defined_price_trades(session_batches([f.path for f in files], selection, decode_trades, config.decode_chunk_records), counters)
    return SessionStream(
        table="bronze_futures_trades",
        source=schema,
        files=[f.path.name for f in files],
        schema=TRADES_SCHEMA,
        frames=_frames(batches, TRADES_SCHEMA, session_date, schema),
        counters=counters,
    )


def session_bbo(catalog: RawCatalog, session_date: date, instrument_id: int, definitions: pl.DataFrame, config: SpymasterConfig) -> SessionStream:
    """bronze_futures_bbo of a session: the front month's top of book, one row per record, sorted by (ts_recv, sequence).

    Source: ``mbp-1`` (book after every event), else ``bbo-1s``, else ``bbo-1m`` (book at each
    interval end; ts_event is set to that end, ts_recv, for point in time), else ``tbbo`` (book just
    before each trade). Prices null for an empty side;
    crossed/locked books (bid >= ask) are kept and counted (``crossed_book_records``), as are records
    flagged F_MAYBE_BAD_BOOK (``maybe_bad_book_records``).

    Columns: see ``BBO_SCHEMA``.
    Raises:
        RawDataError: a truncated/corrupt or duplicated file, naming it.
    """
    found = find_source(catalog, BBO_SOURCES, session_date, config, instrument_id)
    if found is None:
        return _empty_stream("bronze_futures_bbo", BBO_SCHEMA)
    schema, files = found
    interval = schema in ("bbo-1s", "bbo-1m")
    # Interval records describe the book at the interval end (ts_recv); their ts_event is the last
    # trade's time. Point in time needs the former: ts_event is set to ts_recv for them.
    selection = _selection(files, instrument_id, definitions, session_date, config, window_field="ts_recv" if interval else "ts_event")
    counters = selection.counters
    decode = at_interval_end(decode_bbo) if interval else decode_bbo
    batches = session_batches([f.path for f in files], selection, decode, config.decode_chunk_records)
    return SessionStream(
        table="bronze_futures_bbo",
        source=schema,
        files=[f.path.name for f in files],
        schema=BBO_SCHEMA,
        frames=_frames(batches, BBO_SCHEMA, session_date, schema, on_batch=lambda b: count_crossed(b, counters)),
        counters=counters,
    )


def session_mbp10(catalog: RawCatalog, session_date: date, instrument_id: int, definitions: pl.DataFrame, config: SpymasterConfig) -> SessionStream:
    """bronze_futures_mbp10 of a session: the front month's 10-level book after each event, sorted by (ts_recv, sequence).

    Source: ``mbp-10`` records as they are, else the book rebuilt from ``mbo`` by
    :class:`~spymaster_assets.bronze.mbo_book.MboBookBuilder` (every record of the files from their
    first snapshot up to the session end is replayed, so the book at the session open is complete;
    only rows with ts_event inside the session are written). ``book_ok`` is false while the top of
    book is crossed or locked, and from an F_MAYBE_BAD_BOOK record until the next snapshot record or
    'R' clear (mbp-10 rule here; the MBO engine applies its own, documented in mbo_book).

    Columns: see ``MBP10_SCHEMA``. Bounded memory: a few chunks of ``config.decode_chunk_records``.
    Raises:
        RawDataError: a truncated/corrupt or duplicated file, naming it.
    """
    found = find_source(catalog, MBP10_SOURCES, session_date, config, instrument_id)
    if found is None:
        return _empty_stream("bronze_futures_mbp10", MBP10_SCHEMA)
    schema, files = found
    paths = [f.path for f in files]
    names = [f.path.name for f in files]
    if schema == "mbo":
        return _mbp10_from_mbo(files, paths, names, session_date, instrument_id, definitions, config)
    selection = _selection(files, instrument_id, definitions, session_date, config)
    counters = selection.counters
    quality = BookQuality(counters)

    def with_book_ok(batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            batch["book_ok"] = quality(batch)
            yield batch

    batches = with_book_ok(session_batches(paths, selection, decode_mbp10, config.decode_chunk_records))
    return SessionStream(
        table="bronze_futures_mbp10",
        source=schema,
        files=names,
        schema=MBP10_SCHEMA,
        frames=_frames(batches, MBP10_SCHEMA, session_date, schema),
        counters=counters,
    )


def _mbo_structured(batch: Batch, dtype: np.dtype) -> np.ndarray:
    """The batch's MBO records as a DBN MBOMsg structured array (what the book engine consumes)."""
    out = np.zeros(len(batch["ts_recv"]), dtype=dtype)
    for name in dtype.names:
        if name in batch:
            out[name] = batch[name]
    return out


def _mbp10_from_mbo(files, paths, names, session_date, instrument_id, definitions, config) -> SessionStream:
    from spymaster_resources.dbn_layout import MBO_DTYPE
    from .mbo_book import MboBookBuilder

    selection = _selection(files, instrument_id, definitions, session_date, config, replay_from_start=True)
    counters = selection.counters
    builder = MboBookBuilder(int(instrument_id), levels=config.book_levels)
    mbo_dtype = MBO_DTYPE
    start_ns = selection.start_ns

    def rebuilt(batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            columns = builder.process(_mbo_structured(batch, mbo_dtype))
            if not len(columns["ts_event"]):
                continue
            keep = np.asarray(columns["ts_event"], dtype=np.int64) >= start_ns  # the replay before the open only builds the book
            out = {k: np.asarray(v)[keep] for k, v in columns.items()}
            for name in ("action", "side"):  # S1 bytes -> the uint8 codes batch_frame expects
                out[name] = np.ascontiguousarray(out[name]).view(np.uint8)
            out["instrument_id"] = np.full(len(out["ts_event"]), instrument_id, dtype=np.uint32)
            yield out
        # The engine's own counters (snapshots, clears, crossed_books, maybe_bad_book, unknown_order...).
        for key, value in builder.counters.items():
            counters[f"mbo_{key}"] = int(value)

    batches = rebuilt(session_batches(paths, selection, decode_mbo, config.decode_chunk_records))
    return SessionStream(
        table="bronze_futures_mbp10",
        source="mbo",
        files=names,
        schema=MBP10_SCHEMA,
        frames=_frames(batches, MBP10_SCHEMA, session_date, "mbo"),
        counters=counters,
    )


def session_ohlcv_1m_from_trades(catalog: RawCatalog, session_date: date, definitions: pl.DataFrame, config: SpymasterConfig) -> SessionBars:
    """bronze_futures_ohlcv_1m aggregated from trades, for a session with trades but no ohlcv-1m file.

    The front month is the outright with the most traded contracts in the session (same rule as
    :func:`~spymaster_assets.bronze.front_month.select_front_month` on ohlcv-1m volumes); its trades
    (:func:`session_trades`) become 1-minute bars as Databento builds ohlcv-1m
    (:func:`~spymaster_assets.bronze.trade_bars.trades_to_ohlcv_1m`), source "trades".

    Raises:
        RawDataError: no trades cover the session, no ES outright traded, or a bad file (named).
    """
    found = find_source(catalog, TRADE_SOURCES, session_date, config)
    if found is None:
        raise RawDataError(f"session {session_date}: no trades DBN file under {catalog.raw_dir} covers the session")
    schema, files = found
    start, end = session_bounds_utc(session_date, config)
    volumes = trade_volume_by_instrument([f.path for f in files], _ns(start), _ns(end), schema != "trades", config.decode_chunk_records)
    symbols: dict[int, str] = {}
    for f in files:
        symbols.update(symbol_map(f.path))
    if definitions.height:
        symbols.update(dict(zip(definitions["instrument_id"].to_list(), definitions["raw_symbol"].to_list())))
    volumes = volumes.with_columns(
        raw_symbol=pl.col("instrument_id").replace_strict(symbols, default=None, return_dtype=pl.Utf8)
    )
    front = select_front_month(volumes, definitions, session_date, config.spec)
    stream = session_trades(catalog, session_date, front.instrument_id, definitions, config)
    # One front month's trades for one session (about 1.5 M rows at most): small enough to hold.
    frames = list(stream.frames)
    trades = pl.concat(frames) if frames else pl.DataFrame(schema=TRADES_SCHEMA)
    bars = (
        trades_to_ohlcv_1m(trades)
        .with_columns(raw_symbol=pl.lit(front.raw_symbol), session_date=pl.lit(session_date), source=pl.lit("trades"))
        .select("session_date", "ts_event", "instrument_id", "raw_symbol", "open", "high", "low", "close", "volume", "source")
    )
    return SessionBars(bars=bars, front_month=front, files=stream.files, source="trades", trade_source=schema)
