"""1-minute bars from trades: hand-worked, against Databento's own ohlcv-1m (ESU4), and the mlfinpy tick day end to end."""

from __future__ import annotations

import io
import shutil
from datetime import date, datetime, time, timezone
from pathlib import Path

import databento as db
import numpy as np
import polars as pl
import pytest
import zstandard

from spymaster_resources.raw_files import RawCatalog
from spymaster_assets.bronze.ingest import session_ohlcv_1m
from spymaster_assets.bronze.schemas import BRONZE_FUTURES_OHLCV_1M
from spymaster_assets.bronze.trade_bars import trades_to_ohlcv_1m
from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.bars import build_bars
from spymaster_assets.silver.levels import compute_levels

from .dbn_writer import ns, records, write_dbn

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
ESU4 = SHARED / "dbn" / "nautilus" / "historical_bars_catalog"
TICKS = SHARED / "ticks" / "mlfinpy_es_tick_data.csv.zst"

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(not ESU4.is_dir(), reason=f"shared data not found at {ESU4}"),
]


def test_hand_worked_bars_two_instruments_two_minutes():
    m = datetime(2024, 7, 2, 14, 0, tzinfo=timezone.utc)
    s = 1_000_000_000
    trades = pl.DataFrame(
        {
            # minute 14:00 for instrument 1: prices 10, 12, 9, 11 -> O10 H12 L9 C11, volume 1+2+3+4;
            # instrument 2 trades once at 14:00:30; minute 14:01 (instrument 1): 20 then 19 -> O20 H20 L19 C19.
            "ts_event": [ns(m) + k * s for k in (0, 10, 20, 30, 59)] + [ns(m) + 60 * s, ns(m) + 61 * s],
            "instrument_id": [1, 1, 1, 2, 1, 1, 1],
            "price": [10.0, 12.0, 9.0, 50.0, 11.0, 20.0, 19.0],
            "size": [1, 2, 3, 7, 4, 5, 6],
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")), pl.col("instrument_id").cast(pl.UInt32))
    bars = trades_to_ohlcv_1m(trades)
    assert bars.rows() == [
        (m, 1, 10.0, 12.0, 9.0, 11.0, 10),
        (m, 2, 50.0, 50.0, 50.0, 50.0, 7),
        (m.replace(minute=1), 1, 20.0, 20.0, 19.0, 19.0, 11),
    ]


def test_esu4_trades_aggregate_to_databento_ohlcv_1m(tmp_path):
    """Bars from the ESU4 trades file (23:58-00:02 UTC) equal Databento's ohlcv-1m of the same minutes."""
    raw = tmp_path / "raw"
    raw.mkdir()
    trades_file = next(ESU4.glob("futures_trades_*.dbn.zst"))
    shutil.copy2(trades_file, raw / trades_file.name)  # no ohlcv-1m file: bronze falls back to trades
    cfg = SpymasterConfig(home=tmp_path)
    result = session_ohlcv_1m(RawCatalog(raw), date(2024, 7, 2), pl.DataFrame(), cfg)
    ours = result.bars
    BRONZE_FUTURES_OHLCV_1M.validate(ours)
    assert result.source == "trades" and result.front_month.raw_symbol == "ESU4"

    store = db.DBNStore.from_file(trades_file)
    start, end = store.metadata.start, store.metadata.end  # the minutes the trades file covers whole
    ref = db.DBNStore.from_file(next(ESU4.glob("futures_ohlcv-1m_*.dbn.zst"))).to_df(map_symbols=False).reset_index()
    ref = ref[(ref["instrument_id"] == 118) & (ref["ts_event"].astype("int64") >= start) & (ref["ts_event"].astype("int64") + 60_000_000_000 <= end)]
    assert len(ref) == 4
    ours = ours.filter(pl.col("ts_event").cast(pl.Int64).is_in(ref["ts_event"].astype("int64").tolist()))
    assert ours.height == len(ref)
    assert ours["ts_event"].cast(pl.Int64).to_list() == ref["ts_event"].astype("int64").tolist()
    for col in ("open", "high", "low", "close", "volume"):
        assert ours[col].to_list() == ref[col].tolist(), col


def _tick_frame() -> pl.DataFrame:
    text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(TICKS.read_bytes())).read()
    return pl.read_csv(text).with_columns(
        pl.col("DateTime").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns").dt.replace_time_zone("America/Chicago")
    )


def _write_ticks_as_dbn(ticks: pl.DataFrame, path: Path) -> None:
    """The ticks as a DBN ``trades`` file of instrument 1 = ESU3 (no aggressor: side N)."""
    ts = ticks["DateTime"].dt.convert_time_zone("UTC").cast(pl.Int64).to_numpy()
    recs = records("trades", ticks.height)
    recs["instrument_id"] = 1
    recs["ts_event"] = ts
    recs["ts_recv"] = ts
    recs["sequence"] = np.arange(ticks.height)  # many ticks share a millisecond: keep the CSV order
    recs["price"] = np.round(ticks["Price"].to_numpy() * 4).astype(np.int64) * 250_000_000
    recs["size"] = ticks["Volume"].to_numpy()
    recs["action"] = b"T"
    recs["side"] = b"N"
    start = datetime(2013, 9, 1, 22, 0, tzinfo=timezone.utc)
    write_dbn(path, "trades", recs, {1: "ESU3"}, start, datetime(2013, 9, 4, tzinfo=timezone.utc))


@pytest.mark.skipif(not TICKS.exists(), reason="mlfinpy ticks not found")
def test_mlfinpy_tick_day_gives_the_same_levels_as_the_ticks(tmp_path):
    ticks = _tick_frame()
    _write_ticks_as_dbn(ticks, tmp_path / "raw" / "mlfinpy.trades.dbn.zst")
    day = date(2013, 9, 3)
    cfg = SpymasterConfig(home=tmp_path)
    result = session_ohlcv_1m(RawCatalog(cfg.raw_dir), day, pl.DataFrame(), cfg)
    assert result.source == "trades" and result.front_month.raw_symbol == "ESU3"
    BRONZE_FUTURES_OHLCV_1M.validate(result.bars)
    levels = compute_levels(build_bars(result.bars, day, cfg), day, cfg)
    got = {r["level_kind"]: r["level_price"] for r in levels.group_by("level_kind").agg(pl.col("level_price").first()).iter_rows(named=True)}

    # Independent: straight from the CSV rows, in New York wall time.
    # Wall-clock New York time of each tick (naive), compared with naive wall-clock bounds.
    ny = ticks.with_columns(pl.col("DateTime").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None).alias("et"))

    def window(lo: time, hi: time) -> pl.DataFrame:
        return ny.filter((pl.col("et") >= datetime.combine(day, lo)) & (pl.col("et") < datetime.combine(day, hi)))

    pm = window(time(4, 0), time(9, 30))
    opening = window(time(9, 30), time(9, 45))
    assert pm.height > 1000 and opening.height > 1000
    assert got["PM_HIGH"] == pm["Price"].max() and got["PM_LOW"] == pm["Price"].min()
    assert got["OR_HIGH"] == opening["Price"].max() and got["OR_LOW"] == opening["Price"].min()
    # The volume of the session's bars is every tick's volume inside the session.
    session = ny.filter((pl.col("et") >= datetime(2013, 9, 2, 18)) & (pl.col("et") < datetime(2013, 9, 3, 17)))
    assert result.bars["volume"].sum() == session["Volume"].sum()
