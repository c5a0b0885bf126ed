"""Bronze inputs of the session's ES 0DTE options: definitions, open interest, trades, top of book (pure: no Dagster).

Trades and top of book are decoded exactly like the front month's (:mod:`.market_records`: NumPy
chunks of ``config.decode_chunk_records`` records, selection mask, ordering by (ts_recv, sequence),
no ``to_df``), keeping the records of a SET of instrument ids: the chain's.

File choice (options data sit beside futures data under ``raw/``, often in the same schemas):

* A file whose symbology mappings name instruments, none of them in the chain, is skipped without
  being decoded (``files_skipped_no_chain_instrument``): a futures mbp-1 file of several GB is never
  read for options. A file without mappings may hold anything and is read.
* The source schema is the first of the preference list with a file that may hold the chain.
* A file's time span is its header request range ``[start, end)`` when the header has an end
  (Databento selects records by it), else its records' ts_event range: interval schemas must not
  be placed by ts_event (below).
* Two files of that schema overlapping in time are duplicates only when they may hold the same
  chain instrument (split-by-symbol downloads legitimately overlap): :class:`RawDataError` then.

Interval schemas (``bbo-1s``, ``bbo-1m``, ``cbbo-1s``, ``cbbo-1m``): Databento's ``ts_event`` there
is the time of the instrument's LAST TRADE (hours or days old for a quiet option, UNDEF when none),
while ``ts_recv`` is the interval end, the instant the book snapshot describes and becomes known
(https://databento.com/docs/schemas/bbo). Records are therefore selected by ``ts_recv`` in the
session window and written with ``ts_event = ts_recv``, so a feature reading rows with
``ts_event <= T`` never sees a book from after T.

Definitions: ``bronze_definitions`` selects definition files by the ts_event range of their records,
but a definition's ts_event is when the instrument was last modified (days or weeks before the
file's publication), so a daily definition file can be missed. Here definition files are chosen by
their publication window: the header's request range ``[start, end)`` (Databento sends the full
definition snapshot at the start of each day), else the records' ts_event range.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import RawDataError
from ..sessions import session_bounds_utc
from spymaster_resources.raw_files import DbnFileInfo, RawCatalog, _ns, read_definitions, symbol_map
from .ingest import SessionStream, _frames, defined_price_trades, definition_files_for_session, file_span, known_instrument_ids
from .market_records import (
    at_interval_end,
    BBO_SCHEMA,
    TRADE_SOURCES,
    TRADES_SCHEMA,
    Batch,
    RecordSelection,
    count_crossed,
    decode_bbo,
    decode_trades,
    prices_to_points,
    session_batches,
)
from .options_statistics import open_interest_before, read_statistics

#: Where bronze_options_trades rows come from, in order of preference (as for the front month).
OPTION_TRADE_SOURCES: tuple[str, ...] = TRADE_SOURCES
#: Where bronze_options_bbo rows come from, in order of preference (contract of issue 4).
OPTION_BBO_SOURCES: tuple[str, ...] = ("mbp-1", "bbo-1s", "bbo-1m", "tbbo", "cbbo-1s", "cbbo-1m")
#: Statistics files read for open interest start this many days before the session open: the latest
#: publication before the open is usually the previous morning, after a long weekend up to 4 days back.
OPEN_INTEREST_LOOKBACK_DAYS = 5
#: Schemas whose records describe the book at the interval end ts_recv (ts_event = last trade).
INTERVAL_SCHEMAS: frozenset[str] = frozenset({"bbo-1s", "bbo-1m", "cbbo-1s", "cbbo-1m"})


# ------------------------------------------------------------------------------------------------
# Definitions
# ------------------------------------------------------------------------------------------------


def session_option_definitions(
    catalog: RawCatalog, session_date: date, config: SpymasterConfig, known: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """Futures and option definitions of the session, latest per instrument published before its close.

    Reads :func:`definition_files_for_session` (read_definitions with ``until`` = session close) and
    merges ``known`` (the bronze_definitions partition, its ``session_date`` column ignored); for an
    instrument in both, the definition with the larger ts_recv wins. Returns (read_definitions
    columns, F/C/P rows only, sorted by instrument_id; file names read).
    """
    _, end = session_bounds_utc(session_date, config)
    files = definition_files_for_session(catalog, session_date, config)
    read = read_definitions([f.path for f in files], until=end)
    frames = [read]
    if known is not None and known.height:
        frames.insert(0, known.select(read.columns))
    merged = (
        pl.concat(frames)
        .filter(pl.col("instrument_class").is_in(["F", "C", "P"]))
        .sort("ts_recv", maintain_order=True)
        .unique("instrument_id", keep="last", maintain_order=True)
        .sort("instrument_id")
    )
    return merged, [f.path.name for f in files]


# ------------------------------------------------------------------------------------------------
# File choice for a set of instruments
# ------------------------------------------------------------------------------------------------


def _mapped_ids(info: DbnFileInfo) -> set[int]:
    return set(symbol_map(info.path))


def chain_source(
    catalog: RawCatalog, schemas: tuple[str, ...], start, end, chain_ids: set[int]
) -> tuple[str | None, list[DbnFileInfo], int]:
    """The first schema of ``schemas`` with a file whose span (:func:`file_span`) meets ``[start, end)``
    and that may hold a chain instrument.

    Returns (schema or None, its files sorted by span start then path, number of files of the
    schemas tried that were skipped because their mappings name no chain instrument).
    """
    lo, hi = _ns(start), _ns(end)
    skipped = 0
    for schema in schemas:
        relevant = []
        for info in catalog.files(schema):
            span = file_span(info)
            if span is None or span[0] >= hi or span[1] <= lo:
                continue
            ids = _mapped_ids(info)
            if ids and not ids & chain_ids:
                skipped += 1
            else:
                relevant.append(info)
        if relevant:
            return schema, sorted(relevant, key=lambda f: (file_span(f)[0], str(f.path))), skipped
    return None, [], skipped


def check_duplicate_files(files: list[DbnFileInfo], chain_ids: set[int]) -> None:
    """Raise when two files overlap in time and may hold the same chain instrument (a duplicated download).

    A file without symbology mappings may hold any instrument.

    Raises:
        RawDataError: naming both files and the shared instruments.
    """
    ids = [(_mapped_ids(f) & chain_ids) or None for f in files]
    spans = [file_span(f) for f in files]
    for a in range(len(files)):
        for b in range(a + 1, len(files)):
            fa, fb = files[a], files[b]
            sa, sb = spans[a], spans[b]
            if sa is None or sb is None or sa[0] >= sb[1] or sb[0] >= sa[1]:
                continue
            shared = chain_ids if ids[a] is None or ids[b] is None else ids[a] & ids[b]
            if shared:
                raise RawDataError(
                    f"{fa.path.name} and {fb.path.name} both hold records of chain instruments "
                    f"({sorted(shared)[:5]}) over the same time: remove the duplicate file"
                )


# ------------------------------------------------------------------------------------------------
# Trades and top of book
# ------------------------------------------------------------------------------------------------


def decode_cbbo(records: np.ndarray, rows: np.ndarray | slice) -> Batch:
    """Top-of-book columns of consolidated records (cbbo-1s / cbbo-1m: no sequence, no order counts).

    ``sequence`` is 0 (ordering is then by ts_recv, file order among equals); ``bid_ct_00`` /
    ``ask_ct_00`` are 0, as DBN's consolidated level carries the publisher instead of a count.
    """
    n = len(records["ts_recv"][rows])
    return {
        "ts_event": records["ts_event"][rows].astype(np.int64),
        "ts_recv": records["ts_recv"][rows].astype(np.int64),
        "sequence": np.zeros(n, np.int64),
        "instrument_id": records["instrument_id"][rows].astype(np.uint32),
        "flags": records["flags"][rows].astype(np.int16),
        "bid_px_00": prices_to_points(records["bid_px_00"][rows]),
        "ask_px_00": prices_to_points(records["ask_px_00"][rows]),
        "bid_sz_00": records["bid_sz_00"][rows].astype(np.int32),
        "ask_sz_00": records["ask_sz_00"][rows].astype(np.int32),
        "bid_ct_00": np.zeros(n, np.int32),
        "ask_ct_00": np.zeros(n, np.int32),
    }


def _chain_ids(chain: pl.DataFrame) -> set[int]:
    return {int(i) for i in chain["instrument_id"].to_list()}


def _empty(table: str, schema: dict[str, pl.DataType], skipped: int, chain_size: int) -> SessionStream:
    stream = SessionStream(table=table, source="none", files=[], schema=schema, frames=iter(()))
    stream.counters.update(chain_instruments=chain_size, files_skipped_no_chain_instrument=skipped)
    return stream


def _chain_selection(files, chain_ids, definitions, session_date, config, **kw) -> RecordSelection:
    start, end = session_bounds_utc(session_date, config)
    known = known_instrument_ids(files, definitions) | chain_ids
    return RecordSelection(
        instrument_id=0,  # not used: instrument_ids selects the records
        known_ids=known,
        start_ns=_ns(start),
        end_ns=_ns(end),
        instrument_ids=frozenset(chain_ids),
        **kw,
    )


def session_options_trades(
    catalog: RawCatalog, session_date: date, chain: pl.DataFrame, definitions: pl.DataFrame, config: SpymasterConfig
) -> SessionStream:
    """bronze_options_trades of a session: trades of the chain's options, sorted by (ts_recv, sequence).

    Args:
        chain: bronze_options_definitions rows (instrument_id used).
        definitions: bronze_definitions rows (their ids count as known instruments).
    Source: ``trades``, else the action-'T' records of ``tbbo``, ``mbp-1``, ``mbp-10``, ``mbo``
    (the first schema with a file that may hold the chain). ``side`` is the aggressor (B buyer, A
    seller, N none). Trades with an undefined price are dropped (``undefined_price_trades``).
    Columns: ``TRADES_SCHEMA`` (price in index points, size in contracts).
    Counters: those of :mod:`.market_records` plus ``chain_instruments`` and
    ``files_skipped_no_chain_instrument``. An empty chain gives an empty stream (source none).

    Raises:
        RawDataError: a truncated/corrupt file, or duplicated files, naming them.
    """
    table = "bronze_options_trades"
    ids = _chain_ids(chain)
    if not ids:
        return _empty(table, TRADES_SCHEMA, 0, 0)
    start, end = session_bounds_utc(session_date, config)
    schema, files, skipped = chain_source(catalog, OPTION_TRADE_SOURCES, start, end, ids)
    if schema is None:
        return _empty(table, TRADES_SCHEMA, skipped, len(ids))
    check_duplicate_files(files, ids)
    selection = _chain_selection(files, ids, definitions, session_date, config, trades_only=schema != "trades")
    counters = selection.counters
    counters.update(chain_instruments=len(ids), files_skipped_no_chain_instrument=skipped)

    paths = [f.path for f in files]
    batches = defined_price_trades(session_batches(paths, selection, decode_trades, config.decode_chunk_records, check_overlap=False), counters)
    return SessionStream(
        table=table,
        source=schema,
        files=[f.path.name for f in files],
        schema=TRADES_SCHEMA,
        frames=_frames(batches, TRADES_SCHEMA, session_date, schema),
        counters=counters,
    )


def session_options_bbo(
    catalog: RawCatalog, session_date: date, chain: pl.DataFrame, definitions: pl.DataFrame, config: SpymasterConfig
) -> SessionStream:
    """bronze_options_bbo of a session: top of book of the chain's options, one row per record, sorted by (ts_recv, sequence).

    Source: ``mbp-1`` (after every event), else ``bbo-1s``, ``bbo-1m`` (at each interval end),
    ``tbbo`` (before each trade), ``cbbo-1s``, ``cbbo-1m`` (consolidated: sequence and order
    counts 0). Interval schemas are windowed on ts_recv and written with ts_event = ts_recv (the
    interval end; module docstring). Prices in index points, null for an empty side; crossed/locked books are kept and
    counted (``crossed_book_records``), as are F_MAYBE_BAD_BOOK records.
    Columns: ``BBO_SCHEMA``. Counters as :func:`session_options_trades`.

    Raises:
        RawDataError: a truncated/corrupt file, or duplicated files, naming them.
    """
    table = "bronze_options_bbo"
    ids = _chain_ids(chain)
    if not ids:
        return _empty(table, BBO_SCHEMA, 0, 0)
    start, end = session_bounds_utc(session_date, config)
    schema, files, skipped = chain_source(catalog, OPTION_BBO_SOURCES, start, end, ids)
    if schema is None:
        return _empty(table, BBO_SCHEMA, skipped, len(ids))
    check_duplicate_files(files, ids)
    interval = schema in INTERVAL_SCHEMAS
    selection = _chain_selection(files, ids, definitions, session_date, config, window_field="ts_recv" if interval else "ts_event")
    counters = selection.counters
    counters.update(chain_instruments=len(ids), files_skipped_no_chain_instrument=skipped)
    decode = decode_cbbo if schema.startswith("cbbo") else decode_bbo
    if interval:
        decode = at_interval_end(decode)
    paths = [f.path for f in files]
    batches = session_batches(paths, selection, decode, config.decode_chunk_records, check_overlap=False)
    return SessionStream(
        table=table,
        source=schema,
        files=[f.path.name for f in files],
        schema=BBO_SCHEMA,
        frames=_frames(batches, BBO_SCHEMA, session_date, schema, on_batch=lambda b: count_crossed(b, counters)),
        counters=counters,
    )


# ------------------------------------------------------------------------------------------------
# Open interest
# ------------------------------------------------------------------------------------------------


def session_options_open_interest(
    catalog: RawCatalog,
    session_date: date,
    chain: pl.DataFrame,
    config: SpymasterConfig,
    lookback_days: int = OPEN_INTEREST_LOOKBACK_DAYS,
) -> tuple[pl.DataFrame, dict[str, object], list[str]]:
    """bronze_options_open_interest of a session: OI known at the session open for each chain option.

    Reads the ``statistics`` files with records from ``lookback_days`` before the session open to
    its close (skipping files whose mappings name no chain instrument), keeps the chain's records
    and applies :func:`~.options_statistics.open_interest_before` (stat_type 9 only, ts_recv before
    the open, latest publication wins). Records published during the session are read only to be
    counted as ignored.

    Returns:
        (frame of ``OPEN_INTEREST_SCHEMA``, counts: those of open_interest_before plus
        ``chain_without_open_interest`` and ``files_skipped_no_chain_instrument``, file names read).
        No statistics file: an empty frame and empty file list.
    Raises:
        RawDataError: a truncated/corrupt statistics file, naming it.
    """
    ids = _chain_ids(chain)
    start, end = session_bounds_utc(session_date, config)
    if ids:
        schema, files, skipped = chain_source(catalog, ("statistics",), start - timedelta(days=lookback_days), end, ids)
    else:
        files, skipped = [], 0
    stats = read_statistics([f.path for f in files], ids, config.decode_chunk_records)
    frame, counts = open_interest_before(stats, session_date, start)
    counts["chain_without_open_interest"] = len(ids) - frame.height
    counts["files_skipped_no_chain_instrument"] = skipped
    return frame, counts, [f.path.name for f in files]
