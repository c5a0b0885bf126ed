"""Convert QuantConnect Lean minute trade bars (ES, GC futures; SPY) into Databento DBN files, as Databento delivers them.

``--product ES`` (the default) and ``--product GC`` convert futures as described below (GC: Lean's
``Data/future/comex/minute/gc``, COMEX gold, prices in USD per troy ounce, every listed month);
``--product SPY`` converts Lean's ``Data/equity/usa/minute/spy`` (see :func:`convert_equity_day`).

Input: Lean's ``Data/future/cme/minute/es/YYYYMMDD_trade.zip`` (Apache-2.0, QuantConnect Corporation).
Each zip holds one CSV per contract, ``YYYYMMDD_es_minute_trade_YYYYMM.csv``, whose rows are
``ms_since_midnight_UTC_of_file_date,open,high,low,close,volume``: a 1-minute trade bar opening at
that instant, prices in index points. Quote and open-interest zips are not read.

Output, per UTC date D (a Databento daily split of a parent-symbol ``ES.FUT`` request):

* ``glbx-mdp3-D.ohlcv-1m.dbn.zst``: DBN v3, zstd; one ``OHLCVMsg`` (rtype OHLCV_1M) per CSV row,
  all contracts of the day sorted by ``(ts_event, instrument_id)``; ``ts_event`` is the bar's open
  in ns since the UNIX epoch (UTC); prices are fixed-point int64 at 1e-9 (1676.5 -> 1676500000000).
* ``glbx-mdp3-D.definition.dbn.zst``: one ``InstrumentDefMsg`` per contract present that day, with
  the field values Databento publishes for CME ES outrights (copied from a real Databento ESH1
  definition where they do not depend on the contract).

Both carry metadata dataset ``GLBX.MDP3``, stype_in ``parent``, symbols ``["ES.FUT"]``, stype_out
``instrument_id``, ``[start, end)`` = ``[D 00:00, D+1 00:00)`` UTC and one symbology mapping per
contract (raw symbol such as ``ESZ3`` -> instrument_id over ``[D, D+1)``).

instrument_id is synthetic (Lean does not carry CME security ids): ``YYYYMM`` of the contract month,
e.g. ESZ3 (December 2013) -> 201312. It is stable across days, unique across decades (ESZ3 of 2013
and of 2023 differ) and orders contracts by expiry. It is NOT a real CME security id.

Usage: ``python scripts/lean_to_dbn.py [--lean-dir DIR] [--out DIR] [--dates YYYYMMDD ...]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import databento_dbn as dbn
import pandas_market_calendars as mcal
from databento import Publisher
from databento_dbn import v3  # record classes of DBN v3, matching the pinned metadata version

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LEAN_DIR = REPO_ROOT.parent / "shared" / "data" / "lean" / "Data" / "future" / "cme" / "minute" / "es"
DEFAULT_OUT_DIR = REPO_ROOT / "data" / "sample" / "raw" / "GLBX.MDP3"

DATASET = "GLBX.MDP3"
PARENT_SYMBOL = "ES.FUT"
#: Pinned (with the ``v3`` record classes) rather than taken from ``dbn.DBN_VERSION`` so a newer
#: databento_dbn cannot silently change the committed files' format.
DBN_VERSION = 3
PUBLISHER_ID = Publisher.GLBX_MDP3_GLBX.to_int()
PRICE_SCALE = dbn.FIXED_PRICE_SCALE  # 1e9: DBN fixed-point prices
MONTH_CODES = "FGHJKMNQUVXZ"
NY = ZoneInfo("America/New_York")
NS_PER_MS = 1_000_000
MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
#: CME lists five quarterly ES contracts (2013-2020 era): a new one is listed when the front expires,
#: so a contract becomes active at the expiration of the contract 15 months before it. This matches
#: Databento's ESH1 definition (activation 2019-12-20 14:30 UTC = ESZ9's expiration).
LISTING_LEAD_MONTHS = 15
#: ES expires at the open of regular trading (09:30 ET) on the third Friday of the contract month.
EXPIRATION_WALL_TIME = time(9, 30)

TRADE_ZIP_RE = re.compile(r"^(\d{8})_trade\.zip$")
CSV_NAME_RE = re.compile(r"^(\d{8})_es_minute_trade_(\d{4})(\d{2})\.csv$")
LEAN_DATA = REPO_ROOT.parent / "shared" / "data" / "lean" / "Data"


@dataclass(frozen=True)
class FuturesSource:
    """What differs between the Lean futures a converter run reads (ES, GC): the root and the CME terms
    its definitions carry. Prices are decimal, times ms since midnight UTC of the file's date."""

    root: str
    lean_dir: Path
    parent_symbol: str
    exchange: str  # MIC of the exchange (XCME, XCEC for COMEX)
    min_price_increment: int  # fixed-point 1e-9
    multiplier: int  # unit_of_measure_qty, in units of the price (ES $50 x index; GC 100 troy ounces)
    unit_of_measure: str
    underlying_product: int  # CME product complex (5 equity, 12 metals)
    csv_name: re.Pattern

    def __post_init__(self) -> None:
        if not self.csv_name.pattern:
            raise ValueError("csv_name must be a pattern")


