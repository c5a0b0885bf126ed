"""The `spymaster` CLI on materialized sample sessions: answers, JSON, and clear errors for bad arguments."""

from __future__ import annotations

import json
from datetime import date

import pytest

from spymaster_assets.cli import main
from spymaster_core.config import LEVEL_KINDS, OUTCOMES


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_query_json_answers_every_known_level(materialized_home, capsys):
    code, out, _ = _run(capsys, "--home", str(materialized_home), "query", "--date", "2013-10-10", "--time", "10:30", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["date"] == "2013-10-10" and answer["time"] == "10:30"
    assert answer["index_sessions"] in (None, 3)
    kinds = [lvl["level_kind"] for lvl in answer["levels"]]
    assert sorted(kinds) == sorted(LEVEL_KINDS)  # all six are known at 10:30
    for lvl in answer["levels"]:
        assert lvl["direction"] == ("UP" if answer["close"] < lvl["level_price"] else "DOWN")
        assert lvl["in_zone"] == (abs(lvl["distance_atr"]) <= 2.0)
        if lvl["in_zone"]:
            probs = lvl["probabilities"]
            assert set(probs) == set(OUTCOMES) and sum(probs.values()) == pytest.approx(1.0)
            for k in OUTCOMES:
                assert lvl["lower"][k] <= probs[k] <= lvl["upper"][k]
            assert all(n["date"] < "2013-10-10" for n in lvl["neighbours"])  # index as of D: earlier days only
            per_day: dict[str, int] = {}
            for n in lvl["neighbours"]:
                per_day[n["date"]] = per_day.get(n["date"], 0) + 1
            assert max(per_day.values(), default=0) <= 2


def test_query_text_and_level_filter(materialized_home, capsys):
    code, out, _ = _run(capsys, "--home", str(materialized_home), "query", "--date", "2013-10-11", "--time", "11:00", "--level", "ema_20")
    assert code == 0
    assert "EMA_20" in out and "PM_HIGH" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", "--date", "2013-10-14", "--time", "10:30"], "no materialized session on that date"),
        (["query", "--date", "2013-10-12", "--time", "10:30"], "--date 2013-10-12 (Saturday) is not a CME trading session: a weekend"),
        (["query", "--date", "2013-12-25", "--time", "10:30"], "--date 2013-12-25 (Wednesday) is not a CME trading session: a CME holiday"),
        (["replay", "--date", "2013-10-13"], "--date 2013-10-13 (Sunday) is not a CME trading session"),
        (["query", "--date", "2013-10-10", "--time", "08:00"], "outside the anchor window"),
        (["query", "--date", "2013-10-10", "--time", "09:31"], "--time 09:31 is not a 2-minute bar close: the bars close every 2 minutes from 09:30 New York; choose 09:32"),
        (["query", "--date", "2013-10-10", "--time", "10:31"], "choose 10:30 or 10:32"),
        (["query", "--date", "2013-10-10", "--time", "09:40", "--level", "OR_HIGH"], "--level OR_HIGH: not known yet at 09:40 on 2013-10-10 (known from 09:45)"),
    ],
)
def test_query_errors_name_the_argument(materialized_home, capsys, argv, message):
    code, _, err = _run(capsys, "--home", str(materialized_home), *argv)
    assert code == 2 and message in err


def test_unknown_level_and_bad_date_are_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["query", "--date", "2013-10-10", "--time", "10:30", "--level", "VWAP"])
    assert "unknown level 'VWAP'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["query", "--date", "10/10/2013", "--time", "10:30"])
    assert "not a date" in capsys.readouterr().err


def test_backfill_of_a_range_without_data_says_so(sample_home, capsys):
    code, _, err = _run(capsys, "--home", str(sample_home), "backfill", "--start", "2015-01-05", "--end", "2015-01-09", "--quiet")
    assert code == 2 and "no ES session between 2015-01-05 and 2015-01-09" in err


