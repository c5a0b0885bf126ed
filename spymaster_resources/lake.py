"""The Parquet lake: ``lake/<tier>/<table>/date=YYYY-MM-DD/part-0.parquet`` (Hive-partitioned, zstd).

The lake root is a local directory or an fsspec URL on object storage (``s3://bucket/lake``; see
:mod:`spymaster_resources.lake_paths`). Writes are atomic: a partition is written to a temporary
file and then published (renamed over the old file locally, one PUT on object storage), so a reader
(DuckDB, another run) never sees half a file and a failed write loses nothing.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from spymaster_core.errors import LakeWriteError, MissingPartitionError

from .lake_paths import (
    CHANGE_LISTENERS,
    LakePath,
    file_identity,
    is_remote,
    lake_path,
    list_files,
    local_file_info,
    make_parent,
    open_binary,
    parquet_source,
    publish_file,
    staging_file,
)

PART_FILE = "part-0.parquet"
#: Rows per Parquet row group of streamed partitions: a reader of a few columns holds one group at a time.
ROW_GROUP_ROWS = 262_144


#: Tables the gold walk reads many times over (episodes: the index at each refit, the model's window,
#: normalization; signals: the trailing blend fit). Their partitions are memoized per process, up to
#: 1 GiB. gold_evaluation_sums is not among them: the evaluation carries its total from session to
#: session and reads a session's sums once per walk, so holding a decade of them would only cost memory.
HISTORY_TABLES = frozenset({"gold_episodes", "gold_signals"})


def _is_io_error(exc: BaseException) -> bool:
    """True for a Polars error that reports an operating-system I/O failure (``(os error N)``)."""
    return "os error" in str(exc) or "IO error" in str(exc)


def write_failure(path: LakePath, exc: BaseException) -> LakeWriteError:
    """The LakeWriteError for ``exc`` (an OSError, or a Polars/Arrow error wrapping one) raised while writing ``path``.

    Its message is ``<path>: cannot write the partition: <reason>``: the OSError's strerror
    ("No space left on device"), or the Polars message after "underlying IO error: ".
    """
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if "underlying IO error: " in reason:
        reason = reason.split("underlying IO error: ", 1)[1]
    return LakeWriteError(f"{path}: cannot write the partition: {reason}")


class FrameMemo:
    """Process-wide memo of partitions read from HISTORY_TABLES, keyed by (file, columns, identity).

    A range run walks its sessions in date order, and session D reads every partition before D: with
    the memo each partition is decoded once per run, not once per later session. A rewritten file has
    a new identity (``lake_paths.file_identity``: inode, size and mtime locally, the ETag on object
    storage) and is read again; least recently used frames are dropped past ``max_bytes``.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: LakePath, columns: tuple[str, ...] | None, read: Callable[[], pl.DataFrame], identity: tuple | None = None) -> pl.DataFrame:
        """The frame of ``path`` (``columns`` of it, or all), from the memo when the file is unchanged
        (a projection of the whole frame when that is held).

        ``identity``: the file's ``lake_paths.file_identity`` when the caller already listed it
        (saves a request per file on object storage). Raises FileNotFoundError when the file does not exist.
        """
        identity = tuple(identity or file_identity(path))
        key = (str(path), columns, *identity)
        whole = (str(path), None, *identity)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                return frame
            if columns is not None and whole in self._frames:
                # Every column of the file is held already (an index build read them): project it.
                self._frames.move_to_end(whole)
                return self._frames[whole].select(list(columns))
        frame = read()
        size = int(frame.estimated_size())
        with self._lock:
            self._frames[key] = frame
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._frames) > 1:
                _, dropped = self._frames.popitem(last=False)
                self._bytes -= int(dropped.estimated_size())
        return frame

    def clear(self) -> None:
        """Forget every frame."""
        with self._lock:
            self._frames.clear()
            self._bytes = 0


HISTORY_MEMO = FrameMemo()


def _missing(table: str, session_date: date, path: LakePath) -> MissingPartitionError:
    """The error for a partition never materialized, naming the table, the date and the file."""
    return MissingPartitionError(f"{table} has no partition {session_date} ({path} missing): materialize {table} for {session_date} first")


