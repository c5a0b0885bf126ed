"""The daily download: after each CME close, fetch the raw DBN files of that day's session.

At 17:30 America/New_York, Monday to Friday (the Globex equity session closes at 17:00 ET), the
schedule requests ``download_job`` (owned by the download package, referred to by name) for the
partition of the session whose trade date is that calendar day, when the exchange calendar has a
session that day; on a CME holiday it skips. The files it lands in ``raw/`` are then materialized by
``raw_files_sensor``. The run key ``download:<YYYY-MM-DD>`` makes a tick that is evaluated twice
request the download once.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from spymaster_core.config import SESSION_TZ
from spymaster_resources import SpymasterResource
from ..sessions import is_trading_session

DOWNLOAD_JOB_NAME = "download_job"
#: 17:30 Monday-Friday, in ``SESSION_TZ``: half an hour after the 17:00 ET close (Databento's
#: historical data for the day is available shortly after).
DAILY_DOWNLOAD_CRON = "30 17 * * 1-5"


@schedule(
    name="daily_download_schedule",
    job_name=DOWNLOAD_JOB_NAME,
    cron_schedule=DAILY_DOWNLOAD_CRON,
    execution_timezone=SESSION_TZ,
    description="After each CME close (17:30 ET Mon-Fri), download the raw DBN files of that day's session.",
)
def daily_download_schedule(context: ScheduleEvaluationContext, spymaster: SpymasterResource):
    """Request ``download_job`` for the session whose trade date is the execution day (ET) when it is a
    session of one of the data root's products (each product's calendar); skip holidays of them all."""
    when = context.scheduled_execution_time or datetime.now(tz=ZoneInfo(SESSION_TZ))
    day = when.astimezone(ZoneInfo(SESSION_TZ)).date()
    config = spymaster.config
    if not any(is_trading_session(day, config.for_product(p)) for p in config.products):
        return SkipReason(f"{day} ({day:%A}) is not a CME trading session: nothing to download")
    key = day.isoformat()
    return RunRequest(run_key=f"download:{key}", partition_key=key)


schedules = [daily_download_schedule]
