"""The session's 0DTE chain: real definitions (EW2F6 C7000, ESM4 quarterly options) and hand-made edge cases."""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from spymaster_resources.raw_files import RawCatalog, read_definitions
from spymaster_assets.bronze.options_chain import CHAIN_SCHEMA, select_chain
from spymaster_assets.bronze.options_ingest import definition_files_for_session, session_option_definitions
from spymaster_core.config import SpymasterConfig
from spymaster_assets.sessions import session_bounds_utc, trading_sessions

NAUTILUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn" / "nautilus"
EXERCISE = NAUTILUS / "options_exercise"
CFG = SpymasterConfig()
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=timezone.utc)

pytestmark = [
    pytest.mark.skipif(not NAUTILUS.is_dir(), reason=f"shared data not found at {NAUTILUS}"),
    pytest.mark.filterwarnings("ignore"),
]


def _definitions(*paths: Path) -> pl.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_definitions(list(paths), until=FAR_FUTURE)


def test_ew2f6_c7000_is_in_the_2026_01_09_chain_only():
    defs = _definitions(EXERCISE / "options_definition.dbn.zst", EXERCISE / "futures_definition.dbn.zst")
    on_day = select_chain(defs, date(2026, 1, 9), "ESH6", CFG)
    assert on_day.chain["raw_symbol"].to_list() == ["EW2F6 C7000"]
    row = on_day.chain.row(0, named=True)
    assert row["instrument_id"] == 42780620 and row["asset"] == "EW2" and row["instrument_class"] == "C"
    assert row["strike_price"] == 7000.0 and row["multiplier"] == 50.0 and row["underlying"] == "ESH6"
    # 21:00 UTC in January (EST, UTC-5) is 16:00 in New York.
    assert row["expiration"] == datetime(2026, 1, 9, 21, tzinfo=timezone.utc)
    assert on_day.chain.schema == pl.Schema(CHAIN_SCHEMA)
    assert on_day.counts["calls"] == 1 and on_day.counts["puts"] == 0 and on_day.roots == ["EW2"]
    assert on_day.unlisted_roots == []

    day_before = select_chain(defs, date(2026, 1, 8), "ESH6", CFG)
    assert day_before.chain.height == 0 and day_before.counts["expiring_today"] == 0
    # Another front month than the option's underlying: not in the chain either.
    other = select_chain(defs, date(2026, 1, 9), "ESM6", CFG)
    assert other.chain.height == 0 and other.counts["other_underlying"] == 1


def test_chain_definitions_are_found_by_publication_window_not_by_last_modification():
    catalog = RawCatalog(EXERCISE)
    start, end = session_bounds_utc(date(2026, 1, 9), CFG)
    # Both definitions were last modified on 2026-01-04 (ts_event), so the ts_event window of
    # bronze_definitions misses the files published on 2026-01-09 ...
    assert catalog.files_for_window("definition", start - timedelta(days=1), end) == []
    # ... while their header request range [2026-01-09, 2026-01-10) lies in the session.
    names = sorted(f.path.name for f in definition_files_for_session(catalog, date(2026, 1, 9), CFG))
    assert names == ["futures_definition.dbn.zst", "options_definition.dbn.zst"]
    defs, files = session_option_definitions(catalog, date(2026, 1, 9), CFG)
    assert sorted(defs["raw_symbol"].to_list()) == ["ESH6", "EW2F6 C7000"] and len(files) == 2
    # Published 2026-01-09 00:00 UTC, after the 2026-01-08 session closed (22:00 UTC): not known then.
    assert definition_files_for_session(catalog, date(2026, 1, 8), CFG) == []


