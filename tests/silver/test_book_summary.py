"""silver_book_1s and silver_depth_flow_1m: hand-worked OFI, bad-row rules, batch-size invariance, schemas."""

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from pandera.errors import SchemaError
from polars.testing import assert_frame_equal

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.book_summary import (
    book_1s,
    book_1s_columns,
    depth_flow_1m,
    validate_silver_book_1s,
    validate_silver_depth_flow_1m,
)

CONFIG = SpymasterConfig()
SESSION = date(2024, 3, 12)
T0 = datetime(2024, 3, 12, 14, 0, tzinfo=timezone.utc)
TS = pl.Datetime("ns", "UTC")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def bbo_frame(rows: list[tuple]) -> pl.DataFrame:
    """bronze_futures_bbo rows from (seconds after T0, bid, bid size, ask, ask size)."""
    return pl.DataFrame(
        {
            "session_date": [SESSION] * len(rows),
            "ts_event": pl.Series([at(r[0]) for r in rows], dtype=TS),
            "bid_px_00": pl.Series([r[1] for r in rows], dtype=pl.Float64),
            "bid_sz_00": pl.Series([r[2] for r in rows], dtype=pl.Int32),
            "ask_px_00": pl.Series([r[3] for r in rows], dtype=pl.Float64),
            "ask_sz_00": pl.Series([r[4] for r in rows], dtype=pl.Int32),
            "source": ["mbp-1"] * len(rows),
        }
    )


def test_best_level_ofi_hand_worked_quotes():
    rows = [
        (0.2, 100.00, 10, 100.25, 12),  # first state of the session: e = 0
        (0.5, 100.00, 15, 100.25, 12),  # same bid price, size 10 -> 15: e = 15 - 10
        (0.9, 100.25, 4, 100.50, 7),  # bid up: + new bid 4; ask up: + old ask 12
        (1.1, 100.50, 5, 100.50, 5),  # crossed (bid >= ask): skipped
        (1.2, None, 0, 100.50, 5),  # empty bid: skipped
        (1.4, 100.00, 9, 100.25, 3),  # vs row 3: bid down: - old bid 4; ask down: - new ask 3
        (2.0, 100.00, 9, 100.25, 8),  # ask same price 3 -> 8: - 8 + 3; bid unchanged: 9 - 9
        (3.5, 100.00, 2, 100.25, 8),  # bid same price 9 -> 2: 2 - 9
    ]
    e = [0, 15 - 10, 4 + 12, None, None, -4 - 3, (9 - 9) + (-8 + 3), 2 - 9]
    counts: dict[str, int] = {}
    out = book_1s([bbo_frame(rows)], SESSION, CONFIG, counts=counts)
    validate_silver_book_1s(out, CONFIG)

    # Bins (end - 1 s, end]: (0, 1] holds rows 1-3, (1, 2] rows 4-7 (2.0 closes its bin), (3, 4] row 8.
    assert out["ts_event"].to_list() == [at(1), at(2), at(4)]
    assert out["n_events"].to_list() == [3, 4, 1]
    assert out["ofi_best"].to_list() == [e[0] + e[1] + e[2], e[5] + e[6], e[7]]
    # Snapshot: the last good state of each bin.
    assert out["bid_px_00"].to_list() == [100.25, 100.00, 100.00]
    assert out["ask_sz_00"].to_list() == [7, 8, 8]
    assert out["bid_sz_00"].to_list() == [4, 9, 2]
    assert out["book_levels"].to_list() == [1, 1, 1]
    # Top of book: deeper levels and per-level OFI are unknown, not zero.
    assert out["bid_px_01"].null_count() == 3 and out["ofi_level_00"].null_count() == 3
    assert counts == {"rows": 8, "skipped_book_not_ok": 0, "skipped_crossed_or_empty": 2}


def mbp_frame(rows: list[dict], levels: int) -> pl.DataFrame:
    """bronze_futures_mbp10-like rows: each dict has t (seconds), ok, bids [(px, sz)], asks [(px, sz)], flags."""
    data: dict[str, list] = {"ts_event": [], "book_ok": [], "flags": [], "source": []}
    for side in ("bid", "ask"):
        for i in range(levels):
            data[f"{side}_px_{i:02d}"] = []
            data[f"{side}_sz_{i:02d}"] = []
    for r in rows:
        data["ts_event"].append(at(r["t"]))
        data["book_ok"].append(r.get("ok", True))
        data["flags"].append(r.get("flags", 0))
        data["source"].append("mbp-10")
        for side in ("bid", "ask"):
            quotes = r[side + "s"]
            for i in range(levels):
                px, sz = quotes[i] if i < len(quotes) else (None, 0)
                data[f"{side}_px_{i:02d}"].append(px)
                data[f"{side}_sz_{i:02d}"].append(sz)
    schema = {"ts_event": TS, "book_ok": pl.Boolean, "flags": pl.Int16, "source": pl.Utf8}
    schema |= {k: (pl.Float64 if "_px_" in k else pl.Int32) for k in data if "_px_" in k or "_sz_" in k}
    return pl.DataFrame(data, schema=schema)


