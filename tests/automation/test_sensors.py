"""raw_files_sensor on a copy of the committed sample: which sessions it requests, with which run keys and config."""

import os
import shutil
import sys
import warnings
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import DailyPartitionsDefinition, Definitions, build_sensor_context, validate_run_config
from dagster._core.definitions.partitions.context import partition_loading_context

from spymaster_assets.automation.jobs import materialize_session_job
from spymaster_assets.automation.sensors import (
    OVERWRITE_TAG,
    RawFilesCursor,
    bronze_overwrite_run_config,
    plan_session_runs,
    raw_files_sensor,
    sessions_reading_file,
)
from spymaster_resources.raw_files import RawCatalog, inspect_file
from spymaster_assets.bronze.ingest import definition_files_for_session, sessions_with_rth_data
from spymaster_core.config import SpymasterConfig
from spymaster_assets.sessions import session_bounds_utc
from spymaster_resources import SpymasterResource

from conftest import SAMPLE_RAW

GLBX = "GLBX.MDP3"
CHICAGO = ZoneInfo("America/Chicago")
#: Sessions of the sample with regular-hours bars (data/sample/README.md, "Sessions covered"): the
#: evening-only sessions after 10-14, 10-30, 11-18, 12-03, 12-18 and 2020-01-06 are not among them.
SAMPLE_RTH_SESSIONS = [
    "2013-10-07", "2013-10-08", "2013-10-09", "2013-10-10", "2013-10-11", "2013-10-14", "2013-10-29",
    "2013-10-30", "2013-11-18", "2013-12-02", "2013-12-03", "2013-12-18", "2013-12-20", "2020-01-06",
]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations from exchange_calendars/databento
        yield


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE_RAW, tmp_path / "raw")  # copy2: sizes and mtimes as committed
    return tmp_path


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    """The session job over every asset, so run requests resolve (and validate) their partitions."""
    from spymaster_assets.definitions import all_assets

    return Definitions(
        assets=all_assets,
        jobs=[materialize_session_job],
        sensors=[raw_files_sensor],
        resources={"spymaster": SpymasterResource(home="unused")},
    )


def tick(home: Path, cursor: str | None, definitions: Definitions):
    context = build_sensor_context(
        cursor=cursor, resources={"spymaster": SpymasterResource(home=str(home))}, definitions=definitions
    )
    return raw_files_sensor.evaluate_tick(context)


def raw_file(home: Path, name: str) -> Path:
    return home / "raw" / GLBX / name


def file_token(home: Path, name: str) -> str:
    st = raw_file(home, name).stat()
    return f"{GLBX}/{name}:{st.st_size}:{st.st_mtime_ns}"


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_first_tick_requests_every_rth_session_with_file_run_keys(home, definitions):
    result = tick(home, None, definitions)

    keys = [r.partition_key for r in result.run_requests]
    assert keys == SAMPLE_RTH_SESSIONS
    by_key = {r.partition_key: r for r in result.run_requests}
    # Session 2013-10-08 runs 2013-10-07 22:00 UTC -> 2013-10-08 21:00 UTC. It reads the ohlcv-1m
    # files of UTC 10-07 (its evening) and 10-08, and the definition files published from 24 h
    # before its open (10-06 22:00 UTC) to its close: those of UTC 10-06, 10-07 and 10-08.
    expected = ";".join(
        file_token(home, n)
        for n in sorted(
            [
                "glbx-mdp3-20131006.definition.dbn.zst",
                "glbx-mdp3-20131007.definition.dbn.zst",
                "glbx-mdp3-20131007.ohlcv-1m.dbn.zst",
                "glbx-mdp3-20131008.definition.dbn.zst",
                "glbx-mdp3-20131008.ohlcv-1m.dbn.zst",
            ]
        )
    )
    assert by_key["2013-10-08"].run_key == f"2013-10-08:{expected}"
    # A fresh data root has no bronze to overwrite: default run config.
    assert all(r.tags[OVERWRITE_TAG] == "false" and not r.run_config for r in result.run_requests)
    assert len(RawFilesCursor.from_json(result.cursor).files) == len(list(SAMPLE_RAW.rglob("*.dbn.zst")))


def test_run_keys_name_the_files_bronze_reads(home, definitions):
    """Cross-check the sensor's file -> session mapping against bronze's own file selection."""
    config = SpymasterConfig(home=home)
    catalog = RawCatalog((home / "raw").resolve())
    result = tick(home, None, definitions)
    for request in result.run_requests:
        day = date.fromisoformat(request.partition_key)
        start, end = session_bounds_utc(day, config)
        read = definition_files_for_session(catalog, day, config) + catalog.files_for_window("ohlcv-1m", start, end)
        names = sorted(f.path.name for f in read)
        assert request.run_key == f"{request.partition_key}:" + ";".join(file_token(home, n) for n in names)


