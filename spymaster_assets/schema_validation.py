"""Pandera validation whose error names the lake table, for the tables checked before they are written."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaError


def validate_table(schema: pa.DataFrameSchema, frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Validate ``frame`` with ``schema`` and return it.

    Raises:
        SchemaError: the frame fails the schema; the message starts with ``"<table>: "`` and the
            failure cases, check and column of pandera's error are kept.
    """
    try:
        return schema.validate(frame)
    except SchemaError as err:
        raise SchemaError(
            schema,
            frame,
            f"{table}: {err}",
            failure_cases=err.failure_cases,
            check=err.check,
            reason_code=err.reason_code,
            column_name=err.column_name,
        ) from err
