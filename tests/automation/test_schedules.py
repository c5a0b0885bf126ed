"""daily_download_schedule with Dagster's schedule test context: trading days, weekends, CME holidays."""

import warnings
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import Definitions, RunRequest, SkipReason, build_schedule_context, job, op
from dagster._core.definitions.partitions.context import partition_loading_context

from spymaster_assets.automation.schedules import daily_download_schedule
from spymaster_assets.partitions import trading_day_partitions

NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations from exchange_calendars
        yield


@op
def _fetch_nothing():
    return None


@job(name="download_job", partitions_def=trading_day_partitions)
def stand_in_download_job():
    """Same name and partitions as the download package's job, without Databento."""
    _fetch_nothing()


def evaluate(when: datetime, home: str = "unused-data-root", schedule=daily_download_schedule):
    from spymaster_resources import SpymasterResource

    return schedule(build_schedule_context(scheduled_execution_time=when, resources={"spymaster": SpymasterResource(home=home)}))


def test_each_product_is_downloaded_after_its_own_close_on_its_own_sessions(tmp_path):
    from spymaster_assets.automation.schedules import daily_equity_download_schedule

    assert daily_equity_download_schedule.cron_schedule == "30 20 * * 1-5"  # the ETFs' session ends 20:00 ET
    (tmp_path / "config.json").write_text('{"products": ["SPY", "ES", "GC"]}')
    # 2014-01-20 (Martin Luther King Jr. Day): CME equity futures and gold trade, NYSE is shut.
    mlk = datetime(2014, 1, 20, 17, 30, tzinfo=NY)
    futures = evaluate(mlk, str(tmp_path))
    assert isinstance(futures, RunRequest) and futures.run_config["ops"]["download_session_files"]["config"]["products"] == ["ES", "GC"]
    assert isinstance(evaluate(mlk.replace(hour=20), str(tmp_path), daily_equity_download_schedule), SkipReason)
    equities = evaluate(datetime(2014, 1, 21, 20, 30, tzinfo=NY), str(tmp_path), daily_equity_download_schedule)
    assert isinstance(equities, RunRequest) and equities.run_key == "download-equities:2014-01-21"
    assert equities.run_config["ops"]["download_session_files"]["config"]["products"] == ["SPY"]
    (tmp_path / "config.json").write_text('{"products": ["SPY"]}')
    assert "no futures product" in evaluate(mlk, str(tmp_path)).skip_message


def test_schedule_runs_after_the_close_on_weekdays_in_new_york():
    assert daily_download_schedule.cron_schedule == "30 17 * * 1-5"
    assert daily_download_schedule.execution_timezone == "America/New_York"
    assert daily_download_schedule.job_name == "download_job"


def test_weekday_requests_that_days_session():
    # Wednesday 2024-05-01, 17:30 EDT (21:30 UTC): session 2024-05-01 has just closed.
    result = evaluate(datetime(2024, 5, 1, 17, 30, tzinfo=NY))
    assert isinstance(result, RunRequest)
    assert result.partition_key == "2024-05-01"
    assert result.run_key == "download:2024-05-01"


def test_execution_time_given_in_utc_maps_to_the_new_york_day():
    # Monday 2024-01-08 17:30 EST is 22:30 UTC the same day.
    result = evaluate(datetime(2024, 1, 8, 22, 30, tzinfo=ZoneInfo("UTC")))
    assert result.partition_key == "2024-01-08"


def test_weekend_skips():
    result = evaluate(datetime(2024, 5, 4, 17, 30, tzinfo=NY))  # Saturday
    assert isinstance(result, SkipReason)
    assert "2024-05-04" in result.skip_message


@pytest.mark.parametrize("holiday", ["2024-12-25", "2024-01-01", "2024-03-29"])  # Christmas, New Year, Good Friday
def test_cme_holiday_skips(holiday):
    day = datetime.fromisoformat(holiday)
    assert day.weekday() < 5
    result = evaluate(day.replace(hour=17, minute=30, tzinfo=NY))
    assert isinstance(result, SkipReason)
    assert holiday in result.skip_message


def test_request_resolves_against_a_download_job_of_that_name():
    defs = Definitions(jobs=[stand_in_download_job], schedules=[daily_download_schedule])
    target = defs.resolve_job_def("download_job")
    request = evaluate(datetime(2024, 5, 1, 17, 30, tzinfo=NY))
    resolved = request.with_resolved_tags_and_config(target, dynamic_partitions_requests=[], dynamic_partitions_store=None)
    assert resolved.tags["dagster/partition"] == "2024-05-01"


def test_partition_exists_when_the_schedule_fires():
    with partition_loading_context(effective_dt=datetime(2024, 5, 1, 17, 30, tzinfo=NY)):
        assert trading_day_partitions.has_partition_key("2024-05-01")
