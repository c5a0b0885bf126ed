"""Which Databento ``timeseries.get_range`` requests a session needs, and which of them ``raw/`` already covers (pure: no Dagster).

A request is one (dataset, schema, symbols, stype_in, [start, end)) as the Databento historical API
takes it (https://databento.com/docs/api-reference-historical/timeseries/timeseries-get-range).
Futures use the parent symbol ``ES.FUT`` (every ES outright and spread; bronze picks the front
month); the 0DTE options use the parents of every E-mini S&P 500 option root that can expire on a
trading day (:data:`ES_0DTE_OPTION_PARENTS`), and bronze keeps the chain expiring that day.

What is already present is decided per (schema, symbol) from the DBN headers under ``raw/``, never
from file names: see :func:`present_request_keys`.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from spymaster_resources.raw_files import ALL_SYMBOLS, DbnFileInfo, RawCatalog, _ns, _store
from ..bronze.ingest import file_span
from spymaster_core.config import SpymasterConfig
from spymaster_core.products import PRODUCTS
from ..sessions import is_trading_session, session_bounds_utc, trading_sessions

#: The ES futures parent: every ES outright and calendar spread (Databento parent symbology).
ES_FUTURES_PARENT = "ES.FUT"
#: Every E-mini S&P 500 option root that can expire on a trading day, as Databento parents
#: (``<root>.OPT``). Source: CME Group product codes, "Weekly options on futures"
#: (https://www.cmegroup.com/trading/options/weekly-options-on-futures.html) and the "E-mini S&P 500
#: options Bloomberg cheat sheet": ES quarterly/serial (3rd Friday, American), EW end-of-month,
#: EW1-EW4 Friday weeklies (EW3 in non-quarterly months), E1A-E5A Monday, E1B-E5B Tuesday,
#: E1C-E5C Wednesday and E1D-E5D Thursday weeklies (all European). All are requested because which
#: root expires on a date moves with holidays (an expiry on a holiday moves to the day before);
#: bronze keeps the options whose definition expires that session.
ES_0DTE_OPTION_ROOTS: tuple[str, ...] = PRODUCTS["ES"].options_roots
ES_0DTE_OPTION_PARENTS: tuple[str, ...] = tuple(f"{root}.OPT" for root in ES_0DTE_OPTION_ROOTS)
#: File-name slugs of the two symbol groups.
ES_FUTURES_SLUG = "es-fut"
ES_0DTE_OPTIONS_SLUG = "es-0dte-opt"
#: Schemas whose records are published before the session they serve (definitions at the start of
#: each day, open interest the evening/morning before): their requests start earlier.
EARLY_PUBLISHED_SCHEMAS: frozenset[str] = frozenset({"definition", "statistics"})
#: How much earlier an early-published schema's request starts (the window bronze reads definitions from).
EARLY_PUBLICATION_LEAD = timedelta(hours=24)
#: Databento's symbology type of a parent symbol such as ``ES.FUT``.
STYPE_PARENT = "parent"


@dataclass(frozen=True)
class DownloadRequest:
    """One ``timeseries.get_range`` call: ``schema`` of ``symbols`` (``stype_in``) over ``[start, end)`` (aware UTC datetimes).

    ``slug`` names the symbol group in the landed file name (e.g. ``es-fut``).
    """

    dataset: str
    schema: str
    symbols: tuple[str, ...]
    stype_in: str
    start: datetime
    end: datetime
    slug: str

    def api_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``client.metadata.get_cost`` and ``client.timeseries.get_range`` (without ``path``)."""
        return {
            "dataset": self.dataset,
            "schema": self.schema,
            "symbols": list(self.symbols),
            "stype_in": self.stype_in,
            "start": self.start,
            "end": self.end,
        }

    def describe(self) -> str:
        """One line for logs: schema, symbols, window (ISO UTC)."""
        symbols = self.symbols[0] if len(self.symbols) == 1 else f"{len(self.symbols)} parents ({self.slug})"
        return f"{self.dataset} {self.schema} {symbols} {self.start.isoformat()} -> {self.end.isoformat()}"


