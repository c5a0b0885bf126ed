"""``spymaster serve``: the trader's screen as a web page (Starlette on uvicorn, server-sent events).

Routes:

- ``/``: the page (``static/index.html``; charts by TradingView's lightweight-charts, committed
  under ``static/vendor`` with its license).
- ``/api/products``: the data root's products (its config.json ``"products"``) with their price unit,
  tick and clock, and the default one; every route below takes ``product=P`` (default: that one).
- ``/api/sessions``: the product's sessions of the lake the page can replay (those with gold_signals),
  the latest first in ``latest``.
- ``/api/replay?date=YYYY-MM-DD&speed=S``: a server-sent event stream replaying that session from
  its raw DBN records through :class:`~spymaster_assets.screen.engine.SessionEngine`: one
  ``session`` event (index as of, vector schemas, walk-forward reliability, level styles), one
  ``bar`` event per 2-minute bar close from 04:00 New York (:func:`session.payload`), then ``end``.
  ``speed`` is the replay speed (1 = real time, 60 = a minute a second; 0 = as fast as possible);
  ``until=HH:MM`` (New York) stops it after that bar close.
  A problem (unknown or unmaterialized session, a bar out of order, a bad raw file) is sent as a
  ``problem`` event with its message and logged; the server keeps running.
- ``/api/live``: the same events for today's session from Databento's Live API
  (:mod:`spymaster_assets.screen.live`), plus ``status`` events (connected, connection lost and
  the retry's wait).
"""

from __future__ import annotations

import json
import logging
import time as clock
from collections.abc import Callable
from datetime import date, datetime, time, timezone
from pathlib import Path

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from spymaster_resources.lake import Lake
from spymaster_resources.databento import find_api_key
from spymaster_resources.live import LiveClient, databento_live_client
from spymaster_resources.raw_files import RawCatalog

from ..sessions import NY, is_trading_session, session_bounds_utc, session_date_of
from .engine import BarOrderError
from .live import FrontMonthBars, LiveFeed
from .session import open_live, open_replay, payload, screen_start, sessions_in_lake

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("spymaster.screen")


def _event(name: str, data: dict) -> dict:
    return {"event": name, "data": json.dumps(data, default=str)}


def create_app(home: Path, live_client_factory: Callable[[], LiveClient] | None = None, live_day: date | None = None, product: str | None = None) -> Starlette:
    """The screen's web application over data root ``home`` (its lake and raw/), for every product of
    the data root, ``product`` first (default: the first of config.json's ``"products"``).

    ``live_client_factory``: opens the live connection (default: ``databento.Live`` with the key of
    ``DATABENTO_API_KEY`` or a ``.env`` in ``home`` or the working directory); tests pass one that
    replays DBN records. ``live_day``: the live session (default: the CME session of the clock).
    """
    base = SpymasterConfig.for_home(Path(home))
    default = base.serving(product).product if product else base.products[0]
    configs = {symbol: base.for_product(symbol) for symbol in base.products}
    catalogs = {symbol: RawCatalog(config.raw_dir, config.spec) for symbol, config in configs.items()}
    factory = live_client_factory or (lambda: databento_live_client([Path(home), Path.cwd()]))

    def chosen(request: Request) -> str:
        """The request's ``product`` (one of the data root's; default: the server's), case-insensitive."""
        asked = request.query_params.get("product", "").upper() or default
        if asked not in configs:
            raise SpymasterError(f"product {asked!r} is not one of this data root's products ({', '.join(configs)})")
        return asked

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def products(request: Request) -> JSONResponse:
        return JSONResponse({
            "default": default,
            "products": [
                {"symbol": s, "price_unit": c.spec.price_unit, "unit_label": c.spec.unit_label, "tick_size": c.spec.tick_size,
                 "rth_open": f"{c.rth_open:%H:%M}", "premarket_start": f"{c.premarket_start:%H:%M}"}
                for s, c in configs.items()
            ],
        })

    async def sessions(request: Request) -> JSONResponse:
        try:
            config = configs[chosen(request)]
        except SpymasterError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        days = await anyio.to_thread.run_sync(sessions_in_lake, Lake(config.lake_dir))
        return JSONResponse({"product": config.product, "sessions": [d.isoformat() for d in reversed(days)], "latest": days[-1].isoformat() if days else None, "live": _live_state(config, live_day, live_client_factory is not None, home)})

    async def live(request: Request) -> EventSourceResponse:
        try:
            config = configs[chosen(request)]
        except SpymasterError as exc:
            return EventSourceResponse(_problem(str(exc)))
        day = live_day or session_date_of(datetime.now(timezone.utc), config)
        return EventSourceResponse(_live_events(config, day, factory))

    async def replay(request: Request) -> EventSourceResponse:
        q = request.query_params
        try:
            symbol = chosen(request)
        except SpymasterError as exc:
            return EventSourceResponse(_problem(str(exc)))
        return EventSourceResponse(_replay_events(configs[symbol], catalogs[symbol], q.get("date", ""), q.get("speed", "0"), q.get("until", "")))

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/products", products),
            Route("/api/sessions", sessions),
            Route("/api/replay", replay),
            Route("/api/live", live),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


