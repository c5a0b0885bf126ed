"""gold_episodes: the setups (anchors inside the approach zone) with their vector, partition key and outcome."""

from __future__ import annotations

import polars as pl

from spymaster_core.config import SpymasterConfig
from .vectors import state_to_matrix, vector_columns, vector_version

_JOIN_KEYS = ["session_date", "ts_event", "level_kind"]


def _iso_days(frame: pl.DataFrame) -> list[str]:
    return sorted({d.isoformat() for d in frame["session_date"].to_list()})


def partition_key_expr() -> pl.Expr:
    """Polars expression for the index partition key ``"{level_kind}|{direction}|{time_bucket}"``."""
    return pl.concat_str([pl.col("level_kind"), pl.col("direction"), pl.col("time_bucket")], separator="|")


#: Columns identifying one setup (anchor bar close x level kind) and its index partition, with dtypes.
SETUP_KEY_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date(),
    "ts_event": pl.Datetime("ns", "UTC"),
    "level_kind": pl.String(),
    "direction": pl.String(),
    "time_bucket": pl.String(),
}


def episodes_schema(dim: int) -> dict[str, pl.DataType]:
    """Column names and dtypes of gold_episodes for a vector of ``dim`` dimensions."""
    return {
        **SETUP_KEY_SCHEMA,
        "partition_key": pl.String(),
        "vector_version": pl.String(),
        "feature_families": pl.String(),
        "vector": pl.Array(pl.Float32, dim),
        "distance_atr": pl.Float64(),
        "outcome": pl.String(),
        "ambiguous": pl.Boolean(),
        "horizon_complete": pl.Boolean(),
    }


def select_episodes(state: pl.DataFrame, outcomes: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Build gold_episodes from silver_level_state and silver_outcomes.

    Episodes are the state rows with ``in_zone`` true and a finite ``atr_points > 0`` (points),
    inner-joined with their outcome on (session_date, ts_event, level_kind).

    Output, sorted by (session_date, ts_event, level_kind): session_date (Date), ts_event
    (Datetime ns UTC, the anchor bar close T), level_kind, direction, time_bucket, partition_key
    (``"{level_kind}|{direction}|{time_bucket}"``), vector_version (the full layout's),
    feature_families (the state row's families label, e.g. ``"bars+tape"``; ``"bars"`` when the
    state has no such column), vector (Array(Float32, D) of :func:`vector_columns` in order, nulls
    and absent families as NaN, not yet normalized),
    distance_atr (ATR), outcome (BREAK/REJECT/CHOP), ambiguous, horizon_complete.

    Raises ValueError naming the session(s) if an episode has no outcome row, if an outcome row is
    duplicated, or if the state and outcome directions disagree.
    """
    schema = episodes_schema(len(vector_columns(config)))
    zone = setups_in_zone(state)
    if zone.height == 0:
        return pl.DataFrame(schema=schema)

    labels = outcomes.select(
        *_JOIN_KEYS,
        pl.col("direction").alias("_outcome_direction"),
        "outcome",
        "ambiguous",
        "horizon_complete",
    )
    duplicated = labels.filter(pl.struct(_JOIN_KEYS).is_duplicated())
    if duplicated.height:
        days = _iso_days(duplicated)
        raise ValueError(f"silver_outcomes has duplicate rows per (session_date, ts_event, level_kind) in sessions {days}")

    joined = zone.join(labels, on=_JOIN_KEYS, how="left", maintain_order="left")
    unlabelled = joined.filter(pl.col("outcome").is_null())
    if unlabelled.height:
        days = _iso_days(unlabelled)
        raise ValueError(
            f"{unlabelled.height} in-zone state rows have no outcome row in silver_outcomes; sessions {days}"
        )
    mismatch = joined.filter(pl.col("direction") != pl.col("_outcome_direction"))
    if mismatch.height:
        days = _iso_days(mismatch)
        raise ValueError(f"state and outcome directions disagree for {mismatch.height} rows; sessions {days}")

    return with_vectors(joined.sort(_JOIN_KEYS), config).select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def setups_in_zone(state: pl.DataFrame) -> pl.DataFrame:
    """The silver_level_state rows that are setups: ``in_zone`` with a finite ``atr_points > 0`` (points)."""
    return state.filter(
        pl.col("in_zone").fill_null(False)
        & pl.col("atr_points").is_finite().fill_null(False)
        & (pl.col("atr_points") > 0).fill_null(False)
    )


def with_vectors(setups: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """``setups`` (silver_level_state rows, in their order) with partition_key, vector_version,
    feature_families ("bars" when the state has none) and vector (Array(Float32, D) of
    :func:`vector_columns`, not yet normalized): the episode columns that need no outcome, as
    gold_episodes builds them and as the bar-by-bar answer of an unfinished session does."""
    columns = vector_columns(config)
    vectors = pl.Series("vector", state_to_matrix(setups, columns), dtype=pl.Array(pl.Float32, len(columns)))
    if "feature_families" not in setups.columns:
        setups = setups.with_columns(feature_families=pl.lit("bars"))
    return setups.with_columns(partition_key=partition_key_expr(), vector_version=pl.lit(vector_version(config)), vector=vectors)
