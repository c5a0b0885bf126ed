"""What Spymaster knew as of day D: normalization, model, setup index, distance lookup and blend fit.

Shared by the gold assets and the CLI so both answer with the same code path. Point in time: only
``gold_episodes`` and ``gold_signals`` partitions strictly before D are read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (pa.ipc)

from spymaster_resources.disk_cache import cache_dir
from spymaster_resources.file_memo import FileMemo
from spymaster_resources.lake import Lake
from spymaster_resources.lake_paths import LakePath, replace_directory, write_file_atomic

from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_core.errors import MissingPartitionError, SpymasterError
from .answer import KnownBefore, fit_blend_on_signals, probability_columns
from .class_mix import GROUPS, fit_class_mix, session_counts, sessions_needed
from .distance_baseline import distance_counts, distance_table_from_counts
from .history import history_before, history_fingerprint, history_until
from .model import META_FILE as MODEL_META, MODEL_FILE, OutcomeModel, train_model, training_window, xgb_params
from .normalization import NormalizationStats, fit_normalization, normalization_window, stats_from_frame
from .schema_indexes import SchemaIndexes
from .vectors import vector_columns, vector_version
from .walk_forward import similarity_weights_of

GOLD = "gold"


def fit_as_of(lake: Lake, day: date, config: SpymasterConfig) -> NormalizationStats:
    """Robust statistics for ``day`` from the episodes of ``normalization.normalization_window`` of the sessions before it
    (the trailing ``normalization_sessions``, refitted every ``normalization_refit_sessions`` once that window is full)."""
    window = normalization_window(lake.dates_before(GOLD, "gold_episodes", day), config)
    columns = vector_columns(config)

    def fit() -> NormalizationStats:
        history = lake.read_many(GOLD, "gold_episodes", window)
        if history is None:
            history = pl.DataFrame(schema={"session_date": pl.Date, "vector": pl.Array(pl.Float32, len(columns)), "vector_version": pl.Utf8})
        return fit_normalization(history.filter(pl.col("vector_version") == vector_version(config)), columns, config, as_of=day)

    # The window changes once per refit cadence: the days between refits take the same statistics,
    # fitted once (as_of is the only field that names the day; the fit checks the window is before it).
    stats = _WINDOW_STATS.get([lake.partition_path(GOLD, "gold_episodes", d) for d in window], fit, tag=config)
    _WINDOW_STATS.retain_used()
    return stats if stats.as_of == day else replace(stats, as_of=day)


#: Normalization statistics by the files of their window (which name the lake) and the configuration
#: (which fixes the columns and the vector version), for ``fit_as_of``.
_WINDOW_STATS: FileMemo[NormalizationStats] = FileMemo()


def stats_as_of(lake: Lake, day: date) -> NormalizationStats:
    """The materialized gold_normalization of ``day``.

    Raises:
        MissingPartitionError: gold_normalization was not materialized for ``day``.
    """
    return stats_from_frame(lake.read(GOLD, "gold_normalization", day))


def index_dir(lake: Lake, day: date) -> LakePath:
    """Directory of the saved setup index as of ``day``."""
    return lake.partition_dir(GOLD, "gold_setup_index", day)


#: The setup indexes each lake (by its root) last built, extended or loaded in this process: a
#: date-order walk (gold_setup_index, then gold_signals) extends it by one session at a time.
_RECENT_INDEXES: dict[str, SchemaIndexes] = {}

_SOLE_USER: ContextVar[bool] = ContextVar("spymaster_sole_user_of_indexes", default=False)


@contextmanager
def sole_user_of_indexes() -> Iterator[None]:
    """Inside this block the caller promises that no other code holds this process's recent setup
    index, so the next session's is that index extended in place (``SchemaIndexes.extended(in_place=True)``)
    instead of a copy of every earlier vector plus one session. The gold assets' bodies use it; the
    screen, which answers several days from threads, does not."""
    token = _SOLE_USER.set(True)
    try:
        yield
    finally:
        _SOLE_USER.reset(token)


def build_index_as_of(lake: Lake, day: date, stats: NormalizationStats, config: SpymasterConfig) -> SchemaIndexes:
    """Every episode before ``day`` (same vector layout), normalized with ``day``'s statistics and the
    learned similarity weights of the model as of ``day``, indexed per vector schema and partition.

    Between refits (same statistics and weights as the previous session's index, built on the same
    episodes) it is that index, as this process last held it or as saved, plus the previous
    session's episodes (:meth:`SchemaIndexes.extended`, equal to a rebuild bit for bit), so its cost
    does not grow with history; else it is rebuilt from every earlier session. ``origin`` of the
    result says which.
    """
    sessions = lake.dates_before(GOLD, "gold_episodes", day)
    weights, source = similarity_weights_of(model_as_of(lake, day, config), config)
    provenance = {"episodes": history_fingerprint(lake, day, ("gold_episodes",)), "normalization": stats.digest(), "robust_z_clip": config.robust_z_clip}
    recent = _RECENT_INDEXES.get(str(lake.root))
    if _built_as(recent, day, provenance, weights):
        return recent
    indexes = _extend_previous(lake, sessions[-1], day, stats, weights, provenance, config) if sessions else None
    if indexes is None:
        # The index this process held cannot become the day's: let it go before another is loaded or
        # built (at a decade each copy of the vectors is hundreds of MB).
        _RECENT_INDEXES.pop(str(lake.root), None)
        indexes = _extend_refit_copy(lake, sessions, day, stats, weights, provenance, config)
    if indexes is None:
        history = lake.read_many(GOLD, "gold_episodes", sessions)
        indexes = SchemaIndexes.build(history, stats, config, as_of=day, weights=weights, weights_source=source, provenance=provenance)
        del history
        _save_refit_copy(lake, indexes)
    _RECENT_INDEXES[str(lake.root)] = indexes
    return indexes


def refit_copy_dir(lake: Lake) -> Path:
    """Where the indexes built whole for ``lake`` are kept with their vectors, outside the lake (the
    user cache, ``disk_cache.cache_dir``): one subdirectory per day built (``YYYY-MM-DD``)."""
    return cache_dir() / "setup_index" / hashlib.sha256(str(lake.root).encode()).hexdigest()[:16]


#: The kept copies of one lake take at most this many bytes: the oldest go first (the newest always
#: stays). A range run's gold_setup_index walk keeps one copy per refit, which gold_signals' walk
#: then loads instead of building the same index again; past the budget it builds it again.
REFIT_COPIES_MAX_BYTES = 3 * 1024**3


def kept_refit_copies(lake: Lake) -> list[tuple[date, Path]]:
    """(day, directory) of every kept copy of ``lake``'s index, oldest first."""
    root = refit_copy_dir(lake)
    kept = [(_day_of(entry.name), entry) for entry in (root.iterdir() if root.is_dir() else ())]
    return sorted((day, entry) for day, entry in kept if day is not None and (entry / "manifest.json").is_file())


