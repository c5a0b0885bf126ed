"""Assemble the Dagster definitions: assets of every tier, reports, the DuckDB catalog, tuning, checks, jobs, sensors, schedules, resources."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource

from .automation.jobs import jobs
from .automation.schedules import schedules
from .automation.sensors import sensors
from .automation.range_failures import range_failures_sensors
from .automation.stale_history import stale_history_sensor
from .bronze import assets as bronze_assets
from .bronze import options_assets as bronze_options_assets
from .catalog.assets import catalog_assets, catalog_job, duckdb_resource
from .charts import assets as chart_assets
from .checks.asset_checks import asset_checks
from .checks.freshness import freshness_check_job, freshness_check_schedule
from .gold import assets as gold_assets
from .silver import assets as silver_assets
from .tuning.assets import tune_job, tuned_params

#: The lake tables, bronze to gold, and the per-session chart.
all_assets = load_assets_from_modules([bronze_assets, bronze_options_assets, silver_assets, gold_assets, chart_assets])

defs = Definitions(
    assets=[*all_assets, *catalog_assets, tuned_params],
    asset_checks=asset_checks,
    jobs=[*jobs, catalog_job, freshness_check_job, tune_job],
    sensors=[*sensors, stale_history_sensor, *range_failures_sensors],
    schedules=[*schedules, freshness_check_schedule],
    resources={"spymaster": SpymasterResource(), "databento": DatabentoResource(), "duckdb": duckdb_resource},
)
