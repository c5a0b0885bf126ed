"""The product's answer for the setups of day D: every component, the blend, its interval and its source.

Components, each known before D only (DESIGN.md "The answer" and "Evaluation"):

- ``base_*``: the index partition's base rate (level kind x direction x time bucket);
- ``p_dist_*``: the distance lookup (``distance_baseline``);
- ``p_knn_*``: the Dirichlet posterior of the retrieved neighbours (``signals.knn_answer``), in the
  learned-similarity space;
- ``p_xgb_*``: the XGBoost model as of D (``model``), null when there is none yet;
- ``p_*``: the answer, ``calibrate(w * P_xgb + (1 - w) * P_knn)`` (``blend``), with its interval;
- references beside it, for the evaluation: ``p_mix_*`` the trailing class mix (``class_mix``),
  ``p_distcal_*`` the distance lookup with its own temperature (fitted on the blend's rows),
  ``p_t1_*`` the blend before calibration (T = 1; the kNN posterior without a model).

``answer_source`` says which answer a row got: ``blend`` (w and T fitted on earlier sessions),
``blend_default`` (a model exists but too few earlier sessions to fit w and T: w =
``blend_default_weight``, T = 1), ``knn`` (no model yet: the answer is the kNN posterior), or
``no_history`` (no earlier session at all: the kNN posterior is its uniform prior).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import polars as pl

from spymaster_core.config import OUTCOMES, SpymasterConfig
from .blend import BlendFit, blend, blend_interval, fit_blend, fit_temperature, temper
from .class_mix import class_mix_probabilities
from .distance_baseline import DistanceLookup
from .episodes import SETUP_KEY_SCHEMA
from .model import OutcomeModel
from .normalization import NormalizationStats
from .retrieval import outcome_codes, smooth_series
from .schema_indexes import SchemaIndexes

CLASSES = [o.lower() for o in OUTCOMES]  # break, reject, chop
ANSWER_SOURCES = ("blend", "blend_default", "knn", "no_history")
#: Prefixes of the probability columns of every model scored by gold_evaluation, in table order.
MODEL_PREFIXES: dict[str, str] = {
    "base_rate": "base_",
    "class_mix": "p_mix_",
    "distance": "p_dist_",
    "distance_calibrated": "p_distcal_",
    "knn": "p_knn_",
    "xgboost": "p_xgb_",
    "answer_t1": "p_t1_",
    "answer": "p_",
}


def probability_columns(prefix: str) -> list[str]:
    """``[prefix + 'break', prefix + 'reject', prefix + 'chop']``."""
    return [f"{prefix}{c}" for c in CLASSES]


SIGNALS_SCHEMA: dict[str, pl.DataType] = {
    **SETUP_KEY_SCHEMA,
    "partition_key": pl.String(),
    "approach_id": pl.Int32(),
    **{f"p_{c}": pl.Float64() for c in CLASSES},
    **{f"p_{c}_{end}": pl.Float64() for c in CLASSES for end in ("lo", "hi")},
    **{f"p_{c}_smooth": pl.Float64() for c in CLASSES},
    "answer_source": pl.String(),
    **{f"base_{c}": pl.Float64() for c in CLASSES},
    **{f"p_dist_{c}": pl.Float64() for c in CLASSES},
    **{f"p_knn_{c}": pl.Float64() for c in CLASSES},
    **{f"p_xgb_{c}": pl.Float64() for c in CLASSES},
    **{f"p_mix_{c}": pl.Float64() for c in CLASSES},
    **{f"p_distcal_{c}": pl.Float64() for c in CLASSES},
    **{f"p_t1_{c}": pl.Float64() for c in CLASSES},
    "effective_sample_size": pl.Float64(),
    "n_neighbours": pl.Int32(),
    "knn_concentration": pl.Float64(),
    "blend_weight": pl.Float64(),
    "temperature": pl.Float64(),
    "model_trained_through": pl.Date(),
    "vector_version": pl.String(),
}


@dataclass
class KnownBefore:
    """Everything known before day ``as_of`` that answers its setups.

    ``indexes``/``stats``: the setup indexes and normalization as of the day; ``model``: the
    outcome model as of the day (None before ``model_min_sessions``); ``distance_table``: the fitted
    distance lookup; ``blend_fit``: w and T from earlier sessions (and the distance lookup's own T);
    ``class_mix``: the trailing class mix (``class_mix.fit_class_mix``; None: uniform).
    """

    as_of: date
    indexes: SchemaIndexes
    stats: NormalizationStats
    model: OutcomeModel | None
    distance_table: pl.DataFrame
    blend_fit: BlendFit
    class_mix: pl.DataFrame | None = None
    distance_lookup: DistanceLookup = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.distance_lookup = DistanceLookup(self.distance_table, self.indexes.config)

    @property
    def answer_source(self) -> str:
        """The ``answer_source`` every setup of the day gets (see the module docstring)."""
        if self.model is not None:
            return "blend" if self.blend_fit.fitted else "blend_default"
        return "knn" if self.indexes.sessions else "no_history"


def compose_arrays(
    known: KnownBefore, p_knn: np.ndarray, concentration: np.ndarray, p_dist: np.ndarray, p_xgb: np.ndarray | None, level: float
) -> dict[str, np.ndarray]:
    """The answer and its interval from the components, arrays of n setups: the one composition of the batch and the live path.

    Inputs (n, 3) in OUTCOMES order (``p_xgb`` None without a model) and ``concentration`` (n,).
    Returns ``answer``, ``lower``, ``upper``, ``p_xgb`` (NaN without a model), each (n, 3).
    """
    fit = known.blend_fit
    if p_xgb is not None:
        answer = blend(p_xgb, p_knn, fit.weight, fit.temperature, fit.bias)
    else:
        p_xgb = np.full_like(p_knn, np.nan)
        answer = p_knn
    lower, upper = blend_interval(answer, concentration, level)
    return {"answer": answer, "lower": lower, "upper": upper, "p_xgb": p_xgb}


def fit_blend_on_signals(earlier: pl.DataFrame | None, config: SpymasterConfig) -> BlendFit:
    """Fit w and T on earlier sessions' gold_signals joined with their outcomes (an inner walk-forward).

    ``earlier``: rows with session_date, p_knn_*, p_xgb_* and outcome, all of sessions before the
    day served (the caller's guarantee, as with every as-of artefact). Rows without a model
    probability are left out; the trailing ``blend_sessions`` sessions with one are used. When the
    rows hold p_dist_*, the distance lookup's own temperature is fitted on the same rows
    (``BlendFit.distance_temperature``, :func:`blend.fit_temperature`), so the reference is calibrated as the blend is.
    """
    if config.calibration not in ("temperature", "temperature_bias"):
        raise ValueError(f"calibration must be 'temperature' or 'temperature_bias', got {config.calibration!r}")
    default = BlendFit(config.blend_default_weight, 1.0, 0, 0, False)
    if earlier is None or earlier.height == 0:
        return default
    rows = earlier.filter(pl.col("p_xgb_break").is_not_null())
    sessions = sorted(set(rows["session_date"].to_list()))[-config.blend_sessions:]
    rows = rows.filter(pl.col("session_date").is_in(sessions))
    labels = outcome_codes(rows["outcome"])
    fit = fit_blend(
        rows.select(probability_columns("p_xgb_")).to_numpy(),
        rows.select(probability_columns("p_knn_")).to_numpy(),
        labels,
        len(sessions),
        config.blend_min_sessions,
        config.blend_default_weight,
        class_bias=config.calibration == "temperature_bias",
    )
    if "p_dist_break" not in rows.columns:
        return fit
    p_dist = rows.select(probability_columns("p_dist_")).to_numpy()
    return replace(fit, distance_temperature=fit_temperature(p_dist, labels, len(sessions), config.blend_min_sessions))


def compose_answer(knn: pl.DataFrame, episodes: pl.DataFrame, known: KnownBefore, config: SpymasterConfig) -> pl.DataFrame:
    """gold_signals rows (:data:`SIGNALS_SCHEMA`) from the kNN rows of ``signals.knn_answer`` and the episodes.

    ``knn`` and ``episodes`` hold the same setups (joined on session_date, ts_event, level_kind);
    ``episodes`` carries vector, distance_atr, level_kind, direction. Outcome columns are never read.
    """
    keys = ["session_date", "ts_event", "level_kind"]
    frame = knn.join(episodes.select(*keys, "vector", "distance_atr"), on=keys, how="left", maintain_order="left")
    p_knn = frame.select(probability_columns("p_")).to_numpy()
    p_dist = known.distance_lookup.probabilities(frame["level_kind"].to_list(), frame["direction"].to_list(), frame["distance_atr"].to_numpy())
    p_xgb = known.model.predict(frame, config) if known.model is not None else None
    parts = compose_arrays(known, p_knn, frame["knn_concentration"].to_numpy(), p_dist, p_xgb, config.interval_level)
    fit = known.blend_fit
    kinds, directions = frame["level_kind"].to_list(), frame["direction"].to_list()
    p_mix = class_mix_probabilities(known.class_mix, kinds, directions) if known.class_mix is not None else np.full_like(p_knn, 1.0 / len(CLASSES))
    p_distcal = temper(p_dist, fit.distance_temperature)
    p_t1 = blend(p_xgb, p_knn, fit.weight, 1.0) if p_xgb is not None else p_knn  # the blend before calibration
    columns: dict[str, object] = {}
    for j, c in enumerate(CLASSES):
        columns[f"p_knn_{c}"] = pl.Series(p_knn[:, j])
        columns[f"p_dist_{c}"] = pl.Series(p_dist[:, j])
        columns[f"p_mix_{c}"] = pl.Series(p_mix[:, j])
        columns[f"p_distcal_{c}"] = pl.Series(p_distcal[:, j])
        columns[f"p_t1_{c}"] = pl.Series(p_t1[:, j])
        columns[f"p_xgb_{c}"] = pl.Series(parts["p_xgb"][:, j], nan_to_null=True)
        columns[f"p_{c}"] = pl.Series(parts["answer"][:, j])
        columns[f"p_{c}_lo"] = pl.Series(parts["lower"][:, j])
        columns[f"p_{c}_hi"] = pl.Series(parts["upper"][:, j])
    has_model = known.model is not None
    out = frame.drop(probability_columns("p_")).with_columns(
        **columns,
        answer_source=pl.lit(known.answer_source),
        blend_weight=pl.lit(fit.weight if has_model else None, dtype=pl.Float64),
        temperature=pl.lit(fit.temperature if has_model else None, dtype=pl.Float64),
        model_trained_through=pl.lit(known.model.trained_through if has_model else None, dtype=pl.Date),
    )
    out = smooth_series(out, config)
    return out.sort("ts_event", "level_kind").select([pl.col(name).cast(dtype) for name, dtype in SIGNALS_SCHEMA.items()])
