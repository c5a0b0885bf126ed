"""Dagster resource giving assets the configuration, the raw-file catalog and the lake."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource

from spymaster_assets.bronze.dbn_files import RawCatalog
from spymaster_assets.config import SpymasterConfig

from .lake import Lake

# One catalog per raw directory for the process: it caches inspections per (path, size, mtime), so
# a backfill of many sessions inspects each file once and a changed file is inspected again.
_CATALOGS: dict[Path, RawCatalog] = {}


def default_home() -> str:
    """``SPYMASTER_HOME`` when set, else ``data`` (relative to the working directory)."""
    return os.environ.get("SPYMASTER_HOME", "data")


class SpymasterResource(ConfigurableResource):
    """Where the data lives (``home``: raw/, lake/, reports/) and the typed configuration.

    ``home`` defaults to ``SPYMASTER_HOME`` or ``data``. The other settings come from
    :class:`~spymaster_assets.config.SpymasterConfig` defaults.
    """

    home: str = ""

    @property
    def config(self) -> SpymasterConfig:
        """The typed configuration, with ``home`` resolved."""
        return SpymasterConfig(home=Path(self.home or default_home()))

    @property
    def lake(self) -> Lake:
        """The Parquet lake under ``home/lake``."""
        return Lake(self.config.lake_dir)

    @property
    def catalog(self) -> RawCatalog:
        """The raw DBN file catalog under ``home/raw`` (inspected files cached per resource)."""
        raw = self.config.raw_dir.resolve()
        if raw not in _CATALOGS:
            _CATALOGS[raw] = RawCatalog(raw)
        return _CATALOGS[raw]
