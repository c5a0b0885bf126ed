"""Order-flow decoding: real Databento stubs against DBNStore.to_df, ordering rules, instrument filters, bad files."""

from __future__ import annotations

import io
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import databento as db
import numpy as np
import polars as pl
import pytest
import zstandard

from spymaster_resources.raw_files import RawCatalog, iter_records
from spymaster_assets.bronze.ingest import session_bbo, session_mbp10, session_trades
from spymaster_assets.bronze.market_records import (
    BBO_SCHEMA,
    MBP10_SCHEMA,
    TRADES_SCHEMA,
    BookQuality,
    RecordSelection,
    batch_frame,
    decode_bbo,
    decode_mbp10,
    decode_trades,
    new_counters,
    session_batches,
)
from spymaster_assets.bronze.schemas import BRONZE_FUTURES_BBO, BRONZE_FUTURES_MBP10, BRONZE_FUTURES_TRADES
from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import RawDataError

from .dbn_writer import ns, records, write_dbn

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "dbn"
STUBS = SHARED / "databento-fixtures" / "GLBX.MDP3"
NAUTILUS = SHARED / "nautilus"

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

DAY = date(2024, 7, 2)
T0 = datetime(2024, 7, 2, 14, 0, tzinfo=timezone.utc)


def _frame(path: Path, decode, schema, source: str) -> pl.DataFrame:
    recs = next(iter_records(path))
    return batch_frame(decode(recs, np.arange(len(recs))), schema, DAY, source)


def _to_df(path: Path):
    return db.DBNStore.from_file(path).to_df(map_symbols=False).reset_index()


def test_trade_stubs_decode_like_databento():
    for schema in ("trades", "tbbo", "mbp-1", "mbp-10"):
        path = STUBS / f"test_data.{schema}.dbn.zst"
        ours = _frame(path, decode_trades, TRADES_SCHEMA, schema)
        ref = _to_df(path)
        assert ours.height == len(ref) > 0
        assert ours["price"].to_list() == ref["price"].tolist()
        assert ours["size"].to_list() == ref["size"].tolist()
        assert ours["side"].to_list() == ref["side"].tolist()
        assert ours["sequence"].to_list() == ref["sequence"].tolist()
        assert ours["ts_recv"].cast(pl.Int64).to_list() == ref["ts_recv"].astype("int64").tolist()
        assert ours["ts_event"].cast(pl.Int64).to_list() == ref["ts_event"].astype("int64").tolist()
        assert ours["instrument_id"].to_list() == ref["instrument_id"].tolist()


def test_top_of_book_stubs_decode_like_databento():
    for schema in ("mbp-1", "bbo-1s", "bbo-1m", "tbbo"):
        path = STUBS / f"test_data.{schema}.dbn.zst"
        ours = _frame(path, decode_bbo, BBO_SCHEMA, schema)
        BRONZE_FUTURES_BBO.validate(ours)
        ref = _to_df(path)
        for col in ("bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00", "bid_ct_00", "ask_ct_00"):
            assert ours[col].to_list() == ref[col].tolist(), (schema, col)
        assert ours["ts_recv"].cast(pl.Int64).to_list() == ref["ts_recv"].astype("int64").tolist()


def test_mbp10_stub_decodes_every_level_like_databento():
    path = STUBS / "test_data.mbp-10.dbn.zst"
    recs = next(iter_records(path))
    batch = decode_mbp10(recs, np.arange(len(recs)))
    batch["book_ok"] = np.ones(len(recs), bool)
    ours = batch_frame(batch, MBP10_SCHEMA, DAY, "mbp-10")
    BRONZE_FUTURES_MBP10.validate(ours)
    ref = _to_df(path)
    for level in range(10):
        for field in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"):
            col = f"{field}_{level:02d}"
            assert ours[col].to_list() == ref[col].tolist(), col
    assert ours["action"].to_list() == ref["action"].tolist()
    assert ours["flags"].to_list() == ref["flags"].tolist()
    # First record: the book of the stub read by hand in Databento's test data.
    assert ours.row(0, named=True)["bid_px_00"] == 3702.25 and ours.row(0, named=True)["ask_sz_09"] == 35


