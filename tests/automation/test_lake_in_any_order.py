"""The lake is a function of the raw files and the configuration only: backfilled out of order, split
into other ranges or built with another number of workers, every silver and gold partition and every
model file equals the lake built session by session in date order (``materialized_home``)."""

from __future__ import annotations

import pytest

from spymaster_assets.automation.backfill import backfill
from spymaster_core.config import SpymasterConfig

from conftest import CHAIN_CONFIG, CHAIN_SESSIONS, assert_same_lake, sample_root


@pytest.fixture()
def chain_root(tmp_path, monkeypatch):
    """A data root holding the raw files of the chain sessions, with the chain configuration (its own Dagster instance)."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return sample_root(tmp_path / "home", through="20131011", config=CHAIN_CONFIG)


def _backfill_in_pieces(home, pieces, workers):
    config = SpymasterConfig(home=home)
    for first, last in pieces:
        backfill(config, CHAIN_SESSIONS[first], CHAIN_SESSIONS[last], quiet=True, workers=workers)


def test_the_later_half_backfilled_first_gives_the_in_order_lake(chain_root, materialized_home):
    # Oct 9 is built before Oct 8 exists: its silver_bars must still warm up on Oct 8's bars (from raw/),
    # and its gold, rebuilt once the earlier sessions land, must rest on exactly the in-order history.
    _backfill_in_pieces(chain_root, [(2, 4), (0, 1)], workers=2)
    assert_same_lake(chain_root / "lake", materialized_home / "lake")


@pytest.mark.slow
def test_other_ranges_and_one_worker_give_the_in_order_lake(chain_root, materialized_home):
    _backfill_in_pieces(chain_root, [(0, 1), (4, 4), (2, 3)], workers=1)
    assert_same_lake(chain_root / "lake", materialized_home / "lake")
