"""Front-month selection: the volume-dominant ES outright of a session, calendar spreads dropped."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import polars as pl

from spymaster_core.errors import RawDataError

#: An ES outright futures symbol: root ES, CME month code, 1-2 year digits (e.g. ESZ3, ESH24).
_ES_OUTRIGHT = re.compile(r"^ES[FGHJKMNQUVXZ]\d{1,2}$")


@dataclass(frozen=True)
class FrontMonth:
    """The chosen contract and why: its share of the session's outright ES volume (0-1)."""

    instrument_id: int
    raw_symbol: str
    volume: int
    volume_share: float
    candidates: dict[str, int]


def outright_instruments(bars: pl.DataFrame, definitions: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``bars`` whose instrument is an ES outright future.

    An instrument is an outright when its definition has instrument_class "F" and asset "ES", or,
    without a definition, when its raw symbol matches ES<month><year> (spreads such as
    ``ESZ3-ESH4`` and other roots are dropped).
    """
    if definitions.height:
        futures = definitions.filter((pl.col("instrument_class") == "F") & (pl.col("asset") == "ES"))
        known = set(definitions["instrument_id"].to_list())
        ids = set(futures["instrument_id"].to_list())
        by_def = pl.col("instrument_id").is_in(list(ids))
        by_symbol = ~pl.col("instrument_id").is_in(list(known)) & pl.col("raw_symbol").str.contains(_ES_OUTRIGHT.pattern)
        return bars.filter(by_def | by_symbol)
    return bars.filter(pl.col("raw_symbol").str.contains(_ES_OUTRIGHT.pattern))


def select_front_month(bars: pl.DataFrame, definitions: pl.DataFrame, session_date: date) -> FrontMonth:
    """Pick the outright with the most volume over the session.

    Args:
        bars: ohlcv-1m rows of every instrument in the session (instrument_id, raw_symbol, volume).
        definitions: bronze definitions of the session (may be empty).
    Raises:
        RawDataError: no ES outright traded in the session.
    """
    outrights = outright_instruments(bars, definitions)
    if not outrights.height:
        raise RawDataError(f"session {session_date}: no ES outright futures bars in the raw files")
    volumes = (
        outrights.group_by("instrument_id", "raw_symbol")
        .agg(pl.col("volume").sum())
        .sort(["volume", "instrument_id"], descending=[True, False])
    )
    total = int(volumes["volume"].sum())
    top = volumes.row(0, named=True)
    return FrontMonth(
        instrument_id=int(top["instrument_id"]),
        raw_symbol=str(top["raw_symbol"]),
        volume=int(top["volume"]),
        volume_share=(int(top["volume"]) / total) if total else 0.0,
        candidates={str(r["raw_symbol"]): int(r["volume"]) for r in volumes.iter_rows(named=True)},
    )
