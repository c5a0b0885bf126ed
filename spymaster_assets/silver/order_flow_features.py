"""Order-flow features of silver_level_state: tape, book, depth and MBO replenishment at each anchor.

One row per level-state row (anchor T, level kind). Every value at T uses only rows with
ts_event <= T: trades with ts_event <= T, silver_book_1s bins ending at or before T, and
silver_depth_flow_1m bins ending at or before T, so running on inputs truncated at T reproduces
the row bit for bit (tests/silver/test_order_flow_features.py).

Speed: inputs are sorted once by time; windows are found with ``np.searchsorted`` over the sorted
time arrays and summed with prefix sums (integer-valued, hence exact); the per-anchor loops over
trades near the level and over MBO flow are Numba. Column names and definitions are the contract of
``feature_names`` (tape_columns, book_columns, depth_columns, mbo_columns). Pure code: no Dagster.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.fft
from numba import njit

from spymaster_core.config import DIRECTIONS, SpymasterConfig
from spymaster_core.units import NS_PER_MINUTE, NS_PER_SECOND
from .feature_names import book_columns, depth_columns, mbo_columns, tape_columns

NS_PER_MS = 1_000_000
#: Tolerance (points) of the "within +-b ticks of the level" test, for float rounding of prices.
BAND_TOLERANCE_POINTS = 1e-9
_UP = DIRECTIONS[0]
_BUY, _SELL, _UNKNOWN = 1, -1, 0


def _epoch_ns(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("ns").to_numpy().astype(np.int64)


def _window_bounds(times_ns: np.ndarray, ends_ns: np.ndarray, length_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Index range [lo, hi) of the sorted ``times_ns`` inside each window (end - length, end]."""
    hi = np.searchsorted(times_ns, ends_ns, side="right")
    lo = np.searchsorted(times_ns, ends_ns - length_ns, side="right")
    return lo, hi


