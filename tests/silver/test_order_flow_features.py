"""Order-flow features: each family on hand-built inputs, families present / absent, and point in time."""

import math
from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.book_summary import book_1s, book_1s_dtypes, depth_flow_1m, empty_depth_flow_1m
from spymaster_assets.silver.feature_names import book_columns, depth_columns, mbo_columns, tape_columns
from spymaster_assets.silver.order_flow_features import order_flow_features

CONFIG = SpymasterConfig()
SESSION = date(2024, 3, 12)
TICK = 0.25
TS = pl.Datetime("ns", "UTC")
T = datetime(2024, 3, 12, 14, 30, tzinfo=timezone.utc)  # an anchor on a minute boundary


def rel(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def state_frame(rows: list[tuple]) -> pl.DataFrame:
    """silver_level_state-like rows from (anchor, level price, direction, ATR points)."""
    return pl.DataFrame(
        {
            "ts_event": pl.Series([r[0] for r in rows], dtype=TS),
            "level_kind": ["PM_HIGH"] * len(rows),
            "level_price": [float(r[1]) for r in rows],
            "direction": [r[2] for r in rows],
            "atr_points": [float(r[3]) for r in rows],
        }
    )


def trades_frame(rows: list[tuple]) -> pl.DataFrame:
    """bronze_futures_trades-like rows from (instant, price, size, side)."""
    return pl.DataFrame(
        {
            "ts_event": pl.Series([r[0] for r in rows], dtype=TS),
            "price": pl.Series([float(r[1]) for r in rows], dtype=pl.Float64),
            "size": pl.Series([r[2] for r in rows], dtype=pl.Int64),
            "side": [r[3] for r in rows],
        }
    )


EMPTY_TRADES = trades_frame([])
EMPTY_BOOK = pl.DataFrame(schema=book_1s_dtypes(CONFIG))
EMPTY_FLOW = empty_depth_flow_1m()


def dct_ortho(x: list[float], k: int) -> float:
    """Orthonormal DCT-II coefficient k, from its defining sum (Ahmed, Natarajan & Rao 1974)."""
    n = len(x)
    scale = math.sqrt(1.0 / n) if k == 0 else math.sqrt(2.0 / n)
    return scale * sum(v * math.cos(math.pi * k * (2 * i + 1) / (2 * n)) for i, v in enumerate(x))


# ----------------------------------------------------------------------------------------------- tape

TAPE_TRADES = [
    (rel(-400), 100.00, 9, "B"),
    (rel(-200), 100.00, 4, "A"),
    (rel(-100), 101.00, 3, "B"),
    (rel(-45), 100.25, 2, "A"),
    (rel(-10), 100.50, 5, "B"),
    (rel(-10), 100.00, 1, "N"),
    (rel(0), 102.00, 6, "A"),  # at T: included
    (rel(1), 100.00, 100, "B"),  # after T: never seen
]


def test_tape_window_features_on_a_tiny_tape():
    out, families = order_flow_features(
        state_frame([(T, 100.0, "UP", 2.0)]), trades_frame(TAPE_TRADES), EMPTY_BOOK, EMPTY_FLOW, TICK, CONFIG
    )
    assert families == ("tape",) and out.columns == tape_columns(CONFIG)
    row = out.row(0, named=True)
    # Window 60 s = (T - 60, T]: trades at -45 (A 2), -10 (B 5), -10 (N 1), 0 (A 6).
    assert row["tape_buy_volume_60s"] == 5
    assert row["tape_sell_volume_60s"] == 2 + 6
    assert row["tape_imbalance_60s"] == (5 - 8) / (5 + 8)
    assert row["tape_trade_rate_60s"] == 4 / 60
    # Within +-4 ticks (1.00 point) of 100: 100.25 (2), 100.50 (5), 100.00 (1); 102.00 is not.
    assert row["tape_level_volume_60s"] == 2 + 5 + 1
    # Window 300 s adds -200 (A 4, at the level) and -100 (B 3 at 101.00: exactly 4 ticks away).
    assert row["tape_buy_volume_300s"] == 5 + 3
    assert row["tape_sell_volume_300s"] == 2 + 6 + 4
    assert row["tape_trade_rate_300s"] == 6 / 300
    assert row["tape_level_volume_300s"] == 2 + 5 + 1 + 4 + 3
    # Every window, against a direct filter of the list.
    for w in CONFIG.order_flow_windows_seconds:
        inside = [t for t in TAPE_TRADES if rel(-w) < t[0] <= T]
        buy = sum(t[2] for t in inside if t[3] == "B")
        sell = sum(t[2] for t in inside if t[3] == "A")
        assert row[f"tape_buy_volume_{w}s"] == buy
        assert row[f"tape_sell_volume_{w}s"] == sell
        assert row[f"tape_imbalance_{w}s"] == ((buy - sell) / (buy + sell) if buy + sell else 0.0)
        assert row[f"tape_trade_rate_{w}s"] == len(inside) / w
        assert row[f"tape_level_volume_{w}s"] == sum(t[2] for t in inside if abs(t[1] - 100.0) <= 4 * TICK)
        assert row[f"tape_buy_sweeps_{w}s"] == 0 and row[f"tape_sell_sweeps_{w}s"] == 0


def test_trade_imbalance_trajectory():
    out, _ = order_flow_features(
        state_frame([(T, 100.0, "UP", 2.0)]), trades_frame(TAPE_TRADES), EMPTY_BOOK, EMPTY_FLOW, TICK, CONFIG
    )
    n = CONFIG.trajectory_minutes
    series = []
    for j in range(n - 1, -1, -1):  # minute intervals (T - (j+1) min, T - j min], oldest first
        inside = [t for t in TAPE_TRADES if rel(-60 * (j + 1)) < t[0] <= rel(-60 * j)]
        buy = sum(t[2] for t in inside if t[3] == "B")
        sell = sum(t[2] for t in inside if t[3] == "A")
        series.append((buy - sell) / (buy + sell) if buy + sell else 0.0)
    # Minute ending at T: B 5, A 6; -100 s: B 3 alone; -200 s: A 4 alone; -400 s: B 9 alone.
    assert series[-1] == (5 - 8) / 13 and series[-2] == 1.0 and series[-4] == -1.0 and series[-7] == 1.0
    for k in range(CONFIG.dct_coefficients):
        assert out[f"traj_trade_imbalance_dct_{k}"][0] == pytest.approx(dct_ortho(series, k), abs=1e-12)


def ms(milliseconds: int) -> datetime:
    return T + timedelta(milliseconds=milliseconds)


SWEEP_TRADES = [
    # Buy sweep: 3 prices within 50 ms; last trade at -4950 ms.
    (ms(-4_950 - 50), 100.00, 1, "B"),
    (ms(-4_980), 100.25, 1, "B"),
    (ms(-4_950), 100.50, 1, "B"),
    # Two prices only, then the side changes: no sweep.
    (ms(-3_000), 100.00, 1, "B"),
    (ms(-2_990), 100.25, 1, "B"),
    (ms(-2_980), 100.00, 1, "A"),
    # Third price 150 ms after the run's first trade: a new run, no sweep.
    (ms(-2_000), 100.00, 1, "A"),
    (ms(-1_990), 99.75, 1, "A"),
    (ms(-1_850), 99.50, 1, "A"),
    # An unknown-side trade breaks the run.
    (ms(-1_000), 100.00, 1, "B"),
    (ms(-990), 100.25, 1, "B"),
    (ms(-985), 100.25, 1, "N"),
    (ms(-980), 100.50, 1, "B"),
    # Sell sweep 40 s before T (outside the 30 s window), last trade at -39 970 ms.
    (ms(-40_000), 100.00, 2, "A"),
    (ms(-39_990), 99.75, 2, "A"),
    (ms(-39_980), 99.50, 2, "A"),
    (ms(-39_970), 99.50, 2, "A"),
]


def test_sweeps_counted_by_last_trade_in_window():
    out, _ = order_flow_features(
        state_frame([(T, 100.0, "UP", 2.0)]), trades_frame(SWEEP_TRADES), EMPTY_BOOK, EMPTY_FLOW, TICK, CONFIG
    )
    row = out.row(0, named=True)
    assert [row[f"tape_buy_sweeps_{w}s"] for w in CONFIG.order_flow_windows_seconds] == [1, 1, 1, 1]
    assert [row[f"tape_sell_sweeps_{w}s"] for w in CONFIG.order_flow_windows_seconds] == [0, 1, 1, 1]


def test_a_sweep_going_on_at_the_anchor_counts_by_its_trades_up_to_t():
    trades = trades_frame(
        [(ms(-20), 100.00, 1, "B"), (ms(-10), 100.25, 1, "B"), (ms(0), 100.50, 1, "B"), (ms(30), 100.75, 1, "B")]
    )
    later = T + timedelta(seconds=60)
    state = state_frame([(ms(-10), 100.0, "UP", 2.0), (T, 100.0, "UP", 2.0), (later, 100.0, "UP", 2.0)])
    out, _ = order_flow_features(state, trades, EMPTY_BOOK, EMPTY_FLOW, TICK, CONFIG)
    # At T - 10 ms only two prices were seen: not yet a sweep. At T: 3 prices, one sweep.
    assert out["tape_buy_sweeps_30s"].to_list() == [0, 1, 0]
    # One minute later the completed run (last trade T + 30 ms) lies in (later - 60 s, later].
    assert out["tape_buy_sweeps_60s"].to_list() == [0, 1, 1]
    # Bit for bit what the tape truncated at each anchor gives.
    for i, anchor in enumerate(state["ts_event"]):
        truncated, _ = order_flow_features(
            state, trades.filter(pl.col("ts_event") <= anchor), EMPTY_BOOK, EMPTY_FLOW, TICK, CONFIG
        )
        assert_frame_equal(truncated[i], out[i])


# ----------------------------------------------------------------------------------------------- book, depth

LEVELS = CONFIG.book_levels


def book_row(end: datetime, bid_sizes, ask_sizes, ofi_best: float, bid_top=99.00, ask_top=99.25, ofi_level_01=2.0) -> dict:
    """One silver_book_1s row: bids bid_top - 0.25 i, asks ask_top + 0.25 i, given sizes."""
    row: dict = {"session_date": SESSION, "ts_event": end, "source": "mbp-10", "n_events": 1}
    for i in range(LEVELS):
        row[f"bid_px_{i:02d}"] = bid_top - TICK * i
        row[f"ask_px_{i:02d}"] = ask_top + TICK * i
        row[f"bid_sz_{i:02d}"] = bid_sizes[i]
        row[f"ask_sz_{i:02d}"] = ask_sizes[i]
        row[f"ofi_level_{i:02d}"] = ofi_best if i == 0 else (ofi_level_01 if i == 1 else 0.0)
    row["ofi_best"] = ofi_best
    row["book_levels"] = LEVELS
    return row


BIDS = [10 + i for i in range(LEVELS)]
ASKS = [5 * (i + 1) for i in range(LEVELS)]
BOOK_ROWS = [
    book_row(rel(-1500), BIDS, [3] * LEVELS, 0.0),  # T - 25 min
    book_row(rel(-400), BIDS, [2] * LEVELS, 10.0),
    book_row(rel(-90), BIDS, [1] * LEVELS, -4.0),
    book_row(rel(0), BIDS, ASKS, 6.0),
    book_row(rel(1), [999] * LEVELS, [999] * LEVELS, 1000.0),  # after T: never seen
]
BOOK = pl.DataFrame(BOOK_ROWS, schema=book_1s_dtypes(CONFIG))


def side_depth(sizes, top: float, step: float, level: float, band_ticks: int) -> float:
    return float(sum(s for i, s in enumerate(sizes) if abs(top + step * i - level) <= band_ticks * TICK))


def test_book_features_at_the_anchor_and_ofi_windows():
    out, families = order_flow_features(
        state_frame([(T, 100.0, "UP", 2.0), (rel(-1600), 100.0, "UP", 2.0)]), EMPTY_TRADES, BOOK, EMPTY_FLOW, TICK, CONFIG
    )
    assert families == ("book", "depth")
    assert out.columns == book_columns(CONFIG) + depth_columns(CONFIG)
    row = out.row(0, named=True)
    bid, ask, bid_sz, ask_sz = 99.00, 99.25, 10, 5
    microprice = (bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz)
    assert row["book_imbalance"] == pytest.approx((10 - 5) / 15)
    assert row["microprice_offset_ticks"] == pytest.approx((microprice - 99.125) / TICK)
    assert row["microprice_dist_atr"] == pytest.approx((microprice - 100.0) / 2.0)
    assert row["spread_ticks"] == pytest.approx(1.0)
    # OFI over (T - 30 s, T]: only the bin at T, mean best depth (10 + 5) / 2.
    assert row["ofi_30s"] == pytest.approx(6.0 / 7.5)
    # (T - 120 s, T] and (T - 300 s, T]: bins at -90 s and 0; best depths (10 + 1) / 2 and 7.5.
    assert row["ofi_120s"] == pytest.approx((6.0 - 4.0) / ((5.5 + 7.5) / 2))
    assert row["ofi_300s"] == pytest.approx((6.0 - 4.0) / ((5.5 + 7.5) / 2))
    # Multi-level: level 1 adds 2 per bin; mean depth per level = total size of both sides / 20.
    per_level = lambda asks: (sum(BIDS) + sum(asks)) / (2 * LEVELS)  # noqa: E731
    assert row["mlofi_30s"] == pytest.approx((6.0 + 2.0) / per_level(ASKS))
    assert row["mlofi_120s"] == pytest.approx((6.0 + 2.0 - 4.0 + 2.0) / ((per_level([1] * LEVELS) + per_level(ASKS)) / 2))
    # 1-minute OFI over 20 minutes, scaled by the mean best depth of the bins in (T - 20 min, T].
    mean_best = ((10 + 2) / 2 + 5.5 + 7.5) / 3
    minute_ofi = [0.0] * 20
    minute_ofi[19], minute_ofi[18], minute_ofi[13] = 6.0, -4.0, 10.0  # -400 s lies in (T - 7 min, T - 6 min]
    for k in range(CONFIG.dct_coefficients):
        assert row[f"traj_ofi_dct_{k}"] == pytest.approx(dct_ortho([v / mean_best for v in minute_ofi], k), abs=1e-12)
    # Before the first book bin every book and depth feature is null.
    assert all(v is None for v in out.row(1))


def test_depth_at_the_level_change_and_wall_ratio():
    state = state_frame([(T, 100.0, "UP", 2.0), (T, 99.50, "DOWN", 2.0)])
    out, _ = order_flow_features(state, EMPTY_TRADES, BOOK, EMPTY_FLOW, TICK, CONFIG)
    up, down = out.row(0, named=True), out.row(1, named=True)
    # UP defends with the asks 99.25 + 0.25 i: within 1.00 of 100 are i = 0..7, within 2.00 all ten.
    assert up["depth_4t"] == side_depth(ASKS, 99.25, TICK, 100.0, 4) == 5 * 36
    assert up["depth_8t"] == side_depth(ASKS, 99.25, TICK, 100.0, 8) == 5 * 55
    # DOWN defends with the bids 99.00 - 0.25 i around 99.50: i = 0..2 within 1.00, i = 0..6 within 2.00.
    assert down["depth_4t"] == side_depth(BIDS, 99.00, -TICK, 99.50, 4) == 10 + 11 + 12
    assert down["depth_8t"] == side_depth(BIDS, 99.00, -TICK, 99.50, 8) == sum(range(10, 17))
    # Changes: book at T - 1 min is the -90 s bin (asks 1 each), at T - 3 and T - 5 min the -400 s bin (2 each).
    assert up["depth_4t_change_1m"] == 180 - 8 * 1
    assert up["depth_4t_change_3m"] == 180 - 8 * 2
    assert up["depth_8t_change_5m"] == 275 - 10 * 2
    assert down["depth_4t_change_1m"] == 0.0  # the bids never changed
    # Wall ratio: depth over the mean size per level of the defending side's 10 levels.
    assert up["wall_ratio_4t"] == pytest.approx(180 / (sum(ASKS) / 10))
    assert up["wall_ratio_8t"] == pytest.approx(10.0)
    assert down["wall_ratio_8t"] == pytest.approx(sum(range(10, 17)) / (sum(BIDS) / 10))
    # Depth trajectory: log1p(depth_4t) at T - 19 min .. T with the book in force at each instant.
    samples = []
    for j in range(19, -1, -1):
        instant = rel(-60 * j)
        current = [r for r in BOOK_ROWS if r["ts_event"] <= instant][-1]
        asks = [current[f"ask_sz_{i:02d}"] for i in range(LEVELS)]
        samples.append(math.log1p(side_depth(asks, 99.25, TICK, 100.0, 4)))
    for k in range(CONFIG.dct_coefficients):
        assert up[f"traj_depth_dct_{k}"] == pytest.approx(dct_ortho(samples, k), abs=1e-12)


def test_top_of_book_only_gives_book_without_depth():
    top = BOOK.with_columns(
        [pl.lit(None, dtype=pl.Float64).alias(f"{s}_px_{i:02d}") for s in ("bid", "ask") for i in range(1, LEVELS)]
        + [pl.lit(None, dtype=pl.Int64).alias(f"{s}_sz_{i:02d}") for s in ("bid", "ask") for i in range(1, LEVELS)]
        + [pl.lit(None, dtype=pl.Float64).alias(f"ofi_level_{i:02d}") for i in range(LEVELS)]
        + [pl.lit(1, dtype=pl.Int8).alias("book_levels")]
    )
    out, families = order_flow_features(state_frame([(T, 100.0, "UP", 2.0)]), EMPTY_TRADES, top, EMPTY_FLOW, TICK, CONFIG)
    assert families == ("book",) and out.columns == book_columns(CONFIG)
    assert out["ofi_30s"][0] == pytest.approx(6.0 / 7.5)


def test_no_order_flow_data_gives_no_columns():
    state = state_frame([(T, 100.0, "UP", 2.0), (T, 101.0, "DOWN", 2.0)])
    out, families = order_flow_features(state, EMPTY_TRADES, EMPTY_BOOK, EMPTY_FLOW, TICK, CONFIG)
    assert families == () and out.width == 0


# ----------------------------------------------------------------------------------------------- mbo


def flow_row(end: datetime, side: str, price: float, added: int, cancelled: int, filled: int) -> dict:
    return {"session_date": SESSION, "ts_event": end, "side": side, "price": price,
            "added_size": added, "cancelled_size": cancelled, "filled_size": filled}


FLOW = pl.DataFrame(
    [
        flow_row(rel(-240), "A", 99.00, 7, 0, 0),  # exactly 4 ticks below 100: in the band, 5-minute window only
        flow_row(rel(-240), "A", 98.75, 100, 100, 100),  # 5 ticks away: outside the band
        flow_row(rel(-120), "A", 100.50, 5, 1, 0),  # 3- and 5-minute windows
        flow_row(rel(0), "A", 100.25, 10, 2, 3),  # every window
        flow_row(rel(0), "B", 100.00, 50, 50, 50),  # the bid side: defends DOWN only
        flow_row(rel(60), "A", 100.00, 1000, 1000, 1000),  # after T: never seen
    ],
    schema=empty_depth_flow_1m().schema,
)


def test_replenishment_near_the_level_on_the_defending_side():
    state = state_frame([(T, 100.0, "UP", 2.0), (T, 100.0, "DOWN", 2.0)])
    out, families = order_flow_features(state, EMPTY_TRADES, EMPTY_BOOK, FLOW, TICK, CONFIG)
    assert families == ("mbo",) and out.columns == mbo_columns(CONFIG)
    up, down = out.row(0, named=True), out.row(1, named=True)
    assert (up["repl_added_4t_1m"], up["repl_cancelled_4t_1m"], up["repl_filled_4t_1m"]) == (10, 2, 3)
    assert (up["repl_added_4t_3m"], up["repl_cancelled_4t_3m"], up["repl_filled_4t_3m"]) == (10 + 5, 2 + 1, 3)
    assert (up["repl_added_4t_5m"], up["repl_cancelled_4t_5m"], up["repl_filled_4t_5m"]) == (10 + 5 + 7, 3, 3)
    assert up["replenishment_ratio_4t_5m"] == pytest.approx(22 / (3 + 3))
    assert (down["repl_added_4t_1m"], down["repl_cancelled_4t_5m"]) == (50, 50)
    assert down["replenishment_ratio_4t_5m"] == pytest.approx(50 / 100)


def test_replenishment_ratio_is_null_when_nothing_was_removed():
    flow = FLOW.filter(pl.col("side") == "A").with_columns(cancelled_size=pl.lit(0, dtype=pl.Int64), filled_size=pl.lit(0, dtype=pl.Int64))
    out, _ = order_flow_features(state_frame([(T, 100.0, "UP", 2.0)]), EMPTY_TRADES, EMPTY_BOOK, flow, TICK, CONFIG)
    assert out["replenishment_ratio_4t_5m"][0] is None and out["repl_added_4t_5m"][0] == 22


# ----------------------------------------------------------------------------------------------- point in time


def synthetic_session(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Random trades and MBO-rebuilt 10-level book rows over 30 minutes before and after T (ms clock).

    Includes a buy sweep straddling T and events exactly at T.
    """
    rng = np.random.default_rng(seed)
    start_ns = int((T - timedelta(minutes=30)).timestamp() * 1e9)
    n_trades, n_book = 6_000, 8_000
    trade_ts = np.sort(rng.integers(0, 45 * 60 * 1000, n_trades)) * 1_000_000 + start_ns
    trade_ticks = 400 + rng.integers(-8, 9, n_trades)  # prices scattered around 100.00
    sides = rng.choice(["B", "A", "N"], n_trades, p=[0.47, 0.47, 0.06])
    t_ns = int(T.timestamp() * 1e9)
    straddle_ts = t_ns + np.array([-20, -10, 0, 30]) * 1_000_000
    trades = pl.DataFrame(
        {
            "ts_event": np.r_[trade_ts, straddle_ts],
            "price": np.r_[trade_ticks * TICK, [100.0, 100.25, 100.5, 100.75]],
            "size": np.r_[rng.integers(1, 10, n_trades), [1, 1, 1, 1]],
            "side": np.r_[sides, ["B"] * 4],
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")).sort("ts_event", maintain_order=True)

    book_ts = np.sort(np.r_[rng.integers(0, 45 * 60 * 1000, n_book) * 1_000_000 + start_ns, [t_ns, t_ns]])
    n = book_ts.shape[0]
    mid = 400 + rng.integers(-4, 5, n)
    data: dict[str, object] = {
        "ts_event": pl.Series(book_ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
        "action": rng.choice(["A", "C", "M", "F", "T"], n),
        "side": rng.choice(["B", "A"], n),
        "price": (mid + rng.integers(-6, 7, n)) * TICK,
        "size": rng.integers(1, 20, n),
        "flags": np.zeros(n, dtype=np.int16),
        "book_ok": rng.random(n) > 0.03,
        "source": ["mbo"] * n,
    }
    data["size"] = np.where(data["action"] == "M", rng.integers(-10, 10, n), data["size"])
    for i in range(LEVELS):
        data[f"bid_px_{i:02d}"] = (mid - 1 - i) * TICK
        data[f"ask_px_{i:02d}"] = (mid + 1 + i) * TICK
        data[f"bid_sz_{i:02d}"] = rng.integers(1, 60, n).astype(np.int32)
        data[f"ask_sz_{i:02d}"] = rng.integers(1, 60, n).astype(np.int32)
    return trades, pl.DataFrame(data)


def test_every_family_is_point_in_time():
    trades, mbp10 = synthetic_session(seed=11)
    anchors = [T + timedelta(minutes=m) for m in (-8, -2, 0, 2, 4, 10)]
    rng = np.random.default_rng(5)
    state = state_frame(
        [(a, float(100 + 0.25 * rng.integers(-8, 9)), d, 2.5) for a in anchors for d in ("UP", "DOWN")]
    )
    full, families = order_flow_features(
        state,
        trades,
        book_1s(mbp10.iter_slices(997), SESSION, CONFIG),
        depth_flow_1m(mbp10.iter_slices(997), SESSION, CONFIG),
        TICK,
        CONFIG,
    )
    assert families == ("tape", "book", "depth", "mbo")
    # Every feature is defined somewhere, so the comparisons below are not between nulls only.
    assert all(count < full.height for count in full.null_count().row(0))
    for i, anchor in enumerate(state["ts_event"]):
        seen = pl.col("ts_event") <= anchor
        raw = mbp10.filter(seen)
        truncated, truncated_families = order_flow_features(
            state,
            trades.filter(seen),
            book_1s(raw.iter_slices(500), SESSION, CONFIG),
            depth_flow_1m(raw.iter_slices(500), SESSION, CONFIG),
            TICK,
            CONFIG,
        )
        assert truncated_families == families
        assert_frame_equal(truncated[i], full[i])
    # The straddling sweep is seen at T.
    at_t = state["ts_event"] == T
    assert (full.filter(at_t)["tape_buy_sweeps_30s"] >= 1).all()