def request_key(schema: str, symbol: str) -> str:
    """The ``have`` key of one (schema, symbol), e.g. ``"ohlcv-1m:ES.FUT"``."""
    return f"{schema}:{symbol}"


def symbols_slug(symbols: tuple[str, ...], group_slug: str, group: tuple[str, ...]) -> str:
    """File-name slug: ``group_slug`` for the whole group; a single symbol as itself (``ES.FUT`` -> ``es-fut``);
    any other subset ``group_slug`` plus a short hash of the symbols, so two subsets never share a file name."""
    if tuple(symbols) == tuple(group):
        return group_slug
    if len(symbols) == 1:
        return re.sub(r"[^a-z0-9]+", "-", symbols[0].lower()).strip("-")
    digest = hashlib.sha1(",".join(symbols).encode()).hexdigest()[:8]
    return f"{group_slug}-{digest}"


def _previous_session_open(session_date: date, config: SpymasterConfig) -> datetime | None:
    earlier = trading_sessions(session_date - timedelta(days=10), session_date - timedelta(days=1), config)
    return session_bounds_utc(earlier[-1], config)[0] if earlier else None


def request_start(schema: str, session_date: date, config: SpymasterConfig) -> datetime:
    """Start (aware UTC) of ``schema``'s request for the session.

    The session open (18:00 ET the day before) for event schemas. ``definition``: 24 h earlier (the
    window bronze_definitions reads: the definition snapshot is published before the session).
    ``statistics``: 24 h earlier or the previous session's open, whichever is earlier, because open
    interest is published the evening/morning before and after a weekend or holiday the latest
    publication before the open lies in the previous session (cf. bronze OPEN_INTEREST_LOOKBACK_DAYS).
    """
    start, _ = session_bounds_utc(session_date, config)
    if schema not in EARLY_PUBLISHED_SCHEMAS:
        return start
    early = start - EARLY_PUBLICATION_LEAD
    if schema == "statistics":
        previous = _previous_session_open(session_date, config)
        if previous is not None:
            early = min(early, previous)
    return early


def _group_requests(
    session_date: date,
    config: SpymasterConfig,
    schemas: tuple[str, ...],
    group: tuple[str, ...],
    group_slug: str,
    have: set[str],
    stype_in: str = STYPE_PARENT,
) -> list[DownloadRequest]:
    _, end = session_bounds_utc(session_date, config)
    out = []
    for schema in dict.fromkeys(schemas):  # de-duplicated, order kept
        missing = tuple(s for s in group if request_key(schema, s) not in have)
        if not missing:
            continue
        out.append(
            DownloadRequest(
                dataset=config.download_dataset,
                schema=schema,
                symbols=missing,
                stype_in=stype_in,
                start=request_start(schema, session_date, config),
                end=end,
                slug=symbols_slug(missing, group_slug, group),
            )
        )
    return out


