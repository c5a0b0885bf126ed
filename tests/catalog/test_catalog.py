"""The DuckDB catalog: one view per lake table, the three README queries, query-time reads and atomic rebuilds."""

from __future__ import annotations

import shutil
import warnings
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from spymaster_assets.catalog.views import (
    BREAK_RATE_BY_LEVEL_QUERY,
    DAILY_OUTCOME_COUNTS_QUERY,
    SIGNALS_OF_DAY_QUERY,
    discover_lake_tables,
    write_catalog,
)
from spymaster_resources.lake import Lake
from tests.conftest import CHAIN_SESSIONS


def _tables_with_parquet(lake_dir: Path) -> dict[str, int]:
    """Table name -> total rows over every Parquet file under it, found independently of the catalog code."""
    rows: dict[str, int] = {}
    for path in lake_dir.glob("*/*/date=*/**/*.parquet"):
        table = path.relative_to(lake_dir).parts[1]
        rows[table] = rows.get(table, 0) + pq.ParquetFile(path).metadata.num_rows
    return rows


@pytest.fixture()
def catalog(materialized_home, tmp_path) -> Path:
    path = tmp_path / "spymaster.duckdb"
    write_catalog(materialized_home / "lake", path)
    return path


def test_one_view_per_lake_table_with_all_its_rows(materialized_home, catalog):
    expected = _tables_with_parquet(materialized_home / "lake")
    assert {"silver_bars", "gold_episodes", "gold_signals", "bronze_futures_ohlcv_1m"} <= set(expected)
    assert "gold_setup_index" not in expected  # manifests only: its vectors are the gold_episodes view
    con = duckdb.connect(str(catalog), read_only=True)
    views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert views == set(expected) | {f"es_{table}" for table in expected}  # every product's, and ES's own
    for table, rows in expected.items():
        assert con.sql(f'SELECT count(*) FROM "{table}"').fetchall()[0][0] == rows, table
        assert con.sql(f'SELECT count(*) FROM "es_{table}" WHERE product = \'ES\'').fetchall()[0][0] == rows, table
    # Hive partitioning exposes the date key; it agrees with the session_date column.
    mismatched = con.sql("SELECT count(*) FROM gold_episodes WHERE date <> session_date").fetchall()[0][0]
    assert mismatched == 0


def test_break_rate_by_level_and_direction(materialized_home, catalog):
    lake = Lake(materialized_home / "lake")
    episodes = lake.read_many("gold", "gold_episodes", CHAIN_SESSIONS)
    result = duckdb.connect(str(catalog), read_only=True).sql(BREAK_RATE_BY_LEVEL_QUERY).pl()
    assert result["episodes"].sum() == episodes.height
    assert result.select("level_kind", "direction").rows() == sorted(episodes.select("level_kind", "direction").unique().rows())
    row = result.filter((pl.col("level_kind") == "OR_HIGH") & (pl.col("direction") == "UP")).row(0, named=True)
    group = episodes.filter((pl.col("level_kind") == "OR_HIGH") & (pl.col("direction") == "UP"))
    assert row["break_rate"] == pytest.approx((group["outcome"] == "BREAK").mean(), abs=5e-4)
    sums = result.select(pl.sum_horizontal("break_rate", "reject_rate", "chop_rate")).to_series()
    assert all(abs(s - 1.0) <= 0.002 for s in sums)  # each rate is rounded to 3 decimals


def test_daily_outcome_counts(materialized_home, catalog):
    lake = Lake(materialized_home / "lake")
    result = duckdb.connect(str(catalog), read_only=True).sql(DAILY_OUTCOME_COUNTS_QUERY).pl()
    assert result["session_date"].to_list() == CHAIN_SESSIONS
    for row in result.iter_rows(named=True):
        day_episodes = lake.read("gold", "gold_episodes", row["session_date"])
        assert row["episodes"] == day_episodes.height == row["breaks"] + row["rejects"] + row["chops"]
        assert row["breaks"] == (day_episodes["outcome"] == "BREAK").sum()


def test_signals_of_a_day_with_their_outcomes(materialized_home, catalog):
    day = CHAIN_SESSIONS[3]
    lake = Lake(materialized_home / "lake")
    signals = lake.read("gold", "gold_signals", day)
    episodes = lake.read("gold", "gold_episodes", day)
    result = duckdb.connect(str(catalog), read_only=True).sql(SIGNALS_OF_DAY_QUERY, params={"session_date": day.isoformat()}).pl()
    assert result.height == signals.height > 0
    assert result["time_et"].min() >= "09:32" and result["time_et"].max() <= "12:30"
    # The first signal in time: its outcome is the episode's at the same anchor and level.
    first = signals.sort("ts_event", "level_kind").row(0, named=True)
    expected_outcome = episodes.filter((pl.col("ts_event") == first["ts_event"]) & (pl.col("level_kind") == first["level_kind"]))["outcome"].item()
    assert result.row(0, named=True)["outcome"] == expected_outcome
    assert result.row(0, named=True)["p_break"] == pytest.approx(first["p_break"], abs=5e-4)


