"""What every Spymaster package builds on: the typed configuration, the tuned parameter files and the errors.

Depends on no other Spymaster package; ``spymaster_resources`` (IO) builds on it and
``spymaster_assets`` (Dagster assets and domain code) on both, so imports run one way.
"""

import os as _os

import polars as _pl

# Polars 2 runs a lazy query on the streaming engine by default, which costs about 0.25 ms more
# per collect than the in-memory engine; a session's tables are small and pandera collects once per
# check, so that overhead was a quarter of gold_signals' time. POLARS_ENGINE_AFFINITY still wins.
if "POLARS_ENGINE_AFFINITY" not in _os.environ:
    _pl.Config.set_engine_affinity("in-memory")
