"""The setup vector: which ``silver_level_state`` columns form it, its versions, and the numpy matrix.

The full vector layout is every feature family's columns in the order of
:func:`spymaster_assets.silver.feature_names.all_feature_columns` (DESIGN.md "The setup vector");
a family whose data a session lacks is NaN there. A vector *schema* is a set of families (e.g.
``"bars+tape+book"``): an index is built for one schema from the projection of the full vectors
onto that schema's columns, so an index never mixes vectors of different schemas. Label columns of
``silver_outcomes`` can never be put into a vector (DESIGN.md "Point in time": labels use the future).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from ..silver.feature_names import (
    FEATURE_FAMILIES,
    VECTOR_LAYOUT_VERSION,
    all_feature_columns,
    families_label,
    family_columns,
)
from ..silver.feature_names import LABEL_COLUMNS as SILVER_LABEL_COLUMNS

#: Label columns (the future of a setup): none may enter a vector.
LABEL_COLUMNS: frozenset[str] = frozenset(SILVER_LABEL_COLUMNS)

#: Config fields that change the value of some vector dimension (bar lengths, indicator periods,
#: level definitions, trajectory and kinematic windows, stack thresholds, approach zone).
_VECTOR_CONFIG_FIELDS: tuple[str, ...] = (
    "session_open",
    "premarket_start",
    "rth_open",
    "opening_range_minutes",
    "base_bar_minutes",
    "level_bar_minutes",
    "atr_period",
    "sma_period",
    "ema_period",
    "warmup_sessions",
    "approach_zone_atr",
    "trajectory_minutes",
    "dct_coefficients",
    "kinematic_lags_minutes",
    "stack_thresholds_atr",
    "tick_size_points",
    "order_flow_windows_seconds",
    "level_band_ticks",
    "depth_change_minutes",
    "book_levels",
    "sweep_min_price_levels",
    "sweep_window_ms",
)


def vector_columns(config: SpymasterConfig) -> list[str]:
    """Feature columns of the full setup vector layout, in vector order (= ``feature_names.all_feature_columns``).

    Raises ValueError if the contract ever lists a label column (see :data:`LABEL_COLUMNS`).
    """
    columns = all_feature_columns(config)
    check_no_label_columns(columns)
    return columns


def vector_version(config: SpymasterConfig) -> str:
    """Version string of the full vector layout, e.g. ``"v2-3f9a1c2b"``.

    It is ``VECTOR_LAYOUT_VERSION`` plus the first 8 hex digits of a SHA-256 over the column list
    and every config field that changes a vector value, so two configs that give different vectors
    never share a version.
    """
    payload = {
        "columns": all_feature_columns(config),
        "config": {name: str(getattr(config, name)) for name in _VECTOR_CONFIG_FIELDS},
    }
    if config.chart_blocks:  # only then, so the versions of layouts without chart blocks stay as they were
        payload["config"]["round_number_handles_points"] = str(config.round_number_handles_points)
        payload["config"]["rth_close"] = str(config.rth_close)
    if "atr_regime" in config.chart_blocks:  # likewise: the other layouts' versions stay as they were
        for name in ("daily_atr_sessions", "atr_regime_sessions", "atr_regime_min_sessions"):
            payload["config"][name] = str(getattr(config, name))
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
    return f"{VECTOR_LAYOUT_VERSION}-{digest}"


def parse_families(label: str) -> frozenset[str]:
    """The family set of a schema label such as ``"bars+tape"``. Raises ValueError for an unknown family."""
    families = frozenset(label.split("+")) if label else frozenset()
    families_label(families)  # validates
    return families


def schema_version(config: SpymasterConfig, families: str) -> str:
    """Version of the vector schema ``families`` (a label): the layout version plus the families, e.g. ``"v2-3f9a1c2b[bars+tape]"``."""
    return f"{vector_version(config)}[{families_label(parse_families(families))}]"


def layout_of_schema_version(version: str) -> str:
    """The layout version part of a :func:`schema_version` string (the text before ``[``)."""
    return version.split("[", 1)[0]


def schema_dims(config: SpymasterConfig, families: str) -> np.ndarray:
    """Positions (int64, ascending) in the full layout of the columns of the families in ``families``.

    Raises ValueError for an unknown family or a label without ``bars`` (every schema contains it).
    """
    chosen = parse_families(families)
    if "bars" not in chosen:
        raise ValueError(f"vector schema {families!r} lacks the bars family")
    dims: list[int] = []
    position = 0
    for family in FEATURE_FAMILIES:
        width = len(family_columns(family, config))
        if family in chosen:
            dims.extend(range(position, position + width))
        position += width
    return np.asarray(dims, dtype=np.int64)


def check_no_label_columns(columns: Sequence[str]) -> None:
    """Raise ValueError naming them if any of ``columns`` is an outcome label column."""
    leaked = sorted(set(columns) & LABEL_COLUMNS)
    if leaked:
        raise ValueError(f"label columns cannot be vector dimensions (they use the future): {leaked}")


def state_to_matrix(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The feature matrix of ``frame``: float32 array of shape (n_rows, len(columns)), nulls as NaN.

    Input: any frame holding the numeric feature ``columns`` (units as in silver_level_state: ATR,
    ATR per minute^k, minutes, counts). Output column j is ``columns[j]``.

    Raises ValueError if a column is a label column (:data:`LABEL_COLUMNS`) or is missing.
    """
    check_no_label_columns(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")
    if frame.height == 0:
        return np.zeros((0, len(columns)), dtype=np.float32)
    matrix = frame.select(
        # fill_null(NaN) so nulls become NaN for every numeric dtype (ints and booleans included).
        pl.col(c).cast(pl.Float32).fill_null(float("nan"))
        for c in columns
    ).to_numpy()
    return np.ascontiguousarray(matrix, dtype=np.float32)


#: Blocks of dimensions that similarity weights can scale together: the bars family's four parts,
#: then each order-flow and options family.
SIMILARITY_BLOCKS: tuple[str, ...] = ("distance", "trajectory", "kinematics", "context", *FEATURE_FAMILIES[1:])
_KINEMATIC_PREFIXES = ("d_velocity_", "d_acceleration_", "d_jerk_")


def similarity_blocks(config: SpymasterConfig) -> list[str]:
    """The :data:`SIMILARITY_BLOCKS` entry of each vector column, in vector order (by the feature-name contract)."""
    family_of = {c: family for family in FEATURE_FAMILIES[1:] for c in family_columns(family, config)}
    return [family_of.get(c) or _bars_block(c) for c in vector_columns(config)]


def _bars_block(column: str) -> str:
    if column == "distance_atr":
        return "distance"
    if column.startswith("traj_"):
        return "trajectory"
    if column.startswith(_KINEMATIC_PREFIXES):
        return "kinematics"
    return "context"


def dct_index(column: str) -> int:
    """The DCT coefficient number of a trajectory column (``..._dct_<i>``), -1 for any other column."""
    head, sep, tail = column.rpartition("_dct_")
    return int(tail) if sep and tail.isdigit() else -1