def test_views_read_partitions_written_after_the_catalog(materialized_home, tmp_path):
    lake_dir = tmp_path / "lake"
    shutil.copytree(materialized_home / "lake", lake_dir)
    path = write_catalog(lake_dir, tmp_path / "spymaster.duckdb").path
    lake = Lake(lake_dir)
    before = duckdb.connect(str(path), read_only=True).sql("SELECT count(*) FROM gold_episodes").fetchall()[0][0]
    new_day = date(2013, 10, 14)
    added = lake.read("gold", "gold_episodes", CHAIN_SESSIONS[0]).with_columns(session_date=pl.lit(new_day))
    lake.write("gold", "gold_episodes", new_day, added)
    con = duckdb.connect(str(path), read_only=True)
    assert con.sql("SELECT count(*) FROM gold_episodes").fetchall()[0][0] == before + added.height
    assert con.sql("SELECT count(*) FROM gold_episodes WHERE date = DATE '2013-10-14'").fetchall()[0][0] == added.height


def test_tables_without_partitions_are_skipped(tmp_path):
    lake_dir = tmp_path / "lake"
    pl.DataFrame({"x": [1, 2]}).write_parquet(lake_dir / "silver" / "silver_bars" / "date=2013-10-07" / "part-0.parquet", mkdir=True)
    (lake_dir / "gold" / "gold_signals" / "date=2013-10-07").mkdir(parents=True)  # a run started, nothing written yet
    (lake_dir / "silver" / "silver_bars" / "date=2013-10-08").mkdir()
    (lake_dir / "silver" / "silver_bars" / "date=2013-10-08" / ".part-0.parquet.abc.tmp").write_bytes(b"half")  # in-flight write
    tables, skipped = discover_lake_tables(lake_dir)
    assert [(t.tier, t.name, t.partitions) for t in tables] == [("silver", "silver_bars", 1)]
    assert skipped == ["gold/gold_signals"]
    result = write_catalog(lake_dir, tmp_path / "c.duckdb")
    assert result.views == {"silver_bars": 2, "es_silver_bars": 2} and result.skipped == ["gold/gold_signals"]


def test_rebuild_replaces_the_file_atomically(materialized_home, tmp_path):
    lake_dir = tmp_path / "lake"
    shutil.copytree(materialized_home / "lake", lake_dir)
    path = tmp_path / "spymaster.duckdb"
    write_catalog(lake_dir, path)
    old_bytes = path.read_bytes()
    reader = duckdb.connect(str(path), read_only=True)  # an analyst's session on the old file
    # A corrupt partition makes the rebuild fail: the old catalog stays whole, no temporary file is left.
    bad = lake_dir / "gold" / "gold_evaluation" / "date=2013-10-14" / "part-0.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(duckdb.Error):
        write_catalog(lake_dir, path)
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "spymaster.duckdb"]
    # A successful rebuild swaps the file in while the reader keeps using the old one.
    bad.unlink()
    bad.parent.rmdir()
    shutil.rmtree(lake_dir / "silver" / "silver_levels")
    result = write_catalog(lake_dir, path)
    assert "silver_levels" not in result.views
    # The reader still has the old file, whole: its view list is unchanged and its views read.
    assert reader.sql("SELECT count(*) FROM duckdb_views() WHERE view_name = 'silver_levels'").fetchall()[0][0] == 1
    assert reader.sql("SELECT count(*) FROM gold_signals").fetchall()[0][0] > 0
    reader.close()  # duckdb caches open databases per path within a process: close before opening the new file
    views = {r[0] for r in duckdb.connect(str(path), read_only=True).sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert "silver_levels" not in views and "gold_signals" in views
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "spymaster.duckdb"]


def test_duckdb_catalog_asset_writes_home_catalog(materialized_home, tmp_path):
    from dagster import DagsterInstance, materialize

    from spymaster_assets.catalog.assets import duckdb_catalog, duckdb_resource
    from spymaster_resources import SpymasterResource

    shutil.copytree(materialized_home / "lake", tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize([duckdb_catalog], instance=DagsterInstance.ephemeral(), resources={"spymaster": SpymasterResource(home=str(tmp_path)), "duckdb": duckdb_resource})
    assert result.success
    metadata = result.asset_materializations_for_node("duckdb_catalog")[0].metadata
    assert metadata["views"].value == 2 * len(_tables_with_parquet(tmp_path / "lake"))  # each table's, and ES's own
    assert metadata["path"].value == str(tmp_path / "spymaster.duckdb")
    assert duckdb.connect(str(tmp_path / "spymaster.duckdb"), read_only=True).sql("SELECT count(*) FROM silver_bars").fetchall()[0][0] > 0


def test_the_duckdb_shell_reads_the_catalog(catalog):
    """The README's commands: the `duckdb` command-line shell (duckdb-cli, 1.5.x) opens the catalog file."""
    import subprocess
    import sys

    shell = Path(sys.executable).with_name("duckdb")
    assert shell.is_file(), "the duckdb-cli wheel (pyproject) installs the `duckdb` shell beside python"
    out = subprocess.run(
        [str(shell), str(catalog), "-csv", "-c", "select count(*) from gold_episodes"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    with duckdb.connect(str(catalog), read_only=True) as con:
        expected = con.sql("select count(*) from gold_episodes").fetchall()[0][0]
    assert int(out[-1]) == expected > 0