def test_second_tick_without_change_skips(home, definitions):
    first = tick(home, None, definitions)
    second = tick(home, first.cursor, definitions)
    assert not second.run_requests
    assert "no new or changed" in second.skip_message


def test_touching_one_ohlcv_file_requests_its_two_sessions_with_overwrite(home, definitions):
    first = tick(home, None, definitions)
    bump_mtime(raw_file(home, "glbx-mdp3-20131008.ohlcv-1m.dbn.zst"))

    result = tick(home, first.cursor, definitions)

    # Its records span 2013-10-08 00:00-23:59 UTC: the end of session 10-08 (to 21:00 UTC) and the
    # evening opening of session 10-09 (from 22:00 UTC).
    assert [r.partition_key for r in result.run_requests] == ["2013-10-08", "2013-10-09"]
    old_keys = {r.partition_key: r.run_key for r in first.run_requests}
    for r in result.run_requests:
        assert r.run_key != old_keys[r.partition_key]
        assert file_token(home, "glbx-mdp3-20131008.ohlcv-1m.dbn.zst") in r.run_key
        assert r.tags[OVERWRITE_TAG] == "true"
        assert r.run_config["ops"]["bronze_futures_ohlcv_1m"]["config"]["overwrite"] is True
        assert r.run_config["ops"]["bronze_definitions"]["config"]["overwrite"] is True
    assert not tick(home, result.cursor, definitions).run_requests


def test_rewriting_a_definition_file_requests_the_sessions_that_read_it(home, definitions):
    first = tick(home, None, definitions)
    target = raw_file(home, "glbx-mdp3-20131029.definition.dbn.zst")
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data)  # same bytes, new inode and mtime
    bump_mtime(target)

    result = tick(home, first.cursor, definitions)

    # Header range [10-29 00:00, 10-30 00:00) UTC; bronze reads a definition file from 24 h before a
    # session's open: sessions 10-29, 10-30 and 10-31 read it, and 10-31 has no regular-hours bars.
    assert [r.partition_key for r in result.run_requests] == ["2013-10-29", "2013-10-30"]


def test_rewriting_an_ohlcv_file_skips_its_evening_only_session(home, definitions):
    first = tick(home, None, definitions)
    target = raw_file(home, "glbx-mdp3-20131014.ohlcv-1m.dbn.zst")
    shutil.copy(SAMPLE_RAW / GLBX / target.name, target)  # rewritten (copy without metadata)
    bump_mtime(target)
    # The evening of UTC 10-14 opens session 10-15, which has no 09:30 bar in the sample.
    assert [r.partition_key for r in tick(home, first.cursor, definitions).run_requests] == ["2013-10-14"]


def test_non_dbn_files_are_ignored(home, definitions):
    first = tick(home, None, definitions)
    (home / "raw" / "notes.txt").write_text("not market data")
    (home / "raw" / GLBX / "glbx-mdp3-20131015.ohlcv-1m.dbn.zst.part").write_bytes(b"\x00" * 64)
    result = tick(home, first.cursor, definitions)
    assert not result.run_requests
    assert result.skip_message


def test_new_file_for_a_session_already_in_bronze_overwrites_it(home, definitions):
    first = tick(home, None, definitions)
    written = home / "lake" / "bronze" / "bronze_futures_ohlcv_1m" / "date=2013-10-14"
    written.mkdir(parents=True)
    (written / "part-0.parquet").write_bytes(b"")
    extra = home / "raw" / "redownload"
    extra.mkdir()
    shutil.copy2(SAMPLE_RAW / GLBX / "glbx-mdp3-20131014.ohlcv-1m.dbn.zst", extra / "es-20131014.ohlcv-1m.dbn.zst")
    shutil.copy2(SAMPLE_RAW / GLBX / "glbx-mdp3-20131029.ohlcv-1m.dbn.zst", extra / "es-20131029.ohlcv-1m.dbn.zst")

    result = tick(home, first.cursor, definitions)

    by_key = {r.partition_key: r for r in result.run_requests}
    # The UTC 10-29 file also holds the evening opening of session 10-30 (from 22:00 UTC).
    assert sorted(by_key) == ["2013-10-14", "2013-10-29", "2013-10-30"]
    assert by_key["2013-10-14"].tags[OVERWRITE_TAG] == "true"  # bronze of 10-14 exists: rewrite it
    assert by_key["2013-10-29"].tags[OVERWRITE_TAG] == "false"  # nothing written yet
    assert by_key["2013-10-30"].tags[OVERWRITE_TAG] == "false"
    assert "redownload/es-20131014.ohlcv-1m.dbn.zst" in by_key["2013-10-14"].run_key


