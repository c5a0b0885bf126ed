"""scripts/compare_answers.py's nested choice: each day takes the variant whose kNN had the lowest Brier on the earlier days only."""

from __future__ import annotations

from datetime import date

import polars as pl

from tests.conftest import load_script

DAYS = [date(2024, 3, 11), date(2024, 3, 12), date(2024, 3, 13)]


def _answered(knn_break: list[float]) -> pl.DataFrame:
    """Two BREAK episodes a day; the kNN gives P(BREAK) = ``knn_break[day]`` and splits the rest."""
    rows = []
    for day, p in zip(DAYS, knn_break):
        for minute in (0, 2):
            rows.append({"session_date": day, "ts_event": minute, "outcome": "BREAK", "p_knn_break": p, "p_knn_reject": (1 - p) / 2, "p_knn_chop": (1 - p) / 2})
    return pl.DataFrame(rows)


def test_the_nested_choice_uses_only_the_days_before(capsys):
    nested = load_script("compare_answers")._nested
    # "a" is better on day 1 and worse after; "b" the reverse.
    answered = {"a": _answered([0.9, 0.2, 0.2]), "b": _answered([0.5, 0.8, 0.8])}
    rows, choice = nested(answered, None)
    printed = capsys.readouterr().out
    # Day 1: nothing earlier, the first variant. Day 2: a was better on day 1. Day 3: over days 1-2, b is better
    # (a: 2 x (0.01 + 0.005) + 2 x (0.64 + 0.32) = 1.95; b: 2 x (0.25 + 0.125) + 2 x (0.04 + 0.02) = 0.87).
    assert [line.split(": ")[1] for line in printed.splitlines() if line.startswith("nested_choice_2024")] == ["a", "a", "b"]
    assert rows["p_knn_break"].to_list() == [0.9, 0.9, 0.2, 0.2, 0.8, 0.8]
    assert choice == "b"
