"""Front-month selection: the volume-dominant outright of a product's session, calendar spreads dropped.

A future's outrights are its root's contracts in the product's listed cycle (ES/NQ/6E H M U Z, GC
G J M Q V Z, SI H K N U Z, CL every month: ``spymaster_core.products``); an equity (SPY, QQQ) has one
instrument, the ticker itself, and no roll.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from spymaster_core.errors import RawDataError
from spymaster_core.products import DEFAULT_PRODUCT, PRODUCTS, Product


@dataclass(frozen=True)
class FrontMonth:
    """The chosen contract and why: its share of the session's outright volume of the product (0-1)."""

    instrument_id: int
    raw_symbol: str
    volume: int
    volume_share: float
    candidates: dict[str, int]


def outright_instruments(bars: pl.DataFrame, definitions: pl.DataFrame, product: Product | None = None) -> pl.DataFrame:
    """Rows of ``bars`` whose instrument is an outright of ``product`` (default ES).

    A future's instrument is an outright when its raw symbol is the root, a month of the product's
    cycle and the year (``Product.outright_pattern``: spreads such as ``ESZ3-ESH4``, months outside
    the cycle and other roots are dropped) and, when the session's definitions name the instrument,
    its definition has instrument_class "F" and asset = the root. An equity's only instrument is the
    ticker.
    """
    spec = product or PRODUCTS[DEFAULT_PRODUCT]
    by_symbol = pl.col("raw_symbol").str.contains(spec.outright_pattern).fill_null(False)
    if spec.is_future and definitions.height:
        futures = definitions.filter((pl.col("instrument_class") == "F") & (pl.col("asset") == spec.root))
        known = set(definitions["instrument_id"].to_list())
        ids = set(futures["instrument_id"].to_list())
        by_def = pl.col("instrument_id").is_in(list(ids))
        return bars.filter(by_symbol & (by_def | ~pl.col("instrument_id").is_in(list(known))))
    return bars.filter(by_symbol)


def select_front_month(bars: pl.DataFrame, definitions: pl.DataFrame, session_date: date, product: Product | None = None) -> FrontMonth:
    """Pick the outright of ``product`` (default ES) with the most volume over the session.

    Args:
        bars: ohlcv-1m rows of every instrument in the session (instrument_id, raw_symbol, volume).
        definitions: bronze definitions of the session (may be empty).
    Raises:
        RawDataError: no outright of the product traded in the session.
    """
    spec = product or PRODUCTS[DEFAULT_PRODUCT]
    outrights = outright_instruments(bars, definitions, spec)
    if not outrights.height:
        what = f"{spec.root} outright futures" if spec.is_future else f"{spec.root}"
        raise RawDataError(f"session {session_date}: no {what} bars in the raw files")
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
