"""The lake on object storage (``lake_url``): the Lake API on fsspec's in-memory filesystem, and a
backfill of real sample sessions into a real S3 API (moto's server on loopback, reached by s3fs) that
writes the same lake as the in-process runs of a local data root and answers ``query`` alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import MissingPartitionError
from spymaster_resources.lake import Lake
from spymaster_resources.lake_paths import file_fingerprint, lake_path, local_directory, replace_directory

from servers import free_port
from conftest import CHAIN_CONFIG, CHAIN_SESSIONS, SAMPLE_RAW, assert_same_lake

D1, D2 = date(2024, 1, 2), date(2024, 1, 3)
SPYMASTER = Path(sys.executable).parent / "spymaster"


@pytest.fixture()
def memory_lake() -> Lake:
    """A lake at a fresh ``memory://`` URL (fsspec's in-process filesystem)."""
    return Lake(f"memory://lake-{uuid.uuid4().hex}")


def test_a_lake_url_is_object_storage_and_a_local_path_or_file_url_is_not(tmp_path):
    assert Lake(f"memory://x-{uuid.uuid4().hex}").remote
    assert not Lake(tmp_path).remote and not Lake(f"file://{tmp_path}").remote
    assert lake_path(f"file://{tmp_path}") == tmp_path
    assert SpymasterConfig(home=tmp_path).lake_dir == tmp_path / "lake"
    assert SpymasterConfig(home=tmp_path, lake_url=f"file://{tmp_path}/elsewhere").lake_dir == tmp_path / "elsewhere"
    assert str(SpymasterConfig(home=tmp_path, lake_url="memory://bucket/lake").lake_dir) == "memory://bucket/lake"
    with pytest.raises(ValueError, match="nosuchproto://b/lake: no filesystem"):
        lake_path("nosuchproto://b/lake")


def test_partitions_round_trip_on_object_storage(memory_lake):
    frame = pl.DataFrame({"session_date": [D1, D1], "x": [1.5, 2.5], "name": ["a", "b"]})
    memory_lake.write("gold", "gold_episodes", D1, frame)
    memory_lake.write("gold", "gold_episodes", D2, frame.with_columns(pl.lit(D2).alias("session_date")))
    assert memory_lake.read("gold", "gold_episodes", D1).equals(frame)
    assert memory_lake.read_many("gold", "gold_episodes", [D1, D2], ["x"])["x"].to_list() == [1.5, 2.5, 1.5, 2.5]
    assert memory_lake.dates("gold", "gold_episodes") == [D1, D2] and memory_lake.dates_before("gold", "gold_episodes", D2) == [D1]
    assert memory_lake.row_count("gold", "gold_episodes", D1) == 2 and memory_lake.row_count("gold", "gold_episodes", date(2024, 1, 4)) == 0
    assert memory_lake.schema("gold", "gold_episodes", D1) == frame.schema
    assert memory_lake.scan("gold", "gold_episodes", D2).select(pl.col("x").sum()).collect().item() == 4.0
    assert pl.concat(memory_lake.iter_batches("gold", "gold_episodes", D1, batch_rows=1, columns=["name", "absent"])).equals(frame.select("name"))
    with pytest.raises(MissingPartitionError, match="gold_episodes has no partition 2024-01-04"):
        memory_lake.read("gold", "gold_episodes", date(2024, 1, 4))
    with memory_lake.stream_writer("silver", "silver_bars", D1) as writer:
        writer.write(frame.head(1))
        writer.write(frame.tail(1))
    assert memory_lake.read("silver", "silver_bars", D1).equals(frame)


def test_a_rewritten_partition_changes_its_fingerprint_and_the_memo_rereads_it(memory_lake):
    memory_lake.write("gold", "gold_episodes", D1, pl.DataFrame({"x": [1]}))
    path = memory_lake.partition_path("gold", "gold_episodes", D1)
    before = file_fingerprint(path)
    assert memory_lake.read("gold", "gold_episodes", D1)["x"].to_list() == [1]
    memory_lake.write("gold", "gold_episodes", D1, pl.DataFrame({"x": [2, 3]}))
    assert file_fingerprint(path) != before
    assert memory_lake.read("gold", "gold_episodes", D1)["x"].to_list() == [2, 3]
    assert set(memory_lake.partition_files("gold", "gold_episodes")) == {D1}


