"""The live source of the trader's screen: Databento Live records -> front-month 1-minute bars -> the engine.

:class:`LiveFeed` subscribes to ``ohlcv-1m`` of the product's instruments in its dataset (every ES future
under the parent ``ES.FUT``; the ticker ``SPY`` in XNAS.ITCH: ``spymaster_core.products``), plus ``trades``,
``mbp-10`` and ``mbo`` as the configuration's ``download_order_flow_schemas`` names them (the tape,
book, depth and MBO families), keeps the front month's bars, trades and book records (the contract of the lake's previous session, or else the outright with the most
volume by the first bar from 04:00 New York) and feeds them to the same
:class:`~spymaster_assets.screen.engine.SessionEngine` as a replay: one code path. A lost connection
is reported (``status`` event, state ``reconnecting``) and retried with exponential backoff (the
``backoff`` library's ``expo`` waits, reset after a bar arrives), asking Databento for an intraday
replay from the minute after the last bar taken; a bar at or before one already taken is refused
with a ``problem`` event (out of order), and minutes that never arrive are flagged by the engine
(``gap_minutes``), never filled. A missing or rejected API
key ends the stream with a ``problem`` event.
"""

from __future__ import annotations

import threading
import time as clock
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import backoff

from spymaster_core.errors import SpymasterError
from spymaster_resources.dbn_layout import PRICE_SCALE, UNDEF_PRICE
from spymaster_resources.live import LiveClient

from .engine import BarOrderError, SessionEngine
from .session import payload, screen_start

_OHLCV_1M = "ohlcv-1m"


def _rtype(record) -> str:
    """The record type's DBN name ("ohlcv-1m", "mbp-0" for trades, "mbp-10", "mbo"; "" for a record without one)."""
    return str(getattr(record, "rtype", ""))


@dataclass
class FrontMonthBars:
    """1-minute bars of the front month out of live records.

    ``instrument_id``: the front month when known (the lake's previous session's contract), else
    chosen at the first bar at or after ``choose_at`` (UTC) as the outright (symbol without a
    spread's "-") with the most volume so far. ``symbols``: instrument_id -> raw symbol, from the
    SymbolMappingMsg records.
    """

    instrument_id: int | None
    choose_at: datetime
    symbols: dict[int, str] = field(default_factory=dict)
    _volume: Counter = field(default_factory=Counter)

    def trade(self, record) -> tuple[int, float, int, str] | None:
        """(ts_event ns UTC, price points, size contracts, aggressor side B/A/N) of a front-month trade
        record (``trades`` schema, action T with a defined price), else None. Trades before the front
        month is chosen are not kept."""
        if _rtype(record) != "mbp-0":
            return None
        if self.instrument_id is None or int(record.instrument_id) != self.instrument_id or record.price == UNDEF_PRICE:
            return None
        return int(record.ts_event), record.price / PRICE_SCALE, int(record.size), str(record.side)

    def book(self, record) -> tuple[str, int, bytes] | None:
        """("mbp-10" or "mbo", ts_recv ns, DBN bytes) of a front-month book record, else None."""
        kind = _rtype(record)
        if kind not in ("mbp-10", "mbo") or self.instrument_id is None or int(record.instrument_id) != self.instrument_id:
            return None
        return kind, int(record.ts_recv), bytes(record)

    def bar(self, record) -> dict | None:
        """The bar of ``record`` (ts_event UTC bar open, open/high/low/close points, volume contracts) when it is a
        front-month ohlcv-1m record, else None (after noting its symbol or volume)."""
        if hasattr(record, "stype_out_symbol"):
            self.symbols[int(record.instrument_id)] = str(record.stype_out_symbol)
            return None
        if _rtype(record) != _OHLCV_1M:
            return None
        ts = _record_time(record)
        if self.instrument_id is None:
            symbol = self.symbols.get(int(record.instrument_id), "")
            if "-" not in symbol:
                self._volume[int(record.instrument_id)] += int(record.volume)
            if ts < self.choose_at or not self._volume:
                return None
            self.instrument_id = self._volume.most_common(1)[0][0]
        if int(record.instrument_id) != self.instrument_id:
            return None
        return {
            "ts_event": ts,
            "open": record.open / PRICE_SCALE,
            "high": record.high / PRICE_SCALE,
            "low": record.low / PRICE_SCALE,
            "close": record.close / PRICE_SCALE,
            "volume": int(record.volume),
        }


class LiveStopped(Exception):
    """The page went away: stop the live loop."""


