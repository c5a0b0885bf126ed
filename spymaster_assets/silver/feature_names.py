"""Names of the level-relative feature columns of ``silver_level_state`` (the bars-only families).

This is the contract between the silver tier, which computes these columns, and the gold tier,
which turns them into setup vectors in exactly this order. Adding a family appends names and bumps
the vector version; it never reorders existing names.
"""

from __future__ import annotations

from ..config import LEVEL_KINDS, SpymasterConfig

#: Columns of silver_outcomes that carry (or derive from) a setup's future. None may enter a vector,
#: a normalization statistic or an index used to answer that day.
LABEL_COLUMNS: tuple[str, ...] = (
    "outcome",
    "first_event_ts",
    "time_to_event_s",
    "mfe_atr",
    "mae_atr",
    "ambiguous",
    "horizon_complete",
)

#: Version of the bars-only setup vector. An index partition never mixes vector versions.
BARS_VECTOR_VERSION = "bars-v1"


def trajectory_columns(config: SpymasterConfig) -> list[str]:
    """DCT-II (orthonormal) coefficients of the last ``trajectory_minutes`` of d and of log1p(volume)."""
    n = config.dct_coefficients
    return [f"traj_d_dct_{i}" for i in range(n)] + [f"traj_logvol_dct_{i}" for i in range(n)]


def kinematic_columns(config: SpymasterConfig) -> list[str]:
    """Velocity, acceleration and jerk of d (ATR per minute^k) over each lag in minutes."""
    cols: list[str] = []
    for lag in config.kinematic_lags_minutes:
        cols += [f"d_velocity_{lag}m", f"d_acceleration_{lag}m", f"d_jerk_{lag}m"]
    return cols


def distance_columns() -> list[str]:
    """Signed distance (close - other level) / ATR to each level kind; null for the row's own kind or an unknown level."""
    return [f"dist_atr_{kind.lower()}" for kind in LEVEL_KINDS]


def stack_columns(config: SpymasterConfig) -> list[str]:
    """Count of other known levels within x ATR of this level, for each x in ``stack_thresholds_atr``."""
    return [f"stack_count_{str(x).replace('.', 'p')}atr" for x in config.stack_thresholds_atr]


def context_columns(config: SpymasterConfig) -> list[str]:
    """Context features: time, other levels, stacking, touches, opening-range width."""
    return (
        ["minutes_since_open"]
        + distance_columns()
        + stack_columns(config)
        + ["touches_today", "minutes_since_last_touch", "or_width_atr"]
    )


def bars_feature_columns(config: SpymasterConfig) -> list[str]:
    """All vector feature columns of the bars-only vector, in vector order (d itself first)."""
    return ["distance_atr"] + trajectory_columns(config) + kinematic_columns(config) + context_columns(config)
