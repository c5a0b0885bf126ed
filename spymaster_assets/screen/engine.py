"""Bar by bar: what the trader's screen shows at each 2-minute bar close, from the session so far.

The engine takes the session's 1-minute bars one at a time (replayed from raw DBN, or from the live
feed) and, at each 2-minute bar close T, runs the batch code itself on the bars with ts_event < T:
``build_bars`` (with the previous session's warm-up), ``compute_levels``, ``compute_level_state``,
then the setups in the approach zone get their vectors (``episodes.with_vectors``) and are answered
with what was known before the session (``KnownBefore``: the index, normalization, model, distance
lookup and blend fit as of that day): ``knn_answer`` and ``compose_answer`` for the new setups, and
``smooth_series`` over every setup of the session so far. Every feature and answer is point in time
(it depends only on bars up to T), so the rows at T equal the batch ``silver_level_state`` and
``gold_signals`` rows of the finished session bit for bit (``tests/screen/test_engine_parity.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from spymaster_core.config import SpymasterConfig
from spymaster_resources.dbn_layout import MBO_DTYPE, MBP10_DTYPE
from spymaster_core.errors import SpymasterError
from ..gold.answer import SIGNALS_SCHEMA, KnownBefore, compose_answer
from ..gold.episodes import setups_in_zone, with_vectors
from ..gold.retrieval import smooth_series
from ..gold.signals import NEIGHBOURS_SCHEMA, knn_answer
from ..sessions import et_to_utc, session_bounds_utc
from ..silver.bars import aggregate_bars, build_bars
from ..bronze.market_records import MBP10_SCHEMA, BookQuality, batch_frame, decode_mbp10
from ..bronze.mbo_book import MboBookBuilder
from ..silver.book_summary import BookReducer, DepthFlowReducer, empty_book_1s, empty_depth_flow_1m
from ..silver.level_state import OptionsInputs, OrderFlowInputs, compute_level_state
from ..silver.levels import compute_levels

#: Columns of a 1-minute bar the engine takes (bronze_futures_ohlcv_1m; ts_event = bar open, UTC; points; contracts).
BAR_COLUMNS = ("ts_event", "open", "high", "low", "close", "volume")
_SMOOTHED = ["approach_id", "p_break_smooth", "p_reject_smooth", "p_chop_smooth"]


class BarOrderError(SpymasterError):
    """A 1-minute bar arrived at or before one already taken (out of order, or a duplicate)."""


@dataclass
class BarClose:
    """What the screen shows at one 2-minute bar close ``ts_close`` (UTC).

    ``candle``: the 2-minute bar that closed (ts_event = open, open/high/low/close in points, volume
    in contracts). ``levels``: silver_levels rows known at ``ts_close`` (level_kind, level_price).
    ``state``: silver_level_state rows at ``ts_close`` (empty outside the anchor window).
    ``signals``: gold_signals rows (:data:`SIGNALS_SCHEMA`) of the setups at ``ts_close`` (levels in
    the approach zone); ``neighbours``: their neighbours (:data:`NEIGHBOURS_SCHEMA`).
    ``gap_minutes``: minutes without a 1-minute bar just before this bar's last minute (0: none):
    flagged, never filled.
    """

    ts_close: datetime
    candle: dict
    levels: pl.DataFrame
    state: pl.DataFrame
    signals: pl.DataFrame
    neighbours: pl.DataFrame
    gap_minutes: int = 0


@dataclass
class SessionEngine:
    """The bar-by-bar answers of session ``day`` (see the module docstring).

    ``known``: what was known before ``day`` (None: no index as of the day, so no answers, only
    candles, levels and state). ``warmup_1m``: the previous session's 1-minute bars of the same
    contract (``silver_bars``' warm-up), or None. ``order_flow``/``options``: the session's
    order-flow and options tables; the engine passes each bar close only their rows up to it.
    ``daily_history``: the earlier sessions' daily bars (``silver.assets.daily_history``, for the
    ``atr_regime`` chart block), or None.
    """

    day: date
    config: SpymasterConfig
    known: KnownBefore | None
    warmup_1m: pl.DataFrame | None = None
    order_flow: OrderFlowInputs | None = None
    options: OptionsInputs | None = None
    daily_history: pl.DataFrame | None = None
    _bars: list[dict] = field(default_factory=list, init=False, repr=False)
    _answered: pl.DataFrame | None = field(default=None, init=False, repr=False)
    _pending_gap: int = field(default=0, init=False, repr=False)
    _last_close: datetime | None = field(default=None, init=False, repr=False)
    _trades: dict[str, list] = field(default_factory=lambda: {"ts_event": [], "price": [], "size": [], "side": []}, init=False, repr=False)
    _book_pending: list[bytes] = field(default_factory=list, init=False, repr=False)
    _book: BookReducer | None = field(default=None, init=False, repr=False)
    _book_quality: BookQuality | None = field(default=None, init=False, repr=False)
    _book_received: int = field(default=-1, init=False, repr=False)
    _mbo_pending: list[bytes] = field(default_factory=list, init=False, repr=False)
    _mbo_builder: MboBookBuilder | None = field(default=None, init=False, repr=False)
    _depth: DepthFlowReducer | None = field(default=None, init=False, repr=False)
    _mbo_received: int = field(default=-1, init=False, repr=False)

    def __post_init__(self) -> None:
        self._step = timedelta(minutes=self.config.level_bar_minutes)
        self._first_anchor = et_to_utc(self.day, self.config.anchor_start) + self._step
        self._last_anchor = et_to_utc(self.day, self.config.anchor_end)
        self._levels_from = et_to_utc(self.day, self.config.premarket_start)
        start, self.day_end = session_bounds_utc(self.day, self.config)
        #: The session's bounds in ns UTC (book records outside them only build the book).
        self._session_ns = (int(start.timestamp()) * 1_000_000_000, int(self.day_end.timestamp()) * 1_000_000_000)

    @property
    def last_bar(self) -> datetime | None:
        """ts_event of the last 1-minute bar taken."""
        return self._bars[-1]["ts_event"] if self._bars else None

    def add_minute(self, bar: dict) -> list[BarClose]:
        """Take one 1-minute bar (keys :data:`BAR_COLUMNS`) and return the 2-minute closes it completes.

        A bar that opens a new 2-minute bucket first closes the previous bucket (its second minute
        had no trades); a bar that is the bucket's last minute closes its own bucket.

        Raises:
            BarOrderError: ``bar`` is not after the last bar taken (nothing is changed).
        """
        ts = bar["ts_event"]
        closes: list[BarClose] = []
        if self._bars:
            last = self._bars[-1]["ts_event"]
            if ts <= last:
                raise BarOrderError(f"bar at {ts:%Y-%m-%d %H:%M} UTC arrived after the bar at {last:%H:%M}: out of order, ignored")
            if self._bucket_close(last) <= ts and not self._closed(last):
                closes.append(self._close(self._bucket_close(last)))
            self._pending_gap = max(0, int((ts - last) / timedelta(minutes=1)) - 1)
        self._bars.append({c: bar[c] for c in BAR_COLUMNS})
        close = self._bucket_close(ts)
        if ts + timedelta(minutes=1) == close:
            closes.append(self._close(close))
        return closes

    def add_trades(self, ts_event_ns: list[int], price: list[float], size: list[int], side: list[str]) -> None:
        """Take the front month's trades as they arrive (live): ts_event in ns UTC, price in points, size
        in contracts, side the aggressor (B, A or N). They stand in for ``order_flow.trades`` (the tape
        family), cut at each bar close like the lake's."""
        self._trades["ts_event"].extend(ts_event_ns)
        self._trades["price"].extend(price)
        self._trades["size"].extend(size)
        self._trades["side"].extend(side)

    def add_book(self, ts_recv_ns: int, record: bytes) -> None:
        """Take one front-month mbp-10 record (its DBN bytes, Databento's MBP10Msg layout) as it arrives
        (live). Records are decoded as bronze_futures_mbp10 decodes them (prices in points, ``book_ok``)
        and grown into silver_book_1s at each bar close, which stands in for ``order_flow.book_1s``
        (the book and depth families). A record received at or before one already folded in (a
        reconnect's replay) is ignored."""
        if ts_recv_ns > self._book_received:
            self._book_pending.append(record)

    def add_mbo(self, ts_recv_ns: int, record: bytes) -> None:
        """Take one front-month MBO record (its DBN bytes, Databento's MBOMsg layout) as it arrives
        (live), from the subscription's book snapshot on. At each bar close the records are run
        through bronze's MBO book engine (``MboBookBuilder``, as ``ingest._mbp10_from_mbo`` does) and
        grown into silver_book_1s and silver_depth_flow_1m (the book, depth and MBO families). A
        record received at or before one already folded in (a reconnect's replay) is ignored."""
        if ts_recv_ns > self._mbo_received:
            self._mbo_pending.append(record)

    def drop_book_from(self, ts_event_ns: int) -> None:
        """Forget the mbp-10 and MBO records not yet folded in whose ts_event is at or after ``ts_event_ns`` (a reconnect's replay sends them again)."""
        if self._book_pending:
            records = np.frombuffer(b"".join(self._book_pending), dtype=MBP10_DTYPE)
            self._book_pending = [r for r, ts in zip(self._book_pending, records["ts_event"]) if ts < ts_event_ns]
        if self._mbo_pending:
            records = np.frombuffer(b"".join(self._mbo_pending), dtype=MBO_DTYPE)
            self._mbo_pending = [r for r, ts in zip(self._mbo_pending, records["ts_event"]) if ts < ts_event_ns]

    def _live_book(self) -> pl.DataFrame | None:
        """silver_book_1s of the mbp-10 or MBO records taken so far (None: none taken)."""
        if self._book_pending:
            records = np.frombuffer(b"".join(self._book_pending), dtype=MBP10_DTYPE)
            self._book_pending = []
            if self._book_quality is None:
                self._book_quality = BookQuality({"crossed_book_records": 0, "maybe_bad_book_records": 0})
            start, end = self._session_ns
            inside = (records["ts_event"] >= start) & (records["ts_event"] < end)
            if inside.any():
                batch = decode_mbp10(records, np.flatnonzero(inside))
                batch["book_ok"] = self._book_quality(batch)
                self._book_reducer().add(batch_frame(batch, MBP10_SCHEMA, self.day, "mbp-10"))
            self._book_received = int(records["ts_recv"].max())
        self._fold_mbo()
        return None if self._book is None else self._book.result(self.day)

    def _fold_mbo(self) -> None:
        """Run the pending MBO records through the book engine into the book and depth-flow reducers."""
        if not self._mbo_pending:
            return
        records = np.frombuffer(b"".join(self._mbo_pending), dtype=MBO_DTYPE).copy()
        self._mbo_pending = []
        self._mbo_received = int(records["ts_recv"].max())
        if self._mbo_builder is None:
            self._mbo_builder = MboBookBuilder(int(records["instrument_id"][0]), levels=self.config.book_levels)
            self._depth = DepthFlowReducer()
        columns = self._mbo_builder.process(records)
        if not len(columns["ts_event"]):
            return
        keep = np.asarray(columns["ts_event"], dtype=np.int64) >= self._session_ns[0]  # the snapshot before the open only builds the book
        out = {k: np.asarray(v)[keep] for k, v in columns.items()}
        for name in ("action", "side"):  # S1 bytes -> the uint8 codes batch_frame expects
            out[name] = np.ascontiguousarray(out[name]).view(np.uint8)
        out["instrument_id"] = np.full(len(out["ts_event"]), self._mbo_builder.instrument_id, dtype=np.uint32)
        frame = batch_frame(out, MBP10_SCHEMA, self.day, "mbo")
        self._book_reducer().add(frame)
        self._depth.add(frame)

    def _book_reducer(self) -> BookReducer:
        """The reducer growing the live silver_book_1s (created at the first book record)."""
        if self._book is None:
            self._book = BookReducer(self.config, self.config.book_levels, {"rows": 0, "skipped_book_not_ok": 0, "skipped_crossed_or_empty": 0})
        return self._book

    def drop_trades_from(self, ts_event_ns: int) -> None:
        """Forget the live trades at or after ``ts_event_ns`` (a reconnect's replay sends them again)."""
        keep = sum(1 for ts in self._trades["ts_event"] if ts < ts_event_ns)  # arrival order is time order
        for column in self._trades.values():
            del column[keep:]

    def flush(self, now: datetime | None) -> list[BarClose]:
        """Close the open bucket when ``now`` (UTC; None: unknown) is past its close with no further
        bar (live: a quiet last minute). Returns it, or nothing."""
        if not self._bars or now is None:
            return []
        last = self._bars[-1]["ts_event"]
        close = self._bucket_close(last)
        if now >= close and not self._closed(last):
            return [self._close(close)]
        return []

    # ----------------------------------------------------------------- internals

    def _bucket_close(self, ts: datetime) -> datetime:
        epoch = datetime(1970, 1, 1, tzinfo=ts.tzinfo)
        step = self._step
        return epoch + ((ts - epoch) // step + 1) * step

    def _closed(self, ts: datetime) -> bool:
        return self._last_close == self._bucket_close(ts)

    def _close(self, ts_close: datetime) -> BarClose:
        self._last_close = ts_close
        gap, self._pending_gap = self._pending_gap, 0
        minutes = pl.DataFrame(self._bars, schema={"ts_event": pl.Datetime("ns", "UTC"), "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64, "volume": pl.Int64})
        minutes = minutes.filter(pl.col("ts_event") < ts_close)
        candle = aggregate_bars(minutes.filter(pl.col("ts_event") >= ts_close - self._step), self.config.level_bar_minutes).row(0, named=True)
        empty = pl.DataFrame()
        nothing = (pl.DataFrame(schema=SIGNALS_SCHEMA), pl.DataFrame(schema=NEIGHBOURS_SCHEMA))
        if not self._levels_from <= ts_close <= self._last_anchor:
            # silver_levels holds rows for the bar closes from 04:00 to the anchor window's end only.
            return BarClose(ts_close, candle, empty, empty, *nothing, gap)
        bars = build_bars(minutes, self.day, self.config, warmup_1m=self.warmup_1m, require_rth=ts_close >= self._first_anchor)
        levels = compute_levels(bars, self.day, self.config)
        known_levels = levels.filter(pl.col("ts_event") == ts_close)
        if ts_close < self._first_anchor:  # before the anchor window: levels, no state and no answer
            return BarClose(ts_close, candle, known_levels, empty, *nothing, gap)
        state = compute_level_state(bars, levels, self.day, self.config, _up_to(self._flow(), ts_close), _options_up_to(self.options, ts_close), self.warmup_1m, self.daily_history)
        now = state.filter(pl.col("ts_event") == ts_close)
        signals, neighbours = self._answer(now)
        return BarClose(ts_close, candle, known_levels, now, signals, neighbours, gap)

    def _flow(self) -> OrderFlowInputs | None:
        """The order-flow inputs: the live trades and book when some arrived (:meth:`add_trades`,
        :meth:`add_book`) in place of ``order_flow``'s, else ``order_flow``."""
        live_book = self._live_book()
        live_depth = None if self._depth is None else self._depth.result(self.day)
        if not self._trades["ts_event"] and live_book is None:
            return self.order_flow
        trades = pl.DataFrame(
            {"ts_event": pl.Series(self._trades["ts_event"], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")), "price": self._trades["price"], "size": self._trades["size"], "side": self._trades["side"]},
            schema={"ts_event": pl.Datetime("ns", "UTC"), "price": pl.Float64, "size": pl.Int64, "side": pl.String},
        )
        base = self.order_flow
        if not self._trades["ts_event"]:
            trades = base.trades if base is not None and base.trades is not None else trades.clear()
        book = live_book if live_book is not None else base.book_1s if base is not None and base.book_1s is not None else empty_book_1s(self.config)
        depth = live_depth if live_depth is not None else base.depth_flow_1m if base is not None and base.depth_flow_1m is not None else empty_depth_flow_1m()
        return OrderFlowInputs(trades=trades, book_1s=book, depth_flow_1m=depth, tick_size=base.tick_size if base is not None else self.config.tick_size_points)

    def _answer(self, state_now: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """gold_signals rows and neighbours of the setups in ``state_now`` (one bar close)."""
        setups = setups_in_zone(state_now)
        if self.known is None or setups.height == 0:
            return pl.DataFrame(schema=SIGNALS_SCHEMA), pl.DataFrame(schema=NEIGHBOURS_SCHEMA)
        episodes = with_vectors(setups.sort("session_date", "ts_event", "level_kind"), self.config)
        knn, neighbours = knn_answer(self.known.indexes, self.known.stats, episodes, self.config, self.known.distance_lookup)
        raw = compose_answer(knn, episodes, self.known, self.config).drop(_SMOOTHED)
        self._answered = raw if self._answered is None else pl.concat([self._answered, raw])
        # The smoothing runs along each approach: over every setup of the session so far.
        smoothed = smooth_series(self._answered, self.config)
        at = state_now["ts_event"][0]
        rows = smoothed.filter(pl.col("ts_event") == at).sort("ts_event", "level_kind")
        return rows.select([pl.col(name).cast(dtype) for name, dtype in SIGNALS_SCHEMA.items()]), neighbours


def _up_to(flow: OrderFlowInputs | None, ts: datetime) -> OrderFlowInputs | None:
    """The order-flow tables with only their rows at or before ``ts`` (point in time)."""
    if flow is None:
        return None
    return OrderFlowInputs(
        trades=_rows_up_to(flow.trades, ts),
        book_1s=_rows_up_to(flow.book_1s, ts),
        depth_flow_1m=_rows_up_to(flow.depth_flow_1m, ts),
        tick_size=flow.tick_size,
    )


def _options_up_to(options: OptionsInputs | None, ts: datetime) -> OptionsInputs | None:
    if options is None:
        return None
    return OptionsInputs(chain=options.chain, open_interest=options.open_interest, bbo=_rows_up_to(options.bbo, ts), trades=_rows_up_to(options.trades, ts))


def _rows_up_to(frame: pl.DataFrame | None, ts: datetime) -> pl.DataFrame | None:
    if frame is None or "ts_event" not in frame.columns:
        return frame
    return frame.filter(pl.col("ts_event") <= ts)
