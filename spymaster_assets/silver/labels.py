"""silver_outcomes: first-crossing outcome labels (BREAK / REJECT / CHOP) and excursions for each level-state row.

Labels look into the future of each anchor; they live in their own table and never enter a vector.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from spymaster_core.config import DIRECTIONS, OUTCOMES, SpymasterConfig
from spymaster_core.units import NS_PER_MINUTE, NS_PER_SECOND
from .feature_names import LABEL_COLUMNS

TS_DTYPE = pl.Datetime("ns", "UTC")
OUTCOME_COLUMNS = (
    "session_date",
    "ts_event",
    "level_kind",
    "direction",
    "level_price",
    "anchor_close",
    "atr_points",
    *LABEL_COLUMNS,
)
# Integer outcome codes used inside the kernel, indexes into OUTCOMES.
_BREAK, _REJECT, _CHOP = (OUTCOMES.index(o) for o in ("BREAK", "REJECT", "CHOP"))


@njit(cache=True)
def first_crossing_kernel(
    bar_open_ns: np.ndarray,
    bar_open: np.ndarray,
    bar_high: np.ndarray,
    bar_low: np.ndarray,
    anchor_ns: np.ndarray,
    is_up: np.ndarray,
    break_price: np.ndarray,
    reject_price: np.ndarray,
    anchor_close: np.ndarray,
    horizon_ns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scan the bars with open in ``[anchor, anchor + horizon)`` of each anchor for the first threshold touch.

    Bars must be sorted by open time. UP: break touched when high >= break_price, reject when
    low <= reject_price; DOWN mirrored (break: low <= break_price, reject: high >= reject_price).
    When one bar touches both, the threshold whose side the bar opened beyond wins, else the one
    nearer the open (tie: REJECT), and the row is flagged ambiguous.

    Returns per anchor: outcome code (index into OUTCOMES), index of the deciding bar (-1 for
    CHOP), max favourable and max adverse excursion from the anchor close in price points (>= 0,
    over every bar of the horizon), ambiguous flag.
    """
    n_anchor = anchor_ns.shape[0]
    outcome = np.full(n_anchor, _CHOP, dtype=np.int8)
    event_bar = np.full(n_anchor, -1, dtype=np.int64)
    favourable = np.zeros(n_anchor, dtype=np.float64)
    adverse = np.zeros(n_anchor, dtype=np.float64)
    ambiguous = np.zeros(n_anchor, dtype=np.bool_)
    n_bar = bar_open_ns.shape[0]
    for a in range(n_anchor):
        start = np.searchsorted(bar_open_ns, anchor_ns[a])  # first bar opening at or after the anchor
        end_ns = anchor_ns[a] + horizon_ns
        up = is_up[a]
        for b in range(start, n_bar):
            if bar_open_ns[b] >= end_ns:
                break
            hi, lo = bar_high[b], bar_low[b]
            # Excursions over the whole horizon, independent of when the outcome is decided.
            if up:
                favourable[a] = max(favourable[a], hi - anchor_close[a])
                adverse[a] = max(adverse[a], anchor_close[a] - lo)
            else:
                favourable[a] = max(favourable[a], anchor_close[a] - lo)
                adverse[a] = max(adverse[a], hi - anchor_close[a])
            if event_bar[a] >= 0:
                continue
            if up:
                hit_break, hit_reject = hi >= break_price[a], lo <= reject_price[a]
            else:
                hit_break, hit_reject = lo <= break_price[a], hi >= reject_price[a]
            if hit_break and hit_reject:
                ambiguous[a] = True
                o = bar_open[b]
                if up:
                    opened_beyond_break, opened_beyond_reject = o >= break_price[a], o <= reject_price[a]
                else:
                    opened_beyond_break, opened_beyond_reject = o <= break_price[a], o >= reject_price[a]
                if opened_beyond_break:
                    outcome[a] = _BREAK
                elif opened_beyond_reject:
                    outcome[a] = _REJECT
                elif abs(break_price[a] - o) < abs(reject_price[a] - o):
                    outcome[a] = _BREAK
                else:
                    outcome[a] = _REJECT
                event_bar[a] = b
            elif hit_break:
                outcome[a] = _BREAK
                event_bar[a] = b
            elif hit_reject:
                outcome[a] = _REJECT
                event_bar[a] = b
    return outcome, event_bar, favourable, adverse, ambiguous


