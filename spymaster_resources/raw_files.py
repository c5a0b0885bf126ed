"""Find Databento DBN files under ``raw/`` and decode them to Polars without per-record Python.

Files may have any names and any split across files: what a file holds (dataset, schema, time range)
is read from its DBN metadata header and its records, never from its name. Decoding goes
``DBNStore.to_ndarray(count=...)`` -> NumPy structured chunks -> Polars columns, so memory stays
bounded by the chunk size plus the selected rows (Databento DBN encoding spec:
https://databento.com/docs/standards-and-conventions/databento-binary-encoding).
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

import numpy as np
import polars as pl

from spymaster_core.errors import RawDataError
from spymaster_core.products import Product
from .lake_paths import write_text_atomic
from .dbn_layout import PRICE_SCALE, UNDEF_PRICE  # prices are divided by PRICE_SCALE, as DBNStore.to_df does: exact for every tick price

DBN_SUFFIXES = (".dbn", ".dbn.zst")
_CHUNK_RECORDS = 1_000_000


@dataclass(frozen=True)
class DbnFileInfo:
    """What one raw DBN file holds, from its metadata header and record timestamps.

    ``ts_min``/``ts_max`` are the first and last record ``ts_event`` in ns since the epoch (UTC);
    both are None for a file with no records.
    """

    path: Path
    dataset: str
    schema: str
    ts_min: int | None
    ts_max: int | None
    size: int
    mtime_ns: int
    header_start: int | None = None  # the header's request range [start, end), ns since the epoch
    header_end: int | None = None
    symbols: tuple[str, ...] = ()  # the request's symbols from the header (``ES.FUT``, ``SPY``, ``ALL_SYMBOLS``)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True when some record lies in ``[start, end)`` (aware datetimes)."""
        if self.ts_min is None or self.ts_max is None:
            return False
        return self.ts_min < _ns(end) and self.ts_max >= _ns(start)


