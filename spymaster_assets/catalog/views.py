"""The DuckDB catalog of the lake: one VIEW per lake table over its Hive-partitioned Parquet files.

The catalog file holds no data, only view definitions: a view reads the Parquet files matching its
glob at query time, so partitions written after the catalog was built show up at once and queries
work while pipelines run (the lake's writers rename whole files into place, so a query never sees
half a file). The file is rebuilt only when a new table appears. It is written to a temporary file
in the same directory and renamed over the old one: a DuckDB file takes one writer, and a reader
holding the old file keeps reading it undisturbed.

Pure code (no Dagster): the ``duckdb_catalog`` asset in :mod:`.assets` calls :func:`write_catalog`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from spymaster_core.products import LEGACY_PRODUCT

#: Lake tiers, in the order their views are created.
TIERS: tuple[str, ...] = ("bronze", "silver", "gold")
CATALOG_FILE = "spymaster.duckdb"


@dataclass(frozen=True)
class LakeTable:
    """One lake table: ``tier``, ``name``, the Parquet ``glob`` its view reads, and the date partitions holding a file."""

    tier: str
    name: str
    glob: str
    partitions: int
    product: str = LEGACY_PRODUCT


def _parquet_glob(table_dir: Path) -> tuple[str, int] | None:
    """The glob of a table's partition files and how many partitions have one; None when none does.

    Ordinary tables hold ``date=D/part-0.parquet``. A gold_setup_index saved with its vectors (by
    earlier versions; today's keeps manifests only) holds FAISS files beside a
    ``date=D/schema=S/meta.parquet`` per vector schema, so the glob goes one Hive level deeper there. Temporary files (``.part-0.parquet.<id>.tmp``) and
    staging directories (``.date=...``) never match.
    """
    partitions = [d for d in table_dir.glob("date=*") if d.is_dir()]
    for pattern in ("*.parquet", "*/*.parquet"):
        holding = [d for d in partitions if next(d.glob(pattern), None) is not None]
        if holding:
            return str(table_dir.resolve() / "date=*" / pattern), len(holding)
    return None


def lake_products(lake_root: Path) -> dict[str, Path]:
    """The products with tables under ``lake_root``: ES (the legacy product) at the root itself, any
    other product P under ``product=P/`` (``spymaster_core.products.lake_subdir``); by symbol."""
    root = Path(lake_root)
    found = {LEGACY_PRODUCT: root} if any((root / tier).is_dir() for tier in TIERS) else {}
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("product=")):
            found[sub.name.split("=", 1)[1]] = sub
    return found


def discover_lake_tables(lake_dir: Path) -> tuple[list[LakeTable], list[str]]:
    """The tables of every product of the lake at ``lake_dir`` (``[product=P/]<tier>/<table>/date=*/``)
    that have at least one Parquet partition.

    Returns (tables sorted by product, tier and name; names of ``[product=P/]tier/table`` directories
    skipped because no partition holds a Parquet file yet).
    """
    tables: list[LakeTable] = []
    skipped: list[str] = []
    for product, root in lake_products(lake_dir).items():
        where = "" if product == LEGACY_PRODUCT else f"product={product}/"
        for tier in TIERS:
            tier_dir = root / tier
            if not tier_dir.is_dir():
                continue
            for table_dir in sorted(p for p in tier_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                found = _parquet_glob(table_dir)
                if found is None:
                    skipped.append(f"{where}{tier}/{table_dir.name}")
                else:
                    tables.append(LakeTable(tier, table_dir.name, found[0], found[1], product))
    return tables, skipped


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_sql(table: LakeTable, nanosecond_tz_columns: tuple[str, ...] = ()) -> str:
    """``SELECT *, '<product>' AS product FROM read_parquet('<glob>', hive_partitioning=true, union_by_name=true)``.

    Hive partitioning adds the ``date`` key (and ``schema`` for gold_setup_index, ``product`` for a
    product other than ES, whose files sit under ``product=P/``) as columns;
    ``union_by_name`` lets partitions written before a column was added be read with it as null.
    Paths are absolute, so the catalog works from any working directory (rebuild it if the data
    root moves). ``nanosecond_tz_columns`` (the lake's Datetime("ns", "UTC") columns) are cast to
    TIMESTAMPTZ (microseconds): DuckDB 2's nanosecond time-zone type cannot be stored in a view that
    the DuckDB 1.5 shell reads.
    """
    source = f"read_parquet({_quote_literal(table.glob)}, hive_partitioning = true, union_by_name = true)"
    replace = ", ".join(f"{_quote_identifier(c)}::TIMESTAMPTZ AS {_quote_identifier(c)}" for c in nanosecond_tz_columns)
    columns = f"* REPLACE ({replace})" if replace else "*"
    # Another product's files sit under product=P/, which Hive partitioning already reads as the column.
    product = f", {_quote_literal(table.product)} AS product" if table.product == LEGACY_PRODUCT else ""
    return f"SELECT {columns}{product} FROM {source}"


def view_sql(name: str, selects: list[str]) -> str:
    """``CREATE OR REPLACE VIEW <name>`` over the union (by column name) of ``selects`` (:func:`select_sql`)."""
    return f"CREATE OR REPLACE VIEW {_quote_identifier(name)} AS " + " UNION ALL BY NAME ".join(selects)


def product_view_name(product: str, table: str) -> str:
    """The view of one product's table: ``<product in lower case>_<table>`` (``gc_gold_signals``)."""
    return f"{product.lower()}_{table}"


def _nanosecond_tz_columns(con, table: LakeTable) -> tuple[str, ...]:
    """Columns of the table's Parquet that DuckDB 2 types TIMESTAMPTZ_NS (nanoseconds, with time zone)."""
    source = f"read_parquet({_quote_literal(table.glob)}, hive_partitioning = true, union_by_name = true)"
    rows = con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
    return tuple(name for name, dtype, *_ in rows if str(dtype).upper() in ("TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE"))


@dataclass(frozen=True)
class CatalogResult:
    """What :func:`write_catalog` did: the file, the views created (with their row counts) and the tables skipped."""

    path: Path
    views: dict[str, int]
    skipped: list[str]


#: Storage format of the catalog file: readable by DuckDB 1.5 and later (the PyPI command-line shell is 1.5.x).
CATALOG_STORAGE_VERSION = "v1.5.0"


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _create_view(con, name: str, selects: list[str]) -> int:
    """Create view ``name`` and count its rows once (the count proves the view reads)."""
    con.execute(view_sql(name, selects))
    return int(con.sql(f"SELECT count(*) FROM {_quote_identifier(name)}").fetchall()[0][0])


def write_catalog(lake_dir: Path, catalog_path: Path, connection: duckdb.DuckDBPyConnection | None = None) -> CatalogResult:
    """(Re)write the DuckDB file ``catalog_path`` with the lake's views, atomically: per table, one view
    over every product's partitions (``gold_signals``, with a ``product`` column) and one per product
    (``es_gold_signals``, ``gc_gold_signals``). ``lake_dir`` is the lake root (ES's tables, and
    ``product=P/`` for every other product).

    Views are created in a temporary file beside ``catalog_path`` (``.<name>.<id>.tmp``), each
    counted once (``SELECT count(*)``: it proves the view reads), the connection is checkpointed and
    closed, and the file is renamed over ``catalog_path``. If anything fails the temporary file is
    removed and the previous catalog is left as it was. Tables with no Parquet partition are skipped
    (listed in the result). ``connection``: the in-memory DuckDB connection to work in (the asset's,
    from dagster-duckdb's ``DuckDBResource``); by default a new one; it is left open when given.

    Raises:
        duckdb.Error: a view cannot be created or read (e.g. partitions with incompatible column types).
    """
    catalog_path = Path(catalog_path)
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    tables, skipped = discover_lake_tables(lake_dir)
    tmp = catalog_path.parent / f".{catalog_path.name}.{uuid.uuid4().hex}.tmp"
    views: dict[str, int] = {}
    try:
        con = connection if connection is not None else duckdb.connect()
        try:
            # Written in the storage format of DuckDB 1.5 so the `duckdb` command-line shell (the
            # duckdb-cli wheel, 1.5.x on PyPI) opens the file as well as the duckdb 2 library.
            con.execute(f"ATTACH '{_sql_path(tmp)}' AS catalog (STORAGE_VERSION '{CATALOG_STORAGE_VERSION}')")
            con.execute("USE catalog")
            by_name: dict[str, list[str]] = {}
            for table in tables:
                select = select_sql(table, _nanosecond_tz_columns(con, table))
                by_name.setdefault(table.name, []).append(select)
                views[product_view_name(table.product, table.name)] = _create_view(con, product_view_name(table.product, table.name), [select])
            for name, selects in by_name.items():
                views[name] = _create_view(con, name, selects)
            con.execute("CHECKPOINT catalog")
            con.execute("USE memory")
            con.execute("DETACH catalog")
        finally:
            if connection is None:
                con.close()
        os.replace(tmp, catalog_path)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            if leftover.exists():
                leftover.unlink()
    return CatalogResult(catalog_path, views, skipped)


# ----------------------------------------------------------------------------- useful queries

#: Break / reject / chop rates per level kind and approach direction over every labelled setup.
#: Columns: level_kind, direction, episodes, break_rate, reject_rate, chop_rate (fractions), sessions.
BREAK_RATE_BY_LEVEL_QUERY = """
SELECT level_kind,
       direction,
       count(*) AS episodes,
       round(avg(CASE WHEN outcome = 'BREAK' THEN 1.0 ELSE 0.0 END), 3) AS break_rate,
       round(avg(CASE WHEN outcome = 'REJECT' THEN 1.0 ELSE 0.0 END), 3) AS reject_rate,
       round(avg(CASE WHEN outcome = 'CHOP' THEN 1.0 ELSE 0.0 END), 3) AS chop_rate,
       count(DISTINCT session_date) AS sessions
FROM gold_episodes
GROUP BY level_kind, direction
ORDER BY level_kind, direction
"""

#: Setups per session and outcome, one row per session. Columns: session_date, episodes, breaks, rejects, chops, ambiguous.
DAILY_OUTCOME_COUNTS_QUERY = """
SELECT session_date,
       count(*) AS episodes,
       count(*) FILTER (WHERE outcome = 'BREAK') AS breaks,
       count(*) FILTER (WHERE outcome = 'REJECT') AS rejects,
       count(*) FILTER (WHERE outcome = 'CHOP') AS chops,
       count(*) FILTER (WHERE ambiguous) AS ambiguous
FROM gold_episodes
GROUP BY session_date
ORDER BY session_date
"""

#: What the trader saw on one session and what followed: the signals of ``$session_date`` (a
#: 'YYYY-MM-DD' parameter) with the outcome of each setup, in time order. Columns: time_et (New York
#: HH:MM of the anchor bar close), level_kind, direction, distance_atr, p_break, p_reject, p_chop,
#: effective_sample_size, outcome.
SIGNALS_OF_DAY_QUERY = """
SELECT strftime(timezone('America/New_York', s.ts_event), '%H:%M') AS time_et,
       s.level_kind,
       s.direction,
       round(e.distance_atr, 2) AS distance_atr,
       round(s.p_break, 3) AS p_break,
       round(s.p_reject, 3) AS p_reject,
       round(s.p_chop, 3) AS p_chop,
       round(s.effective_sample_size, 1) AS effective_sample_size,
       e.outcome
FROM gold_signals AS s
JOIN gold_episodes AS e USING (session_date, ts_event, level_kind)
WHERE s.session_date = CAST($session_date AS DATE)
ORDER BY s.ts_event, s.level_kind
"""

#: The three queries, by name (what the README shows).
USEFUL_QUERIES: dict[str, str] = {
    "break_rate_by_level": BREAK_RATE_BY_LEVEL_QUERY,
    "daily_outcome_counts": DAILY_OUTCOME_COUNTS_QUERY,
    "signals_of_day": SIGNALS_OF_DAY_QUERY,
}
