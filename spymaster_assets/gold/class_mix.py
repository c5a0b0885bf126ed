"""The trailing class mix: a reference forecast that knows only how recent setups of the same level kind and direction ended.

The partition base rate is a weak reference (a constant class mix of every earlier session already
beats it on the sample), so the answer is also judged against this one (DESIGN.md "Evaluation").
For day D and a window of W sessions, the forecast of a (level kind, direction) setup is the
add-one smoothed outcome frequency of that group over the W sessions before D:
``p_k = (n_k + 1) / (n + 3)``. W is chosen for D among ``class_mix_windows`` by the lowest Brier
score over the episodes of the ``class_mix_select_sessions`` sessions before D, each of those
sessions forecast by its own trailing window (so the choice is an inner walk-forward and never sees
D). The multiclass Brier of a fixed forecast p over a group with outcome counts n needs only the
counts: ``sum_i ||p - e_i||^2 = N ||p||^2 - 2 p.n + N`` (Brier 1950, summed over the episodes).

Everything is computed from per-session outcome counts of the trailing
``max(class_mix_windows) + class_mix_select_sessions`` sessions, so the cost per day is flat in history.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from spymaster_core.config import DIRECTIONS, LEVEL_KINDS, OUTCOMES, SpymasterConfig

#: The (level kind, direction) groups, in a fixed order: row g of a counts array.
GROUPS: tuple[tuple[str, str], ...] = tuple((k, d) for k in LEVEL_KINDS for d in DIRECTIONS)
_GROUP_INDEX = {g: i for i, g in enumerate(GROUPS)}
_N_CLASSES = len(OUTCOMES)

#: Columns of a fitted class mix: one row per group.
CLASS_MIX_SCHEMA: dict[str, pl.DataType] = {
    "level_kind": pl.String(),
    "direction": pl.String(),
    **{f"rate_{o.lower()}": pl.Float64() for o in OUTCOMES},
    "window_sessions": pl.Int32(),
    "n_episodes": pl.Int64(),
}


def session_counts(episodes: pl.DataFrame) -> np.ndarray:
    """Outcome counts of one session's episodes (columns level_kind, direction, outcome): int64 (len(GROUPS), 3).

    Raises ValueError on a level kind, direction or outcome outside the configuration's sets.
    """
    counts = np.zeros((len(GROUPS), _N_CLASSES), dtype=np.int64)
    if episodes.height == 0:
        return counts
    grouped = episodes.group_by("level_kind", "direction", "outcome").len()
    for kind, direction, outcome, n in grouped.iter_rows():
        group = _GROUP_INDEX.get((kind, direction))
        if group is None or outcome not in OUTCOMES:
            raise ValueError(f"class mix: unknown group ({kind}, {direction}) or outcome {outcome!r}")
        counts[group, OUTCOMES.index(outcome)] += n
    return counts


def sessions_needed(config: SpymasterConfig) -> int:
    """How many trailing sessions' counts :func:`fit_class_mix` reads."""
    return max(config.class_mix_windows) + config.class_mix_select_sessions


def _mix(counts: np.ndarray) -> np.ndarray:
    """Add-one smoothed frequencies of counts (..., 3)."""
    return (counts + 1.0) / (counts.sum(axis=-1, keepdims=True) + _N_CLASSES)


def fit_class_mix(counts: np.ndarray, config: SpymasterConfig) -> pl.DataFrame:
    """The class mix serving the day after the sessions of ``counts``.

    ``counts``: int (S, len(GROUPS), 3), the outcome counts of the S sessions before the day, oldest
    first (S may be 0). Returns :data:`CLASS_MIX_SCHEMA`, one row per group, each with the window W
    chosen for the day (module docstring; with no session to choose on, the smallest window) and the
    episodes behind its rates. Raises ValueError on a bad shape or a window below 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 3 or counts.shape[1:] != (len(GROUPS), _N_CLASSES):
        raise ValueError(f"class-mix counts must be (sessions, {len(GROUPS)}, {_N_CLASSES}), got {counts.shape}")
    windows = sorted(set(config.class_mix_windows))
    if not windows or windows[0] < 1:
        raise ValueError(f"class_mix_windows must be positive session counts, got {config.class_mix_windows}")
    n_sessions = counts.shape[0]
    # cumulative[i] = counts of sessions [0, i): a window's sum is a difference of two rows.
    cumulative = np.concatenate([np.zeros((1, *counts.shape[1:]), dtype=np.int64), np.cumsum(counts, axis=0)])

    def window_counts(end: int, window: int) -> np.ndarray:
        return cumulative[end] - cumulative[max(0, end - window)]

    scored = range(max(1, n_sessions - config.class_mix_select_sessions), n_sessions)
    brier = []
    for window in windows:
        total = 0.0
        for j in scored:  # session j forecast from the window before it, scored on its own counts
            p, n = _mix(window_counts(j, window)), counts[j]
            total += float(np.sum(n.sum(axis=1) * (p**2).sum(axis=1) - 2.0 * (p * n).sum(axis=1) + n.sum(axis=1)))
        brier.append(total)
    chosen = windows[int(np.argmin(brier))]  # first (smallest) window on ties and with nothing scored
    window_sum = window_counts(n_sessions, chosen)
    rates = _mix(window_sum)
    return pl.DataFrame(
        {
            "level_kind": [k for k, _ in GROUPS],
            "direction": [d for _, d in GROUPS],
            **{f"rate_{o.lower()}": rates[:, j] for j, o in enumerate(OUTCOMES)},
            "window_sessions": [chosen] * len(GROUPS),
            "n_episodes": window_sum.sum(axis=1),
        },
        schema=CLASS_MIX_SCHEMA,
    )


def class_mix_probabilities(table: pl.DataFrame, level_kinds: list[str], directions: list[str]) -> np.ndarray:
    """The class mix's forecast for setups of the given kinds and directions: float64 (n, 3) in OUTCOMES order.

    ``table``: :func:`fit_class_mix` output; a group missing from it gets the uniform forecast.
    """
    rates = {(k, d): np.array(r, dtype=np.float64) for k, d, *r in table.select("level_kind", "direction", *[f"rate_{o.lower()}" for o in OUTCOMES]).iter_rows()}
    uniform = np.full(_N_CLASSES, 1.0 / _N_CLASSES)
    if not level_kinds:
        return np.zeros((0, _N_CLASSES))
    return np.vstack([rates.get((k, d), uniform) for k, d in zip(level_kinds, directions, strict=True)])


def counts_before(episodes: pl.DataFrame | None, sessions: list[date], day: date, config: SpymasterConfig) -> np.ndarray:
    """Per-session counts (:func:`session_counts`) of the trailing :func:`sessions_needed` of ``sessions`` before ``day``.

    ``episodes``: rows with session_date, level_kind, direction, outcome (may hold other sessions;
    None: none); a session without episodes counts zero, and sessions on or after ``day`` are never read.
    """
    trailing = [s for s in sessions if s < day][-sessions_needed(config):]
    if not trailing or episodes is None:
        return np.zeros((0, len(GROUPS), _N_CLASSES), dtype=np.int64)
    rows = episodes.filter(pl.col("session_date").is_in(trailing))
    by_session = {s: f for (s,), f in rows.partition_by("session_date", as_dict=True).items()} if rows.height else {}
    empty = rows.clear()
    return np.stack([session_counts(by_session.get(s, empty)) for s in trailing])
