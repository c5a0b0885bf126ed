"""Walk-forward scores from per-session sufficient statistics, so a day's cumulative evaluation does not re-score history.

Every score of :func:`evaluation.compare_models` is a sum over episodes divided by their count:
Brier and log loss (sums), accuracy (a count), classwise and top-label ECE (per-bin counts, sums of
probability and of outcome: ``sum_b |sum(y)_b - sum(p)_b| / n``), and the session bootstrap of the
Brier skill resamples per-session Brier sums. :func:`session_sums` reduces one session's scored
episodes to those sums, one row per (row set, level kind, direction, model); gold_evaluation stores
them per session, and :func:`scores_from_sums` adds the sessions up. The result equals
``compare_models`` on the concatenated episodes up to float summation order (about 1e-15).

Row sets: ``"complete"`` = the episodes every model of ``models`` answered, ``"without_xgboost"`` =
those every model but XGBoost answered (XGBoost is absent before the first model), ``"first_anchor"``
= the complete set's first anchor of each approach (``evaluation.first_anchors``: each approach scored
once). Groups: level kind and direction ``"ALL"``, and each (level kind, direction) of the complete
and first-anchor sets.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl

from spymaster_core.config import OUTCOMES
from .evaluation import _binned_sums, _check_bins, _prepare, best_reference, first_anchors, replicate_skill_interval, session_weights

COMPLETE = "complete"
WITHOUT_XGBOOST = "without_xgboost"
FIRST_ANCHOR = "first_anchor"
_N_CLASSES = len(OUTCOMES)
_KEYS = ["row_set", "level_kind", "direction", "model"]


def sums_schema(bins: int) -> dict[str, pl.DataType]:
    """Columns of a session's sums: keys, counts, sums, and the per-bin arrays (classwise: class-major, ``3 * bins``)."""
    return {
        "session_date": pl.Date(),
        "row_set": pl.Utf8(),
        "level_kind": pl.Utf8(),
        "direction": pl.Utf8(),
        "model": pl.Utf8(),
        "n_episodes": pl.Int64(),
        "brier_sum": pl.Float64(),
        "log_loss_sum": pl.Float64(),
        "correct": pl.Int64(),
        "class_bin_n": pl.Array(pl.Int64(), _N_CLASSES * bins),
        "class_bin_p": pl.Array(pl.Float64(), _N_CLASSES * bins),
        "class_bin_y": pl.Array(pl.Float64(), _N_CLASSES * bins),
        "top_bin_n": pl.Array(pl.Int64(), bins),
        "top_bin_p": pl.Array(pl.Float64(), bins),
        "top_bin_y": pl.Array(pl.Float64(), bins),
    }


def _model_sums(p: np.ndarray, labels: np.ndarray, bins: int, eps: float = 1e-15) -> dict[str, object]:
    p, y, one_hot = _prepare(p, labels)
    rows = np.arange(p.shape[0])
    top = np.argmax(p, axis=1)
    class_bins = [_binned_sums(p[:, k], one_hot[:, k], bins) for k in range(_N_CLASSES)]
    confidence = p.max(axis=1)
    top_n, top_p, top_y = _binned_sums(confidence, (top == y).astype(np.float64), bins)
    return {
        "n_episodes": int(p.shape[0]),
        "brier_sum": float(np.sum((p - one_hot) ** 2)),
        "log_loss_sum": float(-np.sum(np.log(np.clip(p[rows, y], eps, 1.0)))),
        "correct": int(np.sum(top == y)),
        "class_bin_n": np.concatenate([c[0] for c in class_bins]),
        "class_bin_p": np.concatenate([c[1] for c in class_bins]),
        "class_bin_y": np.concatenate([c[2] for c in class_bins]),
        "top_bin_n": top_n,
        "top_bin_p": top_p,
        "top_bin_y": top_y,
    }


