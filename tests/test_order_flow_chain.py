"""End to end with full-depth data: generated DBN (synthetic, small) -> every asset -> the order-flow blocks.

Two generated sessions: 2024-03-11 with ``mbp-10`` + ``trades`` (no MBO), 2024-03-12 with ``mbo`` +
``trades`` (the 10-level book rebuilt by the MBO engine). Both also carry ``definition`` and
``ohlcv-1m``. The data is simulated (scripts/generate_session.py), used here only because no public
source holds full-depth ES sessions; the real-data tests of each piece are under tests/bronze and
tests/silver.
"""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from spymaster_assets.gold.vectors import schema_dims, vector_columns
from spymaster_assets.silver.feature_names import book_columns, depth_columns, mbo_columns, tape_columns
from spymaster_resources.lake import Lake

from conftest import load_script
DEPTH_DAY, MBO_DAY = date(2024, 3, 11), date(2024, 3, 12)
SCALE = 0.004

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _generator():
    return load_script("generate_session")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    from dagster import DagsterInstance, materialize

    from spymaster_assets.definitions import all_assets
    from spymaster_resources import SpymasterResource

    gen = _generator()
    home = tmp_path_factory.mktemp("order_flow")
    raw = home / "raw" / "GLBX.MDP3"
    gen.generate_session(DEPTH_DAY, raw, schemas=("definition", "ohlcv-1m", "trades", "mbp-10"), scale=SCALE, seed=1)
    gen.generate_session(MBO_DAY, raw, schemas=("definition", "ohlcv-1m", "trades", "mbo"), scale=SCALE, seed=2)
    instance = DagsterInstance.ephemeral()
    resources = {"spymaster": SpymasterResource(home=str(home))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for day in (DEPTH_DAY, MBO_DAY):
            result = materialize(all_assets, partition_key=day.isoformat(), instance=instance, resources=resources)
            assert result.success, f"materialization of {day} failed"
    return home


def _lake(home: Path) -> Lake:
    return Lake(home / "lake")


def test_bronze_holds_the_front_month_order_flow(home):
    lake = _lake(home)
    for day, source in ((DEPTH_DAY, "mbp-10"), (MBO_DAY, "mbo")):
        trades = lake.read("bronze", "bronze_futures_trades", day)
        book = lake.scan("bronze", "bronze_futures_mbp10", day).select("ts_event", "source", "book_ok", "bid_px_00", "ask_px_00").collect()
        assert trades.height > 1000 and book.height > trades.height
        assert trades["instrument_id"].n_unique() == 1 and set(trades["side"].unique().to_list()) <= {"A", "B", "N"}
        assert book["source"].unique().to_list() == [source]
        good = book.filter(pl.col("book_ok"))
        assert good.height > 0.99 * book.height
        assert (good["bid_px_00"] < good["ask_px_00"]).all()  # never crossed where the book is trusted
        # Bars aggregated from these trades match the ohlcv-1m written beside them.
        ohlcv = lake.read("bronze", "bronze_futures_ohlcv_1m", day)
        assert int(ohlcv["volume"].sum()) == int(trades["size"].sum())


def test_a_full_depth_day_yields_every_order_flow_block(home):
    lake = _lake(home)
    expected = {DEPTH_DAY: "bars+tape+book+depth", MBO_DAY: "bars+tape+book+depth+mbo"}
    for day, families in expected.items():
        state = lake.read("silver", "silver_level_state", day)
        assert state["feature_families"].unique().to_list() == [families]
        present = tape_columns(_config()) + book_columns(_config()) + depth_columns(_config())
        if "mbo" in families:
            present += mbo_columns(_config())
        else:
            assert state.select(pl.all_horizontal(pl.col(mbo_columns(_config())).is_null())).to_series().all()
        # Each present feature is defined on most anchors (a few need a book or trades before T).
        defined = state.select(pl.col(present).is_not_null().mean())
        sparse = [c for c in present if defined[c][0] < 0.9 and not c.startswith("replenishment_ratio")]
        assert not sparse, f"{day}: features mostly null: {sparse}"
        assert state["tape_trade_rate_300s"].min() > 0 and state["depth_4t"].max() > 0


def test_episodes_carry_their_families_and_indexes_never_mix_schemas(home):
    lake = _lake(home)
    config = _config()
    episodes = lake.read("gold", "gold_episodes", MBO_DAY)
    assert episodes.height > 0
    assert episodes["feature_families"].unique().to_list() == ["bars+tape+book+depth+mbo"]
    vectors = episodes["vector"].to_numpy()
    assert vectors.shape[1] == len(vector_columns(config))
    assert np.isfinite(vectors[:, schema_dims(config, "bars+tape+book+depth+mbo")]).mean() > 0.95
    # The index as of the MBO day holds the depth day in the bars schema and in its own schema only.
    from spymaster_assets.gold.as_of import index_as_of

    indexes = index_as_of(lake, MBO_DAY, config)
    assert set(indexes.schemas) == {"bars", "bars+tape+book+depth"}
    assert indexes.indexes["bars+tape+book+depth"].dim == len(schema_dims(config, "bars+tape+book+depth"))
    # One earlier session is fewer than min_history_sessions: the day is answered in the bars schema.
    signals = lake.read("gold", "gold_signals", MBO_DAY)
    assert signals.height == episodes.height
    assert signals["vector_version"].str.ends_with("[bars]").all()


def _config():
    from spymaster_core.config import SpymasterConfig

    return SpymasterConfig()


@pytest.mark.parametrize("day", [DEPTH_DAY, MBO_DAY], ids=str)
def test_the_screen_answers_bar_by_bar_as_the_batch_tables_with_order_flow(home, day):
    """Train/serve parity with the tape, book, depth and MBO families: the screen's engine, fed the raw
    1-minute bars one by one with the lake's order-flow tables cut at each bar close, gives the batch
    silver_level_state and gold_signals rows at every anchor."""
    from spymaster_assets.screen.session import open_replay
    from spymaster_core.config import SpymasterConfig
    from spymaster_resources.raw_files import RawCatalog

    config = SpymasterConfig.for_home(home)
    session = open_replay(config, day, RawCatalog(config.raw_dir))
    closes = [close for bar in session.bars.iter_rows(named=True) for close in session.engine.add_minute(bar)]
    state = pl.concat([c.state for c in closes if c.state.height])
    batch_state = _lake(home).read("silver", "silver_level_state", day)
    assert state.height == batch_state.height and set(batch_state["feature_families"].to_list()) != {"bars"}
    assert state.select(batch_state.columns).equals(batch_state)
    signals = pl.concat([c.signals for c in closes if c.signals.height])
    assert signals.equals(_lake(home).read("gold", "gold_signals", day))


@pytest.mark.parametrize(
    ("day", "book_schema", "families"),
    [(DEPTH_DAY, "mbp-10", {"tape", "book", "depth"}), (MBO_DAY, "mbo", {"tape", "book", "depth", "mbo"})],
    ids=["mbp-10", "mbo"],
)
def test_the_live_feed_builds_the_order_flow_families_as_the_batch(home, day, book_schema, families):
    """Live parity with order flow: the day's ohlcv-1m, trades and mbp-10 (or MBO) records, sent in live
    order (a record when received, a 1-minute bar 1 s after its minute ends), through LiveFeed give the
    batch silver_level_state rows (order-flow features included) at every anchor, across a reconnect."""
    import databento as db

    from spymaster_assets.screen.live import FrontMonthBars, LiveFeed
    from spymaster_assets.screen.session import open_live, screen_start
    from spymaster_core.config import SpymasterConfig

    def arrival(record) -> int:
        return record.ts_event + 61_000_000_000 if str(record.rtype).endswith("ohlcv-1m") else record.ts_recv

    records = sorted(
        (r for path in sorted((home / "raw").rglob(f"*{day:%Y%m%d}.*.dbn.zst")) if any(s in path.name for s in (".ohlcv-1m.", ".trades.", f".{book_schema}.")) for r in db.DBNStore.from_file(path)),
        key=arrival,
    )

    class Client:
        def __init__(self, fail_after):
            self.fail_after, self.start = fail_after, None

        def subscribe(self, dataset, schema, symbols, stype_in, start=None):
            self.start = start

        def __iter__(self):
            for sent, record in enumerate(r for r in records if self.start is None or r.ts_event >= self.start.timestamp() * 1e9):
                if sent == self.fail_after:
                    raise ConnectionResetError("reset")
                yield record

        def stop(self):
            pass

    batch = _lake(home).read("silver", "silver_level_state", day)
    front = int(_lake(home).read("bronze", "bronze_futures_ohlcv_1m", day)["instrument_id"][0])
    for fail_after in (None, len(records) // 2):
        opened: list[Client] = []

        def client() -> Client:
            opened.append(Client(fail_after if not opened else None))
            return opened[-1]

        session = open_live(SpymasterConfig.for_home(home), day)
        closes = []
        take = session.engine.add_minute
        session.engine.add_minute = lambda bar, take=take, closes=closes: _record(closes, take, bar)
        feed = LiveFeed(session.engine, FrontMonthBars(front, screen_start(day)), client, schemas=("ohlcv-1m", "trades", book_schema), waits=lambda: iter([0.0] * 3), sleep=lambda s: None)
        list(feed.events())
        state = pl.concat([c.state for c in closes if c.state.height])
        assert families <= set("+".join(state["feature_families"].unique().to_list()).split("+"))
        assert state.select(batch.columns).equals(batch), f"fail_after={fail_after}"


def _record(closes: list, take, bar) -> list:
    """Call the engine's own add_minute and keep what it returns."""
    out = take(bar)
    closes.extend(out)
    return out
