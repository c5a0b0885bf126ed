"""The asset checks through Dagster: they pass on the materialized sample sessions and fail on corrupted partitions."""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import date, time
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance, Definitions, define_asset_job

from spymaster_assets.checks.asset_checks import asset_checks, partition_checks
from spymaster_assets.sessions import et_to_utc
from spymaster_resources import SpymasterResource
from spymaster_resources.lake import Lake
from tests.conftest import CHAIN_SESSIONS

DAY = date(2013, 10, 10)  # three earlier sessions in the materialized home


def run_partition_checks(home: Path, day: date) -> tuple[dict, bool]:
    """Run every per-partition check on partition ``day`` of the lake under ``home``.

    Returns (evaluations by check name, run success). A failed blocking check fails its step (that
    is what stops downstream assets in a materialization run), so the run then does not succeed.
    """
    from spymaster_assets.definitions import all_assets

    job = define_asset_job("partition_checks", selection=AssetSelection.checks(*partition_checks))
    defs = Definitions(assets=all_assets, asset_checks=partition_checks, jobs=[job], resources={"spymaster": SpymasterResource(home=str(home))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # A checks-only selection has no asset to take the partitions from: pass the partition as the run tag.
        result = defs.resolve_job_def("partition_checks").execute_in_process(
            tags={"dagster/partition": day.isoformat()}, instance=DagsterInstance.ephemeral(), raise_on_error=False
        )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # Every check reported (none raised before its evaluation), on the requested partition.
    assert set(evaluations) == {key.name for c in partition_checks for key in c.check_keys}
    assert {e.partition for e in evaluations.values()} == {day.isoformat()}
    return evaluations, result.success


@pytest.fixture()
def lake_copy(materialized_home, tmp_path) -> tuple[Path, Lake]:
    """A writable copy of the materialized lake and its config.json (the shared fixture stays intact)."""
    shutil.copytree(materialized_home / "lake", tmp_path / "lake")
    shutil.copy(materialized_home / "config.json", tmp_path / "config.json")
    return tmp_path, Lake(tmp_path / "lake")


def test_every_check_is_exported_once_with_the_intended_blocking():
    names = [key.name for c in asset_checks for key in c.check_keys]
    assert len(names) == len(set(names)) == 7
    blocking = {spec.name: spec.blocking for c in asset_checks for spec in c.check_specs}
    assert blocking == {
        "silver_bars_rth_no_gaps": False,
        "silver_levels_pairs_ordered": True,
        "silver_levels_inside_session_range": True,
        "silver_outcomes_not_degenerate": False,
        "gold_setup_index_holds_every_episode": True,
        "gold_model_trained_before_the_day": True,
        "gold_signals_latest_session_fresh": False,
    }


@pytest.mark.parametrize("day", CHAIN_SESSIONS, ids=str)
def test_checks_pass_on_the_sample_sessions(materialized_home, day):
    evaluations, success = run_partition_checks(materialized_home, day)
    assert success
    failed = {name: e.description for name, e in evaluations.items() if not e.passed}
    assert failed == {}
    lake = Lake(materialized_home / "lake")
    earlier = lake.dates_before("gold", "gold_episodes", day)
    assert evaluations["gold_setup_index_holds_every_episode"].metadata["bars_expected_episodes"].value == sum(lake.row_count("gold", "gold_episodes", d) for d in earlier)
    assert evaluations["silver_bars_rth_no_gaps"].metadata["expected_minutes"].value == 390


def test_gap_in_regular_hours_fails_with_warn(lake_copy):
    home, lake = lake_copy
    bars = lake.read("silver", "silver_bars", DAY)
    gone = [et_to_utc(DAY, time(10, 0)), et_to_utc(DAY, time(10, 1))]
    lake.write("silver", "silver_bars", DAY, bars.filter(~((pl.col("bar_minutes") == 1) & pl.col("ts_event").is_in(gone))))
    results, success = run_partition_checks(home, DAY)
    assert success  # WARN does not block
    result = results["silver_bars_rth_no_gaps"]
    assert not result.passed and result.severity == AssetCheckSeverity.WARN
    assert result.metadata["missing_minutes"].value == 2
    assert "10:00" in result.metadata["missing"].value and "10:01" in result.metadata["missing"].value


def test_swapped_premarket_levels_fail_the_blocking_pair_check(lake_copy):
    home, lake = lake_copy
    levels = lake.read("silver", "silver_levels", DAY)
    first_known = levels.filter(pl.col("level_kind") == "PM_HIGH")["ts_event"].min()
    swap = {"PM_HIGH": "PM_LOW", "PM_LOW": "PM_HIGH"}
    at_first = pl.col("ts_event") == first_known
    corrupted = levels.with_columns(
        level_kind=pl.when(at_first).then(pl.col("level_kind").replace(swap)).otherwise(pl.col("level_kind"))
    )
    lake.write("silver", "silver_levels", DAY, corrupted)
    results, success = run_partition_checks(home, DAY)
    assert not success  # a failed blocking check fails its step
    pairs = results["silver_levels_pairs_ordered"]
    assert not pairs.passed and pairs.severity == AssetCheckSeverity.ERROR
    assert pairs.metadata["violations"].value == 1
    # Both prices still lie inside the traded range: only the pair check sees this.
    assert results["silver_levels_inside_session_range"].passed


def test_level_outside_the_range_fails_the_blocking_range_check(lake_copy):
    home, lake = lake_copy
    levels = lake.read("silver", "silver_levels", DAY)
    bars = lake.read("silver", "silver_bars", DAY)
    session_high = float(bars["high"].max())
    target = (pl.col("level_kind") == "OR_HIGH") & (pl.col("ts_event") == levels.filter(pl.col("level_kind") == "OR_HIGH")["ts_event"].max())
    lake.write("silver", "silver_levels", DAY, levels.with_columns(level_price=pl.when(target).then(session_high + 5.0).otherwise(pl.col("level_price"))))
    results, success = run_partition_checks(home, DAY)
    assert not success
    assert results["silver_levels_pairs_ordered"].passed
    result = results["silver_levels_inside_session_range"]
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["violations"].value == 1
    assert f"{session_high + 5.0}" in result.metadata["offending_rows"].value


def test_all_one_label_fails_with_warn(lake_copy):
    home, lake = lake_copy
    outcomes = lake.read("silver", "silver_outcomes", DAY)
    assert outcomes.height >= 30
    lake.write("silver", "silver_outcomes", DAY, outcomes.with_columns(outcome=pl.lit("REJECT")))
    results, success = run_partition_checks(home, DAY)
    assert success
    result = results["silver_outcomes_not_degenerate"]
    assert not result.passed and result.severity == AssetCheckSeverity.WARN
    assert result.metadata["outcomes/REJECT"].value == outcomes.height
    assert result.metadata["outcomes/BREAK"].value == 0


def test_index_short_of_the_episodes_fails_the_blocking_index_check(lake_copy):
    home, lake = lake_copy
    # An earlier episode partition gains rows after the index was built: the index no longer holds them all.
    earlier = lake.dates_before("gold", "gold_episodes", DAY)[0]
    episodes = lake.read("gold", "gold_episodes", earlier)
    extra = episodes.head(3)
    lake.write("gold", "gold_episodes", earlier, pl.concat([episodes, extra]))
    before = sum(lake.row_count("gold", "gold_episodes", d) for d in lake.dates_before("gold", "gold_episodes", DAY))
    results, success = run_partition_checks(home, DAY)
    assert not success
    result = results["gold_setup_index_holds_every_episode"]
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["bars_expected_episodes"].value == before
    assert result.metadata["bars_index_vectors"].value == before - 3
    assert result.metadata["mismatched_partitions"].value == extra["partition_key"].n_unique()


def test_index_holding_the_day_itself_fails_the_index_check(lake_copy):
    home, lake = lake_copy
    manifest_path = lake.partition_dir("gold", "gold_setup_index", DAY) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source_session_dates"].append(DAY.isoformat())
    manifest_path.write_text(json.dumps(manifest))
    result = run_partition_checks(home, DAY)[0]["gold_setup_index_holds_every_episode"]
    assert not result.passed
    assert result.metadata["mismatched_partitions"].value == 0
    assert result.metadata["sessions_not_before_day"].value == 1


def test_missing_partition_is_reported_not_raised(lake_copy):
    home, lake = lake_copy
    lake.partition_path("silver", "silver_outcomes", DAY).unlink()
    result = run_partition_checks(home, DAY)[0]["silver_outcomes_not_degenerate"]
    assert not result.passed and "missing" in result.description


def test_failed_blocking_check_stops_downstream_assets(lake_copy, monkeypatch):
    from dagster import materialize

    import spymaster_assets.checks.asset_checks as module
    from spymaster_assets.silver.assets import silver_level_state, silver_levels

    home, lake = lake_copy
    state_path = lake.partition_path("silver", "silver_level_state", DAY)
    state_path.unlink()
    # Whatever silver_levels computes, the pair rule reports one violation.
    one_violation = pl.DataFrame({"ts_event": [et_to_utc(DAY, time(9, 46))], "pair": ["PM"], "low_price": [2.0], "high_price": [1.0]})
    monkeypatch.setattr(module, "paired_level_violations", lambda levels: one_violation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(
            [silver_levels, silver_level_state, module.silver_levels_pairs_ordered],
            partition_key=DAY.isoformat(),
            instance=DagsterInstance.ephemeral(),
            resources={"spymaster": SpymasterResource(home=str(home))},
            raise_on_error=False,
        )
    assert [e.check_name for e in result.get_asset_check_evaluations() if not e.passed] == ["silver_levels_pairs_ordered"]
    assert [e.asset_key.path[-1] for e in result.get_asset_materialization_events()] == ["silver_levels"]
    assert not state_path.exists()  # silver_level_state never ran on the bad levels


def test_model_that_saw_the_day_fails_the_blocking_model_check(lake_copy):
    home, lake = lake_copy
    meta_path = lake.partition_dir("gold", "gold_model", DAY) / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert run_partition_checks(home, DAY)[0]["gold_model_trained_before_the_day"].passed
    meta["training_sessions"].append(DAY.isoformat())
    meta_path.write_text(json.dumps(meta))
    results, success = run_partition_checks(home, DAY)
    assert not success
    result = results["gold_model_trained_before_the_day"]
    assert not result.passed and result.metadata["sessions_not_before_day"].value == 1
    assert DAY.isoformat() in result.description
