"""Assemble the Dagster definitions: assets of every tier, reports, the DuckDB catalog, tuning, checks, jobs, sensors, schedules, resources."""

from __future__ import annotations

from dagster import Definitions

from spymaster_core.products import LEGACY_PRODUCT

from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource

from .automation.jobs import jobs
from .automation.schedules import schedules
from .automation.sensors import build_raw_files_sensor, raw_files_sensor
from .automation.range_failures import range_failures_sensors
from .automation.stale_history import stale_history_sensor
from .catalog.assets import catalog_assets, catalog_job, duckdb_resource
from .checks.asset_checks import asset_checks
from .checks.freshness import freshness_check_job, freshness_check_schedule
from .product_graph import GRAPH_PRODUCTS, product_assets, product_checks, product_session_job
from .tuning.assets import tune_job, tuned_params

#: ES's lake tables, bronze to gold, and the per-session chart (the legacy product's unprefixed graph).
all_assets = list(product_assets(LEGACY_PRODUCT))


def build_definitions(products: tuple[str, ...]) -> Definitions:
    """The code location holding the graphs of ``products`` (ES's always): each other product's copy
    of the session graph (``gc/silver_bars`` in group ``gc_silver``...), its checks and session job."""
    others = [symbol for symbol in products if symbol != LEGACY_PRODUCT]
    sensor = raw_files_sensor if tuple(products) == GRAPH_PRODUCTS else build_raw_files_sensor(raw_files_sensor.minimum_interval_seconds, tuple(products))
    return Definitions(
        assets=[*all_assets, *(a for symbol in others for a in product_assets(symbol)), *catalog_assets, tuned_params],
        asset_checks=[*asset_checks, *(c for symbol in others for c in product_checks(symbol))],
        jobs=[*jobs, *(product_session_job(symbol) for symbol in others), catalog_job, freshness_check_job, tune_job],
        sensors=[sensor, stale_history_sensor, *range_failures_sensors],
        schedules=[*schedules, freshness_check_schedule],
        resources={"spymaster": SpymasterResource(), "databento": DatabentoResource(), "duckdb": duckdb_resource},
    )


#: The code location: ES and the products of the data root it serves (``product_graph.code_location_products``).
defs = build_definitions(GRAPH_PRODUCTS)
