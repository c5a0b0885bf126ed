"""The stale-history sensor: show, and rebuild, the sessions whose answers rest on a history that has since changed.

gold_signals of day D record the fingerprint of the history they were built on (``gold.history``).
When a session before D is added or rebuilt later (out-of-order files reaching the raw-files
sensor, a partition rematerialized from the UI), D's as-of artefacts and answers are stale. Each
tick, while no run is queued or in progress (a running range rewrites history on purpose, and its
later sessions are rebuilt by the same run), this sensor:

- reports an ``AssetObservation`` on each stale gold_signals partition, metadata ``history`` = the
  reason (which sessions were added, rebuilt or removed): the partition's page in the UI says it is
  stale until its rebuild lands (reported once per stale state, tracked in the cursor);
- requests ``materialize_session_job`` on the history-dependent assets only
  (``backfill.HISTORY_ASSETS``) of the stale sessions, one run per range of consecutive sessions,
  run key ``stale:<first>..<last>:<hash of the reasons>`` so a state is rebuilt once.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterRunStatus,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from spymaster_core.products import LEGACY_PRODUCT, asset_key_prefix
from spymaster_resources import SpymasterResource
from spymaster_resources.lake import Lake

from ..gold.history import history_change, lake_fingerprint
from .backfill import HISTORY_ASSETS, contiguous_ranges
from ..product_graph import GRAPH_PRODUCTS, product_session_job, session_job_name

DEFAULT_MINIMUM_INTERVAL_SECONDS = 120
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def stale_sessions(lake: Lake) -> dict[date, str]:
    """Every session with gold_signals whose recorded history differs from the lake's, with the reason (``history.history_change``)."""
    out: dict[date, str] = {}
    lake_now = lake_fingerprint(lake)
    for day in lake.dates("gold", "gold_signals"):
        reason = history_change(lake, day, lake_now)
        if reason is not None:
            out[day] = reason
    return out


def rebuild_requests(stale: dict[date, str], product: str = LEGACY_PRODUCT) -> list[RunRequest]:
    """One run request per range of consecutive stale sessions of ``product``, on its ``HISTORY_ASSETS``
    only (a range run for two or more), on its session job; another product's run keys start ``<P>:``."""
    requests = []
    prefix = asset_key_prefix(product)
    selection = [AssetKey([*prefix, name]) for name in HISTORY_ASSETS]
    job_name = session_job_name(product)
    for days in contiguous_ranges(sorted(stale)):
        digest = hashlib.sha256("\n".join(f"{d}:{stale[d]}" for d in days).encode()).hexdigest()[:16]
        run_key = ("" if not prefix else f"{product}:") + f"stale:{days[0]}..{days[-1]}:{digest}"
        tags = {"spymaster/rebuild": "stale history"}
        if len(days) == 1:
            requests.append(RunRequest(run_key=run_key, partition_key=days[0].isoformat(), asset_selection=selection, tags=tags, job_name=job_name))
        else:
            tags |= {ASSET_PARTITION_RANGE_START_TAG: days[0].isoformat(), ASSET_PARTITION_RANGE_END_TAG: days[-1].isoformat()}
            requests.append(RunRequest(run_key=run_key, asset_selection=selection, tags=tags, job_name=job_name))
    return requests


@sensor(
    name="stale_history_sensor",
    jobs=[product_session_job(p) for p in GRAPH_PRODUCTS],
    minimum_interval_seconds=int(os.environ.get("SPYMASTER_STALE_SENSOR_INTERVAL_SECONDS", DEFAULT_MINIMUM_INTERVAL_SECONDS)),
    description="Flag and rebuild the sessions whose answers rest on a history that changed after they were built.",
)
def stale_history_sensor(context: SensorEvaluationContext, spymaster: SpymasterResource):
    """One tick (module docstring): skip while a run is active; else observe and request the rebuild of the stale sessions."""
    active = context.instance.get_run_records(filters=RunsFilter(statuses=_ACTIVE), limit=1)
    if active:
        return SkipReason(f"run {active[0].dagster_run.run_id} is queued or in progress; history is checked once no run is")
    # Each product's history is its own lake's (history never mixes products).
    products = [p for p in spymaster.config.products if p in GRAPH_PRODUCTS]
    stale = {p: found for p in products if (found := stale_sessions(spymaster.for_product(p).lake))}
    if not stale:
        return SensorResult(skip_reason=SkipReason("every session's answers rest on the lake's current history"), cursor="")
    state = hashlib.sha256("\n".join(f"{p}:{d}:{r}" if p != LEGACY_PRODUCT else f"{d}:{r}" for p, days in sorted(stale.items()) for d, r in sorted(days.items())).encode()).hexdigest()
    observations = [] if context.cursor == state else [
        AssetObservation(asset_key=AssetKey([*asset_key_prefix(p), "gold_signals"]), partition=d.isoformat(), metadata={"history": MetadataValue.text(f"stale: {reason}; a rebuild is requested")})
        for p, days in sorted(stale.items()) for d, reason in sorted(days.items())
    ]
    for p, days in stale.items():
        context.log.info(f"{p}: {len(days)} stale session(s): {min(days)} .. {max(days)}")
    return SensorResult(run_requests=[r for p, days in stale.items() for r in rebuild_requests(days, p)], asset_events=observations, cursor=state)
