"""The stale-history sensor flags, and requests the rebuild of, sessions whose history changed after they were built."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from spymaster_assets.automation.backfill import HISTORY_ASSETS
from spymaster_assets.automation.jobs import materialize_session_job
from spymaster_assets.automation.stale_history import stale_history_sensor
from spymaster_resources import SpymasterResource

from tests.conftest import CHAIN_SESSIONS


def _definitions() -> Definitions:
    from spymaster_assets.definitions import all_assets

    return Definitions(assets=all_assets, jobs=[materialize_session_job], sensors=[stale_history_sensor], resources={"spymaster": SpymasterResource(home="unused")})


def _tick(home: Path, cursor: str | None, instance=None):
    with DagsterInstance.ephemeral() as fresh:
        context = build_sensor_context(cursor=cursor, resources={"spymaster": SpymasterResource(home=str(home))}, definitions=_definitions(), instance=instance or fresh)
        return stale_history_sensor.evaluate_tick(context)


def _copy(materialized_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(materialized_home / "lake", home / "lake")
    shutil.copy2(materialized_home / "config.json", home / "config.json")
    return home


def test_a_consistent_lake_requests_nothing(materialized_home, tmp_path):
    result = _tick(_copy(materialized_home, tmp_path), None)
    assert not result.run_requests and not result.asset_events
    assert "current history" in result.skip_message


def test_an_earlier_session_rebuilt_flags_and_rebuilds_every_later_one_once(materialized_home, tmp_path):
    home = _copy(materialized_home, tmp_path)
    episodes = home / "lake" / "gold" / "gold_episodes" / f"date={CHAIN_SESSIONS[1].isoformat()}"
    for path in episodes.glob("*.parquet"):  # session 10-08 rematerialized after the later ones were built
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    result = _tick(home, None)
    later = [d.isoformat() for d in CHAIN_SESSIONS[2:]]
    assert [e.partition for e in result.asset_events] == later
    assert all(e.asset_key == AssetKey("gold_signals") and "rebuilt 2013-10-08" in e.metadata["history"].text for e in result.asset_events)
    (request,) = result.run_requests
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == later[0] and request.tags[ASSET_PARTITION_RANGE_END_TAG] == later[-1]
    assert set(request.asset_selection) == {AssetKey(n) for n in HISTORY_ASSETS}  # bronze, silver and episodes untouched
    # The next tick with the same state observes nothing again and requests the same run key (Dagster drops it).
    again = _tick(home, result.cursor)
    assert not again.asset_events and [r.run_key for r in again.run_requests] == [request.run_key]


def test_no_check_while_a_run_is_in_progress(materialized_home, tmp_path):
    from dagster._core.test_utils import create_run_for_test
    from dagster import DagsterRunStatus

    home = _copy(materialized_home, tmp_path)
    with DagsterInstance.ephemeral() as instance:
        create_run_for_test(instance, job_name="materialize_session_job", status=DagsterRunStatus.STARTED)
        result = _tick(home, None, instance)
    assert not result.run_requests and "in progress" in result.skip_message
