"""The Dagster instance on a real PostgreSQL server (deploy/dagster.yaml) with the multiprocess executor.

A PostgreSQL 15 server from Debian's packages is started by the test itself (initdb into a temporary
directory, its own port and socket directory, stopped whatever the outcome). Two real sample sessions
are materialized through every asset by ``dagster job execute`` with the multiprocess executor (a
process per step, the instance shared through PostgreSQL); the lake they write equals the one the
in-process runs of the ``materialized_home`` fixture wrote for the same sessions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest

from servers import free_port
from conftest import CHAIN_CONFIG, CHAIN_SESSIONS, SAMPLE_RAW

pytestmark = pytest.mark.slow  # about 6 minutes: a process per step loads the definitions each time

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SESSIONS = CHAIN_SESSIONS[:2]

#: A definitions file whose session job runs a process per step (the daily job runs in process).
MULTIPROCESS_DEFS = '''
from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor
from spymaster_assets.definitions import all_assets, defs

job = define_asset_job(
    "materialize_session_multiprocess",
    selection=AssetSelection.all() - AssetSelection.groups("catalog", "tuning"),
    executor_def=multiprocess_executor.configured({"max_concurrent": 2}),
)
multiprocess_defs = Definitions.merge(defs, Definitions(jobs=[job]))
'''


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as the postgres user when we are root (initdb refuses root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1:<free port> with database ``dagster``; stopped at the end."""
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL 15 server binaries not found in {PG_BIN} (apt-get install postgresql-15)")
    # Not under pytest's temporary root: it is private to root (0700) and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="spymaster-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    port = free_port()
    _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "start",
                  "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"])
    try:
        _as_postgres([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster"])
        yield {"DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/dagster", "port": port}
    finally:
        subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_multiprocess_runs_on_a_postgres_instance_write_the_same_lake(postgres, materialized_home, tmp_path):
    home = tmp_path / "home"
    raw = home / "raw" / "GLBX.MDP3"
    raw.mkdir(parents=True)
    for src in SAMPLE_RAW.rglob("*.dbn.zst"):
        if src.name[10:18] <= SESSIONS[-1].strftime("%Y%m%d"):
            shutil.copy2(src, raw / src.name)
    (home / "config.json").write_text(json.dumps(CHAIN_CONFIG))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    defs_file = tmp_path / "multiprocess_defs.py"
    defs_file.write_text(MULTIPROCESS_DEFS)
    env = {**os.environ, "DAGSTER_PG_URL": postgres["DAGSTER_PG_URL"], "DAGSTER_HOME": str(dagster_home), "SPYMASTER_HOME": str(home)}
    dagster = Path(sys.executable).with_name("dagster")
    for day in SESSIONS:
        done = subprocess.run(
            [str(dagster), "job", "execute", "-f", str(defs_file), "-a", "multiprocess_defs", "-j", "materialize_session_multiprocess",
             "--tags", json.dumps({"dagster/partition": day.isoformat()})],
            env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "RUN_SUCCESS" in done.stdout + done.stderr

    # The runs and their events are in PostgreSQL.
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=postgres["port"], user="postgres", dbname="dagster") as con:
        with con.cursor() as cur:
            cur.execute("select status from runs")
            assert sorted(r[0] for r in cur.fetchall()) == ["SUCCESS"] * len(SESSIONS)
            cur.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")
            assert cur.fetchone()[0] >= 20 * len(SESSIONS)

    # The same lake as the in-process runs: every table of these sessions, frame for frame.
    compared = 0
    for part in sorted((materialized_home / "lake").glob("*/*/date=*/part-0.parquet")):
        day = part.parent.name[5:]
        if day not in {d.isoformat() for d in SESSIONS}:
            continue
        twin = home / "lake" / part.relative_to(materialized_home / "lake")
        assert twin.is_file(), f"{twin} was not written by the multiprocess runs"
        assert pl.read_parquet(twin).equals(pl.read_parquet(part)), part.relative_to(materialized_home)
        compared += 1
    # Bars-only sessions: bronze 2, silver 4, gold 6 tables (no order-flow or options partition).
    assert compared >= 12 * len(SESSIONS)