def test_query_shows_the_blend_its_components_and_what_drove_the_match(materialized_home, capsys):
    code, out, _ = _run(capsys, "--home", str(materialized_home), "query", "--date", "2013-10-11", "--time", "10:30", "--json")
    assert code == 0
    in_zone = [lvl for lvl in json.loads(out)["levels"] if lvl["in_zone"]]
    assert in_zone
    for lvl in in_zone:
        assert lvl["answer_source"] == "blend" and 0.0 <= lvl["blend_weight"] <= 1.0 and lvl["temperature"] > 0
        assert lvl["model_trained_through"] < "2013-10-11"
        assert set(lvl["components"]) == {"knn", "xgboost", "distance"}
        for component in lvl["components"].values():
            assert sum(component.values()) == pytest.approx(1.0)
        assert lvl["match_drivers"] and all(d["share"] > 0 for d in lvl["match_drivers"])
    code, text, _ = _run(capsys, "--home", str(materialized_home), "query", "--date", "2013-10-11", "--time", "10:30")
    assert "answer: blend w=" in text and "match driven by:" in text


def test_query_matches_the_materialized_signals(materialized_home, capsys):
    """The CLI answers through the same code path as gold_signals: same numbers for the same episode."""
    import polars as pl

    from spymaster_resources.lake import Lake

    code, out, _ = _run(capsys, "--home", str(materialized_home), "query", "--date", "2013-10-11", "--time", "10:30", "--json")
    signals = Lake(materialized_home / "lake").read("gold", "gold_signals", date(2013, 10, 11))
    at = signals.filter(pl.col("ts_event").dt.convert_time_zone("America/New_York").dt.strftime("%H:%M") == "10:30")
    for lvl in (lvl for lvl in json.loads(out)["levels"] if lvl["in_zone"]):
        row = at.filter(pl.col("level_kind") == lvl["level_kind"]).row(0, named=True)
        assert lvl["probabilities"]["BREAK"] == pytest.approx(row["p_break"], abs=1e-12)
        assert lvl["upper"]["CHOP"] == pytest.approx(row["p_chop_hi"], abs=1e-12)


def test_evaluate_prints_every_model_beside_the_baselines(materialized_home, capsys):
    code, out, _ = _run(capsys, "--home", str(materialized_home), "evaluate")
    assert code == 0
    models = ["base_rate", "class_mix", "distance", "distance_calibrated", "knn", "xgboost", "answer_t1", "answer"]
    for name in models:
        assert f"\n{name} " in out
    assert "2013-10-10 .. 2013-10-11" in out and "BSS vs distance" in out and "BSS vs best" in out
    assert "the best baseline (" in out.splitlines()[-1]
    assert "per anchor" in out and "per approach" in out
    code, out, _ = _run(capsys, "--home", str(materialized_home), "evaluate", "--start", "2013-10-11", "--json")
    rows = json.loads(out)
    assert [r["model"] for r in rows if r["scope"] == "anchor"] == models == [r["model"] for r in rows if r["scope"] == "approach"]
    per_anchor = {r["scope"]: r["n_episodes"] for r in rows if r["model"] == "answer"}
    assert 0 < per_anchor["approach"] < per_anchor["anchor"]
    assert len({r["best_baseline"] for r in rows}) == 1 and rows[0]["best_baseline"] in ("base_rate", "class_mix", "distance", "distance_calibrated")
    assert all(r["n_sessions"] == 1 for r in rows)
    rows = [r for r in rows if r["scope"] == "anchor"]
    code, _, err = _run(capsys, "--home", str(materialized_home), "evaluate", "--end", "2013-10-08")
    assert code == 2 and "earlier sessions to score" in err


def test_tune_writes_a_versioned_file_that_serves_only_later_sessions(materialized_home, tmp_path, capsys):
    from spymaster_core.config import SpymasterConfig
    from spymaster_core.tuned_params import config_for_day

    home = tmp_path / "home"
    home.mkdir()
    (home / "lake").symlink_to(materialized_home / "lake")
    (home / "config.json").write_text((materialized_home / "config.json").read_text())
    code, out, err = _run(capsys, "--home", str(home), "tune", "--trials", "2", "--through", "2013-10-10")
    assert code == 0, err
    path = home / "params" / "tuned-v1.json"
    assert path.is_file() and str(path) in out
    tuned = json.loads(path.read_text())
    assert tuned["tuned_through"] == "2013-10-10" and tuned["trials"] == {"spymaster-stage1-2013-10-10": 2, "spymaster-stage2-2013-10-10": 2}
    config = SpymasterConfig.for_home(home)
    assert config_for_day(config, date(2013, 10, 10))[1] is None  # tuned on 10-10: never serves it
    served, chosen = config_for_day(config, date(2013, 10, 11))
    assert chosen.path == path and served.top_k == tuned["values"]["top_k"]
    # A second run resumes the studies (2 trials done: nothing to add) and writes the next version.
    code, out, _ = _run(capsys, "--home", str(home), "tune", "--trials", "2", "--through", "2013-10-10")
    assert code == 0 and (home / "params" / "tuned-v2.json").is_file()
    assert json.loads((home / "params" / "tuned-v2.json").read_text())["values"] == tuned["values"]
    code, _, err = _run(capsys, "--home", str(home), "tune", "--trials", "2", "--through", "2013-10-08")
    assert code == 2 and "tuning needs at least 4" in err


