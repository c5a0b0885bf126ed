"""The raw-files sensor: materialize every trading session whose DBN files under ``raw/`` are new or changed.

Each tick lists the DBN files (``*.dbn``, ``*.dbn.zst``) under the data root's ``raw/`` and compares
their (size, mtime) with the cursor. A new or changed file is mapped to the sessions whose bronze
assets read it, using the same rules as bronze (a ``definition`` file by its header request range,
from 24 h before a session's open to its close; any other schema by its records' ts_event range
inside the session's [18:00 ET previous day, 17:00 ET) bounds). Sessions without regular-hours data
(``bronze.ingest.sessions_with_rth_data``) are skipped. For each remaining session the sensor requests
``materialize_session_job`` for its partition with

    run_key = "<YYYY-MM-DD>:<path>:<size>:<mtime_ns>;..."   (every raw file that session reads)

so a run is requested once per state of a session's raw input, and resetting the cursor does not
re-run a session whose files did not change (Dagster drops a run key it has already seen).
``RANGE_RUN_MIN_SESSIONS`` or more consecutive sessions requested by one tick (many files dropped
at once) are one run over their partition range (``group_into_ranges``; run key ``<first>..<last>:<hash of the sessions' keys>``).

Bronze partitions are never rewritten by default (``BronzeConfig.overwrite`` false). The run config
therefore sets ``overwrite: true`` on every bronze asset when the session's input changed after its
bronze may have been written:
  - a file already in the cursor changed (size or mtime): a corrected or re-downloaded file;
  - a new file lands for a session whose bronze is already in the lake (e.g. the previous UTC day's
    file arriving after the session was materialized from the next day's file alone).
A session seen for the first time (no bronze yet) runs with the default config. Deleting a raw file
requests nothing (raw files are often archived once bronze holds them).

A session whose partition does not exist yet (a ``DailyPartitionsDefinition`` partition appears
once its day has ended in America/Chicago) is kept in the cursor as pending and requested on the
first tick at which it exists; a session before the first partition is dropped with a log line.
While any DBN file cannot be read (a copy in progress, a truncated file) the sensor requests nothing
and does not advance its cursor: the SkipReason names the file, and bronze would fail on it anyway.
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dagster import (
    AssetsDefinition,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TimeWindowPartitionsDefinition,
    load_assets_from_modules,
    sensor,
)

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from spymaster_resources import SpymasterResource

from ..bronze import assets as bronze_assets
from ..bronze import options_assets as bronze_options_assets
from spymaster_resources.lake_paths import LakePath
from spymaster_resources.raw_files import DbnFileInfo, _ns
from ..availability import absent_assets, absent_everywhere, absent_observation
from ..bronze.ingest import file_span, sessions_with_rth_data
from spymaster_core.config import SpymasterConfig
from spymaster_core.products import LEGACY_PRODUCT
from spymaster_core.errors import RawDataError
from ..partitions import trading_day_partitions
from ..sessions import session_bounds_utc, trading_sessions

#: Default seconds between sensor ticks; ``SPYMASTER_RAW_SENSOR_INTERVAL_SECONDS`` overrides it.
DEFAULT_MINIMUM_INTERVAL_SECONDS = 60
CURSOR_VERSION = 1
#: A tick finding at least this many consecutive sessions requests one range run for them (a
#: backfill dropped into raw/); fewer (the daily landing) keep one run per session and its own run key.
RANGE_RUN_MIN_SESSIONS = 10
#: Tag on each requested run: "true" when its bronze partitions are rewritten.
OVERWRITE_TAG = "spymaster/bronze_overwrite"

# (path, size, mtime_ns) -> trade dates reading that file. Per process, like the raw catalog: the
# daemon's code server keeps it between ticks, so a definition file's header is read once per version.
_SESSIONS_OF_FILE: dict[tuple[str, int, int], tuple[date, ...]] = {}


def _utc_date(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).date()


def sessions_reading_file(info: DbnFileInfo, config: SpymasterConfig) -> list[date]:
    """Trade dates of the CME sessions whose bronze assets read ``info``'s file, ascending.

    Mirrors bronze's file selection: a ``definition`` file is read by session D when its header
    request range (``ingest.file_span``) overlaps [open(D) - 24 h, close(D)) (as
    ``ingest.definition_files_for_session``); a file of any other schema when some record ts_event
    lies in [open(D), close(D)) (as ``RawCatalog.files_for_window``). open/close are
    ``sessions.session_bounds_utc`` (18:00 ET the day before, 17:00 ET). Holidays and weekends are
    never returned (``sessions.trading_sessions``). A file with no records returns [].
    """
    if info.schema == "definition":
        span = file_span(info)
        if span is None:
            return []
        lo, hi = span
        look_back = timedelta(days=1)
    else:
        if info.ts_min is None or info.ts_max is None:
            return []
        lo, hi = info.ts_min, info.ts_max + 1
        look_back = timedelta(0)
    # Session D opens on D-1 (evening), and a definition file also serves the session after that.
    candidates = trading_sessions(_utc_date(lo) - timedelta(days=1), _utc_date(hi - 1) + timedelta(days=3), config)
    out = []
    for day in candidates:
        start, end = session_bounds_utc(day, config)
        if _ns(start - look_back) < hi and lo < _ns(end):
            out.append(day)
    return out


def _sessions_of(info: DbnFileInfo, config: SpymasterConfig) -> tuple[date, ...]:
    key = (str(info.path), info.size, info.mtime_ns)
    if key not in _SESSIONS_OF_FILE:
        _SESSIONS_OF_FILE[key] = tuple(sessions_reading_file(info, config))
    return _SESSIONS_OF_FILE[key]


@dataclass(frozen=True)
class RawFilesCursor:
    """The sensor's memory: every DBN file seen (path relative to raw/ -> (size, mtime_ns)), and the
    sessions waiting for their partition to exist (trade date ISO -> overwrite bronze)."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    pending: dict[str, bool] = field(default_factory=dict)

    def to_json(self) -> str:
        """Compact, key-sorted JSON (stable across ticks, so an unchanged state gives the same text)."""
        return json.dumps(
            {"version": CURSOR_VERSION, "files": {k: list(v) for k, v in self.files.items()}, "pending": self.pending},
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> "RawFilesCursor":
        """Parse a cursor; None or "" (a new or reset sensor) is the empty cursor.

        Raises:
            ValueError: the text is not a cursor of this version (clear it in the UI to start over).
        """
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {CURSOR_VERSION}")
            files = {str(k): (int(v[0]), int(v[1])) for k, v in data["files"].items()}
            pending = {str(k): bool(v) for k, v in data["pending"].items()}
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"raw_files_sensor cursor is not readable ({exc}); reset the cursor to rescan raw/") from exc
        return cls(files=files, pending=pending)


