"""Freshness of the latest session: was its gold_signals partition materialized within N hours after the close?

Dagster 1.13 has ``build_time_partition_freshness_checks`` (a record for the latest *time window*
by a cron deadline) and ``build_last_update_freshness_checks``; both reason about the partition's
calendar window (midnight to midnight, America/Chicago), not the CME session's close, and know
nothing of early closes. This check measures from the session's close instead (17:00 ET, or the
exchange calendar's earlier close): the latest session whose deadline (close +
``max_hours_after_close``) has passed must have a materialization of gold_signals made after its
close and by that deadline.
"""

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from math import ceil

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

from spymaster_resources import SpymasterResource

from spymaster_core.config import EXCHANGE_CALENDAR, SESSION_TZ, SpymasterConfig
from ..gold.assets import gold_signals
from ..partitions import PARTITION_START
from ..sessions import et_to_utc, exchange_schedule, trading_sessions

#: Hours after the session's close by which gold_signals of the session should exist (download + run).
DEFAULT_MAX_HOURS_AFTER_CLOSE = 6.0


def exchange_close_utc(session_date: date, calendar: str = EXCHANGE_CALENDAR) -> datetime:
    """The close of session ``session_date`` in ``calendar`` (``pandas_market_calendars``; default ES's
    ``CME_Equity``), as an aware UTC datetime: 17:00 ET on a normal CME day, 13:00 ET on an early-close
    day (2013-11-29).

    Raises:
        ValueError: ``session_date`` is not a session of ``calendar`` (a weekend or a holiday).
    """
    schedule = exchange_schedule(calendar)
    if session_date not in schedule.closes:
        raise ValueError(f"{session_date} is not a {calendar} session")
    return schedule.closes[session_date]


def session_close_utc(session_date: date, config: SpymasterConfig) -> datetime:
    """When session ``session_date`` ends, as aware UTC: ``config.session_close`` (17:00 ET), or the exchange calendar's earlier close.

    Raises ValueError when ``session_date`` is not a CME session.
    """
    return min(et_to_utc(session_date, config.session_close), exchange_close_utc(session_date, config.exchange_calendar))


def latest_due_session(now_utc: datetime, max_hours_after_close: float, config: SpymasterConfig) -> date | None:
    """The latest CME session whose close (:func:`session_close_utc`) + ``max_hours_after_close`` hours is at or before ``now_utc`` (aware).

    None when the calendar has no such session in the 15 days before ``now_utc - max_hours_after_close``.
    """
    limit = timedelta(hours=max_hours_after_close)
    latest_close = (now_utc - limit).date()
    for day in reversed(trading_sessions(latest_close - timedelta(days=15), latest_close + timedelta(days=1), config)):
        if session_close_utc(day, config) + limit <= now_utc:
            return day
    return None


def materialization_lag_hours(close_utc: datetime, materialized_utc: datetime | None) -> float | None:
    """Hours from the session's close to its first materialization after the close (None when there is none)."""
    if materialized_utc is None:
        return None
    return (materialized_utc - close_utc).total_seconds() / 3600.0


def build_latest_session_freshness_check(
    max_hours_after_close: float = DEFAULT_MAX_HOURS_AFTER_CLOSE,
    clock: Callable[[], datetime] | None = None,
) -> AssetChecksDefinition:
    """A WARN check on gold_signals: the latest due session was materialized within ``max_hours_after_close`` hours of its close.

    The close is :func:`session_close_utc` (17:00 ET, earlier on early-close days).
    ``clock`` returns the current aware UTC time (tests pass a fixed one). The check is not
    partitioned: it runs with every gold_signals materialization and on its own through
    ``freshness_check_job`` / ``freshness_check_schedule``. It reads the instance's materialization
    records of the session's partition made after the close.
    """
    now = clock or (lambda: datetime.now(timezone.utc))

    @asset_check(
        asset=gold_signals,
        name="gold_signals_latest_session_fresh",
        description=(
            f"The latest CME session whose close is more than {max_hours_after_close:g} h ago has gold_signals "
            f"materialized after its close and within {max_hours_after_close:g} h of it (WARN)."
        ),
    )
    def gold_signals_latest_session_fresh(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
        cfg = spymaster.config
        current = now()
        session = latest_due_session(current, max_hours_after_close, cfg)
        params = {"max_hours_after_close": max_hours_after_close, "now_utc": current.isoformat()}
        if session is None or session.isoformat() < PARTITION_START:
            return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN, description="no session due yet", metadata=params)
        close = session_close_utc(session, cfg)
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("gold_signals"), asset_partitions=[session.isoformat()], after_timestamp=close.timestamp()),
            limit=1,
            ascending=True,
        ).records
        materialized = datetime.fromtimestamp(records[0].timestamp, tz=timezone.utc) if records else None
        lag = materialization_lag_hours(close, materialized)
        passed = lag is not None and lag <= max_hours_after_close
        if lag is None:
            description = f"gold_signals of session {session} (closed {close.isoformat()}) is not materialized"
        else:
            description = f"gold_signals of session {session} materialized {lag:.2f} h after the close" + ("" if passed else f" (> {max_hours_after_close:g} h)")
        return AssetCheckResult(
            passed=passed,
            severity=AssetCheckSeverity.WARN,
            description=description,
            metadata={
                **params,
                "session": session.isoformat(),
                "close_utc": close.isoformat(),
                "materialized_utc": materialized.isoformat() if materialized else "never",
                "lag_hours": lag if lag is not None else -1.0,
            },
        )

    return gold_signals_latest_session_fresh


def _deadline_cron(max_hours_after_close: float) -> str:
    """Daily cron (New York time) at the first full hour after a 17:00 ET close + ``max_hours_after_close``."""
    return f"0 {(17 + ceil(max_hours_after_close)) % 24} * * *"


#: The freshness checks to register (one: gold_signals of the latest session).
freshness_checks = [build_latest_session_freshness_check()]
#: Runs only the freshness check (no asset is materialized).
freshness_check_job = define_asset_job("freshness_check_job", selection=AssetSelection.checks(*freshness_checks))
#: Evaluates the freshness check every day once the latest session's deadline has passed.
freshness_check_schedule = ScheduleDefinition(
    name="freshness_check_schedule",
    job=freshness_check_job,
    cron_schedule=_deadline_cron(DEFAULT_MAX_HOURS_AFTER_CLOSE),
    execution_timezone=SESSION_TZ,
)
