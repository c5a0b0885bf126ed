"""Test helper: write NumPy record arrays as real DBN v3 files (header by databento_dbn, zstd framed).

``records(schema, n)`` gives zeroed records whose dtype is databento_dbn's own layout of that schema
(``<Msg>._dtypes``, what ``DBNStore.to_ndarray`` decodes), with ``length`` and ``rtype`` set; tests
fill the fields and ``write_dbn`` writes ``Metadata.encode()`` followed by the record bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import databento_dbn as dbn
import numpy as np
import zstandard

_MSG = {
    "trades": (dbn.TradeMsg, dbn.RType.MBP_0),
    "tbbo": (dbn.MBP1Msg, dbn.RType.MBP_1),
    "mbp-1": (dbn.MBP1Msg, dbn.RType.MBP_1),
    "mbp-10": (dbn.MBP10Msg, dbn.RType.MBP_10),
    "mbo": (dbn.MBOMsg, dbn.RType.MBO),
    "bbo-1s": (dbn.BBOMsg, dbn.RType.BBO_1S),
    "ohlcv-1m": (dbn.OHLCVMsg, dbn.RType.OHLCV_1M),
}


@dataclass(frozen=True)
class _Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass(frozen=True)
class _Mapping:
    raw_symbol: str
    intervals: list[_Interval]


def records(schema: str, n: int) -> np.ndarray:
    """``n`` zeroed DBN records of ``schema`` (length, rtype and publisher_id set; prices UNDEF where levels exist)."""
    msg, rtype = _MSG[schema]
    dtype = np.dtype(msg._dtypes)
    out = np.zeros(n, dtype=dtype)
    out["length"] = dtype.itemsize // 4
    out["rtype"] = int(rtype.value)
    out["publisher_id"] = 1
    for name in dtype.names:
        if "_px_" in name:
            out[name] = dbn.UNDEF_PRICE
    return out


def ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return int(ts.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def write_dbn(path: Path, schema: str, recs: np.ndarray, symbols: dict[int, str], start: datetime, end: datetime, compress: bool = True) -> Path:
    """Write ``recs`` as a DBN v3 file of ``schema`` with a symbology mapping instrument_id -> raw symbol."""
    days = []
    d = start.date()
    while d <= end.date():
        days.append(d)
        d += timedelta(days=1)
    mappings = [_Mapping(sym, [_Interval(days[0], days[-1] + timedelta(days=1), str(iid))]) for iid, sym in symbols.items()]
    meta = dbn.Metadata(
        dataset="GLBX.MDP3",
        start=ns(start),
        end=ns(end),
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.from_str(schema),
        symbols=list(symbols.values()),
        partial=[],
        not_found=[],
        mappings=mappings,
        ts_out=False,
        version=3,
    )
    body = meta.encode() + np.ascontiguousarray(recs).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(body) if compress else body)
    return path
