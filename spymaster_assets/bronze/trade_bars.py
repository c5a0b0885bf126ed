"""One-minute OHLCV bars aggregated from trades, as Databento builds its ``ohlcv-1m`` schema.

Databento's OHLCV bars are built from the trades of an instrument: a bar is labelled with the open
of its interval (``ts_event`` = minute open, covering ``[ts_event, ts_event + 1 min)``), open/close
are the first/last trade prices in the minute, high/low the extreme trade prices, volume the sum of
trade sizes, and a minute with no trade has no bar
(https://databento.com/docs/schemas-and-data-formats/ohlcv). A trade belongs to the minute of its
``ts_event`` (exchange match time); first/last follow the receive order ``(ts_recv, sequence)``.
Checked against the real ESU4 ``trades`` and ``ohlcv-1m`` files (tests/bronze/test_trade_bars.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from spymaster_resources.raw_files import UNDEF_PRICE, iter_records

OHLCV_COLUMNS = ("ts_event", "instrument_id", "open", "high", "low", "close", "volume")


def trades_to_ohlcv_1m(trades: pl.DataFrame) -> pl.DataFrame:
    """Aggregate trades to 1-minute bars per instrument.

    Args:
        trades: columns ts_event (Datetime ns UTC), instrument_id (UInt32), price (Float64, index
            points, non-null), size (Int64, contracts), already in (ts_recv, sequence) order (as
            bronze_futures_trades is).
    Returns:
        ts_event (minute open, Datetime ns UTC), instrument_id, open/high/low/close (Float64 points),
        volume (Int64 contracts), one row per instrument and minute with at least one trade, sorted
        by ts_event then instrument_id.
    Raises:
        ValueError: a trade price is null (an undefined price cannot make a bar).
    """
    if trades["price"].null_count():
        raise ValueError("trades_to_ohlcv_1m: null trade price")
    return (
        trades.lazy()
        .group_by(pl.col("ts_event").dt.truncate("1m"), "instrument_id", maintain_order=True)
        .agg(
            open=pl.col("price").first(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            close=pl.col("price").last(),
            volume=pl.col("size").sum().cast(pl.Int64),
        )
        .sort("ts_event", "instrument_id", maintain_order=True)
        .select(*OHLCV_COLUMNS)
        .collect()
    )


def trade_volume_by_instrument(paths: Iterable[Path], start_ns: int, end_ns: int, trades_only: bool, chunk_records: int) -> pl.DataFrame:
    """Contracts traded per instrument_id with ts_event in ``[start_ns, end_ns)`` (for the front-month choice).

    Reads every record of ``paths`` chunk by chunk (bounded memory). ``trades_only`` keeps action
    'T' records (for tbbo / mbp / mbo files; a ``trades`` file holds only trades). Records with an
    undefined price are not trades of any volume and are skipped.

    Returns:
        instrument_id (UInt32), volume (Int64 contracts), one row per instrument that traded.
    Raises:
        RawDataError: a file is truncated or corrupt, naming it.
    """
    totals: dict[int, int] = {}
    for path in paths:
        for records in iter_records(path, chunk_records):
            ts = records["ts_event"]
            keep = (ts >= np.uint64(start_ns)) & (ts < np.uint64(end_ns)) & (records["price"] != UNDEF_PRICE)
            if trades_only:
                keep &= records["action"] == b"T"
            if not keep.any():
                continue
            ids, inverse = np.unique(records["instrument_id"][keep], return_inverse=True)
            sums = np.bincount(inverse, weights=records["size"][keep].astype(np.float64))
            for iid, vol in zip(ids.tolist(), sums.tolist()):  # one entry per instrument, not per record
                totals[iid] = totals.get(iid, 0) + int(vol)
    return pl.DataFrame(
        {"instrument_id": list(totals), "volume": list(totals.values())},
        schema={"instrument_id": pl.UInt32, "volume": pl.Int64},
    )
