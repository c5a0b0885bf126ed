"""The lake's writes: atomic, and a refused write (a full disk) names the partition and the reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from spymaster_core.errors import LakeWriteError
from spymaster_resources.lake import Lake, PartitionWriter

DAY = date(2013, 10, 8)
FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk

pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


def _frame(rows: int = 200_000) -> pl.DataFrame:
    return pl.DataFrame({"ts_event": range(rows), "price": [float(i) for i in range(rows)]})


def test_a_full_disk_names_the_partition_and_keeps_the_old_one(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    old = lake.write("silver", "silver_levels", DAY, _frame(10))
    write_parquet = pl.DataFrame.write_parquet
    # The temporary file lands on a full disk: Polars gets ENOSPC from the operating system.
    monkeypatch.setattr(pl.DataFrame, "write_parquet", lambda self, path, **kw: write_parquet(self, FULL, **kw))
    with pytest.raises(LakeWriteError) as caught:
        lake.write("silver", "silver_levels", DAY, _frame())
    assert str(caught.value) == f"{old}: cannot write the partition: No space left on device (os error 28)"
    monkeypatch.undo()
    assert pl.read_parquet(old).height == 10  # the old partition is untouched
    assert [p.name for p in old.parent.iterdir()] == [old.name]  # no temporary file left


def test_a_full_disk_under_a_streamed_partition_names_it(tmp_path):
    final = tmp_path / "bronze" / "bronze_futures_mbp10" / f"date={DAY}" / "part-0.parquet"
    writer = PartitionWriter(FULL, final)
    with pytest.raises(LakeWriteError) as caught:
        for _ in range(20):
            writer.write(_frame())
        writer.close()
    writer.abort()
    assert str(caught.value).startswith(f"{final}: cannot write the partition: ")
    assert "No space left on device" in str(caught.value)


def test_an_error_that_is_not_the_disk_is_left_alone(tmp_path, monkeypatch):
    def schema_error(self, path, **kw):
        raise pl.exceptions.SchemaError("a column of unsupported type")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", schema_error)
    with pytest.raises(pl.exceptions.SchemaError):
        Lake(tmp_path).write("gold", "gold_signals", DAY, _frame(1))

