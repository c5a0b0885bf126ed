"""Open interest from statistics records: only stat_type 9, only before the session open, latest wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import databento_dbn as dbn
import polars as pl
import pytest
import zstandard

from spymaster_resources.raw_files import RawCatalog, iter_records
from spymaster_assets.bronze.options_ingest import session_options_open_interest
from spymaster_assets.bronze.options_statistics import OPEN_INTEREST_SCHEMA, decode_statistics, open_interest_before, read_statistics
from spymaster_core.config import SpymasterConfig

CFG = SpymasterConfig()
UTC = timezone.utc
DAY = date(2026, 1, 9)
OPEN = datetime(2026, 1, 8, 23, tzinfo=UTC)  # 18:00 EST on 2026-01-08
CALL, PUT, OTHER = 42780620, 42780700, 5602
FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn" / "databento-fixtures" / "GLBX.MDP3" / "test_data.statistics.dbn.zst"

pytestmark = pytest.mark.filterwarnings("ignore")


def ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


@dataclass(frozen=True)
class _Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass(frozen=True)
class _Mapping:
    raw_symbol: str
    intervals: list[_Interval]


def stat(iid: int, stat_type: dbn.StatType, recv: datetime, quantity: int | None = None, price: float | None = None,
         ref: datetime | None = None, sequence: int = 0, action: dbn.StatUpdateAction = dbn.StatUpdateAction.NEW, version: int = 3):
    """One StatMsg of DBN ``version`` (v1: quantity i32, v3: i64)."""
    module = dbn.v3 if version == 3 else dbn.v1
    undefined_quantity = dbn.UNDEF_STAT_QUANTITY if version == 3 else 2**31 - 1
    return module.StatMsg(
        publisher_id=1, instrument_id=iid, ts_event=ns(recv) - 1000, ts_recv=ns(recv),
        ts_ref=ns(ref) if ref else dbn.UNDEF_TIMESTAMP,
        price=int(round(price * 1e9)) if price is not None else dbn.UNDEF_PRICE,
        quantity=undefined_quantity if quantity is None else quantity,
        stat_type=stat_type, sequence=sequence, update_action=action,
    )


def write_statistics(path: Path, msgs: list, symbols: dict[int, str], version: int = 3) -> Path:
    """A real DBN statistics file (header by databento_dbn, records as databento_dbn encodes them)."""
    first = date(2026, 1, 6)
    mappings = [_Mapping(sym, [_Interval(first, first + timedelta(days=5), str(iid))]) for iid, sym in symbols.items()]
    meta = dbn.Metadata(
        dataset="GLBX.MDP3", start=ns(datetime(2026, 1, 6, tzinfo=UTC)), end=ns(datetime(2026, 1, 10, tzinfo=UTC)),
        stype_in=dbn.SType.RAW_SYMBOL, stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.STATISTICS,
        symbols=list(symbols.values()), partial=[], not_found=[], mappings=mappings, ts_out=False, version=version,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(meta.encode() + b"".join(bytes(m) for m in msgs)))
    return path


def _chain(*ids: int) -> pl.DataFrame:
    return pl.DataFrame({"instrument_id": list(ids)}, schema={"instrument_id": pl.UInt32})


def test_settlement_and_opening_prices_are_never_open_interest(tmp_path):
    msgs = [
        stat(CALL, dbn.StatType.SETTLEMENT_PRICE, datetime(2026, 1, 8, 21, 30, tzinfo=UTC), price=12.5, quantity=400),
        stat(CALL, dbn.StatType.OPENING_PRICE, datetime(2026, 1, 8, 14, 30, tzinfo=UTC), price=10.25, quantity=300),
        stat(PUT, dbn.StatType.SETTLEMENT_PRICE, datetime(2026, 1, 8, 21, 30, tzinfo=UTC), price=3.0, quantity=250),
    ]
    write_statistics(tmp_path / "raw" / "stats.dbn.zst", msgs, {CALL: "EW2F6 C7000", PUT: "EW2F6 P6900"})
    frame, counts, files = session_options_open_interest(RawCatalog(tmp_path / "raw"), DAY, _chain(CALL, PUT), CFG)
    assert files == ["stats.dbn.zst"]
    assert frame.height == 0 and frame.schema == pl.Schema(OPEN_INTEREST_SCHEMA)
    assert counts["stat_types_seen"] == "1:1, 3:2" and counts["stat_records_not_open_interest"] == 3
    assert counts["chain_without_open_interest"] == 2


def test_only_open_interest_published_before_the_open_counts_and_the_latest_wins(tmp_path):
    evening = datetime(2026, 1, 7, 23, 30, tzinfo=UTC)  # 18:30 ET the evening before the session's eve
    morning = datetime(2026, 1, 8, 11, 0, tzinfo=UTC)  # 06:00 ET on the day before: the last before the open
    during = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)  # 07:00 ET during the session: not known at the open
    ref_7th, ref_8th = datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC)
    msgs = [
        stat(CALL, dbn.StatType.OPEN_INTEREST, evening, quantity=1000, ref=ref_7th, sequence=10),
        stat(CALL, dbn.StatType.OPEN_INTEREST, morning, quantity=1200, ref=ref_7th, sequence=20),
        stat(CALL, dbn.StatType.OPEN_INTEREST, during, quantity=5000, ref=ref_8th, sequence=30),
        stat(CALL, dbn.StatType.SETTLEMENT_PRICE, morning, price=11.0),
        stat(PUT, dbn.StatType.OPEN_INTEREST, evening, quantity=700, ref=ref_7th, sequence=11),
        # A record of an instrument outside the chain is not read.
        stat(OTHER, dbn.StatType.OPEN_INTEREST, evening, quantity=2_000_000, sequence=12),
    ]
    write_statistics(tmp_path / "raw" / "stats.dbn.zst", msgs, {CALL: "EW2F6 C7000", PUT: "EW2F6 P6900", OTHER: "ESH6"})
    frame, counts, _ = session_options_open_interest(RawCatalog(tmp_path / "raw"), DAY, _chain(CALL, PUT), CFG)
    assert frame.to_dicts() == [
        {"session_date": DAY, "instrument_id": CALL, "open_interest": 1200, "ts_ref": ref_7th, "ts_recv": morning},
        {"session_date": DAY, "instrument_id": PUT, "open_interest": 700, "ts_ref": ref_7th, "ts_recv": evening},
    ]
    assert counts["open_interest_after_open"] == 1 and counts["open_interest_superseded"] == 1
    assert counts["open_interest_records"] == 4 and counts["stat_records_not_open_interest"] == 1

    # Point in time: the next session (opens 2026-01-09 23:00 UTC) sees the publication made during this one.
    next_frame, _ = open_interest_before(read_statistics([tmp_path / "raw" / "stats.dbn.zst"], [CALL], 1000), date(2026, 1, 12), datetime(2026, 1, 11, 23, tzinfo=UTC))
    assert next_frame["open_interest"].to_list() == [5000] and next_frame["ts_ref"].to_list() == [ref_8th]


def test_delete_undefined_and_equal_time_publications(tmp_path):
    t = datetime(2026, 1, 8, 12, tzinfo=UTC)
    msgs = [
        stat(CALL, dbn.StatType.OPEN_INTEREST, t, quantity=10, sequence=1),
        stat(CALL, dbn.StatType.OPEN_INTEREST, t, quantity=20, sequence=2),  # same ts_recv: larger sequence wins
        stat(PUT, dbn.StatType.OPEN_INTEREST, t, quantity=30, sequence=3),
        stat(PUT, dbn.StatType.OPEN_INTEREST, t + timedelta(minutes=1), quantity=30, sequence=4, action=dbn.StatUpdateAction.DELETE),
        stat(OTHER, dbn.StatType.OPEN_INTEREST, t, quantity=None, sequence=5),  # undefined quantity
    ]
    path = write_statistics(tmp_path / "s.dbn.zst", msgs, {CALL: "C", PUT: "P", OTHER: "X"})
    frame, counts = open_interest_before(read_statistics([path], [CALL, PUT, OTHER], 2), DAY, OPEN)
    assert frame["instrument_id"].to_list() == [CALL] and frame["open_interest"].to_list() == [20]
    assert counts["open_interest_deleted"] == 1 and counts["open_interest_undefined"] == 1
    assert frame["ts_ref"].null_count() == 1  # ts_ref undefined in these records -> null


def test_dbn_v1_statistics_with_i32_quantity_decode_like_v3(tmp_path):
    t = datetime(2026, 1, 8, 12, tzinfo=UTC)
    for version in (1, 3):
        msgs = [
            stat(CALL, dbn.StatType.OPEN_INTEREST, t, quantity=123_456, sequence=1, version=version),
            stat(PUT, dbn.StatType.OPEN_INTEREST, t, quantity=None, sequence=2, version=version),
        ]
        path = write_statistics(tmp_path / f"v{version}.dbn.zst", msgs, {CALL: "C", PUT: "P"}, version=version)
        (records,) = list(iter_records(path))
        assert records["quantity"].dtype.itemsize == (4 if version == 1 else 8)
        decoded = decode_statistics(records)
        assert decoded["quantity"].to_list() == [123_456, None], version
        assert decoded["stat_type"].to_list() == [9, 9] and decoded["ts_recv"].to_list() == [t, t]


@pytest.mark.skipif(not FIXTURE.is_file(), reason="databento statistics fixture missing")
def test_real_statistics_fixture_holds_no_open_interest():
    records = read_statistics([FIXTURE], [5482], 1000)
    assert sorted(set(records["stat_type"].to_list())) == [5, 8]
    frame, counts = open_interest_before(records, date(2020, 12, 29), datetime(2020, 12, 28, 23, tzinfo=UTC))
    assert frame.height == 0 and counts["open_interest_records"] == 0
    assert counts["stat_records_not_open_interest"] == records.height == 4
