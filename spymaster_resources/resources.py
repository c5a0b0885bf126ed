"""Dagster resource giving assets the configuration, the raw-file catalog and the lake."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from dagster import ConfigurableResource

from spymaster_resources.raw_files import RawCatalog
from spymaster_core.config import SpymasterConfig
from spymaster_core.tuned_params import TunedParams, config_for_day

from .lake import Lake

# One catalog per raw directory for the process: it caches inspections per (path, size, mtime), so
# a backfill of many sessions inspects each file once and a changed file is inspected again.
_CATALOGS: dict[Path, RawCatalog] = {}
_PRODUCT_CATALOGS: dict[tuple[Path, str], RawCatalog] = {}


def default_home() -> str:
    """``SPYMASTER_HOME`` when set, else ``data`` (relative to the working directory)."""
    return os.environ.get("SPYMASTER_HOME", "data")


class SpymasterResource(ConfigurableResource):
    """Where the data lives (``home``: raw/, lake/, reports/) and the typed configuration.

    ``home`` defaults to ``SPYMASTER_HOME`` or ``data``. The other settings come from
    :class:`~spymaster_core.config.SpymasterConfig` defaults, changed by the data root's
    ``config.json`` (``SpymasterConfig.for_home``, read by the CLI too), and for one day by the tuned
    parameter file that serves it (:meth:`config_for_day`). ``workers`` and ``progress`` shape range
    runs (``spymaster_assets.session_range``).
    """

    home: str = ""
    #: The product served ("" = the data root's first product, ES by default); the session assets of
    #: product P run with :meth:`for_product` (P), so its config, lake and raw catalog are P's.
    product: str = ""
    #: Processes a range run uses for its bronze and silver steps (0: one per core).
    workers: int = 0
    #: Show a progress bar per step of a range run on stderr (the CLI backfill sets it).
    progress: bool = False
    #: Seconds a step of a run launched by the UI, a sensor or a schedule waits for the data root's
    #: backfill lock (held by a running ``spymaster backfill``) before it fails (``session_range``).
    lock_wait_seconds: float = 3600.0

    @property
    def config(self) -> SpymasterConfig:
        """The typed configuration of the data root (``home`` resolved, its ``config.json`` applied).

        Raises ValueError naming the file when ``config.json`` is unreadable or names an unknown field,
        UnknownProductError when :attr:`product` is not in the product table.
        """
        config = SpymasterConfig.for_home(Path(self.home or default_home()))
        return config.for_product(self.product) if self.product else config

    def for_product(self, symbol: str) -> "SpymasterResource":
        """This resource serving product ``symbol`` (same data root, workers and settings)."""
        if symbol == self.product:
            return self
        return SpymasterResource(home=self.home, workers=self.workers, progress=self.progress, lock_wait_seconds=self.lock_wait_seconds, product=symbol)

    def config_for_day(self, day: date) -> tuple[SpymasterConfig, TunedParams | None]:
        """The configuration serving ``day``: :attr:`config` with the newest tuned file whose tuning
        ended before ``day`` (``tuned_params.config_for_day``), and that file (None: defaults)."""
        return config_for_day(self.config, day)

    @property
    def lake(self) -> Lake:
        """The Parquet lake under ``home/lake``."""
        return Lake(self.config.lake_dir)

    @property
    def catalog(self) -> RawCatalog:
        """The raw DBN file catalog under ``home/raw`` holding the served product's files (inspected
        files cached per raw directory and shared by its products)."""
        config = self.config
        raw = config.raw_dir.resolve()
        if raw not in _CATALOGS:
            _CATALOGS[raw] = RawCatalog(raw)
        key = (raw, config.product)
        if key not in _PRODUCT_CATALOGS:
            _PRODUCT_CATALOGS[key] = _CATALOGS[raw].for_product(config.spec)
        return _PRODUCT_CATALOGS[key]
