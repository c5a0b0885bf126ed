"""Walk-forward scores from per-session sufficient statistics, so a day's cumulative evaluation does not re-score history.

Every score of :func:`evaluation.compare_models` is a sum over episodes divided by their count:
Brier and log loss (sums), accuracy (a count), classwise and top-label ECE (per-bin counts, sums of
probability and of outcome: ``sum_b |sum(y)_b - sum(p)_b| / n``), and the session bootstrap of the
Brier skill resamples per-session Brier sums. :func:`session_sums` reduces one session's scored
episodes to those sums, one row per (row set, level kind, direction, model); gold_evaluation stores
them per session, and :func:`scores_from_sums` adds the sessions up. The result equals
``compare_models`` on the concatenated episodes up to float summation order (about 1e-15).

Row sets: ``"complete"`` = the episodes every model of ``models`` answered, ``"without_xgboost"`` =
those every model but XGBoost answered (XGBoost is absent before the first model). Groups: level kind
and direction ``"ALL"``, and each (level kind, direction) of the complete set.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from spymaster_core.config import OUTCOMES
from .evaluation import _binned_sums, _check_bins, _prepare, session_bootstrap_skills

COMPLETE = "complete"
WITHOUT_XGBOOST = "without_xgboost"
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
    rows: list[dict[str, object]] = []
    for row_set, used in ((COMPLETE, columns), (WITHOUT_XGBOOST, without)):
        frame = scored.drop_nulls([c for cols in used.values() for c in cols] + ["outcome"])
        if frame.height == 0:
            continue
        groups = [("ALL", "ALL", frame)]
        if row_set == COMPLETE:
            groups += [(g["level_kind"][0], g["direction"][0], g) for g in frame.sort("level_kind", "direction").partition_by("level_kind", "direction", maintain_order=True)]
        for kind, direction, group in groups:
            labels = group["outcome"].to_numpy()
            for name, cols in used.items():
                rows.append({"session_date": sessions[0], "row_set": row_set, "level_kind": kind, "direction": direction, "model": name, **_model_sums(group.select(cols).to_numpy(), labels, bins)})
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema)


def scores_from_sums(sums: pl.DataFrame, row_set: str, models: list[str], reference: str = "base_rate", baseline: str = "distance", level: float = 0.90, replicates: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The :func:`evaluation.compare_models` table of every (level kind, direction) group of ``row_set`` from many sessions' sums.

    ``sums``: rows of :func:`session_sums` of the sessions to score (any number, any order).
    Returns columns level_kind, direction, then those of ``compare_models`` (model, n_episodes,
    n_sessions, brier, bss_base, bss_base_lo, bss_base_hi, bss_distance, ..._lo, ..._hi, log_loss,
    ece, top_label_ece, accuracy), one row per (group, model in ``models`` order); groups in
    (level kind, direction) order with "ALL" first. Intervals: :func:`evaluation.session_bootstrap_skills`
    over the group's sessions. Empty when no row matches. Raises ValueError when a baseline is not in ``models``.
    """
    for name in (reference, baseline):
        if name not in models:
            raise ValueError(f"the baseline {name!r} is not among the models {models}")
    chosen = sums.filter((pl.col("row_set") == row_set) & pl.col("model").is_in(models))
    out: list[pl.DataFrame] = []
    groups = chosen.partition_by("level_kind", "direction", as_dict=True) if chosen.height else {}
    order = sorted(groups, key=lambda k: (k != ("ALL", "ALL"), k))
    for key in order:
        group = groups[key].sort("session_date")
        out.append(_group_scores(group, models, reference, baseline, level, replicates, seed).with_columns(level_kind=pl.lit(key[0]), direction=pl.lit(key[1])))
    if not out:
        return pl.DataFrame()
    return pl.concat(out)


def _group_scores(group: pl.DataFrame, models: list[str], reference: str, baseline: str, level: float, replicates: int, seed: int) -> pl.DataFrame:
    sessions = group["session_date"].unique().sort()
    by_model = {name: group.filter(pl.col("model") == name) for name in models}
    for name, rows in by_model.items():
        if not rows["session_date"].equals(sessions):
            raise ValueError(f"the sums of model {name!r} do not cover the same sessions as the others")
    per_session = {name: rows["brier_sum"].to_numpy() for name, rows in by_model.items()}
    pairs = [(name, tag, ref) for name in models for tag, ref in (("base", reference), ("distance", baseline))]
    lows, highs = session_bootstrap_skills(
        np.stack([per_session[name] for name, _, _ in pairs]), np.stack([per_session[ref] for _, _, ref in pairs]), level, replicates, seed, sessions.to_list()
    )
    interval = {(name, tag): (float(lo), float(hi)) for (name, tag, _), lo, hi in zip(pairs, lows, highs)}
    n = int(by_model[models[0]]["n_episodes"].sum())
    brier = {name: float(per_session[name].sum()) / n for name in models}
    rows = []
    for name in models:
        frame = by_model[name]
        row: dict[str, object] = {"model": name, "n_episodes": n, "n_sessions": len(sessions), "brier": brier[name]}
        for tag, ref in (("base", reference), ("distance", baseline)):
            row[f"bss_{tag}"] = 1.0 - brier[name] / brier[ref] if brier[ref] > 0 else math.nan
            row[f"bss_{tag}_lo"], row[f"bss_{tag}_hi"] = interval[(name, tag)]
        class_p = np.stack(frame["class_bin_p"].to_numpy()).sum(axis=0).reshape(_N_CLASSES, -1)
        class_y = np.stack(frame["class_bin_y"].to_numpy()).sum(axis=0).reshape(_N_CLASSES, -1)
        top_p = np.stack(frame["top_bin_p"].to_numpy()).sum(axis=0)
        top_y = np.stack(frame["top_bin_y"].to_numpy()).sum(axis=0)
        row.update(
            log_loss=float(frame["log_loss_sum"].sum()) / n,
            ece=float(np.mean(np.abs(class_y - class_p).sum(axis=1) / n)),
            top_label_ece=float(np.abs(top_y - top_p).sum() / n),
            accuracy=int(frame["correct"].sum()) / n,
        )
        rows.append(row)
    return pl.DataFrame(rows).with_columns(pl.col("n_episodes", "n_sessions").cast(pl.Int64))
