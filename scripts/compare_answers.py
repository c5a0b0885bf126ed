#!/usr/bin/env python
"""Walk-forward comparison of configuration variants of the whole answer, per anchor and per approach.

Each variant is the data root's configuration plus a JSON object of overrides (e.g.
``'{"model_sample_weighting": "approach"}'``). For each, every session of the lake's gold_episodes is
answered walk-forward in memory (``gold.walk_forward.walk_forward``: what the gold assets compute,
each day from earlier sessions only) and the sessions with ``min_history_sessions`` earlier ones are
scored with ``evaluation.compare_models`` on the episodes every model answered: every model beside
the partition base rate, the distance lookup and the best baseline, with 90% session-bootstrap
intervals, per anchor and per approach (each approach's first anchor). Prints each table, then
``name: value`` lines (``<variant>_<scope>_<model>_bss_best`` and its interval ends).

With ``--nested``, the variants are also chosen the way the product may choose: for each scored day D,
the variant whose kNN component had the lowest Brier score over the scored sessions before D (the
first variant on the first scored day), and the chosen variant's rows of D are scored as one more
variant, ``nested`` (so the choice itself is judged on sessions it did not see). The variant chosen
on every scored session is printed as ``nested_choice_after_all``.

With ``--score-from DATE`` only the sessions on or after DATE are scored (every session is still
answered walk-forward): the out-of-window check of a tuning run, e.g. ``--score-from`` the first
session after ``spymaster tune --through`` with ``--variant tuned=<the tuned file's values>``.

Usage: ``.venv/bin/python scripts/compare_answers.py [--home data/demo] [--variant NAME=JSON ...] [--nested]``
(default variants: ``default={}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import polars as pl  # noqa: E402

from spymaster_assets.gold.answer import MODEL_PREFIXES  # noqa: E402
from spymaster_assets.gold.evaluation import compare_models, first_anchors, format_comparison, multiclass_brier  # noqa: E402
from spymaster_core.config import OUTCOMES  # noqa: E402
from spymaster_assets.gold.episodes import select_episodes  # noqa: E402
from spymaster_assets.gold.vectors import vector_columns  # noqa: E402
from spymaster_assets.gold.walk_forward import walk_forward  # noqa: E402
from spymaster_resources import SpymasterResource  # noqa: E402


def _variant(text: str) -> tuple[str, dict]:
    name, _, overrides = text.partition("=")
    try:
        values = json.loads(overrides or "{}")
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"variant {name!r}: not a JSON object of overrides ({exc})") from None
    if not name or not isinstance(values, dict):
        raise argparse.ArgumentTypeError(f"a variant is NAME=JSON-object, got {text!r}")
    return name, values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=str(REPO_ROOT / "data" / "demo"), help="data root with gold_episodes (default: data/demo, after `spymaster demo`)")
    parser.add_argument("--product", default="", help="product of the data root (default: its only or first product)")
    parser.add_argument("--variant", action="append", type=_variant, default=[], help="NAME=JSON overrides of the configuration; repeatable")
    parser.add_argument("--nested", action="store_true", help="also score the variant chosen day by day on the earlier sessions' kNN Brier")
    parser.add_argument(
        "--from-silver", action="store_true",
        help="build each variant's episodes from silver_level_state and silver_outcomes (for variants that change the vector, e.g. chart_blocks; the lake's silver must hold their columns)",
    )
    parser.add_argument("--score-from", type=date.fromisoformat, default=None, help="score only the sessions on or after this date, YYYY-MM-DD (default: every scored session)")
    args = parser.parse_args()
    spymaster = SpymasterResource(home=args.home, workers=1, product=args.product)
    lake, base = spymaster.lake, spymaster.config
    sessions = lake.dates("gold", "gold_episodes")
    if len(sessions) <= base.min_history_sessions:
        print(f"error: {args.home} holds {len(sessions)} sessions of gold_episodes; at least {base.min_history_sessions + 1} are needed", file=sys.stderr)
        return 2
    episodes = lake.read_many("gold", "gold_episodes", sessions)
    if args.from_silver:
        state = lake.read_many("silver", "silver_level_state", sessions)
        outcomes = lake.read_many("silver", "silver_outcomes", sessions)
    scored_days = sessions[base.min_history_sessions:]
    answered: dict[str, pl.DataFrame] = {}
    for name, overrides in args.variant or [("default", {})]:
        config = replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
        started = time.perf_counter()
        if args.from_silver:
            missing = [c for c in vector_columns(config) if c not in state.columns]
            if missing:
                print(f"error: variant {name}: silver_level_state lacks {missing[:4]}...: backfill the lake with those features first", file=sys.stderr)
                return 2
            episodes = select_episodes(state, outcomes, config)
        answered[name] = walk_forward(episodes, config, days=scored_days, sessions=sessions).drop_nulls("p_xgb_break")
        print(f"{name}_walk_seconds: {time.perf_counter() - started:.1f}")
    if args.nested:
        answered["nested"], choice = _nested(answered, base)
        print(f"nested_choice_after_all: {choice}")
    if args.score_from is not None:
        answered = {name: signals.filter(pl.col("session_date") >= args.score_from) for name, signals in answered.items()}
        print(f"scored_sessions: {answered[next(iter(answered))]['session_date'].n_unique()} (from {args.score_from})")
    for name, signals in answered.items():
        config = base
        for scope, rows in (("anchor", signals), ("approach", first_anchors(signals))):
            table = compare_models(rows, MODEL_PREFIXES, bins=config.calibration_bins, level=config.interval_level, replicates=config.bootstrap_replicates, seed=config.bootstrap_seed)
            print(f"\n== {name}, per {scope} ==")
            print(format_comparison(table, config.interval_level))
            for row in table.filter(pl.col("model").is_in(["knn", "xgboost", "answer_t1", "answer"])).iter_rows(named=True):
                for key in ("bss_best", "bss_best_lo", "bss_best_hi", "bss_distance", "top_label_ece"):
                    print(f"{name}_{scope}_{row['model']}_{key}: {row[key]:.4f}")
    return 0


def _nested(answered: dict[str, pl.DataFrame], config) -> tuple[pl.DataFrame, str]:
    """The rows of the variant chosen for each day by the kNN Brier over the earlier scored days, and the choice after the last day."""
    names = list(answered)
    knn = [f"{MODEL_PREFIXES['knn']}{o.lower()}" for o in OUTCOMES]
    per_day: dict[str, dict] = {}
    for name, signals in answered.items():
        # Per-day Brier sums (the mean times the episodes), so the earlier days add up episode-weighted.
        per_day[name] = {
            day: {"brier": multiclass_brier(rows.select(knn).to_numpy(), rows["outcome"].to_numpy()) * rows.height}
            for (day,), rows in signals.partition_by("session_date", as_dict=True).items()
        }
    days = sorted(answered[names[0]]["session_date"].unique().to_list())
    chosen_rows, choice = [], names[0]
    for day in days:
        earlier = [d for d in days if d < day]
        if earlier:
            totals = {name: sum(per_day[name][d]["brier"] for d in earlier if d in per_day[name]) for name in names}
            choice = min(names, key=lambda name: totals[name])  # first listed on ties
        chosen_rows.append(answered[choice].filter(pl.col("session_date") == day))
        print(f"nested_choice_{day}: {choice}")
    totals = {name: sum(v["brier"] for v in per_day[name].values()) for name in names}
    return pl.concat(chosen_rows), min(names, key=lambda name: totals[name])


if __name__ == "__main__":
    sys.exit(main())