def test_unreadable_file_holds_the_sensor_and_keeps_the_cursor(home, definitions):
    first = tick(home, None, definitions)
    bump_mtime(raw_file(home, "glbx-mdp3-20131008.ohlcv-1m.dbn.zst"))
    broken = raw_file(home, "glbx-mdp3-20131015.ohlcv-1m.dbn.zst")
    broken.write_bytes(b"not a dbn file at all")

    held = tick(home, first.cursor, definitions)
    assert not held.run_requests
    assert broken.name in held.skip_message
    assert held.cursor in (None, first.cursor)

    broken.unlink()
    assert [r.partition_key for r in tick(home, first.cursor, definitions).run_requests] == ["2013-10-08", "2013-10-09"]


def test_session_whose_partition_does_not_exist_yet_is_requested_once_it_does(tmp_path, definitions):
    raw = tmp_path / "raw" / GLBX
    raw.mkdir(parents=True)
    for utc_day in ("20131006", "20131007", "20131008"):
        for schema in ("definition", "ohlcv-1m"):
            shutil.copy2(SAMPLE_RAW / GLBX / f"glbx-mdp3-{utc_day}.{schema}.dbn.zst", raw)

    # Noon in Chicago on 10-07: partition 2013-10-08 does not exist yet (with end_offset=1 it appears at 00:00 CT on 10-08).
    with partition_loading_context(effective_dt=datetime(2013, 10, 7, 12, 0, tzinfo=CHICAGO)):
        first = tick(tmp_path, None, definitions)
    assert [r.partition_key for r in first.run_requests] == ["2013-10-07"]
    assert RawFilesCursor.from_json(first.cursor).pending == {"2013-10-08": False}

    with partition_loading_context(effective_dt=datetime(2013, 10, 8, 0, 30, tzinfo=CHICAGO)):
        second = tick(tmp_path, first.cursor, definitions)
        third = tick(tmp_path, second.cursor, definitions)
    assert [r.partition_key for r in second.run_requests] == ["2013-10-08"]
    assert RawFilesCursor.from_json(second.cursor).pending == {}
    assert not third.run_requests


def test_sessions_before_the_first_partition_are_never_requested(home):
    config = SpymasterConfig(home=home)
    raw_dir = (home / "raw").resolve()
    catalog = RawCatalog(raw_dir)
    infos = [i for i in catalog.files() if i.path.name < "glbx-mdp3-20131012"]
    later_start = DailyPartitionsDefinition(start_date="2013-10-09", timezone="America/Chicago")

    plan = plan_session_runs(
        RawFilesCursor(),
        infos,
        raw_dir,
        config,
        rth_sessions=lambda lo, hi: sessions_with_rth_data(catalog, config, lo, hi),
        bronze_written=lambda day: False,
        partitions_def=later_start,
    )

    assert [r.partition_key for r in plan.runs] == ["2013-10-09", "2013-10-10", "2013-10-11"]
    assert plan.cursor.pending == {}
    assert any(n.startswith("2013-10-07: outside") for n in plan.notes)


def test_sessions_reading_file_across_a_dst_change():
    # 2013-11-03 (Sunday) ends US daylight time: session 11-04 opens 18:00 EST = 23:00 UTC on 11-03.
    info = inspect_file(SAMPLE_RAW / GLBX / "glbx-mdp3-20131118.ohlcv-1m.dbn.zst")
    # Records 11-18 00:00-23:59 UTC: session 11-18 (to 22:00 UTC) and the opening of 11-19 (from 23:00 UTC).
    assert sessions_reading_file(info, SpymasterConfig()) == [date(2013, 11, 18), date(2013, 11, 19)]


def test_cursor_round_trip_and_bad_cursor():
    cursor = RawFilesCursor(files={"GLBX.MDP3/a.dbn.zst": (10, 20)}, pending={"2024-05-01": True})
    assert RawFilesCursor.from_json(cursor.to_json()) == cursor
    assert RawFilesCursor.from_json(None) == RawFilesCursor()
    with pytest.raises(ValueError, match="reset the cursor"):
        RawFilesCursor.from_json('{"files": []}')


def test_overwrite_run_config_is_valid_for_the_session_job(definitions):
    job = definitions.resolve_job_def("materialize_session_job")
    run_config = bronze_overwrite_run_config()
    assert "bronze_futures_ohlcv_1m" in run_config["ops"] and "bronze_options_trades" in run_config["ops"]
    validate_run_config(job, run_config)
    assert raw_files_sensor.minimum_interval_seconds == 60