def _save_refit_copy(lake: Lake, indexes: SchemaIndexes) -> None:
    """Keep ``indexes`` (just built whole) for a later walk or process, as the copy of its day.

    gold_signals' walk of the same range loads it on that day instead of normalizing every earlier
    episode again; a new process (the daily job, a query) extends the latest one by the sessions
    since. Copies beyond :data:`REFIT_COPIES_MAX_BYTES` are removed, oldest first. Only a cache:
    failures are ignored."""
    if indexes.as_of is None:
        return
    root = refit_copy_dir(lake)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for entry in root.iterdir():  # the layout before dated copies: one copy at the root
            if entry.name != _ROOT_FILE and _day_of(entry.name) is None:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        indexes.save(root / indexes.as_of.isoformat(), vectors=True)
        (root / _ROOT_FILE).write_text(str(lake.root))
        copies = kept_refit_copies(lake)
        sizes = {directory: sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) for _, directory in copies}
        total = sum(sizes.values())
        for _, directory in copies[:-1]:
            if total <= REFIT_COPIES_MAX_BYTES:
                break
            shutil.rmtree(directory, ignore_errors=True)
            total -= sizes[directory]
        _remove_orphan_copies(root.parent)
    except OSError:
        pass


def _day_of(name: str) -> date | None:
    """The day a kept copy's directory is named after (``YYYY-MM-DD``), else None."""
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


_ROOT_FILE = "lake_root.txt"


