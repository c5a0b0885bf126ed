"""Options trades / top of book for a SET of chain instruments: real bbo-1m and mbp-1 fixtures, generated trades."""

from __future__ import annotations

import shutil
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import databento as db
import numpy as np
import polars as pl
import pytest

from spymaster_resources.raw_files import RawCatalog, empty_definitions, read_definitions
from spymaster_assets.bronze.market_records import BBO_SCHEMA, TRADES_SCHEMA
from spymaster_assets.bronze.options_chain import CHAIN_SCHEMA, empty_chain, select_chain
from spymaster_assets.bronze.options_ingest import session_options_bbo, session_options_trades
from spymaster_assets.bronze.schemas import BRONZE_OPTIONS_BBO, BRONZE_OPTIONS_TRADES
from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import RawDataError

from .dbn_writer import ns, records, write_dbn

NAUTILUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn" / "nautilus"
CFG = SpymasterConfig()
UTC = timezone.utc
P5250, P5230 = 4163986, 42449452  # ESM4 puts of the options_catalog fixtures

pytestmark = [
    pytest.mark.filterwarnings("ignore"),
]


def _collect(stream) -> pl.DataFrame:
    frames = list(stream.frames)
    return pl.concat(frames) if frames else pl.DataFrame(schema=stream.schema)