def _trades_file(tmp_path: Path, name: str, ts_recv: list[int], *, ids=None, sequence=None, flags=None, price=None, symbols=None) -> Path:
    n = len(ts_recv)
    recs = records("trades", n)
    recs["instrument_id"] = ids if ids is not None else [118] * n
    recs["ts_recv"] = [ns(T0) + t for t in ts_recv]
    recs["ts_event"] = recs["ts_recv"] - 1  # offsets >= 1: inside the window
    recs["sequence"] = sequence if sequence is not None else list(range(n))
    recs["flags"] = flags if flags is not None else [0] * n
    recs["price"] = price if price is not None else [(5000 + i) * 1_000_000_000 for i in range(n)]
    recs["size"] = list(range(1, n + 1))
    recs["action"] = b"T"
    recs["side"] = b"B"
    return write_dbn(tmp_path / name, "trades", recs, symbols or {118: "ESU4"}, T0, T0.replace(hour=23))


def _selection() -> RecordSelection:
    return RecordSelection(instrument_id=118, known_ids={118, 200}, start_ns=ns(T0), end_ns=ns(T0.replace(hour=23)))


def _run(paths, chunk) -> tuple[pl.DataFrame, dict]:
    sel = _selection()
    out = [batch_frame(b, TRADES_SCHEMA, DAY, "trades") for b in session_batches(paths, sel, decode_trades, chunk)]
    return pl.concat(out), sel.counters


def test_out_of_order_records_are_sorted_back_and_counted(tmp_path):
    # ts_recv 10 20 50 30 40 60 70: 30 and 40 arrive after 50 -> two out-of-order records.
    path = _trades_file(tmp_path, "t.dbn.zst", [10, 20, 50, 30, 40, 60, 70])
    for chunk in (1, 2, 3, 100):  # the repair must not depend on where chunks split
        frame, counters = _run([path], chunk)
        offsets = (frame["ts_recv"].cast(pl.Int64) - ns(T0)).to_list()
        assert offsets == [10, 20, 30, 40, 50, 60, 70], chunk
        assert frame["size"].to_list() == [1, 2, 4, 5, 3, 6, 7]  # sizes travel with their records
        assert counters["out_of_order_records"] == 2 and counters["late_records_dropped"] == 0


def test_a_record_later_than_the_look_ahead_is_dropped_and_counted(tmp_path):
    # With one-record chunks, 15 arrives after 10, 20, 30 were written: it cannot be placed.
    path = _trades_file(tmp_path, "t.dbn.zst", [10, 20, 30, 40, 15])
    frame, counters = _run([path], 1)
    assert (frame["ts_recv"].cast(pl.Int64) - ns(T0)).to_list() == [10, 20, 30, 40]
    assert counters["late_records_dropped"] == 1 and counters["out_of_order_records"] == 1


def test_equal_keys_keep_file_order_and_bad_ts_recv_records_are_not_moved(tmp_path):
    # Records 1-3 share (ts_recv, sequence): file order is kept. Records 4-5 are flagged F_BAD_TS_RECV
    # (8) with an early ts_recv and a decreasing sequence, like MBO snapshot records: they stay where
    # they are and are not out of order.
    path = _trades_file(tmp_path, "t.dbn.zst", [10, 10, 10, 5, 1, 20], sequence=[7, 7, 7, 3, 2, 8], flags=[0, 0, 0, 8, 8, 0])
    frame, counters = _run([path], 2)
    assert frame["size"].to_list() == [1, 2, 3, 4, 5, 6]
    assert counters["out_of_order_records"] == 0