def _remove_orphan_copies(parent: Path) -> None:
    """Remove the kept copies of local lakes that no longer exist (a removed data root, a benchmark's
    temporary one): a decade's copy is hundreds of MB."""
    for other in parent.iterdir():
        try:
            root = (other / _ROOT_FILE).read_text()
        except OSError:
            continue
        if "://" not in root and not Path(root).exists():
            shutil.rmtree(other, ignore_errors=True)


def _extend_refit_copy(lake: Lake, sessions: list[date], day: date, stats: NormalizationStats, weights, provenance: dict, config: SpymasterConfig) -> SchemaIndexes | None:
    """The latest kept copy of a day on or before ``day`` (:func:`_save_refit_copy`) extended by the
    sessions from its day to ``day``, when it was built exactly as ``day``'s index would be (same
    statistics, weights and earlier episodes, by the history fingerprint); else None. The copies
    before it are removed (a date-order walk that reached it needs none of them)."""
    copies = [(kept_day, directory) for kept_day, directory in kept_refit_copies(lake) if kept_day <= day]
    if not copies:
        return None
    kept_day, directory = copies[-1]  # an older one was built with older statistics or weights
    try:
        # The manifest first: a copy of other statistics (the walk past a refit) is not worth loading.
        manifest = json.loads((directory / "manifest.json").read_text())
        if (manifest.get("provenance") or {}).get("normalization") != provenance["normalization"]:
            return None
        kept = SchemaIndexes.load(directory, config)
    except (OSError, ValueError, KeyError):
        return None
    if kept.as_of != kept_day:
        return None
    earlier = {**provenance, "episodes": history_until(provenance["episodes"], kept.as_of)}
    if not _built_as(kept, kept.as_of, earlier, weights):
        return None
    for _, older in copies[:-1]:  # a date-order walk that has reached this copy needs none before it
        shutil.rmtree(older, ignore_errors=True)
    rest = [s for s in sessions if s >= kept.as_of]
    if not rest and kept.as_of == day:
        kept.provenance = provenance
        return kept
    # Extended even by no session (the sessions between its day and ``day`` were removed, e.g. failed):
    # the index must say the day it serves, which the point-in-time checks compare with the statistics'.
    return kept.extended(lake.read_many(GOLD, "gold_episodes", rest) if rest else None, stats, day, provenance, in_place=True)  # just loaded: nothing else holds it


def _built_as(indexes: SchemaIndexes | None, as_of: date, provenance: dict, weights) -> bool:
    """True when ``indexes`` are the index as of ``as_of`` built from the history, statistics and weights that ``provenance`` and ``weights`` describe."""
    if indexes is None or indexes.as_of != as_of:
        return False
    before = indexes.provenance
    same_vectors = before.get("normalization") == provenance["normalization"] and before.get("robust_z_clip") == provenance["robust_z_clip"]
    same_weights = (indexes.weights is None and weights is None) or (indexes.weights is not None and weights is not None and np.array_equal(indexes.weights, weights))
    return before.get("episodes") == provenance["episodes"] and same_vectors and same_weights


def _extend_previous(lake: Lake, previous: date, day: date, stats: NormalizationStats, weights, provenance: dict, config: SpymasterConfig) -> SchemaIndexes | None:
    """The index as of ``previous`` (this process's, else a saved one with its vectors) plus its episodes,
    when it was built exactly as ``day``'s would be; else None."""
    earlier = {**provenance, "episodes": history_before(provenance["episodes"], "gold_episodes", previous)}
    recent = _RECENT_INDEXES.get(str(lake.root))
    in_place = _SOLE_USER.get()
    if not _built_as(recent, previous, earlier, weights):
        recent = _saved_index(lake, previous, config)
        in_place = True  # just loaded: nothing else holds it
        if not _built_as(recent, previous, earlier, weights):
            return None
    elif in_place:
        _RECENT_INDEXES.pop(str(lake.root), None)  # retired by the extension below
    return recent.extended(lake.read(GOLD, "gold_episodes", previous), stats, day, provenance, in_place=in_place)


def _saved_index(lake: Lake, day: date, config: SpymasterConfig) -> SchemaIndexes | None:
    """The index of ``day`` saved with its vectors (older partitions), else None."""
    directory = index_dir(lake, day)
    try:
        if not (directory / "manifest.json").is_file() or not json.loads((directory / "manifest.json").read_text()).get("vectors_saved", True):
            return None
        return SchemaIndexes.load(directory, config)
    except (ValueError, FileNotFoundError):
        return None