@dataclass(frozen=True)
class SessionRunPlan:
    """One run to request: a session's partition, its run key and whether bronze is rewritten."""

    partition_key: str
    run_key: str
    overwrite_bronze: bool


@dataclass(frozen=True)
class RawFilesPlan:
    """What one sensor tick does: the runs to request, the next cursor, and why sessions were left out."""

    runs: list[SessionRunPlan]
    cursor: RawFilesCursor
    notes: list[str]
    changed_files: list[str]


def plan_session_runs(
    previous: RawFilesCursor,
    infos: Iterable[DbnFileInfo],
    raw_dir: Path,
    config: SpymasterConfig,
    rth_sessions: Callable[[date, date], list[date]],
    bronze_written: Callable[[date], bool],
    partitions_def: TimeWindowPartitionsDefinition,
) -> RawFilesPlan:
    """Decide the runs for the current state of ``raw/`` (pure apart from the callables).

    Args:
        previous: the cursor of the last tick.
        infos: every DBN file of the dataset now under ``raw_dir`` (``RawCatalog.files()``).
        rth_sessions: ``(start, end) -> trade dates in [start, end] with regular-hours data``.
        bronze_written: whether any bronze table of a session is already in the lake.
        partitions_def: the trading-day partitions; evaluated at the current partition-loading time.

    Returns:
        Runs ordered by partition key, with run_key ``"<key>:<fingerprint>"`` where the fingerprint
        lists ``relative_path:size:mtime_ns`` of every file the session reads, sorted by path.
    """
    infos = list(infos)
    rel = {str(i.path): i.path.relative_to(raw_dir).as_posix() for i in infos}
    current = {rel[str(i.path)]: (i.size, i.mtime_ns) for i in infos}

    # Sessions touched by a new or changed file; True = a file it reads changed (bronze may be stale).
    touched: dict[date, bool] = {}
    changed_files = []
    for info in infos:
        name = rel[str(info.path)]
        seen = previous.files.get(name)
        if seen == current[name]:
            continue
        changed_files.append(name)
        for day in _sessions_of(info, config):
            touched[day] = touched.get(day, False) or seen is not None
    for key, overwrite in previous.pending.items():
        day = date.fromisoformat(key)
        touched[day] = touched.get(day, False) or overwrite

    notes: list[str] = []
    if touched:
        with_rth = set(rth_sessions(min(touched), max(touched)))
        for day in sorted(set(touched) - with_rth):
            notes.append(f"{day}: no regular-hours bars in raw/, not requested")
            del touched[day]

    first_key = partitions_def.get_first_partition_key()
    last_key = partitions_def.get_last_partition_key()
    runs: list[SessionRunPlan] = []
    pending: dict[str, bool] = {}
    readers: dict[date, list[str]] | None = None
    for day in sorted(touched):
        key = day.isoformat()
        if not partitions_def.has_partition_key(key):
            if last_key is None or key > last_key:
                # Its partition appears once the day ends (America/Chicago): request it then.
                pending[key] = touched[day]
                notes.append(f"{key}: partition does not exist yet, pending")
            else:
                notes.append(f"{key}: outside the trading-day partitions (first {first_key}), not requested")
            continue
        if readers is None:
            readers = {}
            for info in infos:
                for d in _sessions_of(info, config):
                    readers.setdefault(d, []).append(rel[str(info.path)])
        fingerprint = ";".join(f"{name}:{current[name][0]}:{current[name][1]}" for name in sorted(readers.get(day, [])))
        runs.append(SessionRunPlan(key, f"{key}:{fingerprint}", touched[day] or bronze_written(day)))
    return RawFilesPlan(runs=runs, cursor=RawFilesCursor(files=current, pending=pending), notes=notes, changed_files=changed_files)