def _reference(path: Path, ids: set[int]) -> pl.DataFrame:
    """The same records decoded independently by databento's own to_df (prices already in points)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = db.DBNStore.from_file(path).to_df(pretty_ts=False).reset_index()
    df = df[df["instrument_id"].isin(ids)]
    return pl.DataFrame({c: df[c].to_numpy() for c in ("ts_recv", "sequence", "instrument_id", "bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00")})


def _chain_of(ids: list[int], session_date: date) -> pl.DataFrame:
    """A chain frame naming ``ids`` (the ESM4 fixtures are not 0DTE on their day; decoding does not care why an id is chosen)."""
    n = len(ids)
    return pl.DataFrame(
        {
            "session_date": [session_date] * n, "instrument_id": ids, "raw_symbol": ["x"] * n, "asset": ["ES"] * n,
            "instrument_class": ["P"] * n, "underlying": ["ESM4"] * n, "strike_price": [5000.0] * n,
            "expiration": [datetime(2024, 6, 21, 13, 30, tzinfo=UTC)] * n, "multiplier": [50.0] * n, "min_price_increment": [None] * n,
        },
        schema=CHAIN_SCHEMA,
    )


def test_ew2f6_bbo_1m_decodes_for_the_2026_01_09_chain(tmp_path):
    src = NAUTILUS / "options_exercise"
    shutil.copytree(src, tmp_path / "raw")
    catalog = RawCatalog(tmp_path / "raw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        defs = read_definitions([src / "options_definition.dbn.zst"], until=datetime(2026, 1, 10, tzinfo=UTC))
    chain = select_chain(defs, date(2026, 1, 9), "ESH6", CFG).chain
    stream = session_options_bbo(catalog, date(2026, 1, 9), chain, empty_definitions(), CFG)
    bbo = _collect(stream)
    BRONZE_OPTIONS_BBO.validate(bbo)
    assert stream.source == "bbo-1m" and bbo.schema == pl.Schema(BBO_SCHEMA)
    ref = _reference(next(src.glob("options_bbo-1m_*")), {42780620})
    assert bbo.height == ref.height == 8
    assert bbo["bid_px_00"].to_list() == ref["bid_px_00"].to_list()
    assert bbo["ask_px_00"].to_list() == ref["ask_px_00"].to_list()
    assert bbo["bid_px_00"][0] == 9.5 and bbo["ask_px_00"][0] == 10.25  # first minute: 9.50 / 10.25 in the file
    assert bbo["instrument_id"].unique().to_list() == [42780620]
    assert stream.counters["chain_instruments"] == 1
    # The futures ohlcv-1m beside it is not a top-of-book schema; no trades file at all: none.
    assert session_options_trades(catalog, date(2026, 1, 9), chain, empty_definitions(), CFG).source == "none"


def test_mbp1_is_preferred_and_decodes_only_the_chain_ids(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(NAUTILUS / "options_catalog", raw / "catalog")
    shutil.copytree(NAUTILUS / "options_catalog_history", raw / "history")
    mbp1 = next((raw / "history").glob("*.dbn.zst"))
    catalog = RawCatalog(raw)
    day = date(2024, 5, 9)

    both = session_options_bbo(catalog, day, _chain_of([P5250, P5230], day), empty_definitions(), CFG)
    bbo = _collect(both)
    BRONZE_OPTIONS_BBO.validate(bbo)
    ref = _reference(mbp1, {P5250, P5230}).sort(["ts_recv", "sequence"], maintain_order=True)
    assert both.source == "mbp-1" and both.files == [mbp1.name]
    assert bbo.height == ref.height == 560
    assert bbo["instrument_id"].to_list() == ref["instrument_id"].to_list()
    assert bbo["bid_px_00"].to_list() == ref["bid_px_00"].to_list() and bbo["ask_sz_00"].to_list() == ref["ask_sz_00"].to_list()

    # A one-option chain keeps only that option; the other's records are counted as other instruments.
    one = session_options_bbo(catalog, day, _chain_of([P5250], day), empty_definitions(), CFG)
    only = _collect(one)
    assert only.height == 322 and only["instrument_id"].unique().to_list() == [P5250]
    assert one.counters["other_instrument_records"] == 560 - 322

    # The mbp-1 file has no trade (action T) records: the trades table is empty, still from mbp-1.
    trades = session_options_trades(catalog, day, _chain_of([P5250, P5230], day), empty_definitions(), CFG)
    assert trades.source == "mbp-1" and _collect(trades).height == 0


def test_without_mbp1_the_options_bbo_1m_file_is_read_and_the_futures_one_skipped(tmp_path):
    shutil.copytree(NAUTILUS / "options_catalog", tmp_path / "raw")
    day = date(2024, 5, 9)
    stream = session_options_bbo(RawCatalog(tmp_path / "raw"), day, _chain_of([P5250, P5230], day), empty_definitions(), CFG)
    bbo = _collect(stream)
    # futures_bbo-1m (ESM4, NQM4) overlaps in time but names no chain option: skipped, not a duplicate.
    assert stream.source == "bbo-1m" and stream.files == ["options_bbo-1m_2024-05-09T09-55_2024-05-09T10-05.dbn.zst"]
    assert stream.counters["files_skipped_no_chain_instrument"] == 1
    assert bbo.height == 20 and set(bbo["instrument_id"].to_list()) == {P5250, P5230}
    assert bbo["ts_recv"].is_sorted()


CALL, PUT, FUTURE = 900001, 900002, 42140878
T0 = datetime(2026, 1, 9, 15, 0, tzinfo=UTC)  # 10:00 ET, inside the 2026-01-09 session


def _trades(rows: list[tuple[int, int, float | None, int, bytes, int]]) -> np.ndarray:
    """Trade records from (instrument_id, seconds after T0, price points or None, size, side, sequence)."""
    recs = records("trades", len(rows))
    for i, (iid, sec, price, size, side, seq) in enumerate(rows):
        recs[i]["instrument_id"] = iid
        recs[i]["ts_event"] = ns(T0) + sec * 1_000_000_000
        recs[i]["ts_recv"] = ns(T0) + sec * 1_000_000_000 + 5000
        recs[i]["price"] = np.iinfo(np.int64).max if price is None else int(round(price * 1e9))
        recs[i]["size"] = size
        recs[i]["action"] = b"T"
        recs[i]["side"] = side
        recs[i]["sequence"] = seq
    return recs


def test_generated_trades_keep_the_chain_and_merge_split_by_symbol_files(tmp_path):
    raw = tmp_path / "raw"
    end = datetime(2026, 1, 9, 22, tzinfo=UTC)
    # One file per symbol (Databento split_symbols): overlapping in time, different instruments.
    write_dbn(raw / "call.trades.dbn.zst", "trades", _trades([(CALL, 1, 12.5, 3, b"B", 10), (CALL, 3, 12.75, 1, b"A", 30), (CALL, 4, None, 1, b"A", 40)]), {CALL: "EW2F6 C7000"}, T0, end)
    write_dbn(raw / "put.trades.dbn.zst", "trades", _trades([(PUT, 2, 4.05, 7, b"A", 20)]), {PUT: "EW2F6 P6900"}, T0, end)
    write_dbn(raw / "fut.trades.dbn.zst", "trades", _trades([(FUTURE, 2, 6950.25, 9, b"B", 21)]), {FUTURE: "ESH6"}, T0, end)
    day = date(2026, 1, 9)
    stream = session_options_trades(RawCatalog(raw), day, _chain_of([CALL, PUT], day), empty_definitions(), CFG)
    trades = _collect(stream)
    BRONZE_OPTIONS_TRADES.validate(trades)
    assert trades.schema == pl.Schema(TRADES_SCHEMA) and stream.source == "trades"
    assert trades.select("instrument_id", "price", "size", "side").rows() == [(CALL, 12.5, 3, "B"), (PUT, 4.05, 7, "A"), (CALL, 12.75, 1, "A")]
    assert stream.counters["undefined_price_trades"] == 1
    assert stream.counters["files_skipped_no_chain_instrument"] == 1  # the futures file is never decoded

    # A second copy of the call's file over the same time is a duplicate download: refused, naming both.
    shutil.copy2(raw / "call.trades.dbn.zst", raw / "call-again.trades.dbn.zst")
    with pytest.raises(RawDataError, match="call"):
        session_options_trades(RawCatalog(raw), day, _chain_of([CALL, PUT], day), empty_definitions(), CFG)


def test_an_empty_chain_reads_nothing(tmp_path):
    shutil.copytree(NAUTILUS / "options_exercise", tmp_path / "raw")
    stream = session_options_bbo(RawCatalog(tmp_path / "raw"), date(2026, 1, 8), empty_chain(), empty_definitions(), CFG)
    assert stream.source == "none" and list(stream.frames) == [] and stream.counters["chain_instruments"] == 0
