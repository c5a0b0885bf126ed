"""The Dagster instance of a data root, safe against concurrent commands and dead runs.

- ``<data root>/.dagster`` is the instance's home (DAGSTER_HOME) unless DAGSTER_HOME is set, with the
  project's ``dagster.yaml`` copied in, so CLI runs show in the UI started by ``scripts/ui.sh``.
- The first use of a fresh home creates its SQLite storage: two commands doing it at once raced
  (``table runs already exists``). It now happens under a file lock (``filelock``).
- A CLI run tags itself with the process id and host. A run the CLI left STARTED when its process
  died (``kill -9``, a crash, a reboot) is marked failed by the next CLI start, so the queue (one run
  at a time) is never blocked by a ghost. Runs launched by the daemon are watched by Dagster's run
  monitoring (``dagster.yaml``).
- ``data_root_lock`` serializes backfills of one data root: a second one waits for the first.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from spymaster_core.errors import SpymasterError

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Tags every run started by the CLI carries (the abandoned-run sweep reads them).
LAUNCHED_BY_TAG = "spymaster/launched_by"
PID_TAG = "spymaster/pid"
HOST_TAG = "spymaster/host"
#: Dagster's switch for one planned-materialization event per asset per range run (not per partition).
PLANNED_SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def cli_run_tags() -> dict[str, str]:
    """Tags of a run started by this process: who launched it, its pid and host."""
    return {LAUNCHED_BY_TAG: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def dagster_home_of(home: Path) -> Path:
    """DAGSTER_HOME for data root ``home``: $DAGSTER_HOME when set, else ``<home>/.dagster`` (created, dagster.yaml copied)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    dagster_home = (Path(home) / ".dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    template = REPO_ROOT / "dagster.yaml"
    if template.is_file() and not (dagster_home / "dagster.yaml").exists():
        tmp = dagster_home / f".dagster.yaml.{os.getpid()}.tmp"
        shutil.copy(template, tmp)
        os.replace(tmp, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def open_instance(home: Path):
    """The Dagster instance of data root ``home``, its storage created under a lock; abandoned CLI runs marked failed.

    Returns (instance, the run ids marked failed).
    """
    from dagster import DagsterInstance

    dagster_home = dagster_home_of(home)
    # A range run otherwise writes one "materialization planned" event per partition per asset
    # before it starts (5,500 SQLite writes for a year of 22 assets); with this Dagster setting it
    # writes one per asset holding the partition subset. Its cost: a failed range run does not mark
    # its partitions failed in the UI; spymaster records failed sessions itself (run_failures).
    os.environ.setdefault(PLANNED_SUBSET_ENV, "true")
    with FileLock(str(dagster_home / ".storage-init.lock"), timeout=300):
        instance = DagsterInstance.get()
        instance.get_runs(limit=1)  # forces the run storage (and its schema) to exist before the lock is released
    return instance, mark_abandoned_runs(instance)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def mark_abandoned_runs(instance) -> list[str]:
    """Mark failed every run started by the CLI on this host whose process is gone but which is still in progress.

    Returns the run ids marked. A run of a live process, of another host or not started by the CLI
    is left alone (the daemon's run monitoring watches the runs it launched).
    """
    from dagster import DagsterRunStatus, RunsFilter

    in_progress = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.CANCELING]
    host = socket.gethostname()
    marked = []
    for run in instance.get_runs(filters=RunsFilter(statuses=in_progress, tags={LAUNCHED_BY_TAG: "cli"})):
        pid = run.tags.get(PID_TAG, "")
        if run.tags.get(HOST_TAG) != host or not pid.isdigit() or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the spymaster process {pid} that ran it ended without finishing it (killed or crashed)")
        marked.append(run.run_id)
    return marked


@contextmanager
def data_root_lock(home: Path, wait_seconds: float, on_wait=None) -> Iterator[None]:
    """Hold the backfill lock of data root ``home`` (``<home>/.backfill.lock``) for the duration.

    A second holder waits up to ``wait_seconds`` (``on_wait()`` is called once when it has to
    wait), then raises SpymasterError saying another backfill is running.
    """
    path = Path(home) / ".backfill.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        try:
            lock.acquire(timeout=wait_seconds)
        except Timeout:
            raise SpymasterError(f"another backfill holds {path} (still running after {wait_seconds:.0f} s); wait for it or stop it") from None
    try:
        yield
    finally:
        lock.release()