def group_into_ranges(runs: list[SessionRunPlan], partitions_def: TimeWindowPartitionsDefinition) -> list[list[SessionRunPlan]]:
    """Group planned session runs into ranges of consecutive partitions with the same bronze overwrite.

    Each group becomes one run request: a single session keeps its own partition run; several
    consecutive sessions are one range run (``BackfillPolicy.single_run`` on every session asset).
    """
    keys = partitions_def.get_partition_keys() if runs else []
    position = {k: i for i, k in enumerate(keys)}
    groups: list[list[SessionRunPlan]] = []
    for run in sorted(runs, key=lambda r: r.partition_key):
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and previous.overwrite_bronze == run.overwrite_bronze
            and position.get(run.partition_key, -10) == position.get(previous.partition_key, -10) + 1
        ):
            groups[-1].append(run)
        else:
            groups.append([run])
    return groups


def bronze_overwrite_run_config() -> dict:
    """Run config setting ``overwrite: true`` on every bronze asset taking :class:`BronzeConfig`.

    The bronze assets are found in the bronze modules (every op whose config has ``overwrite``), so
    a bronze asset added later is covered without editing this list.
    """
    ops = sorted(
        a.op.name
        for a in load_assets_from_modules([bronze_assets, bronze_options_assets])
        if isinstance(a, AssetsDefinition) and "overwrite" in getattr(a.op.config_schema.config_type, "fields", {})
    )
    return {"ops": {name: {"config": {"overwrite": True}} for name in ops}}