def session_sums(scored: pl.DataFrame, models: dict[str, str], bins: int) -> pl.DataFrame:
    """Sufficient statistics of one session's scored episodes, one row per (row set, level kind, direction, model).

    ``scored``: gold_signals rows of one session joined with ``outcome`` (as ``report.scored_signals``);
    ``models`` maps a model name to its probability-column prefix (``answer.MODEL_PREFIXES``, which
    holds ``xgboost``). Groups without an episode have no row. Columns: :func:`sums_schema`.
    Raises ValueError when ``scored`` holds more than one session, or on invalid probabilities or
    outcomes (as :func:`evaluation.multiclass_brier`).
    """
    bins = _check_bins(bins)
    schema = sums_schema(bins)
    sessions = scored["session_date"].unique().to_list() if scored.height else []
    if len(sessions) > 1:
        raise ValueError(f"session_sums takes one session's episodes, got {len(sessions)} sessions")
    columns = {name: [f"{prefix}{o.lower()}" for o in OUTCOMES] for name, prefix in models.items()}
    without = {k: v for k, v in columns.items() if k != "xgboost"}
    row_sets = [(COMPLETE, columns), (WITHOUT_XGBOOST, without)] + ([(FIRST_ANCHOR, columns)] if "approach_id" in scored.columns else [])
    rows: list[dict[str, object]] = []
    for row_set, used in row_sets:
        frame = scored.drop_nulls([c for cols in used.values() for c in cols] + ["outcome"])
        if row_set == FIRST_ANCHOR:
            frame = first_anchors(frame)
        if frame.height == 0:
            continue
        # One conversion per row set: every model's three columns side by side, the groups as row indices.
        probabilities = frame.select([c for cols in used.values() for c in cols]).to_numpy()
        labels = frame["outcome"].to_numpy()
        groups = [("ALL", "ALL", np.arange(frame.height))]
        if row_set != WITHOUT_XGBOOST:
            kinds, directions = frame["level_kind"].to_numpy(), frame["direction"].to_numpy()
            for kind, direction in sorted(set(zip(kinds.tolist(), directions.tolist()))):
                groups.append((kind, direction, np.flatnonzero((kinds == kind) & (directions == direction))))
        for kind, direction, rows_of_group in groups:
            for m, name in enumerate(used):
                p = probabilities[rows_of_group, _N_CLASSES * m:_N_CLASSES * (m + 1)]
                rows.append({"session_date": sessions[0], "row_set": row_set, "level_kind": kind, "direction": direction, "model": name, **_model_sums(p, labels[rows_of_group], bins)})
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema)


