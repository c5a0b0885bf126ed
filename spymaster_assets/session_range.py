"""Session assets and checks that run over one partition (a daily run) or a range of them (a backfill as one run).

Every trading-day asset has ``BackfillPolicy.single_run()``: a backfill of many sessions, launched
from an asset's page, by ``spymaster backfill`` or by the sensor, is one Dagster run whose steps see
``context.partition_keys``. The asset's body is written for one session (it reads
``context.partition_key``); :func:`session_asset` calls it once per session of the run:

- **Bronze and silver** (``parallel=True``): sessions are independent, so they are built in a
  process pool of ``SpymasterResource.workers`` processes (default: the machine's cores).
- **Gold** (``parallel=False``): the as-of artefacts of D rest on every session before D, so the
  body walks the range in date order in this process (the lake's history memo makes each earlier
  partition a single read per run; ``spymaster_resources.lake``), carrying what the previous session
  left (the setup index, the distance lookup's counts, the evaluation's sums) so a session's cost does
  not grow with history. A range's retrains and gold_evaluation's per-session sums are prepared
  in the pool first.
- **A failing session fails alone.** Its error (the innermost one: the file and the reason) is
  recorded in the run's :class:`~spymaster_resources.run_failures.RunFailures`, the partitions the run
  wrote for it are removed (no orphan), later steps skip it, and the rest of the range lands. A
  failing blocking check does the same for its session, reported with WARN severity so that the
  other sessions go on. A run of one partition behaves exactly as before: the error fails the run.

Each partition of a range step records its own session's metadata (as a run of that session
would) plus a small ``range/`` summary: sessions built, failed and skipped. Info lines alike across
sessions are logged once per group (:class:`RangeLog`).
"""

from __future__ import annotations

import atexit
import inspect
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import date

import warnings

from dagster import AssetCheckResult, AssetCheckSeverity, BackfillPolicy, BetaWarning, MaterializeResult, MetadataValue, asset, asset_check

from spymaster_resources import SpymasterResource
from spymaster_resources.instance import LAUNCHED_BY_TAG, data_root_lock
from spymaster_resources.lake import cached_listings
from spymaster_resources.lake_paths import LakePath, lake_path, newest_mtime, remove_tree
from spymaster_resources.run_failures import RunFailures

from .partitions import session_of_partition_key, trading_day_partitions

# BackfillPolicy on @asset is beta in dagster 1.13; the single-run policy is what range backfills rely on.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

#: Asset and check bodies by name: a pool worker finds the body of a step here (the module-level
#: name of the body is bound to the Dagster definition, which cannot be pickled).
BODIES: dict[str, Callable] = {}


class SessionContext:
    """What a session body sees in a range run: ``partition_key`` (one session), ``log``, ``run_id``,
    and ``range_keys`` (every session of the run)."""

    def __init__(self, partition_key: str, log, run_id: str, range_keys: list[str] | None = None):
        self.partition_key = partition_key
        self.partition_keys = [partition_key]
        self.log = log
        self.run_id = run_id
        self.range_keys = range_keys or [partition_key]


def is_last_of_run(context) -> bool:
    """True when the body's session is the last of its run (always, in a run of one partition).

    For work whose output is not in the lake and is only worth doing once per run (the reliability
    diagrams of the cumulative evaluation), so a range run and session-by-session runs still write
    the same lake.
    """
    return context.partition_key == getattr(context, "range_keys", [context.partition_key])[-1]


