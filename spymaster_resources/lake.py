"""The Parquet lake: ``lake/<tier>/<table>/date=YYYY-MM-DD/part-0.parquet`` (Hive-partitioned, zstd).

Writes are atomic: a partition is written to a temporary file in its directory and renamed over the
old file, so a reader (DuckDB, another run) never sees half a file and a failed write loses nothing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date
from pathlib import Path

import polars as pl

from spymaster_assets.errors import MissingPartitionError

PART_FILE = "part-0.parquet"


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
        """Write ``frame`` as the partition, atomically (temp file + rename). Returns the file path."""
        final = self.partition_path(tier, table, session_date)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{PART_FILE}.{uuid.uuid4().hex}.tmp"
        try:
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    def read(self, tier: str, table: str, session_date: date) -> pl.DataFrame:
        """Read one partition.

        Raises:
            MissingPartitionError: the partition was never materialized, naming the asset and date.
        """
        path = self.partition_path(tier, table, session_date)
        if not path.is_file():
            raise MissingPartitionError(f"{table} has no partition {session_date} ({path} missing): materialize {table} for {session_date} first")
        return pl.read_parquet(path)

    def read_many(self, tier: str, table: str, dates: list[date]) -> pl.DataFrame | None:
        """Concatenate the partitions of ``dates`` (all must exist); None when ``dates`` is empty."""
        frames = [self.read(tier, table, d) for d in dates]
        return pl.concat(frames, how="vertical_relaxed") if frames else None

    def dates(self, tier: str, table: str) -> list[date]:
        """Sorted dates of the partitions present."""
        root = self.table_dir(tier, table)
        if not root.is_dir():
            return []
        out = []
        for d in root.iterdir():
            if d.name.startswith("date=") and (d / PART_FILE).is_file():
                out.append(date.fromisoformat(d.name[len("date="):]))
        return sorted(out)

    def dates_before(self, tier: str, table: str, session_date: date, limit: int | None = None) -> list[date]:
        """Dates present strictly before ``session_date``, the latest ``limit`` of them when given."""
        before = [d for d in self.dates(tier, table) if d < session_date]
        return before[-limit:] if limit else before

    def replace_dir(self, final: Path, build) -> Path:
        """Atomically (re)create directory ``final``: ``build(tmp_dir)`` fills a temp dir, then it is swapped in.

        The old directory is kept until the new one is complete, so a failing ``build`` loses nothing.
        """
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        old = final.parent / f".{final.name}.{uuid.uuid4().hex}.old"
        tmp.mkdir()
        try:
            build(tmp)
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return final
