"""Assemble the Dagster definitions: every asset of every tier and the Spymaster resource."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from spymaster_resources import SpymasterResource

from .bronze import assets as bronze_assets
from .bronze import options_assets as bronze_options_assets
from .gold import assets as gold_assets
from .silver import assets as silver_assets

all_assets = load_assets_from_modules([bronze_assets, bronze_options_assets, silver_assets, gold_assets])

defs = Definitions(assets=all_assets, resources={"spymaster": SpymasterResource()})
