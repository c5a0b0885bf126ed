"""``spymaster backfill``: materialize a range of sessions as one run per range, resumable, consistent, and clear when it fails.

- **One run per range.** The sessions to build are split into ranges of consecutive partitions;
  each range is one Dagster run (``spymaster_assets.session_range``): bronze and silver built in a
  process pool (``--workers``), gold walked in date order.

- **Resume.** Sessions at the start of the range whose signals exist and still rest on the lake's
  history (``gold.history``) are skipped; from the first session that needs building, every later
  session is rebuilt (its gold depends on the earlier ones). A session whose own assets (bronze,
  silver, episodes) are all in the lake, as an interrupted backfill leaves them, gets only its
  history-dependent assets. ``rebuild=True`` rebuilds the range from raw.
- **Consistent history.** Materialized sessions after the range that rested on a history the range
  changes are rebuilt by the same backfill, in order, after the range: only their history-dependent
  assets (:data:`HISTORY_ASSETS`, the gold walk and the charts), since their own bronze, silver and
  episodes do not depend on other sessions.
- **Failures.** A failed session does not stop the range: its partitions written by the run are
  removed (no orphan), the partitions the run recorded for it are flagged ``failed`` in the UI
  (``range_failures``), the rest lands, and the command
  ends with one line per failed session naming the file and the reason (the innermost error, not
  "Execution of step ... failed").
- **Nothing stuck.** One backfill at a time per data root (a file lock); the Dagster storage is
  created under a lock; runs left STARTED by a killed CLI are marked failed at the next start
  (``spymaster_resources.instance``). Ctrl-C keeps what the run recorded as materialized, removes
  the rest of what it wrote for unfinished sessions, and ends with one line saying what finished
  (:class:`BackfillInterrupted`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from spymaster_resources.lake import Lake
from spymaster_resources.lake_paths import LakePath
from spymaster_resources.run_failures import RunFailures

from ..availability import absent_assets, absent_everywhere, absent_observation
from ..gold.history import history_change, lake_fingerprint
from ..session_range import day_partitions, remove_written_partitions
from .range_failures import flag_failed_sessions, recorded_materializations

#: The assets of a session that depend on earlier sessions (the as-of artefacts, the answer, its
#: scores and the chart drawing it): what a stale later session needs rebuilt.
HISTORY_ASSETS = ("gold_normalization", "gold_model", "gold_setup_index", "gold_signals", "gold_evaluation", "session_chart")

#: Lake tables written by an asset of another name: kept or removed with that asset's partition.
TABLE_OWNERS = {"gold_evaluation_sums": "gold_evaluation", "gold_signal_neighbours": "gold_signals"}

#: Keep Dagster's per-step DEBUG lines out of the terminal; the run log in the UI still has them.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class BackfillReport:
    """What a backfill did: sessions materialized, skipped (already fresh), failed (day -> reason), and later stale sessions it rebuilt."""

    materialized: list[date] = field(default_factory=list)
    skipped: list[date] = field(default_factory=list)
    failed: dict[date, str] = field(default_factory=dict)
    stale_rebuilt: list[date] = field(default_factory=list)
    abandoned_runs_marked: list[str] = field(default_factory=list)
    empty_files: list[Path] = field(default_factory=list)
    #: Raw files holding a product the data root does not configure (left out of every session).
    unclaimed_files: list[Path] = field(default_factory=list)


class BackfillInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) ended a backfill: which of its sessions finished, and which unfinished ones kept
    the assets their interrupted run completed (a re-run resumes from there)."""

    def __init__(self, finished: list[date], unfinished: list[date], kept: list[date]):
        super().__init__()
        self.finished, self.unfinished, self.kept = finished, unfinished, kept

    def summary(self) -> str:
        """One line for the terminal: what finished, what was kept, and that a re-run resumes."""
        done = f"{len(self.finished)} session(s) finished" + (f" ({self.finished[0]} .. {self.finished[-1]})" if self.finished else "")
        left = f"{len(self.unfinished)} unfinished" + (f", {len(self.kept)} of them keeping the steps they completed" if self.kept else "")
        return f"backfill interrupted: {done}, {left}; run the same command again to resume"


