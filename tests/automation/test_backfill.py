"""`spymaster backfill` on real sample sessions: resume, history kept consistent out of order, bad files, dead runs, locks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from spymaster_assets.automation.backfill import HISTORY_ASSETS, BackfillInterrupted, backfill, is_fresh, run_plan
from spymaster_assets.cli import main
from spymaster_assets.gold.history import history_change, lake_fingerprint
from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from spymaster_resources.instance import cli_run_tags, data_root_lock, mark_abandoned_runs, open_instance
from spymaster_resources.lake import Lake

from conftest import SAMPLE_RAW, sample_root

OCT7, OCT8, OCT9 = date(2013, 10, 7), date(2013, 10, 8), date(2013, 10, 9)


def _home(tmp_path, days=("20131006", "20131007", "20131008", "20131009")):
    return sample_root(tmp_path / "home", stamps=days)


@pytest.fixture()
def isolated_dagster_home(monkeypatch):
    """Each test opens the data root's own Dagster instance (<home>/.dagster), as the CLI does."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def _empty_dbn_file(path, day):
    """A valid DBN ohlcv-1m file of ``day`` (UTC) with a header and no record, written by the project's generator."""
    import importlib.util
    from datetime import datetime, timedelta, timezone

    spec = importlib.util.spec_from_file_location("generate_session", SAMPLE_RAW.parents[2] / "scripts" / "generate_session.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    writer = gen.DbnZstWriter(path, gen.build_metadata("ohlcv-1m", gen.front_month(day), start, start + timedelta(days=1)))
    writer.close()
    return path


def test_out_of_order_backfill_rebuilds_the_later_sessions_and_a_rerun_resumes(tmp_path, isolated_dagster_home, capsys):
    home = _home(tmp_path)
    empty = _empty_dbn_file(home / "raw" / "GLBX.MDP3" / "extra-20131008.ohlcv-1m.dbn.zst", OCT8)
    config = SpymasterConfig(home=home)
    lake = Lake(config.lake_dir)
    first = backfill(config, OCT8, OCT9, quiet=True)
    assert first.materialized == [OCT8, OCT9] and first.skipped == []
    assert first.empty_files == [empty] and f"note: {empty} holds no records: skipped" in capsys.readouterr().err
    again = backfill(config, OCT8, OCT9, quiet=True)
    assert again.materialized == [] and again.skipped == [OCT8, OCT9]  # a re-run resumes: nothing to redo
    # An earlier session arrives: the later ones rested on a history without it and are rebuilt in the same backfill,
    # their history-dependent assets only (their own bronze, silver and episodes stand).
    own = [lake.partition_path(tier, table, OCT9) for tier, table in (("bronze", "bronze_futures_ohlcv_1m"), ("silver", "silver_level_state"), ("gold", "gold_episodes"))]
    own_before = [p.stat().st_mtime_ns for p in own]
    signals_before = lake.partition_path("gold", "gold_signals", OCT9).stat().st_mtime_ns
    added = backfill(config, OCT7, OCT7, quiet=True)
    assert added.materialized == [OCT7, OCT8, OCT9] and added.stale_rebuilt == [OCT8, OCT9]
    assert [p.stat().st_mtime_ns for p in own] == own_before
    assert lake.partition_path("gold", "gold_signals", OCT9).stat().st_mtime_ns > signals_before
    assert all(is_fresh(lake, d) for d in (OCT7, OCT8, OCT9))
    manifest = json.loads((lake.partition_dir("gold", "gold_setup_index", OCT9) / "manifest.json").read_text())
    assert manifest["source_session_dates"] == ["2013-10-07", "2013-10-08"]
    # Rewriting an earlier partition makes the later answers stale, and query and replay say so.
    episodes = lake.partition_path("gold", "gold_episodes", OCT8)
    os.utime(episodes, ns=(episodes.stat().st_atime_ns, episodes.stat().st_mtime_ns + 10**9))
    assert "rebuilt 2013-10-08" in history_change(lake, OCT9)
    assert history_change(lake, OCT8) is None
    lake_now = lake_fingerprint(lake)  # one stat per partition, for checking every session at once
    assert [history_change(lake, d, lake_now) for d in (OCT7, OCT8, OCT9)] == [history_change(lake, d) for d in (OCT7, OCT8, OCT9)]
    assert main(["--home", str(home), "replay", "--date", "2013-10-09"]) == 0
    assert backfill(config, OCT9, OCT9, quiet=True).materialized == [OCT9]
    assert history_change(lake, OCT9) is None


def test_replay_flags_answers_built_on_a_changed_history(tmp_path, isolated_dagster_home, capsys):
    home = _home(tmp_path, ("20131007", "20131008", "20131009"))
    config = SpymasterConfig(home=home)
    backfill(config, OCT8, OCT9, quiet=True)
    lake = Lake(config.lake_dir)
    episodes = lake.partition_path("gold", "gold_episodes", OCT8)
    os.utime(episodes, ns=(episodes.stat().st_atime_ns, episodes.stat().st_mtime_ns + 10**9))
    capsys.readouterr()
    assert main(["--home", str(home), "replay", "--date", "2013-10-09"]) == 0
    assert capsys.readouterr().out.startswith("warning: the history before 2013-10-09 changed")


def test_a_bad_file_fails_only_the_sessions_that_read_it_and_leaves_no_orphan(tmp_path, isolated_dagster_home):
    import zstandard

    home = _home(tmp_path)
    packed = home / "raw" / "GLBX.MDP3" / "glbx-mdp3-20131008.ohlcv-1m.dbn.zst"
    bad = packed.with_suffix("")  # the same records uncompressed, cut mid-record: the header is readable, the records are not
    data = zstandard.ZstdDecompressor().stream_reader(packed.read_bytes()).read()
    bad.write_bytes(data[:-10])
    packed.unlink()
    config = SpymasterConfig(home=home)
    lake = Lake(config.lake_dir)
    with pytest.raises(SpymasterError) as caught:
        backfill(config, OCT7, OCT9, quiet=True)
    message = str(caught.value)
    # The file's header covers UTC 2013-10-08: sessions 10-08 (its day) and 10-09 (its evening) read it.
    assert message.splitlines()[0] == "2 of 3 sessions failed (1 materialized):"
    for day in ("2013-10-08", "2013-10-09"):
        line = next(line for line in message.splitlines() if line.startswith(f"session {day}:"))
        assert str(bad) in line and "truncated" in line
    assert lake.exists("gold", "gold_signals", OCT7)
    assert list(lake.root.glob("*/*/date=2013-10-08")) == [] and list(lake.root.glob("*/*/date=2013-10-09")) == []
    # The run recorded the whole range; the failed sessions' partitions are flagged on their page in the UI.
    from dagster import AssetKey

    instance, _ = open_instance(home)
    observations = instance.fetch_observations(AssetKey("bronze_futures_ohlcv_1m"), limit=100).records
    flagged = {r.asset_observation.partition: r.asset_observation.metadata["failed"].value for r in observations}
    assert sorted(flagged) == ["2013-10-08", "2013-10-09"] and all(str(bad) in text for text in flagged.values())


def test_a_failing_blocking_check_fails_its_session_alone(tmp_path, isolated_dagster_home, monkeypatch):
    """The backfill runs the partition checks after their assets: swapped levels on 10-08 fail that session only."""
    import polars as pl

    import spymaster_assets.checks.asset_checks as checks

    home = _home(tmp_path, ("20131007", "20131008", "20131009"))
    config = SpymasterConfig(home=home)
    rule = checks.paired_level_violations

    def swapped_on_oct8(levels):
        if levels["ts_event"].max().date() != OCT8:
            return rule(levels)
        return pl.DataFrame({"ts_event": levels["ts_event"].head(1), "pair": ["PM"], "low_price": [2.0], "high_price": [1.0]})

    monkeypatch.setattr(checks, "paired_level_violations", swapped_on_oct8)
    with pytest.raises(SpymasterError) as caught:
        backfill(config, OCT7, OCT9, quiet=True, workers=1)
    lines = str(caught.value).splitlines()
    assert lines[0] == "1 of 3 sessions failed (2 materialized):"
    assert lines[1].startswith("session 2013-10-08: check silver_levels_pairs_ordered: 1 bar closes with a low level above its high")
    lake = Lake(config.lake_dir)
    assert lake.exists("gold", "gold_signals", OCT7) and lake.exists("gold", "gold_signals", OCT9)
    assert list(lake.root.glob("*/*/date=2013-10-08")) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_fails_the_session_it_hit_and_names_the_partition(tmp_path, isolated_dagster_home, monkeypatch):
    import polars as pl

    home = _home(tmp_path, ("20131007", "20131008", "20131009"))
    config = SpymasterConfig(home=home)
    write_parquet = pl.DataFrame.write_parquet

    def disk_full_for_oct8_levels(self, path, **kwargs):
        # The disk fills up as 10-08's silver_levels is written: the OS refuses with ENOSPC.
        full = "silver_levels/date=2013-10-08" in str(path)
        return write_parquet(self, "/dev/full" if full else path, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full_for_oct8_levels)
    with pytest.raises(SpymasterError) as caught:
        backfill(config, OCT7, OCT9, quiet=True, workers=1)
    lines = str(caught.value).splitlines()
    assert lines[0] == "1 of 3 sessions failed (2 materialized):"
    partition = Lake(config.lake_dir).partition_path("silver", "silver_levels", OCT8)
    assert lines[-1] == f"session 2013-10-08: silver_levels: LakeWriteError: {partition}: cannot write the partition: No space left on device (os error 28)"


def test_a_ui_or_sensor_run_waits_for_a_running_backfill(tmp_path, isolated_dagster_home):
    """Runs launched outside the CLI take the data root's backfill lock: they never interleave with a backfill."""
    import threading
    import warnings

    from dagster import DagsterInstance, materialize

    from spymaster_assets.bronze.assets import bronze_futures_ohlcv_1m
    from spymaster_resources import SpymasterResource

    home = _home(tmp_path, ("20131007",))
    lake = Lake(SpymasterConfig(home=home).lake_dir)

    def run(tags=None, wait=1.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return materialize(
                [bronze_futures_ohlcv_1m], partition_key="2013-10-07", instance=DagsterInstance.ephemeral(), raise_on_error=False, tags=tags or {},
                resources={"spymaster": SpymasterResource(home=str(home), lock_wait_seconds=wait)},
            )

    with data_root_lock(home, 0):  # a backfill is running
        refused = run()
        assert not refused.success and not lake.exists("bronze", "bronze_futures_ohlcv_1m", OCT7)
        error = next(e for e in refused.all_events if e.is_failure).event_specific_data.error
        assert f"another backfill holds {home / '.backfill.lock'}" in error.to_string()
        assert run(tags=cli_run_tags()).success  # the backfill's own runs hold it already
    lake.partition_path("bronze", "bronze_futures_ohlcv_1m", OCT7).unlink()
    held = threading.Event()
    holder = threading.Thread(target=lambda: _hold(home, 1.5, held))
    holder.start()
    held.wait(10)
    try:
        assert run(wait=30.0).success  # waits for the backfill to finish, then runs
    finally:
        holder.join()
    assert lake.exists("bronze", "bronze_futures_ohlcv_1m", OCT7)


def _hold(home, seconds, held):
    """A backfill holding the data root for ``seconds`` (``held`` set once it has the lock)."""
    import time

    with data_root_lock(home, 0):
        held.set()
        time.sleep(seconds)


def test_runs_of_a_killed_cli_are_marked_failed_at_the_next_start(tmp_path, isolated_dagster_home):
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    home = tmp_path / "home"
    instance, _ = open_instance(home)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True).stdout.strip()
    ghost = create_run_for_test(instance, job_name="__ephemeral_asset_job__", status=DagsterRunStatus.STARTED, tags={**cli_run_tags(), "spymaster/pid": dead})
    alive = create_run_for_test(instance, job_name="__ephemeral_asset_job__", status=DagsterRunStatus.STARTED, tags=cli_run_tags())
    daemon = create_run_for_test(instance, job_name="materialize_session_job", status=DagsterRunStatus.STARTED)
    assert mark_abandoned_runs(instance) == [ghost.run_id]
    assert instance.get_run_by_id(ghost.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED  # this process is alive
    assert instance.get_run_by_id(daemon.run_id).status == DagsterRunStatus.STARTED  # the daemon's run monitoring owns it


def test_two_commands_creating_a_fresh_instance_at_once_do_not_race(tmp_path):
    script = "import sys; from pathlib import Path; from spymaster_resources.instance import open_instance; open_instance(Path(sys.argv[1]))"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(home)], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors


def test_a_second_backfill_of_the_same_root_waits_then_says_why(tmp_path):
    waited = []
    with data_root_lock(tmp_path, 1.0):
        with pytest.raises(SpymasterError, match="another backfill holds"):
            with data_root_lock(tmp_path, 0.2, lambda: waited.append(True)):
                pass
    assert waited == [True]
    with data_root_lock(tmp_path, 0.2):  # released: free again
        pass


def test_ctrl_c_ends_the_cli_with_one_line(tmp_path, monkeypatch, capsys):
    import spymaster_assets.automation.backfill as module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "backfill", interrupted)
    assert main(["--home", str(tmp_path), "backfill", "--start", "2013-10-07", "--end", "2013-10-08"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("spymaster: backfill interrupted") and "again to resume" in err[-1]


def test_ctrl_c_keeps_the_steps_the_run_recorded_and_a_rerun_resumes_from_gold(tmp_path, isolated_dagster_home, monkeypatch, capsys):
    """Ctrl-C in the gold walk: bronze, silver and episodes (recorded by Dagster) stay, the gold the
    interrupted step wrote goes, and the re-run builds only the history-dependent assets, landing the
    same answers as an uninterrupted backfill."""
    import spymaster_assets.gold.as_of as as_of

    home = _home(tmp_path, ("20131007", "20131008", "20131009"))
    config = SpymasterConfig(home=home)
    lake = Lake(config.lake_dir)
    fit = as_of.fit_model_as_of

    def ctrl_c_on_oct8(lake_, day, cfg):
        if day == OCT8:
            raise KeyboardInterrupt
        return fit(lake_, day, cfg)

    monkeypatch.setattr(as_of, "fit_model_as_of", ctrl_c_on_oct8)
    with pytest.raises(BackfillInterrupted) as stop:
        backfill(config, OCT7, OCT9, quiet=True, workers=1)
    assert stop.value.finished == [] and stop.value.unfinished == [OCT7, OCT8, OCT9] and stop.value.kept == [OCT7, OCT8, OCT9]
    assert stop.value.summary() == "backfill interrupted: 0 session(s) finished, 3 unfinished, 3 of them keeping the steps they completed; run the same command again to resume"
    own = [lake.partition_path(t, n, d) for d in (OCT7, OCT8, OCT9) for t, n in (("bronze", "bronze_futures_ohlcv_1m"), ("silver", "silver_level_state"), ("gold", "gold_episodes"))]
    assert all(p.is_file() for p in own)
    assert not lake.exists("gold", "gold_model", OCT7)  # written by the interrupted step, never recorded: removed
    assert not any(lake.exists("gold", "gold_signals", d) for d in (OCT7, OCT8, OCT9))
    own_mtimes = [p.stat().st_mtime_ns for p in own]

    monkeypatch.setattr(as_of, "fit_model_as_of", fit)
    capsys.readouterr()
    resumed = backfill(config, OCT7, OCT9, workers=1)
    assert resumed.materialized == [OCT7, OCT8, OCT9]
    assert "backfill: run 1/1: 2013-10-07 .. 2013-10-09 (3 sessions) (history-dependent assets only)" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in own] == own_mtimes
    assert all(is_fresh(lake, d) for d in (OCT7, OCT8, OCT9))

    clean_home = _home(tmp_path / "clean", ("20131007", "20131008", "20131009"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # the CLI sets it for its data root; this one has its own
    backfill(SpymasterConfig(home=clean_home), OCT7, OCT9, quiet=True, workers=1)
    clean = Lake(SpymasterConfig(home=clean_home).lake_dir)
    for day in (OCT7, OCT8, OCT9):
        assert lake.read("gold", "gold_signals", day).equals(clean.read("gold", "gold_signals", day)), day
    # Where the clean run's time went, from its Dagster step durations.
    script = SAMPLE_RAW.parents[2] / "scripts" / "step_durations.py"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    out = subprocess.run([sys.executable, str(script), "--home", str(clean_home)], capture_output=True, text=True, env=env, check=True).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    from spymaster_assets.definitions import all_assets

    asset_steps = [k for k in lines if k.startswith("step_seconds/") and any(k.split("/")[1] == key.to_user_string() for a in all_assets for key in a.keys)]
    from spymaster_assets.availability import OPTIONAL_ASSETS

    # Bars-only sessions: the order-flow and options assets have no step (nothing in raw/ for them).
    assert float(lines["step_seconds/gold_signals"]) > 0 and len(asset_steps) >= 12
    assert not [k for k in asset_steps if k.split("/")[1] in OPTIONAL_ASSETS]
    assert int(lines["materialization_events"]) == 3 * len(asset_steps)  # one per session of each asset step


def test_the_run_plan_keeps_the_gold_walk_in_date_order():
    d = [date(2013, 10, day) for day in (7, 8, 9, 10, 11, 14)]
    # Interrupted sessions (own assets kept) first need history only; new sessions after them, everything.
    assert run_plan(d[:4], {d[0], d[1]}, [d[5]]) == [([d[0], d[1]], HISTORY_ASSETS), ([d[2], d[3]], None), ([d[5]], HISTORY_ASSETS)]
    assert run_plan(d[:3], {d[1]}, []) == [([d[0]], None), ([d[1]], HISTORY_ASSETS), ([d[2]], None)]
    assert run_plan([d[0], d[2]], set(), []) == [([d[0]], None), ([d[2]], None)]  # OCT8 missing: two ranges


def test_an_interrupted_step_is_told_apart_from_a_failed_one():
    """Dagster turns Ctrl-C inside a step into a DagsterExecutionInterruptedError step failure: the
    backfill must stop there (seen by hand: without this check it went on with the next sessions)."""
    from types import SimpleNamespace

    from spymaster_assets.automation.backfill import was_interrupted

    def result(*chain):
        error = None
        for name in reversed(chain):
            error = SimpleNamespace(cls_name=name, cause=error)
        event = SimpleNamespace(is_step_failure=True, step_failure_data=SimpleNamespace(error=error))
        return SimpleNamespace(all_events=[SimpleNamespace(is_step_failure=False), event])

    assert was_interrupted(result("DagsterExecutionInterruptedError"))
    assert was_interrupted(result("DagsterExecutionStepExecutionError", "KeyboardInterrupt"))
    assert not was_interrupted(result("DagsterExecutionStepExecutionError", "RawDataError"))