def session_requests(session_date: date, config: SpymasterConfig, have: set[str]) -> list[DownloadRequest]:
    """The Databento requests of the served product (``config.product``) for session ``session_date``,
    minus what ``have`` says is present.

    The product's symbols: ``config.download_futures_schemas`` then ``config.download_order_flow_schemas``
    of its download symbols in its dataset and symbology (``ES.FUT``/``parent`` in GLBX.MDP3,
    ``SPY``/``raw_symbol`` in XNAS.ITCH: ``spymaster_core.products``). When ``config.download_options``
    and the product has 0DTE option roots (ES): ``config.download_options_schemas`` of their parents
    (:data:`ES_0DTE_OPTION_PARENTS` for ES; one request per schema for all roots). Every request ends at
    the session close (17:00 ET on ``session_date``) and starts at the session open (18:00 ET the
    day before), earlier for ``definition``/``statistics`` (:func:`request_start`); DST by the zone.

    ``have``: keys :func:`request_key` (schema, symbol) already covering the session (from
    :func:`present_request_keys`); a symbol in ``have`` is dropped from its request and a request
    left without symbols is not made.

    Returns requests in the order futures schemas, order-flow schemas, option schemas.

    Raises:
        ValueError: ``session_date`` is not a CME session (weekend or exchange holiday).
    """
    if not is_trading_session(session_date, config):
        venue = "CME Globex" if config.spec.is_future else "NYSE"
        raise ValueError(f"{session_date} is not a {venue} session of {config.product} (weekend or exchange holiday): nothing to download")
    futures_schemas = tuple(config.download_futures_schemas) + tuple(config.download_order_flow_schemas)
    spec = config.spec
    symbols = tuple(spec.download_symbols)
    out = _group_requests(session_date, config, futures_schemas, symbols, symbols_slug(symbols, "", ()), have, spec.download_stype_in)
    if config.download_options and spec.options_roots:
        parents = tuple(f"{root}.OPT" for root in spec.options_roots)
        out += _group_requests(session_date, config, tuple(config.download_options_schemas), parents, f"{spec.root.lower()}-0dte-opt", have)
    return out


@lru_cache(maxsize=4096)
def _header_symbols(path: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    # Keyed by size and mtime so a replaced file is read again.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(str(s) for s in (_store(Path(path)).metadata.symbols or ()))


def header_symbols(info: DbnFileInfo) -> tuple[str, ...]:
    """The symbols the file was requested for (its DBN header ``symbols``), e.g. ``("ES.FUT",)``.

    Raises:
        RawDataError: the file is unreadable, naming it.
    """
    return _header_symbols(str(info.path), info.size, info.mtime_ns)


def covers(spans: list[tuple[int, int]], lo: int, hi: int) -> bool:
    """True when the union of half-open ``spans`` [a, b) (ns) contains ``[lo, hi)`` with no gap."""
    reached = lo
    for a, b in sorted(spans):
        if a > reached:
            break
        reached = max(reached, b)
        if reached >= hi:
            return True
    return reached >= hi


def present_request_keys(catalog: RawCatalog, session_date: date, config: SpymasterConfig) -> set[str]:
    """Keys :func:`request_key` of the (schema, symbol) pairs ``raw/`` already holds for the whole session.

    A (schema, symbol) is present when the files of that schema (dataset ``config.download_dataset``)
    whose DBN header lists the symbol (or ``ALL_SYMBOLS``) together cover the session window
    ``[open, close)`` without a gap, each file spanning its header request range ``[start, end)``,
    else its records' ts_event range (:func:`~spymaster_assets.bronze.ingest.file_span`). Several
    files may share the window (e.g. Databento's UTC-day files: a session spans two). A file
    requested by another symbol (``ESH4`` rather than ``ES.FUT``) does not count: it lacks the other
    contracts. Only the schemas and symbols :func:`session_requests` could ask for are examined.

    Returns an empty set when ``raw/`` does not exist.

    Raises:
        RawDataError: an unreadable DBN file under ``raw/``, naming it.
    """
    if not catalog.raw_dir.is_dir():
        return set()
    wanted = session_requests(session_date, config, have=set())
    start, end = session_bounds_utc(session_date, config)
    lo, hi = _ns(start), _ns(end)
    present: set[str] = set()
    for schema in dict.fromkeys(r.schema for r in wanted):
        symbols = {s for r in wanted if r.schema == schema for s in r.symbols}
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for info in catalog.files(schema, dataset=config.download_dataset):
            span = file_span(info)
            if span is None:
                continue
            listed = set(header_symbols(info))
            for symbol in symbols if ALL_SYMBOLS in listed else listed & symbols:
                spans[symbol].append(span)
        present |= {request_key(schema, s) for s in symbols if covers(spans[s], lo, hi)}
    return present