def _read_parquet(path: LakePath, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """One Parquet file (``columns`` of it, or all), local or on object storage."""
    source = parquet_source(path)
    if columns is None:
        return pl.read_parquet(source)
    if isinstance(source, Path):
        return pl.scan_parquet(source).select(list(columns)).collect()
    return pl.read_parquet(source, columns=list(columns))


class Lake:
    """Read and write date partitions of lake tables under ``root`` (a local directory, or an fsspec
    URL such as ``s3://bucket/lake``: :func:`lake_paths.lake_path`)."""

    def __init__(self, root: str | LakePath):
        self.root = lake_path(root)

    @property
    def remote(self) -> bool:
        """True when the lake is on object storage."""
        return is_remote(self.root)

    def table_dir(self, tier: str, table: str) -> LakePath:
        """Directory of one table, e.g. ``lake/silver/silver_bars``."""
        return self.root / tier / table

    def partition_dir(self, tier: str, table: str, session_date: date) -> LakePath:
        """Directory of one date partition (Hive key ``date``)."""
        return self.table_dir(tier, table) / f"date={session_date.isoformat()}"

    def partition_path(self, tier: str, table: str, session_date: date) -> LakePath:
        """The Parquet file of one partition."""
        return self.partition_dir(tier, table, session_date) / PART_FILE

    def exists(self, tier: str, table: str, session_date: date) -> bool:
        """True when the partition file exists."""
        return self.partition_path(tier, table, session_date).is_file()

    def write(self, tier: str, table: str, session_date: date, frame: pl.DataFrame) -> LakePath:
        """Write ``frame`` as the partition, atomically (temp file, then rename or one upload). Returns the file path.

        Raises LakeWriteError naming the partition and the system's reason (no space left on
        device, permission denied, ...) when the disk or the object store refuses; the old partition is untouched.
        """
        final = self.partition_path(tier, table, session_date)
        tmp = staging_file(final)
        try:
            make_parent(final)
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            publish_file(tmp, final)
        except (OSError, pl.exceptions.PolarsError) as exc:
            if isinstance(exc, pl.exceptions.PolarsError) and not _is_io_error(exc):
                raise
            raise write_failure(final, exc) from exc
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    @contextmanager
    def stream_writer(self, tier: str, table: str, session_date: date) -> Iterator["PartitionWriter"]:
        """Write a partition chunk by chunk (bounded memory), atomically.

        Yields a :class:`PartitionWriter`; each ``write(frame)`` appends row groups to a temporary
        file, published as the partition when the ``with`` block exits normally. If the block raises,
        the temporary file is deleted and the old partition (if any) is untouched. A partition to
        which nothing was written gets a valid empty file only if ``writer.empty_schema`` was set.
        A refused write (no space left, permission denied) raises LakeWriteError naming the partition.
        """
        final = self.partition_path(tier, table, session_date)
        make_parent(final)
        tmp = staging_file(final)
        writer = PartitionWriter(tmp, final)
        try:
            yield writer
            try:
                writer.close()
                publish_file(tmp, final)
            except OSError as exc:
                raise write_failure(final, exc) from exc
        finally:
            writer.abort()
            if tmp.exists():
                tmp.unlink()

    def row_count(self, tier: str, table: str, session_date: date) -> int:
        """Rows of one partition, from the Parquet footer (0 when the partition does not exist)."""
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            return 0
        with open_binary(path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    def schema(self, tier: str, table: str, session_date: date) -> pl.Schema:
        """The polars schema of one partition, from the Parquet footer (the file is not read).

        Raises:
            MissingPartitionError: the partition was never materialized.
        """
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            raise _missing(table, session_date, path)
        with open_binary(path) as handle:
            return pl.from_arrow(pq.ParquetFile(handle).schema_arrow.empty_table()).schema

    def scan(self, tier: str, table: str, session_date: date) -> pl.LazyFrame:
        """Lazily scan one partition (for tables too large to read whole; on object storage the
        object is fetched whole first).

        Raises:
            MissingPartitionError: the partition was never materialized.
        """
        path = self.partition_path(tier, table, session_date)
        try:
            source = parquet_source(path)
        except FileNotFoundError:
            raise _missing(table, session_date, path) from None
        return pl.scan_parquet(source) if isinstance(source, Path) else pl.read_parquet(source).lazy()

    def iter_batches(self, tier: str, table: str, session_date: date, batch_rows: int = 250_000, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """Yield one partition as polars frames of at most ``batch_rows`` rows, in file order (bounded
        memory; on object storage read by ranges).

        ``columns``: read only these (those the file lacks are skipped), which bounds memory on wide
        tables such as bronze_futures_mbp10.

        Raises:
            MissingPartitionError: the partition was never materialized.
        """
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            raise _missing(table, session_date, path)
        with open_binary(path) as handle:
            parquet = pq.ParquetFile(handle)
            if columns is not None:
                present = set(parquet.schema_arrow.names)
                columns = [c for c in columns if c in present]
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
                yield pl.from_arrow(batch)

    def read(self, tier: str, table: str, session_date: date) -> pl.DataFrame:
        """Read one partition.

        Raises:
            MissingPartitionError: the partition was never materialized, naming the asset and date.
        """
        return self._read_columns(tier, table, session_date, None)

    def read_many(self, tier: str, table: str, dates: list[date], columns: list[str] | None = None) -> pl.DataFrame | None:
        """Concatenate the partitions of ``dates`` (all must exist); None when ``dates`` is empty.

        ``columns``: read only these (Parquet column projection), e.g. the outcome of every earlier
        episode without its vector. Raises polars' ColumnNotFoundError when a partition lacks one.
        """
        selected = None if columns is None else tuple(columns)
        # On object storage one listing gives every file's identity for the memo (not a request per file).
        listed = self.partition_files(tier, table) if self.remote and table in HISTORY_TABLES and len(dates) > 1 else {}
        frames = [self._read_columns(tier, table, d, selected, listed.get(d)) for d in dates]
        return pl.concat(frames, how="vertical_relaxed") if frames else None

    def _read_columns(self, tier: str, table: str, session_date: date, columns: tuple[str, ...] | None, listed: dict | None = None) -> pl.DataFrame:
        """``columns`` (None: all) of one partition, through the memo for HISTORY_TABLES (``listed``: its
        :meth:`partition_files` entry, when the caller listed the table)."""
        path = self.partition_path(tier, table, session_date)
        try:
            if table in HISTORY_TABLES:
                identity = (listed["fingerprint"],) if listed is not None else None
                return HISTORY_MEMO.get(path, columns, lambda: _read_parquet(path, columns), identity)
            return _read_parquet(path, columns)
        except FileNotFoundError:
            raise _missing(table, session_date, path) from None

    def partition_files(self, tier: str, table: str, marker: str = PART_FILE) -> dict[date, dict]:
        """The partitions present, by date, each with its ``marker`` file's ``size``, ``fingerprint``
        (``lake_paths.file_fingerprint``) and ``mtime``: those whose directory holds ``marker`` (the
        Parquet part file by default; a directory asset names its own, e.g. ``meta.json``).

        One listing of the table on object storage; locally one stat per partition.
        """
        root = self.table_dir(tier, table)
        cached = self._listed(root, marker)
        if cached is not None:
            return dict(cached)
        out: dict[date, dict] = {}
        if self.remote:
            for name, info in list_files(root).items():
                folder, _, file = name.partition("/")
                if file == marker and folder.startswith("date="):
                    out[date.fromisoformat(folder[len("date="):])] = info
            return out
        if not root.is_dir():
            return {}
        # os.scandir and string paths: a decade's listing is thousands of stats, several per gold session.
        with os.scandir(root) as entries:
            for entry in entries:
                if not entry.name.startswith("date="):
                    continue
                try:
                    st = os.stat(os.path.join(entry.path, marker))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                out[date.fromisoformat(entry.name[len("date="):])] = local_file_info(st)
        if LISTINGS.active:
            LISTINGS.put(os.path.abspath(root), marker, out)
        return dict(out)

    def _listed(self, root: LakePath, marker: str) -> dict[date, dict] | None:
        if self.remote or not LISTINGS.active:
            return None
        return LISTINGS.get(os.path.abspath(root), marker)

    def listing_version(self, tier: str, table: str, marker: str = PART_FILE) -> int | None:
        """While listings are kept (:func:`cached_listings`), a number that changes whenever the table's
        listing does (a memo key for what is derived from it); else None (nothing to key on)."""
        if self.remote or not LISTINGS.active:
            return None
        return LISTINGS.version(os.path.abspath(self.table_dir(tier, table)), marker)

    def dates(self, tier: str, table: str, marker: str = PART_FILE) -> list[date]:
        """Sorted dates of the partitions present (``marker`` as :meth:`partition_files`)."""
        return sorted(self.partition_files(tier, table, marker))

    def dates_before(self, tier: str, table: str, session_date: date, limit: int | None = None, marker: str = PART_FILE) -> list[date]:
        """Dates present strictly before ``session_date``, the latest ``limit`` of them when given (``marker`` as :meth:`dates`)."""
        before = [d for d in self.dates(tier, table, marker) if d < session_date]
        return before[-limit:] if limit else before


class ListingCache:
    """Local partition listings (:meth:`Lake.partition_files`) kept while a date-order walk runs
    (:func:`cached_listings`): a walk lists the same history tables many times a session, and
    listing a decade costs thousands of stats each time.

    Valid only while this process is the one writing the tables it lists (a range step: the backfill
    lock keeps other writers out, and a step reads only its upstream tables and its own). Every
    file published or directory replaced or removed through ``lake_paths`` updates its partition's
    entry (:meth:`changed`), so the walk's own writes are seen at once.
    """

    def __init__(self):
        self.depth = 0
        self._tables: dict[tuple[str, str], dict[date, dict]] = {}
        self._versions: dict[tuple[str, str], int] = {}
        self._counter = 0

    def _touch(self, key: tuple[str, str]) -> None:
        self._counter += 1
        self._versions[key] = self._counter

    def version(self, root: str, marker: str) -> int | None:
        """A number that changes whenever the kept listing of (``root``, ``marker``) does; None when none is kept."""
        return self._versions.get((root, marker)) if (root, marker) in self._tables else None

    @property
    def active(self) -> bool:
        return self.depth > 0

    def get(self, root: str, marker: str) -> dict[date, dict] | None:
        return self._tables.get((root, marker))

    def put(self, root: str, marker: str, listing: dict[date, dict]) -> None:
        self._tables[(root, marker)] = listing
        self._touch((root, marker))

    def clear(self) -> None:
        self._tables.clear()
        self._versions.clear()

    def changed(self, path: LakePath) -> None:
        """Bring the listings of the table holding ``path`` (a partition directory or a file in one) up to date."""
        if not self._tables or is_remote(path):
            return
        text = os.path.abspath(path)
        for (root, marker), listing in list(self._tables.items()):
            if not text.startswith(root + os.sep):
                if text == root or root.startswith(text + os.sep):
                    del self._tables[(root, marker)]  # the table itself replaced or removed
                continue
            folder = text[len(root) + 1:].split(os.sep, 1)[0]
            if not folder.startswith("date="):
                continue
            day = date.fromisoformat(folder[len("date="):])
            try:
                listing[day] = local_file_info(os.stat(os.path.join(root, folder, marker)))
            except (FileNotFoundError, NotADirectoryError):
                listing.pop(day, None)
            self._touch((root, marker))


LISTINGS = ListingCache()
CHANGE_LISTENERS.append(LISTINGS.changed)


@contextmanager
def cached_listings() -> Iterator[None]:
    """Keep local partition listings while the block runs (see :class:`ListingCache`); they are dropped when it ends."""
    LISTINGS.depth += 1
    try:
        yield
    finally:
        LISTINGS.depth -= 1
        if LISTINGS.depth == 0:
            LISTINGS.clear()


class PartitionWriter:
    """Appends polars frames as Parquet row groups (zstd) to one file; see :meth:`Lake.stream_writer`.

    Every frame written must have the same schema as the first (pyarrow raises otherwise).
    ``rows`` counts the rows written; ``empty_schema`` (a polars schema dict), when set, is used to
    write a valid zero-row file if no frame was written.

    Each row group is encoded and compressed on a background thread (pyarrow releases the GIL), so
    the caller decodes the next chunk meanwhile; at most one frame is in flight, which keeps memory
    bounded. A write error is raised by the next ``write`` or by ``close``. Column statistics are
    kept for the time and date columns only (what a reader filters on) and dictionary encoding for
    text columns only: both cost more than they save on wide numeric tables such as mbp-10.
    """

    def __init__(self, tmp: Path, final: LakePath):
        self.tmp = tmp
        self.path = final
        self.rows = 0
        self.empty_schema: dict | None = None
        self._writer: pq.ParquetWriter | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._closed = False

    def _open(self, table) -> pq.ParquetWriter:
        stats = [f.name for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
        text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        return pq.ParquetWriter(self.tmp, table.schema, compression="zstd", write_statistics=stats or False, use_dictionary=text or False)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            try:
                pending.result()
            except OSError as exc:
                raise write_failure(self.path, exc) from exc

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame`` (skipped when it has no rows)."""
        if frame.height == 0:
            return
        table = frame.to_arrow()
        if self._writer is None:
            try:
                self._writer = self._open(table)
            except OSError as exc:
                raise write_failure(self.path, exc) from exc
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table, row_group_size=ROW_GROUP_ROWS)
        self.rows += frame.height

    def abort(self) -> None:
        """Release the file handle without finishing the file (after an error; idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._wait()
        except Exception:
            pass  # the error that made us abort is already propagating
        if self._pool is not None:
            self._pool.shutdown()
        if self._writer is not None:
            self._writer.close()

    def close(self) -> None:
        """Finish the file (idempotent); raises a pending background write error."""
        if self._closed:
            return
        self._wait()
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown()
        if self._writer is not None:
            self._writer.close()
        elif self.empty_schema is not None:
            pl.DataFrame(schema=self.empty_schema).write_parquet(self.tmp, compression="zstd")
        else:
            raise ValueError(f"{self.path}: nothing written and no empty_schema set")
