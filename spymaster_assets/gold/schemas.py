"""pandera.polars models and column descriptions of the gold tables.

The models check types, value sets and the invariants a reviewer relies on (probabilities in
[0, 1] summing to 1, intervals around the estimate, one row per key). Checks that depend on the
configuration (vector width, time-bucket labels) are in the ``validate_*`` helpers.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from spymaster_core.config import DIRECTIONS, LEVEL_KINDS, OUTCOMES, SpymasterConfig
from .answer import ANSWER_SOURCES
from .vectors import vector_columns

_PROBABILITY_TOLERANCE = 1e-6
#: Column prefixes of gold_signals' probabilities, and of those that are never 0 (smoothed rates).
_PROBABILITY_PREFIXES = ("p_", "base_")
_POSITIVE_PREFIXES = ("base_", "p_dist_", "p_mix_", "p_distcal_")
_CLASSES = [o.lower() for o in OUTCOMES]


class GoldEpisodes(pa.DataFrameModel):
    """gold_episodes: one row per setup (anchor bar close inside the approach zone, level kind)."""

    session_date: pl.Date
    ts_event: pl.Datetime("ns", "UTC")
    level_kind: str = pa.Field(isin=list(LEVEL_KINDS))
    direction: str = pa.Field(isin=list(DIRECTIONS))
    time_bucket: str
    partition_key: str
    vector_version: str
    feature_families: str
    vector: pl.Array
    distance_atr: float
    outcome: str = pa.Field(isin=list(OUTCOMES))
    ambiguous: bool
    horizon_complete: bool

    class Config:
        strict = True
        unique = ["session_date", "ts_event", "level_kind"]

    @pa.dataframe_check
    def partition_key_matches(cls, data) -> pl.LazyFrame:
        """partition_key is level_kind|direction|time_bucket."""
        expected = pl.concat_str([pl.col("level_kind"), pl.col("direction"), pl.col("time_bucket")], separator="|")
        return data.lazyframe.select(pl.col("partition_key") == expected)

    @pa.dataframe_check
    def vector_is_float32(cls, data) -> pl.LazyFrame:
        """Vectors are Array(Float32, D)."""
        dtype = data.lazyframe.collect_schema()["vector"]
        return data.lazyframe.select(pl.lit(getattr(dtype, "inner", None) == pl.Float32).alias("ok"))


class GoldNormalization(pa.DataFrameModel):
    """gold_normalization: one row per vector dimension for day D."""

    dim: pl.Int32 = pa.Field(ge=0, unique=True)
    feature: str = pa.Field(unique=True)
    median: float
    iqr: float = pa.Field(nullable=True)
    scale_used: float = pa.Field(gt=0)
    n_episodes: pl.Int64 = pa.Field(ge=0)
    n_sessions: pl.Int32 = pa.Field(ge=0)
    first_session: pl.Date = pa.Field(nullable=True)
    last_session: pl.Date = pa.Field(nullable=True)
    vector_version: str
    as_of: pl.Date

    class Config:
        strict = True

    @pa.dataframe_check
    def history_before_as_of(cls, data) -> pl.LazyFrame:
        """Point in time: the statistics only use sessions before as_of."""
        return data.lazyframe.select((pl.col("last_session") < pl.col("as_of")).fill_null(True))


class GoldSignals(pa.DataFrameModel):
    """gold_signals: one row per episode of day D with the answer and every component's probabilities."""

    session_date: pl.Date
    ts_event: pl.Datetime("ns", "UTC")
    level_kind: str = pa.Field(isin=list(LEVEL_KINDS))
    direction: str = pa.Field(isin=list(DIRECTIONS))
    time_bucket: str
    partition_key: str
    approach_id: pl.Int32 = pa.Field(ge=0)
    p_break: float
    p_reject: float
    p_chop: float
    p_break_lo: float
    p_break_hi: float
    p_reject_lo: float
    p_reject_hi: float
    p_chop_lo: float
    p_chop_hi: float
    p_break_smooth: float
    p_reject_smooth: float
    p_chop_smooth: float
    answer_source: str = pa.Field(isin=list(ANSWER_SOURCES))
    base_break: float
    base_reject: float
    base_chop: float
    p_dist_break: float
    p_dist_reject: float
    p_dist_chop: float
    p_knn_break: float
    p_knn_reject: float
    p_knn_chop: float
    p_xgb_break: float = pa.Field(nullable=True)
    p_xgb_reject: float = pa.Field(nullable=True)
    p_xgb_chop: float = pa.Field(nullable=True)
    p_mix_break: float
    p_mix_reject: float
    p_mix_chop: float
    p_distcal_break: float
    p_distcal_reject: float
    p_distcal_chop: float
    p_t1_break: float
    p_t1_reject: float
    p_t1_chop: float
    effective_sample_size: float = pa.Field(ge=0)
    n_neighbours: pl.Int32 = pa.Field(ge=0)
    knn_concentration: float = pa.Field(ge=0)
    blend_weight: float = pa.Field(ge=0, le=1, nullable=True)
    temperature: float = pa.Field(gt=0, nullable=True)
    model_trained_through: pl.Date = pa.Field(nullable=True)
    vector_version: str

    class Config:
        strict = True
        unique = ["session_date", "ts_event", "level_kind"]

    @pa.dataframe_check
    def probabilities_in_unit_interval(cls, data) -> pl.LazyFrame:
        """Every probability in [0, 1] (nulls: the model's before the first model); the references'
        and the base rate's in (0, 1]. One check for all columns: a check per column costs a collect each."""
        names = data.lazyframe.collect_schema().names()
        probabilities = [c for c in names if c.startswith(_PROBABILITY_PREFIXES)]
        positive = [c for c in probabilities if c.startswith(_POSITIVE_PREFIXES)]
        inside = [pl.col(c).is_between(0.0, 1.0).fill_null(True) for c in probabilities]
        return data.lazyframe.select(pl.all_horizontal([*inside, *[(pl.col(c) > 0).fill_null(True) for c in positive]]))

    @pa.dataframe_check
    def probabilities_sum_to_one(cls, data) -> pl.LazyFrame:
        """p_break + p_reject + p_chop = 1, and the same for the smoothed answer and every component (the model's when present)."""
        checks = [
            (pl.sum_horizontal([f"{prefix}{c}{suffix}" for c in _CLASSES]) - 1.0).abs() < _PROBABILITY_TOLERANCE
            for prefix, suffix in (("p_", ""), ("p_", "_smooth"), ("base_", ""), ("p_dist_", ""), ("p_knn_", ""), ("p_mix_", ""), ("p_distcal_", ""), ("p_t1_", ""))
        ]
        model = (pl.sum_horizontal([f"p_xgb_{c}" for c in _CLASSES]) - 1.0).abs() < _PROBABILITY_TOLERANCE
        checks.append(pl.col("p_xgb_break").is_null() | model)
        return data.lazyframe.select(pl.all_horizontal(checks))

    @pa.dataframe_check
    def interval_contains_estimate(cls, data) -> pl.LazyFrame:
        """lo <= p <= hi for each class: the posterior mean lies inside its central interval."""
        checks = [
            (pl.col(f"p_{c}_lo") <= pl.col(f"p_{c}") + _PROBABILITY_TOLERANCE)
            & (pl.col(f"p_{c}") <= pl.col(f"p_{c}_hi") + _PROBABILITY_TOLERANCE)
            for c in _CLASSES
        ]
        return data.lazyframe.select(pl.all_horizontal(checks))