ES_SOURCE = FuturesSource(
    "ES", DEFAULT_LEAN_DIR, "ES.FUT", "XCME", 250_000_000, 50, "IPNT", 5, CSV_NAME_RE,
)
#: COMEX gold: tick 0.10 USD per troy ounce, 100 troy ounces (CME Group "Gold Futures" contract specs).
GC_SOURCE = FuturesSource(
    "GC", LEAN_DATA / "future" / "comex" / "minute" / "gc", "GC.FUT", "XCEC", 100_000_000, 100, "OZTR", 12,
    re.compile(r"^(\d{8})_gc_minute_trade_(\d{4})(\d{2})\.csv$"),
)
FUTURES_SOURCES = {"ES": ES_SOURCE, "GC": GC_SOURCE}
#: The current source of a run (ES unless ``--product`` says otherwise); module state because the
#: ES helpers below predate the other products and are what the committed sample was built with.
_SOURCE: list[FuturesSource] = [ES_SOURCE]


class LeanFormatError(ValueError):
    """A Lean input file is missing, misnamed or holds a malformed row (the message names which)."""


@dataclass(frozen=True, order=True)
class Contract:
    """One ES quarterly futures contract, identified by its contract month."""

    year: int
    month: int
    root: str = "ES"

    @property
    def raw_symbol(self) -> str:
        """CME Globex symbol with a one-digit year, e.g. ``ESZ3`` for December 2013."""
        return f"{self.root}{MONTH_CODES[self.month - 1]}{self.year % 10}"

    @property
    def instrument_id(self) -> int:
        """Synthetic, stable instrument id ``YYYYMM`` (not a real CME security id)."""
        return self.year * 100 + self.month


@dataclass(frozen=True)
class Bar:
    """One 1-minute trade bar: ``ts_event`` in ns UTC, prices fixed-point 1e-9, volume in contracts."""

    ts_event: int
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(frozen=True)
class MappingInterval:
    """A symbology interval ``[start_date, end_date)`` (the shape databento_dbn's Metadata expects)."""

    start_date: date
    end_date: date
    symbol: str


@dataclass(frozen=True)
class SymbolMapping:
    """All intervals of one raw symbol (the shape databento_dbn's Metadata expects)."""

    raw_symbol: str
    intervals: list[MappingInterval]


# ---------------------------------------------------------------------------------------------
# Reading Lean
# ---------------------------------------------------------------------------------------------


