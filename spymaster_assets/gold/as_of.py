"""What Spymaster knew as of day D: the normalization statistics and the setup index built from earlier sessions.

Shared by the gold assets and the CLI so both answer with the same code path. Point in time: only
``gold_episodes`` partitions strictly before D are read.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl

from spymaster_resources.lake import Lake

from ..config import SpymasterConfig
from ..errors import MissingPartitionError
from .normalization import NormalizationStats, fit_normalization, stats_from_frame
from .schema_indexes import SchemaIndexes
from .vectors import vector_columns, vector_version

GOLD = "gold"


def episodes_before(lake: Lake, day: date, limit: int | None = None) -> tuple[pl.DataFrame | None, list[date]]:
    """gold_episodes of the sessions strictly before ``day`` (the latest ``limit`` sessions when given)."""
    dates = lake.dates_before(GOLD, "gold_episodes", day, limit)
    return lake.read_many(GOLD, "gold_episodes", dates), dates


def fit_as_of(lake: Lake, day: date, config: SpymasterConfig) -> NormalizationStats:
    """Robust statistics for ``day`` from the episodes of the trailing ``normalization_sessions`` sessions before it."""
    history, _ = episodes_before(lake, day, config.normalization_sessions)
    columns = vector_columns(config)
    if history is None:
        history = pl.DataFrame(schema={"session_date": pl.Date, "vector": pl.Array(pl.Float32, len(columns)), "vector_version": pl.Utf8})
    history = history.filter(pl.col("vector_version") == vector_version(config))
    return fit_normalization(history, columns, config, as_of=day)


def stats_as_of(lake: Lake, day: date) -> NormalizationStats:
    """The materialized gold_normalization of ``day``.

    Raises:
        MissingPartitionError: gold_normalization was not materialized for ``day``.
    """
    return stats_from_frame(lake.read(GOLD, "gold_normalization", day))


def index_dir(lake: Lake, day: date) -> Path:
    """Directory of the saved setup index as of ``day``."""
    return lake.partition_dir(GOLD, "gold_setup_index", day)


def build_index_as_of(lake: Lake, day: date, stats: NormalizationStats, config: SpymasterConfig) -> SchemaIndexes:
    """Every episode before ``day`` (same vector layout), normalized with ``day``'s statistics, indexed per vector schema and partition."""
    history, _ = episodes_before(lake, day)
    return SchemaIndexes.build(history, stats, config, as_of=day)


def index_as_of(lake: Lake, day: date, config: SpymasterConfig) -> SchemaIndexes:
    """The setup indexes as of ``day``: the saved ones, or rebuilt from the lake when retention pruned them.

    Raises:
        MissingPartitionError: neither the index nor gold_normalization of ``day`` was materialized.
    """
    directory = index_dir(lake, day)
    if (directory / "manifest.json").is_file():
        try:
            return SchemaIndexes.load(directory, config)
        except ValueError:
            pass  # written by an older layout or format: rebuild below from the lake
    if not lake.exists(GOLD, "gold_normalization", day):
        raise MissingPartitionError(f"no setup index for {day}: materialize gold_normalization and gold_setup_index for {day} first")
    return build_index_as_of(lake, day, stats_as_of(lake, day), config)


def prune_old_indexes(lake: Lake, day: date, config: SpymasterConfig) -> list[date]:
    """Delete saved indexes older than the latest ``index_retention_sessions`` up to ``day``; returns the dates pruned.

    Keeps storage linear in history (an index as of D holds all of history, so keeping every day's
    would grow with its square); a pruned index is rebuilt on demand by :func:`index_as_of`.
    """
    root = lake.table_dir(GOLD, "gold_setup_index")
    if not root.is_dir():
        return []
    saved = sorted(date.fromisoformat(d.name[5:]) for d in root.iterdir() if d.name.startswith("date=") and (d / "manifest.json").is_file())
    up_to_day = [d for d in saved if d <= day]
    keep = set(up_to_day[-config.index_retention_sessions:]) | {d for d in saved if d > day}
    pruned = [d for d in saved if d not in keep]
    for d in pruned:
        shutil.rmtree(index_dir(lake, d), ignore_errors=True)
    return pruned
