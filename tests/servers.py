"""Helpers for tests that start a server: a free loopback port, stopping a process group whatever happens, and a running `spymaster serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def running_screen(home: Path, log: Path, drop_env: tuple[str, ...] = ("DAGSTER_HOME",), start_timeout_s: float = 60.0) -> Iterator[str]:
    """``spymaster serve`` on data root ``home`` in its own process group (output to ``log``, working
    directory ``log``'s folder, without the variables ``drop_env``): yields its base URL once
    ``/api/sessions`` answers, and stops the group on exit whatever happened.

    Raises RuntimeError with the log's tail when the server exits or does not answer within ``start_timeout_s``.
    """
    spymaster = Path(sys.executable).parent / "spymaster"
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen([str(spymaster), "--home", str(Path(home).resolve()), "serve", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=log.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/sessions", timeout=5).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"spymaster serve did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield url
    finally:
        stop_process_group(process)


def sse_events(url: str) -> list[tuple[str, dict]]:
    """Every (event, data) of a server-sent event stream (JSON data), read to its end."""
    import json
    import urllib.request

    events, name = [], None
    with urllib.request.urlopen(url, timeout=120) as response:
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[len("data: "):])))
    return events