def test_a_time_with_a_utc_offset_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["query", "--date", "2013-10-10", "--time", "10:30+05:00"])
    assert "'10:30+05:00' carries a UTC offset: give the New York wall-clock time" in capsys.readouterr().err


def test_query_says_what_the_answer_rests_on_and_what_the_outcomes_mean(materialized_home, capsys):
    code, out, _ = _run(capsys, "query", "--home", str(materialized_home), "--date", "2013-10-07", "--time", "10:30")  # --home after the subcommand
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "warning: thin history: no earlier session in the index: every probability is the uniform prior (1/3 each), not a track record"
    assert "answers from the index as of 2013-10-07: 0 earlier sessions, 0 setups" in out
    atr = float(lines[1].split("ATR ")[1].split(" pts")[0])
    assert f"BREAK  = price trades {atr:.2f} pts (1 ATR) through the level within 16 minutes" in out
    assert "(90% intervals)" in out
    code, out, _ = _run(capsys, "--home", str(materialized_home), "query", "--date", "2013-10-10", "--time", "10:30", "--json")
    answer = json.loads(out)
    prices = [lvl["level_price"] for lvl in answer["levels"]]
    assert prices == sorted(prices, reverse=True)  # by price, not alphabetically
    for lvl in answer["levels"]:
        assert lvl["distance_points"] == pytest.approx(lvl["distance_atr"] * answer["atr_points"])
    assert answer["index_sessions"] == 3 and answer["index_setups"] > 0 and answer["interval_level"] == 0.9
    assert answer["thin"] == "only 3 earlier session(s) in the index: the answer is a rough guess"


def test_replay_and_query_agree_on_when_the_opening_range_is_known(materialized_home, capsys):
    code, out, _ = _run(capsys, "--home", str(materialized_home), "replay", "--date", "2013-10-10", "--level", "OR_HIGH")
    assert code == 0
    early = [line for line in out.splitlines() if line[:5] in {f"09:{m}" for m in range(32, 45, 2)}]
    assert len(early) == 7 and all("(OR_HIGH not known yet: known from 09:45)" in line for line in early)


def test_every_subcommand_explains_itself_and_the_terms_of_an_answer(capsys):
    for command in ("backfill", "query", "replay", "evaluate", "tune", "gamma", "demo", "serve"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--home" in text and len(text.split("options:")[0]) > 120, command
        if command in ("query", "replay"):
            assert "d = (close - level) / ATR" in text and "n_eff = the effective number of past setups" in text and "base = the outcome rates" in text


def test_demo_writes_to_the_home_it_is_given(monkeypatch, tmp_path):
    import spymaster_assets.demo as demo

    called = []
    monkeypatch.setattr(demo, "run_demo", lambda home: called.append(home) or 0)
    assert main(["--home", str(tmp_path / "mine"), "demo"]) == 0 and main(["demo", "--home", str(tmp_path / "other")]) == 0
    assert called == [tmp_path / "mine", tmp_path / "other"]


def test_output_into_a_closed_pipe_ends_quietly(materialized_home):
    import os
    import subprocess
    import sys
    from pathlib import Path

    spymaster = Path(sys.executable).parent / "spymaster"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    # About 300 KB of JSON: more than a pipe holds, so the write meets the closed pipe.
    done = subprocess.run(f"set -o pipefail; '{spymaster}' --home '{materialized_home}' replay --date 2013-10-10 --json | head -1", shell=True, executable="/bin/bash", capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout == "{\n" and done.stderr == ""