async def _problem(message: str):
    """An event stream of one ``problem`` event (a bad request)."""
    yield _event("problem", {"message": message})


async def _replay_events(config: SpymasterConfig, catalog: RawCatalog, day_text: str, speed_text: str, until_text: str = ""):
    """The event stream of one replay (see the module docstring); ``until_text``: HH:MM New York to stop after, or "" (the whole session)."""
    try:
        day = date.fromisoformat(day_text)
        speed = float(speed_text)
        if speed < 0:
            raise ValueError("negative")
        until = datetime.combine(day, time.fromisoformat(until_text), tzinfo=NY).astimezone(timezone.utc) if until_text else None
    except ValueError:
        yield _event("problem", {"message": f"bad request: date={day_text!r} (YYYY-MM-DD), speed={speed_text!r} (0 = as fast as possible, 1 = real time), until={until_text!r} (HH:MM New York)"})
        return
    try:
        session = await anyio.to_thread.run_sync(open_replay, config, day, catalog)
    except (SpymasterError, ValueError, OSError) as exc:
        log.warning("replay %s: %s", day, exc)
        yield _event("problem", {"message": str(exc)})
        return
    log.info("replay %s at speed %s: %d one-minute bars", day, speed or "max", session.bars.height)
    yield _event("session", {**session.meta, "source": "replay", "speed": speed})
    start = screen_start(day)
    pause = 60.0 / speed if speed else 0.0
    for bar in session.bars.iter_rows(named=True):
        received = clock.perf_counter()
        try:
            closes = await anyio.to_thread.run_sync(session.engine.add_minute, bar)
        except BarOrderError as exc:
            log.warning("replay %s: %s", day, exc)
            yield _event("problem", {"message": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001  (any failure ends this replay with a message, never the server)
            log.exception("replay %s stopped at %s", day, bar["ts_event"])
            yield _event("problem", {"message": f"replay stopped at {bar['ts_event']:%H:%M} UTC: {type(exc).__name__}: {exc}"})
            return
        for close in closes:
            if until is not None and close.ts_close > until:
                yield _event("end", {"date": day.isoformat(), "until": until_text})
                return
            if close.ts_close > start:
                data = payload(close)
                data["latency_ms"] = round((clock.perf_counter() - received) * 1000, 2)
                yield _event("bar", data)
        if pause and bar["ts_event"] >= start:
            await anyio.sleep(pause)
    yield _event("end", {"date": day.isoformat()})


def _live_state(config: SpymasterConfig, live_day: date | None, injected: bool, home: Path) -> dict:
    """Whether the page should open on the live session: ``open`` when a CME session is trading now
    (or a test injected a live client) and an API key is there; ``reason`` when not."""
    now = datetime.now(timezone.utc)
    day = live_day or session_date_of(now, config)
    if injected:
        return {"date": day.isoformat(), "open": True, "reason": None}
    start, end = session_bounds_utc(day, config)
    if not is_trading_session(day, config) or not start <= now < end:
        return {"date": day.isoformat(), "open": False, "reason": f"no {config.product} session is trading now"}
    try:
        find_api_key([Path(home), Path.cwd()])
    except SpymasterError as exc:
        return {"date": day.isoformat(), "open": False, "reason": str(exc)}
    return {"date": day.isoformat(), "open": True, "reason": None}


async def _live_events(config: SpymasterConfig, day: date, factory: Callable[[], LiveClient]):
    """The event stream of the live session ``day`` (``spymaster_assets.screen.live``)."""
    try:
        session = await anyio.to_thread.run_sync(open_live, config, day)
    except (SpymasterError, ValueError, OSError) as exc:
        log.warning("live %s: %s", day, exc)
        yield _event("problem", {"message": f"live: {exc}"})
        return
    yield _event("session", {**session.meta, "source": "live"})
    if session.problem:
        yield _event("problem", {"message": session.problem})
    front = FrontMonthBars(session.instrument_id, choose_at=screen_start(day))
    schemas = ("ohlcv-1m", *(s for s in ("trades", "mbp-10", "mbo") if s in config.download_order_flow_schemas))
    feed = LiveFeed(session.engine, front, factory, schemas=schemas)
    events = feed.events()
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, events, None, abandon_on_cancel=True)
            if item is None:
                return
            name, data = item
            if name != "bar":
                log.info("live %s: %s %s", day, name, data.get("message", ""))
            yield _event(name, data)
    finally:
        feed.close()


def serve(home: Path, port: int = 8050, host: str = "127.0.0.1", product: str | None = None) -> None:
    """Run the screen of ``product`` on ``host:port`` until interrupted (uvicorn)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.info("spymaster screen for %s on http://%s:%d/", home, host, port)
    uvicorn.run(create_app(home, product=product), host=host, port=port, log_level="info")