def test_a_directory_partition_is_replaced_whole_and_read_through_a_local_copy(memory_lake):
    final = memory_lake.partition_dir("gold", "gold_model", D1)

    def first(root: Path) -> None:
        (root / "model.json").write_text("old model")
        (root / "stale.bin").write_bytes(b"x")
        (root / "meta.json").write_text("{}")

    def second(root: Path) -> None:
        (root / "sub").mkdir()
        (root / "sub" / "index.faiss").write_bytes(b"new index")
        (root / "meta.json").write_text('{"v": 2}')

    replace_directory(final, first)

    def failing(root: Path) -> None:
        (root / "meta.json").write_text("half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        replace_directory(final, failing)
    assert (final / "model.json").read_text() == "old model"  # a failed build leaves the old directory whole
    replace_directory(final, second)
    assert not (final / "stale.bin").exists() and not (final / "model.json").exists()
    with local_directory(final) as local:
        assert isinstance(local, Path) and (local / "sub" / "index.faiss").read_bytes() == b"new index"
        assert json.loads((local / "meta.json").read_text()) == {"v": 2}
    assert not local.exists()  # the temporary copy is gone
    assert memory_lake.dates("gold", "gold_model", marker="meta.json") == [D1]


# ----------------------------------------------------------------------------- a real S3 API


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1:<free port> with bucket ``spymaster-test``; stopped at the end."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _s3(endpoint).mkdir("spymaster-test")
        yield endpoint
    finally:
        server.stop()


def _s3(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)


def _s3_env(endpoint: str) -> dict[str, str]:
    """The environment of a process using the lake on the test server: the standard AWS variables."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return {**env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}


def _spymaster(home: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPYMASTER), "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=600)


def _query(home: Path, env: dict, *args: str) -> dict:
    """``spymaster query ... --json`` of ``home``, parsed (asserts that it succeeded)."""
    done = _spymaster(home, env, "query", *args, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_backfill_into_s3_writes_the_lake_of_a_local_run_and_answers_alike(tmp_path, s3_endpoint, materialized_home, monkeypatch):
    """Five real sessions backfilled by the CLI (range run, a process pool) into s3://spymaster-test/lake."""
    home = tmp_path / "home"
    raw = home / "raw" / "GLBX.MDP3"
    raw.mkdir(parents=True)
    for src in SAMPLE_RAW.rglob("*.dbn.zst"):
        if src.name[10:18] <= "20131011":
            shutil.copy2(src, raw / src.name)
    (home / "config.json").write_text(json.dumps({**CHAIN_CONFIG, "lake_url": "s3://spymaster-test/lake"}))
    env = _s3_env(s3_endpoint)
    first, last = CHAIN_SESSIONS[0].isoformat(), CHAIN_SESSIONS[-1].isoformat()
    done = _spymaster(home, env, "backfill", "--start", first, "--end", last, "--quiet", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (home / "lake").exists()  # nothing went to the local disk

    s3 = _s3(s3_endpoint)
    copy = tmp_path / "copy"
    s3.get("spymaster-test/lake/", str(copy), recursive=True)
    assert_same_lake(copy, materialized_home / "lake")

    # The same answer as the local lake's, from the index and model read back from S3.
    asked = ["--date", "2013-10-11", "--time", "10:30"]
    answer = _query(home, env, *asked)
    assert answer == _query(materialized_home, {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}, *asked)
    assert answer["levels"] and answer["warning"] is None

    # A re-run finds every session built on the current history (fingerprints from one listing per table).
    again = _spymaster(home, env, "backfill", "--start", first, "--end", last, "--quiet")
    assert again.returncode == 0 and "5 already up to date" in again.stdout + again.stderr, again.stdout + again.stderr

    # An earlier session rewritten with other content (a new ETag): the later answers say their history
    # changed, and the next backfill rebuilds them.
    for name, value in _s3_env(s3_endpoint).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    lake = Lake("s3://spymaster-test/lake")
    episodes = lake.read("gold", "gold_episodes", CHAIN_SESSIONS[1])
    lake.write("gold", "gold_episodes", CHAIN_SESSIONS[1], episodes.head(episodes.height - 1))
    warned = _query(home, env, *asked)["warning"]
    assert "rebuilt 2013-10-08" in warned, warned
    rebuilt = _spymaster(home, env, "backfill", "--start", first, "--end", last, "--quiet")
    assert rebuilt.returncode == 0 and "materialized 3 sessions: 2013-10-09 .. 2013-10-11" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
    assert _query(home, env, *asked)["warning"] is None
