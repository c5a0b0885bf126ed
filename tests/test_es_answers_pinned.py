"""The ES answers on the committed sample are pinned: refactors (products, partitions, history) must not move them.

The fixtures were written by the code of commit e4c4ec2, before the product table:

- ``tests/fixtures/es_chain/``: gold_signals, gold_signal_neighbours and silver_levels of the five
  chain sessions materialized as ``conftest.materialized_home`` does (CHAIN_CONFIG: a model from two
  sessions, a blend from one), compared in the default run at no extra cost;
- ``tests/fixtures/es_sample/``: the same tables of all 14 sample sessions as `spymaster demo` built
  them with the default configuration of the time (refit cadences 5), compared in the slow pass (a
  14-session backfill).

Today's code must give the same rows: strings, dates and integers exactly, floats within 1e-12 (the
pipeline is deterministic on one machine; the tolerance only absorbs a different CPU's last bit).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import SAMPLE_RAW

FIXTURES = Path(__file__).parent / "fixtures"
PINNED = {"gold_signals": "gold", "gold_signal_neighbours": "gold", "silver_levels": "silver"}


def _table(home: Path, tier: str, table: str) -> pl.DataFrame:
    from spymaster_core.config import SpymasterConfig
    from spymaster_resources.lake import Lake

    lake = Lake(SpymasterConfig.for_home(home).lake_dir)
    return pl.concat([lake.read(tier, table, d) for d in lake.dates(tier, table)], how="diagonal_relaxed")


def _assert_pinned(home: Path, fixtures: Path, table: str) -> None:
    pinned = pl.read_parquet(fixtures / f"{table}.parquet")
    ours = _table(home, PINNED[table], table)
    assert ours.height == pinned.height, f"{table}: {ours.height} rows, pinned {pinned.height}"
    assert_frame_equal(ours.select(pinned.columns), pinned, check_exact=False, rel_tol=0, abs_tol=1e-12)


@pytest.mark.parametrize("table", sorted(PINNED))
def test_es_chain_answers_equal_the_pinned_ones(materialized_home, table):
    _assert_pinned(materialized_home, FIXTURES / "es_chain", table)


@pytest.fixture(scope="module")
def sample_lake(tmp_path_factory) -> Path:
    """A data root with every sample session backfilled by the CLI (bronze to gold, no charts)."""
    from spymaster_assets.cli import main

    home = tmp_path_factory.mktemp("pinned")
    shutil.copytree(SAMPLE_RAW, home / "raw")
    # The configuration the fixtures were written with: the refit cadences were 5 then (20 since issue 19),
    # the kNN prior the partition base rate (the distance lookup since issue 20).
    (home / "config.json").write_text('{"model_retrain_sessions": 5, "normalization_refit_sessions": 5, "knn_prior": "partition_base_rate"}')
    assert main(["--home", str(home), "backfill", "--start", "2013-10-07", "--end", "2020-01-06", "--quiet", "--no-charts"]) == 0
    return home


@pytest.mark.slow  # a backfill of the 14 sessions: about 45 s, run by .ci/run's slow pass
@pytest.mark.parametrize("table", sorted(PINNED))
def test_es_sample_answers_equal_the_pinned_ones(sample_lake, table):
    _assert_pinned(sample_lake, FIXTURES / "es_sample", table)
