"""Assemble the Dagster definitions: assets of every tier, reports, the DuckDB catalog, tuning, checks, jobs, sensors, schedules, resources."""

from __future__ import annotations

from dagster import Definitions

from spymaster_core.products import LEGACY_PRODUCT

from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource

from .automation.jobs import jobs
from .automation.schedules import schedules
from .automation.sensors import sensors
from .automation.range_failures import range_failures_sensors
from .automation.stale_history import stale_history_sensor
from .catalog.assets import catalog_assets, catalog_job, duckdb_resource
from .checks.asset_checks import asset_checks
from .checks.freshness import freshness_check_job, freshness_check_schedule
from .product_graph import GRAPH_PRODUCTS, product_assets, product_checks, product_session_job
from .tuning.assets import tune_job, tuned_params

#: ES's lake tables, bronze to gold, and the per-session chart (the legacy product's unprefixed graph).
all_assets = list(product_assets(LEGACY_PRODUCT))
#: Every other product's copy of the graph (``gc/silver_bars`` in group ``gc_silver``...).
other_products_assets = [a for symbol in GRAPH_PRODUCTS if symbol != LEGACY_PRODUCT for a in product_assets(symbol)]
other_products_checks = [c for symbol in GRAPH_PRODUCTS if symbol != LEGACY_PRODUCT for c in product_checks(symbol)]
other_products_jobs = [product_session_job(symbol) for symbol in GRAPH_PRODUCTS if symbol != LEGACY_PRODUCT]

defs = Definitions(
    assets=[*all_assets, *other_products_assets, *catalog_assets, tuned_params],
    asset_checks=[*asset_checks, *other_products_checks],
    jobs=[*jobs, *other_products_jobs, catalog_job, freshness_check_job, tune_job],
    sensors=[*sensors, stale_history_sensor, *range_failures_sensors],
    schedules=[*schedules, freshness_check_schedule],
    resources={"spymaster": SpymasterResource(), "databento": DatabentoResource(), "duckdb": duckdb_resource},
)
