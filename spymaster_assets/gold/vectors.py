"""The setup vector: which ``silver_level_state`` columns form it, its version, and the numpy matrix.

The column order is the contract of :func:`spymaster_assets.silver.feature_names.bars_feature_columns`
(DESIGN.md "The setup vector"). Label columns of ``silver_outcomes`` can never be put into a vector
(DESIGN.md "Point in time": labels use the future).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..config import SpymasterConfig
from ..silver.feature_names import BARS_VECTOR_VERSION, bars_feature_columns
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
)


def vector_columns(config: SpymasterConfig) -> list[str]:
    """Feature columns of the setup vector, in vector order (= ``feature_names.bars_feature_columns``).

    Raises ValueError if the contract ever lists a label column (see :data:`LABEL_COLUMNS`).
    """
    columns = bars_feature_columns(config)
    check_no_label_columns(columns)
    return columns


def vector_version(config: SpymasterConfig) -> str:
    """Version string of the vector, e.g. ``"bars-v1-3f9a1c2b"``.

    It is ``BARS_VECTOR_VERSION`` plus the first 8 hex digits of a SHA-256 over the column list and
    every config field that changes a vector value, so two configs that give different vectors
    never share a version (an index partition never mixes versions).
    """
    payload = {
        "columns": bars_feature_columns(config),
        "config": {name: str(getattr(config, name)) for name in _VECTOR_CONFIG_FIELDS},
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
    return f"{BARS_VECTOR_VERSION}-{digest}"


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
