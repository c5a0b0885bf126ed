"""The `spymaster` CLI on materialized sample sessions: answers, JSON, and clear errors for bad arguments."""

from __future__ import annotations

import json

import pytest

from spymaster_assets.cli import main
from spymaster_assets.config import LEVEL_KINDS, OUTCOMES


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
        (["query", "--date", "2013-10-12", "--time", "10:30"], "no materialized session on that date"),
        (["query", "--date", "2013-10-10", "--time", "08:00"], "outside the anchor window"),
        (["query", "--date", "2013-10-10", "--time", "09:40", "--level", "OR_HIGH"], "not known at 09:40"),
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
    assert code == 2 and "no session between 2015-01-05 and 2015-01-09" in err