def _ns(ts: datetime) -> int:
    return int(ts.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def _store(path: Path):
    import databento as db

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return db.DBNStore.from_file(path)
    except Exception as exc:  # databento raises ValueError/RuntimeError/BentoError variously
        raise RawDataError(f"{path}: not a readable DBN file ({exc})") from exc


def iter_records(path: Path, chunk_records: int = _CHUNK_RECORDS):
    """Yield the records of ``path`` as NumPy structured arrays of at most ``chunk_records`` rows.

    Raises:
        RawDataError: the file cannot be decoded (corrupt, truncated, not DBN), naming the file.
    """
    store = _store(path)
    records = None
    while True:
        # The warnings context only spans one decode step: a generator must not hold the global
        # warnings state while it is suspended (two files are often read in turn).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if records is None:
                    records = iter(store.to_ndarray(count=chunk_records))
                chunk = next(records, None)
            except Exception as exc:
                raise RawDataError(f"{path}: DBN records cannot be decoded, the file is corrupt or truncated ({exc})") from exc
        # databento only warns ("DBN file is truncated or contains an incomplete record") and drops
        # the partial record; for every DBN version that must fail, naming the file.
        truncated = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
        if truncated:
            raise RawDataError(f"{path}: truncated DBN file ({truncated[0]})")
        if chunk is None:
            return
        yield chunk


#: Files up to this size are scanned for their exact record time range; larger ones (a full-depth
#: day is GBs) take it from the header, so the catalog never decodes a big file twice.
SCAN_RECORDS_MAX_BYTES = 64 * 1024 * 1024


def inspect_file(path: Path, scan_max_bytes: int = SCAN_RECORDS_MAX_BYTES) -> DbnFileInfo:
    """Read ``path``'s header and the time range its records cover.

    A file of at most ``scan_max_bytes`` (or whose header has no end) is scanned: ``ts_min``/``ts_max``
    are its first and last record ts_event. A larger file is not decoded here: the range is the
    header's request range ``[metadata.start, metadata.end)`` (Databento selects records by it), so
    cataloguing a 20 GB full-depth file costs one header read, not a second full decompression.

    Raises:
        BadDbnFile: unreadable or truncated file, naming it, with the range it covers: its header's,
            or when the header itself is unreadable (a truncated zstd frame) the day and schema its
            Databento batch name says (``glbx-mdp3-YYYYMMDD.<schema>.dbn[.zst]``).
        RawDataError: the header is unreadable and the name says nothing (it may cover any session).
    """
    try:
        store = _store(path)
    except RawDataError as exc:
        named = _range_from_name(path)
        if named is None:
            raise
        raise BadDbnFile(str(exc), *named) from exc
    st = path.stat()
    start, end = store.metadata.start, store.metadata.end
    ts_min: int | None = None
    ts_max: int | None = None
    if st.st_size > scan_max_bytes and start is not None and end is not None and end > start:
        ts_min, ts_max = int(start), int(end) - 1
    else:
        try:
            for chunk in iter_records(path):
                if len(chunk):
                    ts = chunk["ts_event"]
                    lo, hi = int(ts.min()), int(ts.max())
                    ts_min = lo if ts_min is None else min(ts_min, lo)
                    ts_max = hi if ts_max is None else max(ts_max, hi)
        except RawDataError as exc:
            raise BadDbnFile(str(exc), str(store.schema), None if start is None else int(start), None if end is None else int(end), _header_symbols(store)) from exc
    return DbnFileInfo(
        path=path,
        dataset=str(store.dataset),
        schema=str(store.schema),
        ts_min=ts_min,
        ts_max=ts_max,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        header_start=None if start is None else int(start),
        header_end=None if end is None else int(end),
        symbols=_header_symbols(store),
    )


_BATCH_NAME = re.compile(r"^[a-z0-9]+-[a-z0-9]+-(\d{8})\.([a-z0-9-]+)\.dbn(\.zst)?$")


def _range_from_name(path: Path) -> tuple[str, int, int] | None:
    """(schema, start ns, end ns) of the UTC day a Databento batch file name states, else None."""
    match = _BATCH_NAME.match(path.name)
    if not match:
        return None
    try:
        day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return match.group(2), _ns(day), _ns(day + timedelta(days=1))


def _header_symbols(store) -> tuple[str, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(str(s) for s in (store.metadata.symbols or ()))


#: A header symbol meaning "every instrument of the dataset" (such a file may serve every product).
ALL_SYMBOLS = "ALL_SYMBOLS"


def file_products(symbols: tuple[str, ...], products: Mapping[str, Product]) -> set[str] | None:
    """The products of ``products`` whose instruments a file with header ``symbols`` holds; None when
    the header does not say (no symbols, or ``ALL_SYMBOLS``): such a file may hold any of them."""
    if not symbols or ALL_SYMBOLS in symbols:
        return None
    return {name for name, product in products.items() if _owns_any(product, tuple(symbols))}


@lru_cache(maxsize=65536)
def _owns_any(product: Product, symbols: tuple[str, ...]) -> bool:
    # A range run lists the catalog thousands of times: each (product, header) is matched once.
    return any(product.owns_symbol(s) for s in symbols)


class BadDbnFile(RawDataError):
    """A raw file whose header is readable but whose records are not: it fails only the sessions its header range covers.

    ``schema`` and ``start``/``end`` (ns, the header's request range; None when absent) say which.
    """

    def __init__(self, message: str, schema: str | None, start: int | None, end: int | None, symbols: tuple[str, ...] = ()):
        super().__init__(message)
        self.schema, self.start, self.end, self.symbols = schema, start, end, symbols

    def covers(self, schema: str, start: datetime, end: datetime) -> bool:
        """True when this file could hold records of ``schema`` in ``[start, end)`` (unknown range: yes)."""
        if self.schema not in (None, schema):
            return False
        return (self.start is None or self.start < _ns(end)) and (self.end is None or self.end > _ns(start))


def find_dbn_files(raw_dir: Path) -> list[Path]:
    """Every ``*.dbn`` / ``*.dbn.zst`` file under ``raw_dir`` (recursively), sorted by path.

    Raises:
        RawDataError: ``raw_dir`` does not exist.
    """
    if not raw_dir.is_dir():
        raise RawDataError(f"{raw_dir}: raw data directory does not exist (put Databento DBN files there)")
    return sorted(p for p in raw_dir.rglob("*") if p.is_file() and p.name.endswith(DBN_SUFFIXES))


#: The inspections of raw/'s readable files, kept beside them so a new process (the daily job, a
#: query) does not decode a decade of headers again: one JSON object per file, keyed by its path
#: relative to raw/, its size and its mtime (ns), so a changed or replaced file is inspected afresh.
INVENTORY_FILE = ".spymaster-inventory.json"
_INVENTORY_VERSION = 1


def load_inventory(raw_dir: Path) -> dict[tuple[str, int, int], DbnFileInfo]:
    """The saved inspections of ``raw_dir`` by (path, size, mtime_ns); empty when there are none or
    the file is unreadable or of another version (it is only a cache: everything is inspected again)."""
    try:
        saved = json.loads((raw_dir / INVENTORY_FILE).read_text())
        if saved.get("version") != _INVENTORY_VERSION:
            return {}
        out = {}
        for row in saved["files"]:
            info = DbnFileInfo(**{**row, "path": raw_dir / row["path"], "symbols": tuple(row["symbols"])})
            out[(str(info.path), info.size, info.mtime_ns)] = info
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_inventory(raw_dir: Path, infos: list[DbnFileInfo]) -> None:
    """Save the inspections ``infos`` (files under ``raw_dir``) for :func:`load_inventory`, atomically
    (temporary file, then rename: two processes saving at once leave one whole inventory). Best
    effort: a read-only raw/ only costs the next process its inspections."""
    rows = [{**info.__dict__, "path": str(info.path.relative_to(raw_dir)), "symbols": list(info.symbols)} for info in infos if info.path.is_relative_to(raw_dir)]
    try:
        write_text_atomic(raw_dir / INVENTORY_FILE, json.dumps({"version": _INVENTORY_VERSION, "files": rows}))
    except OSError:
        pass


#: A listing of raw/ is reused for this long (seconds): a range run asks for the files of each
#: session's windows thousands of times in a few seconds, and listing a year of files costs ~40 ms.
LISTING_TTL_SECONDS = 2.0


class RawCatalog:
    """Index of the raw DBN files, cached in memory per (path, size, mtime) so files are inspected once.

    The directory listing itself is reused for ``LISTING_TTL_SECONDS``: a file landing or changing
    is seen at most that late. With a ``product`` (see :meth:`for_product`) the catalog holds only
    that product's files: its dataset, and a header whose symbols name it (``ES.FUT``, ``ESZ3``,
    ``EW1.OPT``, ``SPY``) or name nothing specific (no symbols, ``ALL_SYMBOLS``: bronze keeps the
    product's instruments of such a file). Unreadable files are that product's problem under the
    same rule, so a bad NQ file never fails an ES session.
    """

    def __init__(self, raw_dir: Path, product: Product | None = None, _cache: dict | None = None):
        self.raw_dir = Path(raw_dir)
        self.product = product
        self._cache: dict[tuple[str, int, int], DbnFileInfo | RawDataError] = {} if _cache is None else _cache
        self._listing: tuple[float, list[DbnFileInfo | RawDataError]] | None = None

    def for_product(self, product: Product) -> "RawCatalog":
        """A view of the same raw directory holding ``product``'s files only (inspections shared)."""
        return RawCatalog(self.raw_dir, product, self._cache)

    def _owns(self, info: "DbnFileInfo | RawDataError") -> bool:
        if self.product is None:
            return True
        symbols = getattr(info, "symbols", ())
        owners = file_products(symbols, {self.product.symbol: self.product})
        return owners is None or bool(owners)

    def invalidate(self) -> None:
        """Forget the listing (the next lookup lists raw/ again; inspections of unchanged files are kept)."""
        self._listing = None

    def _inspect_all(self, fresh: bool = False) -> list[DbnFileInfo | RawDataError]:
        now = time.monotonic()
        if not fresh and self._listing is not None and now - self._listing[0] < LISTING_TTL_SECONDS:
            return self._listing[1]
        out = self._list_and_inspect()
        self._listing = (time.monotonic(), out)
        return out

    def _list_and_inspect(self) -> list[DbnFileInfo | RawDataError]:
        if not self._cache:
            self._cache.update(load_inventory(self.raw_dir))
        out = []
        inspected = False
        for path in find_dbn_files(self.raw_dir):
            st = path.stat()
            key = (str(path), st.st_size, st.st_mtime_ns)
            if key not in self._cache:
                inspected = True
                try:
                    self._cache[key] = inspect_file(path)
                except RawDataError as exc:
                    self._cache[key] = exc  # reported by the windows it may cover, not by every listing
            out.append(self._cache[key])
        if inspected:
            save_inventory(self.raw_dir, [info for info in out if isinstance(info, DbnFileInfo)])
        return out

    def files(self, schema: str | None = None, dataset: str | None = None, strict: bool = False) -> list[DbnFileInfo]:
        """Inspected readable files of ``dataset`` (default: the product's, else GLBX.MDP3), optionally only those of one DBN ``schema`` (e.g. ``"ohlcv-1m"``).

        Unreadable files are left out here (see :meth:`problems`): one bad file does not block
        listing, and :meth:`files_for_window` raises for the windows it may cover. ``strict=True``
        raises the first unreadable file's RawDataError instead (the raw/ sensor holds its cursor
        on a file that may still be landing), and lists raw/ afresh.
        """
        listing = self._inspect_all(fresh=strict)
        problems = [info for info in listing if isinstance(info, RawDataError) and self._owns(info)]
        if strict and problems:
            raise problems[0]
        dataset = dataset or (self.product.dataset if self.product is not None else "GLBX.MDP3")
        return [
            info for info in listing
            if isinstance(info, DbnFileInfo) and info.dataset == dataset and (schema is None or info.schema == schema) and self._owns(info)
        ]

    def problems(self) -> list[RawDataError]:
        """The errors of the raw files that could not be read (each names its file); with a product, those that may be its files."""
        return [info for info in self._inspect_all() if isinstance(info, RawDataError) and self._owns(info)]

    def unclaimed(self, products: Mapping[str, Product]) -> list[DbnFileInfo]:
        """Readable files whose header symbols name none of ``products`` (a raw file of a product the
        data root does not configure): left out of every session, and worth one line to the user."""
        return [
            info for info in self._inspect_all()
            if isinstance(info, DbnFileInfo) and (owners := file_products(info.symbols, products)) is not None and not owners
        ]

    def files_for_window(self, schema: str, start: datetime, end: datetime) -> list[DbnFileInfo]:
        """Files of ``schema`` holding at least one record in ``[start, end)``.

        Raises:
            RawDataError: a raw file that may hold such records cannot be read (named, with the reason):
                a header-readable file covering the window, or a file whose header is unreadable.
        """
        for problem in self.problems():
            if not isinstance(problem, BadDbnFile) or problem.covers(schema, start, end):
                raise problem
        return [f for f in self.files(schema) if f.overlaps(start, end)]


def symbol_map(path: Path) -> dict[int, str]:
    """instrument_id -> raw symbol from the file's symbology mappings (Databento metadata).

    Works for files requested by raw symbol or parent (stype_out instrument_id), where each mapping
    interval's ``symbol`` is the instrument_id as text.
    """
    store = _store(path)
    out: dict[int, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mappings = store.mappings or {}
    for raw_symbol, intervals in mappings.items():
        for interval in intervals:
            sym = str(interval.get("symbol", ""))
            if sym.isdigit():
                out[int(sym)] = raw_symbol
    return out


def read_ohlcv_1m(paths: list[Path], start: datetime, end: datetime) -> pl.DataFrame:
    """Decode ``ohlcv-1m`` records with ts_event in ``[start, end)`` from ``paths``.

    Returns columns ts_event (Datetime ns UTC, bar open), instrument_id (UInt32), raw_symbol (Utf8,
    null when no mapping names it), open/high/low/close (Float64, index points), volume (Int64,
    contracts), deduplicated on (ts_event, instrument_id) and sorted by ts_event then instrument_id.

    Raises:
        RawDataError: a file is unreadable or holds a record with an undefined price, naming the file.
    """
    lo, hi = _ns(start), _ns(end)
    frames: list[pl.DataFrame] = []
    for path in paths:
        symbols = symbol_map(path)
        for chunk in iter_records(path):
            sel = chunk[(chunk["ts_event"] >= lo) & (chunk["ts_event"] < hi)]
            if not len(sel):
                continue
            prices = {c: sel[c] for c in ("open", "high", "low", "close")}
            if any((p == UNDEF_PRICE).any() for p in prices.values()):
                raise RawDataError(f"{path}: ohlcv-1m record with an undefined price")
            frames.append(
                pl.DataFrame(
                    {
                        "ts_event": sel["ts_event"].astype(np.int64),
                        "instrument_id": sel["instrument_id"].astype(np.uint32),
                        **{c: p.astype(np.float64) / PRICE_SCALE for c, p in prices.items()},
                        "volume": sel["volume"].astype(np.int64),
                    }
                ).with_columns(
                    pl.col("ts_event").cast(pl.Datetime("ns", "UTC")),
                    pl.col("instrument_id")
                    .replace_strict(symbols, default=None, return_dtype=pl.Utf8)
                    .alias("raw_symbol"),
                )
            )
    schema = {
        "ts_event": pl.Datetime("ns", "UTC"),
        "instrument_id": pl.UInt32,
        "raw_symbol": pl.Utf8,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Int64,
    }
    if not frames:
        return pl.DataFrame(schema=schema)
    out = pl.concat(frames).select(list(schema))
    # Files may overlap (a re-download beside an old one); keep one bar per instrument and minute.
    return out.unique(["ts_event", "instrument_id"], keep="last").sort(["ts_event", "instrument_id"])


def _fixed(a: np.ndarray) -> np.ndarray:
    out = a.astype(np.float64) / PRICE_SCALE
    out[a == UNDEF_PRICE] = np.nan
    return out


def _text(a: np.ndarray) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a.tolist()]


def read_definitions(paths: list[Path], until: datetime) -> pl.DataFrame:
    """Decode ``definition`` records published before ``until``; the latest per instrument_id wins.

    Returns columns instrument_id (UInt32), raw_symbol, instrument_class (Utf8: F future, S spread,
    C/P option...), security_type, asset, underlying (Utf8), expiration, activation (Datetime ns UTC),
    min_price_increment, unit_of_measure_qty (contract multiplier, 50 for ES), strike_price
    (Float64, null when undefined), ts_recv (Datetime ns UTC). Definitions are few (thousands), so
    the per-column text decoding here is not a hot path.

    Raises:
        RawDataError: a file is unreadable, naming it.
    """
    hi = _ns(until)
    frames = []
    for path in paths:
        for chunk in iter_records(path):
            sel = chunk[chunk["ts_recv"] < hi] if "ts_recv" in chunk.dtype.names else chunk
            if not len(sel):
                continue
            frames.append(
                pl.DataFrame(
                    {
                        "instrument_id": sel["instrument_id"].astype(np.uint32),
                        "raw_symbol": _text(sel["raw_symbol"]),
                        "instrument_class": _text(sel["instrument_class"]),
                        "security_type": _text(sel["security_type"]),
                        "asset": _text(sel["asset"]),
                        "underlying": _text(sel["underlying"]),
                        "expiration": sel["expiration"].astype(np.int64),
                        "activation": sel["activation"].astype(np.int64),
                        "min_price_increment": _fixed(sel["min_price_increment"]),
                        "unit_of_measure_qty": _fixed(sel["unit_of_measure_qty"]),
                        "strike_price": _fixed(sel["strike_price"]),
                        "ts_recv": sel["ts_recv"].astype(np.int64),
                    }
                )
            )
    if not frames:
        return empty_definitions()
    return (
        pl.concat(frames)
        .with_columns(pl.col(c).cast(pl.Datetime("ns", "UTC")) for c in ("expiration", "activation", "ts_recv"))
        .with_columns(pl.col("strike_price").fill_nan(None))
        .sort("ts_recv")
        .unique("instrument_id", keep="last")
        .sort("instrument_id")
    )


def empty_definitions() -> pl.DataFrame:
    """A definitions frame with no rows and the columns of :func:`read_definitions`."""
    return pl.DataFrame(
        schema={
            "instrument_id": pl.UInt32,
            "raw_symbol": pl.Utf8,
            "instrument_class": pl.Utf8,
            "security_type": pl.Utf8,
            "asset": pl.Utf8,
            "underlying": pl.Utf8,
            "expiration": pl.Datetime("ns", "UTC"),
            "activation": pl.Datetime("ns", "UTC"),
            "min_price_increment": pl.Float64,
            "unit_of_measure_qty": pl.Float64,
            "strike_price": pl.Float64,
            "ts_recv": pl.Datetime("ns", "UTC"),
        }
    )


def utc_day_range(day: date) -> tuple[datetime, datetime]:
    """``[00:00, next 00:00)`` UTC of calendar day ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def file_fingerprint(paths: list[Path]) -> str:
    """A short text naming the files and their sizes and mtimes, for run keys and metadata."""
    parts = []
    for p in sorted(paths):
        st = os.stat(p)
        parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)
