"""Spymaster runs Polars' lazy queries on the in-memory engine unless the user chose one."""

import os
import subprocess
import sys


def _affinity(env: dict[str, str]) -> str:
    code = "import spymaster_core, polars as pl; print(pl.Config.state()['POLARS_ENGINE_AFFINITY'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_importing_spymaster_sets_the_in_memory_engine():
    env = {k: v for k, v in os.environ.items() if k != "POLARS_ENGINE_AFFINITY"}
    assert _affinity(env) == "in-memory"


def test_a_users_engine_choice_is_kept():
    assert _affinity({**os.environ, "POLARS_ENGINE_AFFINITY": "streaming"}) == "streaming"