def is_fresh(lake: Lake, day: date, lake_now: dict[str, str] | None = None) -> bool:
    """True when ``day`` went through gold (signals and evaluation) and its signals still rest on the
    lake's history (``lake_now``: ``history.lake_fingerprint`` taken once for checking many days)."""
    return lake.exists("gold", "gold_evaluation", day) and lake.exists("gold", "gold_signals", day) and history_change(lake, day, lake_now) is None


def plan_backfill(lake: Lake, sessions: list[date], rebuild: bool = False) -> tuple[list[date], list[date], list[date]]:
    """(sessions to materialize in date order, sessions of the range skipped as fresh, later stale sessions added).

    Skips the leading fresh sessions of ``sessions`` (unless ``rebuild``); from the first one to
    build, every later session of the range and every later materialized session is rebuilt.
    """
    sessions = sorted(sessions)
    lake_now = lake_fingerprint(lake)
    skipped: list[date] = []
    if not rebuild:
        for day in sessions:
            if not is_fresh(lake, day, lake_now):
                break
            skipped.append(day)
    todo = sessions[len(skipped):]
    if not todo:
        # Nothing in the range to build; a later session may still rest on an older history.
        later = [d for d in lake.dates("gold", "gold_signals") if d > sessions[-1] and not is_fresh(lake, d, lake_now)] if sessions else []
        return later, skipped, later
    later = [d for d in lake.dates("gold", "gold_signals") if d > todo[0] and d not in set(todo)]
    return sorted(set(todo) | set(later)), skipped, later


def own_tables(assets) -> list[tuple[str, str]]:
    """(tier, table) of the lake partitions of ``assets`` that depend on their session alone (bronze,
    silver, gold_episodes: not :data:`HISTORY_ASSETS`, not the reports)."""
    out = []
    for assets_def in assets:
        for key in assets_def.keys:
            # A product's groups are <prefix>_<tier> and its keys <prefix>/<table> (product_graph).
            tier, name = assets_def.group_names_by_key[key].rsplit("_", 1)[-1], key.path[-1]
            if tier in ("bronze", "silver", "gold") and name not in HISTORY_ASSETS:
                out.append((tier, name))
    return sorted(out)


def has_own_assets(lake: Lake, day: date, tables: list[tuple[str, str]], absent: dict[str, str] | None = None) -> bool:
    """True when every session-only partition of ``day`` is in the lake (its history-dependent assets are
    all it needs); the tables in ``absent`` (no raw data for them: ``availability.absent_assets``) are not expected."""
    return all(lake.exists(tier, table, day) for tier, table in tables if table not in (absent or {}))


def run_plan(in_range: list[date], history_only: set[date], stale: list[date]) -> list[tuple[list[date], tuple[str, ...] | None]]:
    """The runs of a backfill in date order: (sessions, assets to select or None for every asset).

    Each range of consecutive sessions is split where a session switches between needing every
    asset and needing only :data:`HISTORY_ASSETS` (``history_only``), so the gold walk stays in date
    order; the later ``stale`` sessions come last, history-dependent assets only.
    """
    plan: list[tuple[list[date], tuple[str, ...] | None]] = []
    for days in contiguous_ranges(in_range):
        first = len(plan)
        for day in days:
            only = HISTORY_ASSETS if day in history_only else None
            if len(plan) > first and plan[-1][1] == only:
                plan[-1][0].append(day)
            else:
                plan.append(([day], only))
    plan += [(days, HISTORY_ASSETS) for days in contiguous_ranges(sorted(stale))]
    return plan


def partitions_of(lake: Lake, day: date) -> set[LakePath]:
    """Every lake partition directory of ``day`` (any tier, any table)."""
    return set(day_partitions(lake.root, day))