@njit(cache=True)
def resolve_with_trades_kernel(
    ambiguous: np.ndarray,
    event_bar: np.ndarray,
    bar_open_ns: np.ndarray,
    bar_length_ns: int,
    is_up: np.ndarray,
    break_price: np.ndarray,
    reject_price: np.ndarray,
    trade_ns: np.ndarray,
    trade_price: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settle ambiguous anchors with trades: the first trade of the deciding bar through either threshold.

    ``trade_ns``/``trade_price`` are the session's trades in receive order with their ts_event
    sorted ascending (ties keep receive order). For each ambiguous anchor, the trades with ts_event
    in [bar open, bar open + bar length) are scanned in order: UP, price >= break_price is BREAK and
    price <= reject_price is REJECT (DOWN mirrored). Returns (resolved flag, outcome code, event ts
    in ns) per anchor; unresolved rows (no trade in the bar crosses, e.g. a bar from another source)
    keep the bar rule.
    """
    n = ambiguous.shape[0]
    resolved = np.zeros(n, dtype=np.bool_)
    outcome = np.full(n, _CHOP, dtype=np.int8)
    event_ns = np.zeros(n, dtype=np.int64)
    for a in range(n):
        if not ambiguous[a] or event_bar[a] < 0:
            continue
        lo = bar_open_ns[event_bar[a]]
        i = np.searchsorted(trade_ns, lo)
        while i < trade_ns.shape[0] and trade_ns[i] < lo + bar_length_ns:
            p = trade_price[i]
            if is_up[a]:
                hit_break, hit_reject = p >= break_price[a], p <= reject_price[a]
            else:
                hit_break, hit_reject = p <= break_price[a], p >= reject_price[a]
            if hit_break or hit_reject:
                resolved[a] = True
                outcome[a] = _BREAK if hit_break else _REJECT
                event_ns[a] = trade_ns[i]
                break
            i += 1
    return resolved, outcome, event_ns


def label_outcomes(
    bars: pl.DataFrame, state: pl.DataFrame, config: SpymasterConfig, trades: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Label each silver_level_state row with the first-crossing outcome over the next ``horizon_minutes``.

    Inputs: silver_bars (the 1-minute rows are scanned; they are the finest data in the bars-only
    tier) and silver_level_state (session_date, ts_event = anchor T, level_kind, level_price, close,
    atr_points, direction).

    Rule (DESIGN.md "Setups and outcomes"): over 1-minute bars with open in [T, T + horizon):
    UP: BREAK when high >= level + break_atr * ATR, REJECT when low <= anchor_close - reject_atr * ATR;
    DOWN: BREAK when low <= level - break_atr * ATR, REJECT when high >= anchor_close + reject_atr * ATR.
    The first bar touching a threshold decides; a bar touching both sets ambiguous and is resolved
    with ``trades`` when given (bronze_futures_trades: ts_event, price; the first trade inside that
    bar through either threshold decides, :func:`resolve_with_trades_kernel`), else by the bar's
    open (see :func:`first_crossing_kernel`); CHOP when neither is touched.

    Output (silver_outcomes), one row per state row in the same order: session_date, ts_event (T),
    level_kind, direction, level_price (points), anchor_close (points), atr_points (points),
    outcome (Utf8, one of OUTCOMES), first_event_ts (close instant of the deciding bar, Datetime ns
    UTC, or the deciding trade's ts_event when resolved by trades; null for CHOP), time_to_event_s
    (seconds from T; null for CHOP), mfe_atr / mae_atr (max favourable / adverse excursion from the
    anchor close over the whole horizon, in ATR, >= 0; UP: favourable = highs above, adverse = lows
    below), ambiguous (Boolean), resolved_by_trades (Boolean), horizon_complete (False when
    the last 1-minute bar closes before T + horizon: the outcome is then computed on the bars that
    exist and flagged).

    Raises ValueError when ``state`` has a direction outside DIRECTIONS.
    """
    bars_1m = bars.filter(pl.col("bar_minutes") == config.base_bar_minutes).sort("ts_event")
    bad_direction = state.filter(~pl.col("direction").is_in(list(DIRECTIONS)))
    if not bad_direction.is_empty():
        raise ValueError(f"level state has directions outside {DIRECTIONS}: {bad_direction['direction'].unique().to_list()}")

    atr = state["atr_points"].to_numpy().astype(np.float64)
    level = state["level_price"].to_numpy().astype(np.float64)
    anchor_close = state["close"].to_numpy().astype(np.float64)
    is_up = (state["direction"] == DIRECTIONS[0]).to_numpy()
    sign = np.where(is_up, 1.0, -1.0)  # +1: break is above the level and reject below the close
    break_price = level + sign * config.break_atr * atr
    reject_price = anchor_close - sign * config.reject_atr * atr

    bar_open_ns = bars_1m["ts_event"].dt.epoch("ns").to_numpy()
    horizon_ns = config.horizon_minutes * NS_PER_MINUTE
    anchor_ns = state["ts_event"].dt.epoch("ns").to_numpy()
    outcome, event_bar, favourable, adverse, ambiguous = first_crossing_kernel(
        np.ascontiguousarray(bar_open_ns),
        bars_1m["open"].to_numpy().astype(np.float64),
        bars_1m["high"].to_numpy().astype(np.float64),
        bars_1m["low"].to_numpy().astype(np.float64),
        np.ascontiguousarray(anchor_ns),
        np.ascontiguousarray(is_up),
        break_price,
        reject_price,
        anchor_close,
        horizon_ns,
    )
    bar_length_ns = config.base_bar_minutes * NS_PER_MINUTE
    resolved = np.zeros(len(ambiguous), dtype=np.bool_)
    trade_event_ns = np.zeros(len(ambiguous), dtype=np.int64)
    if trades is not None and trades.height and ambiguous.any():
        ordered = trades.select("ts_event", "price").with_row_index("_order").sort("ts_event", "_order")
        resolved, trade_outcome, trade_event_ns = resolve_with_trades_kernel(
            ambiguous, event_bar, np.ascontiguousarray(bar_open_ns), bar_length_ns, np.ascontiguousarray(is_up),
            break_price, reject_price,
            np.ascontiguousarray(ordered["ts_event"].dt.epoch("ns").to_numpy()),
            np.ascontiguousarray(ordered["price"].to_numpy().astype(np.float64)),
        )
        outcome = np.where(resolved, trade_outcome, outcome)
    decided = event_bar >= 0
    # CHOP rows point at bar 0 here and are masked to null below.
    event_close_ns = (
        bar_open_ns[np.maximum(event_bar, 0)] + bar_length_ns if bar_open_ns.size else np.zeros_like(anchor_ns)
    )
    event_close_ns = np.where(resolved, trade_event_ns, event_close_ns)
    last_close_ns = bar_open_ns[-1] + bar_length_ns if bar_open_ns.size else np.iinfo(np.int64).min

    return pl.DataFrame(
        {
            "session_date": state["session_date"],
            "ts_event": state["ts_event"].cast(TS_DTYPE),
            "level_kind": state["level_kind"],
            "direction": state["direction"],
            "level_price": level,
            "anchor_close": anchor_close,
            "atr_points": atr,
            "outcome": pl.Series(np.asarray(OUTCOMES)[outcome], dtype=pl.Utf8),
            "first_event_ts": pl.Series(event_close_ns, dtype=pl.Int64),
            "time_to_event_s": (event_close_ns - anchor_ns) / NS_PER_SECOND,
            "mfe_atr": favourable / atr,
            "mae_atr": adverse / atr,
            "ambiguous": ambiguous,
            "resolved_by_trades": resolved,
            "horizon_complete": last_close_ns >= anchor_ns + horizon_ns,
        }
    ).with_columns(
        first_event_ts=pl.when(pl.Series(decided)).then(pl.col("first_event_ts").cast(TS_DTYPE)),
        time_to_event_s=pl.when(pl.Series(decided)).then(pl.col("time_to_event_s")),
    ).select(OUTCOME_COLUMNS)
