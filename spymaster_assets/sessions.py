"""CME Globex sessions: which trade dates exist, and their clock in UTC.

A session (one Dagster partition) is keyed by its trade date D and runs from 18:00 America/New_York
on D-1 to 17:00 on D (CME Globex equity futures hours). Which dates are sessions comes from the
``exchange_calendars`` "CMES" calendar; DST is handled by the time zone database, never by fixed
offsets. Everything here is pure (no Dagster).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

from spymaster_core.config import EXCHANGE_CALENDAR, SESSION_TZ, SpymasterConfig

NY = ZoneInfo(SESSION_TZ)
UTC = ZoneInfo("UTC")


def et_to_utc(day: date, wall: time) -> datetime:
    """The UTC instant of wall-clock time ``wall`` in New York on calendar day ``day``."""
    return datetime.combine(day, wall, tzinfo=NY).astimezone(UTC)


def session_bounds_utc(session_date: date, config: SpymasterConfig | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of the Globex session for trade date ``session_date``, as aware UTC datetimes.

    Start is ``config.session_open`` (18:00 ET) on the previous calendar day, end is
    ``config.session_close`` (17:00 ET) on the trade date. Across a DST change the two ends have
    different UTC offsets (e.g. 2013-11-04: 23:00 UTC Sunday to 22:00 UTC Monday).
    """
    cfg = config or SpymasterConfig()
    return (
        et_to_utc(session_date - timedelta(days=1), cfg.session_open),
        et_to_utc(session_date, cfg.session_close),
    )


def session_date_of(ts_utc: datetime, config: SpymasterConfig | None = None) -> date:
    """The trade date of the session containing instant ``ts_utc`` (events from 18:00 ET belong to the next day).

    The 17:00-18:00 ET maintenance break is attributed to the same day's session; callers that
    care filter by :func:`session_bounds_utc`.
    """
    cfg = config or SpymasterConfig()
    local = ts_utc.astimezone(NY)
    return local.date() + timedelta(days=1) if local.time() >= cfg.session_open else local.date()


@lru_cache(maxsize=1)
def _calendar() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(EXCHANGE_CALENDAR, start="2000-01-03")


def trading_sessions(start: date, end: date) -> list[date]:
    """Trade dates of CME equity sessions in ``[start, end]`` from the exchange calendar (holidays excluded)."""
    cal = _calendar()
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = min(pd.Timestamp(end), cal.last_session)
    if lo > hi:
        return []
    return [ts.date() for ts in cal.sessions_in_range(lo, hi)]


def is_trading_session(day: date) -> bool:
    """True when ``day`` is a CME equity futures session according to the exchange calendar."""
    return _calendar().is_session(pd.Timestamp(day))


def non_session_weekdays(start: date, end: date) -> list[date]:
    """Weekdays in ``[start, end]`` that are not sessions (exchange holidays), for partition exclusions."""
    sessions = set(trading_sessions(start, end))
    out: list[date] = []
    d = start
    while d <= end:
        if d.weekday() < 5 and d not in sessions:
            out.append(d)
        d += timedelta(days=1)
    return out


def minutes_since_rth_open(ts_utc: datetime, session_date: date, config: SpymasterConfig | None = None) -> float:
    """Minutes from 09:30 ET of ``session_date`` to ``ts_utc`` (negative before the open)."""
    cfg = config or SpymasterConfig()
    return (ts_utc - et_to_utc(session_date, cfg.rth_open)).total_seconds() / 60.0
