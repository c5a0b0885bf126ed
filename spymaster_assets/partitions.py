"""Trading-day partitions: one per trading session, keyed by its trade date.

Weekends and the days that are a session of no shipped product (from each product's exchange
calendar) are excluded, so partition offsets in
``TimeWindowPartitionMapping`` count sessions, not calendar days. The first partition is
``SPYMASTER_PARTITION_START`` (default 2013-10-01, before the embedded sample's first session).
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta

from dagster import DailyPartitionsDefinition, TimeWindowPartitionMapping

from spymaster_core.config import SpymasterConfig
from spymaster_core.products import PRODUCTS

from .sessions import non_session_weekdays

PARTITION_START = os.environ.get("SPYMASTER_PARTITION_START", "2013-10-01")


def _holiday_exclusions(start: date) -> list[datetime]:
    # The calendars know holidays about a year ahead; partitions never run past today. A weekday is
    # a partition when it is a session of any shipped product (one partition set for every product:
    # DESIGN.md "Products"); a product's own non-sessions among them are skipped in code.
    end = date.today() + timedelta(days=400)
    base = SpymasterConfig()
    configs = tuple(base.for_product(symbol) for symbol in PRODUCTS)
    return [datetime(d.year, d.month, d.day) for d in non_session_weekdays(start, end, configs)]


#: ``end_offset=1``: session D's partition exists from 00:00 CT on D (the session itself opened at
#: 17:00 CT the evening before), so the after-close schedule can request the session that just ended.
trading_day_partitions = DailyPartitionsDefinition(
    start_date=PARTITION_START,
    timezone="America/Chicago",
    end_offset=1,
    exclusions=["0 0 * * 6", "0 0 * * 0", *_holiday_exclusions(date.fromisoformat(PARTITION_START))],
)

#: The session itself and the one before it (moving-average warm-up).
WITH_PREVIOUS_SESSION = TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
#: Only the previous session (what an "as of D" artefact adds to the one of D-1).
PREVIOUS_SESSION = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


def trailing_sessions(n: int) -> TimeWindowPartitionMapping:
    """The ``n`` sessions strictly before the partition (normalization look-back)."""
    return TimeWindowPartitionMapping(start_offset=-n, end_offset=-1)


def session_of_partition_key(key: str) -> date:
    """The trade date of a partition key ``YYYY-MM-DD``."""
    return date.fromisoformat(key)
