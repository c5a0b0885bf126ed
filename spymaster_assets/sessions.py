"""Trading sessions: which trade dates exist for a product, and their clock in UTC.

A session (one Dagster partition) is keyed by its trade date D. A CME Globex session runs from 18:00
America/New_York on D-1 to 17:00 on D; an equity's (SPY, QQQ) from 04:00 to 20:00 on D (its
extended hours). The clock is the configuration's, set from the product table
(``SpymasterConfig.for_product``). Which dates are sessions comes from the product's
``pandas_market_calendars`` calendar (``CME_Equity`` for ES); DST is handled by the time zone
database, never by fixed offsets. No Dagster here; the library's schedules are kept on disk for the day.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from spymaster_core.config import EXCHANGE_CALENDAR, SESSION_TZ, SpymasterConfig
from spymaster_resources.disk_cache import cached_json

NY = ZoneInfo(SESSION_TZ)
UTC = ZoneInfo("UTC")


def et_to_utc(day: date, wall: time) -> datetime:
    """The UTC instant of wall-clock time ``wall`` in New York on calendar day ``day``."""
    return datetime.combine(day, wall, tzinfo=NY).astimezone(UTC)


def session_bounds_utc(session_date: date, config: SpymasterConfig | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of the session for trade date ``session_date``, as aware UTC datetimes.

    Start is ``config.session_open`` (18:00 ET for CME) on the previous calendar day (on the trade
    date itself when not ``config.session_opens_previous_day``: equities open 04:00), end is
    ``config.session_close`` (17:00 ET for CME, 20:00 for equities) on the trade date. Across a DST change the two ends have
    different UTC offsets (e.g. 2013-11-04: 23:00 UTC Sunday to 22:00 UTC Monday).
    """
    cfg = config or SpymasterConfig()
    open_day = session_date - timedelta(days=1) if cfg.session_opens_previous_day else session_date
    return (
        et_to_utc(open_day, cfg.session_open),
        et_to_utc(session_date, cfg.session_close),
    )


def session_date_of(ts_utc: datetime, config: SpymasterConfig | None = None) -> date:
    """The trade date of the session containing instant ``ts_utc`` (CME events from 18:00 ET belong to the next day; an equity's to the calendar day).

    The 17:00-18:00 ET maintenance break is attributed to the same day's session; callers that
    care filter by :func:`session_bounds_utc`.
    """
    cfg = config or SpymasterConfig()
    local = ts_utc.astimezone(NY)
    rolls = cfg.session_opens_previous_day and local.time() >= cfg.session_open
    return local.date() + timedelta(days=1) if rolls else local.date()


@dataclass(frozen=True)
class ExchangeSchedule:
    """A calendar's sessions: ``sessions`` sorted trade dates, ``closes`` each one's close (aware UTC; earlier on an early-close day)."""

    name: str
    sessions: tuple[date, ...]
    closes: dict[date, datetime]


@lru_cache(maxsize=None)
def exchange_schedule(calendar: str = EXCHANGE_CALENDAR) -> ExchangeSchedule:
    """The sessions of ``calendar`` (a ``pandas_market_calendars`` name, e.g. ``CME_Equity``,
    ``CMEGlobex_GC``, ``XNYS``) from 2000 to about a year ahead: holidays and early closes are the
    library's, never written here. Raises ValueError naming an unknown calendar.

    The library's schedule is kept on disk for the day (``disk_cache.cached_json``, keyed by the
    calendar, the calendar libraries' versions and today's date): computing it takes about a second
    per calendar, which every short command (the daily job, a query) would otherwise pay again."""
    key = {"calendar": calendar, "today": date.today().isoformat(), "versions": [_version("pandas_market_calendars"), _version("exchange_calendars")]}
    rows = cached_json("schedule", key, lambda: _library_schedule(calendar))
    days = tuple(date.fromisoformat(d) for d in rows["sessions"])
    closes = {d: datetime.fromisoformat(close) for d, close in zip(days, rows["closes"], strict=True)}
    return ExchangeSchedule(calendar, days, closes)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _library_schedule(calendar: str) -> dict[str, list[str]]:
    """``{"sessions": [ISO dates], "closes": [ISO aware datetimes]}`` of ``calendar`` from pandas_market_calendars."""
    import pandas_market_calendars as mcal

    try:
        cal = mcal.get_calendar(calendar)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(f"unknown exchange calendar {calendar!r} (a pandas_market_calendars name such as CME_Equity or XNYS): {exc}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schedule = cal.schedule(start_date="2000-01-03", end_date=(date.today() + timedelta(days=400)).isoformat())
    return {"sessions": [ts.date().isoformat() for ts in schedule.index], "closes": [ts.to_pydatetime().isoformat() for ts in schedule["market_close"]]}


@lru_cache(maxsize=None)
def _sessions_with_regular_hours(calendar: str, rth_open: time) -> tuple[date, ...]:
    schedule = exchange_schedule(calendar)
    return tuple(d for d in schedule.sessions if schedule.closes[d] > et_to_utc(d, rth_open))


def trading_sessions(start: date, end: date, config: SpymasterConfig | None = None) -> list[date]:
    """Trade dates of the product's sessions in ``[start, end]``: sessions of its calendar
    (``config.exchange_calendar``; default ES's ``CME_Equity``) that trade past its regular-hours open.

    A session that closes at or before ``config.rth_open`` has no anchor, no opening range and no
    level a trader watches (CME equity futures on Good Friday 2024 closed at 09:15 ET), so it is not
    one of the product's sessions.
    """
    cfg = config or SpymasterConfig()
    days = _sessions_with_regular_hours(cfg.exchange_calendar, cfg.rth_open)
    return list(days[bisect_left(days, start):bisect_right(days, end)])


def is_trading_session(day: date, config: SpymasterConfig | None = None) -> bool:
    """True when ``day`` is one of the product's sessions (:func:`trading_sessions`; default ES)."""
    return bool(trading_sessions(day, day, config))


def session_venue(config: SpymasterConfig | None = None) -> str:
    """Who sets the product's sessions, for messages: "CME" for a futures product, else "NYSE"."""
    cfg = config or SpymasterConfig()
    return "CME" if cfg.spec.is_future else "NYSE"


def non_session_weekdays(start: date, end: date, configs: tuple[SpymasterConfig, ...] = ()) -> list[date]:
    """Weekdays in ``[start, end]`` that are a session of none of the products of ``configs``
    (default: ES alone), for partition exclusions."""
    sessions: set[date] = set()
    for config in configs or (SpymasterConfig(),):
        sessions.update(trading_sessions(start, end, config))
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