def model_dir(lake: Lake, day: date) -> LakePath:
    """Directory of the saved gold_model as of ``day`` (model.json and meta.json, or only a meta.json saying there is none)."""
    return lake.partition_dir(GOLD, "gold_model", day)


#: Models trained ahead of the date-order walk by a range run (:func:`pretrain_models`), by :func:`_window_key`.
PRETRAINED: dict[tuple, OutcomeModel] = {}


def _training_signature(window: list[date], config: SpymasterConfig) -> tuple:
    """What makes two trainings the same model: the window, the vector layout and the XGBoost parameters."""
    return (tuple(window), vector_version(config), config.xgb_rounds, config.model_sample_weighting, json.dumps(xgb_params(config), sort_keys=True, default=str))


def _window_key(window: list[date], day: date, config: SpymasterConfig) -> tuple:
    return (_training_signature(window, config), day)


def _saved_model_with(lake: Lake, day: date, window: list[date], config: SpymasterConfig) -> tuple[OutcomeModel, date] | None:
    """A gold_model saved before ``day`` trained on exactly ``window`` with ``config``'s parameters, and its day."""
    for earlier in reversed(lake.dates_before(GOLD, "gold_model", day, marker=MODEL_META)):
        try:
            previous = OutcomeModel.load(model_dir(lake, earlier))
        except (FileNotFoundError, ValueError):
            continue
        same_training = previous.params.get("num_boost_round") == config.xgb_rounds and previous.params.get("sample_weighting", "anchor") == config.model_sample_weighting
        if previous.training_sessions == window and previous.vector_version == vector_version(config) and same_training:
            if {k: v for k, v in previous.params.items() if k not in ("num_boost_round", "sample_weighting")} == xgb_params(config):
                return previous, earlier
        if previous.training_sessions and previous.training_sessions[-1] < window[-1]:
            return None  # older models have shorter windows still
    return None


def fit_model_as_of(lake: Lake, day: date, config: SpymasterConfig) -> tuple[OutcomeModel | None, str]:
    """The model as of ``day`` under the retraining cadence, and how it was obtained.

    The training window is ``model.training_window`` of the gold_episodes sessions before ``day``.
    Returns (None, reason) when the window is empty; (model, "reused from D0") when an earlier
    saved model has exactly that window (loaded, not retrained); else (model, "trained"), taken from
    :data:`PRETRAINED` when a range run trained it ahead (the same deterministic training).
    """
    sessions = lake.dates_before(GOLD, "gold_episodes", day)
    window = training_window(sessions, config)
    if not window:
        return None, f"{len(sessions)} earlier sessions; a model needs {config.model_min_sessions}"
    saved = _saved_model_with(lake, day, window, config)
    if saved is not None:
        return saved[0].as_of_day(day), f"reused from {saved[1]}"
    pretrained = PRETRAINED.pop(_window_key(window, day, config), None)
    if pretrained is not None:
        return pretrained, "trained"
    history = lake.read_many(GOLD, "gold_episodes", window)
    return train_model(history, config, as_of=day), "trained"


def train_window(home: str, window: list[date], day: date, product: str = "") -> OutcomeModel:
    """Pool worker of :func:`pretrain_models`: product ``product``'s model as of ``day`` trained on ``window`` (the day's configuration)."""
    from spymaster_resources import SpymasterResource

    spymaster = SpymasterResource(home=home, workers=1, product=product)
    config, _ = spymaster.config_for_day(day)
    return train_model(spymaster.lake.read_many(GOLD, "gold_episodes", window), config, as_of=day)