def test_multi_level_ofi_per_level_with_empty_levels_and_bad_book():
    config = SpymasterConfig(book_levels=2)
    rows = [
        {"t": 0.1, "bids": [(100.0, 10)], "asks": [(100.25, 5), (100.5, 7)]},  # bid level 1 empty
        # Level 1 bid appears (empty = -inf below it): + 6. Level 0 unchanged: 0.
        {"t": 0.2, "bids": [(100.0, 10), (99.75, 6)], "asks": [(100.25, 5), (100.5, 7)]},
        # Bad book: skipped whatever it says.
        {"t": 0.3, "ok": False, "bids": [(101.0, 99)], "asks": [(101.25, 99)]},
        # Level 1 ask empties (empty = +inf above it): + old size 7. Level 0 bid 10 -> 12: + 2.
        {"t": 0.4, "bids": [(100.0, 12), (99.75, 6)], "asks": [(100.25, 5)]},
        # Snapshot record: the book is replaced, but a snapshot is not flow: e = 0.
        {"t": 0.6, "flags": 32, "bids": [(99.0, 1), (98.75, 1)], "asks": [(99.25, 1), (99.5, 1)]},
        # After the snapshot, level 0 bid 1 -> 4: + 3; level 1 ask 99.5 -> 99.75 (up): + old 1.
        {"t": 0.8, "bids": [(99.0, 4), (98.75, 1)], "asks": [(99.25, 1), (99.75, 2)]},
    ]
    counts: dict[str, int] = {}
    out = book_1s([mbp_frame(rows, 2)], SESSION, config, counts=counts)
    assert out.height == 1 and out["n_events"].item() == 6 and out["book_levels"].item() == 2
    assert out["ofi_level_00"].item() == 0 + 0 + 2 + 0 + 3
    assert out["ofi_level_01"].item() == 0 + 6 + 7 + 0 + 1
    assert out["ofi_best"].item() == out["ofi_level_00"].item()
    assert out["ask_px_01"].item() == 99.75 and out["bid_sz_00"].item() == 4
    assert counts["skipped_book_not_ok"] == 1


