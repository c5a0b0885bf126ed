"""Pandera (polars) schemas of the bronze tables, enforced before a partition is written."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

UTC_NS = pl.Datetime("ns", "UTC")

BRONZE_DEFINITIONS = pa.DataFrameSchema(
    {
        "session_date": pa.Column(pl.Date),
        "instrument_id": pa.Column(pl.UInt32, unique=True),
        "raw_symbol": pa.Column(pl.Utf8),
        "instrument_class": pa.Column(pl.Utf8),
        "security_type": pa.Column(pl.Utf8),
        "asset": pa.Column(pl.Utf8),
        "underlying": pa.Column(pl.Utf8),
        "expiration": pa.Column(UTC_NS),
        "activation": pa.Column(UTC_NS),
        "min_price_increment": pa.Column(pl.Float64, pa.Check.gt(0), nullable=True),
        "unit_of_measure_qty": pa.Column(pl.Float64, nullable=True),
        "strike_price": pa.Column(pl.Float64, nullable=True),
        "ts_recv": pa.Column(UTC_NS),
    },
    strict=True,
    name="bronze_definitions",
)

BRONZE_FUTURES_OHLCV_1M = pa.DataFrameSchema(
    {
        "session_date": pa.Column(pl.Date),
        "ts_event": pa.Column(UTC_NS, unique=True),
        "instrument_id": pa.Column(pl.UInt32),
        "raw_symbol": pa.Column(pl.Utf8),
        "open": pa.Column(pl.Float64, pa.Check.gt(0)),
        "high": pa.Column(pl.Float64, pa.Check.gt(0)),
        "low": pa.Column(pl.Float64, pa.Check.gt(0)),
        "close": pa.Column(pl.Float64, pa.Check.gt(0)),
        "volume": pa.Column(pl.Int64, pa.Check.ge(0)),
        "source": pa.Column(pl.Utf8, pa.Check.isin(["ohlcv-1m", "trades"])),
    },
    strict=True,
    name="bronze_futures_ohlcv_1m",
    checks=[
        pa.Check(lambda d: d.lazyframe.select(pl.col("high") >= pl.max_horizontal("open", "close", "low")), error="high below open/close/low"),
        pa.Check(lambda d: d.lazyframe.select(pl.col("low") <= pl.min_horizontal("open", "close", "high")), error="low above open/close/high"),
    ],
)

_KEYS = {
    "session_date": pa.Column(pl.Date),
    "ts_event": pa.Column(UTC_NS),
    "ts_recv": pa.Column(UTC_NS),
    "sequence": pa.Column(pl.Int64, pa.Check.ge(0)),
    "instrument_id": pa.Column(pl.UInt32),
}


def _levels(levels: int) -> dict[str, pa.Column]:
    """Book level columns, typed; their values are checked by :func:`_levels_check` in one pass."""
    cols: dict[str, pa.Column] = {}
    for side in ("bid", "ask"):
        cols.update({f"{side}_px_{i:02d}": pa.Column(pl.Float64, nullable=True) for i in range(levels)})
    for field in ("bid_sz", "ask_sz", "bid_ct", "ask_ct"):
        cols.update({f"{field}_{i:02d}": pa.Column(pl.Int32) for i in range(levels)})
    return cols


def _levels_check(levels: int) -> pa.Check:
    """Prices > 0 (or null: an empty level) and sizes / order counts >= 0 on every level, as one row-wise check.

    One polars expression over the 6 x ``levels`` columns instead of a check per column: on a 10-level
    book that is a third of the validation time of a chunk (the bronze mbp-10 ingest hot path).
    """
    prices = [f"{side}_px_{i:02d}" for side in ("bid", "ask") for i in range(levels)]
    counts = [f"{field}_{i:02d}" for field in ("bid_sz", "ask_sz", "bid_ct", "ask_ct") for i in range(levels)]
    ok = pl.all_horizontal([(pl.col(c) > 0).fill_null(True) for c in prices] + [pl.col(c) >= 0 for c in counts])
    return pa.Check(lambda d: d.lazyframe.select(ok), error="book level with a price <= 0 or a negative size/count")


#: Checked on every chunk before it is written (rows sorted by (ts_recv, sequence) within a chunk
#: is guaranteed by construction in market_records, not re-checked here).
BRONZE_FUTURES_TRADES = pa.DataFrameSchema(
    {
        **_KEYS,
        "price": pa.Column(pl.Float64, pa.Check.gt(0)),
        "size": pa.Column(pl.Int64, pa.Check.ge(0)),
        "side": pa.Column(pl.Utf8, pa.Check.isin(["B", "A", "N"])),
        "source": pa.Column(pl.Utf8, pa.Check.isin(["trades", "tbbo", "mbp-1", "mbp-10", "mbo"])),
    },
    strict=True,
    ordered=True,
    name="bronze_futures_trades",
)

BRONZE_FUTURES_BBO = pa.DataFrameSchema(
    {**_KEYS, **_levels(1), "source": pa.Column(pl.Utf8, pa.Check.isin(["mbp-1", "bbo-1s", "bbo-1m", "tbbo"]))},
    strict=True,
    ordered=True,
    checks=[_levels_check(1)],
    name="bronze_futures_bbo",
)

BRONZE_FUTURES_MBP10 = pa.DataFrameSchema(
    {
        **_KEYS,
        "action": pa.Column(pl.Utf8, pa.Check.isin(["A", "C", "M", "T", "F", "R", "N"])),
        "side": pa.Column(pl.Utf8, pa.Check.isin(["B", "A", "N"])),
        "price": pa.Column(pl.Float64, nullable=True),
        "size": pa.Column(pl.Int64),
        "flags": pa.Column(pl.Int16),
        "book_ok": pa.Column(pl.Boolean),
        "prev_price": pa.Column(pl.Float64, nullable=True),
        "prev_size": pa.Column(pl.Int64, pa.Check.ge(0)),
        **_levels(10),
        "source": pa.Column(pl.Utf8, pa.Check.isin(["mbp-10", "mbo"])),
    },
    strict=True,
    ordered=True,
    checks=[_levels_check(10)],
    name="bronze_futures_mbp10",
)

_KEY_DESCRIPTIONS = {
    "ts_event": "exchange event time, UTC (point in time: a feature at T uses rows with ts_event <= T)",
    "ts_recv": "Databento capture time, UTC; rows are sorted by (ts_recv, sequence)",
    "sequence": "venue message sequence number",
    "instrument_id": "the session's front month (bronze_futures_ohlcv_1m instrument_id)",
}

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "bronze_definitions": {
        "instrument_id": "Databento instrument_id (publisher-specific numeric id)",
        "raw_symbol": "CME symbol, e.g. ESZ3",
        "instrument_class": "F future, C call, P put (spreads are dropped)",
        "expiration": "last trading instant, UTC (ES futures: 09:30 ET on the third Friday)",
        "unit_of_measure_qty": "contract multiplier in USD per index point (50 for ES)",
        "min_price_increment": "tick size, index points (0.25 for ES)",
    },
    "bronze_futures_ohlcv_1m": {
        "ts_event": "bar open time, UTC (Databento ohlcv convention); the bar covers [ts_event, +1 min)",
        "open": "index points",
        "high": "index points",
        "low": "index points",
        "close": "index points",
        "volume": "contracts traded in the minute",
        "source": "DBN schema the bar came from: ohlcv-1m, or trades (aggregated from trades)",
    },
    "bronze_futures_trades": {
        **_KEY_DESCRIPTIONS,
        "price": "trade price, index points",
        "size": "contracts",
        "side": "aggressor: B buyer, A seller, N unknown",
        "source": "DBN schema read: trades, else action-T records of tbbo / mbp-1 / mbp-10 / mbo",
    },
    "bronze_futures_bbo": {
        **_KEY_DESCRIPTIONS,
        "bid_px_00": "best bid, index points (null when the side is empty)",
        "ask_px_00": "best ask, index points (null when the side is empty)",
        "bid_sz_00": "contracts at the best bid",
        "ask_sz_00": "contracts at the best ask",
        "bid_ct_00": "orders at the best bid",
        "ask_ct_00": "orders at the best ask",
        "source": "mbp-1 (after each event), bbo-1s / bbo-1m (at each interval end), tbbo (before each trade)",
    },
    "bronze_futures_mbp10": {
        **_KEY_DESCRIPTIONS,
        "action": "event: A add, C cancel, M modify, T trade, F fill, R clear book, N none",
        "side": "B bid, A ask, N none (trades: the aggressor)",
        "price": "event price, index points (null when undefined)",
        "size": "event size, contracts (MBO rows: added, cancelled, filled, traded; M: signed change at the same price, the size added at a new price; rows flagged 256 leave out size an F row already counted)",
        "flags": "DBN flags of the event (128 F_LAST, 64 F_TOB, 32 F_SNAPSHOT, 16 F_MBP, 8 F_BAD_TS_RECV, 4 F_MAYBE_BAD_BOOK) plus 256: a C/M removing a fill of the same event (MBO rows)",
        "prev_price": "MBO rows, M that moved an order: the price it left, index points (null otherwise)",
        "prev_size": "MBO rows, M that moved an order: contracts removed at prev_price (0 otherwise)",
        "book_ok": "false while the book is crossed/locked, or from an F_MAYBE_BAD_BOOK record until the next snapshot or clear",
        "bid_px_00": "best bid after the event, index points; bid_px_01..09 the next levels (null when empty)",
        "bid_sz_00": "contracts at the best bid (0 when empty); ..._09 likewise",
        "source": "mbp-10, or mbo (rebuilt by the MBO book engine)",
    },
}

# ------------------------------------------------------------------------------------------------
# ES 0DTE options (issue 4)
# ------------------------------------------------------------------------------------------------

BRONZE_OPTIONS_DEFINITIONS = pa.DataFrameSchema(
    {
        "session_date": pa.Column(pl.Date),
        "instrument_id": pa.Column(pl.UInt32, unique=True),
        "raw_symbol": pa.Column(pl.Utf8),
        "asset": pa.Column(pl.Utf8),
        "instrument_class": pa.Column(pl.Utf8, pa.Check.isin(["C", "P"])),
        "underlying": pa.Column(pl.Utf8),
        "strike_price": pa.Column(pl.Float64),
        "expiration": pa.Column(UTC_NS),
        "multiplier": pa.Column(pl.Float64, pa.Check.gt(0), nullable=True),
        "min_price_increment": pa.Column(pl.Float64, pa.Check.gt(0), nullable=True),
    },
    strict=True,
    ordered=True,
    name="bronze_options_definitions",
)

BRONZE_OPTIONS_OPEN_INTEREST = pa.DataFrameSchema(
    {
        "session_date": pa.Column(pl.Date),
        "instrument_id": pa.Column(pl.UInt32, unique=True),
        "open_interest": pa.Column(pl.Int64, pa.Check.ge(0)),
        "ts_ref": pa.Column(UTC_NS, nullable=True),
        "ts_recv": pa.Column(UTC_NS),
    },
    strict=True,
    ordered=True,
    name="bronze_options_open_interest",
)

#: Option prices may be below one tick (cabinet trades), never negative.
BRONZE_OPTIONS_TRADES = pa.DataFrameSchema(
    {
        **_KEYS,
        "price": pa.Column(pl.Float64, pa.Check.ge(0)),
        "size": pa.Column(pl.Int64, pa.Check.ge(0)),
        "side": pa.Column(pl.Utf8, pa.Check.isin(["B", "A", "N"])),
        "source": pa.Column(pl.Utf8, pa.Check.isin(["trades", "tbbo", "mbp-1", "mbp-10", "mbo"])),
    },
    strict=True,
    ordered=True,
    name="bronze_options_trades",
)

BRONZE_OPTIONS_BBO = pa.DataFrameSchema(
    {
        **_KEYS,
        "bid_px_00": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        "ask_px_00": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
        **{f"{f}_00": pa.Column(pl.Int32, pa.Check.ge(0)) for f in ("bid_sz", "ask_sz", "bid_ct", "ask_ct")},
        "source": pa.Column(pl.Utf8, pa.Check.isin(["mbp-1", "bbo-1s", "bbo-1m", "tbbo", "cbbo-1s", "cbbo-1m"])),
    },
    strict=True,
    ordered=True,
    name="bronze_options_bbo",
)

_OPTION_KEY_DESCRIPTIONS = {**_KEY_DESCRIPTIONS, "instrument_id": "an option of the session's 0DTE chain (bronze_options_definitions)"}

DESCRIPTIONS.update(
    {
        "bronze_options_definitions": {
            "instrument_id": "Databento instrument_id of the option",
            "raw_symbol": "CME option symbol, e.g. EW2F6 C7000",
            "asset": "option root (EW1-EW4, E1A-E5D, EW, ES...); other roots are kept and counted unlisted_root",
            "instrument_class": "C call, P put",
            "underlying": "the session's front-month future (bronze_futures_ohlcv_1m raw_symbol)",
            "strike_price": "index points",
            "expiration": "expiry instant, UTC (weeklies 16:00 ET, quarterly ES options 09:30 ET); its New York date is the session date",
            "multiplier": "USD per index point (definition unit_of_measure_qty, 50 for ES options)",
            "min_price_increment": "tick size, index points (null when the definition leaves it undefined)",
        },
        "bronze_options_open_interest": {
            "instrument_id": "an option of the session's chain",
            "open_interest": "contracts (statistics stat_type 9 only), the latest publication before the session open",
            "ts_ref": "the trading date the open interest describes, UTC",
            "ts_recv": "publication time, UTC (before 18:00 ET of the day before the session)",
        },
        "bronze_options_trades": {
            **_OPTION_KEY_DESCRIPTIONS,
            "price": "option premium, index points",
            "size": "contracts",
            "side": "aggressor: B buyer, A seller, N unknown",
            "source": "DBN schema read: trades, else action-T records of tbbo / mbp-1 / mbp-10 / mbo",
        },
        "bronze_options_bbo": {
            **_OPTION_KEY_DESCRIPTIONS,
            "bid_px_00": "best bid premium, index points (null when the side is empty)",
            "ask_px_00": "best ask premium, index points (null when the side is empty)",
            "bid_sz_00": "contracts at the best bid",
            "ask_sz_00": "contracts at the best ask",
            "bid_ct_00": "orders at the best bid (0 for consolidated cbbo records)",
            "ask_ct_00": "orders at the best ask (0 for consolidated cbbo records)",
            "source": "mbp-1, bbo-1s, bbo-1m, tbbo, cbbo-1s, cbbo-1m (first present); bbo-1s/1m rows are the book at the interval end (ts_recv)",
        },
    }
)
