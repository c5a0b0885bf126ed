"""A backfill as one run: a range of sessions in one Dagster run writes the same lake as a run per session,
and a session that fails inside the range fails alone."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from spymaster_assets.automation.backfill import contiguous_ranges, range_tags
from spymaster_assets.definitions import all_assets
from spymaster_resources import SpymasterResource
from spymaster_resources.run_failures import RunFailures

from conftest import CHAIN_CONFIG, CHAIN_SESSIONS, assert_same_lake, sample_root


def _chain_home(root: Path) -> Path:
    return sample_root(root / "range", through="20131011", config=CHAIN_CONFIG)


def _range_run(home: Path, days, workers: int = 2, instance=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return materialize(
            all_assets,
            instance=instance or DagsterInstance.ephemeral(),
            resources={"spymaster": SpymasterResource(home=str(home), workers=workers)},
            tags=range_tags(days),
            raise_on_error=False,
        )


def test_a_range_run_writes_the_same_lake_as_a_run_per_session(tmp_path, materialized_home):
    home = _chain_home(tmp_path)
    instance = DagsterInstance.ephemeral()
    result = _range_run(home, CHAIN_SESSIONS, instance=instance)
    assert result.success
    # One run materialized every partition of the range for every asset.
    materialized = instance.get_materialized_partitions(AssetKey("gold_signals"))
    assert materialized == {d.isoformat() for d in CHAIN_SESSIONS}
    assert_same_lake(home / "lake", materialized_home / "lake")


def test_a_session_failing_inside_a_range_fails_alone(tmp_path):
    home = _chain_home(tmp_path)
    # Session 10-09's bars become unreadable: zstd frame cut short.
    bad = home / "raw" / "GLBX.MDP3" / "glbx-mdp3-20131009.ohlcv-1m.dbn.zst"
    bad.write_bytes(bad.read_bytes()[:-200])
    instance = DagsterInstance.ephemeral()
    result = _range_run(home, CHAIN_SESSIONS, instance=instance)
    assert result.success  # the run goes on: the other sessions land
    failed = RunFailures(home, result.run_id).sessions()
    assert set(failed) >= {CHAIN_SESSIONS[2]}
    reason = failed[CHAIN_SESSIONS[2]]["reason"]
    assert reason.startswith("bronze_") and "glbx-mdp3-20131009.ohlcv-1m.dbn.zst" in reason
    lake = home / "lake"
    for day in CHAIN_SESSIONS:
        present = (lake / "gold" / "gold_signals" / f"date={day.isoformat()}" / "part-0.parquet").is_file()
        assert present == (day not in failed), day
        if day in failed:
            assert list(lake.glob(f"*/*/date={day.isoformat()}")) == []  # no orphan partition
    # Launched by the daemon or the UI, the run recorded the whole range: the run-status sensor flags
    # the failed sessions' partitions on their page, once.
    from dagster import build_run_status_sensor_context

    from spymaster_assets.automation.range_failures import range_failures_sensors

    run = instance.get_run_by_id(result.run_id)
    success = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    sensor = next(s for s in range_failures_sensors if s.name == "range_failures_after_success_sensor")

    def tick():
        return sensor(build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=success, dagster_instance=instance, dagster_run=run,
            resources={"spymaster": SpymasterResource(home=str(home))},
        ))

    tick()
    observations = instance.fetch_observations(AssetKey("gold_signals"), limit=100).records
    flagged = {r.asset_observation.partition: r.asset_observation.metadata["failed"].value for r in observations}
    assert sorted(flagged) == sorted(d.isoformat() for d in failed)
    assert all("glbx-mdp3-20131009.ohlcv-1m.dbn.zst" in text and "not in the lake" in text for text in flagged.values())
    assert not (home / ".runs" / f"{result.run_id}.json").exists()  # the list is read once
    assert "no session failed" in tick().skip_message


def test_contiguous_ranges_split_at_a_missing_session_not_at_a_weekend():
    from datetime import date

    days = [date(2013, 10, 10), date(2013, 10, 11), date(2013, 10, 14), date(2013, 10, 16)]
    assert contiguous_ranges(days) == [[date(2013, 10, 10), date(2013, 10, 11), date(2013, 10, 14)], [date(2013, 10, 16)]]
    assert contiguous_ranges([]) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_range_metadata_summarises_every_session(tmp_path, workers):
    home = _chain_home(tmp_path)
    instance = DagsterInstance.ephemeral()
    result = _range_run(home, CHAIN_SESSIONS[:2], workers=workers, instance=instance)
    assert result.success
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey("silver_bars")]
    assert sorted(e.partition for e in events) == [d.isoformat() for d in CHAIN_SESSIONS[:2]]
    # Each partition records its own session's metadata (rows of its own partition) and the range's summary.
    lake = home / "lake" / "silver" / "silver_bars"
    for event in events:
        meta = event.materialization.metadata
        assert meta["range/sessions_built"].value == 2 and meta["range/sessions_failed"].value == 0
        assert meta["dagster/row_count"].value == pl.read_parquet(lake / f"date={event.partition}" / "part-0.parquet").height
    assert events[0].materialization.metadata["dagster/row_count"].value != events[1].materialization.metadata["dagster/row_count"].value
    # Info lines alike across sessions are logged once, counted.
    lines = [r.user_message for r in instance.all_logs(result.run_id) if r.step_key == "bronze_futures_bbo" and "not materialized" in r.user_message]
    assert lines == ["2 sessions (2013-10-07 .. 2013-10-08): bronze_futures_bbo <session>: not materialized: no mbp-1, bbo-1s, bbo-1m or tbbo in raw/ for <session>"]
