"""The sessions that failed inside one range run, shared by the run's steps (and its processes).

A backfill is one Dagster run over a range of sessions. When one session fails in a step (a bad
file, a blocking check), the rest of the range goes on: later steps must skip that session, and
whoever launched the run (the CLI) must learn which sessions failed and why. Steps may run in
separate processes (multiprocess executor), so the list is a JSON file under the data root,
``<home>/.runs/<run_id>.json``, updated under a file lock and replaced atomically.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

from filelock import FileLock

RUNS_DIR = ".runs"


class RunFailures:
    """Failed sessions of run ``run_id`` under data root ``home``: day -> {"asset", "reason"}.

    ``started_at`` (Unix seconds) is when the first step of the run opened the list: partitions of a
    failed session modified after it were written by this run (and are removed with the session).
    """

    def __init__(self, home: Path, run_id: str):
        self.path = Path(home) / RUNS_DIR / f"{run_id}.json"
        self._lock = FileLock(str(self.path) + ".lock", timeout=60)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if not self.path.is_file():
                self._write({"started_at": time.time(), "failed": {}})

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"started_at": time.time(), "failed": {}}

    def _write(self, state: dict) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    @property
    def started_at(self) -> float:
        """Unix seconds at which the run's first range step opened the list."""
        return float(self._read()["started_at"])

    def sessions(self) -> dict[date, dict[str, str]]:
        """Failed sessions so far: day -> {"asset": step that failed it, "reason": innermost error}."""
        return {date.fromisoformat(k): v for k, v in self._read()["failed"].items()}

    def record(self, day: date, asset: str, reason: str) -> None:
        """Record that ``day`` failed in ``asset`` (the first failure of a session is kept)."""
        with self._lock:
            state = self._read()
            state["failed"].setdefault(day.isoformat(), {"asset": asset, "reason": reason})
            self._write(state)

    def discard(self) -> None:
        """Delete the list (the launcher read it)."""
        for path in (self.path, Path(str(self.path) + ".lock")):
            path.unlink(missing_ok=True)
