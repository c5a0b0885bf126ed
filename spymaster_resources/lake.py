"""The Parquet lake: ``lake/<tier>/<table>/date=YYYY-MM-DD/part-0.parquet`` (Hive-partitioned, zstd).

Writes are atomic: a partition is written to a temporary file in its directory and renamed over the
old file, so a reader (DuckDB, another run) never sees half a file and a failed write loses nothing.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
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

PART_FILE = "part-0.parquet"
#: Rows per Parquet row group of streamed partitions: a reader of a few columns holds one group at a time.
ROW_GROUP_ROWS = 262_144


def replace_directory(final: Path, build: Callable[[Path], None]) -> Path:
    """Atomically (re)create directory ``final``: ``build(staging)`` fills a sibling staging directory,
    which then replaces ``final`` by rename.

    An existing ``final`` is moved aside first and deleted only after the swap succeeded; if the build
    or the swap fails, the old directory is put back and the staging files are removed, so a reader
    sees the old directory or the new one, never half of either. Returns ``final``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    staging = final.parent / f".{final.name}.tmp-{tag}"
    aside = final.parent / f".{final.name}.old-{tag}"
    staging.mkdir()
    try:
        build(staging)
        if final.exists():
            os.replace(final, aside)
        try:
            os.replace(staging, final)
        except BaseException:
            if aside.exists():
                os.replace(aside, final)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)
    return final


#: Tables every gold session reads the whole history of (episodes: index, model, normalization,
#: distance lookup; signals: blend fit; evaluation sums: cumulative scores). Their partitions are memoized per process.
HISTORY_TABLES = frozenset({"gold_episodes", "gold_signals", "gold_evaluation_sums"})


def _is_io_error(exc: BaseException) -> bool:
    """True for a Polars error that reports an operating-system I/O failure (``(os error N)``)."""
    return "os error" in str(exc) or "IO error" in str(exc)


def write_failure(path: Path, exc: BaseException) -> LakeWriteError:
    """The LakeWriteError for ``exc`` (an OSError, or a Polars/Arrow error wrapping one) raised while writing ``path``.

    Its message is ``<path>: cannot write the partition: <reason>``: the OSError's strerror
    ("No space left on device"), or the Polars message after "underlying IO error: ".
    """
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if "underlying IO error: " in reason:
        reason = reason.split("underlying IO error: ", 1)[1]
    return LakeWriteError(f"{path}: cannot write the partition: {reason}")


