"""Replay: bar by bar, the probabilities seen live (gold_signals) and the outcome that followed (hindsight)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from spymaster_assets.cli import main
from spymaster_core.config import LEVEL_KINDS, OUTCOMES, SpymasterConfig
from spymaster_core.errors import SpymasterError
from spymaster_assets.gold.replay import format_replay, replay, replay_rows, replay_table
from spymaster_resources.lake import Lake

UTC = timezone.utc
DAY = date(2013, 10, 10)  # EDT: New York = UTC - 4 h
CFG = SpymasterConfig()
TS = pl.Datetime("ns", "UTC")


def at(hh: int, mm: int) -> datetime:
    """UTC instant of New York wall time hh:mm on DAY."""
    return datetime(2013, 10, 10, hh + 4, mm, tzinfo=UTC)


def small_session():
    """2-minute bars closing 09:30 (before the window), 09:32, 09:34, 09:36, 12:32 (after); approaches at 09:34 only."""
    closes = [at(9, 30), at(9, 32), at(9, 34), at(9, 36), at(12, 32)]
    bars = pl.DataFrame(
        {
            "bar_minutes": [2] * 5 + [1],
            "ts_close": [*closes, at(9, 33)],
            "close": [100.0, 101.0, 102.0, 103.0, 104.0, 101.5],
            "atr_points": [1.0, 1.0, 2.0, 2.0, 2.0, None],
        },
        schema_overrides={"bar_minutes": pl.Int8, "ts_close": TS},
    )
    kinds = ["EMA_20", "PM_HIGH"]  # alphabetical order differs from LEVEL_KINDS order
    probs = {"EMA_20": (0.2, 0.5, 0.3), "PM_HIGH": (0.6, 0.3, 0.1)}
    signals = pl.DataFrame(
        {
            "ts_event": [at(9, 34)] * 2,
            "level_kind": kinds,
            "direction": ["DOWN", "UP"],
            "approach_id": [0, 0],
            **{f"p_{c}{s}": [probs[k][i] for k in kinds] for i, c in enumerate(("break", "reject", "chop")) for s in ("", "_lo", "_hi", "_smooth")},
            "effective_sample_size": [4.0, 2.0],
            "n_neighbours": [6, 3],
            **{f"base_{c}": [1 / 3, 1 / 3] for c in ("break", "reject", "chop")},
            "vector_version": ["v2[bars]"] * 2,
        },
        schema_overrides={"ts_event": TS, "approach_id": pl.Int32, "n_neighbours": pl.Int32},
    )
    episodes = pl.DataFrame(
        {
            "ts_event": [at(9, 34)] * 2,
            "level_kind": kinds,
            "distance_atr": [1.5, -0.5],
            "outcome": ["CHOP", "BREAK"],
            "ambiguous": [False, False],
            "horizon_complete": [True, True],
        },
        schema_overrides={"ts_event": TS},
    )
    outcomes = pl.DataFrame(
        {
            "ts_event": [at(9, 34)] * 2,
            "level_kind": kinds,
            "level_price": [99.0, 103.0],
            "anchor_close": [102.0, 102.0],
            "first_event_ts": [None, at(9, 37)],
            "time_to_event_s": [None, 180.0],
            "mfe_atr": [0.2, 1.1],
            "mae_atr": [0.1, 0.0],
        },
        schema_overrides={"ts_event": TS, "first_event_ts": TS},
    )
    return bars, signals, episodes, outcomes


def test_replay_lists_every_anchor_bar_with_its_approaches():
    rows = replay_rows(replay_table(*small_session(), CFG, DAY), DAY)
    assert [r["time"] for r in rows] == ["09:32", "09:34", "09:36"]  # window (09:30, 12:30], 2-minute bars only
    assert [r["close"] for r in rows] == [101.0, 102.0, 103.0]
    assert rows[0]["levels"] == [] and rows[2]["levels"] == []
    pm, ema = rows[1]["levels"]
    assert (pm["level_kind"], ema["level_kind"]) == ("PM_HIGH", "EMA_20")  # LEVEL_KINDS order
    assert pm["probabilities"] == {"BREAK": 0.6, "REJECT": 0.3, "CHOP": 0.1}
    assert pm["smoothed"] == pm["probabilities"] and pm["effective_sample_size"] == 2.0
    assert (pm["outcome"], pm["time_to_outcome_min"], pm["outcome_time"]) == ("BREAK", 3.0, "09:37")
    assert (ema["outcome"], ema["time_to_outcome_min"], ema["outcome_time"]) == ("CHOP", None, None)
    assert (pm["level_price"], pm["direction"], pm["distance_atr"]) == (103.0, "UP", -0.5)


def test_replay_level_filter_and_errors():
    bars, signals, episodes, outcomes = small_session()
    rows = replay_rows(replay_table(bars, signals, episodes, outcomes, CFG, DAY, "EMA_20"), DAY)
    assert len(rows) == 3 and [lvl["level_kind"] for r in rows for lvl in r["levels"]] == ["EMA_20"]
    with pytest.raises(ValueError, match="unknown level kind"):
        replay_table(bars, signals, episodes, outcomes, CFG, DAY, "VWAP")
    with pytest.raises(ValueError, match="no gold_episodes/silver_outcomes row"):
        replay_table(bars, signals, episodes.filter(pl.col("level_kind") == "EMA_20"), outcomes, CFG, DAY)


def test_replay_text_marks_live_and_hindsight():
    rows = replay_rows(replay_table(*small_session(), CFG, DAY), DAY)
    text = format_replay(rows, DAY, horizon_minutes=16)
    assert "seen live" in text and "hindsight" in text
    lines = text.splitlines()
    assert any(line.startswith("09:32") and "no level in the approach zone" in line for line in lines)
    pm_line = next(line for line in lines if "PM_HIGH" in line)
    assert pm_line.startswith("09:34") and "BREAK" in pm_line and "3 min" in pm_line and "0.60" in pm_line


def test_replay_on_the_materialized_sample(materialized_home):
    config = SpymasterConfig(home=materialized_home)
    rows = replay(config, DAY)
    times = [r["ts_event"] for r in rows]
    assert times == sorted(times) and len(set(times)) == len(times)
    start, end = datetime(2013, 10, 10, 13, 30, tzinfo=UTC), datetime(2013, 10, 10, 16, 30, tzinfo=UTC)
    assert all(start < datetime.fromisoformat(t) <= end for t in times)
    lake = Lake(materialized_home / "lake")
    episodes = lake.read("gold", "gold_episodes", DAY)
    signals = lake.read("gold", "gold_signals", DAY)
    expected_outcome = {(ts, kind): out for ts, kind, out in episodes.select("ts_event", "level_kind", "outcome").iter_rows()}
    expected_p = {(ts, kind): p for ts, kind, p in signals.select("ts_event", "level_kind", "p_break").iter_rows()}
    seen = {}
    for bar in rows:
        ts = datetime.fromisoformat(bar["ts_event"])
        order = [LEVEL_KINDS.index(lvl["level_kind"]) for lvl in bar["levels"]]
        assert order == sorted(order)
        for lvl in bar["levels"]:
            assert sum(lvl["probabilities"].values()) == pytest.approx(1.0)
            assert sum(lvl["smoothed"].values()) == pytest.approx(1.0)
            assert set(lvl["probabilities"]) == set(OUTCOMES)
            assert lvl["probabilities"]["BREAK"] == expected_p[(ts, lvl["level_kind"])]  # the live signal, unchanged
            assert lvl["lower"]["BREAK"] <= lvl["probabilities"]["BREAK"] <= lvl["upper"]["BREAK"]
            assert lvl["answer_source"] == "blend" and lvl["components"]["xgboost"] is not None  # 10-10: a model, blend fitted on 10-09
            assert len(lvl["neighbours"]) == min(3, lvl["n_neighbours"]) and all(n["date"] < str(DAY) for n in lvl["neighbours"])
            seen[(ts, lvl["level_kind"])] = lvl["outcome"]
            if lvl["outcome"] == "CHOP":
                assert lvl["time_to_outcome_min"] is None
            else:
                assert 0 < lvl["time_to_outcome_min"] <= CFG.horizon_minutes
                decided = datetime.strptime(f"{DAY} {lvl['outcome_time']}", "%Y-%m-%d %H:%M") - (ts.replace(tzinfo=None) - timedelta(hours=4))
                assert decided.total_seconds() / 60 == pytest.approx(lvl["time_to_outcome_min"])
    assert seen == expected_outcome and len(seen) > 0  # every episode, with its outcome


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_replay_json_and_text(materialized_home, capsys):
    code, out, _ = _run(capsys, "--home", str(materialized_home), "replay", "--date", "2013-10-11", "--level", "ema_20", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["date"] == "2013-10-11" and "hindsight" in answer["note"]
    assert answer["bars"] and {lvl["level_kind"] for bar in answer["bars"] for lvl in bar["levels"]} <= {"EMA_20"}
    code, out, _ = _run(capsys, "--home", str(materialized_home), "replay", "--date", "2013-10-11")
    assert code == 0 and "hindsight" in out and out.count("\n") > 90  # one line at least per anchor bar


def test_cli_replay_errors(materialized_home, capsys):
    code, _, err = _run(capsys, "--home", str(materialized_home), "replay", "--date", "2013-10-14")
    assert code == 2 and "--date 2013-10-14" in err and "not materialized" in err and "2013-10-07 .. 2013-10-11" in err
    code, _, err = _run(capsys, "--home", str(materialized_home), "replay", "--date", "2013-10-12")
    assert code == 2 and "--date 2013-10-12 (Saturday) is not a CME trading session: a weekend" in err
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(materialized_home), "replay", "--date", "2013-10-11", "--level", "VWAP"])
    assert exc.value.code == 2
    with pytest.raises(SpymasterError, match="nothing is materialized yet"):
        replay(SpymasterConfig(home=materialized_home / "empty"), DAY)
