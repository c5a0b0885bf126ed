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
        "source": "DBN schema the bar came from",
    },
}
