"""Which order-flow and options assets have raw data to read for a session, and why not when they do not.

A session whose raw files hold none of an asset's DBN schemas (a decade of 1-minute bars, a product
without 0DTE options) does not get that asset's partition: the body writes nothing, ``spymaster
backfill`` leaves the asset out of a range none of whose sessions has the data, and the raw-files
sensor leaves it out of the session's run. Either way an observation says why (``"no trades, tbbo,
mbp-1, mbp-10 or mbo in raw/ for 2025-03-04"``). Readers already treat an absent partition as no
data (``silver.assets.order_flow_inputs``, ``options_inputs``), so silver and gold run without the
block, as they did with the empty tables. The asset is built once such a file arrives (the sensor
sees the new file; a backfill re-plans the session, whose own assets are then incomplete).

The schema lists are those the bronze ingest tries (``bronze.market_records``, ``bronze.options_ingest``).
A raw file that cannot be read counts as present, so the asset runs and names it.
"""

from __future__ import annotations

from datetime import date, timedelta

from spymaster_core.config import SpymasterConfig
from spymaster_resources.raw_files import BadDbnFile, RawCatalog

from .bronze.market_records import BBO_SOURCES, MBP10_SOURCES, TRADE_SOURCES
from .bronze.options_ingest import OPEN_INTEREST_LOOKBACK_DAYS, OPTION_BBO_SOURCES, OPTION_TRADE_SOURCES
from .sessions import session_bounds_utc

#: Options data of any kind: without quotes, trades or statistics there is no dealer gamma to compute.
OPTION_SOURCES: tuple[str, ...] = tuple(dict.fromkeys((*OPTION_TRADE_SOURCES, *OPTION_BBO_SOURCES, "statistics")))

#: Bronze tables and the raw schemas they read (any one of them suffices).
BRONZE_SOURCES: dict[str, tuple[str, ...]] = {
    "bronze_futures_trades": TRADE_SOURCES,
    "bronze_futures_bbo": BBO_SOURCES,
    "bronze_futures_mbp10": MBP10_SOURCES,
}
OPTIONS_TABLES: tuple[str, ...] = ("bronze_options_definitions", "bronze_options_open_interest", "bronze_options_bbo", "bronze_options_trades")
#: Silver tables built only from bronze tables above: absent when all of theirs are.
SILVER_INPUTS: dict[str, tuple[str, ...]] = {
    "silver_book_1s": ("bronze_futures_mbp10", "bronze_futures_bbo"),
    "silver_depth_flow_1m": ("bronze_futures_mbp10",),
}
#: Every asset that may be absent for a session.
OPTIONAL_ASSETS: tuple[str, ...] = (*BRONZE_SOURCES, *OPTIONS_TABLES, *SILVER_INPUTS)


def _covered(catalog: RawCatalog, schemas: tuple[str, ...], start, end) -> bool:
    """True when a file of one of ``schemas`` has records in [start, end), or an unreadable file may."""
    for problem in catalog.problems():
        if not isinstance(problem, BadDbnFile) or any(problem.covers(schema, start, end) for schema in schemas):
            return True
    return any(info.overlaps(start, end) for schema in schemas for info in catalog.files(schema))


def absent_assets(catalog: RawCatalog, day: date, config: SpymasterConfig) -> dict[str, str]:
    """Asset name -> why it has nothing to read for session ``day``, for the assets of :data:`OPTIONAL_ASSETS`
    whose raw schemas no file of ``catalog`` covers in the session (options: from
    ``OPEN_INTEREST_LOOKBACK_DAYS`` before the open, as the open interest looks back). Empty when all have data.
    """
    start, end = session_bounds_utc(day, config)
    out: dict[str, str] = {}
    for table, schemas in BRONZE_SOURCES.items():
        if not _covered(catalog, schemas, start, end):
            out[table] = f"no {_listing(schemas)} in raw/ for {day}"
    if not config.spec.options_roots:
        reason = f"{config.product} has no 0DTE options configured (product_table options_roots)"
    elif not _covered(catalog, OPTION_SOURCES, start - timedelta(days=OPEN_INTEREST_LOOKBACK_DAYS), end):
        reason = f"no options quotes, trades or statistics in raw/ for {day}"
    else:
        reason = ""
    if reason:
        out.update({table: reason for table in OPTIONS_TABLES})
    for table, inputs in SILVER_INPUTS.items():
        if all(name in out for name in inputs):
            out[table] = "; ".join(dict.fromkeys(out[name] for name in inputs))
    return out


def _listing(schemas: tuple[str, ...]) -> str:
    return schemas[0] if len(schemas) == 1 else f"{', '.join(schemas[:-1])} or {schemas[-1]}"


def absent_everywhere(absent: dict[date, dict[str, str]], days: list[date]) -> dict[str, str]:
    """The assets no session of ``days`` has raw data for (``absent``: per session, as :func:`absent_assets`),
    with the reason of the range's first session (the sessions' reasons differ only by their date)."""
    if not days:
        return {}
    names = set.intersection(*(set(absent.get(d, {})) for d in days))
    first = days[0].isoformat()
    span = first if len(days) == 1 else f"{first} .. {days[-1].isoformat()}"
    return {name: absent[days[0]][name].replace(first, span) for name in sorted(names)}


def absent_observation(product: str, name: str, reason: str, partition_key: str | None = None, span: str | None = None, **metadata):
    """The Dagster observation of asset ``name`` of ``product`` saying why it is not materialized: for
    one partition (``partition_key``) or a range (``span``, e.g. "2014-01-02 .. 2014-12-31"), with
    the reason and ``metadata`` in its metadata."""
    from dagster import AssetKey, AssetObservation

    from spymaster_core.products import asset_key_prefix

    return AssetObservation(
        asset_key=AssetKey([*asset_key_prefix(product), name]),
        partition=partition_key,
        description=f"not materialized{f' for {span}' if span else ''}: {reason}",
        metadata={"absent": reason, **metadata},
    )


def absent_partition(context, spymaster, name: str):
    """For an optional asset's body: a MaterializeResult saying why session ``context.partition_key`` has
    nothing to read (nothing is written), or None when the raw files hold its data. The lake then has
    no partition of ``name`` for the session, whichever way it was built."""
    from dagster import MaterializeResult

    from .partitions import session_of_partition_key

    day = session_of_partition_key(context.partition_key)
    reason = absent_assets(spymaster.catalog, day, spymaster.config).get(name)
    if reason is None:
        return None
    context.log.info(f"{name} {day}: not materialized: {reason}")
    return MaterializeResult(metadata={"absent": reason})
