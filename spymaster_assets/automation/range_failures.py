"""After a range run ends: flag, on each partition it recorded, the sessions that failed inside it.

A range run records a materialization of every partition of its range when a step ends, while a
session that failed inside the range had its partitions removed from the lake
(``spymaster_assets.session_range``). Dagster's open-source event log storages (SQLite, PostgreSQL)
cannot wipe one partition's records (``wipe_asset_partitions`` raises NotImplementedError), so each
such partition gets an AssetObservation ``failed: <reason>; not in the lake`` instead, shown on the
partition's page in the UI, until a later run materializes it again. ``spymaster backfill`` flags
its own failures; for runs launched from the UI, by the raw-files sensor or by the stale-history
sensor, these run-status sensors do it and delete the run's failure list (``<home>/.runs/<run_id>.json``).
"""

from __future__ import annotations

from datetime import date

from dagster import AssetKey, AssetObservation, DagsterRunStatus, DefaultSensorStatus, MetadataValue, RunStatusSensorContext, SkipReason, run_status_sensor

from spymaster_resources import SpymasterResource
from spymaster_resources.instance import LAUNCHED_BY_TAG
from spymaster_resources.run_failures import RUNS_DIR, RunFailures


def flag_failed_sessions(instance, run_id: str, failed: dict[date, str]) -> int:
    """Report an AssetObservation ``failed`` on every partition of a ``failed`` session (day -> reason)
    that run ``run_id`` recorded as materialized; returns how many were flagged."""
    if not failed:
        return 0  # no need to read the run's events
    keys = {day.isoformat(): reason for day, reason in failed.items()}
    flagged = 0
    for name, partition in sorted(recorded_materializations(instance, run_id)):
        if partition in keys:
            text = f"failed in run {run_id}: {keys[partition]}; not in the lake: materialize it again"
            instance.report_runless_asset_event(AssetObservation(asset_key=AssetKey.from_user_string(name), partition=partition, metadata={"failed": MetadataValue.text(text)}))
            flagged += 1
    return flagged


def recorded_materializations(instance, run_id: str) -> set[tuple[str, str]]:
    """(asset name, partition key) of every materialization run ``run_id`` recorded in the Dagster event log."""
    from dagster import DagsterEventType

    recorded = set()
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.dagster_event.event_specific_data.materialization
        recorded.add((materialization.asset_key.to_user_string(), materialization.partition))
    return recorded


def flag_failed_sessions_of_run(instance, run, spymaster: SpymasterResource) -> list[date]:
    """:func:`flag_failed_sessions` for the sessions that failed inside ``run``; returns those sessions.

    Nothing for a run of ``spymaster backfill`` (it flags its own failures) or a run
    with no failure list. The list is deleted once read.
    """
    if run.tags.get(LAUNCHED_BY_TAG) == "cli":
        return []
    if not (spymaster.config.home / RUNS_DIR / f"{run.run_id}.json").is_file():
        return []
    failures = RunFailures(spymaster.config.home, run.run_id)
    failed = {day: entry["reason"] for day, entry in failures.sessions().items()}
    flag_failed_sessions(instance, run.run_id, failed)
    failures.discard()
    return sorted(failed)


def _build(status: DagsterRunStatus, name: str):
    @run_status_sensor(
        run_status=status,
        name=name,
        monitor_all_code_locations=True,
        default_status=DefaultSensorStatus.RUNNING,  # it only flags partitions, never launches a run
        description=f"When a range run ends ({status.value.lower()}), flag the partitions it recorded of the sessions that failed inside it (removed from the lake).",
    )
    def flag(context: RunStatusSensorContext, spymaster: SpymasterResource):
        failed = flag_failed_sessions_of_run(context.instance, context.dagster_run, spymaster)
        if not failed:
            return SkipReason(f"run {context.dagster_run.run_id}: no session failed inside it")
        context.log.info(f"run {context.dagster_run.run_id}: flagged the partitions of {len(failed)} failed session(s): {', '.join(map(str, failed))}")
        return None

    return flag


#: One sensor per end state: a range run whose sessions failed alone succeeds; one cut short fails.
range_failures_sensors = [
    _build(DagsterRunStatus.SUCCESS, "range_failures_after_success_sensor"),
    _build(DagsterRunStatus.FAILURE, "range_failures_after_failure_sensor"),
]
