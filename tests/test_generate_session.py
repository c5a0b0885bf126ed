"""Tests of scripts/generate_session.py: a synthetic ES session written as DBN v3, read back with databento.

A small session (scale 0.005, ~170 k mbo records) is generated once into a temporary directory. The
checks rebuild what the files must agree on independently: an order book from the mbo records with a
plain dict (Databento's rule: T and F do not change the book, A/C/M do, R clears it), bars from the
trades with polars, the contract calendar by hand.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import databento as db
import numpy as np
import polars as pl
import pytest

from spymaster_resources import dbn_layout
from spymaster_assets.sessions import session_bounds_utc

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "generate_session.py"
REAL_DEFINITIONS = REPO_ROOT.parent / "shared" / "data" / "dbn" / "nautilus" / "order_book_deltas_catalog" / "orderbooks_definition.dbn.zst"
SESSION = date(2024, 3, 12)
SEED = 11
SCALE = 0.005
UNDEF = np.iinfo(np.int64).max

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _load_generator():
    """Import scripts/generate_session.py by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("generate_session", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _load_generator()


@pytest.fixture(scope="module")
def session(gen, tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    report = gen.generate_session(SESSION, out, scale=SCALE, seed=SEED)
    return out, report


def _records(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = db.DBNStore.from_file(path)
        chunks = list(store.to_ndarray(count=1_000_000))
    return np.concatenate(chunks) if chunks else np.zeros(0)


@pytest.fixture(scope="module")
def mbo(session):
    return _records(session[1].paths["mbo"])


@pytest.fixture(scope="module")
def mbp(session):
    return _records(session[1].paths["mbp-10"])


@pytest.fixture(scope="module")
def trades(session):
    return _records(session[1].paths["trades"])


def _ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000


def test_record_layouts_match_databento_dbn():
    assert dbn_layout.layout_mismatches() == []


def test_front_month_follows_the_quarterly_roll(gen):
    # ESH4 expires Friday 2024-03-15 (third Friday: March 1 2024 is a Friday -> 1, 8, 15) and rolls
    # 8 days earlier, Thursday 2024-03-07.
    assert gen.front_month(date(2024, 3, 6)).raw_symbol == "ESH4"
    assert gen.front_month(date(2024, 3, 12)).raw_symbol == "ESM4"
    assert gen.front_month(date(2024, 12, 31)).raw_symbol == "ESH5"
    esm4 = gen.front_month(SESSION)
    # June 1 2024 is a Saturday: Fridays 7, 14, 21; 09:30 EDT = 13:30 UTC.
    assert esm4.expiration == datetime(2024, 6, 21, 13, 30, tzinfo=timezone.utc)
    assert esm4.instrument_id == 202406


def test_files_decode_with_session_metadata(session):
    out, report = session
    start, end = session_bounds_utc(SESSION)
    assert start == datetime(2024, 3, 11, 22, 0, tzinfo=timezone.utc)  # 18:00 EDT (DST began 03-10)
    for schema, path in report.paths.items():
        assert path.name.startswith("synthetic-") and path.parent == out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = db.DBNStore.from_file(path)
        meta = store.metadata
        assert str(store.schema) == schema
        assert meta.dataset == "GLBX.MDP3" and meta.version == 3
        assert (meta.start, meta.end) == (_ns(start), _ns(end))
        assert meta.symbols == ["ESM4"]
        mappings = {sym: [(i["start_date"], i["end_date"], i["symbol"]) for i in ivs] for sym, ivs in store.mappings.items()}
        # The session spans two UTC dates; the interval's end date is exclusive.
        assert mappings == {"ESM4": [(date(2024, 3, 11), date(2024, 3, 13), "202406")]}
        assert len(_records(path)) == report.counts[schema]
    notice = (out / "SYNTHETIC.txt").read_text()
    assert "NOT MARKET DATA" in notice and f"seed: {SEED}" in notice and f"scale: {SCALE}" in notice
    # The sizes the issue asks for, at this scale.
    assert report.counts["mbo"] >= 30e6 * SCALE
    assert report.counts["mbp-10"] >= 15e6 * SCALE
    assert report.counts["trades"] >= 1.5e6 * SCALE


def test_project_reader_decodes_every_file(session):
    from spymaster_resources.raw_files import inspect_file, iter_records

    for schema, path in session[1].paths.items():
        assert sum(len(c) for c in iter_records(path, 50_000)) == session[1].counts[schema]
        assert inspect_file(path).schema == schema


def test_definition_is_the_es_future_as_databento_publishes_it(session):
    (d,) = _records(session[1].paths["definition"])
    assert d["instrument_class"] == b"F" and d["raw_symbol"] == b"ESM4" and d["instrument_id"] == 202406
    assert d["min_price_increment"] == 250_000_000  # 0.25 points
    assert d["unit_of_measure_qty"] == 50 * 1_000_000_000  # the $50 multiplier
    assert d["expiration"] == _ns(datetime(2024, 6, 21, 13, 30, tzinfo=timezone.utc))
    real = _records(REAL_DEFINITIONS)
    (r,) = real[real["raw_symbol"] == b"ESM4"]
    same = ["display_factor", "min_price_increment", "unit_of_measure_qty", "min_price_increment_amount",
            "max_price_variation", "market_depth", "market_segment_id", "max_trade_vol", "min_trade_vol",
            "appl_id", "maturity_year", "maturity_month", "currency", "group", "exchange", "asset", "cfi",
            "security_type", "unit_of_measure", "match_algorithm", "instrument_class", "expiration",
            "activation", "underlying_product", "inst_attrib_value"]
    assert {f: d[f] for f in same} == {f: r[f] for f in same}


def test_timestamps_increase_and_lie_in_the_session(mbo, mbp, trades):
    start, end = (_ns(t) for t in session_bounds_utc(SESSION))
    for recs in (mbo, mbp, trades):
        ts_recv = recs["ts_recv"].astype(np.int64)
        ts_event = recs["ts_event"].astype(np.int64)
        assert np.all(np.diff(ts_recv) >= 0)
        assert np.all(np.diff(ts_event) >= 0)
        assert np.all(ts_recv >= ts_event)
        assert ts_event.min() >= start and ts_recv.max() < end


def test_mbo_opens_with_a_clear_and_a_snapshot(mbo):
    snap = (mbo["flags"] & dbn_layout.F_SNAPSHOT) != 0
    n_snap = int(np.argmin(snap))
    assert n_snap > 100 and not snap[n_snap:].any()
    assert mbo["action"][0] == b"R" and mbo["side"][0] == b"N" and mbo["price"][0] == UNDEF
    assert set(mbo["action"][1:n_snap].tolist()) == {b"A"}
    last = (mbo["flags"][:n_snap] & dbn_layout.F_LAST) != 0
    assert last.tolist() == [False] * (n_snap - 1) + [True]
    assert set(mbo["action"][n_snap:].tolist()) == {b"A", b"C", b"M", b"T", b"F"}


def _top(levels: dict[int, list[int]], bid: bool, k: int) -> list[tuple[int, int, int]]:
    prices = sorted(levels, reverse=bid)[:k]
    return [(p, levels[p][0], levels[p][1]) for p in prices]


def test_mbp10_is_the_book_the_mbo_records_build(mbo, mbp):
    """Replay mbo into dict books; every mbp-10 row must be the book after its mbo record.

    Also: the book is never crossed at an F_LAST record, sizes stay positive, fills never exceed
    the resting order, and an A/C/M record left out of mbp-10 lies beyond the 10th level.
    """
    orders: dict[int, tuple[bytes, int, int]] = {}  # order_id -> (side, price, size)
    levels = {b"B": {}, b"A": {}}  # price -> [size, count]

    def level_add(side, price, size, count):
        lv = levels[side].setdefault(price, [0, 0])
        lv[0] += size
        lv[1] += count
        assert lv[0] >= 0 and lv[1] >= 0
        if lv[1] == 0:
            assert lv[0] == 0
            del levels[side][price]

    j = 0  # next mbp-10 row
    n_full_checks = 0
    for i in range(len(mbo)):
        r = mbo[i]
        action, side, price, size, oid = r["action"], r["side"], int(r["price"]), int(r["size"]), int(r["order_id"])
        if action == b"R":
            orders.clear()
            levels[b"B"].clear()
            levels[b"A"].clear()
        elif action == b"A":
            assert oid not in orders and size > 0
            orders[oid] = (side, price, size)
            level_add(side, price, size, 1)
        elif action == b"C":
            o_side, o_price, o_size = orders.pop(oid)
            assert (o_side, o_price, o_size) == (side, price, size)  # cancels remove the whole remainder
            level_add(side, price, -size, -1)
        elif action == b"M":
            o_side, o_price, o_size = orders[oid]
            assert o_side == side and size > 0
            level_add(side, o_price, -o_size, -1)
            level_add(side, price, size, 1)
            orders[oid] = (side, price, size)
        elif action == b"F":
            o_side, o_price, o_size = orders[oid]
            assert o_side == side and o_price == price and 0 < size <= o_size
        if r["flags"] & dbn_layout.F_LAST and levels[b"B"] and levels[b"A"]:
            assert max(levels[b"B"]) < min(levels[b"A"]), f"crossed book at mbo record {i}"
        if r["flags"] & dbn_layout.F_SNAPSHOT or action == b"F":
            continue
        row = mbp[j] if j < len(mbp) else None
        matched = row is not None and (
            row["ts_recv"], row["sequence"], row["action"], row["side"], row["price"], row["size"]
        ) == (r["ts_recv"], r["sequence"], action, side, r["price"], r["size"])
        if action == b"T":
            assert matched, f"trade at mbo record {i} has no mbp-10 row"
        if not matched:
            # Left out: beyond the 10 best levels of its side (so the top 10 did not change).
            top = _top(levels[side], side == b"B", 10)
            assert len(top) == 10 and (price < top[-1][0] if side == b"B" else price > top[-1][0])
            continue
        if action in (b"A", b"C"):
            # Kept: it was within the 10 best levels of its side.
            top = _top(levels[side], side == b"B", 10)
            assert len(top) < 10 or (price >= top[-1][0] if side == b"B" else price <= top[-1][0])
        bids, asks = levels[b"B"], levels[b"A"]
        assert (row["bid_px_00"], row["bid_sz_00"], row["bid_ct_00"]) == _top(bids, True, 1)[0]
        assert (row["ask_px_00"], row["ask_sz_00"], row["ask_ct_00"]) == _top(asks, False, 1)[0]
        if j % 25 == 0:
            n_full_checks += 1
            for k, (p, s, c) in enumerate(_top(bids, True, 10)):
                assert (row[f"bid_px_{k:02d}"], row[f"bid_sz_{k:02d}"], row[f"bid_ct_{k:02d}"]) == (p, s, c)
            for k, (p, s, c) in enumerate(_top(asks, False, 10)):
                assert (row[f"ask_px_{k:02d}"], row[f"ask_sz_{k:02d}"], row[f"ask_ct_{k:02d}"]) == (p, s, c)
        j += 1
    assert j == len(mbp), "mbp-10 rows left over that no mbo record explains"
    assert n_full_checks > 100


def test_mbp10_flags_and_no_crossed_book(mbp):
    bid, ask = mbp["bid_px_00"], mbp["ask_px_00"]
    both = (bid != UNDEF) & (ask != UNDEF)
    assert both.mean() > 0.99
    assert np.all(bid[both] < ask[both])
    assert (mbp["flags"][-1] & dbn_layout.F_LAST) != 0


def test_trades_lie_within_the_preceding_book(mbp, trades):
    is_trade = mbp["action"] == b"T"
    idx = np.flatnonzero(is_trade)
    idx = idx[idx > 0]
    prev = mbp[idx - 1]
    price = mbp["price"][idx]
    assert np.all((price >= prev["bid_px_00"]) & (price <= prev["ask_px_00"]))
    # A buyer lifts the ask, a seller hits the bid, of the book it trades against.
    rows = mbp[is_trade]
    buy = rows["side"] == b"B"
    assert np.array_equal(rows["price"][buy], rows["ask_px_00"][buy])
    assert np.array_equal(rows["price"][~buy], rows["bid_px_00"][~buy])
    # The trades file is exactly those trades.
    for field in ("ts_event", "ts_recv", "sequence", "price", "size", "side"):
        assert np.array_equal(trades[field], rows[field])
    assert set(np.unique(trades["side"]).tolist()) == {b"A", b"B"}
    assert np.all(trades["price"] % 250_000_000 == 0)


def test_ohlcv_1m_is_the_trades_aggregated(session, trades):
    bars = _records(session[1].paths["ohlcv-1m"])
    t = pl.DataFrame({
        "ts": trades["ts_event"].astype(np.int64), "price": trades["price"].astype(np.int64),
        "size": trades["size"].astype(np.int64),
    })
    expected = (
        t.group_by((pl.col("ts") // 60_000_000_000) * 60_000_000_000, maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
        )
        .sort("ts")
    )
    got = pl.DataFrame({
        "ts": bars["ts_event"].astype(np.int64), "open": bars["open"], "high": bars["high"],
        "low": bars["low"], "close": bars["close"], "volume": bars["volume"].astype(np.int64),
    })
    assert got.equals(expected)
    assert np.all(bars["rtype"] == 0x21)


def _et_minutes(ts_ns: np.ndarray) -> np.ndarray:
    s = pl.Series(ts_ns.astype(np.int64)).cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone("America/New_York")
    return (s.dt.hour().cast(pl.Int32) * 60 + s.dt.minute().cast(pl.Int32)).to_numpy()


def test_intensity_peaks_at_the_open_not_overnight(mbo, trades):
    for recs in (mbo, trades):
        minute = _et_minutes(recs["ts_event"])
        open_rate = np.sum((minute >= 9 * 60 + 30) & (minute < 10 * 60)) / 30
        night_rate = np.sum((minute >= 2 * 60) & (minute < 3 * 60)) / 60
        assert open_rate > 3 * night_rate > 0


def test_price_path_has_ranges_of_a_few_points_in_rth(gen):
    """The fair path alone (independent of scale): RTH 1-minute ranges of a few points, less overnight."""
    start, end = session_bounds_utc(SESSION)
    path = gen.session_path(start, end, 1.0, 0.0, np.random.default_rng(3))
    points = path.fair_ticks[:-1].reshape(-1, 60) * 0.25  # 1-minute blocks of 1-second samples
    ranges = points.max(axis=1) - points.min(axis=1)
    minute = _et_minutes(np.arange(len(ranges)) * 60_000_000_000 + _ns(start))
    rth = (minute >= 9 * 60 + 30) & (minute < 16 * 60)
    night = (minute >= 0) & (minute < 3 * 60)
    assert 1.0 < ranges[rth].mean() < 6.0
    assert ranges[night].mean() < 0.6 * ranges[rth].mean()
    assert abs(points[-1, -1] - points[0, 0]) < 150  # a day's move, not a random walk gone astray


def test_same_seed_same_bytes_and_bad_arguments(gen, tmp_path):
    a = gen.generate_session(SESSION, tmp_path / "a", schemas=["trades"], scale=0.0005, seed=5)
    b = gen.generate_session(SESSION, tmp_path / "b", schemas=["trades"], scale=0.0005, seed=5)
    assert a.paths["trades"].read_bytes() == b.paths["trades"].read_bytes()
    with pytest.raises(ValueError, match="unknown schema"):
        gen.generate_session(SESSION, tmp_path / "c", schemas=["mbp-1"], scale=0.001)
    with pytest.raises(ValueError, match="scale"):
        gen.generate_session(SESSION, tmp_path / "c", scale=0.0)


def test_bars_only_sessions_are_consecutive_trading_sessions_the_project_reads(gen, tmp_path):
    from spymaster_assets.bronze.ingest import sessions_with_rth_data
    from spymaster_core.config import SpymasterConfig
    from spymaster_resources.raw_files import RawCatalog, read_ohlcv_1m

    raw = tmp_path / "raw" / "GLBX.MDP3"
    reports = gen.generate_bars_sessions(date(2024, 3, 27), 3, raw, seed=5)
    days = [date(2024, 3, 27), date(2024, 3, 28), date(2024, 4, 1)]  # Good Friday 2024-03-29 has no session
    assert [sorted(r.paths) for r in reports] == [["definition", "ohlcv-1m"]] * 3
    assert "SIMULATED" in (raw / "SYNTHETIC.txt").read_text()
    config = SpymasterConfig(home=tmp_path)
    assert sessions_with_rth_data(RawCatalog(config.raw_dir), config) == days
    closes = []
    for day, report in zip(days, reports):
        start, end = session_bounds_utc(day, config)
        bars = read_ohlcv_1m([report.paths["ohlcv-1m"]], start, end)
        assert bars.height > 1000 and (bars["high"] >= bars["low"]).all() and (bars["volume"] > 0).all()
        assert bars["ts_event"].is_sorted() and (bars["close"] * 4 == (bars["close"] * 4).round()).all()  # on the tick
        closes.append((bars["open"][0], bars["close"][-1]))
    # The next session opens about where the last one closed (within a few points).
    assert abs(closes[1][0] - closes[0][1]) < 10 and abs(closes[2][0] - closes[1][1]) < 10
    again = gen.generate_bars_sessions(date(2024, 3, 27), 1, tmp_path / "again", seed=5)
    assert again[0].paths["ohlcv-1m"].read_bytes() == reports[0].paths["ohlcv-1m"].read_bytes()
    with pytest.raises(ValueError, match="at least 1"):
        gen.generate_bars_sessions(date(2024, 3, 27), 0, tmp_path / "none")
