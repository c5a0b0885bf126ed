"""The product table: every instrument Spymaster answers for, with its exchange terms and clock.

One :class:`Product` per instrument replaces the ES constants that used to live in the code: the
root, the Databento dataset and download symbology, the exchange calendar, the tick size and
multiplier, the contract cycle, the regular-hours open and close and the pre-market window the
levels use, and the 0DTE option roots where dealer gamma is computed. :data:`PRODUCTS` ships the
defaults; a data root's ``config.json`` may override any field of a shipped product or add one
(``"product_table": {"GC": {"rth_open": "08:20"}}``), see :func:`product_table`.

Sources of the shipped values (checked 2026-12):

* Tick sizes, multipliers and listed months: CME Group contract specifications (E-mini S&P 500,
  Micro E-mini S&P 500, E-mini Nasdaq-100, Micro E-mini Nasdaq-100, E-mini Russell 2000, E-mini Dow
  ($5), COMEX Gold and Silver, NYMEX WTI Crude Oil, CME Euro FX). Databento instrument definitions
  (``min_price_increment``, ``unit_of_measure_qty``, ``expiration``) win over the table where a
  session's raw files carry them; the table is the fallback (DESIGN.md "Products").
* Regular-hours opens (New York time): equity-index futures and the ETFs 09:30 (pre-market from
  04:00), CL 09:00, GC 08:20, SI 08:25, 6E 08:20 (the former pit opens the levels are drawn from).
* Calendars: ``pandas_market_calendars`` (per-product CME Globex calendars: ``CME_Equity``,
  ``CMEGlobex_GC``, ``CMEGlobex_SI``, ``CMEGlobex_CL``, ``CMEGlobex_FX``; ``XNYS`` for the ETFs).
* Equities (SPY, QQQ): Databento ``XNAS.ITCH`` (Nasdaq TotalView-ITCH), which carries MBO, trades and
  1-minute bars over the whole extended session 04:00-20:00 ET (pre-market included). Its prints are
  Nasdaq's executions only, not the consolidated tape.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import time
from typing import Any, Mapping

from .errors import UnknownProductError

#: Kinds of product: a future has contracts and a front month; an equity (ETF) is its own instrument.
FUTURE = "future"
EQUITY = "equity"
#: CME month codes, January to December (CME Group "Month codes").
MONTH_CODES = "FGHJKMNQUVXZ"
#: The product a data root serves when its configuration names none (what Spymaster began with).
DEFAULT_PRODUCT = "ES"
#: The product whose Dagster asset keys and lake paths carry no product prefix: ES, the only product
#: before the product table. Keeping its keys keeps the lakes, lineage and run history of existing
#: data roots valid; every other product's keys are prefixed (``gc/silver_bars``) and its lake lives
#: under ``lake/product=<SYMBOL>/``.
LEGACY_PRODUCT = "ES"


def asset_key_prefix(symbol: str) -> tuple[str, ...]:
    """The Dagster asset-key prefix of product ``symbol``: none for :data:`LEGACY_PRODUCT`, else its
    symbol in lower case (``("gc",)``, ``("6e",)``)."""
    return () if symbol == LEGACY_PRODUCT else (symbol.lower(),)


def lake_subdir(symbol: str) -> str:
    """Where product ``symbol``'s tables live under the lake root: "" for :data:`LEGACY_PRODUCT`,
    else the Hive directory ``product=<SYMBOL>`` (DuckDB reads it as a ``product`` column)."""
    return "" if symbol == LEGACY_PRODUCT else f"product={symbol}"

#: The ES 0DTE option roots (CME Group "Weekly options on futures" and the E-mini S&P 500 options
#: cheat sheet): ES quarterly/serial, EW end of month, EW1-EW4 Fridays, E1A-E5D Monday-Thursday weeklies.
ES_0DTE_OPTION_ROOTS: tuple[str, ...] = ("ES", "EW", "EW1", "EW2", "EW3", "EW4", *(f"E{week}{day}" for day in "ABCD" for week in range(1, 6)))


@dataclass(frozen=True)
class Product:
    """One instrument and its terms. Times are wall-clock times in ``time_zone``.

    Attributes:
        symbol: the product's name in Spymaster (``"ES"``, ``"6E"``, ``"SPY"``): CLI ``--product``,
            lake directories ``product=<symbol>``.
        kind: :data:`FUTURE` or :data:`EQUITY`.
        root: the CME root of its outright contracts (``"ES"`` for ESZ3), or the equity's ticker.
        dataset: the Databento dataset its raw files come from (``GLBX.MDP3``, ``XNAS.ITCH``).
        calendar: a ``pandas_market_calendars`` calendar name (trading days, holidays, early closes).
        time_zone: IANA zone of every time below (America/New_York for all shipped products).
        tick_size: minimum price increment, in price units (ES 0.25 index points).
        multiplier: USD per one price unit per contract (ES 50; an ETF 1 per share).
        price_unit: what a price is in, for people ("index points", "USD per troy ounce").
        unit_label: the short form printed after a price distance ("pts", "$/oz", "$").
        contract_months: listed month codes of the outrights, e.g. ``"HMUZ"`` ("" for equities).
        session_open, session_close: the trading session's bounds; a futures session opens on the
            previous calendar day (``session_opens_previous_day``), an equity's on the day itself.
        premarket_start: start of the pre-market window whose high/low are PM_HIGH/PM_LOW.
        rth_open, rth_close: the regular-hours session; the opening range and anchors start at ``rth_open``.
        options_roots: CME roots of same-day (0DTE) options for dealer gamma (empty: none).
        download_symbols, download_stype_in: Databento symbology of the download (``ES.FUT``/``parent``).
    """

    symbol: str
    kind: str
    root: str
    dataset: str
    calendar: str
    tick_size: float
    multiplier: float
    price_unit: str
    contract_months: str
    rth_open: time
    rth_close: time
    download_symbols: tuple[str, ...]
    download_stype_in: str
    time_zone: str = "America/New_York"
    premarket_start: time = time(4, 0)
    session_open: time = time(18, 0)
    session_close: time = time(17, 0)
    session_opens_previous_day: bool = True
    options_roots: tuple[str, ...] = ()
    unit_label: str = "pts"

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in (FUTURE, EQUITY):
            problems.append(f"kind {self.kind!r} is neither {FUTURE!r} nor {EQUITY!r}")
        if not (self.tick_size > 0):
            problems.append(f"tick_size {self.tick_size} is not positive")
        if not (self.multiplier > 0):
            problems.append(f"multiplier {self.multiplier} is not positive")
        if self.kind == FUTURE and (not self.contract_months or set(self.contract_months) - set(MONTH_CODES)):
            problems.append(f"contract_months {self.contract_months!r} are not CME month codes ({MONTH_CODES})")
        if not self.premarket_start < self.rth_open < self.rth_close:
            problems.append(f"the clock must run premarket_start < rth_open < rth_close ({self.premarket_start} {self.rth_open} {self.rth_close})")
        if not self.download_symbols:
            problems.append("download_symbols is empty")
        if problems:
            raise ValueError(f"product {self.symbol}: " + "; ".join(problems))

    @property
    def is_future(self) -> bool:
        """True for a future (contracts, a front month, a roll); False for an equity."""
        return self.kind == FUTURE

    @property
    def outright_pattern(self) -> str:
        """Regular expression of this product's outright symbols: the root, a listed month code and 1-2
        year digits (``GCZ3``, ``GCZ13``), or for an equity the ticker itself."""
        if not self.is_future:
            return f"^{re.escape(self.root)}$"
        return f"^{re.escape(self.root)}[{self.contract_months}]\\d{{1,2}}$"

    def is_outright_symbol(self, raw_symbol: str) -> bool:
        """True when ``raw_symbol`` is one of this product's outrights (:attr:`outright_pattern`).
        Spreads such as ``ESZ3-ESH4``, months outside the cycle and other roots (``MESZ3`` is not ES) are not."""
        return re.match(self.outright_pattern, raw_symbol) is not None

    def owns_symbol(self, symbol: str) -> bool:
        """True when a DBN header symbol names this product: its download symbol (``ES.FUT``, ``SPY``), its
        parent (``ES.FUT``) or one of its option parents (``EW1.OPT``), or a raw symbol of its contracts,
        spreads or 0DTE options (``ESZ3``, ``ESZ3-ESH4``, ``EW2F6 C7000``)."""
        if symbol in self.download_symbols:
            return True
        if not self.is_future:
            return symbol == self.root
        if symbol == f"{self.root}.FUT" or (symbol.endswith(".OPT") and symbol[:-4] in self.options_roots):
            return True
        roots = "|".join(re.escape(r) for r in (self.root, *self.options_roots))
        contract = re.compile(f"^(?:{roots})[{MONTH_CODES}]\\d{{1,2}}$")
        return all(contract.match(leg.split(" ")[0]) for leg in symbol.split("-"))

    def round_to_tick(self, price: float) -> float:
        """``price`` rounded to the nearest multiple of :attr:`tick_size` (half away from zero is not
        needed: exchange prices already sit on the grid; this removes float noise)."""
        ticks = round(price / self.tick_size)
        return float(round(ticks * self.tick_size, 10))


def _future(symbol: str, root: str, calendar: str, tick: float, multiplier: float, unit: str, months: str, rth_open: time, rth_close: time, **extra: Any) -> Product:
    return Product(
        symbol=symbol, kind=FUTURE, root=root, dataset="GLBX.MDP3", calendar=calendar, tick_size=tick, multiplier=multiplier,
        price_unit=unit, contract_months=months, rth_open=rth_open, rth_close=rth_close,
        download_symbols=(f"{root}.FUT",), download_stype_in="parent", **extra,
    )


def _etf(symbol: str) -> Product:
    return Product(
        symbol=symbol, kind=EQUITY, root=symbol, dataset="XNAS.ITCH", calendar="XNYS", tick_size=0.01, multiplier=1.0,
        price_unit="USD per share", contract_months="", rth_open=time(9, 30), rth_close=time(16, 0),
        download_symbols=(symbol,), download_stype_in="raw_symbol",
        session_open=time(4, 0), session_close=time(20, 0), session_opens_previous_day=False, unit_label="$",
    )


_QUARTERLY = "HMUZ"
_INDEX_OPEN, _INDEX_CLOSE = time(9, 30), time(16, 0)

#: The shipped product table, by symbol.
PRODUCTS: dict[str, Product] = {
    p.symbol: p
    for p in (
        _future("ES", "ES", "CME_Equity", 0.25, 50.0, "index points", _QUARTERLY, _INDEX_OPEN, _INDEX_CLOSE, options_roots=ES_0DTE_OPTION_ROOTS),
        _future("MES", "MES", "CME_Equity", 0.25, 5.0, "index points", _QUARTERLY, _INDEX_OPEN, _INDEX_CLOSE),
        _future("NQ", "NQ", "CME_Equity", 0.25, 20.0, "index points", _QUARTERLY, _INDEX_OPEN, _INDEX_CLOSE),
        _future("MNQ", "MNQ", "CME_Equity", 0.25, 2.0, "index points", _QUARTERLY, _INDEX_OPEN, _INDEX_CLOSE),
        _future("RTY", "RTY", "CME_Equity", 0.10, 50.0, "index points", _QUARTERLY, _INDEX_OPEN, _INDEX_CLOSE),
        _future("YM", "YM", "CME_Equity", 1.0, 5.0, "index points", _QUARTERLY, _INDEX_OPEN, _INDEX_CLOSE),
        _future("GC", "GC", "CMEGlobex_GC", 0.10, 100.0, "USD per troy ounce", "GJMQVZ", time(8, 20), time(13, 30), unit_label="$/oz"),
        _future("SI", "SI", "CMEGlobex_SI", 0.005, 5000.0, "USD per troy ounce", "HKNUZ", time(8, 25), time(13, 25), unit_label="$/oz"),
        _future("CL", "CL", "CMEGlobex_CL", 0.01, 1000.0, "USD per barrel", MONTH_CODES, time(9, 0), time(14, 30), unit_label="$/bbl"),
        _future("6E", "6E", "CMEGlobex_FX", 0.00005, 125000.0, "USD per euro", _QUARTERLY, time(8, 20), time(15, 0), unit_label="USD/EUR"),
        _etf("SPY"),
        _etf("QQQ"),
    )
}

_FIELDS = {f.name: f for f in dataclasses.fields(Product)}


def _coerce(name: str, default: object, value: object) -> object:
    """A JSON value as the type of the product field ``name`` (times from "HH:MM", lists to tuples)."""
    if isinstance(default, time):
        return time.fromisoformat(str(value))
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list")
        return tuple(str(v) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if isinstance(default, float):
        return float(value)  # type: ignore[arg-type]
    return str(value)


def product_table(overrides: Mapping[str, Mapping[str, object]] | None = None, source: str = "config.json") -> dict[str, Product]:
    """The shipped :data:`PRODUCTS` with ``overrides`` applied.

    ``overrides`` maps a product symbol to field values (JSON types: times as ``"HH:MM"``, tuples as
    lists). A shipped product takes only the fields given; a new symbol must give every field
    without a default (a whole product). Raises ValueError naming ``source``, the product key and the
    reason for an unknown field, a value of the wrong type or an inconsistent product.
    """
    table = dict(PRODUCTS)
    for symbol, values in (overrides or {}).items():
        where = f"{source}: product_table.{symbol}"
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: not a JSON object")
        unknown = sorted(set(values) - set(_FIELDS) - {"symbol"})
        if unknown:
            raise ValueError(f"{where}: unknown product fields {unknown} (known: {sorted(_FIELDS)})")
        base = table.get(symbol)
        try:
            if base is not None:
                table[symbol] = dataclasses.replace(base, **{k: _coerce(k, getattr(base, k), v) for k, v in values.items() if k != "symbol"})
                continue
            missing = sorted(n for n, f in _FIELDS.items() if n != "symbol" and f.default is dataclasses.MISSING and n not in values)
            if missing:
                raise ValueError(f"a new product needs {missing}")
            template = PRODUCTS[DEFAULT_PRODUCT]
            table[symbol] = Product(symbol=symbol, **{k: _coerce(k, getattr(template, k), v) for k, v in values.items() if k != "symbol"})  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    return table


def get_product(symbol: str, table: Mapping[str, Product] | None = None) -> Product:
    """The product ``symbol`` of ``table`` (default: the shipped one), matched case-insensitively.

    Raises UnknownProductError (a KeyError) whose message lists the known symbols."""
    table = PRODUCTS if table is None else table
    by_upper = {k.upper(): v for k, v in table.items()}
    try:
        return by_upper[symbol.upper()]
    except KeyError:
        raise UnknownProductError(f"unknown product {symbol!r}: the product table has {', '.join(sorted(table))}") from None

