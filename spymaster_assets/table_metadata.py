"""Dagster metadata for a written lake table: column schema, row count, column lineage, config.

These are the keys the Dagster UI renders (``dagster/column_schema``, ``dagster/row_count``,
``dagster/column_lineage``), so an analyst sees each partition's columns and where they come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import polars as pl
from dagster import (
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from spymaster_core.config import SpymasterConfig
from spymaster_core.products import asset_key_prefix


def column_schema(frame: pl.DataFrame, descriptions: Mapping[str, str] | None = None) -> TableSchema:
    """A Dagster TableSchema of ``frame``'s columns with their polars dtypes and descriptions."""
    descriptions = descriptions or {}
    return TableSchema(
        columns=[
            TableColumn(name=name, type=str(dtype), description=descriptions.get(name))
            for name, dtype in frame.schema.items()
        ]
    )


def column_lineage(frame: pl.DataFrame, sources: Mapping[str, Mapping[str, list[str]]], prefix: tuple[str, ...] = ()) -> TableColumnLineage:
    """Lineage of ``frame``'s columns: ``sources[upstream_asset][column] = [upstream columns]``, the
    upstream assets being the product's (``prefix``: its asset-key prefix, none for ES).

    Columns of ``frame`` not named under any upstream are left out (computed from config alone).
    """
    deps: dict[str, list[TableColumnDep]] = {}
    for upstream, mapping in sources.items():
        for column, upstream_columns in mapping.items():
            if column in frame.columns:
                deps.setdefault(column, []).extend(
                    TableColumnDep(asset_key=AssetKey([*prefix, upstream]), column_name=c) for c in upstream_columns
                )
    return TableColumnLineage(deps_by_column=deps)


def table_metadata(
    frame: pl.DataFrame,
    path: Path,
    config: SpymasterConfig,
    descriptions: Mapping[str, str] | None = None,
    lineage: Mapping[str, Mapping[str, list[str]]] | None = None,
    row_count: int | None = None,
    **extra: object,
) -> dict[str, object]:
    """Everything a materialization of one lake partition reports to Dagster.

    ``row_count`` overrides ``frame.height`` for a table streamed to disk, whose ``frame`` is then a
    0-row frame carrying only the schema.
    """
    meta: dict[str, object] = {
        "dagster/row_count": frame.height if row_count is None else int(row_count),
        "dagster/column_schema": column_schema(frame, descriptions),
        "path": MetadataValue.path(str(path)),
    }
    if lineage:
        meta["dagster/column_lineage"] = column_lineage(frame, lineage, asset_key_prefix(config.product))
    meta.update(config.as_metadata())
    for key, value in extra.items():
        meta[key] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return meta


def same_columns(columns: list[str]) -> dict[str, list[str]]:
    """Lineage mapping for columns copied unchanged from an upstream table."""
    return {c: [c] for c in columns}