def _bronze_written(home_lake: LakePath) -> Callable[[date], bool]:
    def written(day: date) -> bool:
        return any((home_lake / "bronze").glob(f"*/date={day.isoformat()}/*.parquet"))

    return written


def split_cursor(text: str | None) -> dict[str, str | None]:
    """The sensor cursor per product: ES's (the legacy product's) fields at the top level, as before
    products existed, and every other product's cursor under ``"products"``."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {LEGACY_PRODUCT: text}  # RawFilesCursor.from_json says what is wrong with it
    others = data.pop("products", {}) if isinstance(data, dict) else {}
    return {LEGACY_PRODUCT: json.dumps(data, sort_keys=True, separators=(",", ":")), **others}


def join_cursor(cursors: dict[str, str]) -> str:
    """The inverse of :func:`split_cursor`."""
    top = json.loads(cursors.get(LEGACY_PRODUCT) or RawFilesCursor().to_json())
    others = {p: c for p, c in sorted(cursors.items()) if p != LEGACY_PRODUCT}
    if others:
        top["products"] = others
    return json.dumps(top, sort_keys=True, separators=(",", ":"))


def build_raw_files_sensor(minimum_interval_seconds: int = DEFAULT_MINIMUM_INTERVAL_SECONDS, products: tuple[str, ...] | None = None):
    """The ``raw_files_sensor`` with a given minimum interval between ticks (seconds), requesting the
    session jobs of ``products`` (default: the code location's, ``product_graph.GRAPH_PRODUCTS``)."""
    from ..product_graph import GRAPH_PRODUCTS, product_session_job, session_job_name

    graph_products = tuple(products or GRAPH_PRODUCTS)

    @sensor(
        name="raw_files_sensor",
        jobs=[product_session_job(p) for p in graph_products],
        minimum_interval_seconds=minimum_interval_seconds,
        description="Materialize each trading session of each configured product whose DBN files under raw/ are new or changed.",
    )
    def raw_files_sensor(context: SensorEvaluationContext, spymaster: SpymasterResource):
        base = spymaster.config
        raw_dir = base.raw_dir
        if not raw_dir.is_dir():
            return SkipReason(f"{raw_dir} does not exist: put Databento DBN files there")
        cursors = split_cursor(context.cursor)
        requests, reasons, observations = [], [], []
        for product in base.products:
            if product not in graph_products:
                reasons.append(f"{product}: not a product of this code location (products: {', '.join(graph_products)}); restart it after changing config.json")
                continue
            scoped = spymaster.for_product(product)
            try:
                product_requests, cursors[product], reason, absent = _product_tick(context, scoped, cursors.get(product), session_job_name(product))
            except RawDataError as exc:
                # A copy in progress or a broken file: wait (cursor unchanged), bronze would fail on it.
                return SkipReason(f"not requesting runs while a raw file is unreadable: {exc}")
            requests.extend(product_requests)
            observations.extend(absent)
            if reason:
                reasons.append(reason if len(base.products) == 1 else f"{product}: {reason}")
        cursor = join_cursor(cursors)
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor, asset_events=observations)
        return SensorResult(skip_reason=SkipReason("; ".join(reasons)), cursor=cursor)

    return raw_files_sensor


