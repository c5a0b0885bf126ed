"""Helpers for tests that start a server: a free loopback port, and stopping a process group whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group exists but belongs to someone else
        return True
    return True


def stop_process_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``process`` (started with ``start_new_session=True``: its session
    leader), then SIGKILL what is left after ``grace_s`` seconds.

    Raises AssertionError when a process of the group survives SIGKILL for 10 s.
    """
    pgid = process.pid  # start_new_session=True: the leader's pid is the group id
    if not _group_alive(pgid):
        process.poll()
        return
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, or its zombie keeps the group alive
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        process.poll()
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of group {pgid} survived SIGKILL")
