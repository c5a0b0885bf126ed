"""Freshness of the latest session's gold_signals: the due session from the calendar, and the check against instance records."""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta, timezone

from dagster import AssetMaterialization, AssetSelection, DagsterInstance, Definitions, define_asset_job

from spymaster_assets.checks.freshness import build_latest_session_freshness_check, latest_due_session, session_close_utc
from spymaster_core.config import SpymasterConfig
from spymaster_assets.gold.assets import gold_signals
from spymaster_resources import SpymasterResource

UTC = timezone.utc
CFG = SpymasterConfig()


def test_session_close_is_17_et_or_the_early_close():
    assert session_close_utc(date(2024, 3, 12), CFG) == datetime(2024, 3, 12, 21, 0, tzinfo=UTC)  # EDT: 17:00 = 21:00 UTC
    assert session_close_utc(date(2024, 1, 9), CFG) == datetime(2024, 1, 9, 22, 0, tzinfo=UTC)  # EST
    assert session_close_utc(date(2024, 11, 29), CFG) == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # early close 13:00 EST


def test_latest_due_session_waits_for_the_deadline():
    # Tuesday 2024-03-12 closes 21:00 UTC; with 6 h its deadline is 03:00 UTC on Wednesday.
    assert latest_due_session(datetime(2024, 3, 13, 2, 59, tzinfo=UTC), 6.0, CFG) == date(2024, 3, 11)
    assert latest_due_session(datetime(2024, 3, 13, 3, 0, tzinfo=UTC), 6.0, CFG) == date(2024, 3, 12)
    # A weekend looks back to Friday; the early close of 2024-11-29 makes its deadline 00:00 UTC.
    assert latest_due_session(datetime(2024, 3, 17, 12, 0, tzinfo=UTC), 6.0, CFG) == date(2024, 3, 15)
    assert latest_due_session(datetime(2024, 11, 30, 0, 0, tzinfo=UTC), 6.0, CFG) == date(2024, 11, 29)
    # 2024-12-25 is a holiday: on the 26th the latest due session is the 24th.
    assert latest_due_session(datetime(2024, 12, 26, 12, 0, tzinfo=UTC), 6.0, CFG) == date(2024, 12, 24)


def _run(check, instance: DagsterInstance):
    job = define_asset_job("freshness", selection=AssetSelection.checks(check))
    defs = Definitions(assets=[gold_signals], asset_checks=[check], jobs=[job], resources={"spymaster": SpymasterResource(home="unused")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = defs.resolve_job_def("freshness").execute_in_process(instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_freshness_check_against_materialization_records():
    session = date(2024, 3, 12)
    close = session_close_utc(session, CFG)
    instance = DagsterInstance.ephemeral()
    instance.report_runless_asset_event(AssetMaterialization(asset_key="gold_signals", partition=session.isoformat()))
    recorded = datetime.now(UTC)  # the record's timestamp is the wall clock when it was stored
    lag_hours = (recorded - close).total_seconds() / 3600.0

    # Allowed lag just above the real one; "now" one minute past the deadline makes 2024-03-12 the due session.
    generous = lag_hours + 1.0
    fresh = _run(build_latest_session_freshness_check(generous, clock=lambda: close + timedelta(hours=generous, minutes=1)), instance)
    assert fresh.passed
    assert fresh.metadata["session"].value == "2024-03-12"
    assert abs(fresh.metadata["lag_hours"].value - lag_hours) < 0.01

    # Allowed lag below the real one: materialized too late.
    strict = lag_hours - 1.0
    late = _run(build_latest_session_freshness_check(strict, clock=lambda: close + timedelta(hours=strict, minutes=1)), instance)
    assert not late.passed and "materialized" in late.description

    # The next session (Wednesday) was never materialized.
    next_close = session_close_utc(date(2024, 3, 13), CFG)
    missing = _run(build_latest_session_freshness_check(6.0, clock=lambda: next_close + timedelta(hours=6, minutes=1)), instance)
    assert not missing.passed
    assert missing.metadata["session"].value == "2024-03-13" and missing.metadata["materialized_utc"].value == "never"


def test_registered_job_and_schedule_run_the_check_after_the_deadline():
    from spymaster_assets.checks.freshness import DEFAULT_MAX_HOURS_AFTER_CLOSE, freshness_check_job, freshness_check_schedule, freshness_checks

    # 17:00 ET close + 6 h = 23:00 New York time, every day.
    assert DEFAULT_MAX_HOURS_AFTER_CLOSE == 6.0
    assert (freshness_check_schedule.cron_schedule, freshness_check_schedule.execution_timezone) == ("0 23 * * *", "America/New_York")
    defs = Definitions(assets=[gold_signals], asset_checks=freshness_checks, jobs=[freshness_check_job], schedules=[freshness_check_schedule], resources={"spymaster": SpymasterResource(home="unused")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = defs.resolve_job_def("freshness_check_job").execute_in_process(instance=DagsterInstance.ephemeral())
    (evaluation,) = result.get_asset_check_evaluations()
    due = latest_due_session(datetime.now(UTC), DEFAULT_MAX_HOURS_AFTER_CLOSE, CFG)
    assert not evaluation.passed  # a fresh instance has no materialization of the due session
    assert evaluation.metadata["session"].value == due.isoformat()
