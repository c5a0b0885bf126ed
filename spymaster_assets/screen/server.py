"""``spymaster serve``: the trader's screen as a web page (Starlette on uvicorn, server-sent events).

Routes:

- ``/``: the page (``static/index.html``; charts by TradingView's lightweight-charts, committed
  under ``static/vendor`` with its license).
- ``/api/sessions``: the sessions of the lake the page can replay (those with gold_signals), the
  latest first in ``latest``.
- ``/api/replay?date=YYYY-MM-DD&speed=S``: a server-sent event stream replaying that session from
  its raw DBN records through :class:`~spymaster_assets.screen.engine.SessionEngine`: one
  ``session`` event (index as of, vector schemas, walk-forward reliability, level styles), one
  ``bar`` event per 2-minute bar close from 04:00 New York (:func:`session.payload`), then ``end``.
  ``speed`` is the replay speed (1 = real time, 60 = a minute a second; 0 = as fast as possible);
  ``until=HH:MM`` (New York) stops it after that bar close.
  A problem (unknown or unmaterialized session, a bar out of order, a bad raw file) is sent as a
  ``problem`` event with its message and logged; the server keeps running.
"""

from __future__ import annotations

import json
import logging
import time as clock
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
from spymaster_resources.raw_files import RawCatalog

from ..sessions import NY
from .engine import BarOrderError
from .session import open_replay, payload, screen_start, sessions_in_lake

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("spymaster.screen")


def _event(name: str, data: dict) -> dict:
    return {"event": name, "data": json.dumps(data, default=str)}


def create_app(home: Path) -> Starlette:
    """The screen's web application over data root ``home`` (its lake and raw/)."""
    config = SpymasterConfig.for_home(Path(home))
    catalog = RawCatalog(config.raw_dir)

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def sessions(request: Request) -> JSONResponse:
        days = await anyio.to_thread.run_sync(sessions_in_lake, Lake(config.lake_dir))
        return JSONResponse({"sessions": [d.isoformat() for d in reversed(days)], "latest": days[-1].isoformat() if days else None})

    async def replay(request: Request) -> EventSourceResponse:
        q = request.query_params
        return EventSourceResponse(_replay_events(config, catalog, q.get("date", ""), q.get("speed", "0"), q.get("until", "")))

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/sessions", sessions),
            Route("/api/replay", replay),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


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


def serve(home: Path, port: int = 8050, host: str = "127.0.0.1") -> None:
    """Run the screen on ``host:port`` until interrupted (uvicorn)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.info("spymaster screen for %s on http://%s:%d/", home, host, port)
    uvicorn.run(create_app(home), host=host, port=port, log_level="info")