class CollectedLog:
    """A logger a pool worker returns to the step, which replays it into the run log."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        if level not in ("debug", "info", "warning", "error", "critical"):
            raise AttributeError(level)
        return lambda message, *args, **kwargs: self.messages.append((level, str(message)))


class RangeLog:
    """The run log of a range step: warnings and errors go to ``log`` at once; info and debug lines,
    one per session and mostly alike ("<asset> <session>: wrote an empty partition"), are grouped by
    their text with the session's date taken out and written once per group by :meth:`flush`
    ("<n> session(s) (<first> .. <last>): <text>"), so a year's range run stores a few lines, not thousands."""

    def __init__(self, log):
        self._log = log
        self._groups: dict[tuple[str, str], list[str]] = {}
        self.session = ""

    def __getattr__(self, level: str):
        if level in ("warning", "error", "critical"):
            return getattr(self._log, level)
        if level not in ("info", "debug"):
            raise AttributeError(level)
        return lambda message, *args, **kwargs: self.add(level, str(message), self.session)

    def add(self, level: str, message: str, session: str) -> None:
        """Buffer (info, debug) or forward (warning and above) one message of ``session``."""
        if level not in ("info", "debug"):
            getattr(self._log, level)(message)
            return
        text = message.replace(session, "{session}") if session else message
        self._groups.setdefault((level, text), []).append(session)

    def flush(self) -> None:
        """Write each buffered group: the message itself for one session, else counted with its first and last session."""
        for (level, text), sessions in self._groups.items():
            if len(sessions) == 1:
                line = text.replace("{session}", sessions[0])
            else:
                line = f"{len(sessions)} sessions ({sessions[0]} .. {sessions[-1]}): " + text.replace("{session}", "<session>")
            getattr(self._log, level)(line)
        self._groups.clear()


def innermost_error(exc: BaseException) -> str:
    """The error a user can act on, as one line ``Class: message``: the deepest Spymaster error in the
    cause chain (its message names the file and the reason), else the deepest cause (e.g. an OSError
    "No space left on device"), never a wrapper."""
    chain = [exc]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    ours = [e for e in chain if type(e).__module__.startswith("spymaster")]
    exc = ours[-1] if ours else chain[-1]
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


def remove_written_partitions(lake_root: LakePath | str, day: date, since: float, keep: Callable[[str], bool] | None = None) -> list[LakePath]:
    """Delete the partitions of ``day`` (any tier, table; lake local or on object storage) modified at
    or after Unix time ``since`` (within the 1 s resolution of object stores' times), except those of
    the tables for which ``keep(table)`` is true; returns the deleted ones."""
    removed = []
    for directory in day_partitions(lake_root, day):
        if keep is not None and keep(directory.parent.name):
            continue
        modified = newest_mtime(directory)
        if modified is not None and modified >= since - 1.0:
            remove_tree(directory)
            removed.append(directory)
    return removed


def day_partitions(lake_root: LakePath | str, day: date) -> list[LakePath]:
    """Every partition directory of ``day`` in the lake (any tier, any table), sorted."""
    return sorted(lake_path(lake_root).glob(f"*/*/date={day.isoformat()}"), key=str)


# ----------------------------------------------------------------------------- process pool

_POOL: tuple[int, ProcessPoolExecutor] | None = None


def _pool(workers: int) -> ProcessPoolExecutor:
    """The process's pool of ``workers`` processes, kept for the run's later steps.

    Workers come from a fork server that imported the asset definitions once (a plain fork of a
    process whose Polars thread pool is running can deadlock; a spawn would re-import per worker).
    """
    global _POOL
    if _POOL is not None and _POOL[0] == workers:
        return _POOL[1]
    if _POOL is not None:
        _POOL[1].shutdown(cancel_futures=True)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["spymaster_assets.definitions"])
    _POOL = (workers, ProcessPoolExecutor(max_workers=workers, mp_context=context))
    return _POOL[1]


@atexit.register
def _shutdown_pool() -> None:
    if _POOL is not None:
        _POOL[1].shutdown(cancel_futures=True)


_WORKER_STEP: list[str] = [""]


def product_of_key(asset_key) -> str:
    """The product of a session asset (or check) from its key: the upper-cased prefix of a prefixed
    key (``gc/silver_bars`` -> ``GC``), else the legacy product (ES)."""
    from spymaster_core.products import LEGACY_PRODUCT, PRODUCTS

    if len(asset_key.path) < 2:
        return LEGACY_PRODUCT
    prefix = asset_key.path[0]
    return next((symbol for symbol in PRODUCTS if symbol.lower() == prefix), prefix.upper())


def _scoped(context, kwargs: dict, asset_key) -> dict:
    """The body's keyword arguments with the resource serving the asset's product."""
    return {**kwargs, "spymaster": kwargs["spymaster"].for_product(product_of_key(asset_key))}