def failure_reason(result) -> str:
    """The innermost error message of a failed Dagster run (the file and the reason), not the step wrapper's."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        step = event.step_key
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            message = error.message.strip().splitlines()
            return f"{step}: {message[-1] if message else error.cls_name}"
    failures = [e.message for e in result.all_events if e.is_failure]
    return failures[0] if failures else "see the Dagster run log"


def was_interrupted(result) -> bool:
    """True when the run failed because the process was interrupted (Ctrl-C / SIGINT): Dagster turns
    the KeyboardInterrupt inside a step into a DagsterExecutionInterruptedError step failure."""
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            if error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
                return True
            error = error.cause
    return False


def empty_files_in(catalog, start: date, end: date) -> list[Path]:
    """Raw DBN files with no record whose header range touches [start, end] (they are skipped: say so)."""
    from ..bronze.ingest import TRADE_SOURCES

    lo = datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp() * 1e9
    hi = datetime(end.year, end.month, end.day, tzinfo=timezone.utc).timestamp() * 1e9 + 86_400e9
    out = []
    for schema in ("ohlcv-1m", "definition", *TRADE_SOURCES):
        for info in catalog.files(schema):
            if info.ts_min is None and (info.header_start is None or (info.header_start < hi and (info.header_end or hi) > lo)):
                out.append(info.path)
    return sorted(set(out))


def contiguous_ranges(days: list[date]) -> list[list[date]]:
    """Split sorted sessions into runs of consecutive trading-day partitions (a range run covers each).

    Two sessions are in one range when no partition lies between them (a weekend or a CME holiday is
    no partition, so Friday and Monday are consecutive; a session without raw data splits the range).
    """
    from ..partitions import trading_day_partitions

    keys = trading_day_partitions.get_partition_keys() if days else []
    position = {k: i for i, k in enumerate(keys)}
    ranges: list[list[date]] = []
    for day in sorted(days):
        index = position.get(day.isoformat())
        if ranges and index is not None and position.get(ranges[-1][-1].isoformat()) == index - 1:
            ranges[-1].append(day)
        else:
            ranges.append([day])
    return ranges


def range_tags(days: list[date]) -> dict[str, str]:
    """Run tags making a run cover the partition range ``days[0] .. days[-1]`` (one run, ``context.partition_keys``)."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return {ASSET_PARTITION_RANGE_START_TAG: days[0].isoformat(), ASSET_PARTITION_RANGE_END_TAG: days[-1].isoformat()}


