"""The session's ES 0DTE option chain, selected from instrument definitions (pure: no Dagster, no I/O).

A 0DTE option of session D (CME Globex trade date D) is a definition with

* ``instrument_class`` "C" or "P";
* ``underlying`` equal to the session's front-month future (bronze_futures_ohlcv_1m ``raw_symbol``);
* ``expiration`` converted to America/New_York falling on calendar day D;
* ``expiration`` strictly after the session opens (18:00 ET on D-1).

Selection uses these definition fields only, never the symbol. The CME roots of same-day ES
expiries (EW1-EW4 Fridays, E1A-E5A Mondays, E1B-E5B Tuesdays, E1C-E5C Wednesdays, E1D-E5D
Thursdays, EW end of month, ES quarterly: CME Group, "E-mini S&P 500 options" contract specs) are
only used for reporting: a 0DTE option of another root is kept and counted as ``unlisted_root``.

Quarterly ES options (root ES, e.g. ESM4) expire at 09:30 ET, the futures' special opening
quotation, not at 16:00 ET. Decision: such an option IS in its expiry day's chain (it is alive from
the 18:00 ET session open until 09:30 ET, so the rule "expires after the session opens" keeps it),
and in no other day's. Features at anchors from 09:30 ET drop it (time to expiry <= 0), so it never
contributes gamma to the regular-hours setups; it stays in bronze so the chain is complete and the
decision is visible. Its underlying (ESM4) is only the front month when the roll has not happened,
so on most quarterly expiry days the volume rule already excludes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from spymaster_core.config import SESSION_TZ, SpymasterConfig
from ..sessions import session_bounds_utc

UTC_NS = pl.Datetime("ns", "UTC")

#: CME roots of ES options that can expire on a given weekday (reporting only, see module docstring).
LISTED_0DTE_ROOTS: frozenset[str] = frozenset(
    [f"EW{i}" for i in range(1, 5)]
    + [f"E{i}{day}" for i in range(1, 6) for day in "ABCD"]
    + ["EW", "ES"]
)

#: Columns of bronze_options_definitions, in order.
CHAIN_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date,
    "instrument_id": pl.UInt32,
    "raw_symbol": pl.Utf8,
    "asset": pl.Utf8,
    "instrument_class": pl.Utf8,
    "underlying": pl.Utf8,
    "strike_price": pl.Float64,
    "expiration": UTC_NS,
    "multiplier": pl.Float64,
    "min_price_increment": pl.Float64,
}


@dataclass(frozen=True)
class OptionChain:
    """The chain of one session and what the selection saw.

    ``chain``: rows of :data:`CHAIN_SCHEMA`, sorted by expiration, asset, strike, class, instrument_id.
    ``counts``: ``options_defined`` (C/P definitions given), ``expiring_today`` (options whose New York
    expiration date is the session date, any underlying), ``other_underlying`` (of those, on another
    future than the front month), ``expired_before_open`` (expiring today before 18:00 ET of D-1),
    ``undefined_strike`` (no strike price: dropped), ``chain_size``, ``calls``, ``puts``,
    ``unlisted_root`` (chain options whose root is not in :data:`LISTED_0DTE_ROOTS`),
    ``missing_multiplier`` (no unit_of_measure_qty and no front-month definition to take it from).
    ``roots``: sorted roots of the chain; ``unlisted_roots`` those outside the listed set.
    """

    chain: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    unlisted_roots: list[str] = field(default_factory=list)

    @property
    def strike_range(self) -> tuple[float | None, float | None]:
        """(lowest, highest) strike of the chain in index points; (None, None) when empty."""
        if not self.chain.height:
            return None, None
        return float(self.chain["strike_price"].min()), float(self.chain["strike_price"].max())


def empty_chain() -> pl.DataFrame:
    """A bronze_options_definitions frame with no rows."""
    return pl.DataFrame(schema=CHAIN_SCHEMA)


def select_chain(definitions: pl.DataFrame, session_date: date, front_month: str, config: SpymasterConfig) -> OptionChain:
    """Select the 0DTE chain of ``session_date`` from ``definitions`` (rules in the module docstring).

    Args:
        definitions: read_definitions / bronze_definitions columns (instrument_id, raw_symbol,
            instrument_class, asset, underlying, expiration (UTC), min_price_increment,
            unit_of_measure_qty, strike_price, ...), at most one row per instrument_id (the latest
            definition). Futures rows are ignored except to supply a missing multiplier.
        session_date: the CME trade date D.
        front_month: raw symbol of the session's front-month future (e.g. "ESH6").
        config: session clock (``session_open``).

    Returns:
        :class:`OptionChain`; ``multiplier`` is unit_of_measure_qty (USD per index point, 50 for
        ES options), else the front-month future's when the option's is undefined.
    """
    open_utc, _ = session_bounds_utc(session_date, config)
    options = definitions.filter(pl.col("instrument_class").is_in(["C", "P"]))
    expiry_day = pl.col("expiration").dt.convert_time_zone(SESSION_TZ).dt.date()
    today = options.filter(expiry_day == session_date)
    on_front = today.filter(pl.col("underlying") == front_month)
    alive = on_front.filter(pl.col("expiration") > pl.lit(open_utc).cast(UTC_NS))
    with_strike = alive.filter(pl.col("strike_price").is_not_null() & pl.col("strike_price").is_not_nan())

    future = definitions.filter((pl.col("instrument_class") == "F") & (pl.col("raw_symbol") == front_month))
    future_multiplier = future["unit_of_measure_qty"][0] if future.height else None
    multiplier = pl.col("unit_of_measure_qty").fill_nan(None)
    if future_multiplier is not None:
        multiplier = multiplier.fill_null(pl.lit(float(future_multiplier)))

    chain = (
        with_strike.with_columns(
            session_date=pl.lit(session_date, dtype=pl.Date),
            multiplier=multiplier.cast(pl.Float64),
            min_price_increment=pl.col("min_price_increment").fill_nan(None),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in CHAIN_SCHEMA.items()])
        .sort(["expiration", "asset", "strike_price", "instrument_class", "instrument_id"])
    )
    roots = sorted(set(chain["asset"].to_list()))
    unlisted = [r for r in roots if r not in LISTED_0DTE_ROOTS]
    counts = {
        "options_defined": options.height,
        "expiring_today": today.height,
        "other_underlying": today.height - on_front.height,
        "expired_before_open": on_front.height - alive.height,
        "undefined_strike": alive.height - with_strike.height,
        "chain_size": chain.height,
        "calls": int((chain["instrument_class"] == "C").sum()),
        "puts": int((chain["instrument_class"] == "P").sum()),
        "unlisted_root": int(chain["asset"].is_in(unlisted).sum()) if unlisted else 0,
        "missing_multiplier": int(chain["multiplier"].is_null().sum()),
    }
    return OptionChain(chain=chain, counts=counts, roots=roots, unlisted_roots=unlisted)