def _run_in_worker(name: str, home: str, key: str, run_id: str, keys: list[str], kwargs: dict, step: str, product: str = ""):
    """Pool worker: run body ``name`` for session ``key``; returns (result or None, error or None, log messages).

    ``step`` identifies the step: the first session of a new step lists raw/ afresh in this worker
    (workers outlive steps and runs; the raw catalog reuses a listing for a moment).
    """
    import spymaster_assets.definitions  # noqa: F401  (registers BODIES when the worker did not preload it)

    log = CollectedLog()
    spymaster = SpymasterResource(home=home, workers=1, product=product)
    if _WORKER_STEP[0] != step:
        spymaster.catalog.invalidate()
        _WORKER_STEP[0] = step
    try:
        return BODIES[name](SessionContext(key, log, run_id, keys), spymaster=spymaster, **kwargs), None, log.messages
    except Exception as exc:  # the session fails alone; the step records it
        return None, innermost_error(exc), log.messages


def workers_of(spymaster: SpymasterResource) -> int:
    """Processes for a parallel range step: ``spymaster.workers``, or the machine's cores when 0."""
    return spymaster.workers if spymaster.workers > 0 else (os.cpu_count() or 1)


def _each_session(context, name: str, body: Callable, kwargs: dict, keys: list[str], parallel: bool, started: float | None = None) -> Iterator[tuple[str, object, str | None]]:
    """Yield (key, body result or None, error or None) for every key, in date order (``started``: when
    the step began, its preparation included, for the progress line)."""
    spymaster: SpymasterResource = kwargs["spymaster"]
    workers = min(workers_of(spymaster), len(keys)) if parallel else 1
    progress = _progress(spymaster, name, len(keys), started)
    log = RangeLog(context.log)
    try:
        if workers <= 1:
            # One process writes this step's tables while it walks: the lake's listings are kept
            # (updated by its own writes) instead of re-listing a decade of partitions each time.
            with cached_listings():
                for key in keys:
                    log.session = key
                    try:
                        result, error = body(SessionContext(key, log, context.run.run_id, keys), **kwargs), None
                    except Exception as exc:
                        result, error = None, innermost_error(exc)
                    progress(key)
                    yield key, result, error
            return
        rest = {k: v for k, v in kwargs.items() if k != "spymaster"}
        home = str(spymaster.config.home)
        pool = _pool(workers)
        step = f"{context.run.run_id}/{name}"
        futures: dict[str, Future] = {key: pool.submit(_run_in_worker, name, home, key, context.run.run_id, keys, rest, step, spymaster.product) for key in keys}
        try:
            for key in keys:
                result, error, messages = futures[key].result()
                for level, message in messages:
                    log.add(level, message, key)
                progress(key)
                yield key, result, error
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    finally:
        log.flush()


def _progress(spymaster: SpymasterResource, name: str, total: int, started: float | None = None) -> Callable[[str], None]:
    """Progress of a range step on stderr when the resource asks for it (the CLI backfill).

    On a terminal, a progress bar; otherwise (a log file, a pipe, CI) one line when the step ends,
    ``<step>: <n> sessions (<first> .. <last>) in <s> s``, so a written log reads as one line per step
    and range instead of carriage-return redraws.
    """
    if not spymaster.progress:
        return lambda key: None
    if not sys.stderr.isatty():
        return _step_line(name, total, started)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"{name:<30}", unit="session", file=sys.stderr, leave=False)

    def step(key: str) -> None:
        bar.update(1)
        bar.set_postfix_str(key)
        if bar.n >= total:
            bar.close()

    return step


