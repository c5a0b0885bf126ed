"""Walk-forward scores of outcome probabilities: Brier, Brier skill, log loss, calibration, reliability PNG.

Probabilities are ``(n, 3)`` float arrays whose columns follow ``OUTCOMES`` (BREAK, REJECT, CHOP) and
whose rows sum to 1. Labels are class indices ``(n,)`` into ``OUTCOMES`` or the outcome strings
themselves. Every score here is a plain function of those arrays (DESIGN.md "Evaluation"); the
``gold_evaluation`` asset feeds it the walk-forward signals of a day joined to their outcomes.
Nothing here imports Dagster.
"""

from __future__ import annotations

import base64
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spymaster_core.config import OUTCOMES

#: The simple references of the evaluation (DESIGN.md "Evaluation"); the answer is also judged
#: against the strongest of those scored (lowest Brier on the same episodes): the "best baseline".
REFERENCE_MODELS: tuple[str, ...] = ("base_rate", "class_mix", "distance", "distance_calibrated")


def best_reference(brier: dict[str, float]) -> str | None:
    """The reference model (:data:`REFERENCE_MODELS`) with the lowest Brier score among those in ``brier``; None when none is."""
    present = [name for name in REFERENCE_MODELS if name in brier]
    return min(present, key=lambda name: brier[name]) if present else None


def first_anchors(scored: pl.DataFrame) -> pl.DataFrame:
    """The rows that score each approach once: its first anchor in the zone.

    ``scored``: gold_signals rows (session_date, ts_event, level_kind, approach_id, ...). Anchors of
    one approach overlap heavily (their outcomes are mostly the same), so a long approach weighs
    as much as a short one here. Returns the row with the earliest ts_event of each
    (session_date, level_kind, approach_id), in the input's order. Raises ColumnNotFoundError
    without approach_id.
    """
    approach = ["session_date", "level_kind", "approach_id"]
    return scored.filter(pl.col("ts_event") == pl.col("ts_event").min().over(approach))


#: Column names of ``scored``: model probabilities, partition base-rate probabilities (both in
#: OUTCOMES order) and the realised outcome.
PROBABILITY_COLUMNS: tuple[str, ...] = ("p_break", "p_reject", "p_chop")
BASE_RATE_COLUMNS: tuple[str, ...] = ("base_break", "base_reject", "base_chop")
SCORED_COLUMNS: tuple[str, ...] = (
    "session_date",
    "level_kind",
    "direction",
    *PROBABILITY_COLUMNS,
    *BASE_RATE_COLUMNS,
    "outcome",
)

_N_CLASSES = len(OUTCOMES)
# Rows of a probability matrix must sum to 1 within this (float32 storage round-trips stay inside it).
_ROW_SUM_TOLERANCE = 1e-6
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def _as_probabilities(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    """Check ``probs`` is a finite ``(n, 3)`` matrix of non-negative rows summing to 1; return float64."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != _N_CLASSES:
        raise ValueError(f"{name} must have shape (n, {_N_CLASSES}) in OUTCOMES order {OUTCOMES}, got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: nothing to score")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values ({int((~np.isfinite(arr)).any(axis=1).sum())} rows)")
    if (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{name} has values outside [0, 1]")
    worst = float(np.abs(arr.sum(axis=1) - 1.0).max())
    if worst > _ROW_SUM_TOLERANCE:
        raise ValueError(f"{name} rows must sum to 1; the worst row is off by {worst:.3g}")
    return arr


def _as_class_indices(labels: np.ndarray | Sequence, n: int) -> np.ndarray:
    """Class indices (int64, ``(n,)``) from indices into OUTCOMES or outcome strings; ValueError otherwise."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) to match the probabilities, got {arr.shape}")
    if arr.dtype.kind in "USO":
        idx = np.full(n, -1, dtype=np.int64)
        for k, outcome in enumerate(OUTCOMES):
            idx[arr == outcome] = k
        if (idx < 0).any():
            unknown = sorted({str(v) for v in arr[idx < 0]})[:5]
            raise ValueError(f"labels contain values that are not outcomes {OUTCOMES}: {unknown}")
        return idx
    if arr.dtype.kind in "iu":
        idx = arr.astype(np.int64)
        if ((idx < 0) | (idx >= _N_CLASSES)).any():
            raise ValueError(f"label indices must be in [0, {_N_CLASSES - 1}] (OUTCOMES order {OUTCOMES})")
        return idx
    raise ValueError(f"labels must be class indices or outcome strings, got dtype {arr.dtype}")


