"""Tuned parameter files: versioned values from ``spymaster tune``, used point in time.

A file records the last session its tuning saw (``tuned_through``). The configuration for day D
takes the values of the newest file whose tuning ended before D, else the defaults, so the
walk-forward scores stay honest: no tuned value used for D was chosen with D or a later session.

Files live in ``<home>/params/tuned-v<N>.json`` (N = 1, 2, ...; written atomically). A file shipped
with the package (``spymaster_core/tuned_default.json``), tuned on the embedded sample, serves later data the
same way (none ships today: see the README). Only :data:`TUNABLE_FIELDS` may be tuned: none of them changes the vector layout, so
history stays comparable across days with different tuned values.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .products import lake_subdir
from .config import SpymasterConfig, coerce_field
from .errors import SpymasterError

FORMAT = "spymaster-tuned-1"
SHIPPED_FILE = Path(__file__).resolve().parent / "tuned_default.json"

#: Fields a tuned file may set: retrieval (stage 1) and the model and blend (stage 2).
TUNABLE_FIELDS: tuple[str, ...] = (
    "top_k",
    "max_neighbours_per_session",
    "dirichlet_prior_strength",
    "knn_prior",
    "knn_candidates",
    "similarity_weighting",
    "similarity_block_weights",
    "similarity_dct_coefficients",
    "xgb_rounds",
    "xgb_max_depth",
    "xgb_learning_rate",
    "xgb_min_child_weight",
    "xgb_subsample",
    "xgb_colsample_bytree",
    "xgb_reg_lambda",
    "blend_sessions",
    "blend_default_weight",
    "calibration",
)


@dataclass(frozen=True)
class TunedParams:
    """One tuned parameter file: its path, version, the last session its tuning saw, and the values."""

    path: Path
    version: int
    tuned_through: date
    values: dict[str, object]


def params_dir(config: SpymasterConfig) -> Path:
    """Where ``spymaster tune`` writes the served product's versioned files (and its Optuna studies):
    ``<home>/params``, for a product other than ES ``<home>/params/<SYMBOL>`` (tuned values never
    cross products)."""
    root = Path(config.home) / "params"
    return root / config.product if lake_subdir(config.product) else root


def read_params(path: Path) -> TunedParams:
    """Read and check one file. Raises SpymasterError naming the file when it is unreadable, of
    another format, or sets a field that is not tunable."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        values = dict(raw["values"])
        tuned_through = date.fromisoformat(raw["tuned_through"])
        version = int(raw.get("version", 0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpymasterError(f"{path}: unreadable tuned parameter file ({exc})") from None
    unknown = sorted(set(values) - set(TUNABLE_FIELDS))
    if unknown:
        raise SpymasterError(f"{path}: sets fields that cannot be tuned (they would change the vector layout or labels): {unknown}")
    return TunedParams(path, version, tuned_through, values)


def available_params(config: SpymasterConfig) -> list[TunedParams]:
    """The shipped default and every file in :func:`params_dir` (or only ``config.tuned_params_file``
    when set), oldest tuning first."""
    if config.tuned_params_file:
        paths = [Path(config.tuned_params_file)]
    else:
        folder = params_dir(config)
        paths = ([SHIPPED_FILE] if SHIPPED_FILE.is_file() else []) + (sorted(folder.glob("tuned-v*.json")) if folder.is_dir() else [])
    found = [read_params(p) for p in paths]
    return sorted(found, key=lambda p: (p.tuned_through, p.version, str(p.path)))


def config_for_day(config: SpymasterConfig, day: date) -> tuple[SpymasterConfig, TunedParams | None]:
    """The configuration that serves ``day``: ``config`` with the values of the newest tuned file
    whose ``tuned_through`` is before ``day`` (None when there is none: the defaults serve)."""
    usable = [p for p in available_params(config) if p.tuned_through < day]
    if not usable:
        return config, None
    chosen = usable[-1]
    values = {name: coerce_field(getattr(config, name), value) for name, value in chosen.values.items()}
    return dataclasses.replace(config, **values), chosen


def write_params(config: SpymasterConfig, values: dict[str, object], tuned_through: date, provenance: dict[str, object]) -> Path:
    """Write the next version ``<home>/params/tuned-v<N>.json`` atomically; returns its path.

    Raises SpymasterError for a field that is not tunable.
    """
    unknown = sorted(set(values) - set(TUNABLE_FIELDS))
    if unknown:
        raise SpymasterError(f"cannot write tuned values for {unknown}: not tunable")
    folder = params_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    versions = [int(p.stem.split("-v")[-1]) for p in folder.glob("tuned-v*.json") if p.stem.split("-v")[-1].isdigit()]
    version = max(versions, default=0) + 1
    path = folder / f"tuned-v{version}.json"
    payload = {"format": FORMAT, "version": version, "tuned_through": tuned_through.isoformat(), "values": values, **provenance}
    fd, tmp = tempfile.mkstemp(prefix=".tuned-", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, default=str)
    os.replace(tmp, path)
    return path