def pretrain_models(lake: Lake, home: str, days: list[date], config_for_day, executor, product: str = "") -> int:
    """Train, in ``executor``'s processes, the models the date-order walk over ``days`` would train.

    A range run's gold_model walks its sessions in date order, and a retrain on a year of history
    takes seconds; the windows to train are known once gold_episodes is built, and independent, so
    they are trained side by side here and put in :data:`PRETRAINED` for the walk (identical
    models: training is deterministic, one thread each). ``config_for_day(day)`` returns the day's
    configuration. A training that fails here is left to the walk, which reports it for its session.
    Returns the number of models trained ahead.
    """
    episodes = lake.dates(GOLD, "gold_episodes")
    planned: dict[tuple, tuple[list[date], date]] = {}
    windows: set[tuple] = set()
    for day in days:
        config = config_for_day(day)
        window = training_window([d for d in episodes if d < day], config)
        signature = _training_signature(window, config)
        if not window or signature in windows:
            continue  # no model, or a later day of a window the walk reuses
        windows.add(signature)
        if _saved_model_with(lake, day, window, config) is None:
            planned[_window_key(window, day, config)] = (window, day)
    futures = {key: executor.submit(train_window, home, window, day, product) for key, (window, day) in planned.items()}
    trained = 0
    for key, future in futures.items():
        try:
            PRETRAINED[key] = future.result()
            trained += 1
        except Exception:  # noqa: BLE001  (the walk trains this window again and reports the error for its session)
            continue
    return trained


def model_as_of(lake: Lake, day: date, config: SpymasterConfig) -> OutcomeModel | None:
    """The saved model as of ``day`` (None when the partition records that there is none).

    A missing partition or a missing or corrupt model file is rebuilt from the lake (same window,
    same deterministic training) and not written back. Raises SpymasterError naming the file when
    the partition's description is unreadable.
    """
    directory = model_dir(lake, day)
    meta = directory / "meta.json"
    if meta.is_file():
        try:
            description = json.loads(meta.read_text())
        except json.JSONDecodeError as exc:
            raise SpymasterError(f"{meta}: corrupt gold_model description ({exc}); rematerialize gold_model for {day}") from None
        if description.get("model") is None and description.get("format") == NO_MODEL_FORMAT:
            return None
        try:
            model = _load_model(directory)
            if model.as_of == day:
                return model
        except (FileNotFoundError, ValueError):
            pass  # rebuilt below from the lake
    model, _ = fit_model_as_of(lake, day, config)
    return model


#: The models this process loaded lately, by directory, with the identity of their files: the index
#: and the signals of a day both need its model, and a file is loaded once while it is unchanged.
_LOADED_MODELS: FileMemo[OutcomeModel] = FileMemo(max_entries=8)


def _load_model(directory: LakePath) -> OutcomeModel:
    """``OutcomeModel.load(directory)`` through a small per-process memo keyed by the files' identity."""
    return _LOADED_MODELS.get([directory / name for name in (MODEL_META, MODEL_FILE)], lambda: OutcomeModel.load(directory))


NO_MODEL_FORMAT = "gold-model-none-1"


def save_no_model(lake: Lake, day: date, reason: str) -> LakePath:
    """Record in gold_model's partition of ``day`` that there is no model, and why (atomic directory swap)."""
    note = {"format": NO_MODEL_FORMAT, "as_of": day.isoformat(), "model": None, "reason": reason}
    return replace_directory(model_dir(lake, day), lambda root: (root / "meta.json").write_text(json.dumps(note, indent=2)))


def blend_fit_as_of(lake: Lake, day: date, config: SpymasterConfig):
    """w and T for ``day``, fitted on the gold_signals of the sessions before it joined with their outcomes.

    Only the trailing ``blend_sessions`` sessions with a model probability are read (what
    ``fit_blend_on_signals`` keeps), found walking back from ``day``: the cost does not grow with
    history. Each session's joined rows are kept in this process by the identity of its two files
    (:func:`_blend_rows`), so a date-order walk reads and joins a session once, not once per day it serves.
    """
    dates = lake.dates_before(GOLD, "gold_signals", day)
    if not dates or "p_xgb_break" not in lake.scan(GOLD, "gold_signals", dates[0]).collect_schema():
        return fit_blend_on_signals(None, config)  # no history, or signals written before the model existed
    used: list[pl.DataFrame] = []
    # Walking back from the day; sessions whose episodes are gone are left out.
    for session in reversed(dates):
        if len(used) == config.blend_sessions:
            break
        if not lake.exists(GOLD, "gold_episodes", session):
            continue
        has_model, rows = _blend_rows(lake, session)
        if has_model:
            used.append(rows)
    _BLEND_ROWS.retain_used()
    if not used:
        return fit_blend_on_signals(None, config)
    return fit_blend_on_signals(pl.concat(used[::-1], how="vertical_relaxed"), config)