def test_a_session_dropped_into_raw_is_materialized_by_the_sensors_run(tmp_path, definitions):
    """Done-when of the daily loop: files of a new session land in raw/, the sensor requests its
    partition, and the requested run (materialize_session_job) writes it bronze to gold."""
    from spymaster_resources.lake import Lake

    raw = tmp_path / "raw" / GLBX
    raw.mkdir(parents=True)
    for utc_day in ("20131006", "20131007"):
        for schema in ("definition", "ohlcv-1m"):
            shutil.copy2(SAMPLE_RAW / GLBX / f"glbx-mdp3-{utc_day}.{schema}.dbn.zst", raw)
    first = tick(tmp_path, None, definitions)
    assert [r.partition_key for r in first.run_requests] == ["2013-10-07"]
    # A new session's files are dropped in: only that session is requested.
    for schema in ("definition", "ohlcv-1m"):
        shutil.copy2(SAMPLE_RAW / GLBX / f"glbx-mdp3-20131008.{schema}.dbn.zst", raw)
    second = tick(tmp_path, first.cursor, definitions)
    requested = [r.partition_key for r in second.run_requests]
    assert "2013-10-08" in requested
    resources = {"spymaster": SpymasterResource(home=str(tmp_path))}
    job = definitions.resolve_job_def("materialize_session_job")
    for request in [*first.run_requests, *[r for r in second.run_requests if r.partition_key == "2013-10-08"]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = job.execute_in_process(partition_key=request.partition_key, run_config=request.run_config, resources=resources)
        assert result.success, request.partition_key
    lake = Lake(tmp_path / "lake")
    assert lake.dates("gold", "gold_signals") == [date(2013, 10, 7), date(2013, 10, 8)]
    assert lake.read("gold", "gold_episodes", date(2013, 10, 8)).height > 0


def test_many_consecutive_new_sessions_are_one_range_run(tmp_path, definitions):
    import importlib.util
    from datetime import date as _date

    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from spymaster_assets.automation.sensors import RANGE_RUN_MIN_SESSIONS

    spec = importlib.util.spec_from_file_location("generate_session", SAMPLE_RAW.parents[2] / "scripts" / "generate_session.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    home = tmp_path / "home"
    gen.generate_bars_sessions(_date(2024, 1, 2), RANGE_RUN_MIN_SESSIONS + 2, home / "raw" / GLBX)
    result = tick(home, None, definitions)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key is None
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "2024-01-02"
    # The last generated session (CME calendar: 2024-01-15 is a holiday); the file of the last
    # session also reaches into the next Globex session, which has no regular-hours bars.
    last = gen.trading_sessions(_date(2024, 1, 2), _date(2024, 2, 15))[RANGE_RUN_MIN_SESSIONS + 1].isoformat()
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == last
    assert request.run_key.startswith(f"2024-01-02..{last}:")
    # The same state of raw/ asks for the same run (Dagster drops a run key it has seen).
    assert tick(home, None, definitions).run_requests[0].run_key == request.run_key


def test_each_configured_product_gets_its_own_runs_job_and_cursor(tmp_path):
    """ES and GC files in one raw/: GC's sessions are requested on GC's job with run keys of its own,
    and ES's requests, keys and cursor fields are what an ES-only root gets."""
    import json

    from spymaster_assets.definitions import build_definitions
    from conftest import REPO

    defs = build_definitions(("ES", "GC"))
    sensor = defs.resolve_sensor_def("raw_files_sensor")

    shutil.copytree(SAMPLE_RAW, tmp_path / "raw")
    shutil.copytree(REPO / "data" / "sample" / "GC" / "raw", tmp_path / "raw" / "GC")
    (tmp_path / "config.json").write_text(json.dumps({"products": ["ES", "GC"]}))
    context = build_sensor_context(cursor=None, resources={"spymaster": SpymasterResource(home=str(tmp_path))}, definitions=defs)
    result = sensor.evaluate_tick(context)
    es = [r for r in result.run_requests if r.job_name == "materialize_session_job"]
    gc = [r for r in result.run_requests if r.job_name == "materialize_session_job_gc"]
    assert len(es) + len(gc) == len(result.run_requests)
    assert [r.partition_key for r in es] == SAMPLE_RTH_SESSIONS
    assert [r.partition_key for r in gc] == ["2013-10-07", "2013-10-08", "2013-10-09", "2013-10-10", "2013-10-11"]
    assert all(r.run_key.startswith(f"GC:{r.partition_key}:GC/GLBX.MDP3/") for r in gc)
    assert not any("GC/" in r.run_key for r in es)
    cursor = json.loads(result.cursor)
    assert len(RawFilesCursor.from_json(result.cursor).files) == len(list(SAMPLE_RAW.rglob("*.dbn.zst")))  # ES's, at the top level
    assert len(RawFilesCursor.from_json(cursor["products"]["GC"]).files) == 10
    again = sensor.evaluate_tick(build_sensor_context(cursor=result.cursor, resources={"spymaster": SpymasterResource(home=str(tmp_path))}, definitions=defs))
    assert not again.run_requests
