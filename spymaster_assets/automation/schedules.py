"""The daily downloads: after each close, fetch the raw DBN files of that day's session of each product.

At 17:30 America/New_York, Monday to Friday (CME Globex sessions close at 17:00 ET),
``daily_download_schedule`` requests ``download_job`` (owned by the download package, referred to by
name) for the partition of the session whose trade date is that calendar day, for the data root's
futures products of which that day is a session (each product's calendar); on a day that is a
session of none of them it skips. ``daily_equity_download_schedule`` does the same at 20:30 for the
ETFs (SPY, QQQ), whose extended session ends at 20:00 ET. The files they land in ``raw/`` are then
materialized by ``raw_files_sensor``. The run keys ``download:<YYYY-MM-DD>`` and
``download-equities:<YYYY-MM-DD>`` make a tick that is evaluated twice request the download once.
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
#: 20:30 Monday-Friday: half an hour after the ETFs' extended session ends (20:00 ET).
DAILY_EQUITY_DOWNLOAD_CRON = "30 20 * * 1-5"


def _request(context: ScheduleEvaluationContext, spymaster: SpymasterResource, futures: bool, run_key_prefix: str):
    """The download of the execution day's session (ET) for the data root's futures (or equity) products trading that day."""
    when = context.scheduled_execution_time or datetime.now(tz=ZoneInfo(SESSION_TZ))
    day = when.astimezone(ZoneInfo(SESSION_TZ)).date()
    config = spymaster.config
    kind = "CME" if futures else "NYSE"
    products = [p for p in config.products if config.for_product(p).spec.is_future == futures]
    if not products:
        return SkipReason(f"the data root has no {'futures' if futures else 'equity'} product ({', '.join(config.products)})")
    trading = [p for p in products if is_trading_session(day, config.for_product(p))]
    if not trading:
        return SkipReason(f"{day} ({day:%A}) is not a {kind} trading session of {', '.join(products)}: nothing to download")
    key = day.isoformat()
    run_config = {"ops": {"download_session_files": {"config": {"products": trading}}}}
    return RunRequest(run_key=f"{run_key_prefix}:{key}", partition_key=key, run_config=run_config)


def _download_schedule(name: str, cron: str, futures: bool, run_key_prefix: str, description: str):
    """A daily ``download_job`` schedule for the data root's futures (or equity) products (:func:`_request`)."""

    @schedule(name=name, job_name=DOWNLOAD_JOB_NAME, cron_schedule=cron, execution_timezone=SESSION_TZ, description=description)
    def download_schedule(context: ScheduleEvaluationContext, spymaster: SpymasterResource):
        return _request(context, spymaster, futures=futures, run_key_prefix=run_key_prefix)

    return download_schedule


#: 17:30 ET: the execution day's session of the futures products trading that day.
daily_download_schedule = _download_schedule(
    "daily_download_schedule", DAILY_DOWNLOAD_CRON, True, "download",
    "After each CME close (17:30 ET Mon-Fri), download the raw DBN files of that day's session of each futures product.",
)
#: 20:30 ET: the execution day's session of the equity products (SPY, QQQ).
daily_equity_download_schedule = _download_schedule(
    "daily_equity_download_schedule", DAILY_EQUITY_DOWNLOAD_CRON, False, "download-equities",
    "After the ETFs' extended session (20:30 ET Mon-Fri), download the raw DBN files of that day's session of each equity product.",
)


schedules = [daily_download_schedule, daily_equity_download_schedule]
