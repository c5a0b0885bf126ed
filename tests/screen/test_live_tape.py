"""The live source with trades (the tape family), on generated DBN (SIMULATED: no public source holds
multi-day ES trades): trades and 1-minute bars sent in the order a live feed sends them give the batch
gold_signals of the session, tape features included; a reconnect's replay does not count a trade twice."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from datetime import date
from pathlib import Path

import databento as db
import pytest

from spymaster_assets.screen.live import FrontMonthBars, LiveFeed
from spymaster_assets.screen.session import open_live, screen_start
from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_resources.lake import Lake

REPO = Path(__file__).resolve().parents[2]
FIRST, DAY = date(2024, 3, 11), date(2024, 3, 12)


@pytest.fixture(scope="module")
def tape_home(tmp_path_factory) -> Path:
    from dagster import DagsterInstance, materialize

    from spymaster_assets.definitions import all_assets
    from spymaster_resources import SpymasterResource

    spec = importlib.util.spec_from_file_location("generate_session", REPO / "scripts" / "generate_session.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    home = tmp_path_factory.mktemp("tape")
    # With one earlier session the bars+tape index answers, so the tape features reach the answer.
    (home / "config.json").write_text(json.dumps({"min_history_sessions": 1}))
    for seed, day in enumerate((FIRST, DAY), start=1):
        gen.generate_session(day, home / "raw" / "GLBX.MDP3", schemas=("definition", "ohlcv-1m", "trades"), scale=0.004, seed=seed)
    instance = DagsterInstance.ephemeral()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for day in (FIRST, DAY):
            assert materialize(all_assets, partition_key=day.isoformat(), instance=instance, resources={"spymaster": SpymasterResource(home=str(home))}).success
    return home


def _arrivals(home: Path) -> list:
    """The day's ohlcv-1m and trades records in live order: a trade when received, a 1-minute bar when its minute ends."""
    records = []
    for path in sorted((home / "raw").rglob(f"*{DAY:%Y%m%d}.*.dbn.zst")):
        if ".ohlcv-1m." in path.name or ".trades." in path.name:
            records += list(db.DBNStore.from_file(path))
    return sorted(records, key=lambda r: r.ts_event + 60_000_000_000 if hasattr(r, "volume") and not hasattr(r, "side") else r.ts_recv)


class Client:
    def __init__(self, records, fail_after=None):
        self.records, self.fail_after, self.start, self.schemas = records, fail_after, None, []

    def subscribe(self, dataset, schema, symbols, stype_in, start=None):
        self.schemas.append(schema)
        self.start = start

    def __iter__(self):
        sent = 0
        for record in self.records:
            at = record.ts_event if hasattr(record, "side") else record.ts_event + 60_000_000_000
            if self.start is not None and record.ts_event < self.start.timestamp() * 1e9:
                continue
            if self.fail_after is not None and sent == self.fail_after:
                raise ConnectionResetError(f"reset after {at}")
            sent += 1
            yield record

    def stop(self):
        pass


def _answers(events) -> dict:
    return {(d["ts_utc"], a["level_kind"]): [a["p"][o] for o in OUTCOMES] + [a["smooth"]["BREAK"], a["vector_version"]] for n, d in events if n == "bar" for a in d["answers"]}


def test_live_trades_give_the_batch_answers_with_the_tape_family(tape_home):
    signals = Lake(tape_home / "lake").read("gold", "gold_signals", DAY)
    batch = {(r["ts_event"].isoformat(), r["level_kind"]): [r[f"p_{o.lower()}"] for o in OUTCOMES] + [r["p_break_smooth"], r["vector_version"]] for r in signals.iter_rows(named=True)}
    assert signals.height and all("tape" in v[-1] for v in batch.values())
    records = _arrivals(tape_home)
    opened: list[Client] = []

    def client(fail_after=None):
        opened.append(Client(records, fail_after if not opened else None))
        return opened[-1]

    for fail_after in (None, len(records) // 2):
        opened.clear()
        session = open_live(SpymasterConfig.for_home(tape_home), DAY)
        feed = LiveFeed(session.engine, FrontMonthBars(session.instrument_id, screen_start(DAY)), lambda: client(fail_after), schemas=("ohlcv-1m", "trades"), waits=lambda: iter([0.0] * 3), sleep=lambda s: None)
        events = list(feed.events())
        assert opened[0].schemas == ["ohlcv-1m", "trades"] and len(opened) == (1 if fail_after is None else 2)
        assert _answers(events) == batch
