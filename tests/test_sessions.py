"""Session clock and calendar: DST by the time zone, holidays from the CME calendar."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from spymaster_assets.sessions import (
    is_trading_session,
    minutes_since_rth_open,
    non_session_weekdays,
    session_bounds_utc,
    session_date_of,
    trading_sessions,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_session_bounds_follow_dst():
    # Summer (EDT, UTC-4): 18:00 ET = 22:00 UTC, 17:00 ET = 21:00 UTC.
    assert session_bounds_utc(date(2013, 10, 8)) == (utc(2013, 10, 7, 22), utc(2013, 10, 8, 21))
    # Winter (EST, UTC-5).
    assert session_bounds_utc(date(2013, 12, 18)) == (utc(2013, 12, 17, 23), utc(2013, 12, 18, 22))
    # DST ended on Sunday 2013-11-03 at 02:00: the Monday session opens in EST.
    assert session_bounds_utc(date(2013, 11, 4)) == (utc(2013, 11, 3, 23), utc(2013, 11, 4, 22))
    # DST began on Sunday 2014-03-09: the Monday session opens in EDT.
    assert session_bounds_utc(date(2014, 3, 10)) == (utc(2014, 3, 9, 22), utc(2014, 3, 10, 21))


def test_evening_events_belong_to_the_next_trade_date():
    assert session_date_of(utc(2013, 10, 7, 22, 0)) == date(2013, 10, 8)  # 18:00 ET Monday
    assert session_date_of(utc(2013, 10, 7, 21, 59)) == date(2013, 10, 7)  # 17:59 ET Monday
    assert session_date_of(utc(2013, 10, 8, 13, 30)) == date(2013, 10, 8)  # 09:30 ET


def test_minutes_since_open_in_both_seasons():
    assert minutes_since_rth_open(utc(2013, 10, 8, 13, 45), date(2013, 10, 8)) == 15.0
    assert minutes_since_rth_open(utc(2013, 12, 18, 14, 45), date(2013, 12, 18)) == 15.0


def test_calendar_knows_holidays_and_weekends():
    assert is_trading_session(date(2013, 10, 14))  # Columbus Day: CME equity futures trade
    assert not is_trading_session(date(2013, 12, 25))
    assert not is_trading_session(date(2013, 10, 12))  # Saturday
    week = trading_sessions(date(2013, 12, 23), date(2013, 12, 27))
    assert week == [date(2013, 12, 23), date(2013, 12, 24), date(2013, 12, 26), date(2013, 12, 27)]
    assert non_session_weekdays(date(2013, 12, 23), date(2014, 1, 3)) == [date(2013, 12, 25), date(2014, 1, 1)]


def test_the_library_schedule_is_kept_on_disk_for_the_day_and_read_back_equal(tmp_path, monkeypatch):
    """A new process reads the calendar's schedule from the cache instead of asking the library again."""
    import pandas_market_calendars as mcal

    from spymaster_assets import sessions

    monkeypatch.setenv("SPYMASTER_CACHE_DIR", str(tmp_path))
    sessions.exchange_schedule.cache_clear()
    computed = sessions.exchange_schedule("CME_Equity")
    assert len(list(tmp_path.glob("schedule-*.json"))) == 1
    sessions.exchange_schedule.cache_clear()  # as in a new process

    def refuse(name):
        raise AssertionError("the library was asked again")

    monkeypatch.setattr(mcal, "get_calendar", refuse)
    again = sessions.exchange_schedule("CME_Equity")
    assert again == computed and again.closes[date(2024, 3, 28)] == computed.closes[date(2024, 3, 28)]
    assert again.closes[date(2024, 3, 28)].utcoffset() is not None  # aware, as the library's
    # Another calendar is another key: computed (here refused), never read from the wrong file.
    with pytest.raises(AssertionError, match="asked again"):
        sessions.exchange_schedule("XNYS")
    sessions.exchange_schedule.cache_clear()
