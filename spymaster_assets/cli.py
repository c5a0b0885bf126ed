"""The ``spymaster`` command line: backfill sessions, ask what similar setups did, evaluate, tune, run the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from datetime import date, time
from pathlib import Path

from spymaster_core.config import LEVEL_KINDS, SpymasterConfig
from spymaster_core.products import PRODUCTS
from spymaster_core.errors import SpymasterError



def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _time(text: str) -> time:
    try:
        parsed = time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (HH:MM, New York): {text!r}") from None
    if parsed.tzinfo is not None:
        raise argparse.ArgumentTypeError(f"{text!r} carries a UTC offset: give the New York wall-clock time, HH:MM, without one")
    return parsed


#: What the numbers of an answer mean, in every answering subcommand's --help.
TERMS = (
    "Terms: d = (close - level) / ATR, the distance to the level in 14-bar ATRs of 2-minute bars (negative: price below "
    "the level); BREAK = price trades 1 ATR through the level within 16 minutes, REJECT = it moves 1 ATR back from the "
    "bar's close first, CHOP = neither (the thresholds and horizon are configurable); n_eff = the effective number of "
    "past setups behind the answer (Kish's effective sample size of the neighbours' weights: 1 neighbour that dominates "
    "counts as 1 however many are listed); base = the outcome rates of all past setups of the same level, direction and "
    "time bucket, what you would say without similarity. Intervals are 90%."
)


def _level(text: str) -> str:
    kind = text.upper()
    if kind not in LEVEL_KINDS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r}; choose from {', '.join(LEVEL_KINDS)}")
    return kind


def _print_answer(answer: dict) -> None:
    """``query``'s answer as text (``answer_query``'s dict)."""
    if answer.get("warning"):
        print(f"warning: {answer['warning']}")
    if answer.get("thin"):
        print(f"warning: thin history: {answer['thin']}")
    unit = answer.get("price_unit", "pts")
    print(f"{answer.get('product', 'ES')} {answer['date']} {answer['time']} ET  close {answer['close']:.2f}  ATR {answer['atr_points']:.2f} {unit}")
    if answer.get("index_sessions") is not None:
        print(f"  answers from the index as of {answer['index_as_of']}: {answer['index_sessions']} earlier sessions, {answer['index_setups']:,} setups")
    for outcome, meaning in (answer.get("outcomes") or {}).items():
        print(f"  {outcome:<6} = {meaning}")
    level = f"{answer.get('interval_level', 0.9):.0%}"
    for lvl in answer["levels"]:
        points = f", {lvl['distance_points']:+.2f} {unit}" if lvl.get("distance_points") is not None else ""
        head = f"  {lvl['level_kind']:<8} {lvl['level_price']:>9.2f}  {lvl['direction']:<4}  d={lvl['distance_atr']:+.2f} ATR{points}"
        if not lvl["in_zone"]:
            print(f"{head}  (outside the approach zone)")
            continue
        p, lo, hi = lvl["probabilities"], lvl["lower"], lvl["upper"]
        probs = "  ".join(f"P({k})={p[k]:.2f} [{lo[k]:.2f},{hi[k]:.2f}]" for k in p) + f" ({level} intervals)"
        base = " ".join(f"{k}={v:.2f}" for k, v in lvl["base_rate"].items())
        families = lvl["vector_schema"].rsplit("[", 1)[-1].rstrip("]")
        print(f"{head}  {probs}  n_eff={lvl['effective_sample_size']:.1f}  base: {base}  features: {families}")
        parts = {name: comp for name, comp in lvl.get("components", {}).items() if comp is not None}
        shown = "  ".join(f"{name} " + "/".join(f"{v:.2f}" for v in comp.values()) for name, comp in parts.items())
        how = lvl.get("answer_source", "knn")
        if lvl.get("blend_weight") is not None:
            how += f" w={lvl['blend_weight']:.2f} T={lvl['temperature']:.2f}, model through {lvl['model_trained_through']}"
        print(f"      answer: {how}; components P(B/R/C): {shown}")
        drivers = lvl.get("match_drivers") or []
        if drivers:
            print("      match driven by: " + ", ".join(f"{d['feature']} ({d['share']:.0%})" for d in drivers if d["share"] is not None))
        for n in lvl["neighbours"][:5]:
            print(f"      {n['date']} {n['time']}  sim={n['similarity']:.3f}  {n['outcome']}")


def _format_gamma(profile: dict) -> str:
    """The gamma profile as text: a header line, then one line per strike (GEX in billions of USD per 1% move)."""
    flip = "none" if profile["gamma_flip"] is None else f"{profile['gamma_flip']:.2f}"
    lines = [
        f"{profile['date']} {profile['time']} ET  F {profile['futures_price']:.2f}  total GEX {profile['total_gex_bn']:+.3f} bn USD/1%  "
        f"flip {flip}  call wall {profile['call_wall']:.0f}  put wall {profile['put_wall']:.0f}",
        f"  {'strike':>8} {'call OI':>8} {'put OI':>8} {'IV':>6} {'call GEX':>9} {'put GEX':>9} {'net GEX':>9}",
    ]
    for row in profile["strikes"]:
        lines.append(
            f"  {row['strike_price']:>8.2f} {row['call_oi']:>8} {row['put_oi']:>8} {row['implied_vol']:>6.3f} "
            f"{row['call_gex_bn']:>+9.4f} {row['put_gex_bn']:>+9.4f} {row['gex_bn']:>+9.4f}"
        )
    if profile["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(profile["skipped"].items())))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spymaster`` console script. Returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="spymaster",
        description=(
            "Spymaster: when price nears a level (pre-market high/low, opening-range high/low, SMA_90, "
            "EMA_20), find the most similar past setups and show how often they broke, rejected or chopped; "
            "for ES and every product of the data root's config.json \"products\" (--product). "
            "Data root: --home, else $SPYMASTER_HOME, else ./data (raw DBN files in <home>/raw, outputs in <home>/lake)."
        ),
    )
    parser.add_argument("--home", type=Path, help="data root holding raw/ and lake/ (default $SPYMASTER_HOME or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_back = sub.add_parser(
        "backfill",
        help="materialize every asset for the sessions in a date range, in order (resumable)",
        description=(
            "Materializes bronze, silver and gold for each session with regular-hours bars in raw/ between --start and "
            "--end: one Dagster run per range of consecutive sessions, bronze and silver in parallel (--workers), gold in date order. Sessions already built on the current history are skipped, so a re-run resumes; "
            "later sessions whose gold rested on a history this run changes are rebuilt too. A failed session does not "
            "stop the range: each failure is named (session, file, reason) at the end. One backfill per data root runs "
            "at a time; a second waits."
        ),
    )
    p_back.add_argument("--start", type=_date, required=True, help="first session date, YYYY-MM-DD")
    p_back.add_argument("--end", type=_date, required=True, help="last session date, YYYY-MM-DD")
    p_back.add_argument("--quiet", action="store_true", help="no progress bars")
    p_back.add_argument("--no-charts", action="store_true", help="skip the per-session chart PNGs (about 1 s each; bronze to gold only)")
    p_back.add_argument("--workers", type=int, default=0, help="processes building bronze, silver, the range's model retrains and gold_evaluation's days in parallel (default 0: one per core)")
    p_back.add_argument("--rebuild", action="store_true", help="rebuild every session of the range from raw/, even those already built on the current history (without it, a session whose bronze, silver and episodes are in the lake, as an interrupted backfill leaves them, gets only its gold rebuilt)")

    p_query = sub.add_parser(
        "query",
        help="what did similar past setups do at this bar? (uses the index as of --date)",
        description=(
            "For each level known at the 2-minute bar closing at --time on --date, listed by price: the distance to it and, "
            "inside the approach zone, P(BREAK), P(REJECT), P(CHOP) from the setups of earlier sessions most similar to "
            "this one, with how many sessions and setups the answer rests on, its parts and the nearest setups. " + TERMS
        ),
    )
    p_query.add_argument("--date", type=_date, required=True, help="session date, YYYY-MM-DD (must be materialized)")
    p_query.add_argument("--time", type=_time, required=True, help="bar close time HH:MM New York, in the anchor window (the three hours after the product's open: 09:32-12:30 for ES, 08:22-11:20 for GC)")
    p_query.add_argument("--level", type=_level, help=f"only this level kind ({', '.join(LEVEL_KINDS)})")
    p_query.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    p_gamma = sub.add_parser(
        "gamma",
        help="dealer gamma (GEX) per strike of the session's ES 0DTE options at a time",
        description=(
            "The session's 0DTE dealer-gamma profile at --time: futures price F, total GEX (billions of USD per 1% move, "
            "dealers assumed long calls and short puts), the gamma flip (the price nearest F where total GEX changes sign), "
            "the call and put walls, and per strike the open interest, Black-76 implied vol and GEX."
        ),
    )
    p_gamma.add_argument("--date", type=_date, required=True, help="session date, YYYY-MM-DD (must be materialized, with options data)")
    p_gamma.add_argument("--time", type=_time, required=True, help="time HH:MM New York")
    p_gamma.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    p_replay = sub.add_parser(
        "replay",
        help="bar by bar through a session: the probabilities seen live at each approach and the outcome that followed",
        description=(
            "Every 2-minute bar close of the anchor window of --date with the levels in the approach zone: the answer as it "
            "was given at that bar (from earlier sessions only), smoothed along the approach, and, as hindsight, the outcome "
            "that followed and after how many minutes. " + TERMS
        ),
    )
    p_replay.add_argument("--date", type=_date, required=True, help="session date, YYYY-MM-DD (must be materialized)")
    p_replay.add_argument("--level", type=_level, help=f"only this level kind ({', '.join(LEVEL_KINDS)})")
    p_replay.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    p_eval = sub.add_parser(
        "evaluate",
        help="walk-forward scores of the answer beside its references (base rate, class mix, distance lookup raw and calibrated), kNN and XGBoost",
        description=(
            "Scores gold_signals against what happened, every session answered only from earlier sessions. Each model "
            "(base_rate: the index partition's outcome rate; class_mix: the trailing sessions' outcome mix per level kind "
            "and direction; distance: the rate by level kind, direction and |distance| bin; distance_calibrated: that "
            "lookup with its own temperature; knn: the neighbours' Dirichlet posterior; xgboost: gold_model; answer_t1: "
            "the blend at T = 1; answer: the calibrated blend) is scored on the same episodes, per anchor and per approach "
            "(each approach at its first anchor): multi-class Brier, Brier skill score (BSS) against the base rate, the "
            "distance lookup and the best baseline (the reference with the lowest Brier) with a 90% interval from "
            "resampling whole sessions, log loss, classwise and top-label ECE."
        ),
    )
    p_eval.add_argument("--start", type=_date, help="first session scored, YYYY-MM-DD (default: the first with enough history)")
    p_eval.add_argument("--end", type=_date, help="last session scored, YYYY-MM-DD (default: the latest materialized)")
    p_eval.add_argument("--json", action="store_true", help="print the table as JSON rows")

    p_tune = sub.add_parser(
        "tune",
        help="two-stage Optuna tuning of retrieval, model and blend on a nested walk-forward window (writes <home>/params/tuned-v<N>.json)",
        description=(
            "Stage 1 tunes retrieval (k, per-session cap, Dirichlet prior strength, similarity weighting, block weights, "
            "DCT coefficients counted); stage 2 tunes XGBoost and the blend window with stage 1's best fixed. A trial's "
            "score is the walk-forward Brier skill score of the answer against the partition base rate on the sessions up "
            "to --through. The values found serve only sessions after --through (nested: no scored session informs a value "
            "it is scored with). Studies are kept in Optuna's storage and resume; rematerialize the gold assets after it."
        ),
    )
    p_tune.add_argument("--trials", type=int, default=20, help="trials per stage, counting those already in a resumed study (default 20)")
    p_tune.add_argument("--through", type=_date, help="last session of the tuning window, YYYY-MM-DD (default: the latest with gold_episodes)")
    p_tune.add_argument("--stage", type=int, choices=(1, 2), help="run one stage only (stage 2 takes stage 1's best values from its study)")
    p_tune.add_argument("--storage", help="Optuna RDB storage URL, e.g. postgresql://... (default sqlite under <home>/params)")
    p_tune.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (default 0)")

    sub.add_parser(
        "demo",
        help="copy the embedded real ES, GC and SPY samples to a data root, backfill them, query and evaluate each",
        description="Copies the embedded real samples (ES 14 sessions, GC 5, SPY 6) into the data root's raw/ (--home, default data/demo), configures the three products, backfills each, asks one query of each and prints each one's walk-forward evaluation.",
    )

    p_serve = sub.add_parser(
        "serve",
        help="the trader's screen: a web page replaying any session of the lake bar by bar with the answer at each level",
        description=(
            "Serves the trader's screen on http://127.0.0.1:PORT/: 2-minute candles from 04:00 New York with the six levels, "
            "and for each level in the approach zone (|d| <= approach_zone_atr, d = distance in ATR) the answer P(BREAK), "
            "P(REJECT), P(CHOP) with its interval, the smoothed P(BREAK) since the approach began, n_eff (the effective number "
            "of neighbours behind it) and base (the partition's base rate), plus the nearest past setups (click one to open it). "
            "A session is replayed from its raw DBN records at the speed chosen on the page, answering with the index as of that day."
        ),
    )
    p_serve.add_argument("--port", type=int, default=8050, help="port to listen on (default 8050)")
    p_serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")

    # --home is accepted after the subcommand too (`spymaster query --home DIR ...`).
    for name, subparser in sub.choices.items():
        subparser.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data root holding raw/ and lake/ (default $SPYMASTER_HOME or ./data; demo: data/demo)")
        if name != "demo":
            subparser.add_argument(
                "--product", metavar="SYMBOL",
                help=f"the product to work on, one of the data root's \"products\" in config.json (shipped: {', '.join(PRODUCTS)}; default: the data root's only product)",
            )
        if subparser.description is None:
            subparser.description = subparser.format_usage()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        return _run(args, parser)
    except BrokenPipeError:
        # The reader went away (`spymaster replay ... | head`): end quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the parsed subcommand; errors a user can act on print one line and return 1."""
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.home or Path("data/demo"))
        base = SpymasterConfig.from_env(**({"home": args.home} if args.home else {}))
        if args.command == "serve":
            from .screen.server import serve

            # Every product of the data root is on the page (its picker); --product picks the first shown.
            serve(Path(base.home), port=args.port, host=args.host, product=base.serving(args.product).product if args.product else None)
            return 0
        config = base.serving(args.product)
        if args.command == "backfill":
            if args.end < args.start:
                parser.error("--end is before --start")
            from .automation.backfill import BackfillInterrupted, backfill

            try:
                report = backfill(config, args.start, args.end, quiet=args.quiet, rebuild=args.rebuild, workers=args.workers, charts=not args.no_charts)
            except BackfillInterrupted as stop:
                print(f"\nspymaster: {stop.summary()}", file=sys.stderr)
                return 130
            except KeyboardInterrupt:
                print("\nspymaster: backfill interrupted between runs; the sessions it finished are kept: run the same command again to resume", file=sys.stderr)
                return 130
            done = report.materialized
            print(f"materialized {len(done)} sessions" + (f": {done[0]} .. {done[-1]}" if done else "") + (f"; {len(report.skipped)} already up to date" if report.skipped else ""))
            return 0
        if args.command == "query":
            from .gold.query import answer_query

            answer = answer_query(config, args.date, args.time, args.level)
            if args.json:
                print(json.dumps(answer, indent=2, default=str))
            else:
                _print_answer(answer)
            return 0
        if args.command == "replay":
            from spymaster_resources.lake import Lake

            from .gold.history import history_change
            from .gold.replay import format_replay, replay

            bars = replay(config, args.date, args.level)
            stale = history_change(Lake(config.lake_dir), args.date)
            warning = None if stale is None else f"{stale}; rebuild with `spymaster backfill --start {args.date} --end {args.date}`"
            if args.json:
                note = "probabilities: gold_signals, index as of the date (earlier sessions only); outcome fields are hindsight"
                print(json.dumps({"date": str(args.date), "level": args.level, "note": note, "warning": warning, "bars": bars}, indent=2, default=str))
            else:
                from .sessions import NY
                from .silver.levels import level_known_from

                known_from = {kind: at.astimezone(NY).strftime("%H:%M") for kind, at in level_known_from(args.date, config).items()}
                print(format_replay(bars, args.date, args.level, config.horizon_minutes, warning, known_from))
            return 0
        if args.command == "evaluate":
            from .gold.report import evaluate_lake

            table, text = evaluate_lake(config, args.start, args.end)
            print(json.dumps(table.to_dicts(), indent=2, default=str) if args.json else text)
            return 0
        if args.command == "tune":
            from .tuning.search import tune

            results = tune(config, args.trials, args.through, args.stage, args.storage, args.seed, progress=sys.stderr.isatty())
            print(f"tuned values ({results[-1].params_file}):")
            for key, value in sorted(results[-1].values.items()):
                print(f"  {key} = {value}")
            return 0
        if args.command == "gamma":
            from .gold.query import gamma_profile_at

            profile = gamma_profile_at(config, args.date, args.time)
            print(json.dumps(profile, indent=2, default=str) if args.json else _format_gamma(profile))
            return 0
    except SpymasterError as exc:
        print(f"spymaster: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