#: One session's rows for the blend fit (whether it has a model probability, its joined rows) by its
#: gold_signals and gold_episodes files: a rewritten partition is read again.
_BLEND_ROWS: FileMemo[tuple[bool, pl.DataFrame]] = FileMemo()


def _blend_rows(lake: Lake, session: date) -> tuple[bool, pl.DataFrame]:
    """(True when some row of ``session`` has p_xgb_*, its gold_signals forecasts joined with the
    outcomes, in the signals' row order) for :func:`blend_fit_as_of`."""

    def read() -> tuple[bool, pl.DataFrame]:
        keys = ["session_date", "ts_event", "level_kind"]
        signals = lake.read_many(GOLD, "gold_signals", [session], [*keys, *probability_columns("p_knn_"), *probability_columns("p_xgb_"), *probability_columns("p_dist_")])
        outcomes = lake.read_many(GOLD, "gold_episodes", [session], [*keys, "outcome"])
        return signals["p_xgb_break"].is_not_null().any(), signals.join(outcomes, on=keys, how="inner", maintain_order="left")

    return _BLEND_ROWS.get([lake.partition_path(GOLD, "gold_signals", session), lake.partition_path(GOLD, "gold_episodes", session)], read)


def known_before_from_lake(lake: Lake, day: date, config: SpymasterConfig) -> KnownBefore:
    """Everything the gold assets know before ``day``, read from the lake (the CLI and gold_signals share it).

    Raises:
        MissingPartitionError: gold_normalization or the index of ``day`` was not materialized.
    """
    return KnownBefore(
        as_of=day,
        indexes=index_as_of(lake, day, config),
        stats=stats_as_of(lake, day),
        model=model_as_of(lake, day, config),
        distance_table=distance_table_from_counts(distance_counts_as_of(lake, day, config), config),
        blend_fit=blend_fit_as_of(lake, day, config),
        class_mix=class_mix_as_of(lake, day, config),
    )


#: Outcome counts of one gold_episodes partition (``class_mix.session_counts``) by its file: the
#: date-order walk counts each session once, not once for each of the 80 days that read it.
_SESSION_CLASS_COUNTS: FileMemo[np.ndarray] = FileMemo()


def class_mix_as_of(lake: Lake, day: date, config: SpymasterConfig) -> pl.DataFrame:
    """The trailing class mix serving ``day`` (``class_mix.fit_class_mix``), from the outcomes of the
    trailing ``class_mix.sessions_needed`` gold_episodes sessions before it only (a flat cost per day)."""
    sessions = lake.dates_before(GOLD, "gold_episodes", day)[-sessions_needed(config):]
    counts = [
        _SESSION_CLASS_COUNTS.get(
            [lake.partition_path(GOLD, "gold_episodes", session)],
            lambda: session_counts(lake.read_many(GOLD, "gold_episodes", [session], ["level_kind", "direction", "outcome"])),  # noqa: B023 (called at once)
        )
        for session in sessions
    ]
    _SESSION_CLASS_COUNTS.retain_used()
    return fit_class_mix(np.stack(counts) if counts else np.zeros((0, len(GROUPS), len(OUTCOMES)), dtype=np.int64), config)


#: Counts over every earlier episode each lake (by its root) and count last reached in this process:
#: (the day, the episodes' fingerprint, the counts). A date-order walk adds one session a day.
_CARRIED_COUNTS: dict[tuple[str, str], tuple[date, dict, pl.DataFrame]] = {}
_DISTANCE_COLUMNS = {"level_kind": pl.String, "direction": pl.String, "distance_atr": pl.Float64, "outcome": pl.String}