def validate_episodes(frame: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Validate gold_episodes with :class:`GoldEpisodes` plus the config-dependent checks.

    Raises pandera.errors.SchemaError, or ValueError if the vector width is not
    len(vector_columns(config)) or a time_bucket is not one of config.time_bucket_labels.
    """
    GoldEpisodes.validate(frame)
    _check_time_buckets(frame, config)
    width = getattr(frame.schema["vector"], "size", None)
    if width != len(vector_columns(config)):
        raise ValueError(f"gold_episodes vectors have width {width}, config gives {len(vector_columns(config))}")
    return frame


def validate_signals(frame: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Validate gold_signals with :class:`GoldSignals` plus the time-bucket labels of ``config``."""
    GoldSignals.validate(frame)
    _check_time_buckets(frame, config)
    return frame


def _check_time_buckets(frame: pl.DataFrame, config: SpymasterConfig) -> None:
    unknown = set(frame["time_bucket"].unique().to_list()) - set(config.time_bucket_labels)
    if unknown:
        raise ValueError(f"unknown time_bucket labels {sorted(unknown)}; expected {config.time_bucket_labels}")


_KEY_DESCRIPTIONS = {
    "session_date": "CME trade date of the session (partition key).",
    "ts_event": "Anchor instant T (UTC): close of the 2-minute anchor bar.",
    "level_kind": f"Level kind, one of {', '.join(LEVEL_KINDS)}.",
    "direction": "UP = close below the level (testing resistance), DOWN = close above it.",
    "time_bucket": "Minutes since 09:30 ET bucket of the anchor, e.g. '0-15'.",
    "partition_key": "Index partition 'level_kind|direction|time_bucket'.",
    "vector_version": "Version of the full setup-vector layout (column list + config hash).",
    "feature_families": "Feature families present for this setup (bars, tape, book, depth, mbo), joined by +; absent families are NaN in the vector.",
}

_PROBABILITY_DESCRIPTIONS = {}
for _c in _CLASSES:
    _O = _c.upper()
    _PROBABILITY_DESCRIPTIONS[f"p_{_c}"] = f"The answer: P({_O}) = calibrate(w * P_xgb + (1 - w) * P_knn), or the kNN posterior without a model (see answer_source)."
    _PROBABILITY_DESCRIPTIONS[f"p_{_c}_lo"] = f"Lower end of the central interval of P({_O}): Beta(p * knn_concentration, (1 - p) * knn_concentration)."
    _PROBABILITY_DESCRIPTIONS[f"p_{_c}_hi"] = f"Upper end of the central interval of P({_O}) (same Beta)."
    _PROBABILITY_DESCRIPTIONS[f"p_knn_{_c}"] = f"kNN component: Dirichlet posterior mean of P({_O}) from the neighbours around the prior of knn_prior (the setup's distance-lookup rate by default, else the partition base rate)."
    _PROBABILITY_DESCRIPTIONS[f"p_xgb_{_c}"] = f"Model component: gold_model's P({_O}); null before the first model."
    _PROBABILITY_DESCRIPTIONS[f"p_dist_{_c}"] = f"Distance lookup baseline: rate of {_O} by (level kind, direction, |distance| bin) in earlier sessions."
    _PROBABILITY_DESCRIPTIONS[f"p_mix_{_c}"] = f"Trailing class mix (a reference): rate of {_O} by (level kind, direction) over the last W sessions, W chosen on earlier sessions."
    _PROBABILITY_DESCRIPTIONS[f"p_distcal_{_c}"] = f"Calibrated distance lookup (a reference): p_dist tempered with its own temperature fitted on the blend's rows."
    _PROBABILITY_DESCRIPTIONS[f"p_t1_{_c}"] = f"The blend before calibration (T = 1): w * P_xgb + (1 - w) * P_knn of {_O}, the kNN posterior without a model."

#: Per table, per column: the description shown in the Dagster UI (dagster/column_schema).
column_descriptions: dict[str, dict[str, str]] = {
    "gold_episodes": {
        **_KEY_DESCRIPTIONS,
        "vector": "Setup vector before normalization, Float32 per feature in feature_names order; NaN = missing.",
        "distance_atr": "Signed distance (close - level) / ATR at the anchor, in ATR.",
        "outcome": "Label: BREAK, REJECT or CHOP (uses the future; never a vector dimension).",
        "ambiguous": "One bar touched both thresholds and finer data could not resolve the order.",
        "horizon_complete": "The outcome horizon was fully observed within the session.",
    },
    "gold_normalization": {
        "dim": "Vector dimension index (0-based).",
        "feature": "Feature column name of this dimension.",
        "median": "Median of the feature over the history episodes (0 when never observed).",
        "iqr": "Interquartile range q75 - q25 (numpy linear percentiles); NaN when never observed.",
        "scale_used": "Divisor of the robust z-score: the IQR, or 1.0 where it is 0 or NaN.",
        "n_episodes": "History episodes the statistics were fitted on.",
        "n_sessions": "History sessions (trailing normalization_sessions before as_of).",
        "first_session": "Oldest history session.",
        "last_session": "Newest history session (always before as_of).",
        "vector_version": "Version of the vector schema answered: layout version [families of the index used].",
        "as_of": "Day D the statistics serve.",
    },
    "gold_signals": {
        **_KEY_DESCRIPTIONS,
        "approach_id": "Approach number within (session_date, level_kind): consecutive anchors, same direction.",
        **_PROBABILITY_DESCRIPTIONS,
        "effective_sample_size": "Kish effective sample size (sum w)^2 / sum w^2 of the neighbour weights.",
        "n_neighbours": "Neighbours retrieved (at most top_k, at most 2 per past session).",
        "base_break": "Partition base rate of BREAK (add-one smoothed); the kNN prior mean when knn_prior is partition_base_rate.",
        "base_reject": "Partition base rate of REJECT (add-one smoothed); the kNN prior mean when knn_prior is partition_base_rate.",
        "base_chop": "Partition base rate of CHOP (add-one smoothed); the kNN prior mean when knn_prior is partition_base_rate.",
        "p_break_smooth": "EMA of p_break along the approach, renormalized.",
        "p_reject_smooth": "EMA of p_reject along the approach, renormalized.",
        "p_chop_smooth": "EMA of p_chop along the approach, renormalized.",
        "answer_source": "blend (w, T fitted on earlier sessions), blend_default (model, default w, T = 1), knn (no model yet), no_history.",
        "knn_concentration": "alpha_0 of the kNN Dirichlet posterior: prior strength + sum of neighbour weights (sizes the interval).",
        "blend_weight": "w, the model's weight in the blend (null without a model).",
        "temperature": "T of the temperature scaling applied to the blend (null without a model).",
        "model_trained_through": "Last session the model saw (always before session_date); null without a model.",
    },
    "gold_evaluation": {
        "scope": "cumulative (episodes every model answered, all sessions so far), cumulative_all (every episode, no XGBoost column), cumulative_approach (the first anchor of each approach of cumulative's episodes), session (the day).",
        "model": "base_rate, class_mix (trailing), distance (lookup), distance_calibrated, knn, xgboost, answer_t1 (the blend at T = 1), answer (the calibrated blend).",
        "bss_base": "Brier skill score against the partition base rate; _lo/_hi: 90% session-bootstrap interval.",
        "bss_distance": "Brier skill score against the distance lookup; _lo/_hi: 90% session-bootstrap interval.",
        "best_baseline": "The strongest reference on these episodes (lowest Brier among base_rate, class_mix, distance, distance_calibrated).",
        "bss_best": "Brier skill score against best_baseline; _lo/_hi: 90% session-bootstrap interval.",
        "ece": "Classwise expected calibration error (10 bins).",
        "top_label_ece": "Top-label (confidence) expected calibration error (10 bins).",
    },
    "gold_signal_neighbours": {
        "session_date": "Session of the query episode.",
        "ts_event": "Anchor instant of the query episode (UTC).",
        "level_kind": "Level kind of the query.",
        "direction": "Direction of the query.",
        "time_bucket": "Time bucket of the query.",
        "rank": "1 = most similar neighbour.",
        "neighbour_session_date": "Session of the past setup.",
        "neighbour_ts_event": "Anchor instant of the past setup (UTC).",
        "similarity": "Cosine similarity of the normalized vectors.",
        "outcome": "What happened after the past setup: BREAK, REJECT or CHOP.",
    },
}