@dataclass
class LiveFeed:
    """One page's live connection: :meth:`events` runs it; :meth:`close` (from another thread) stops it."""

    engine: SessionEngine
    front: FrontMonthBars
    client_factory: Callable[[], LiveClient]
    #: Schemas subscribed: ohlcv-1m, plus trades, mbp-10 and mbo when the configuration's order-flow schemas name them.
    schemas: tuple[str, ...] = (_OHLCV_1M,)
    #: Seconds to wait before each reconnect (restarted after a bar arrives); an exhausted sequence gives up.
    waits: Callable[[], Iterable[float]] = lambda: backoff.expo(base=2, factor=1, max_value=60)
    sleep: Callable[[float], None] = clock.sleep
    _stop: threading.Event = field(default_factory=threading.Event)
    _client: LiveClient | None = None

    def close(self) -> None:
        """Stop the loop and the connection (safe from any thread)."""
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.stop()
            except Exception:  # noqa: BLE001  (closing an already broken connection)
                pass

    def events(self) -> Iterator[tuple[str, dict]]:
        """(event, data) pairs for the page: ``status``, ``bar`` (:func:`session.payload`), ``problem``, ``end``."""
        waits = iter(self.waits())
        start_screen = screen_start(self.engine.day)
        session_end = self.engine.day_end
        while not self._stop.is_set():
            start = self.engine.last_bar + timedelta(minutes=1) if self.engine.last_bar else None
            try:
                self._client = self.client_factory()
            except SpymasterError as exc:  # no API key: nothing to retry
                yield "problem", {"message": f"live: {exc}"}
                return
            try:
                if start is not None:
                    self.engine.drop_trades_from(int(start.timestamp()) * 1_000_000_000)
                    self.engine.drop_book_from(int(start.timestamp()) * 1_000_000_000)
                spec = self.engine.config.spec  # the product's dataset and parent symbol (ES.FUT), or its ticker (SPY)
                symbols = ",".join(spec.download_symbols)
                for schema in self.schemas:
                    self._client.subscribe(dataset=spec.dataset, schema=schema, symbols=symbols, stype_in=spec.download_stype_in, start=start)
                yield "status", {"state": "live", "message": f"connected to {spec.dataset} {symbols} {'+'.join(self.schemas)}" + (f", replaying from {start:%H:%M} UTC" if start else "")}
                for record in self._client:
                    if self._stop.is_set():
                        return
                    text = getattr(record, "err", None)
                    if text is not None:
                        yield "problem", {"message": f"live: Databento says: {text}"}
                        continue
                    book = self.front.book(record)
                    if book is not None:
                        kind, received, raw = book
                        (self.engine.add_mbo if kind == "mbo" else self.engine.add_book)(received, raw)
                        continue
                    trade = self.front.trade(record)
                    if trade is not None:
                        self.engine.add_trades([trade[0]], [trade[1]], [trade[2]], [trade[3]])
                        continue
                    bar = self.front.bar(record)
                    if bar is None:
                        for close in self.engine.flush(_record_time(record)):
                            yield "bar", payload(close)
                        continue
                    try:
                        closes = self.engine.add_minute(bar)
                    except BarOrderError as exc:
                        yield "problem", {"message": f"live: {exc}"}
                        continue
                    except Exception as exc:  # noqa: BLE001  (a computation error is not a lost connection: say it and stop)
                        yield "problem", {"message": f"live: stopped at {bar['ts_event']:%H:%M} UTC: {type(exc).__name__}: {exc}"}
                        return
                    for close in closes:
                        if close.ts_close > start_screen:
                            yield "bar", payload(close)
                    waits = iter(self.waits())
                    if bar["ts_event"] + timedelta(minutes=1) >= session_end:
                        yield "end", {"date": self.engine.day.isoformat()}
                        return
                raise ConnectionError("the live feed closed the connection")
            except Exception as exc:  # noqa: BLE001  (any loss of the feed is reported and retried)
                if self._stop.is_set():
                    return
                if "auth" in str(exc).lower():
                    yield "problem", {"message": f"live: the API key was rejected ({exc})"}
                    return
                wait = next(waits, None)
                if wait is None:
                    yield "problem", {"message": f"live: giving up after repeated connection losses ({type(exc).__name__}: {exc})"}
                    return
                yield "status", {"state": "reconnecting", "message": f"live connection lost ({type(exc).__name__}: {exc}); retrying in {wait:.0f} s"}
                self.sleep(wait)
            finally:
                if self._client is not None:
                    try:
                        self._client.stop()
                    except Exception:  # noqa: BLE001
                        pass


def _record_time(record) -> datetime | None:
    ts = getattr(record, "ts_event", None)
    return datetime.fromtimestamp(ts // 1_000_000_000, tz=timezone.utc) if isinstance(ts, int) and ts > 0 else None