def test_esm4_quarterly_options_are_only_in_their_expiry_day_chain():
    defs = _definitions(NAUTILUS / "definition-glbx-es-opt.dbn.zst", NAUTILUS / "options_catalog" / "options_definition.dbn.zst")
    esm4 = defs.filter(pl.col("underlying") == "ESM4")
    assert sorted(esm4["raw_symbol"].to_list()) == ["ESM4 C3550", "ESM4 C4250", "ESM4 P5230", "ESM4 P5250"]
    expiry = datetime(2024, 6, 21, 13, 30, tzinfo=timezone.utc)  # 09:30 EDT, the futures' opening quotation
    assert esm4["expiration"].unique().to_list() == [expiry]

    session_open, _ = session_bounds_utc(date(2024, 6, 21), CFG)
    assert session_open == datetime(2024, 6, 20, 22, tzinfo=timezone.utc) < expiry  # alive at the 18:00 ET open
    chain = select_chain(defs, date(2024, 6, 21), "ESM4", CFG)
    assert sorted(chain.chain["raw_symbol"].to_list()) == ["ESM4 C3550", "ESM4 C4250", "ESM4 P5230", "ESM4 P5250"]
    assert chain.counts["calls"] == 2 and chain.counts["puts"] == 2
    assert chain.strike_range == (3550.0, 5250.0) and chain.roots == ["ES"]

    # The same day with ESU4 as the front month (after the roll): their underlying is not it.
    assert select_chain(defs, date(2024, 6, 21), "ESU4", CFG).chain.height == 0
    # No other session of 2023-08 .. 2024-07 has them (whatever the front month).
    for day in trading_sessions(date(2023, 8, 1), date(2024, 7, 31)):
        if day != date(2024, 6, 21):
            assert select_chain(defs, day, "ESM4", CFG).chain.height == 0, day


def _definition(iid: int, cls: str, asset: str, underlying: str, strike: float | None, expiration: datetime, multiplier: float | None = 50.0) -> dict:
    return {
        "instrument_id": iid,
        "raw_symbol": f"{asset} {cls}{int(strike or 0)}" if cls in "CP" else asset,
        "instrument_class": cls,
        "security_type": "OOF" if cls in "CP" else "FUT",
        "asset": asset,
        "underlying": underlying,
        "expiration": expiration,
        "activation": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "min_price_increment": 0.05 if cls in "CP" else 0.25,
        "unit_of_measure_qty": multiplier,
        "strike_price": strike,
        "ts_recv": datetime(2026, 1, 7, tzinfo=timezone.utc),
    }


def test_selection_uses_the_new_york_expiry_date_and_the_definition_fields():
    utc = timezone.utc
    rows = [
        # 2026-01-10 01:00 UTC is 2026-01-09 20:00 EST: a 2026-01-09 expiry although its UTC date is the 10th.
        _definition(1, "P", "E2A", "ESH6", 6900.0, datetime(2026, 1, 10, 1, tzinfo=utc)),
        # 2026-01-09 03:00 UTC is 2026-01-08 22:00 EST: the 8th, not the 9th.
        _definition(2, "C", "EW2", "ESH6", 6950.0, datetime(2026, 1, 9, 3, tzinfo=utc)),
        # A root outside the listed weeklies: kept, reported.
        _definition(3, "C", "XYZ", "ESH6", 7050.0, datetime(2026, 1, 9, 21, tzinfo=utc)),
        # Undefined multiplier: taken from the front-month future's definition (50).
        _definition(4, "P", "EW2", "ESH6", 6800.0, datetime(2026, 1, 9, 21, tzinfo=utc), multiplier=None),
        # Same day, but on the back month; and one without a strike.
        _definition(5, "C", "EW2", "ESM6", 7000.0, datetime(2026, 1, 9, 21, tzinfo=utc)),
        _definition(6, "C", "EW2", "ESH6", None, datetime(2026, 1, 9, 21, tzinfo=utc)),
        _definition(7, "F", "ESH6", "", None, datetime(2026, 3, 20, 13, 30, tzinfo=utc)),
    ]
    defs = pl.DataFrame(rows).with_columns(
        pl.col("instrument_id").cast(pl.UInt32),
        *(pl.col(c).cast(pl.Datetime("ns", "UTC")) for c in ("expiration", "activation", "ts_recv")),
    )
    chain = select_chain(defs, date(2026, 1, 9), "ESH6", CFG)
    # Sorted by expiration, then root, strike: ids 4 (21:00, EW2), 3 (21:00, XYZ), 1 (01:00 next UTC day).
    assert chain.chain["instrument_id"].to_list() == [4, 3, 1]
    assert chain.chain.filter(pl.col("instrument_id") == 4)["multiplier"].to_list() == [50.0]
    assert chain.roots == ["E2A", "EW2", "XYZ"] and chain.unlisted_roots == ["XYZ"]
    assert chain.counts["unlisted_root"] == 1
    assert chain.counts["other_underlying"] == 1 and chain.counts["undefined_strike"] == 1
    assert chain.counts["expiring_today"] == 5  # ids 1, 3, 4, 5, 6
    assert select_chain(defs, date(2026, 1, 8), "ESH6", CFG).chain["instrument_id"].to_list() == [2]
