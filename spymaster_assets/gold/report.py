"""``spymaster evaluate`` and gold_evaluation's input: the walk-forward signals joined with what happened, and the comparison of every model."""

from __future__ import annotations

from bisect import bisect_left
from datetime import date

import polars as pl

from spymaster_resources.lake import Lake

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from .answer import MODEL_PREFIXES
from .evaluation import compare_models, format_comparison

_KEYS = ["session_date", "ts_event", "level_kind"]


def scored_signals(lake: Lake, day: date, min_history: int, start: date | None = None) -> pl.DataFrame | None:
    """gold_signals of every session in [start, day] with at least ``min_history`` earlier sessions
    (with gold_episodes), joined with their outcome; None when no session qualifies."""
    episode_dates = lake.dates("gold", "gold_episodes")
    eligible = [
        d for d in lake.dates("gold", "gold_signals")
        if d <= day and (start is None or d >= start) and bisect_left(episode_dates, d) >= min_history
    ]
    if not eligible:
        return None
    signals = lake.read_many("gold", "gold_signals", eligible)
    outcomes = lake.read_many("gold", "gold_episodes", eligible, [*_KEYS, "outcome"])
    return signals.join(outcomes, on=_KEYS, how="inner")


def evaluate_lake(config: SpymasterConfig, start: date | None = None, end: date | None = None) -> tuple[pl.DataFrame, str]:
    """Compare every model on the materialized gold_signals of sessions in [start, end] (with enough history).

    Returns (the :func:`evaluation.compare_models` table, its text form with a header naming the
    sessions and a plain verdict against each baseline). Raises SpymasterError when nothing in the
    range can be scored (not materialized, or too little history), naming the range.
    """
    lake = Lake(config.lake_dir)
    dates = lake.dates("gold", "gold_signals")
    if not dates:
        raise SpymasterError(f"no gold_signals in {config.lake_dir}: run `spymaster backfill` first")
    last = end or dates[-1]
    scored = scored_signals(lake, last, config.min_history_sessions, start)
    if scored is None or scored.height == 0:
        raise SpymasterError(
            f"no session between {start or dates[0]} and {last} has gold_signals and {config.min_history_sessions}+ earlier sessions to score"
        )
    if "p_xgb_break" not in scored.columns:
        raise SpymasterError("gold_signals were written by an older version without the model columns: rematerialize the gold assets")
    try:
        table = compare_models(
            scored, MODEL_PREFIXES, bins=config.calibration_bins, level=config.interval_level,
            replicates=config.bootstrap_replicates, seed=config.bootstrap_seed,
        )
    except ValueError as exc:
        raise SpymasterError(f"cannot compare the models: {exc} (the first model exists after {config.model_min_sessions} sessions)") from None
    sessions = sorted(scored.drop_nulls("p_xgb_break")["session_date"].unique().to_list())
    answer = table.filter(pl.col("model") == "answer").row(0, named=True)
    verdict = []
    for tag, name in (("base", "the partition base rate"), ("distance", "the distance lookup")):
        lo = answer[f"bss_{tag}_lo"]
        if lo is not None and lo > 0:
            verdict.append(f"the answer beats {name} (the whole {config.interval_level:.0%} interval is above 0)")
        elif answer[f"bss_{tag}"] > 0:
            verdict.append(f"the answer is ahead of {name}, but its {config.interval_level:.0%} interval includes 0")
        else:
            verdict.append(f"the answer does NOT beat {name}")
    header = f"Walk-forward evaluation, sessions {sessions[0]} .. {sessions[-1]} (episodes every model answered)"
    return table, "\n".join([header, format_comparison(table, config.interval_level), *("  " + v for v in verdict)])