class FrameMemo:
    """Process-wide memo of partitions read from HISTORY_TABLES, keyed by (file, columns, inode, size, mtime).

    A range run walks its sessions in date order, and session D reads every partition before D: with
    the memo each partition is decoded once per run, not once per later session. A rewritten file has
    a new inode (writes replace the file), size or mtime and is read again; least recently used frames are dropped past ``max_bytes``.
    """

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: Path, columns: tuple[str, ...] | None, read: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """The frame of ``path`` (``columns`` of it, or all), from the memo when the file is unchanged."""
        st = path.stat()
        key = (str(path), columns, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                return frame
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


def _missing(table: str, session_date: date, path: Path) -> MissingPartitionError:
    """The error for a partition never materialized, naming the table, the date and the file."""
    return MissingPartitionError(f"{table} has no partition {session_date} ({path} missing): materialize {table} for {session_date} first")


class Lake:
    """Read and write date partitions of lake tables under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def table_dir(self, tier: str, table: str) -> Path:
        """Directory of one table, e.g. ``lake/silver/silver_bars``."""
        return self.root / tier / table

    def partition_dir(self, tier: str, table: str, session_date: date) -> Path:
        """Directory of one date partition (Hive key ``date``)."""
        return self.table_dir(tier, table) / f"date={session_date.isoformat()}"

    def partition_path(self, tier: str, table: str, session_date: date) -> Path:
        """The Parquet file of one partition."""
        return self.partition_dir(tier, table, session_date) / PART_FILE

    def exists(self, tier: str, table: str, session_date: date) -> bool:
        """True when the partition file exists."""
        return self.partition_path(tier, table, session_date).is_file()

    def write(self, tier: str, table: str, session_date: date, frame: pl.DataFrame) -> Path:
        """Write ``frame`` as the partition, atomically (temp file + rename). Returns the file path.

        Raises LakeWriteError naming the partition and the system's reason (no space left on
        device, permission denied, ...) when the disk refuses; the old partition is untouched.
        """
        final = self.partition_path(tier, table, session_date)
        tmp = final.parent / f".{PART_FILE}.{uuid.uuid4().hex}.tmp"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            os.replace(tmp, final)
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
        file, renamed over the partition when the ``with`` block exits normally. If the block raises,
        the temporary file is deleted and the old partition (if any) is untouched. A partition to
        which nothing was written gets a valid empty file only if ``writer.empty_schema`` was set.
        A refused write (no space left, permission denied) raises LakeWriteError naming the partition.
        """
        final = self.partition_path(tier, table, session_date)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{PART_FILE}.{uuid.uuid4().hex}.tmp"
        writer = PartitionWriter(tmp, final)
        try:
            yield writer
            try:
                writer.close()
                os.replace(tmp, final)
            except OSError as exc:
                raise write_failure(final, exc) from exc
        finally:
            writer.abort()
            if tmp.exists():
                tmp.unlink()

    def row_count(self, tier: str, table: str, session_date: date) -> int:
        """Rows of one partition, from the Parquet footer (0 when the partition does not exist)."""
        path = self.partition_path(tier, table, session_date)
        return pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0

    def scan(self, tier: str, table: str, session_date: date) -> pl.LazyFrame:
        """Lazily scan one partition (for tables too large to read whole).

        Raises:
            MissingPartitionError: the partition was never materialized.
        """
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            raise _missing(table, session_date, path)
        return pl.scan_parquet(path)

    def iter_batches(self, tier: str, table: str, session_date: date, batch_rows: int = 250_000, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """Yield one partition as polars frames of at most ``batch_rows`` rows, in file order (bounded memory).

        ``columns``: read only these (those the file lacks are skipped), which bounds memory on wide
        tables such as bronze_futures_mbp10.

        Raises:
            MissingPartitionError: the partition was never materialized.
        """
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            raise _missing(table, session_date, path)
        parquet = pq.ParquetFile(path)
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
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            raise _missing(table, session_date, path)
        if table in HISTORY_TABLES:
            return HISTORY_MEMO.get(path, None, lambda: pl.read_parquet(path))
        return pl.read_parquet(path)

    def read_many(self, tier: str, table: str, dates: list[date], columns: list[str] | None = None) -> pl.DataFrame | None:
        """Concatenate the partitions of ``dates`` (all must exist); None when ``dates`` is empty.

        ``columns``: read only these (Parquet column projection), e.g. the outcome of every earlier
        episode without its vector. Raises polars' ColumnNotFoundError when a partition lacks one.
        """
        if columns is None:
            frames = [self.read(tier, table, d) for d in dates]
        elif table in HISTORY_TABLES:
            frames = [self._read_columns(tier, table, d, tuple(columns)) for d in dates]
        else:
            frames = [self.scan(tier, table, d).select(columns).collect() for d in dates]
        return pl.concat(frames, how="vertical_relaxed") if frames else None

    def _read_columns(self, tier: str, table: str, session_date: date, columns: tuple[str, ...]) -> pl.DataFrame:
        """``columns`` of one HISTORY_TABLES partition, through the memo."""
        path = self.partition_path(tier, table, session_date)
        try:
            return HISTORY_MEMO.get(path, columns, lambda: pl.scan_parquet(path).select(list(columns)).collect())
        except FileNotFoundError:
            raise _missing(table, session_date, path) from None

    def dates(self, tier: str, table: str, marker: str = PART_FILE) -> list[date]:
        """Sorted dates of the partitions present: those whose directory holds the file ``marker``
        (the Parquet part file by default; a directory asset names its own, e.g. ``meta.json``)."""
        root = self.table_dir(tier, table)
        if not root.is_dir():
            return []
        out = []
        for d in root.iterdir():
            if d.name.startswith("date=") and (d / marker).is_file():
                out.append(date.fromisoformat(d.name[len("date="):]))
        return sorted(out)

    def dates_before(self, tier: str, table: str, session_date: date, limit: int | None = None, marker: str = PART_FILE) -> list[date]:
        """Dates present strictly before ``session_date``, the latest ``limit`` of them when given (``marker`` as :meth:`dates`)."""
        before = [d for d in self.dates(tier, table, marker) if d < session_date]
        return before[-limit:] if limit else before


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

    def __init__(self, tmp: Path, final: Path):
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