def backfill(
    config: SpymasterConfig,
    start: date,
    end: date,
    quiet: bool = False,
    rebuild: bool = False,
    lock_wait_seconds: float = 3600.0,
    workers: int = 0,
    charts: bool = True,
) -> BackfillReport:
    """Materialize every asset for the sessions with regular-hours data in ``[start, end]`` (see the module docstring).

    Each range of consecutive sessions to build is one Dagster run (``spymaster_assets.session_range``):
    bronze and silver in a pool of ``workers`` processes (0: one per core), gold in date order, then the
    session charts unless ``charts`` is False (a PNG per session costs about 1 s); the partition checks
    run after their assets (a failing blocking check fails its session alone). Runs in
    process against the data root's Dagster instance, with a progress bar per step on stderr.
    Returns the report. Raises SpymasterError when no session in the range has raw data, when
    another backfill holds the data root past ``lock_wait_seconds``, or at the end when a session
    failed (one line per failed session: its date, the step, the file and the reason).
    KeyboardInterrupt propagates after the partitions the interrupted run wrote for unfinished
    sessions are removed.
    """
    from dagster import materialize

    from spymaster_resources import SpymasterResource
    from spymaster_resources.instance import cli_run_tags, data_root_lock, open_instance
    from spymaster_resources.raw_files import RawCatalog

    from ..bronze.ingest import sessions_with_rth_data
    from ..product_graph import product_assets, product_checks

    everything = RawCatalog(config.raw_dir)
    catalog = everything.for_product(config.spec)
    configured = {symbol: config.products_table[symbol] for symbol in config.products}
    unclaimed = everything.unclaimed(configured) if config.raw_dir.is_dir() else []
    for info in unclaimed:
        print(f"note: {info.path}: holds {', '.join(info.symbols)}, not a product of this data root (products: {', '.join(config.products)}): left out", file=sys.stderr)
    sessions = sessions_with_rth_data(catalog, config, start, end)
    if not sessions:
        raise SpymasterError(f"no {config.product} session between {start} and {end} has regular-hours bars in {config.raw_dir}")
    report = BackfillReport(empty_files=empty_files_in(catalog, start, end), unclaimed_files=[info.path for info in unclaimed])
    for path in report.empty_files:
        print(f"note: {path} holds no records: skipped", file=sys.stderr)
    home = Path(config.home)

    def waiting() -> None:
        print(f"another backfill of {home} is running: waiting for it to finish...", file=sys.stderr)

    with data_root_lock(home, lock_wait_seconds, waiting):
        instance, report.abandoned_runs_marked = open_instance(home)
        if report.abandoned_runs_marked:
            print(f"marked {len(report.abandoned_runs_marked)} run(s) failed that a killed spymaster process had left in progress", file=sys.stderr)
        lake = Lake(config.lake_dir)
        todo, report.skipped, report.stale_rebuilt = plan_backfill(lake, sessions, rebuild)
        if report.skipped and not quiet:
            print(f"{len(report.skipped)} session(s) already built on the current history: skipped ({report.skipped[0]} .. {report.skipped[-1]}; --rebuild to redo them)", file=sys.stderr)
        if report.stale_rebuilt:
            print(f"{len(report.stale_rebuilt)} later session(s) rest on a history this backfill changes: rebuilding them too ({report.stale_rebuilt[0]} .. {report.stale_rebuilt[-1]})", file=sys.stderr)
        assets = [a for a in product_assets(config.product) if charts or not any(a.group_names_by_key[k].endswith("reports") for k in a.keys)]
        partition_checks = product_checks(config.product)
        resources = {"spymaster": SpymasterResource(home=str(config.home), workers=workers, progress=not quiet, product=config.product)}
        stale = set(report.stale_rebuilt)
        in_range = [d for d in todo if d not in stale]
        own = own_tables(assets)
        absent = {d: absent_assets(catalog, d, config) for d in todo}
        history_only = set() if rebuild else {d for d in in_range if has_own_assets(lake, d, own, absent[d])}
        # Stale later sessions all come after the range's: the range first, then their gold walk
        # (the range's new history already in the lake).
        plan = run_plan(in_range, history_only, report.stale_rebuilt)

        def pending(number: int) -> list[date]:
            return [day for days, _ in plan[number:] for day in days]

        for number, (days, only) in enumerate(plan, 1):
            if not quiet:
                what = " (history-dependent assets only)" if only else ""
                print(f"backfill: run {number}/{len(plan)}: {days[0]} .. {days[-1]} ({len(days)} sessions){what}", file=sys.stderr)
            since = time.time()
            run_assets = assets if only is None else [a for a in assets if any(k.path[-1] in only for k in a.keys)]
            left_out = absent_everywhere(absent, days) if only is None else {}
            if left_out:
                run_assets = [a for a in run_assets if not any(k.path[-1] in left_out for k in a.keys)]
                observe_absent(instance, config.product, left_out, days)
                if not quiet:
                    print(f"backfill: no raw data for {len(left_out)} asset(s) in {days[0]} .. {days[-1]}, not materialized (their observations say why): {', '.join(left_out)}", file=sys.stderr)
            try:
                result = materialize(
                    [*assets, *partition_checks], selection=run_assets, instance=instance, resources=resources, raise_on_error=False, run_config=QUIET_RUN,
                    tags={**cli_run_tags(), **range_tags(days)},
                )
            except KeyboardInterrupt:
                runs = instance.get_runs(limit=1)  # this run: the data root lock keeps others out
                recorded = _tables_recorded(instance, runs[0].run_id) if runs else set()
                raise _interrupted(lake, days, since, recorded, report.materialized, pending(number)) from None
            failures = RunFailures(home, result.run_id)
            failed = {day: entry["reason"] for day, entry in failures.sessions().items()}
            failures.discard()
            if not result.success and was_interrupted(result):
                raise _interrupted(lake, days, since, _tables_recorded(instance, result.run_id), report.materialized, pending(number))
            if not result.success:
                # The run itself failed (a one-session run, or a step outside the per-session handling):
                # every session it did not finish failed with the run's error.
                reason = failure_reason(result)
                failed.update({day: reason for day in _remove_unfinished(lake, days, since) if day not in failed})
            for day in failed:
                remove_written_partitions(lake.root, day, since)
            flag_failed_sessions(instance, result.run_id, failed)
            report.failed.update(failed)
            report.materialized.extend(day for day in days if day not in failed)
    if report.failed:
        lines = [f"session {day}: {reason}" for day, reason in sorted(report.failed.items())]
        raise SpymasterError(f"{len(report.failed)} of {len(todo)} sessions failed ({len(report.materialized)} materialized):\n" + "\n".join(lines))
    return report


