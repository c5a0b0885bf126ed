"""NumPy structured dtypes with the exact byte layout of DBN v3 records (Databento Binary Encoding).

An array of one of these dtypes *is* the record body of a DBN stream: ``array.tobytes()`` can be
written after a ``databento_dbn.Metadata(...).encode()`` header and decodes with
``databento.DBNStore``. Field names and order are those of ``databento_dbn.v3.<Msg>._dtypes`` and of
``DBNStore.to_ndarray()``; the layouts are checked byte for byte against records encoded by
databento_dbn (:func:`layout_mismatches`, run by the tests).

Conventions (Databento DBN spec, https://databento.com/docs/standards-and-conventions/databento-binary-encoding):
every record starts with a 16-byte header ``length`` (record size in 32-bit words), ``rtype``,
``publisher_id``, ``instrument_id``, ``ts_event`` (ns since the UNIX epoch, UTC). Prices are
fixed-point int64 in units of 1e-9 index points (``UNDEF_PRICE`` = i64 max when undefined); sizes
are contracts; ``action`` and ``side`` are one ASCII byte each.
"""

from __future__ import annotations

import numpy as np

#: DBN fixed-point price units per index point.
PRICE_SCALE = 1_000_000_000
#: Sentinel of an undefined price (i64::MAX).
UNDEF_PRICE = np.iinfo(np.int64).max
#: Levels carried by an MBP-10 record.
MBP10_LEVELS = 10

# Record types (databento_dbn.RType values).
RTYPE_MBP_0 = 0x00  # trades schema
RTYPE_MBP_10 = 0x0A
RTYPE_OHLCV_1M = 0x21
RTYPE_MBO = 0xA0

# Flags (databento_dbn.F_*).
F_LAST = 128
F_TOB = 64
F_SNAPSHOT = 32
F_MBP = 16
F_BAD_TS_RECV = 8
F_MAYBE_BAD_BOOK = 4

_HEADER = [
    ("length", "u1"),
    ("rtype", "u1"),
    ("publisher_id", "<u2"),
    ("instrument_id", "<u4"),
    ("ts_event", "<u8"),
]

#: MBO (market by order), 56 bytes.
MBO_DTYPE = np.dtype(
    _HEADER
    + [
        ("order_id", "<u8"),
        ("price", "<i8"),
        ("size", "<u4"),
        ("flags", "u1"),
        ("channel_id", "u1"),
        ("action", "S1"),
        ("side", "S1"),
        ("ts_recv", "<u8"),
        ("ts_in_delta", "<i4"),
        ("sequence", "<u4"),
    ]
)

_MBP_BODY = [
    ("price", "<i8"),
    ("size", "<u4"),
    ("action", "S1"),
    ("side", "S1"),
    ("flags", "u1"),
    ("depth", "u1"),
    ("ts_recv", "<u8"),
    ("ts_in_delta", "<i4"),
    ("sequence", "<u4"),
]

#: Trades schema (MBP-0, ``TradeMsg``), 48 bytes.
TRADE_DTYPE = np.dtype(_HEADER + _MBP_BODY)

#: Fields of one book level (``BidAskPair``), in record order; 32 bytes per level.
LEVEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("bid_px", "<i8"),
    ("ask_px", "<i8"),
    ("bid_sz", "<u4"),
    ("ask_sz", "<u4"),
    ("bid_ct", "<u4"),
    ("ask_ct", "<u4"),
)

#: MBP-10 (``MBP10Msg``), 368 bytes: the trades fields, then ten levels with flat names
#: ``bid_px_00 .. ask_ct_09`` as ``DBNStore.to_ndarray()`` names them.
MBP10_DTYPE = np.dtype(
    _HEADER
    + _MBP_BODY
    + [(f"{name}_{i:02d}", fmt) for i in range(MBP10_LEVELS) for name, fmt in LEVEL_FIELDS]
)

#: OHLCV (``OHLCVMsg``), 56 bytes; ``ts_event`` is the bar's open, volume in contracts.
OHLCV_DTYPE = np.dtype(
    _HEADER
    + [("open", "<i8"), ("high", "<i8"), ("low", "<i8"), ("close", "<i8"), ("volume", "<u8")]
)