def test_other_and_unknown_instruments_are_dropped_and_counted(tmp_path):
    # 118 front month, 200 a mapped back month, 300 named by nothing.
    path = _trades_file(tmp_path, "t.dbn.zst", [1, 2, 3, 4, 5, 6], ids=[118, 200, 300, 118, 300, 300], symbols={118: "ESU4", 200: "ESZ4"})
    frame, counters = _run([path], 4)
    assert frame["size"].to_list() == [1, 4]
    assert counters["other_instrument_records"] == 1 and counters["unknown_instrument_records"] == 3


def test_daily_files_are_merged_and_duplicate_files_fail_naming_both(tmp_path):
    a = _trades_file(tmp_path, "a.dbn.zst", [1, 2, 3])
    b = _trades_file(tmp_path, "b.dbn.zst", [4, 5])
    frame, _ = _run([a, b], 2)
    assert (frame["ts_recv"].cast(pl.Int64) - ns(T0)).to_list() == [1, 2, 3, 4, 5]
    dup = _trades_file(tmp_path, "dup.dbn.zst", [2, 3])
    with pytest.raises(RawDataError, match=r"a\.dbn\.zst and dup\.dbn\.zst"):
        _run([a, dup], 2)


def test_book_ok_hand_worked_sequence():
    # Events: ok; crossed (bid 101 >= ask 100); ok; F_MAYBE_BAD_BOOK (4) record; ok-looking but still in the
    # bad episode; 'R' clear ends it; snapshot-flag (32) record after a new gap ends it too.
    action = np.frombuffer(b"AAAAARAA", dtype=np.uint8)
    flags = np.array([0, 0, 0, 4, 0, 0, 4, 32], dtype=np.int16)
    bid = np.array([99.0, 101.0, 99.0, 99.0, 99.0, np.nan, 99.0, 99.0])
    ask = np.array([100.0, 100.0, 100.0, 100.0, 100.0, np.nan, 100.0, 100.0])
    counters = new_counters()
    quality = BookQuality(counters)
    batch = {"action": action, "flags": flags, "bid_px_00": bid, "ask_px_00": ask}
    first = quality({k: v[:4] for k, v in batch.items()})
    second = quality({k: v[4:] for k, v in batch.items()})  # the bad state crosses the batch boundary
    assert np.concatenate([first, second]).tolist() == [True, False, True, False, False, True, False, True]
    assert counters["crossed_book_records"] == 1 and counters["maybe_bad_book_records"] == 2


