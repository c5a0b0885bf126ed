"""gold_model: an XGBoost multiclass model of the outcome, trained as of day D on sessions before D.

Features (:func:`model_feature_names`): the full setup vector (NaN where a family is absent; XGBoost
learns a default direction for missing values, Chen & Guestrin 2016, "XGBoost: A Scalable Tree
Boosting System", KDD, sec. 3.4), one-hot level kind and the approach direction (the index partition
of the kNN answer, which the model sees as features). The distance to the level is the vector's
first dimension. Objective ``multi:softprob`` over OUTCOMES (BREAK, REJECT, CHOP).

Cadence: the model of D is trained on the first ``m`` of the ``n`` sessions before D, with
``m = f + c * floor((n - f) / c)`` (``f = model_min_sessions``, ``c = model_retrain_sessions``): the
first model once ``f`` sessions exist, then a new one every ``c`` sessions (for ``c = f`` this is
``c * floor(n / c)``); it never sees D, and a day whose window equals an earlier day's reuses that
model file. No model when ``n < f`` (the answer then falls back to the kNN, flagged in
``gold_signals.answer_source``).

Similarity weights (DESIGN.md "The answer": each dimension weighted by how much it tells about the
outcome): the share of the model's total split gain per vector dimension. Retrieval multiplies each
robust z-score by the square root of its weight before the L2 normalization, so the squared
Euclidean distance between normalized vectors, and with it cosine similarity, weighs dimension j by
w_j (the analog-ensemble practice, Delle Monache et al. 2013, "Probabilistic weather prediction
with an analog ensemble", Monthly Weather Review 141).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from spymaster_resources.lake_paths import LakePath, lake_path, load_directory, replace_directory

from spymaster_core.config import DIRECTIONS, LEVEL_KINDS, OUTCOMES, SpymasterConfig
from .retrieval import outcome_codes, with_approach_ids
from .vectors import vector_columns, vector_version

if TYPE_CHECKING:  # xgboost is imported where a model is trained or loaded: a second less for every process that never does
    import xgboost as xgb

MODEL_FILE = "model.json"
META_FILE = "meta.json"
_FORMAT = "gold-model-1"


def model_feature_names(config: SpymasterConfig) -> list[str]:
    """Feature names of the model matrix: the vector columns, ``kind_<LEVEL_KIND>`` one-hots, ``direction_up``."""
    return [*vector_columns(config), *(f"kind_{k}" for k in LEVEL_KINDS), "direction_up"]


def setup_features(vector: np.ndarray, level_kind: str, direction: str) -> np.ndarray:
    """Model features of one setup (float32, (1, D + 7)): its full-layout vector, the one-hot level kind, the UP flag.

    The same layout as :func:`feature_matrix`. Raises ValueError for an unknown level kind or direction.
    """
    if level_kind not in LEVEL_KINDS or direction not in DIRECTIONS:
        raise ValueError(f"unknown level kind or direction {level_kind!r}, {direction!r}")
    onehot = np.array([k == level_kind for k in LEVEL_KINDS], dtype=np.float32)
    return np.concatenate([np.asarray(vector, dtype=np.float32).ravel(), onehot, np.array([direction == "UP"], dtype=np.float32)])[None, :]


def feature_matrix(episodes: pl.DataFrame, config: SpymasterConfig) -> np.ndarray:
    """Model features of gold_episodes rows: float32 (n, len(model_feature_names)), NaN = missing.

    Input columns: vector (Array(Float32, D), the full layout), level_kind, direction.
    Raises ValueError if the vectors are not of the configured width or a level kind/direction is unknown.
    """
    dim = len(vector_columns(config))
    if episodes.height == 0:
        return np.zeros((0, dim + len(LEVEL_KINDS) + 1), dtype=np.float32)
    width = getattr(episodes.schema["vector"], "size", None)
    if width != dim:
        raise ValueError(f"episode vectors have width {width}, the configuration gives {dim}")
    kinds = episodes["level_kind"].to_numpy()
    directions = episodes["direction"].to_numpy()
    unknown = (set(kinds.tolist()) - set(LEVEL_KINDS)) | (set(directions.tolist()) - set(DIRECTIONS))
    if unknown:
        raise ValueError(f"unknown level kinds or directions {sorted(map(str, unknown))}")
    vectors = episodes["vector"].to_numpy().reshape(episodes.height, dim).astype(np.float32)
    onehot = (kinds[:, None] == np.asarray(LEVEL_KINDS)[None, :]).astype(np.float32)
    up = (directions == "UP").astype(np.float32)[:, None]
    return np.ascontiguousarray(np.hstack([vectors, onehot, up]))


def training_window(history_sessions: list[date], config: SpymasterConfig) -> list[date]:
    """The sessions the model of a day trains on: the first m of the sorted sessions before it (module
    docstring), of which the latest ``model_max_training_sessions`` (a year by default: training time
    stays bounded as history grows); [] = no model."""
    n, first, cadence = len(history_sessions), config.model_min_sessions, config.model_retrain_sessions
    if n < first:
        return []
    m = first + cadence * ((n - first) // cadence)
    return sorted(history_sessions)[:m][-config.model_max_training_sessions:]


def xgb_params(config: SpymasterConfig) -> dict[str, object]:
    """XGBoost booster parameters from the configuration (``multi:softprob``, 3 classes, seeded, hist)."""
    return {
        "objective": "multi:softprob",
        "num_class": len(OUTCOMES),
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "max_depth": config.xgb_max_depth,
        "eta": config.xgb_learning_rate,
        "min_child_weight": config.xgb_min_child_weight,
        "subsample": config.xgb_subsample,
        "colsample_bytree": config.xgb_colsample_bytree,
        "lambda": config.xgb_reg_lambda,
        "seed": config.xgb_seed,
        "nthread": 1,  # one thread: bit-identical models whatever the machine's core count
    }


@dataclass
class OutcomeModel:
    """A trained model and what it was trained on.

    ``booster``: the XGBoost booster; ``features``: model feature names (columns of
    :func:`feature_matrix`); ``training_sessions``: sorted session dates trained on (all before
    ``as_of``); ``n_episodes``; ``params`` (booster params plus ``num_boost_round``); ``as_of``: the
    first day this model may answer; ``vector_version``; ``gain``: total split gain per feature.
    """

    booster: xgb.Booster
    features: list[str]
    training_sessions: list[date]
    n_episodes: int
    params: dict[str, object]
    as_of: date
    vector_version: str
    gain: dict[str, float] = field(default_factory=dict)

    @property
    def trained_through(self) -> date:
        """The last session the model saw (always before :attr:`as_of`)."""
        return self.training_sessions[-1]

    def predict(self, episodes: pl.DataFrame, config: SpymasterConfig) -> np.ndarray:
        """P(BREAK, REJECT, CHOP) per episode: float64 (n, 3), rows sum to 1. Raises as :func:`feature_matrix`."""
        return self.predict_features(feature_matrix(episodes, config))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """P(BREAK, REJECT, CHOP) of a model feature matrix (n, len(features), NaN = missing): float64 (n, 3).

        ``Booster.inplace_predict`` (no DMatrix), the one prediction path of the batch and the live answer.
        Raises ValueError when the width is not the model's.
        """
        x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
        if x.shape[1] != len(self.features):
            raise ValueError(f"model features have width {x.shape[1]}, the model was trained on {len(self.features)}")
        if x.shape[0] == 0:
            return np.zeros((0, len(OUTCOMES)))
        p = np.asarray(self.booster.inplace_predict(x, missing=np.nan), dtype=np.float64).reshape(x.shape[0], len(OUTCOMES))
        return p / p.sum(axis=1, keepdims=True)

    def similarity_weights(self, config: SpymasterConfig) -> np.ndarray:
        """Weight per full-layout vector dimension: its share of the vector dimensions' total gain (float64 (D,), sums to 1).

        Uniform when no vector dimension was ever split on.
        """
        columns = vector_columns(config)
        gain = np.array([self.gain.get(c, 0.0) for c in columns], dtype=np.float64)
        if gain.sum() <= 0:
            return np.full(len(columns), 1.0 / len(columns))
        return gain / gain.sum()

    def save(self, directory: LakePath) -> LakePath:
        """Write ``model.json`` (XGBoost JSON format) and ``meta.json`` into ``directory`` (local or on
        object storage) atomically (``lake_paths.replace_directory``)."""

        def write(root: Path) -> None:
            self.booster.save_model(str(root / MODEL_FILE))
            (root / META_FILE).write_text(json.dumps(self.metadata(), indent=2))

        return replace_directory(lake_path(directory), write)

    def metadata(self) -> dict[str, object]:
        """The JSON-ready description stored beside the model (format, window, features, params, gain)."""
        return {
            "format": _FORMAT,
            "as_of": self.as_of.isoformat(),
            "vector_version": self.vector_version,
            "training_sessions": [d.isoformat() for d in self.training_sessions],
            "n_episodes": self.n_episodes,
            "features": self.features,
            "params": self.params,
            "gain": self.gain,
        }

    @classmethod
    def load(cls, directory: LakePath) -> "OutcomeModel":
        """Read a model written by :meth:`save`.

        Raises FileNotFoundError when a file is missing, ValueError naming the file when it is
        corrupt or of another format.
        """
        directory = lake_path(directory)
        return load_directory(directory, META_FILE, "gold_model", lambda root: cls._load_local(root, directory))

    @classmethod
    def _load_local(cls, root: Path, directory: LakePath) -> "OutcomeModel":
        """:meth:`load` from the local directory ``root`` (a copy of ``directory``, named in errors)."""
        meta_path, model_path = root / META_FILE, root / MODEL_FILE
        if not model_path.is_file():
            raise FileNotFoundError(f"gold_model incomplete: {directory / MODEL_FILE} does not exist")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{directory / META_FILE}: corrupt model metadata ({exc})") from None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{directory / META_FILE}: not a {_FORMAT} model description")
        import xgboost as xgb

        booster = xgb.Booster()
        try:
            booster.load_model(str(model_path))
        except xgb.core.XGBoostError as exc:
            raise ValueError(f"{directory / MODEL_FILE}: corrupt XGBoost model ({str(exc).splitlines()[0]})") from None
        return cls(
            booster=booster,
            features=list(meta["features"]),
            training_sessions=[date.fromisoformat(d) for d in meta["training_sessions"]],
            n_episodes=int(meta["n_episodes"]),
            params=dict(meta["params"]),
            as_of=date.fromisoformat(meta["as_of"]),
            vector_version=str(meta["vector_version"]),
            gain={k: float(v) for k, v in meta["gain"].items()},
        )

    def as_of_day(self, day: date) -> "OutcomeModel":
        """The same model serving ``day`` (a reuse under the cadence). Raises ValueError if it saw ``day`` or later."""
        if self.training_sessions and self.trained_through >= day:
            raise ValueError(f"point-in-time violation: a model trained through {self.trained_through} cannot answer {day}")
        return OutcomeModel(self.booster, self.features, self.training_sessions, self.n_episodes, self.params, day, self.vector_version, self.gain)


def sample_weights(history: pl.DataFrame, config: SpymasterConfig) -> np.ndarray | None:
    """Training weight of each row of ``history`` (sorted as it is trained on), or None for equal weights.

    ``model_sample_weighting`` "anchor": None (each anchor counts 1); "approach": 1 / (anchors of the
    row's approach, ``retrieval.with_approach_ids``), so every approach weighs 1 however long it is.
    Raises ValueError for another value.
    """
    if config.model_sample_weighting == "anchor":
        return None
    if config.model_sample_weighting != "approach":
        raise ValueError(f"model_sample_weighting must be 'anchor' or 'approach', got {config.model_sample_weighting!r}")
    keyed = history.select("session_date", "ts_event", "level_kind", "direction").with_row_index("_row")
    approach = ["session_date", "level_kind", "approach_id"]
    sized = with_approach_ids(keyed, config).with_columns(_w=1.0 / pl.len().over(approach)).sort("_row")
    return sized["_w"].to_numpy().astype(np.float32)


def train_model(history: pl.DataFrame, config: SpymasterConfig, as_of: date) -> OutcomeModel:
    """Train the outcome model on ``history`` (gold_episodes rows of sessions before ``as_of``).

    Uses rows of the configured vector layout only. Deterministic for a given history and config
    (seeded, one thread). Raises ValueError on a point-in-time violation (a row on or after
    ``as_of``), on an empty history, or on unknown outcomes.
    """
    history = history.filter(pl.col("vector_version") == vector_version(config))
    if history.height == 0:
        raise ValueError(f"no history episodes of layout {vector_version(config)} to train the model as of {as_of}")
    late = history.filter(pl.col("session_date") >= as_of)
    if late.height:
        raise ValueError(f"point-in-time violation: model as of {as_of} would train on sessions {sorted({d.isoformat() for d in late['session_date'].to_list()})}")
    import xgboost as xgb

    history = history.sort("session_date", "ts_event", "level_kind")
    features = model_feature_names(config)
    labels = outcome_codes(history["outcome"]).astype(np.int32)
    weights = sample_weights(history, config)
    dtrain = xgb.DMatrix(feature_matrix(history, config), label=labels, weight=weights, missing=np.nan, feature_names=features)
    params = xgb_params(config)
    booster = xgb.train(params, dtrain, num_boost_round=config.xgb_rounds)
    gain = {k: float(v) for k, v in booster.get_score(importance_type="total_gain").items()}
    return OutcomeModel(
        booster=booster,
        features=features,
        training_sessions=sorted(set(history["session_date"].to_list())),
        n_episodes=history.height,
        params={**params, "num_boost_round": config.xgb_rounds, **({"sample_weighting": config.model_sample_weighting} if weights is not None else {})},
        as_of=as_of,
        vector_version=vector_version(config),
        gain=gain,
    )