def empty_records(dtype: np.dtype, n: int, rtype: int, publisher_id: int, instrument_id: int) -> np.ndarray:
    """``n`` zeroed records of ``dtype`` with the header's ``length``, ``rtype``, ``publisher_id`` and ``instrument_id`` set.

    Raises ValueError when the record size is not a multiple of 4 bytes (DBN lengths are in words).
    """
    if dtype.itemsize % 4:
        raise ValueError(f"record size {dtype.itemsize} is not a multiple of 4 bytes")
    out = np.zeros(n, dtype=dtype)
    out["length"] = dtype.itemsize // 4
    out["rtype"] = rtype
    out["publisher_id"] = publisher_id
    out["instrument_id"] = instrument_id
    return out


def layout_mismatches() -> list[str]:
    """Compare each dtype here with a record encoded by ``databento_dbn.v3``; returns the differences (empty when all match).

    One record per schema is filled with distinct values in every field, encoded both ways, and the
    bytes compared, so a wrong offset, width or order shows up as a mismatch.
    """
    import databento_dbn as dbn
    from databento_dbn import v3

    problems: list[str] = []

    def check(name: str, ours: np.ndarray, msg: object) -> None:
        theirs = bytes(msg)
        if ours.tobytes() != theirs:
            problems.append(f"{name}: ours {ours.tobytes().hex()} != databento_dbn {theirs.hex()}")

    def filled(dtype: np.dtype, rtype: int, **values: object) -> np.ndarray:
        rec = empty_records(dtype, 1, rtype, 1, 5602)
        for field, value in values.items():
            rec[field] = value
        return rec

    mbo = filled(
        MBO_DTYPE, RTYPE_MBO, ts_event=11, order_id=22, price=5_150_250_000_000, size=33, flags=130, channel_id=4,
        action=b"A", side=b"B", ts_recv=44, ts_in_delta=-55, sequence=66,
    )
    check("MBO", mbo, v3.MBOMsg(
        publisher_id=1, instrument_id=5602, ts_event=11, order_id=22, price=5_150_250_000_000, size=33,
        flags=130, channel_id=4, action=dbn.Action.ADD, side=dbn.Side.BID, ts_recv=44, ts_in_delta=-55,
        sequence=66,
    ))

    trade_kwargs = dict(
        publisher_id=1, instrument_id=5602, ts_event=11, price=5_150_250_000_000, size=33,
        action=dbn.Action.TRADE, side=dbn.Side.ASK, flags=0, depth=2, ts_recv=44, ts_in_delta=-55, sequence=66,
    )
    trade = filled(
        TRADE_DTYPE, RTYPE_MBP_0, ts_event=11, price=5_150_250_000_000, size=33, action=b"T", side=b"A", flags=0,
        depth=2, ts_recv=44, ts_in_delta=-55, sequence=66,
    )
    check("trades", trade, v3.TradeMsg(**trade_kwargs))

    mbp = empty_records(MBP10_DTYPE, 1, RTYPE_MBP_10, 1, 5602)
    for field in ("ts_event", "price", "size", "action", "side", "flags", "depth", "ts_recv", "ts_in_delta", "sequence"):
        mbp[field] = trade[field]
    levels = []
    for i in range(MBP10_LEVELS):
        vals = dict(bid_px=1000 + i, ask_px=2000 + i, bid_sz=3000 + i, ask_sz=4000 + i, bid_ct=5000 + i, ask_ct=6000 + i)
        for name, value in vals.items():
            mbp[f"{name}_{i:02d}"] = value
        levels.append(dbn.BidAskPair(**vals))
    check("MBP-10", mbp, v3.MBP10Msg(levels=levels, **trade_kwargs))

    bar = filled(OHLCV_DTYPE, RTYPE_OHLCV_1M, ts_event=11, open=1, high=2, low=3, close=4, volume=5)
    check("OHLCV-1m", bar, v3.OHLCVMsg(
        rtype=RTYPE_OHLCV_1M, publisher_id=1, instrument_id=5602, ts_event=11, open=1, high=2, low=3, close=4, volume=5,
    ))
    return problems