def _decompressed(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()


def test_truncated_trades_file_fails_with_its_name(tmp_path):
    # A DBN v3 file (the stub): raw_files checks the byte count of current-version files.
    data = _decompressed(STUBS / "test_data.trades.dbn.zst")
    raw = tmp_path / "raw"
    raw.mkdir()
    bad = raw / "cut-trades.dbn"
    bad.write_bytes(data[:-7])  # inside the last record
    with pytest.raises(RawDataError, match=r"cut-trades\.dbn: truncated"):
        list(session_batches([bad], RecordSelection(5482, {5482}, 0, 2**63 - 1), decode_trades, 2))
    with pytest.raises(RawDataError, match=r"cut-trades\.dbn"):
        session_trades(RawCatalog(raw), date(2020, 12, 28), 5482, pl.DataFrame(), SpymasterConfig(home=tmp_path))


def test_trades_fall_back_to_trade_records_of_mbo(tmp_path):
    """The ESH4 MBO hour: trades come from its 'T' records (aggressor side), in receive order."""
    raw = tmp_path / "raw"
    raw.mkdir()
    src = NAUTILUS / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    shutil.copy2(src, raw / src.name)
    cfg = SpymasterConfig(home=tmp_path)
    stream = session_trades(RawCatalog(raw), date(2023, 12, 26), 17077, pl.DataFrame(), cfg)
    frame = pl.concat(list(stream.frames))
    BRONZE_FUTURES_TRADES.validate(frame)
    recs = np.concatenate(list(iter_records(src)))
    trades = recs[recs["action"] == b"T"]
    assert stream.source == "mbo" and frame.height == len(trades) == 2973
    assert frame["size"].sum() == int(trades["size"].sum())
    assert set(frame["side"].unique()) <= {"A", "B", "N"}
    assert frame["ts_recv"].is_sorted()


def test_mbp10_rebuilt_from_mbo_stays_inside_the_session_and_uncrossed_when_ok(tmp_path):
    pytest.importorskip("spymaster_assets.bronze.mbo_book")
    raw = tmp_path / "raw"
    raw.mkdir()
    src = NAUTILUS / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    shutil.copy2(src, raw / src.name)
    cfg = SpymasterConfig(home=tmp_path, decode_chunk_records=20_000)
    stream = session_mbp10(RawCatalog(raw), date(2023, 12, 26), 17077, pl.DataFrame(), cfg)
    frames = list(stream.frames)
    assert stream.source == "mbo" and len(frames) > 1  # several chunks: the book is carried across them
    frame = pl.concat(frames)
    BRONZE_FUTURES_MBP10.validate(frame)
    session_open = datetime(2023, 12, 25, 23, 0, tzinfo=timezone.utc)  # 18:00 EST
    assert frame["ts_event"].min() >= session_open
    ok = frame.filter("book_ok")
    assert ok.height > 0.9 * frame.height
    assert (ok["bid_px_00"] < ok["ask_px_00"]).all()
    assert stream.counters["mbo_snapshots"] >= 1 and stream.counters["out_of_order_records"] == 0
    # Every 'T' record of the session window appears once, with its traded size.
    assert frame.filter(pl.col("action") == "T").height == 2973


def test_interval_top_of_book_is_stamped_at_its_interval_end(tmp_path):
    """bbo-1m records describe the book at the interval end (ts_recv); their ts_event is the last
    trade's time. bronze_futures_bbo must stamp them at ts_recv, or a feature at T would see a book
    published after T. Real ESM4 futures bbo-1m, 2024-05-09 09:55-10:05 UTC."""
    raw = tmp_path / "raw"
    raw.mkdir()
    src = NAUTILUS / "options_catalog" / "futures_bbo-1m_2024-05-09T09-55_2024-05-09T10-05.dbn.zst"
    shutil.copy2(src, raw / src.name)
    recs = np.concatenate(list(iter_records(src)))
    instrument = int(np.bincount(recs["instrument_id"]).argmax())
    stream = session_bbo(RawCatalog(raw), date(2024, 5, 9), instrument, pl.DataFrame(), SpymasterConfig(home=tmp_path))
    frame = pl.concat(list(stream.frames))
    BRONZE_FUTURES_BBO.validate(frame)
    mine = recs[recs["instrument_id"] == instrument]
    assert stream.source == "bbo-1m" and frame.height == len(mine)
    assert (frame["ts_event"] == frame["ts_recv"]).all()
    assert (mine["ts_event"] < mine["ts_recv"]).any()  # the raw ts_event would have been earlier


def test_book_schemas_reject_a_non_positive_price_or_a_negative_size():
    """The level checks run as one row-wise expression; they must still catch each kind of bad level."""
    from pandera.errors import SchemaError

    recs = next(iter_records(STUBS / "test_data.mbp-10.dbn.zst"))
    batch = decode_mbp10(recs, np.arange(len(recs)))
    batch["book_ok"] = np.ones(len(recs), dtype=bool)
    good = batch_frame(batch, MBP10_SCHEMA, DAY, "mbp-10")
    BRONZE_FUTURES_MBP10.validate(good)
    BRONZE_FUTURES_MBP10.validate(good.with_columns(ask_px_09=pl.lit(None, dtype=pl.Float64)))  # an empty level
    for bad in (
        good.with_columns(bid_px_03=pl.lit(0.0)),
        good.with_columns(ask_sz_07=pl.lit(-1, dtype=pl.Int32)),
        good.with_columns(bid_ct_00=pl.lit(-2, dtype=pl.Int32)),
    ):
        with pytest.raises(SchemaError, match="book level"):
            BRONZE_FUTURES_MBP10.validate(bad)