def random_mbp10(n: int, seed: int, levels: int = 10) -> pl.DataFrame:
    """A random 10-level book path (ticks of 0.25, occasional bad rows, bursts inside one second)."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 20 * 10**9, n))
    mid_ticks = 20_000 + np.cumsum(rng.integers(-1, 2, n))
    data: dict[str, object] = {
        "ts_event": pl.Series((T0.timestamp() * 10**9 + ts).astype(np.int64)).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"),
        "book_ok": rng.random(n) > 0.05,
        "flags": np.zeros(n, dtype=np.int16),
        "source": ["mbp-10"] * n,
    }
    for i in range(levels):
        bid = (mid_ticks - 1 - i) * 0.25
        ask = (mid_ticks + 1 + i) * 0.25
        empty = rng.random(n) < 0.1 if i > 0 else np.zeros(n, dtype=bool)
        data[f"bid_px_{i:02d}"] = pl.Series(np.where(empty, np.nan, bid)).fill_nan(None)
        data[f"ask_px_{i:02d}"] = pl.Series(ask)
        data[f"bid_sz_{i:02d}"] = np.where(empty, 0, rng.integers(1, 50, n)).astype(np.int32)
        data[f"ask_sz_{i:02d}"] = rng.integers(1, 50, n).astype(np.int32)
    # A few crossed rows that book_ok did not flag.
    frame = pl.DataFrame(data)
    crossed = pl.Series(rng.random(n) < 0.02)
    return frame.with_columns(pl.when(crossed).then(pl.col("ask_px_00") - 1.0).otherwise(pl.col("bid_px_00")).alias("bid_px_00"))


def test_book_1s_does_not_depend_on_the_batch_size():
    frame = random_mbp10(600, seed=3)
    small_counts: dict[str, int] = {}
    large_counts: dict[str, int] = {}
    small = book_1s(frame.iter_slices(3), SESSION, CONFIG, counts=small_counts)
    large = book_1s(frame.iter_slices(1000), SESSION, CONFIG, counts=large_counts)
    assert_frame_equal(small, large)
    assert small_counts == large_counts
    assert small.columns == book_1s_columns(CONFIG) and small["book_levels"].unique().to_list() == [10]
    validate_silver_book_1s(small, CONFIG)
    # OFI summed over the day equals the sum of e_n over the good rows, computed row by row here.
    good = frame.filter(
        pl.col("book_ok") & (pl.col("bid_px_00") < pl.col("ask_px_00"))
    )
    previous = None
    total = 0.0
    for row in good.iter_rows(named=True):
        state = (row["bid_px_00"], row["bid_sz_00"], row["ask_px_00"], row["ask_sz_00"])
        if previous is not None:
            pb, qb, pa, qa = previous
            b, bq, a, aq = state
            total += (b >= pb) * bq - (b <= pb) * qb - (a <= pa) * aq + (a >= pa) * qa
        previous = state
    assert small["ofi_best"].sum() == total


def test_book_1s_merges_a_bin_split_across_batches_out_of_ts_order():
    # Sorted by ts_recv, a late ts_event can fall in an earlier bin than the previous row's.
    rows = [(0.5, 100.0, 10, 100.25, 10), (1.5, 100.0, 12, 100.25, 10), (0.9, 100.0, 15, 100.25, 10)]
    out = book_1s([bbo_frame(rows[:2]), bbo_frame(rows[2:])], SESSION, CONFIG)
    assert out["ts_event"].to_list() == [at(1), at(2)]
    assert out["n_events"].to_list() == [2, 1]
    # e: row 1: 0, row 2: 12 - 10 = 2 (bin 2), row 3: 15 - 12 = 3 (bin 1, the latest state in file order).
    assert out["ofi_best"].to_list() == [3.0, 2.0]
    assert out["bid_sz_00"].to_list() == [15, 12]


def test_book_1s_empty_input_has_the_schema():
    out = book_1s(iter([]), SESSION, CONFIG)
    assert out.is_empty() and out.columns == book_1s_columns(CONFIG)
    validate_silver_book_1s(out, CONFIG)


def test_book_1s_schema_rejects_a_crossed_book():
    out = book_1s([bbo_frame([(0.5, 100.0, 1, 100.25, 1)])], SESSION, CONFIG)
    with pytest.raises(SchemaError, match="silver_book_1s"):
        validate_silver_book_1s(out.with_columns(bid_px_00=pl.lit(101.0)), CONFIG)


def flow_frame(rows: list[tuple], source: str = "mbo") -> pl.DataFrame:
    """MBO-rebuilt mbp10 rows from (seconds after T0, action, side, price, size, flags, book_ok)."""
    return pl.DataFrame(
        {
            "ts_event": pl.Series([at(r[0]) for r in rows], dtype=TS),
            "action": [r[1] for r in rows],
            "side": [r[2] for r in rows],
            "price": pl.Series([r[3] for r in rows], dtype=pl.Float64),
            "size": pl.Series([r[4] for r in rows], dtype=pl.Int64),
            "flags": pl.Series([r[5] for r in rows], dtype=pl.Int16),
            "book_ok": [r[6] for r in rows],
            "source": [source] * len(rows),
        }
    )


def test_depth_flow_1m_hand_built_flow():
    rows = [
        (1, "A", "A", 100.25, 50, 32, True),  # snapshot: not activity
        (5, "A", "A", 100.25, 10, 0, True),
        (10, "M", "A", 100.25, 4, 0, True),  # modify up 4: added
        (20, "M", "A", 100.25, -3, 0, True),  # modify down 3: cancelled
        (30, "C", "A", 100.25, 2, 0, True),
        (40, "T", "B", 100.25, 5, 0, True),  # trade: ignored (the F row carries it)
        (40, "F", "A", 100.25, 5, 0, True),
        (45, "A", "A", 100.25, 99, 0, False),  # bad book: skipped
        (50, "A", "B", 100.00, 7, 0, True),
        (60, "C", "B", 100.00, 1, 0, True),  # 60 s closes the first minute bin
        (61, "F", "B", 100.00, 3, 0, True),
    ]
    counts: dict[str, int] = {}
    batches = [flow_frame(rows[:4]), flow_frame(rows[4:])]
    out = depth_flow_1m(batches, SESSION, CONFIG, counts=counts)
    validate_silver_depth_flow_1m(out)
    expected = pl.DataFrame(
        {
            "session_date": [SESSION] * 3,
            "ts_event": pl.Series([at(60), at(60), at(120)], dtype=TS),
            "side": ["A", "B", "B"],
            "price": [100.25, 100.00, 100.00],
            "added_size": [10 + 4, 7, 0],
            "cancelled_size": [3 + 2, 1, 0],
            "filled_size": [5, 0, 3],
        }
    )
    assert_frame_equal(out, expected)
    assert counts["skipped_snapshot"] == 1 and counts["skipped_book_not_ok"] == 1


def test_depth_flow_1m_is_empty_without_mbo():
    out = depth_flow_1m([flow_frame([(5, "A", "A", 100.25, 10, 0, True)], source="mbp-10")], SESSION, CONFIG)
    assert out.is_empty()
    validate_silver_depth_flow_1m(out)


def test_depth_flow_1m_counts_a_moved_order_as_cancelled_where_it_left():
    """An M that moves an order (prev_price set by the MBO engine) removes prev_size at prev_price and adds size at price."""
    frame = flow_frame(
        [
            (5, "A", "A", 100.25, 6, 0, True),
            (10, "M", "A", 100.50, 6, 0, True),  # the order of 6 moves up a tick
            (20, "M", "A", 100.50, -2, 0, True),  # then shrinks in place
        ]
    ).with_columns(
        prev_price=pl.Series([None, 100.25, None], dtype=pl.Float64),
        prev_size=pl.Series([0, 6, 0], dtype=pl.Int64),
    )
    out = depth_flow_1m([frame], SESSION, CONFIG)
    got = {(r["price"]): (r["added_size"], r["cancelled_size"], r["filled_size"]) for r in out.iter_rows(named=True)}
    assert got == {100.25: (6, 6, 0), 100.50: (6, 2, 0)}
