"""The duckdb_catalog asset (Dagster wiring only): ``<home>/spymaster.duckdb`` with one view per lake table."""

from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset, define_asset_job, load_assets_from_modules
from dagster_duckdb import DuckDBResource

from spymaster_resources import SpymasterResource

from ..bronze import assets as bronze_assets
from ..bronze import options_assets as bronze_options_assets
from ..gold import assets as gold_assets
from ..silver import assets as silver_assets
from .views import CATALOG_FILE, USEFUL_QUERIES, write_catalog

#: Every bronze, silver and gold asset: the lake tables the catalog has views over.
LAKE_ASSET_KEYS = sorted(
    {key for assets_def in load_assets_from_modules([bronze_assets, bronze_options_assets, silver_assets, gold_assets]) for key in assets_def.keys},
    key=lambda key: key.to_user_string(),
)


@asset(group_name="catalog", deps=LAKE_ASSET_KEYS, kinds={"duckdb"})
def duckdb_catalog(context: AssetExecutionContext, spymaster: SpymasterResource, duckdb: DuckDBResource) -> MaterializeResult:
    """DuckDB file <home>/spymaster.duckdb of views over the lake (read at query time), one view per lake table with a partition (every product, with a product column) and one per product and table."""
    cfg = spymaster.config
    if spymaster.lake.remote:
        # Views over s3:// need DuckDB's httpfs extension and a secret for the store: not set up here.
        reason = f"the lake is on object storage ({cfg.lake_url}): no catalog file is written; query it with DuckDB's httpfs extension"
        context.log.warning(f"duckdb_catalog: {reason}")
        return MaterializeResult(metadata={"views": 0, "skipped_tables": "all", "reason": reason})
    # The resource's in-memory database: the catalog file is attached to it, filled, and renamed into place.
    with duckdb.get_connection() as con:
        result = write_catalog(cfg.lake_root, Path(cfg.home) / CATALOG_FILE, con)
    if result.skipped:
        context.log.info(f"duckdb_catalog: no partition yet, no view for: {', '.join(result.skipped)}")
    rows = "\n".join(f"| {name} | {count} |" for name, count in result.views.items())
    queries = "\n\n".join(f"**{name}**\n```sql\n{sql.strip()}\n```" for name, sql in USEFUL_QUERIES.items())
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.path)),
            "views": len(result.views),
            "view_rows": MetadataValue.md(f"| view | rows |\n|---|---|\n{rows}" if rows else "none"),
            "skipped_tables": ", ".join(result.skipped) or "none",
            "usage": MetadataValue.md(f"`duckdb {result.path} -c \"select * from gold_episodes limit 5\"`\n\n{queries}"),
        }
    )


#: The DuckDB resource the catalog asset works in: an in-memory database (the lake stays Parquet; the
#: catalog file is written beside it and swapped in atomically).
duckdb_resource = DuckDBResource(database=":memory:")

#: The catalog assets to register, and a job that rebuilds the catalog (needed only when a new table appears).
catalog_assets = [duckdb_catalog]
catalog_job = define_asset_job("duckdb_catalog_job", selection=[duckdb_catalog])