class CumulativeSums:
    """The sums of many sessions added up, per (row set, level kind, direction, model), with each
    Poisson bootstrap replicate's weighted Brier sum (``evaluation.session_weights``): what a day's
    cumulative scores need, carried from one session to the next at a fixed cost per session.

    Sessions are added in date order (:meth:`add`); the float sums are then the same bit for bit
    whether they were carried day by day or added up at once (:func:`scores_from_sums` folds the
    same way). ``sessions``: the sessions added, in order.
    """

    _SCALARS = ("n_episodes", "brier_sum", "log_loss_sum", "correct")
    _ARRAYS = ("class_bin_n", "class_bin_p", "class_bin_y", "top_bin_n", "top_bin_p", "top_bin_y")

    def __init__(self, replicates: int, seed: int):
        self.replicates, self.seed = replicates, seed
        self.sessions: list = []
        self.totals: dict[tuple[str, str, str, str], dict[str, object]] = {}

    def copy(self) -> "CumulativeSums":
        """An independent copy (the carry of one day is not changed by adding the next)."""
        other = CumulativeSums(self.replicates, self.seed)
        other.sessions = list(self.sessions)
        other.totals = {key: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in entry.items()} for key, entry in self.totals.items()}
        return other

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able description, named arrays) holding everything, for saving; :meth:`from_state` inverts it exactly."""
        keys = sorted(self.totals)
        meta = {
            "replicates": self.replicates, "seed": self.seed, "sessions": [d.isoformat() for d in self.sessions], "keys": [list(k) for k in keys],
            "scalars": [{name: self.totals[k][name] for name in (*self._SCALARS, "n_sessions")} for k in keys],
        }
        arrays = {f"{i}/{name}": np.asarray(self.totals[k][name]) for i, k in enumerate(keys) for name in (*self._ARRAYS, "replicate_brier")}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "CumulativeSums":
        """The sums :meth:`state` described. Raises KeyError or ValueError on a state of another layout."""
        out = cls(int(meta["replicates"]), int(meta["seed"]))
        out.sessions = [date.fromisoformat(d) for d in meta["sessions"]]
        for i, (key, scalars) in enumerate(zip(meta["keys"], meta["scalars"], strict=True)):
            entry = {name: scalars[name] for name in (*cls._SCALARS, "n_sessions")}
            entry.update({name: np.array(arrays[f"{i}/{name}"], dtype=np.float64) for name in (*cls._ARRAYS, "replicate_brier")})
            out.totals[tuple(key)] = entry
        return out

    def add(self, sums: pl.DataFrame) -> None:
        """Add one session's :func:`session_sums` rows (any row order). Raises ValueError when they hold
        several sessions or one not after every session added so far."""
        if sums.height == 0:
            return
        days = sums["session_date"].unique().to_list()
        if len(days) != 1 or (self.sessions and days[0] <= self.sessions[-1]):
            raise ValueError(f"sessions are added one at a time in date order; got {days} after {self.sessions[-1:]}")
        weights = session_weights(days, self.replicates, self.seed)[0]
        for row in sums.sort(_KEYS).iter_rows(named=True):
            key = (row["row_set"], row["level_kind"], row["direction"], row["model"])
            entry = self.totals.get(key)
            if entry is None:
                entry = self.totals[key] = {name: 0 for name in self._SCALARS} | {"n_sessions": 0, "replicate_brier": np.zeros(self.replicates)} | {
                    name: np.zeros(len(row[name])) for name in self._ARRAYS
                }
            for name in self._SCALARS:
                entry[name] += row[name]
            for name in self._ARRAYS:
                entry[name] = entry[name] + np.asarray(row[name], dtype=np.float64)
            entry["n_sessions"] += 1
            entry["replicate_brier"] = entry["replicate_brier"] + weights * row["brier_sum"]
        self.sessions.append(days[0])

    def scores(self, row_set: str, models: list[str], reference: str = "base_rate", baseline: str = "distance", level: float = 0.90) -> pl.DataFrame:
        """The :func:`scores_from_sums` table of the sessions added (same columns, groups and order)."""
        for name in (reference, baseline):
            if name not in models:
                raise ValueError(f"the baseline {name!r} is not among the models {models}")
        groups = sorted({(k[1], k[2]) for k in self.totals if k[0] == row_set and k[3] in models}, key=lambda g: (g != ("ALL", "ALL"), g))
        rows = [row for group in groups for row in self._group_scores(row_set, group, models, reference, baseline, level)]
        return pl.DataFrame(rows).with_columns(pl.col("n_episodes", "n_sessions").cast(pl.Int64)) if rows else pl.DataFrame()

    def _group_scores(self, row_set: str, group: tuple[str, str], models: list[str], reference: str, baseline: str, level: float) -> list[dict[str, object]]:
        entries = {name: self.totals.get((row_set, *group, name)) for name in models}
        missing = [name for name, entry in entries.items() if entry is None]
        if missing or len({entries[name]["n_sessions"] for name in models}) != 1 or len({entries[name]["n_episodes"] for name in models}) != 1:
            raise ValueError(f"the sums of model(s) {missing or models} do not cover the same sessions as the others in {group}")
        first = entries[models[0]]
        n, n_sessions = int(first["n_episodes"]), int(first["n_sessions"])
        brier = {name: float(entries[name]["brier_sum"]) / n for name in models}
        best = best_reference(brier) or reference
        references = (("base", reference), ("distance", baseline), ("best", best))
        # Every (model, reference) pair's interval in one call: one quantile over a (3K, replicates) array.
        pairs = [(name, ref) for name in models for _, ref in references]
        if n_sessions < 2:
            lo = hi = np.full(len(pairs), math.nan)
        else:
            lo, hi = replicate_skill_interval(
                np.stack([entries[name]["replicate_brier"] for name, _ in pairs]), np.stack([entries[ref]["replicate_brier"] for _, ref in pairs]), level
            )
        rows = []
        for i, name in enumerate(models):
            entry = entries[name]
            row: dict[str, object] = {"model": name, "n_episodes": n, "n_sessions": n_sessions, "brier": brier[name], "best_baseline": best}
            for j, (tag, ref) in enumerate(references):
                row[f"bss_{tag}"] = 1.0 - brier[name] / brier[ref] if brier[ref] > 0 else math.nan
                row[f"bss_{tag}_lo"], row[f"bss_{tag}_hi"] = float(lo[i * len(references) + j]), float(hi[i * len(references) + j])
            class_p, class_y = entry["class_bin_p"].reshape(_N_CLASSES, -1), entry["class_bin_y"].reshape(_N_CLASSES, -1)
            row.update(
                log_loss=float(entry["log_loss_sum"]) / n,
                ece=float(np.mean(np.abs(class_y - class_p).sum(axis=1) / n)),
                top_label_ece=float(np.abs(entry["top_bin_y"] - entry["top_bin_p"]).sum() / n),
                accuracy=int(entry["correct"]) / n,
            )
            row.update(level_kind=group[0], direction=group[1])
            rows.append(row)
        return rows


def cumulative_sums(sums: pl.DataFrame, replicates: int = 1000, seed: int = 0, start: CumulativeSums | None = None) -> CumulativeSums:
    """``start`` (or nothing) plus the sums of every session in ``sums``, added in date order."""
    carry = start.copy() if start is not None else CumulativeSums(replicates, seed)
    for frame in sums.sort("session_date").partition_by("session_date", maintain_order=True) if sums.height else []:
        carry.add(frame)
    return carry


def scores_from_sums(sums: pl.DataFrame, row_set: str, models: list[str], reference: str = "base_rate", baseline: str = "distance", level: float = 0.90, replicates: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The :func:`evaluation.compare_models` table of every (level kind, direction) group of ``row_set`` from many sessions' sums.

    ``sums``: rows of :func:`session_sums` of the sessions to score (any number, any order).
    Returns columns level_kind, direction, then those of ``compare_models`` (model, n_episodes,
    n_sessions, brier, best_baseline, bss_base, bss_base_lo, bss_base_hi, bss_distance, ..._lo, ..._hi,
    bss_best, ..._lo, ..._hi, log_loss,
    ece, top_label_ece, accuracy), one row per (group, model in ``models`` order); groups in
    (level kind, direction) order with "ALL" first. Intervals: the Poisson session bootstrap of
    :func:`evaluation.session_bootstrap_skills` over the group's sessions. Empty when no row matches.
    Raises ValueError when a baseline is not in ``models`` or the models' sums cover different sessions.
    """
    chosen = sums.filter((pl.col("row_set") == row_set) & pl.col("model").is_in(models)) if sums.height else sums
    return cumulative_sums(chosen, replicates, seed).scores(row_set, models, reference, baseline, level)