def _prefix(values: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0, so sum(values[lo:hi]) = p[hi] - p[lo]."""
    out = np.zeros(values.shape[0] + 1, dtype=values.dtype)
    np.cumsum(values, out=out[1:])
    return out


def _dct_block(series: np.ndarray, config: SpymasterConfig) -> np.ndarray:
    """First ``dct_coefficients`` orthonormal DCT-II coefficients of each row (as silver/level_state.py)."""
    return scipy.fft.dct(series, type=2, norm="ortho", axis=1)[:, : config.dct_coefficients]


def _trajectory_ends(anchor_ns: np.ndarray, config: SpymasterConfig) -> np.ndarray:
    """``(n, trajectory_minutes)`` sample instants T - (n-1) min .. T, oldest first."""
    minutes_back = np.arange(config.trajectory_minutes - 1, -1, -1, dtype=np.int64)
    return anchor_ns[:, None] - minutes_back[None, :] * NS_PER_MINUTE


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 or NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


# ----------------------------------------------------------------------------------------------
# Tape


@njit(cache=True)
def _sweep_runs(ts_ns, side, price_ticks, window_ns, min_prices):
    """Split trades (sorted by time) into runs of consecutive same-side trades within ``window_ns`` of the run's first.

    Returns run_of_trade (-1 for side N), and per run: last trade index and the index of the trade
    at which the run first spans ``min_prices`` distinct prices (-1 when it never does).
    """
    n = ts_ns.shape[0]
    run_of_trade = np.full(n, -1, dtype=np.int64)
    run_last = np.empty(n, dtype=np.int64)
    run_qualify = np.empty(n, dtype=np.int64)
    seen = np.empty(max(min_prices, 1), dtype=np.int64)
    n_runs = 0
    current = -1
    first_ts = 0
    n_seen = 0
    current_side = 0
    for i in range(n):
        s = side[i]
        if s == 0:
            current = -1  # an unknown-side trade breaks any run
            continue
        if current >= 0 and s == current_side and ts_ns[i] - first_ts <= window_ns:
            run_last[current] = i
        else:
            current = n_runs
            n_runs += 1
            current_side = s
            first_ts = ts_ns[i]
            run_last[current] = i
            run_qualify[current] = -1
            n_seen = 0
        run_of_trade[i] = current
        # Only the first min_prices distinct prices matter: stop tracking once the run qualifies.
        if run_qualify[current] < 0:
            new = True
            for k in range(n_seen):
                if seen[k] == price_ticks[i]:
                    new = False
                    break
            if new:
                seen[n_seen] = price_ticks[i]
                n_seen += 1
                if n_seen >= min_prices:
                    run_qualify[current] = i
    return run_of_trade, run_last[:n_runs], run_qualify[:n_runs]


@njit(cache=True)
def _level_volume(ts_ns, price, size, anchor_ns, level, band_points, windows_ns, hi):
    """Contracts traded within +-band_points of each anchor's level over each window (T - w, T]."""
    n_anchor = anchor_ns.shape[0]
    n_win = windows_ns.shape[0]
    longest = windows_ns.max()
    out = np.zeros((n_anchor, n_win), dtype=np.int64)
    for a in range(n_anchor):
        start = np.searchsorted(ts_ns, anchor_ns[a] - longest, side="right")
        for j in range(start, hi[a]):
            if abs(price[j] - level[a]) <= band_points:
                for w in range(n_win):
                    if ts_ns[j] > anchor_ns[a] - windows_ns[w]:
                        out[a, w] += size[j]
    return out


def _sweep_counts(
    ts_ns: np.ndarray,
    side: np.ndarray,
    run_of_trade: np.ndarray,
    run_last: np.ndarray,
    run_qualify: np.ndarray,
    anchor_ns: np.ndarray,
    window_ns: int,
    wanted_side: int,
) -> np.ndarray:
    """Sweeps of one side counted at each anchor over (T - w, T], point in time.

    A run whose last trade is at or before T counts when that trade lies in the window. A run still
    going on at T is seen as its trades up to T: it counts when it had reached the price threshold by
    T (its qualifying trade <= T) and its last trade up to T lies in the window.
    """
    if run_last.shape[0] == 0:
        return np.zeros(anchor_ns.shape[0])
    runs = np.flatnonzero(run_qualify >= 0)
    runs = runs[side[run_last[runs]] == wanted_side]
    last_ts = ts_ns[run_last[runs]]  # nondecreasing: runs are consecutive in time
    lo, hi = _window_bounds(last_ts, anchor_ns, window_ns)
    counts = (hi - lo).astype(np.float64)
    # The run straddling T (its full last trade is after T).
    last_trade = np.searchsorted(ts_ns, anchor_ns, side="right") - 1
    has_trade = last_trade >= 0
    j = np.maximum(last_trade, 0)
    run = run_of_trade[j]
    r = np.maximum(run, 0)
    straddling = (
        has_trade
        & (run >= 0)
        & (side[j] == wanted_side)
        & (run_last[r] > j)
        & (run_qualify[r] >= 0)
        & (run_qualify[r] <= j)
        & (ts_ns[j] > anchor_ns - window_ns)
    )
    return counts + straddling


def _tape_features(
    trades: pl.DataFrame, anchor_ns: np.ndarray, level: np.ndarray, tick_size: float, config: SpymasterConfig
) -> dict[str, np.ndarray]:
    tape = trades.select(
        ts=pl.col("ts_event").dt.epoch("ns"),
        price=pl.col("price").cast(pl.Float64),
        size=pl.col("size").cast(pl.Int64),
        side=pl.col("side").replace_strict({"B": _BUY, "A": _SELL}, default=_UNKNOWN, return_dtype=pl.Int8),
    ).sort("ts", maintain_order=True)  # stable: ties keep the file's (ts_recv, sequence) order
    ts = tape["ts"].to_numpy().astype(np.int64)
    price = tape["price"].to_numpy().astype(np.float64)
    size = tape["size"].to_numpy().astype(np.int64)
    side = tape["side"].to_numpy().astype(np.int64)
    cum_buy = _prefix(np.where(side == _BUY, size, 0))
    cum_sell = _prefix(np.where(side == _SELL, size, 0))

    windows_s = config.order_flow_windows_seconds
    windows_ns = np.array(windows_s, dtype=np.int64) * NS_PER_SECOND
    hi_anchor = np.searchsorted(ts, anchor_ns, side="right")
    band = config.level_band_ticks[0] * tick_size + BAND_TOLERANCE_POINTS
    level_volume = _level_volume(ts, price, size, anchor_ns, level, band, windows_ns, hi_anchor)
    price_ticks = np.round(price / tick_size).astype(np.int64)
    run_of_trade, run_last, run_qualify = _sweep_runs(
        ts, side, price_ticks, config.sweep_window_ms * NS_PER_MS, config.sweep_min_price_levels
    )

    names = iter(tape_columns(config))
    out: dict[str, np.ndarray] = {}
    for k, (w, w_ns) in enumerate(zip(windows_s, windows_ns)):
        lo, hi = _window_bounds(ts, anchor_ns, int(w_ns))
        buy = (cum_buy[hi] - cum_buy[lo]).astype(np.float64)
        sell = (cum_sell[hi] - cum_sell[lo]).astype(np.float64)
        out[next(names)] = buy
        out[next(names)] = sell
        out[next(names)] = np.where(buy + sell > 0, _safe_ratio(buy - sell, buy + sell), 0.0)
        out[next(names)] = (hi - lo) / float(w)
        out[next(names)] = level_volume[:, k].astype(np.float64)
        for wanted in (_BUY, _SELL):
            out[next(names)] = _sweep_counts(ts, side, run_of_trade, run_last, run_qualify, anchor_ns, int(w_ns), wanted)

    # Trade imbalance of each 1-minute interval (t - 1 min, t] at the trajectory instants.
    ends = _trajectory_ends(anchor_ns, config)
    lo, hi = _window_bounds(ts, ends, NS_PER_MINUTE)
    buy = (cum_buy[hi] - cum_buy[lo]).astype(np.float64)
    sell = (cum_sell[hi] - cum_sell[lo]).astype(np.float64)
    imbalance = np.where(buy + sell > 0, _safe_ratio(buy - sell, buy + sell), 0.0)
    coefficients = _dct_block(imbalance, config)
    for i in range(config.dct_coefficients):
        out[next(names)] = coefficients[:, i]
    return out


# ----------------------------------------------------------------------------------------------
# Book (top of book and best-level OFI)


class _BookSeries:
    """silver_book_1s as sorted NumPy arrays with prefix sums for window statistics."""

    def __init__(self, book_1s: pl.DataFrame):
        book = book_1s.sort("ts_event")
        self.ts = _epoch_ns(book["ts_event"])
        self.valid = (book["bid_px_00"].is_not_null() & book["ask_px_00"].is_not_null()).to_numpy()
        self.bid_px0 = book["bid_px_00"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.ask_px0 = book["ask_px_00"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.bid_sz0 = book["bid_sz_00"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.ask_sz0 = book["ask_sz_00"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.cum_ofi = _prefix(book["ofi_best"].cast(pl.Float64).fill_null(0.0).to_numpy())
        self.cum_valid = _prefix(self.valid.astype(np.int64))
        self.cum_best_depth = _prefix(np.where(self.valid, self.bid_sz0 + self.ask_sz0, 0.0))
        self.book = book

    def index_at(self, instants_ns: np.ndarray) -> np.ndarray:
        """Index of the last bin ending at or before each instant (-1 before the first)."""
        return np.searchsorted(self.ts, instants_ns, side="right") - 1

    def valid_at(self, idx: np.ndarray) -> np.ndarray:
        return (idx >= 0) & self.valid[np.maximum(idx, 0)]

    def window_flow(
        self, cum_flow: np.ndarray, cum_depth: np.ndarray, ends_ns: np.ndarray, length_ns: int, depth_units: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flow summed over (end - length, end] and the window's mean depth (contracts per ``depth_units``).

        Mean depth is NaN when the window has no good bin; flow then is 0 when the window has no bin
        at all (no book event: no flow) and NaN when it only has bad-book bins.
        """
        lo, hi = _window_bounds(self.ts, ends_ns, length_ns)
        flow = cum_flow[hi] - cum_flow[lo]
        n_valid = self.cum_valid[hi] - self.cum_valid[lo]
        mean_depth = _safe_ratio(cum_depth[hi] - cum_depth[lo], n_valid * depth_units)
        flow = np.where((hi > lo) & (n_valid == 0), np.nan, flow)
        return flow, mean_depth

    @staticmethod
    def scaled(flow: np.ndarray, mean_depth: np.ndarray, book_ok_at_end: np.ndarray) -> np.ndarray:
        """flow / mean depth; a quiet window (no bin) with a good book at its end is 0, no good book NaN."""
        quiet = np.isnan(mean_depth) & (flow == 0) & book_ok_at_end
        return np.where(quiet, 0.0, np.where(book_ok_at_end, _safe_ratio(flow, mean_depth), np.nan))


def _book_features(
    series: _BookSeries,
    anchor_ns: np.ndarray,
    level: np.ndarray,
    atr: np.ndarray,
    tick_size: float,
    config: SpymasterConfig,
) -> dict[str, np.ndarray]:
    idx = series.index_at(anchor_ns)
    ok = series.valid_at(idx)
    j = np.maximum(idx, 0)
    bid, ask = series.bid_px0[j], series.ask_px0[j]
    bid_sz, ask_sz = series.bid_sz0[j], series.ask_sz0[j]
    nan = np.full(anchor_ns.shape[0], np.nan)
    microprice = _safe_ratio(bid * ask_sz + ask * bid_sz, bid_sz + ask_sz)
    out: dict[str, np.ndarray] = {
        "book_imbalance": np.where(ok, _safe_ratio(bid_sz - ask_sz, bid_sz + ask_sz), nan),
        "microprice_offset_ticks": np.where(ok, (microprice - (bid + ask) / 2.0) / tick_size, nan),
        "microprice_dist_atr": np.where(ok, (microprice - level) / atr, nan),
        "spread_ticks": np.where(ok, (ask - bid) / tick_size, nan),
    }
    # Mean best-level depth (bid_sz_00 + ask_sz_00) / 2: the depth sum is over both sides, units 2.
    for w in config.order_flow_windows_seconds:
        flow, mean_depth = series.window_flow(series.cum_ofi, series.cum_best_depth, anchor_ns, w * NS_PER_SECOND, 2.0)
        out[f"ofi_{w}s"] = series.scaled(flow, mean_depth, ok)
    # 1-minute OFI over the trajectory, each scaled by the mean best-level depth of the whole window.
    n = config.trajectory_minutes
    ends = _trajectory_ends(anchor_ns, config)
    minute_flow, _ = series.window_flow(series.cum_ofi, series.cum_best_depth, ends, NS_PER_MINUTE, 2.0)
    total_flow, mean_depth = series.window_flow(series.cum_ofi, series.cum_best_depth, anchor_ns, n * NS_PER_MINUTE, 2.0)
    quiet = np.isnan(mean_depth) & (total_flow == 0) & ok
    per_minute = np.where(quiet[:, None], 0.0, _safe_ratio(minute_flow, mean_depth[:, None]))
    per_minute = np.where(ok[:, None], per_minute, np.nan)
    coefficients = _dct_block(per_minute, config)
    for i in range(config.dct_coefficients):
        out[f"traj_ofi_dct_{i}"] = coefficients[:, i]
    return out


# ----------------------------------------------------------------------------------------------
# Depth (10-level book)


def _side_matrix(book: pl.DataFrame, prefix: str, levels: int, fill: float) -> np.ndarray:
    cols = [f"{prefix}_{i:02d}" for i in range(levels)]
    return book.select(pl.col(cols).cast(pl.Float64).fill_null(fill)).to_numpy().reshape(book.height, levels)


def _depth_features(
    series: _BookSeries,
    anchor_ns: np.ndarray,
    level: np.ndarray,
    up: np.ndarray,
    tick_size: float,
    config: SpymasterConfig,
) -> dict[str, np.ndarray]:
    book, levels = series.book, config.book_levels
    bid_px = _side_matrix(book, "bid_px", levels, np.nan)
    ask_px = _side_matrix(book, "ask_px", levels, np.nan)
    bid_sz = _side_matrix(book, "bid_sz", levels, 0.0)
    ask_sz = _side_matrix(book, "ask_sz", levels, 0.0)
    ofi_total = _side_matrix(book, "ofi_level", levels, 0.0).sum(axis=1)
    depth_total = np.where(series.valid, bid_sz.sum(axis=1) + ask_sz.sum(axis=1), 0.0)
    cum_mlofi, cum_depth = _prefix(ofi_total), _prefix(depth_total)
    idx_t = series.index_at(anchor_ns)
    ok_t = series.valid_at(idx_t)

    out: dict[str, np.ndarray] = {}
    # Mean depth per level: (sum of the 2 * levels sizes) / (2 * levels) per bin, averaged over the window.
    for w in config.order_flow_windows_seconds:
        flow, mean_depth = series.window_flow(cum_mlofi, cum_depth, anchor_ns, w * NS_PER_SECOND, 2.0 * levels)
        out[f"mlofi_{w}s"] = series.scaled(flow, mean_depth, ok_t)

    def defending(instants_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prices and sizes of the defending side (ask when UP, bid when DOWN) of the book at each instant."""
        idx = series.index_at(instants_ns)
        ok = series.valid_at(idx)
        j = np.maximum(idx, 0)
        px = np.where(up[:, None], ask_px[j], bid_px[j])
        sz = np.where(up[:, None], ask_sz[j], bid_sz[j])
        return px, sz, ok

    def depth_within(px: np.ndarray, sz: np.ndarray, ok: np.ndarray, band_ticks: int) -> np.ndarray:
        near = np.abs(px - level[:, None]) <= band_ticks * tick_size + BAND_TOLERANCE_POINTS  # NaN: empty level
        return np.where(ok, (sz * near).sum(axis=1), np.nan)

    px_t, sz_t, _ = defending(anchor_ns)
    depth_t = {b: depth_within(px_t, sz_t, ok_t, b) for b in config.level_band_ticks}
    for b in config.level_band_ticks:
        out[f"depth_{b}t"] = depth_t[b]
    for b in config.level_band_ticks:
        for m in config.depth_change_minutes:
            px_m, sz_m, ok_m = defending(anchor_ns - m * NS_PER_MINUTE)
            out[f"depth_{b}t_change_{m}m"] = depth_t[b] - depth_within(px_m, sz_m, ok_m, b)
    mean_per_level = np.where(ok_t, sz_t.sum(axis=1) / levels, np.nan)
    for b in config.level_band_ticks:
        out[f"wall_ratio_{b}t"] = _safe_ratio(depth_t[b], mean_per_level)

    b0 = config.level_band_ticks[0]
    samples = np.empty((anchor_ns.shape[0], config.trajectory_minutes))
    for k, instants in enumerate(_trajectory_ends(anchor_ns, config).T):
        px_k, sz_k, ok_k = defending(instants)
        samples[:, k] = np.log1p(depth_within(px_k, sz_k, ok_k, b0))
    coefficients = _dct_block(samples, config)  # a NaN sample (no good book) makes the block NaN
    for i in range(config.dct_coefficients):
        out[f"traj_depth_dct_{i}"] = coefficients[:, i]
    return out


# ----------------------------------------------------------------------------------------------
# MBO replenishment


@njit(cache=True)
def _flow_near_level(ts_ns, side, price, sizes, anchor_ns, level, wanted_side, band_points, windows_ns, hi):
    """Sums of ``sizes`` columns over flow rows of the wanted side within band_points of the level, per window (T - m, T]."""
    n_anchor = anchor_ns.shape[0]
    n_win = windows_ns.shape[0]
    n_kind = sizes.shape[1]
    longest = windows_ns.max()
    out = np.zeros((n_anchor, n_win, n_kind), dtype=np.int64)
    for a in range(n_anchor):
        start = np.searchsorted(ts_ns, anchor_ns[a] - longest, side="right")
        for j in range(start, hi[a]):
            if side[j] == wanted_side[a] and abs(price[j] - level[a]) <= band_points:
                for w in range(n_win):
                    if ts_ns[j] > anchor_ns[a] - windows_ns[w]:
                        for k in range(n_kind):
                            out[a, w, k] += sizes[j, k]
    return out


def _mbo_features(
    depth_flow_1m: pl.DataFrame,
    anchor_ns: np.ndarray,
    level: np.ndarray,
    up: np.ndarray,
    tick_size: float,
    config: SpymasterConfig,
) -> dict[str, np.ndarray]:
    flow = depth_flow_1m.sort("ts_event", maintain_order=True)
    ts = _epoch_ns(flow["ts_event"])
    side = flow["side"].replace_strict({"B": _BUY, "A": _SELL}, default=_UNKNOWN, return_dtype=pl.Int8).to_numpy().astype(np.int64)
    price = flow["price"].cast(pl.Float64).to_numpy()
    sizes = flow.select(pl.col("added_size", "cancelled_size", "filled_size").cast(pl.Int64)).to_numpy().astype(np.int64)
    minutes = config.depth_change_minutes
    windows_ns = np.array(minutes, dtype=np.int64) * NS_PER_MINUTE
    wanted = np.where(up, _SELL, _BUY).astype(np.int64)  # defending side: resting asks when UP, bids when DOWN
    b = config.level_band_ticks[0]
    sums = _flow_near_level(
        ts, side, price, np.ascontiguousarray(sizes), anchor_ns, level, wanted,
        b * tick_size + BAND_TOLERANCE_POINTS, windows_ns, np.searchsorted(ts, anchor_ns, side="right"),
    ).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for w, m in enumerate(minutes):
        out[f"repl_added_{b}t_{m}m"] = sums[:, w, 0]
        out[f"repl_cancelled_{b}t_{m}m"] = sums[:, w, 1]
        out[f"repl_filled_{b}t_{m}m"] = sums[:, w, 2]
    longest = int(np.argmax(minutes))
    out[f"replenishment_ratio_{b}t_{minutes[longest]}m"] = _safe_ratio(
        sums[:, longest, 0], sums[:, longest, 1] + sums[:, longest, 2]
    )
    return out


# ----------------------------------------------------------------------------------------------


def order_flow_families(trades: pl.DataFrame, book_1s: pl.DataFrame, depth_flow_1m: pl.DataFrame, config: SpymasterConfig) -> tuple[str, ...]:
    """Order-flow families whose data exists, in FEATURE_FAMILIES order.

    tape iff trades has rows; book iff book_1s has rows; depth iff book_1s has rows with
    book_levels == config.book_levels; mbo iff depth_flow_1m has rows.
    """
    families = []
    if trades.height:
        families.append("tape")
    if book_1s.height:
        families.append("book")
        if (book_1s["book_levels"].cast(pl.Int64) == config.book_levels).any():
            families.append("depth")
    if depth_flow_1m.height:
        families.append("mbo")
    return tuple(families)


def order_flow_features(
    state: pl.DataFrame,
    trades: pl.DataFrame,
    book_1s: pl.DataFrame,
    depth_flow_1m: pl.DataFrame,
    tick_size: float,
    config: SpymasterConfig,
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Order-flow feature columns for each level-state row, and the families present.

    Inputs:
      - ``state``: silver_level_state rows with ts_event (anchor T, Datetime ns UTC), level_price
        (points), direction ("UP"/"DOWN") and atr_points (points); other columns are ignored.
      - ``trades``: bronze_futures_trades (ts_event, price points, size contracts, side B/A/N).
      - ``book_1s``: silver_book_1s; ``depth_flow_1m``: silver_depth_flow_1m (see book_summary).
      - ``tick_size``: points per tick (instrument's min_price_increment; 0.25 for ES).

    Output: a frame of the same height and row order as ``state`` holding exactly the Float64
    columns of ``feature_names.tape_columns / book_columns / depth_columns / mbo_columns`` of the
    families present (see :func:`order_flow_families`), null where undefined; and those families.

    Definitions (windows (T - w, T]; the level band is +-b ticks, |price - level| <= b * tick_size
    + 1e-9 points; the defending side is the ask when UP and the bid when DOWN):
      - tape: aggressor volumes (side B / A, contracts), imbalance (buy - sell) / (buy + sell) (0
        when both are 0), trades per second (any side), contracts traded within the
        ``level_band_ticks[0]`` band; sweeps: runs of consecutive same-side (B or A) trades each
        within ``sweep_window_ms`` of the run's first trade spanning >= ``sweep_min_price_levels``
        distinct prices, counted by their last trade at or before T in the window (a run still
        going on at T counts as its trades up to T, so the count is point in time); trade
        imbalance per 1-minute interval ending at T - 19 min .. T, compressed by DCT-II.
      - book (book at the last silver_book_1s bin ending at or before T): book imbalance,
        microprice offset from mid (ticks), (microprice - level) / ATR, spread (ticks); ofi_{w}s
        = sum of ofi_best over the bins ending in the window / the window's mean best-level depth
        (bid_sz_00 + ask_sz_00) / 2 over its good bins (Cont, Kukanov & Stoikov 2014); the
        trajectory samples the 1-minute OFI sums over the last ``trajectory_minutes`` scaled by the
        mean best-level depth of that whole window. A window with no bin at all has OFI 0 (no
        book event); a window with only bad-book bins, or no good book at T, is null.
      - depth: mlofi_{w}s = sum over levels and bins of ofi_level_m / the window's mean depth per
        level (sum of the 2 x 10 sizes / 20; Xu, Gould & Howison 2018); depth_{b}t = contracts on
        the defending side's levels within the band at T; its change over m minutes uses the book
        at T - m min and the level at T; wall_ratio_{b}t = depth_{b}t / (that side's 10 sizes /
        10); trajectory of log1p(depth_{b0}t) at the minute instants T - 19 min .. T (null when
        any sample has no good book).
      - mbo: contracts added / cancelled / filled on the defending side within the
        ``level_band_ticks[0]`` band over (T - m min, T] (1-minute flow bins ending in the window,
        exact for anchors on a minute boundary); replenishment ratio = added / (cancelled +
        filled) over the longest window, null when nothing was removed.
    DCT blocks are the first ``dct_coefficients`` orthonormal DCT-II coefficients (scipy.fft.dct,
    as silver/level_state.py).

    Raises KeyError when a needed input column is missing.
    """
    families = order_flow_families(trades, book_1s, depth_flow_1m, config)
    builders = {"tape": tape_columns, "book": book_columns, "depth": depth_columns, "mbo": mbo_columns}
    names = [name for family in families for name in builders[family](config)]
    if state.is_empty():
        return pl.DataFrame(schema={name: pl.Float64 for name in names}), families

    anchor_ns = _epoch_ns(state["ts_event"])
    level = state["level_price"].cast(pl.Float64).to_numpy()
    atr = state["atr_points"].cast(pl.Float64).to_numpy()
    up = (state["direction"] == _UP).to_numpy()
    values: dict[str, np.ndarray] = {}
    if "tape" in families:
        values |= _tape_features(trades, anchor_ns, level, tick_size, config)
    if "book" in families:
        series = _BookSeries(book_1s)
        values |= _book_features(series, anchor_ns, level, atr, tick_size, config)
        if "depth" in families:
            values |= _depth_features(series, anchor_ns, level, up, tick_size, config)
    if "mbo" in families:
        values |= _mbo_features(depth_flow_1m, anchor_ns, level, up, tick_size, config)
    return (
        pl.DataFrame([pl.Series(name, values[name], dtype=pl.Float64).fill_nan(None) for name in names]),
        families,
    )