def _prepare(probs: np.ndarray, labels: np.ndarray | Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated probabilities, class indices and the one-hot label matrix ``(n, 3)``."""
    p = _as_probabilities(probs)
    y = _as_class_indices(labels, p.shape[0])
    one_hot = np.zeros_like(p)
    one_hot[np.arange(p.shape[0]), y] = 1.0
    return p, y, one_hot


def _check_bins(bins: int) -> int:
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    return int(bins)


# --------------------------------------------------------------------------------------------------
# Proper scores
# --------------------------------------------------------------------------------------------------


def multiclass_brier(probs: np.ndarray, labels: np.ndarray | Sequence) -> float:
    """Multi-category Brier score: mean over samples of ``sum_k (p_k - y_k)^2``.

    Source: G. W. Brier (1950), "Verification of forecasts expressed in terms of probability",
    Monthly Weather Review 78(1), in its original multi-category form (not the one-vs-rest average).
    Range [0, 2]: 0 for a certain, correct forecast; 2/3 for the uniform forecast over 3 classes.

    Args: ``probs`` (n, 3) in OUTCOMES order; ``labels`` (n,) class indices or outcome strings.
    Raises ValueError on empty input, wrong shapes, rows not summing to 1, or unknown labels.
    """
    p, _, one_hot = _prepare(probs, labels)
    return float(np.mean(np.sum((p - one_hot) ** 2, axis=1)))


def brier_skill_score(probs: np.ndarray, base_probs: np.ndarray, labels: np.ndarray | Sequence) -> float:
    """Brier skill score ``1 - BS(probs) / BS(base_probs)`` against a reference forecast.

    The reference is the per-sample partition base rate known before the day (DESIGN.md
    "Evaluation"). > 0 means the model beats the base rate, 0 ties it, < 0 is worse. Source:
    Wilks, "Statistical Methods in the Atmospheric Sciences", skill score with a reference forecast.

    Args: ``probs`` and ``base_probs`` (n, 3) in OUTCOMES order; ``labels`` (n,).
    Returns NaN, with a RuntimeWarning giving the reason, when the reference Brier score is 0 (the
    reference was certain and right every time, so no forecast can show skill over it).
    Raises ValueError as :func:`multiclass_brier`, or when the two probability matrices differ in shape.
    """
    base = _as_probabilities(base_probs, "base_probs")
    if base.shape != np.shape(probs):
        raise ValueError(f"base_probs shape {base.shape} differs from probs shape {np.shape(probs)}")
    model_bs = multiclass_brier(probs, labels)
    reference_bs = multiclass_brier(base, labels)
    if reference_bs == 0.0:
        warnings.warn(
            "Brier skill score undefined (NaN): the reference Brier score is 0 because the base-rate "
            "forecast was certain and correct for every sample",
            RuntimeWarning,
            stacklevel=2,
        )
        return math.nan
    return 1.0 - model_bs / reference_bs


def log_loss(probs: np.ndarray, labels: np.ndarray | Sequence, eps: float = 1e-15) -> float:
    """Mean negative natural log of the probability given to the realised class (cross-entropy, nats).

    The true-class probability is clipped to ``[eps, 1]`` so a confident miss costs ``-ln(eps)``
    (about 34.5 nats at the default) instead of infinity, as scikit-learn's ``log_loss`` does.

    Args: ``probs`` (n, 3) in OUTCOMES order; ``labels`` (n,); ``eps`` in (0, 1).
    Raises ValueError as :func:`multiclass_brier`, or for ``eps`` outside (0, 1).
    """
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    p, y, _ = _prepare(probs, labels)
    p_true = np.clip(p[np.arange(p.shape[0]), y], eps, 1.0)
    return float(-np.mean(np.log(p_true)))


def accuracy(probs: np.ndarray, labels: np.ndarray | Sequence) -> float:
    """Share of samples whose most probable class (first one on ties, in OUTCOMES order) happened.

    Args: ``probs`` (n, 3); ``labels`` (n,). Raises ValueError as :func:`multiclass_brier`.
    """
    p, y, _ = _prepare(probs, labels)
    return float(np.mean(np.argmax(p, axis=1) == y))


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each probability: bin b covers [b/bins, (b+1)/bins), the last one includes 1."""
    return np.minimum((p * bins).astype(np.int64), bins - 1)


def _binned_sums(p: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin of ``p``: sample count, sum of ``p`` and sum of the 0/1 outcome ``y`` (each ``(bins,)``)."""
    b = _bin_index(p, bins)
    counts = np.bincount(b, minlength=bins).astype(np.int64)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=y, minlength=bins)
    return counts, sum_p, sum_y


def _binned_calibration_error(p: np.ndarray, y: np.ndarray, bins: int) -> float:
    """``sum_b (n_b / n) |mean(y)_b - mean(p)_b|``, which equals ``sum_b |sum(y)_b - sum(p)_b| / n``."""
    counts, sum_p, sum_y = _binned_sums(p, y, bins)
    return float(np.abs(sum_y - sum_p).sum() / counts.sum())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray | Sequence, bins: int = 10) -> float:
    """Classwise expected calibration error, averaged over the three outcome classes.

    For each class k: split samples into ``bins`` equal-width bins of p_k over [0, 1] (bin b is
    [b/bins, (b+1)/bins), the last one closed at 1); sum over non-empty bins of
    ``(n_bin / n) * |mean(y_k) - mean(p_k)|``; then average the per-class values.
    Source: Kull et al. (2019), "Beyond temperature scaling: Obtaining well-calibrated multiclass
    probabilities with Dirichlet calibration", NeurIPS (classwise-ECE). Range [0, 1]; 0 = calibrated.

    Args: ``probs`` (n, 3); ``labels`` (n,); ``bins`` >= 1 (DESIGN.md uses 10).
    Raises ValueError as :func:`multiclass_brier`, or for a non-positive ``bins``.
    """
    bins = _check_bins(bins)
    p, _, one_hot = _prepare(probs, labels)
    return float(np.mean([_binned_calibration_error(p[:, k], one_hot[:, k], bins) for k in range(_N_CLASSES)]))


def top_label_ece(probs: np.ndarray, labels: np.ndarray | Sequence, bins: int = 10) -> float:
    """Top-label (confidence) expected calibration error, for comparison with the literature.

    Confidence = max_k p_k, correct = the argmax class (first on ties) happened; equal-width bins of
    confidence as in :func:`expected_calibration_error`; ``sum_b (n_b / n) |accuracy_b - confidence_b|``.
    Source: Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML, eq. 3.

    Args: ``probs`` (n, 3); ``labels`` (n,); ``bins`` >= 1. Raises ValueError as the classwise ECE.
    """
    bins = _check_bins(bins)
    p, y, _ = _prepare(probs, labels)
    confidence = p.max(axis=1)
    correct = (np.argmax(p, axis=1) == y).astype(np.float64)
    return _binned_calibration_error(confidence, correct, bins)


def reliability_table(probs: np.ndarray, labels: np.ndarray | Sequence, bins: int = 10) -> pl.DataFrame:
    """Classwise reliability table: one row per (class, bin), every bin listed even when empty.

    Columns: ``class`` (String, an OUTCOMES name), ``bin_lo``, ``bin_hi`` (Float64, probability
    bounds; bin is [lo, hi), the last one closed at 1), ``n`` (Int64 samples), ``mean_predicted``
    (Float64, mean p_class in the bin; null when n = 0), ``observed_frequency`` (Float64, share of the
    bin's samples whose outcome was that class; null when n = 0). Rows are ordered by OUTCOMES then bin.
    ``sum(n/N * |observed_frequency - mean_predicted|)`` per class is that class's term of
    :func:`expected_calibration_error`.

    Raises ValueError as :func:`expected_calibration_error`.
    """
    bins = _check_bins(bins)
    p, _, one_hot = _prepare(probs, labels)
    sums = [_binned_sums(p[:, k], one_hot[:, k], bins) for k in range(_N_CLASSES)]
    return reliability_table_from_sums(*(np.concatenate([part[i] for part in sums]) for i in range(3)), bins)


def reliability_table_from_sums(class_bin_n: np.ndarray, class_bin_p: np.ndarray, class_bin_y: np.ndarray, bins: int = 10) -> pl.DataFrame:
    """:func:`reliability_table` from per-bin sums, class-major arrays of ``3 * bins`` (counts, sums of
    p and of the 0/1 outcome: the ``class_bin_*`` columns of ``evaluation_sums``), so a diagram of many
    sessions needs their sums, not their episodes."""
    bins = _check_bins(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    frames = []
    for k, outcome in enumerate(OUTCOMES):
        part = slice(k * bins, (k + 1) * bins)
        counts, sum_p, sum_y = (np.asarray(a)[part] for a in (class_bin_n, class_bin_p, class_bin_y))
        counts = counts.astype(np.int64)
        nonempty = counts > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_p = np.where(nonempty, sum_p / counts, np.nan)
            freq = np.where(nonempty, sum_y / counts, np.nan)
        frames.append(
            pl.DataFrame(
                {
                    "class": [outcome] * bins,
                    "bin_lo": edges[:-1],
                    "bin_hi": edges[1:],
                    "n": counts,
                    "mean_predicted": mean_p,
                    "observed_frequency": freq,
                },
                schema={
                    "class": pl.String,
                    "bin_lo": pl.Float64,
                    "bin_hi": pl.Float64,
                    "n": pl.Int64,
                    "mean_predicted": pl.Float64,
                    "observed_frequency": pl.Float64,
                },
            )
        )
    # Empty bins carry NaN from numpy; report them as missing, not as a number.
    return pl.concat(frames).with_columns(pl.col("mean_predicted", "observed_frequency").fill_nan(None))


# --------------------------------------------------------------------------------------------------
# Reliability diagram
# --------------------------------------------------------------------------------------------------


def write_png_atomically(fig: Figure, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` via a temporary file in the same directory and ``os.replace``.

    A failed write leaves no partial file and an existing ``path`` unchanged. Creates the directory.
    The file's mode is what ``open()`` would give (0666 less the umask), not mkstemp's 0600.
    Returns ``path``; raises OSError on write failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp_name, format="png")
        # mkstemp creates the file 0600; a report is for every user the umask lets read it, like a file open() creates.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def reliability_diagram_png(
    probs: np.ndarray, labels: np.ndarray | Sequence, path: Path, title: str, bins: int = 10
) -> Path:
    """Draw the classwise reliability diagram and write it as a PNG, atomically.

    One column per class (BREAK, REJECT, CHOP): top, observed frequency against mean predicted
    probability per non-empty bin with the diagonal of perfect calibration; bottom, the sample count
    per bin as bars. Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so pyplot's
    global state and backend are untouched. The image is written to a temporary file in the target
    directory (created if missing) and moved over ``path`` with ``os.replace``: a failed write leaves
    no partial file and an existing ``path`` unchanged.

    Returns ``path``. Raises ValueError as :func:`reliability_table`, OSError on write failure.
    """
    return reliability_diagram_png_of_table(reliability_table(probs, labels, bins), path, title, bins)


def reliability_diagram_png_of_table(table: pl.DataFrame, path: Path, title: str, bins: int = 10) -> Path:
    """:func:`reliability_diagram_png` of a :func:`reliability_table` (or ``reliability_table_from_sums``) frame."""
    path = Path(path)
    n_total = int(table.filter(pl.col("class") == OUTCOMES[0])["n"].sum())

    fig = Figure(figsize=(12, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, _N_CLASSES, height_ratios=(3, 1), hspace=0.08, wspace=0.25)
    for k, outcome in enumerate(OUTCOMES):
        rows = table.filter(pl.col("class") == outcome)
        shown = rows.filter(pl.col("n") > 0)
        ax = fig.add_subplot(grid[0, k])
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
        ax.plot(
            shown["mean_predicted"].to_numpy(),
            shown["observed_frequency"].to_numpy(),
            marker="o",
            color=f"C{k}",
            label="observed",
        )
        ax.set(xlim=(0, 1), ylim=(0, 1), title=outcome)
        ax.tick_params(labelbottom=False)  # the counts panel below carries the shared x axis labels
        if k == 0:
            ax.set_ylabel("observed frequency")
            ax.legend(loc="upper left", fontsize="small")
        ax_counts = fig.add_subplot(grid[1, k], sharex=ax)
        widths = (rows["bin_hi"] - rows["bin_lo"]).to_numpy()
        ax_counts.bar(rows["bin_lo"].to_numpy(), rows["n"].to_numpy(), width=widths, align="edge", color=f"C{k}", alpha=0.6)
        ax_counts.set_xlabel(f"mean predicted P({outcome})")
        if k == 0:
            ax_counts.set_ylabel("episodes")
    fig.suptitle(f"{title} (n = {n_total}, {bins} bins)")

    return write_png_atomically(fig, path)


def png_to_markdown(path: Path, title: str | None = None) -> str:
    """Markdown image ``![title](data:image/png;base64,...)`` of a PNG file, for ``MetadataValue.md``.

    ``title`` defaults to the file's stem. Raises ValueError when the file is not a PNG.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(_PNG_MAGIC):
        raise ValueError(f"{path} is not a PNG file")
    alt = path.stem if title is None else title
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


# --------------------------------------------------------------------------------------------------
# Walk-forward evaluation of a scored table
# --------------------------------------------------------------------------------------------------


def _check_scored(scored: pl.DataFrame) -> None:
    if scored.height == 0:
        raise ValueError("cannot evaluate an empty scored table: no episodes were answered walk-forward")
    missing = [c for c in SCORED_COLUMNS if c not in scored.columns]
    if missing:
        raise ValueError(f"scored table lacks columns {missing}; expected {list(SCORED_COLUMNS)}")
    null_counts = scored.select(pl.col(*PROBABILITY_COLUMNS, *BASE_RATE_COLUMNS, "outcome").null_count()).row(0, named=True)
    with_nulls = {c: v for c, v in null_counts.items() if v}
    if with_nulls:
        raise ValueError(f"scored table has nulls (column: count) {with_nulls}")


def evaluate(scored: pl.DataFrame, bins: int = 10) -> dict[str, object]:
    """Walk-forward scores of model probabilities against outcomes and against the base rate.

    Input columns: ``session_date`` (Date), ``level_kind``, ``direction`` (String), ``p_break``,
    ``p_reject``, ``p_chop`` (Float64, the model, rows sum to 1), ``base_break``, ``base_reject``,
    ``base_chop`` (Float64, the partition base rate known before the day), ``outcome`` (String, one of
    OUTCOMES). One row per episode.

    Returns a dict: ``n_episodes``, ``n_sessions`` (int); ``brier``, ``brier_base`` (multi-category
    Brier of model and base rate), ``brier_skill_score`` (NaN when the base rate's Brier is 0),
    ``log_loss``, ``log_loss_base`` (nats), ``ece`` (classwise, ``bins`` bins), ``top_label_ece``,
    ``accuracy``, ``base_accuracy`` (argmax hit rate) as floats; ``beats_base_rate`` (bool:
    brier_skill_score > 0, so False when it is NaN).

    Raises ValueError for an empty table, missing columns, nulls, invalid probabilities or unknown outcomes.
    """
    _check_scored(scored)
    probs = scored.select(PROBABILITY_COLUMNS).to_numpy()
    base = scored.select(BASE_RATE_COLUMNS).to_numpy()
    labels = _as_class_indices(scored["outcome"].to_numpy(), scored.height)
    bss = brier_skill_score(probs, base, labels)
    return {
        "n_episodes": scored.height,
        "n_sessions": scored["session_date"].n_unique(),
        "brier": multiclass_brier(probs, labels),
        "brier_base": multiclass_brier(base, labels),
        "brier_skill_score": bss,
        "log_loss": log_loss(probs, labels),
        "log_loss_base": log_loss(base, labels),
        "ece": expected_calibration_error(probs, labels, bins),
        "top_label_ece": top_label_ece(probs, labels, bins),
        "accuracy": accuracy(probs, labels),
        "base_accuracy": accuracy(base, labels),
        "beats_base_rate": bool(bss > 0.0),  # NaN > 0 is False: no demonstrated skill
    }


def evaluate_by(
    scored: pl.DataFrame, by: Sequence[str] = ("level_kind", "direction"), bins: int = 10
) -> pl.DataFrame:
    """:func:`evaluate` per group: one row per distinct value of ``by``, sorted by ``by``.

    Columns: the ``by`` columns, then every key of :func:`evaluate` (Int64 counts, Float64 scores,
    Boolean ``beats_base_rate``). Raises ValueError as :func:`evaluate` (a whole empty table, or
    ``by`` naming absent columns).
    """
    by = list(by)
    _check_scored(scored)
    absent = [c for c in by if c not in scored.columns]
    if absent:
        raise ValueError(f"group columns {absent} are not in the scored table")
    rows = []
    # A handful of groups (at most 6 level kinds x 2 directions x 5 time buckets): a loop over groups is cheap.
    for group in scored.sort(by).partition_by(by, maintain_order=True):
        keys = group.select(by).row(0, named=True)
        rows.append({**keys, **evaluate(group, bins)})
    return pl.DataFrame(rows).with_columns(
        pl.col("n_episodes", "n_sessions").cast(pl.Int64),
        pl.col("beats_base_rate").cast(pl.Boolean),
    )


# --------------------------------------------------------------------------------------------------
# Every model beside the baselines, with session-bootstrap intervals
# --------------------------------------------------------------------------------------------------


def session_bootstrap_skill(
    model_brier_by_session: np.ndarray,
    reference_brier_by_session: np.ndarray,
    level: float = 0.90,
    replicates: int = 1000,
    seed: int = 0,
    sessions: Sequence[date] | None = None,
) -> tuple[float, float]:
    """Central ``level`` percentile interval of the Brier skill score by resampling whole sessions.

    Inputs: per session, the *sum* over its episodes of the multi-category Brier score of the model
    and of the reference (shape (S,) each), and optionally the sessions' dates. A replicate weights
    each session by a Poisson(1) count (:func:`session_weights`) and computes
    ``1 - sum(w * model) / sum(w * reference)``, so a session's episodes stay together (a block
    bootstrap: episodes of one session are not independent; Kunsch 1989, Efron & Tibshirani 1993
    ch. 8). Returns (lo, hi); (NaN, NaN) with fewer than 2 sessions.
    Raises ValueError on mismatched shapes.
    """
    a = np.asarray(model_brier_by_session, dtype=np.float64)
    b = np.asarray(reference_brier_by_session, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"per-session Brier sums must be two (S,) arrays, got {a.shape} and {b.shape}")
    lo, hi = session_bootstrap_skills(a[None, :], b[None, :], level, replicates, seed, sessions)
    return float(lo[0]), float(hi[0])


_WEIGHTS: dict[tuple[int, int, int], np.ndarray] = {}


def session_weights(sessions: Sequence[date | int], replicates: int, seed: int) -> np.ndarray:
    """Poisson(1) bootstrap counts of each session in each replicate, float64 (S, replicates).

    The Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating uncertainty
    for massive data streams") draws each session's count independently, from a generator seeded
    by (``seed``, the session's date ordinal): a session has the same counts in every evaluation
    that includes it, whatever else is scored, so scores computed from different spans, in any
    order, share their replicates, and the cost per session is fixed. As ``S`` grows it approaches
    the multinomial (with-replacement) bootstrap of S sessions.
    """
    out = np.empty((len(sessions), replicates), dtype=np.float64)
    for i, session in enumerate(sessions):
        ordinal = session.toordinal() if isinstance(session, date) else int(session)
        key = (seed, ordinal, replicates)
        counts = _WEIGHTS.get(key)
        if counts is None:
            counts = _WEIGHTS[key] = np.random.default_rng([seed, ordinal]).poisson(1.0, replicates).astype(np.float64)
        out[i] = counts
    return out


def session_bootstrap_skills(
    model_brier_by_session: np.ndarray,
    reference_brier_by_session: np.ndarray,
    level: float = 0.90,
    replicates: int = 1000,
    seed: int = 0,
    sessions: Sequence[date | int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`session_bootstrap_skill` of K (model, reference) pairs at once: inputs (K, S), returns (lo, hi), each (K,).

    Every pair sees the same replicates; the replicate sums are one matrix product
    (K, S) x (S, replicates). ``sessions``: the S sessions' dates (default: their positions 0..S-1).
    A replicate that weights no session with reference Brier > 0 is left out of the percentiles.
    Raises ValueError on mismatched shapes.
    """
    a = np.asarray(model_brier_by_session, dtype=np.float64)
    b = np.asarray(reference_brier_by_session, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"per-session Brier sums must be two (K, S) arrays, got {a.shape} and {b.shape}")
    lo = np.full(a.shape[0], math.nan)
    hi = np.full(a.shape[0], math.nan)
    if a.shape[1] < 2:
        return lo, hi
    ids = list(range(a.shape[1])) if sessions is None else list(sessions)
    if len(ids) != a.shape[1]:
        raise ValueError(f"{len(ids)} session dates for {a.shape[1]} sessions")
    weights = session_weights(ids, replicates, seed)
    return replicate_skill_interval(a @ weights, b @ weights, level)


def replicate_skill_interval(model_replicates: np.ndarray, reference_replicates: np.ndarray, level: float = 0.90) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` percentile interval of the Brier skill ``1 - model / reference`` over bootstrap
    replicates: inputs (K, replicates) of the replicates' weighted Brier sums, returns (lo, hi), each (K,).

    A replicate whose reference sum is 0 (it weights no session with Brier > 0) is left out; a pair
    with no usable replicate gets NaN. Shared by :func:`session_bootstrap_skills` and the carried
    sums of ``evaluation_sums.CumulativeSums``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        skills = np.where(reference_replicates > 0, 1.0 - model_replicates / reference_replicates, np.nan)
    lo = np.full(skills.shape[0], math.nan)
    hi = np.full(skills.shape[0], math.nan)
    tail = (1.0 - level) / 2.0
    finite = np.isfinite(skills)
    # np.quantile on the rows without NaN (most of them) gives the same values as np.nanquantile,
    # which is far slower on a 2-D array; only the rows with a left-out replicate take that path.
    whole = finite.all(axis=1)
    if whole.any():
        lo[whole], hi[whole] = np.quantile(skills[whole], [tail, 1.0 - tail], axis=1)
    partial = finite.any(axis=1) & ~whole
    if partial.any():
        lo[partial], hi[partial] = np.nanquantile(skills[partial], [tail, 1.0 - tail], axis=1)
    return lo, hi


def _per_session_brier(frame: pl.DataFrame, columns: Sequence[str], labels: np.ndarray, sessions: np.ndarray, n_sessions: int) -> np.ndarray:
    p = frame.select(columns).to_numpy()
    one_hot = np.zeros_like(p)
    one_hot[np.arange(p.shape[0]), labels] = 1.0
    per_episode = np.sum((p - one_hot) ** 2, axis=1)
    return np.bincount(sessions, weights=per_episode, minlength=n_sessions)


def compare_models(
    scored: pl.DataFrame,
    models: dict[str, str],
    reference: str = "base_rate",
    baseline: str = "distance",
    bins: int = 10,
    level: float = 0.90,
    replicates: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """Score every model on the same episodes, beside the two baselines, with session-bootstrap intervals.

    ``scored``: one row per episode with session_date, outcome and, for each model name in
    ``models``, the three probability columns ``prefix + break/reject/chop`` (``models`` maps a
    name to its prefix, e.g. ``{"base_rate": "base_", "distance": "p_dist_", ...}``). Rows where
    any model lacks a probability are dropped first, so every model is scored on the same episodes.
    ``reference`` and ``baseline`` name the two baselines (DESIGN.md "Evaluation").

    Returns one row per model, in ``models`` order: model, n_episodes, n_sessions, brier,
    bss_base / bss_base_lo / bss_base_hi (skill against ``reference`` and its ``level`` interval by
    :func:`session_bootstrap_skill`), bss_distance / _lo / _hi (against ``baseline``), best_baseline
    (the reference of :data:`REFERENCE_MODELS` in ``models`` with the lowest Brier on these
    episodes, else ``reference``) and bss_best / _lo / _hi (against it), log_loss
    (nats), ece (classwise, ``bins`` bins), top_label_ece, accuracy.
    Raises ValueError when no episode has every model's probabilities, or on invalid probabilities.
    """
    for name in (reference, baseline):
        if name not in models:
            raise ValueError(f"the baseline {name!r} is not among the models {list(models)}")
    columns = {name: [f"{prefix}{o.lower()}" for o in OUTCOMES] for name, prefix in models.items()}
    complete = scored.drop_nulls([c for cols in columns.values() for c in cols] + ["outcome"])
    if complete.height == 0:
        raise ValueError("no episode has the probabilities of every model: nothing to compare")
    labels = _as_class_indices(complete["outcome"].to_numpy(), complete.height)
    session_codes = complete["session_date"].rank("dense").cast(pl.Int64).to_numpy() - 1
    n_sessions = int(session_codes.max()) + 1
    per_session = {name: _per_session_brier(complete, cols, labels, session_codes, n_sessions) for name, cols in columns.items()}
    briers = {name: multiclass_brier(complete.select(cols).to_numpy(), labels) for name, cols in columns.items()}
    best = best_reference(briers) or reference
    references = (("base", reference), ("distance", baseline), ("best", best))
    pairs = [(name, tag, ref) for name in columns for tag, ref in references]
    sessions = complete["session_date"].unique().sort().to_list()
    lows, highs = session_bootstrap_skills(
        np.stack([per_session[name] for name, _, _ in pairs]), np.stack([per_session[ref] for _, _, ref in pairs]), level, replicates, seed, sessions
    )
    interval = {(name, tag): (float(lo), float(hi)) for (name, tag, _), lo, hi in zip(pairs, lows, highs)}
    rows = []
    for name, cols in columns.items():
        p = complete.select(cols).to_numpy()
        brier = multiclass_brier(p, labels)
        row: dict[str, object] = {"model": name, "n_episodes": complete.height, "n_sessions": n_sessions, "brier": brier, "best_baseline": best}
        for tag, ref in references:
            ref_brier = briers[ref]
            row[f"bss_{tag}"] = 1.0 - brier / ref_brier if ref_brier > 0 else math.nan
            row[f"bss_{tag}_lo"], row[f"bss_{tag}_hi"] = interval[(name, tag)]
        row.update(
            log_loss=log_loss(p, labels),
            ece=expected_calibration_error(p, labels, bins),
            top_label_ece=top_label_ece(p, labels, bins),
            accuracy=accuracy(p, labels),
        )
        rows.append(row)
    return pl.DataFrame(rows).with_columns(pl.col("n_episodes", "n_sessions").cast(pl.Int64))


def format_comparison(table: pl.DataFrame, level: float = 0.90) -> str:
    """The comparison of :func:`compare_models` as an aligned text table (one line per model)."""
    pct = f"{level:.0%}"
    head = f"{'model':<19} {'Brier':>7}  {'BSS vs base [' + pct + ']':>28}  {'BSS vs distance [' + pct + ']':>28}  {'BSS vs best [' + pct + ']':>28}  {'log loss':>8} {'ECE':>6} {'top ECE':>7}"
    lines = [head]
    for r in table.iter_rows(named=True):
        def skill(tag: str) -> str:
            lo, hi = r[f"bss_{tag}_lo"], r[f"bss_{tag}_hi"]
            if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
                return f"{r[f'bss_{tag}']:+.4f} [no interval: 1 session]"  # resampling one session gives nothing
            return f"{r[f'bss_{tag}']:+.4f} [{lo:+.4f}, {hi:+.4f}]"

        lines.append(
            f"{r['model']:<19} {r['brier']:>7.4f}  {skill('base'):>28}  {skill('distance'):>28}  {skill('best'):>28}  {r['log_loss']:>8.4f} {r['ece']:>6.4f} {r['top_label_ece']:>7.4f}"
        )
    first = table.row(0, named=True)
    lines.append(f"best baseline (lowest Brier of {', '.join(REFERENCE_MODELS)} on these episodes): {first['best_baseline']}")
    lines.append(f"{first['n_episodes']} episodes in {first['n_sessions']} sessions, each answered walk-forward (only earlier sessions); intervals resample whole sessions")
    return "\n".join(lines)
