"""Build the bronze tables of one session from the raw DBN catalog (pure: no Dagster)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from ..config import SpymasterConfig
from ..errors import RawDataError
from ..sessions import et_to_utc, session_bounds_utc, trading_sessions
from .dbn_files import RawCatalog, read_definitions, read_ohlcv_1m
from .front_month import FrontMonth, select_front_month


def session_definitions(catalog: RawCatalog, session_date: date, config: SpymasterConfig) -> tuple[pl.DataFrame, list[str]]:
    """Definitions known by the session's end, futures outrights and options only (spreads dropped).

    Reads ``definition`` files with records from the day before the session opens to its close; the
    latest definition per instrument published before the close wins. Returns the bronze_definitions
    frame (read_definitions columns + session_date) and the file names used (empty when none exist).
    """
    start, end = session_bounds_utc(session_date, config)
    files = catalog.files_for_window("definition", start - timedelta(days=1), end)
    defs = read_definitions([f.path for f in files], until=end)
    defs = defs.filter(pl.col("instrument_class").is_in(["F", "C", "P"]))
    return defs.with_columns(pl.lit(session_date).alias("session_date")).select("session_date", *defs.columns), [f.path.name for f in files]


@dataclass(frozen=True)
class SessionBars:
    """The front month's 1-minute bars of one session and how they were chosen."""

    bars: pl.DataFrame
    front_month: FrontMonth
    files: list[str]


def session_ohlcv_1m(catalog: RawCatalog, session_date: date, definitions: pl.DataFrame, config: SpymasterConfig) -> SessionBars:
    """The bronze_futures_ohlcv_1m frame of a session: front-month 1-minute bars within the session bounds.

    Columns: session_date, ts_event (bar open, UTC), instrument_id, raw_symbol, open/high/low/close
    (index points), volume (contracts), source ("ohlcv-1m").

    Raises:
        RawDataError: no ohlcv-1m file covers the session, or no ES outright traded in it.
    """
    start, end = session_bounds_utc(session_date, config)
    files = catalog.files_for_window("ohlcv-1m", start, end)
    if not files:
        raise RawDataError(f"session {session_date}: no ohlcv-1m DBN file under {catalog.raw_dir} covers {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
    bars = read_ohlcv_1m([f.path for f in files], start, end)
    front = select_front_month(bars, definitions, session_date)
    out = (
        bars.filter(pl.col("instrument_id") == front.instrument_id)
        .with_columns(raw_symbol=pl.lit(front.raw_symbol), session_date=pl.lit(session_date), source=pl.lit("ohlcv-1m"))
        .select("session_date", "ts_event", "instrument_id", "raw_symbol", "open", "high", "low", "close", "volume", "source")
    )
    return SessionBars(bars=out, front_month=front, files=[f.path.name for f in files])


def sessions_with_rth_data(catalog: RawCatalog, config: SpymasterConfig, start: date | None = None, end: date | None = None) -> list[date]:
    """Calendar sessions whose regular-hours open (09:30 ET) lies inside some ohlcv-1m file's records.

    A session that only has its evening opening in the raw files (the next UTC file is missing) is
    not listed: it has no regular-hours bars to anchor on.
    """
    files = catalog.files("ohlcv-1m")
    spans = [(f.ts_min, f.ts_max) for f in files if f.ts_min is not None]
    if not spans:
        return []
    lo = start or datetime.fromtimestamp(min(s for s, _ in spans) / 1e9).date()
    hi = end or datetime.fromtimestamp(max(e for _, e in spans) / 1e9).date() + timedelta(days=1)
    out = []
    for d in trading_sessions(lo, hi):
        open_ns = int(et_to_utc(d, config.rth_open).timestamp()) * 1_000_000_000
        if any(s <= open_ns <= e for s, e in spans):
            out.append(d)
    return out
