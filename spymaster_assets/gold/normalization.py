"""Robust per-dimension normalization of setup vectors (gold_normalization).

For day D: per-dimension median and interquartile range over the episodes of the trailing
``normalization_sessions`` sessions strictly before D (DESIGN.md "Normalization, index, retrieval"),
robust z-score ``(x - median) / IQR`` clipped to +-``robust_z_clip``, then each vector L2-normalized
so that the inner product of two vectors is their cosine similarity. The median/IQR robust scaling
is the one of scikit-learn's ``RobustScaler`` (Huber, *Robust Statistics*, 1981).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from .vectors import check_no_label_columns, vector_version


def normalization_window(sessions_before: Sequence[date], config: SpymasterConfig) -> list[date]:
    """The sessions whose episodes fit the statistics serving a day, given the sessions before it.

    With n sessions before the day: while n < ``normalization_sessions`` (the window still filling,
    the statistics moving fast) every session refits, m = n; once full, the statistics are refitted
    every ``normalization_refit_sessions`` sessions c, on the sessions the model retrains on when
    both cadences are equal (``model.training_window``: m = f + c * floor((n - f) / c), f =
    ``model_min_sessions``), so the setup index, which depends on both, is rebuilt once per cadence:
    m = max(normalization_sessions, f + c * floor((n - f) / c)).
    Returns the latest ``normalization_sessions`` of the first m sorted sessions: all strictly
    before the day, and unchanged between refits, so the setup index of a day between refits is
    the previous session's plus that session's episodes (``as_of.build_index_as_of``).
    Raises ValueError when ``normalization_refit_sessions`` < 1.
    """
    refit = config.normalization_refit_sessions
    if refit < 1:
        raise ValueError(f"normalization_refit_sessions must be >= 1, got {refit}")
    n = len(sessions_before)
    first = config.model_min_sessions
    m = n if n < config.normalization_sessions else max(config.normalization_sessions, first + refit * ((n - first) // refit))
    return sorted(sessions_before)[:m][-config.normalization_sessions:]


@dataclass(frozen=True)
class NormalizationStats:
    """Robust statistics of each vector dimension as of one day.

    ``median`` and ``iqr`` are float64 arrays of shape (D,) in the units of each feature;
    ``iqr`` is the raw q75 - q25 (may be 0 or NaN), :attr:`scale` is what is divided by.
    ``first_session``/``last_session`` are the oldest/newest history sessions (None when empty);
    ``as_of`` is the day D the statistics serve (all history is strictly before it).
    """

    features: tuple[str, ...]
    median: np.ndarray
    iqr: np.ndarray
    n_episodes: int
    n_sessions: int
    first_session: date | None
    last_session: date | None
    vector_version: str
    as_of: date

    def digest(self) -> str:
        """SHA-256 of what normalizes a vector (features, layout, median, IQR, history span), not of ``as_of``:
        two days with the same digest normalize every vector identically."""
        h = hashlib.sha256(repr((self.features, self.vector_version, self.n_episodes, self.n_sessions, str(self.first_session), str(self.last_session))).encode())
        h.update(np.ascontiguousarray(self.median, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.iqr, dtype=np.float64).tobytes())
        return h.hexdigest()

    @property
    def scale(self) -> np.ndarray:
        """The divisor per dimension: the IQR, or 1.0 where the IQR is 0 or NaN (a constant or unseen feature)."""
        return scale_from_iqr(self.iqr)


def scale_from_iqr(iqr: np.ndarray) -> np.ndarray:
    """IQR -> divisor: 1.0 where the IQR is not finite or not > 0, so such a dimension is only centred."""
    iqr = np.asarray(iqr, dtype=np.float64)
    return np.where(np.isfinite(iqr) & (iqr > 0), iqr, 1.0)


def fit_normalization(
    history: pl.DataFrame, columns: Sequence[str], config: SpymasterConfig, as_of: date
) -> NormalizationStats:
    """Fit per-dimension median and IQR over the history episodes' vectors.

    Input ``history``: gold_episodes rows (session_date, vector Array(Float32, D), vector_version)
    of the trailing ``config.normalization_sessions`` sessions strictly before ``as_of`` (the
    caller selects them). ``columns``: the D feature names, in vector order.

    Median and quartiles use ``numpy.nanpercentile`` (linear interpolation) and ignore NaN (a null
    feature). A dimension with no finite value gets median 0; the IQR is stored raw and
    :func:`scale_from_iqr` turns 0/NaN into a scale of 1.0.

    Raises ValueError if any history row has ``session_date >= as_of`` (point-in-time guard), if the
    history spans more than ``normalization_sessions`` sessions, if its vectors do not have
    ``len(columns)`` dimensions, if it mixes vector versions, or if a column is a label column.
    """
    check_no_label_columns(columns)
    dim = len(columns)
    if history.height:
        late = history.filter(pl.col("session_date") >= as_of)
        if late.height:
            raise ValueError(
                f"point-in-time violation: normalization history for {as_of} contains sessions "
                f"{sorted({d.isoformat() for d in late['session_date'].to_list()})} on or after it"
            )
    sessions = sorted(set(history["session_date"].to_list())) if history.height else []
    if len(sessions) > config.normalization_sessions:
        raise ValueError(
            f"normalization history for {as_of} spans {len(sessions)} sessions, "
            f"more than normalization_sessions={config.normalization_sessions}"
        )
    versions = set(history["vector_version"].unique().to_list()) if history.height else set()
    if len(versions) > 1:
        raise ValueError(f"normalization history mixes vector versions {sorted(versions)}")
    version = versions.pop() if versions else vector_version(config)

    if history.height:
        vector_dtype = history.schema["vector"]
        width = getattr(vector_dtype, "size", None)
        if width != dim:
            raise ValueError(f"history vectors have dtype {vector_dtype}, expected {dim} dimensions for {len(columns)} columns")
        matrix = history["vector"].to_numpy().astype(np.float64, copy=False).reshape(history.height, dim)
        with warnings.catch_warnings():
            # An all-NaN dimension (feature never present) warns; it is handled just below.
            warnings.simplefilter("ignore", category=RuntimeWarning)
            q25, median, q75 = np.nanpercentile(matrix, [25.0, 50.0, 75.0], axis=0, method="linear")
        iqr = q75 - q25
    else:
        median = np.full(dim, np.nan)
        iqr = np.full(dim, np.nan)
    median = np.where(np.isfinite(median), median, 0.0)

    return NormalizationStats(
        features=tuple(columns),
        median=np.asarray(median, dtype=np.float64),
        iqr=np.asarray(iqr, dtype=np.float64),
        n_episodes=history.height,
        n_sessions=len(sessions),
        first_session=sessions[0] if sessions else None,
        last_session=sessions[-1] if sessions else None,
        vector_version=version,
        as_of=as_of,
    )


NORMALIZATION_SCHEMA: dict[str, pl.DataType] = {
    "dim": pl.Int32(),
    "feature": pl.String(),
    "median": pl.Float64(),
    "iqr": pl.Float64(),
    "scale_used": pl.Float64(),
    "n_episodes": pl.Int64(),
    "n_sessions": pl.Int32(),
    "first_session": pl.Date(),
    "last_session": pl.Date(),
    "vector_version": pl.String(),
    "as_of": pl.Date(),
}


def stats_to_frame(stats: NormalizationStats) -> pl.DataFrame:
    """gold_normalization rows: one per dimension (dim 0..D-1) with the columns of :data:`NORMALIZATION_SCHEMA`."""
    dim = len(stats.features)
    return pl.DataFrame(
        {
            "dim": np.arange(dim, dtype=np.int32),
            "feature": list(stats.features),
            "median": stats.median,
            "iqr": stats.iqr,
            "scale_used": stats.scale,
            "n_episodes": [stats.n_episodes] * dim,
            "n_sessions": [stats.n_sessions] * dim,
            "first_session": [stats.first_session] * dim,
            "last_session": [stats.last_session] * dim,
            "vector_version": [stats.vector_version] * dim,
            "as_of": [stats.as_of] * dim,
        },
        schema=NORMALIZATION_SCHEMA,
    )


def stats_from_frame(frame: pl.DataFrame) -> NormalizationStats:
    """Inverse of :func:`stats_to_frame`.

    Raises ValueError if the frame is empty, its dims are not 0..D-1, or the per-table fields
    (n_episodes, sessions, vector_version, as_of) are not constant.
    """
    if frame.height == 0:
        raise ValueError("gold_normalization frame is empty")
    frame = frame.sort("dim")
    if frame["dim"].to_list() != list(range(frame.height)):
        raise ValueError("gold_normalization dims are not 0..D-1")
    constant = ["n_episodes", "n_sessions", "first_session", "last_session", "vector_version", "as_of"]
    for name in constant:
        if frame[name].n_unique() != 1:
            raise ValueError(f"gold_normalization column {name!r} is not constant")
    row = frame.row(0, named=True)
    return NormalizationStats(
        features=tuple(frame["feature"].to_list()),
        median=frame["median"].to_numpy().astype(np.float64),
        iqr=frame["iqr"].fill_null(float("nan")).to_numpy().astype(np.float64),
        n_episodes=int(row["n_episodes"]),
        n_sessions=int(row["n_sessions"]),
        first_session=row["first_session"],
        last_session=row["last_session"],
        vector_version=row["vector_version"],
        as_of=row["as_of"],
    )


def normalize(
    vectors: np.ndarray,
    stats: NormalizationStats,
    clip: float,
    dims: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Robust z-score, clip, weight, L2-normalize: float32 array of shape (n, D) or (n, len(dims)).

    ``dims`` (positions in the full layout, see ``vectors.schema_dims``) projects the vectors onto
    one vector schema first, so the L2 norm is over that schema's dimensions only.
    ``z = (x - median) / scale`` per dimension (scale = IQR, or 1.0 where the IQR is 0/NaN),
    NaN (a missing feature) -> 0 (the median), clipped to [-clip, clip], multiplied by
    ``sqrt(weights)`` when given (learned similarity: one non-negative weight per full-layout
    dimension, see ``model.OutcomeModel.similarity_weights``), then each row divided by its L2 norm
    so inner product = cosine similarity; an all-zero row stays zero (similarity 0 to everything).
    Raises ValueError if the width is not len(stats.features) or the weights are not (D,) and >= 0.
    """
    x = np.asarray(vectors)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[1] != len(stats.features):
        raise ValueError(f"vectors have {x.shape[1]} dimensions, normalization stats have {len(stats.features)}")
    median, scale = stats.median, stats.scale
    if dims is not None:
        median, scale = median[dims], scale[dims]
    root_weights = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(stats.features),) or not np.all(np.isfinite(w)) or (w < 0).any():
            raise ValueError(f"similarity weights must be {len(stats.features)} finite values >= 0, got shape {w.shape}")
        root_weights = np.sqrt(w[dims] if dims is not None else w)
    out = np.empty((x.shape[0], len(median)), dtype=np.float32)
    # Row blocks that stay in cache, each step in place: every row is computed exactly as a whole-array pass would.
    for start in range(0, x.shape[0], _NORMALIZE_BLOCK_ROWS):
        block = np.asarray(x[start:start + _NORMALIZE_BLOCK_ROWS], dtype=np.float64)
        z = (block[:, dims] if dims is not None else block) - median
        z /= scale
        np.nan_to_num(z, copy=False, nan=0.0, posinf=clip, neginf=-clip)
        np.clip(z, -clip, clip, out=z)
        if root_weights is not None:
            z *= root_weights
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        out[start:start + len(z)] = np.divide(z, norms, out=np.zeros_like(z), where=norms > 0)
    return out


#: Rows per block of :func:`normalize` (a few hundred KB of float64 at ~60 dimensions).
_NORMALIZE_BLOCK_ROWS = 4096
