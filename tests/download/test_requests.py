"""Requests built for a session: dataset, schemas, symbols, stype_in and [start, end) in UTC across DST; what raw/ already covers."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import pytest

from spymaster_resources.raw_files import RawCatalog
from spymaster_core.config import SpymasterConfig
from spymaster_assets.download.requests import (
    ES_0DTE_OPTION_PARENTS,
    covers,
    present_request_keys,
    request_key,
    session_requests,
)

from .fake_databento import write_header_only_dbn


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


BASE = SpymasterConfig(home="unused")
WITH_ALL = dataclasses.replace(BASE, download_order_flow_schemas=("trades", "mbp-10"), download_options=True)

# Session open 18:00 ET the day before, close 17:00 ET: EST = UTC-5 in January, EDT = UTC-4 in July.
WINTER = (date(2024, 1, 10), utc(2024, 1, 9, 23), utc(2024, 1, 10, 22))
SUMMER = (date(2024, 7, 10), utc(2024, 7, 9, 22), utc(2024, 7, 10, 21))


@pytest.mark.parametrize("session, start, end", [WINTER, SUMMER])
def test_futures_requests_cover_the_session_in_utc(session, start, end):
    requests = session_requests(session, BASE, have=set())
    assert [r.schema for r in requests] == ["definition", "ohlcv-1m"]
    for r in requests:
        assert r.dataset == "GLBX.MDP3"
        assert r.symbols == ("ES.FUT",)
        assert r.stype_in == "parent"
        assert r.end == end
        assert r.slug == "es-fut"
    by_schema = {r.schema: r for r in requests}
    assert by_schema["ohlcv-1m"].start == start
    # Definitions are published before the session: the request starts a day earlier.
    assert by_schema["definition"].start == start - timedelta(hours=24)
    kwargs = by_schema["ohlcv-1m"].api_kwargs()
    assert kwargs == {"dataset": "GLBX.MDP3", "schema": "ohlcv-1m", "symbols": ["ES.FUT"], "stype_in": "parent", "start": start, "end": end}


@pytest.mark.parametrize("session, start, end", [WINTER, SUMMER])
def test_order_flow_and_options_requests(session, start, end):
    requests = session_requests(session, WITH_ALL, have=set())
    futures = [r for r in requests if r.symbols == ("ES.FUT",)]
    options = [r for r in requests if r.symbols != ("ES.FUT",)]
    assert [r.schema for r in futures] == ["definition", "ohlcv-1m", "trades", "mbp-10"]
    assert [r.schema for r in options] == ["definition", "statistics", "bbo-1m", "trades"]
    for r in options:
        assert r.symbols == ES_0DTE_OPTION_PARENTS
        assert r.stype_in == "parent"
        assert r.end == end
        assert r.slug == "es-0dte-opt"
    starts = {r.schema: r.start for r in options}
    # Wednesday sessions: the previous session opened exactly 24 h earlier, so both early schemas start there.
    assert starts == {"definition": start - timedelta(hours=24), "statistics": start - timedelta(hours=24), "bbo-1m": start, "trades": start}
    assert {r.start for r in futures if r.schema in ("trades", "mbp-10")} == {start}


def test_option_parents_are_the_es_roots_expiring_any_weekday():
    expected = {"ES.OPT", "EW.OPT", "EW1.OPT", "EW2.OPT", "EW3.OPT", "EW4.OPT"}
    expected |= {f"E{w}{d}.OPT" for w in range(1, 6) for d in "ABCD"}  # Monday A .. Thursday D, weeks 1-5
    assert set(ES_0DTE_OPTION_PARENTS) == expected
    assert len(ES_0DTE_OPTION_PARENTS) == 26


def test_without_options_no_option_requests():
    requests = session_requests(WINTER[0], dataclasses.replace(BASE, download_order_flow_schemas=("trades",)), have=set())
    assert all(r.symbols == ("ES.FUT",) for r in requests)
    assert [r.schema for r in requests] == ["definition", "ohlcv-1m", "trades"]


def test_monday_statistics_reach_back_to_fridays_session():
    # Monday 2024-07-15: open Sunday 2024-07-14 18:00 EDT = 22:00Z. The previous session (Friday
    # 2024-07-12) opened Thursday 2024-07-11 18:00 EDT = 22:00Z: open interest published Friday morning.
    requests = {r.schema: r for r in session_requests(date(2024, 7, 15), WITH_ALL, have=set()) if r.slug == "es-0dte-opt"}
    assert requests["statistics"].start == utc(2024, 7, 11, 22)
    assert requests["definition"].start == utc(2024, 7, 13, 22)
    assert requests["trades"].start == utc(2024, 7, 14, 22)


def test_first_session_after_dst_changes():
    # 2024-03-11: DST began 2024-03-10 02:00, so Sunday 18:00 is already EDT (22:00Z).
    (ohlcv,) = [r for r in session_requests(date(2024, 3, 11), BASE, have=set()) if r.schema == "ohlcv-1m"]
    assert (ohlcv.start, ohlcv.end) == (utc(2024, 3, 10, 22), utc(2024, 3, 11, 21))
    # 2024-11-04: DST ended 2024-11-03 02:00, so Sunday 18:00 is EST (23:00Z).
    (ohlcv,) = [r for r in session_requests(date(2024, 11, 4), BASE, have=set()) if r.schema == "ohlcv-1m"]
    assert (ohlcv.start, ohlcv.end) == (utc(2024, 11, 3, 23), utc(2024, 11, 4, 22))


def test_have_drops_present_schemas_and_symbols():
    have = {request_key("ohlcv-1m", "ES.FUT"), request_key("trades", "ES.OPT"), request_key("trades", "EW.OPT")}
    requests = session_requests(WINTER[0], WITH_ALL, have=have)
    assert ("ohlcv-1m", ("ES.FUT",)) not in [(r.schema, r.symbols) for r in requests]
    (option_trades,) = [r for r in requests if r.schema == "trades" and r.slug.startswith("es-0dte-opt")]
    assert set(option_trades.symbols) == set(ES_0DTE_OPTION_PARENTS) - {"ES.OPT", "EW.OPT"}
    # A subset gets its own file name, so it never overwrites the whole group's file.
    assert option_trades.slug != "es-0dte-opt"
    everything = {request_key(r.schema, s) for r in session_requests(WINTER[0], WITH_ALL, have=set()) for s in r.symbols}
    assert session_requests(WINTER[0], WITH_ALL, have=everything) == []


def test_not_a_session():
    with pytest.raises(ValueError, match="2024-01-13 is not a CME Globex session of ES"):
        session_requests(date(2024, 1, 13), BASE, have=set())  # a Saturday
    with pytest.raises(ValueError, match="not a CME Globex session"):
        session_requests(date(2024, 12, 25), BASE, have=set())  # Christmas


def test_covers_needs_the_union_without_gaps():
    assert covers([(0, 5), (5, 10)], 0, 10)
    assert covers([(3, 10), (-2, 4)], 0, 10)
    assert not covers([(0, 5), (6, 10)], 0, 10)
    assert not covers([(1, 10)], 0, 10)
    assert not covers([(0, 9)], 0, 10)
    assert not covers([], 0, 10)


def test_present_keys_from_raw_headers(tmp_path):
    config = dataclasses.replace(BASE, home=tmp_path, download_options=True)
    raw = tmp_path / "raw" / "GLBX.MDP3"
    session, start, end = WINTER
    # Databento-style UTC-day files: the session (23:00Z on the 9th to 22:00Z on the 10th) needs both days.
    for day in (9, 10):
        write_header_only_dbn(raw / f"glbx-mdp3-202401{day:02d}.ohlcv-1m.dbn.zst", "ohlcv-1m", ["ES.FUT"], utc(2024, 1, day), utc(2024, 1, day + 1))
    # Definitions: only the 10th, so the session's first hour is missing.
    write_header_only_dbn(raw / "defs-10.dbn.zst", "definition", ["ES.FUT"], utc(2024, 1, 10), utc(2024, 1, 11))
    # Trades of one contract by raw symbol do not stand in for the ES.FUT parent.
    write_header_only_dbn(raw / "esh4.trades.dbn.zst", "trades", ["ESH4"], utc(2024, 1, 9), utc(2024, 1, 11), stype_in="raw_symbol")
    # One options file covering two roots over the whole session.
    write_header_only_dbn(raw / "opt.bbo.dbn.zst", "bbo-1m", ["ES.OPT", "E2C.OPT"], start, end)
    # A statistics file for every symbol of the dataset.
    write_header_only_dbn(raw / "all.statistics.dbn.zst", "statistics", ["ALL_SYMBOLS"], start - timedelta(days=1), end, stype_in="raw_symbol")
    # Another dataset never counts.
    write_header_only_dbn(raw / "xnas.dbn.zst", "trades", ["ES.OPT"], start, end, dataset="XNAS.ITCH")

    present = present_request_keys(RawCatalog(tmp_path / "raw"), session, config)
    expected = {"ohlcv-1m:ES.FUT", "bbo-1m:ES.OPT", "bbo-1m:E2C.OPT"} | {f"statistics:{p}" for p in ES_0DTE_OPTION_PARENTS}
    assert present == expected

    # The summer session is not covered by January files.
    assert present_request_keys(RawCatalog(tmp_path / "raw"), SUMMER[0], config) == set()
    # A data root without raw/ has nothing.
    assert present_request_keys(RawCatalog(tmp_path / "nothing"), session, config) == set()


def test_sample_files_cover_their_sessions(tmp_path):
    # The committed real sample: Databento UTC-day files of ES.FUT definition and ohlcv-1m.
    import shutil

    from tests.conftest import SAMPLE_RAW

    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("20131006", "20131007", "20131008"):
        for schema in ("definition", "ohlcv-1m"):
            src = SAMPLE_RAW / "GLBX.MDP3" / f"glbx-mdp3-{name}.{schema}.dbn.zst"
            shutil.copy2(src, raw / src.name)
    config = dataclasses.replace(BASE, home=tmp_path)
    catalog = RawCatalog(raw)
    # 2013-10-08 runs 2013-10-07 22:00Z -> 2013-10-08 21:00Z: inside the 7th and 8th files.
    assert present_request_keys(catalog, date(2013, 10, 8), config) == {"definition:ES.FUT", "ohlcv-1m:ES.FUT"}
    assert session_requests(date(2013, 10, 8), config, present_request_keys(catalog, date(2013, 10, 8), config)) == []
    # 2013-10-09 needs the 9th too.
    assert present_request_keys(catalog, date(2013, 10, 9), config) == set()