def _step_line(name: str, total: int, started: float | None = None) -> Callable[[str], None]:
    """The non-terminal progress of a step: one line on stderr once its ``total`` sessions are done
    (seconds since ``started``, a ``time.perf_counter`` value; default now)."""
    started = time.perf_counter() if started is None else started
    seen: list[str] = []

    def step(key: str) -> None:
        seen.append(key)
        if len(seen) == total:
            span = seen[0] if total == 1 else f"{seen[0]} .. {seen[-1]}"
            print(f"{name}: {total} session{'s' if total != 1 else ''} ({span}) in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    return step


def range_metadata(built: list[str], failed_now: dict[str, str], failed_before: list[str], total: int) -> dict:
    """A range step's summary, on every partition of the range: ``range/`` counts, first and last
    session built, and the failed sessions with their reasons (each partition's own metadata is
    added to it separately, as a run of that one session records it)."""
    meta: dict[str, object] = {
        "range/sessions_in_range": total,
        "range/sessions_built": len(built),
        "range/sessions_failed": len(failed_now),
        "range/sessions_skipped_failed_upstream": len(failed_before),
        "range/first_session": built[0] if built else "none",
        "range/last_session": built[-1] if built else "none",
    }
    if failed_now:
        meta["range/failed"] = MetadataValue.md("\n".join(["| session | reason |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(failed_now.items())]))
    return meta


#: Metadata that describes the table, not the partition (the same for every session): a range run
#: records it on its last session only, which is what the UI shows as the asset's latest; a decade
#: would otherwise store these kilobytes 30,000 times.
STATIC_METADATA = ("dagster/column_schema", "dagster/column_lineage")


def _without_static(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k not in STATIC_METADATA}


def _unwrap_metadata(result) -> dict:
    return dict(result.metadata or {}) if result is not None else {}


def run_range(context, name: str, body: Callable, kwargs: dict, parallel: bool, prepare: Callable | None = None) -> MaterializeResult:
    """Run asset body ``name`` once per session of the range (see the module docstring), after
    ``prepare(context, keys, spymaster, pool)`` when given and the pool has more than one process."""
    spymaster: SpymasterResource = kwargs["spymaster"]
    failures = RunFailures(spymaster.config.home, context.run.run_id)
    failed_before = failures.sessions()
    keys = [k for k in context.partition_keys if session_of_partition_key(k) not in failed_before]
    skipped = [k for k in context.partition_keys if session_of_partition_key(k) in failed_before]
    if skipped:
        context.log.warning(f"{name}: {len(skipped)} session(s) failed in an earlier step and are skipped: {', '.join(skipped)}")
    workers = min(workers_of(spymaster), len(keys))
    started = time.perf_counter()
    if prepare is not None and workers > 1:
        prepare(context, keys, spymaster, _pool(workers))
    results: dict[str, dict] = {}
    failed_now: dict[str, str] = {}
    for key, result, error in _each_session(context, name, body, kwargs, keys, parallel, started):
        if error is None:
            results[key] = _unwrap_metadata(result)
            continue
        day = session_of_partition_key(key)
        reason = f"{name}: {error}"
        failed_now[key] = reason
        failures.record(day, name, reason)
        removed = remove_written_partitions(spymaster.config.lake_dir, day, failures.started_at)
        context.log.error(f"session {key} failed, the rest of the range goes on: {reason} (removed its {len(removed)} partition(s) written by this run)")
    last = max(results) if results else None
    for key, metadata in results.items():
        context.add_asset_metadata(metadata if key == last else _without_static(metadata), partition_key=key)
    return MaterializeResult(metadata=range_metadata(sorted(results), failed_now, skipped, len(context.partition_keys)))


@contextmanager
def backfill_lock_unless_cli(context, spymaster: SpymasterResource) -> Iterator[None]:
    """Hold the data root's backfill lock for a step of a run not started by ``spymaster backfill``
    (which holds it for its whole duration already).

    So a run launched from the UI, a sensor or a schedule never writes partitions while a backfill
    runs: its step waits up to ``spymaster.lock_wait_seconds`` (then fails with SpymasterError naming
    the lock file), and a backfill started meanwhile waits for the step.
    """
    if context.run.tags.get(LAUNCHED_BY_TAG) == "cli":
        yield
        return
    home = spymaster.config.home

    def waiting() -> None:
        context.log.warning(f"a spymaster backfill of {home} is running: this step waits for it to finish")

    with data_root_lock(home, spymaster.lock_wait_seconds, waiting):
        yield


def session_asset(*, parallel: bool, prepare: Callable | None = None, **asset_kwargs):
    """``@asset`` over trading-day partitions for a body written for one session (see the module docstring).

    ``parallel``: sessions are independent (bronze, silver, per-session gold): a range is built in
    the process pool. ``prepare(context, keys, spymaster, pool)``: work of a range run done ahead in
    the pool before the sessions' bodies run (a date-order asset's retrains; gold_evaluation's
    per-session sums, after which its days are independent); the result must not depend on it, only its speed. Other keyword arguments go to ``dagster.asset``. The body's signature (its
    resources and run config) is the asset's.
    """

    def decorate(body: Callable) -> object:
        name = body.__name__
        BODIES[name] = body

        def compute(context, **kwargs):
            kwargs = _scoped(context, kwargs, context.asset_key)
            with backfill_lock_unless_cli(context, kwargs["spymaster"]):
                kwargs["spymaster"].catalog.invalidate()  # a step sees raw/ as it is when the step starts
                if len(context.partition_keys) == 1:
                    return body(context, **kwargs)
                return run_range(context, name, body, kwargs, parallel, prepare)

        compute.__name__ = name
        compute.__doc__ = body.__doc__
        compute.__signature__ = inspect.signature(body)
        return asset(name=name, partitions_def=trading_day_partitions, backfill_policy=BackfillPolicy.single_run(), **asset_kwargs)(compute)

    return decorate


def session_check(*, blocking: bool = False, **check_kwargs):
    """``@asset_check`` over trading-day partitions for a body written for one session.

    A range run evaluates the body per session and reports one result: passed when every session
    passed, the failing sessions listed. When ``blocking``, the failing sessions are recorded as
    failed in the run (later steps skip them, their partitions are removed) and the result is WARN,
    so the rest of the range goes on; a run of one partition blocks as usual.
    """

    def decorate(body: Callable) -> object:
        name = body.__name__
        BODIES[name] = body

        def evaluate(context, **kwargs):
            kwargs = _scoped(context, kwargs, context.check_specs[0].asset_key)
            with backfill_lock_unless_cli(context, kwargs["spymaster"]):
                if len(context.partition_keys) == 1:
                    return body(context, **kwargs)
                return _check_range(context, name, body, kwargs, blocking)

        evaluate.__name__ = name
        evaluate.__doc__ = body.__doc__
        evaluate.__signature__ = inspect.signature(body)
        return asset_check(name=name, partitions_def=trading_day_partitions, blocking=blocking, **check_kwargs)(evaluate)

    return decorate


def _check_range(context, name: str, body: Callable, kwargs: dict, blocking: bool) -> AssetCheckResult:
    """One check result for a range: every session evaluated; blocking failures fail their session alone."""
    spymaster: SpymasterResource = kwargs["spymaster"]
    failures = RunFailures(spymaster.config.home, context.run.run_id)
    failed_before = failures.sessions()
    keys = [k for k in context.partition_keys if session_of_partition_key(k) not in failed_before]
    failing: dict[str, str] = {}
    for key in keys:
        try:
            result = body(SessionContext(key, context.log, context.run.run_id, keys), **kwargs)
            passed, description = result.passed, result.description or ""
        except Exception as exc:
            passed, description = False, innermost_error(exc)
        if passed:
            continue
        failing[key] = description
        if blocking:
            day = session_of_partition_key(key)
            failures.record(day, name, f"check {name}: {description}")
            remove_written_partitions(spymaster.config.lake_dir, day, failures.started_at)
            context.log.error(f"session {key} failed blocking check {name}: {description}; the rest of the range goes on")
    rows = ["| session | result |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(failing.items())]
    return AssetCheckResult(
        passed=not failing,
        severity=AssetCheckSeverity.WARN,
        description=(f"{len(failing)} of {len(keys)} sessions failed" + (" (excluded from the rest of the run)" if blocking else "")) if failing else f"all {len(keys)} sessions passed",
        metadata={"sessions_checked": len(keys), "sessions_failed": len(failing), "sessions_skipped_failed_upstream": len(failed_before), "failing": MetadataValue.md("\n".join(rows))},
    )