def carried_counts(lake: Lake, day: date, name: str, columns: dict[str, pl.DataType], count: Callable[[pl.DataFrame], pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """``count`` of the ``columns`` of every gold_episodes row before ``day``, without reading every earlier session.

    ``count`` maps episodes to integer counts grouped by ``keys`` (any other column is a count); it
    must be additive, so the counts of two sets of sessions summed per key equal those of their
    union. Carried: the counts this process last reached (``name`` tells the counts apart), else
    those an earlier process kept (:func:`_counts_copy_path`), as of a day D' <= ``day`` whose
    history the lake still holds unchanged (by the history fingerprint), plus the sessions in
    [D', ``day``); else counted from every earlier session. Integer sums: every way gives the same
    frame, sorted by ``keys``.
    """
    sessions = lake.dates_before(GOLD, "gold_episodes", day)
    fingerprint = history_fingerprint(lake, day, ("gold_episodes",))
    slot = (str(lake.root), name)
    recent = _CARRIED_COUNTS.get(slot)
    if recent is None or recent[0] > day:
        recent = _load_counts_copy(lake, name)
    if recent is not None and recent[0] == day and recent[1] == fingerprint:
        _CARRIED_COUNTS[slot] = recent
        return recent[2]
    counts = None
    if recent is not None and recent[0] <= day:
        if recent[1] == history_until(fingerprint, recent[0]):
            rest = [s for s in sessions if s >= recent[0]]
            if rest:
                added = count(lake.read_many(GOLD, "gold_episodes", rest, list(columns)))
                both = pl.concat([recent[2], added.select(recent[2].columns).cast(recent[2].schema)])
                counts = both.group_by(keys).agg(pl.exclude(keys).sum()).sort(keys)
            else:
                counts = recent[2]
    if counts is None:
        history = lake.read_many(GOLD, "gold_episodes", sessions, list(columns))
        counts = count(history if history is not None else pl.DataFrame(schema=columns)).sort(keys)
    _CARRIED_COUNTS[slot] = (day, fingerprint, counts)
    _save_counts_copy(lake, name, day, fingerprint, counts)
    return counts


def _counts_copy_path(lake: Lake, name: str) -> Path:
    """The counts ``name`` of ``lake`` last reached by any process, kept outside the lake (the user cache)."""
    return cache_dir() / "counts" / f"{hashlib.sha256(str(lake.root).encode()).hexdigest()[:16]}-{name}.arrow"


def _save_counts_copy(lake: Lake, name: str, day: date, fingerprint: dict, counts: pl.DataFrame) -> None:
    """Keep (day, fingerprint, counts) for a later process (Arrow IPC, the day and fingerprint in its
    schema metadata; temporary file, then rename). Only a cache: failures are ignored."""
    table = counts.to_arrow().replace_schema_metadata({"day": day.isoformat(), "fingerprint": json.dumps(fingerprint)})

    def write(staged: Path) -> None:
        with pa.OSFile(str(staged), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    try:
        write_file_atomic(_counts_copy_path(lake, name), write)
    except OSError:
        pass


def _load_counts_copy(lake: Lake, name: str) -> tuple[date, dict, pl.DataFrame] | None:
    """(day, fingerprint, counts) of :func:`_save_counts_copy`, or None when none is readable."""
    try:
        with pa.memory_map(str(_counts_copy_path(lake, name))) as source:
            table = pa.ipc.open_file(source).read_all()
        meta = table.schema.metadata or {}
        day, fingerprint = date.fromisoformat(meta[b"day"].decode()), json.loads(meta[b"fingerprint"])
        return day, fingerprint, pl.from_arrow(table.replace_schema_metadata(None))
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


def distance_counts_as_of(lake: Lake, day: date, config: SpymasterConfig) -> pl.DataFrame:
    """Outcome counts per distance cell of every episode before ``day`` (``distance_baseline.distance_counts``), carried (:func:`carried_counts`)."""
    return carried_counts(lake, day, "distance", _DISTANCE_COLUMNS, lambda episodes: distance_counts(episodes, config), ["level_kind", "direction", "distance_bin"])


def index_as_of(lake: Lake, day: date, config: SpymasterConfig) -> SchemaIndexes:
    """The setup indexes as of ``day``: this process's when it holds them, a saved copy with vectors
    (older partitions), else built from the lake (gold_setup_index keeps only the manifests: the
    vectors are the gold_episodes partitions, normalized with the day's statistics and weights).

    Raises:
        MissingPartitionError: gold_normalization of ``day`` was not materialized.
    """
    saved = _saved_index(lake, day, config)
    if saved is not None:
        return saved
    if not lake.exists(GOLD, "gold_normalization", day):
        raise MissingPartitionError(f"no setup index for {day}: materialize gold_normalization and gold_setup_index for {day} first")
    return build_index_as_of(lake, day, stats_as_of(lake, day), config)
