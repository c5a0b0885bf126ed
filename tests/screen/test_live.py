"""The live source on a client that replays the real DBN records of a sample session (no test can reach
Databento): the same answers as the batch tables, a lost connection reported and resumed, a gap flagged,
a missing or rejected key said on the page."""

from __future__ import annotations

from datetime import datetime

import databento as db
import polars as pl
import pytest

from spymaster_assets.screen.live import FrontMonthBars, LiveFeed
from spymaster_assets.screen.session import open_live, screen_start
from spymaster_assets.sessions import session_bounds_utc
from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_resources.databento import MissingApiKeyError
from spymaster_resources.lake import Lake

from conftest import CHAIN_SESSIONS

DAY = CHAIN_SESSIONS[-1]


class ReplayingClient:
    """A LiveClient over recorded DBN records: honours an intraday replay's ``start``; can drop the
    connection after ``fail_after`` records or refuse the key."""

    def __init__(self, records, fail_after: int | None = None, reject: bool = False):
        self.records, self.fail_after, self.reject, self.start = records, fail_after, reject, None

    def subscribe(self, dataset, schema, symbols, stype_in, start=None):
        assert (dataset, schema, symbols, stype_in) == ("GLBX.MDP3", "ohlcv-1m", "ES.FUT", "parent")
        if self.reject:
            raise RuntimeError("authentication failed: invalid API key")
        self.start = start

    def __iter__(self):
        for sent, record in enumerate(r for r in self.records if self.start is None or r.ts_event >= self.start.timestamp() * 1e9):
            if self.fail_after is not None and sent == self.fail_after:
                raise ConnectionResetError("connection reset by peer")
            yield record

    def stop(self):
        pass


@pytest.fixture(scope="module")
def records(materialized_home):
    path = next((materialized_home / "raw").rglob(f"*{DAY:%Y%m%d}.ohlcv-1m.dbn.zst"))
    return sorted(db.DBNStore.from_file(path), key=lambda r: r.ts_event)


def _feed(home, client_factory) -> LiveFeed:
    session = open_live(SpymasterConfig.for_home(home), DAY)
    front = FrontMonthBars(session.instrument_id, choose_at=screen_start(DAY))
    return LiveFeed(session.engine, front, client_factory, waits=lambda: iter([0.0] * 5), sleep=lambda seconds: None)


def _answers(events) -> dict:
    return {(d["ts_utc"], a["level_kind"]): ([a["p"][o] for o in OUTCOMES], a["smooth"]["BREAK"]) for n, d in events if n == "bar" for a in d["answers"]}


def _batch(home) -> dict:
    signals = Lake(home / "lake").read("gold", "gold_signals", DAY)
    return {
        (ts.isoformat(), kind): ([r[f"p_{o.lower()}"] for o in OUTCOMES], r["p_break_smooth"])
        for ts, kind, r in ((r["ts_event"], r["level_kind"], r) for r in signals.iter_rows(named=True))
    }


def test_live_answers_equal_the_batch_tables_and_a_lost_connection_resumes(materialized_home, records):
    clean = list(_feed(materialized_home, lambda: ReplayingClient(records)).events())
    assert [n for n, _ in clean][0] == "status" and clean[-1][0] == "end"
    assert _answers(clean) == _batch(materialized_home)

    opened: list[ReplayingClient] = []

    def drops_once() -> ReplayingClient:
        opened.append(ReplayingClient(records, fail_after=len(records) // 2 if not opened else None))
        return opened[-1]

    dropped = list(_feed(materialized_home, drops_once).events())
    assert len(opened) == 2 and opened[1].start is not None
    statuses = [d["message"] for n, d in dropped if n == "status"]
    assert any("live connection lost (ConnectionResetError: connection reset by peer); retrying in 0 s" in m for m in statuses)
    assert any("replaying from" in m for m in statuses)
    times = [d["ts_utc"] for n, d in dropped if n == "bar"]
    assert times == sorted(set(times)) and times == [d["ts_utc"] for n, d in clean if n == "bar"]
    assert _answers(dropped) == _answers(clean)


def test_minutes_that_never_arrive_are_flagged_not_filled(materialized_home, records):
    front = open_live(SpymasterConfig.for_home(materialized_home), DAY).instrument_id
    hole = [r for r in records if not (r.instrument_id == front and "2013-10-11 14:00" <= datetime.utcfromtimestamp(r.ts_event / 1e9).strftime("%Y-%m-%d %H:%M") < "2013-10-11 14:03")]
    events = list(_feed(materialized_home, lambda: ReplayingClient(hole)).events())
    flagged = [(d["time_ny"], d["gap_minutes"]) for n, d in events if n == "bar" and d["gap_minutes"]]
    assert flagged == [("10:04", 3)]


def test_a_bar_out_of_order_is_said_and_ignored(materialized_home, records):
    front = open_live(SpymasterConfig.for_home(materialized_home), DAY).instrument_id
    mine = [i for i, r in enumerate(records) if r.instrument_id == front]
    late = mine[len(mine) // 2]
    shuffled = records[: late + 5] + [records[late]] + records[late + 5:]  # one bar sent again, later
    events = list(_feed(materialized_home, lambda: ReplayingClient(shuffled)).events())
    problems = [d["message"] for n, d in events if n == "problem"]
    assert len(problems) == 1 and "out of order, ignored" in problems[0]
    assert events[-1][0] == "end"


def test_a_missing_or_rejected_key_is_said_and_ends_the_stream(materialized_home, records):
    def no_key():
        raise MissingApiKeyError("no Databento API key: set DATABENTO_API_KEY")

    assert list(_feed(materialized_home, no_key).events()) == [("problem", {"message": "live: no Databento API key: set DATABENTO_API_KEY"})]
    rejected = list(_feed(materialized_home, lambda: ReplayingClient(records, reject=True)).events())
    assert rejected == [("problem", {"message": "live: the API key was rejected (authentication failed: invalid API key)"})]


def test_the_front_month_is_chosen_by_volume_when_the_lake_does_not_name_it(materialized_home, records):
    front = FrontMonthBars(None, choose_at=screen_start(DAY))
    end = session_bounds_utc(DAY)[1]
    bars = [b for b in (front.bar(r) for r in records) if b is not None and b["ts_event"] < end]
    assert front.instrument_id == open_live(SpymasterConfig.for_home(materialized_home), DAY).instrument_id
    assert bars and bars[0]["ts_event"] >= screen_start(DAY)
    batch = Lake(materialized_home / "lake").read("bronze", "bronze_futures_ohlcv_1m", DAY).filter(pl.col("ts_event") >= screen_start(DAY))
    assert [b["close"] for b in bars] == batch["close"].to_list()