def utc_midnight_ns(day: date) -> int:
    """Nanoseconds since the UNIX epoch of 00:00 UTC on ``day``."""
    return int(datetime.combine(day, time(0), tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def parse_price(text: str, where: str) -> int:
    """Parse a decimal price in index points to DBN fixed-point (1e-9) without float rounding.

    Raises LeanFormatError (naming ``where``) when ``text`` is not a positive decimal or has more
    than nine decimal places.
    """
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise LeanFormatError(f"{where}: price {text!r} is not a number") from None
    scaled = value * PRICE_SCALE
    if not value.is_finite() or value <= 0 or scaled != scaled.to_integral_value():
        raise LeanFormatError(f"{where}: price {text!r} is not a positive decimal with at most 9 places")
    return int(scaled)


def parse_bar_row(row: Sequence[str], day_start_ns: int, where: str) -> Bar:
    """Parse one Lean CSV row ``ms,open,high,low,close,volume`` of the file dated ``day_start_ns``.

    Raises LeanFormatError (naming ``where``) for a wrong field count, a time outside the UTC day or
    not on a minute, a non-integer or negative volume, or a bar whose high/low do not bound it.
    """
    if len(row) != 6:
        raise LeanFormatError(f"{where}: expected 6 fields (ms,open,high,low,close,volume), got {len(row)}")
    try:
        ms = int(row[0])
        volume = int(row[5])
    except ValueError:
        raise LeanFormatError(f"{where}: time {row[0]!r} or volume {row[5]!r} is not an integer") from None
    if not 0 <= ms < MS_PER_DAY or ms % MS_PER_MINUTE:
        raise LeanFormatError(f"{where}: time {ms} ms is not a whole minute within the UTC day")
    if volume < 0:
        raise LeanFormatError(f"{where}: negative volume {volume}")
    o, h, l, c = (parse_price(v, where) for v in row[1:5])
    if not (l <= min(o, c) and h >= max(o, c)):
        raise LeanFormatError(f"{where}: high/low do not bound open/close: {','.join(row[1:5])}")
    return Bar(day_start_ns + ms * NS_PER_MS, o, h, l, c, volume)


def parse_contract_csv(name: str, text: str, day: date, where: str) -> tuple[Contract, list[Bar]]:
    """Parse one contract's CSV (member ``name`` of a zip dated ``day``) into its contract and bars.

    Raises LeanFormatError (naming ``where`` and the line) for a misnamed member, a bad row,
    an empty file, or bars not strictly increasing in time.
    """
    source = _SOURCE[0]
    match = source.csv_name.match(name)
    if not match:
        raise LeanFormatError(f"{where}: member name is not YYYYMMDD_{source.root.lower()}_minute_trade_YYYYMM.csv")
    if match.group(1) != day.strftime("%Y%m%d"):
        raise LeanFormatError(f"{where}: member date {match.group(1)} differs from the zip's {day:%Y%m%d}")
    contract = Contract(int(match.group(2)), int(match.group(3)), source.root)
    if not 1 <= contract.month <= 12:
        raise LeanFormatError(f"{where}: contract month {contract.month} is not 1-12")
    day_start = utc_midnight_ns(day)
    bars = [
        parse_bar_row(row, day_start, f"{where} line {n}")
        for n, row in enumerate(csv.reader(io.StringIO(text)), start=1)
        if row  # Lean files may end with a blank line
    ]
    if not bars:
        raise LeanFormatError(f"{where}: no bars")
    for n, (prev, cur) in enumerate(zip(bars, bars[1:]), start=2):
        if cur.ts_event <= prev.ts_event:
            raise LeanFormatError(f"{where} line {n}: bar time does not increase (duplicate or out of order)")
    return contract, bars


def read_trade_zip(path: Path) -> tuple[date, dict[Contract, list[Bar]]]:
    """Read a Lean ``YYYYMMDD_trade.zip``: its UTC date and the bars of every contract in it.

    Raises LeanFormatError naming the file when it is missing, misnamed, not a zip, empty, holds a
    contract twice or has a malformed CSV.
    """
    match = TRADE_ZIP_RE.match(path.name)
    if not match:
        raise LeanFormatError(f"{path}: file name is not YYYYMMDD_trade.zip")
    try:
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        raise LeanFormatError(f"{path}: {match.group(1)} is not a calendar date") from None
    if not path.is_file():
        raise LeanFormatError(f"{path}: no such file")
    bars_by_contract: dict[Contract, list[Bar]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                text = zf.read(name).decode("ascii")
                contract, bars = parse_contract_csv(name, text, day, f"{path}:{name}")
                if contract in bars_by_contract:
                    raise LeanFormatError(f"{path}:{name}: contract {contract.raw_symbol} appears twice")
                bars_by_contract[contract] = bars
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise LeanFormatError(f"{path}: unreadable: {exc}") from None
    if not bars_by_contract:
        raise LeanFormatError(f"{path}: holds no contract CSV")
    return day, bars_by_contract


def find_trade_zips(lean_dir: Path, dates: Iterable[str] | None = None) -> list[Path]:
    """The ``YYYYMMDD_trade.zip`` files of ``lean_dir`` (only ``dates`` when given), oldest first.

    Raises LeanFormatError when the directory or a requested date's zip does not exist, or when
    the directory holds no trade zip.
    """
    if not lean_dir.is_dir():
        raise LeanFormatError(f"{lean_dir}: Lean minute directory does not exist")
    if dates is not None:
        paths = [lean_dir / f"{d}_trade.zip" for d in dates]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise LeanFormatError(f"no such Lean trade zip: {', '.join(missing)}")
        return sorted(paths)
    paths = sorted(p for p in lean_dir.iterdir() if TRADE_ZIP_RE.match(p.name))
    if not paths:
        raise LeanFormatError(f"{lean_dir}: holds no YYYYMMDD_trade.zip")
    return paths


# ---------------------------------------------------------------------------------------------
# Contract calendar
# ---------------------------------------------------------------------------------------------


def third_friday(year: int, month: int) -> date:
    """The third Friday of ``month`` in ``year`` (CME equity index futures expiry day)."""
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def third_last_business_day(year: int, month: int) -> date:
    """The third last COMEX business day of ``month`` (pandas_market_calendars' CMEGlobex_GC sessions)."""
    first = date(year, month, 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    days = mcal.get_calendar("CMEGlobex_GC").valid_days(first.isoformat(), last.isoformat())
    return days[-3].date()


def expiration_ns(contract: Contract) -> int:
    """Expiration in ns UTC. ES: 09:30 America/New_York on the third Friday of the contract month
    (the UTC hour follows DST: 13:30 UTC in March/June/September, 14:30 UTC in December). GC: 12:30
    America/Chicago (13:30 New York) on the third last business day of the contract month (CME Group,
    "Gold Futures" contract specs: termination of trading).
    """
    if contract.root == "GC":
        wall = datetime.combine(third_last_business_day(contract.year, contract.month), time(13, 30), tzinfo=NY)
    else:
        wall = datetime.combine(third_friday(contract.year, contract.month), EXPIRATION_WALL_TIME, tzinfo=NY)
    return int(wall.timestamp()) * 1_000_000_000


def activation_ns(contract: Contract) -> int:
    """Listing time in ns UTC: the expiration of the contract ``LISTING_LEAD_MONTHS`` earlier."""
    months = contract.year * 12 + (contract.month - 1) - LISTING_LEAD_MONTHS
    return expiration_ns(Contract(months // 12, months % 12 + 1, contract.root))


# ---------------------------------------------------------------------------------------------
# Building DBN
# ---------------------------------------------------------------------------------------------


def ohlcv_records(bars_by_contract: dict[Contract, list[Bar]]) -> list[v3.OHLCVMsg]:
    """OHLCV-1m records of every contract, sorted by ``(ts_event, instrument_id)`` like Databento."""
    keyed = [(bar.ts_event, c.instrument_id, bar) for c, bars in bars_by_contract.items() for bar in bars]
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [
        v3.OHLCVMsg(
            rtype=dbn.RType.OHLCV_1M.value,
            publisher_id=PUBLISHER_ID,
            instrument_id=iid,
            ts_event=ts,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
        )
        for ts, iid, bar in keyed
    ]


def definition_record(contract: Contract, ts_ns: int) -> v3.InstrumentDefMsg:
    """The CME outright definition of ``contract`` as Databento publishes it, stamped ``ts_ns``.

    ES: contract-independent values (tick, multiplier, display factor 0.01, market depth, segment...)
    are those of Databento's real ESH1 definition; daily price limits are unknown here and left
    undefined. GC: the tick, multiplier, unit, exchange and product complex are COMEX gold's
    (:data:`GC_SOURCE`); the other fields keep the ES values (synthetic, see data/sample/GC/NOTICE).
    """
    if contract.root != "ES":
        source = FUTURES_SOURCES[contract.root]
        es = definition_record(Contract(contract.year, contract.month), ts_ns)
        fields = {name: getattr(es, name) for name in _DEFINITION_FIELDS}
        fields.update(
            instrument_id=contract.instrument_id, raw_symbol=contract.raw_symbol, expiration=expiration_ns(contract),
            activation=activation_ns(contract), min_price_increment=source.min_price_increment,
            unit_of_measure_qty=source.multiplier * PRICE_SCALE, group=source.root, asset=source.root,
            exchange=source.exchange, unit_of_measure=source.unit_of_measure, underlying_product=source.underlying_product,
            display_factor=PRICE_SCALE, min_price_increment_amount=source.min_price_increment * source.multiplier // 10,
        )
        return v3.InstrumentDefMsg(**fields)
    return v3.InstrumentDefMsg(
        publisher_id=PUBLISHER_ID,
        instrument_id=contract.instrument_id,
        ts_event=ts_ns,
        ts_recv=ts_ns,
        raw_symbol=contract.raw_symbol,
        security_update_action=dbn.SecurityUpdateAction.ADD,
        instrument_class=dbn.InstrumentClass.FUTURE,
        min_price_increment=250_000_000,  # 0.25 index points
        # CME sends ES prices in 1/100 points, so Databento reports display_factor 0.01 for ES.
        display_factor=10_000_000,
        expiration=expiration_ns(contract),
        activation=activation_ns(contract),
        max_price_variation=6_000_000_000,
        unit_of_measure_qty=50 * PRICE_SCALE,  # the $50 multiplier, fixed-point like prices
        min_price_increment_amount=125_000_000,  # as Databento reports it (12.50 USD x 0.01)
        inst_attrib_value=270351,
        market_depth_implied=0,
        market_depth=10,
        market_segment_id=64,
        max_trade_vol=3000,
        min_lot_size=0,
        min_lot_size_block=0,
        min_lot_size_round_lot=0,
        min_trade_vol=1,
        appl_id=310,
        maturity_year=contract.year,
        maturity_month=contract.month,
        channel_id=0,
        currency="USD",
        group="ES",
        exchange="XCME",
        asset="ES",
        cfi="FFIXSX",
        security_type="FUT",
        unit_of_measure="IPNT",
        underlying="",
        strike_price=dbn.UNDEF_PRICE,
        match_algorithm=dbn.MatchAlgorithm.FIFO,
        underlying_product=5,  # CME product complex 5 = equity
        user_defined_instrument=dbn.UserDefinedInstrument.NO,
    )


#: The InstrumentDefMsg fields the converter sets (a GC definition copies the ES ones, then changes some).
_DEFINITION_FIELDS = (
    "publisher_id", "instrument_id", "ts_event", "ts_recv", "raw_symbol", "security_update_action", "instrument_class",
    "min_price_increment", "display_factor", "expiration", "activation", "max_price_variation", "unit_of_measure_qty",
    "min_price_increment_amount", "inst_attrib_value", "market_depth_implied", "market_depth", "market_segment_id",
    "max_trade_vol", "min_lot_size", "min_lot_size_block", "min_lot_size_round_lot", "min_trade_vol", "appl_id",
    "maturity_year", "maturity_month", "channel_id", "currency", "group", "exchange", "asset", "cfi", "security_type",
    "unit_of_measure", "underlying", "strike_price", "match_algorithm", "underlying_product", "user_defined_instrument",
)


def definition_records(contracts: Iterable[Contract], day: date) -> list[v3.InstrumentDefMsg]:
    """One definition per contract, stamped 00:00 UTC of ``day``, ordered by instrument_id."""
    ts = utc_midnight_ns(day)
    return [definition_record(c, ts) for c in sorted(contracts, key=lambda c: c.instrument_id)]


def build_metadata(schema: dbn.Schema, day: date, contracts: Iterable[Contract]) -> dbn.Metadata:
    """DBN v3 metadata of a daily ``ES.FUT`` parent split for UTC ``day`` with per-contract mappings."""
    next_day = day + timedelta(days=1)
    mappings = [
        SymbolMapping(c.raw_symbol, [MappingInterval(day, next_day, str(c.instrument_id))])
        for c in sorted(contracts, key=lambda c: c.instrument_id)
    ]
    return dbn.Metadata(
        dataset=DATASET,
        start=utc_midnight_ns(day),
        end=utc_midnight_ns(next_day),
        stype_in=dbn.SType.PARENT,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=[_SOURCE[0].parent_symbol],
        partial=[],
        not_found=[],
        mappings=mappings,
        ts_out=False,
        version=DBN_VERSION,
    )


def write_dbn_zst(path: Path, metadata: dbn.Metadata, records: Sequence[object]) -> None:
    """Write ``metadata`` and ``records`` as zstd-compressed DBN to ``path`` atomically.

    The file is first written beside ``path`` and then renamed over it, so readers never see a
    partial file. Raises databento_dbn.DBNError if encoding fails (the temp file is removed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            # DBN -> DBN transcoding is databento_dbn's own encoder: it adds the zstd framing.
            transcoder = dbn.Transcoder(out, dbn.Encoding.DBN, dbn.Compression.ZSTD)
            transcoder.write(metadata.encode())
            for record in records:
                transcoder.write(bytes(record))
            transcoder.finish()
        # mkstemp creates 0600; published data files should be world-readable like any other.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_paths(out_dir: Path, day: date) -> tuple[Path, Path]:
    """Databento's daily split names: ``glbx-mdp3-YYYYMMDD.{ohlcv-1m,definition}.dbn.zst``."""
    stem = f"glbx-mdp3-{day:%Y%m%d}"
    return out_dir / f"{stem}.ohlcv-1m.dbn.zst", out_dir / f"{stem}.definition.dbn.zst"


def convert_day(zip_path: Path, out_dir: Path) -> tuple[Path, Path, int]:
    """Convert one Lean trade zip to its OHLCV-1m and definition DBN files in ``out_dir``.

    Returns ``(ohlcv_path, definition_path, bar_count)``. Raises LeanFormatError on bad input.
    """
    day, bars_by_contract = read_trade_zip(zip_path)
    ohlcv_path, def_path = output_paths(out_dir, day)
    contracts = list(bars_by_contract)
    ohlcv_meta = build_metadata(dbn.Schema.OHLCV_1M, day, contracts)
    write_dbn_zst(ohlcv_path, ohlcv_meta, ohlcv_records(bars_by_contract))
    def_meta = build_metadata(dbn.Schema.DEFINITION, day, contracts)
    write_dbn_zst(def_path, def_meta, definition_records(contracts, day))
    return ohlcv_path, def_path, sum(len(b) for b in bars_by_contract.values())


# ---------------------------------------------------------------------------------------------
# Equities (SPY): Lean's extended-hours minute bars -> Databento XNAS.ITCH ohlcv-1m
# ---------------------------------------------------------------------------------------------

EQUITY_DATASET = "XNAS.ITCH"
EQUITY_PUBLISHER_ID = Publisher.XNAS_ITCH_XNAS.to_int()
#: Lean equity prices are integers in 1/10,000 USD.
EQUITY_PRICE_DIVISOR = 10_000
#: Synthetic instrument ids (Lean carries none; Databento's XNAS.ITCH ids are not stable across years).
EQUITY_INSTRUMENT_IDS = {"SPY": 15144, "QQQ": 13340}


def ny_midnight_ns(day: date) -> int:
    """Nanoseconds since the UNIX epoch of 00:00 America/New_York on ``day``."""
    return int(datetime.combine(day, time(0), tzinfo=NY).timestamp()) * 1_000_000_000


def read_equity_zip(path: Path, ticker: str) -> tuple[date, list[Bar]]:
    """Read a Lean equity ``YYYYMMDD_trade.zip``: its New York date and its 1-minute bars.

    Rows are ``ms since 00:00 New York,open,high,low,close,volume`` with prices in 1/10,000 USD and
    volume in shares (04:00-20:00 ET: pre-market and after-hours included).
    Raises LeanFormatError naming the file (and line) for a missing or misnamed file or a bad row.
    """
    match = TRADE_ZIP_RE.match(path.name)
    if not match or not path.is_file():
        raise LeanFormatError(f"{path}: not an existing YYYYMMDD_trade.zip")
    day = datetime.strptime(match.group(1), "%Y%m%d").date()
    member = f"{match.group(1)}_{ticker.lower()}_minute_trade.csv"
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(member).decode("ascii")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise LeanFormatError(f"{path}: no readable {member} ({exc})") from None
    start = ny_midnight_ns(day)
    bars = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row:
            continue
        where = f"{path}:{member} line {n}"
        if len(row) != 6 or not all(v.strip().lstrip("-").isdigit() for v in row):
            raise LeanFormatError(f"{where}: expected 6 integers (ms,open,high,low,close,volume)")
        ms, o, h, l, c, volume = (int(v) for v in row)
        if not 0 <= ms < MS_PER_DAY or ms % MS_PER_MINUTE or volume < 0 or min(o, h, l, c) <= 0 or not (l <= min(o, c) and h >= max(o, c)):
            raise LeanFormatError(f"{where}: not a valid 1-minute bar: {','.join(row)}")
        scale = PRICE_SCALE // EQUITY_PRICE_DIVISOR
        bars.append(Bar(start + ms * NS_PER_MS, o * scale, h * scale, l * scale, c * scale, volume))
    if not bars:
        raise LeanFormatError(f"{path}:{member}: no bars")
    if any(b.ts_event <= a.ts_event for a, b in zip(bars, bars[1:])):
        raise LeanFormatError(f"{path}:{member}: bar times do not increase")
    return day, bars


def convert_equity_day(zip_path: Path, out_dir: Path, ticker: str, source_ticker: str | None = None) -> tuple[Path, int]:
    """Convert one Lean equity trade zip to ``xnas-itch-YYYYMMDD.ohlcv-1m.dbn.zst`` in ``out_dir``.

    The file is DBN v3, zstd, dataset ``XNAS.ITCH``, stype_in ``raw_symbol``, symbols ``[ticker]``,
    ``[start, end)`` the New York calendar day in UTC, one mapping ``ticker`` -> its synthetic
    instrument id. ``source_ticker``: read that ticker's member of the zip instead (tests label SPY's
    bars as another ETF to exercise it; such files are not that ETF's data). Returns ``(path,
    bar_count)``; raises LeanFormatError on bad input.
    """
    day, bars = read_equity_zip(zip_path, source_ticker or ticker)
    iid = EQUITY_INSTRUMENT_IDS[ticker]
    next_day = day + timedelta(days=1)
    metadata = dbn.Metadata(
        dataset=EQUITY_DATASET, start=ny_midnight_ns(day), end=ny_midnight_ns(next_day), stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.OHLCV_1M, symbols=[ticker], partial=[], not_found=[],
        mappings=[SymbolMapping(ticker, [MappingInterval(day, next_day, str(iid))])], ts_out=False, version=DBN_VERSION,
    )
    records = [
        v3.OHLCVMsg(rtype=dbn.RType.OHLCV_1M.value, publisher_id=EQUITY_PUBLISHER_ID, instrument_id=iid, ts_event=b.ts_event,
                    open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
        for b in bars
    ]
    path = out_dir / f"xnas-itch-{day:%Y%m%d}.ohlcv-1m.dbn.zst"
    write_dbn_zst(path, metadata, records)
    return path, len(bars)


#: Where each product's Lean bars are read from and its DBN written to, by default.
DEFAULT_DIRS = {
    "ES": (DEFAULT_LEAN_DIR, DEFAULT_OUT_DIR),
    "GC": (GC_SOURCE.lean_dir, REPO_ROOT / "data" / "sample" / "GC" / "raw" / "GLBX.MDP3"),
    "SPY": (LEAN_DATA / "equity" / "usa" / "minute" / "spy", REPO_ROOT / "data" / "sample" / "SPY" / "raw" / EQUITY_DATASET),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments (see ``--help``)."""
    parser = argparse.ArgumentParser(
        description="Convert Lean minute trade bars (YYYYMMDD_trade.zip) into Databento DBN files (DBN v3, zstd): "
        "ES and GC futures to GLBX.MDP3 ohlcv-1m and definition files, one pair per UTC date; SPY to an "
        "XNAS.ITCH ohlcv-1m file per New York date (pre-market and after-hours included).",
    )
    parser.add_argument("--product", choices=sorted(DEFAULT_DIRS), default="ES", help="which Lean product to convert (default: %(default)s)")
    parser.add_argument(
        "--lean-dir", type=Path, default=None,
        help="Lean directory of the product's minute zips (default: ../shared/data/lean/Data/<its folder>)",
    )
    parser.add_argument(
        "--out", type=Path, default=None,
        help="output directory for the .dbn.zst files (default: data/sample/raw/GLBX.MDP3 for ES, data/sample/<product>/raw/<dataset> otherwise)",
    )
    parser.add_argument(
        "--dates", nargs="+", metavar="YYYYMMDD",
        help="convert only these UTC dates (default: every *_trade.zip in --lean-dir)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the conversion; returns the process exit code (2 on bad input, with the reason on stderr)."""
    args = parse_args(argv)
    lean_dir = args.lean_dir or DEFAULT_DIRS[args.product][0]
    out = args.out or DEFAULT_DIRS[args.product][1]
    _SOURCE[0] = FUTURES_SOURCES.get(args.product, ES_SOURCE)
    try:
        for zip_path in find_trade_zips(lean_dir, args.dates):
            if args.product in FUTURES_SOURCES:
                ohlcv_path, def_path, n_bars = convert_day(zip_path, out)
                print(f"{zip_path.name}: {n_bars} bars -> {ohlcv_path.name}, {def_path.name}")
            else:
                path, n_bars = convert_equity_day(zip_path, out, args.product)
                print(f"{zip_path.name}: {n_bars} bars -> {path.name}")
    except LeanFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        _SOURCE[0] = ES_SOURCE
    return 0


if __name__ == "__main__":
    sys.exit(main())