def _selection_with_data(catalog, config: SpymasterConfig, keys: list[str]) -> tuple[list | None, dict[str, str]]:
    """(the session job's asset keys without those no session of ``keys`` has raw data for, or None when
    every asset has data; those assets with the reason), as ``automation.backfill`` leaves them out."""
    from ..product_graph import product_assets

    days = [date.fromisoformat(k) for k in keys]
    absent = absent_everywhere({d: absent_assets(catalog, d, config) for d in days}, days)
    if not absent:
        return None, {}
    keys_of_job = [key for a in product_assets(config.product) for key in a.keys]
    return [key for key in keys_of_job if key.path[-1] not in absent], absent


def _product_tick(context, spymaster: SpymasterResource, cursor: str | None, job_name: str) -> tuple[list[RunRequest], str, str | None, list]:
    """One product's part of a sensor tick: (its run requests, its next cursor, why none when there is
    none, the observations of the assets its runs leave out for want of raw data).

    Raises RawDataError when one of the product's raw files is unreadable (the tick then waits).
    """
    config = spymaster.config
    raw_dir = config.raw_dir
    catalog = spymaster.catalog
    infos = catalog.files(strict=True)
    plan = plan_session_runs(
        RawFilesCursor.from_json(cursor),
        infos,
        raw_dir.resolve(),  # the catalog lists resolved paths
        config,
        rth_sessions=lambda lo, hi: sessions_with_rth_data(catalog, config, lo, hi),
        bronze_written=_bronze_written(config.lake_dir),
        partitions_def=trading_day_partitions,
    )
    for note in plan.notes:
        context.log.info(note if config.product == LEGACY_PRODUCT else f"{config.product} {note}")
    overwrite_config = bronze_overwrite_run_config() if any(r.overwrite_bronze for r in plan.runs) else None
    prefix = "" if config.product == LEGACY_PRODUCT else f"{config.product}:"
    requests, observations = [], []
    for group in group_into_ranges(plan.runs, trading_day_partitions):
        first, last, overwrite = group[0], group[-1], group[0].overwrite_bronze
        tags = {OVERWRITE_TAG: str(overwrite).lower()}
        run_config = overwrite_config if overwrite else {}
        if len(group) < RANGE_RUN_MIN_SESSIONS:
            for r in group:
                selection, absent = _selection_with_data(catalog, config, [r.partition_key])
                observations += [absent_observation(config.product, name, reason, r.partition_key) for name, reason in absent.items()]
                requests.append(RunRequest(run_key=prefix + r.run_key, partition_key=r.partition_key, run_config=run_config, tags=tags, job_name=job_name, asset_selection=selection))
            continue
        # Many new sessions at once (a year dropped into raw/): one run over the range.
        digest = hashlib.sha256("\n".join(r.run_key for r in group).encode()).hexdigest()[:16]
        tags |= {ASSET_PARTITION_RANGE_START_TAG: first.partition_key, ASSET_PARTITION_RANGE_END_TAG: last.partition_key}
        selection, absent = _selection_with_data(catalog, config, [r.partition_key for r in group])
        observations += [absent_observation(config.product, name, reason) for name, reason in absent.items()]
        requests.append(RunRequest(run_key=f"{prefix}{first.partition_key}..{last.partition_key}:{digest}", run_config=run_config, tags=tags, job_name=job_name, asset_selection=selection))
    if requests:
        return requests, plan.cursor.to_json(), None, observations
    if plan.changed_files:
        reason = f"{len(plan.changed_files)} new or changed file(s), no session to run: " + "; ".join(plan.notes or ["no session reads them"])
    elif plan.cursor.pending:
        reason = f"no file changed; waiting for partitions {sorted(plan.cursor.pending)}"
    else:
        reason = f"no new or changed DBN file under {raw_dir}"
    return [], plan.cursor.to_json(), reason, []


raw_files_sensor = build_raw_files_sensor(
    int(os.environ.get("SPYMASTER_RAW_SENSOR_INTERVAL_SECONDS", DEFAULT_MINIMUM_INTERVAL_SECONDS))
)

sensors = [raw_files_sensor]