def observe_absent(instance, product: str, left_out: dict[str, str], days: list[date]) -> None:
    """Record in the Dagster instance, once per asset left out of the range ``days``, an observation saying why
    (the asset's page shows it; one event per asset and range, not per partition, so a decade costs no bookkeeping)."""
    for name, reason in left_out.items():
        instance.report_runless_asset_event(
            absent_observation(
                product, name, reason, span=f"{days[0]} .. {days[-1]}",
                first_session=days[0].isoformat(), last_session=days[-1].isoformat(), sessions=len(days),
            )
        )


def _tables_recorded(instance, run_id: str) -> set[tuple[str, str]]:
    """(table, partition key) of every materialization the run recorded (a product's key prefix dropped)."""
    return {(name.rsplit("/", 1)[-1], partition) for name, partition in recorded_materializations(instance, run_id)}


def _interrupted(lake: Lake, days: list[date], since: float, recorded: set[tuple[str, str]], done_before: list[date], pending: list[date]) -> BackfillInterrupted:
    """After Ctrl-C in the run of ``days`` (begun at Unix time ``since``): keep every partition the run
    recorded as materialized (``recorded``: asset name, partition key), remove the rest it wrote for the
    sessions it did not finish (gold_evaluation not recorded); returns the error to raise, which counts
    ``done_before`` (earlier runs) as finished and the sessions of the runs not started (``pending``) as unfinished."""
    finished = [d for d in days if ("gold_evaluation", d.isoformat()) in recorded]
    unfinished = [d for d in days if d not in finished]
    for day in unfinished:
        key = day.isoformat()
        remove_written_partitions(lake.root, day, since, keep=lambda table: (TABLE_OWNERS.get(table, table), key) in recorded)
    kept = [d for d in unfinished if any(partition == d.isoformat() for _, partition in recorded)]
    return BackfillInterrupted(done_before + finished, unfinished + pending, kept)


def _remove_unfinished(lake: Lake, days: list[date], since: float) -> list[date]:
    """Remove the partitions written since ``since`` of the sessions whose gold_evaluation the run did not write; returns those sessions."""
    unfinished = []
    for day in days:
        evaluation = lake.partition_path("gold", "gold_evaluation", day)
        if evaluation.is_file() and evaluation.stat().st_mtime >= since - 1.0:
            continue
        unfinished.append(day)
        remove_written_partitions(lake.root, day, since)
    return unfinished
