"""Assemble the Dagster definitions: assets of every tier, reports, checks, jobs, sensors, schedules, resources."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource

from .automation.jobs import jobs
from .automation.schedules import schedules
from .automation.sensors import sensors
from .bronze import assets as bronze_assets
from .bronze import options_assets as bronze_options_assets
from .charts import assets as chart_assets
from .gold import assets as gold_assets
from .silver import assets as silver_assets

#: The lake tables, bronze to gold, and the per-session chart.
all_assets = load_assets_from_modules([bronze_assets, bronze_options_assets, silver_assets, gold_assets, chart_assets])

defs = Definitions(
    assets=all_assets,
    jobs=jobs,
    sensors=sensors,
    schedules=schedules,
    resources={"spymaster": SpymasterResource(), "databento": DatabentoResource()},
)
