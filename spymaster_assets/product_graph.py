"""One asset graph, every product: the session assets, their checks and a session job per product.

The graph is written once (the tier modules' ``@session_asset`` bodies); each product of the product
table gets a copy whose asset keys carry its prefix (``gc/silver_bars``; ES, the legacy product,
keeps unprefixed keys: ``spymaster_core.products.asset_key_prefix``) and whose groups are
``<prefix>_<tier>`` (``gc_bronze``, ``gc_silver``, ``gc_gold``, ``gc_reports``), so the lineage of one
product reads as one graph and a data engineer selects one product's range in the UI. Every copy
shares the one ``trading_day_partitions`` and the single-run backfill policy, so a product's range
backfill stays one run (DESIGN.md "Products": why not a MultiPartitionsDefinition). A body learns its
product from its asset key (``session_range.product_of_key``) and runs with the resource serving
that product: its configuration, lake (``lake/product=<SYMBOL>/``) and raw files. History never
mixes products: each product's normalization, index, model, blend and evaluation read its own lake.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from dagster import AssetKey, AssetSelection, AssetsDefinition, define_asset_job, in_process_executor, load_assets_from_modules, map_asset_specs

from spymaster_core.config import SpymasterConfig
from spymaster_core.products import LEGACY_PRODUCT, PRODUCTS, asset_key_prefix, get_product

from .bronze import assets as bronze_assets
from .bronze import options_assets as bronze_options_assets
from .charts import assets as chart_assets
from .checks.asset_checks import partition_checks
from .gold import assets as gold_assets
from .silver import assets as silver_assets

#: The modules whose assets make up one product's session graph, bronze to the chart.
SESSION_ASSET_MODULES = [bronze_assets, bronze_options_assets, silver_assets, gold_assets, chart_assets]
#: The tier groups of the legacy product (ES); another product's are ``<prefix>_<tier>``.
TIER_GROUPS = ("bronze", "silver", "gold", "reports")


def group_name(symbol: str, tier: str) -> str:
    """The Dagster group of product ``symbol``'s assets of ``tier`` (``silver`` for ES, ``gc_silver`` for GC)."""
    prefix = asset_key_prefix(symbol)
    return f"{prefix[0]}_{tier}" if prefix else tier


@lru_cache(maxsize=None)
def _legacy_assets() -> tuple[AssetsDefinition, ...]:
    return tuple(a for a in load_assets_from_modules(SESSION_ASSET_MODULES) if isinstance(a, AssetsDefinition))


@lru_cache(maxsize=None)
def product_assets(symbol: str) -> tuple[AssetsDefinition, ...]:
    """Product ``symbol``'s session assets: the legacy graph itself for ES, else a copy with prefixed
    keys (dependencies included) and per-product groups."""
    prefix = asset_key_prefix(symbol)
    if not prefix:
        return _legacy_assets()
    copies = load_assets_from_modules(SESSION_ASSET_MODULES, key_prefix=list(prefix))
    return tuple(map_asset_specs(lambda spec: spec.replace_attributes(group_name=group_name(symbol, spec.group_name)), copies))


def product_checks(symbol: str) -> list:
    """Product ``symbol``'s per-partition asset checks, targeting its own assets."""
    prefix = asset_key_prefix(symbol)
    if not prefix:
        return list(partition_checks)
    replacements = {key: AssetKey([*prefix, *key.path]) for a in _legacy_assets() for key in a.keys}
    return [check.with_attributes(asset_key_replacements=replacements) for check in partition_checks]


def session_job_name(symbol: str) -> str:
    """The job materializing one session of product ``symbol``: ``materialize_session_job`` for ES,
    ``materialize_session_job_<prefix>`` otherwise."""
    prefix = asset_key_prefix(symbol)
    return f"materialize_session_job_{prefix[0]}" if prefix else "materialize_session_job"


@lru_cache(maxsize=None)
def product_session_job(symbol: str):
    """A job over every session asset of product ``symbol`` (its groups), one process per run; for ES
    the ``materialize_session_job`` of ``automation.jobs`` (one object per name: Definitions and the
    raw/ sensor share it)."""
    if not asset_key_prefix(symbol):
        from .automation.jobs import materialize_session_job

        return materialize_session_job
    return define_asset_job(
        session_job_name(symbol),
        selection=AssetSelection.groups(*(group_name(symbol, tier) for tier in TIER_GROUPS)),
        # One process per session run: the steps of a session are a chain, and a process per step costs
        # seconds of Python start-up each on a small machine (the CLI backfill runs in process too).
        executor_def=in_process_executor,
        description=f"Materialize every Spymaster asset of {symbol} (bronze, silver, gold, checks, charts) of one trading session.",
    )


def code_location_products(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The products whose graphs the code location holds: ES (the legacy graph, always there) and the
    other products of the data root it serves (``SPYMASTER_HOME``, else ``./data``: its config.json
    ``"products"``). ``SPYMASTER_PRODUCTS`` (comma-separated symbols, or ``all`` for the whole
    product table) overrides it. So the UI shows the products a data engineer configured, not twelve.

    Raises ValueError naming config.json when it is unreadable (as every entry point does).
    """
    env = os.environ if environ is None else environ
    chosen = env.get("SPYMASTER_PRODUCTS", "").strip()
    if chosen.lower() == "all":
        symbols = list(PRODUCTS)
    elif chosen:
        symbols = [get_product(s.strip()).symbol for s in chosen.split(",") if s.strip()]
    else:
        symbols = list(SpymasterConfig.for_home(Path(env.get("SPYMASTER_HOME") or "data")).products)
    return (LEGACY_PRODUCT, *sorted(dict.fromkeys(s for s in symbols if s != LEGACY_PRODUCT)))


#: Products with a graph in this code location (:func:`code_location_products` at import), ES first.
GRAPH_PRODUCTS: tuple[str, ...] = code_location_products()
