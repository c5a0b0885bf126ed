"""``spymaster evaluate`` and gold_evaluation's input: the walk-forward signals joined with what happened, and the comparison of every model."""

from __future__ import annotations

import json
from bisect import bisect_left
from datetime import date

import numpy as np
import polars as pl

from spymaster_resources.lake import Lake
from spymaster_resources.lake_paths import LakePath, file_fingerprint, open_binary, write_file_atomic

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from .answer import MODEL_PREFIXES
from .evaluation import compare_models, first_anchors, format_comparison
from .evaluation_sums import CumulativeSums, cumulative_sums, session_sums, sums_schema

_KEYS = ["session_date", "ts_event", "level_kind"]


def eligible_sessions(lake: Lake, day: date, min_history: int, start: date | None = None) -> list[date]:
    """Sessions in [start, day] with gold_signals and at least ``min_history`` earlier sessions with gold_episodes (the ones scored)."""
    episode_dates = lake.dates("gold", "gold_episodes")
    return [
        d for d in lake.dates("gold", "gold_signals")
        if d <= day and (start is None or d >= start) and bisect_left(episode_dates, d) >= min_history
    ]


def scored_signals(lake: Lake, day: date, min_history: int, start: date | None = None) -> pl.DataFrame | None:
    """gold_signals of every session in [start, day] with at least ``min_history`` earlier sessions
    (with gold_episodes), joined with their outcome; None when no session qualifies."""
    eligible = eligible_sessions(lake, day, min_history, start)
    return _signals_with_outcomes(lake, eligible) if eligible else None


def _signals_with_outcomes(lake: Lake, dates: list[date]) -> pl.DataFrame:
    """gold_signals of ``dates`` (non-empty) joined with their episodes' outcome."""
    signals = lake.read_many("gold", "gold_signals", dates)
    outcomes = lake.read_many("gold", "gold_episodes", dates, [*_KEYS, "outcome"])
    return signals.join(outcomes, on=_KEYS, how="inner")


#: gold_evaluation's per-session sufficient statistics (``evaluation_sums.session_sums`` plus the
#: fingerprint of the signals they were computed from), one partition per session.
EVALUATION_SUMS = "gold_evaluation_sums"


#: What the stored sums hold (models and row sets of ``evaluation_sums.session_sums``): stored sums
#: and checkpoints of another layout are computed again, not mixed with today's.
#: (Summing a group's rows in their order instead of polars' sort order changes the sums by about
#: 1e-16, not what they hold: no new layout, so an upgraded lake's daily job does not compute every
#: session's sums again.)
SUMS_LAYOUT = "sums-2 (references, first_anchor)"


def _signals_fingerprint(lake: Lake, d: date) -> str:
    return f"{SUMS_LAYOUT}:{file_fingerprint(lake.partition_path('gold', 'gold_signals', d))}"


def _session_sums(lake: Lake, d: date, config: SpymasterConfig) -> pl.DataFrame:
    """Sums of session ``d`` with its signals fingerprint: the stored ones when computed from the current signals, else computed now."""
    fingerprint = _signals_fingerprint(lake, d)
    if lake.exists("gold", EVALUATION_SUMS, d):
        stored = lake.read("gold", EVALUATION_SUMS, d)
        if stored.height and "signals_fingerprint" in stored.columns and (stored["signals_fingerprint"] == fingerprint).all():
            return stored
    scored = _signals_with_outcomes(lake, [d])
    missing = [f"{prefix}*" for prefix in MODEL_PREFIXES.values() if f"{prefix}break" not in scored.columns]
    if missing:
        first = lake.dates("gold", "gold_signals")[0]
        raise SpymasterError(
            f"gold_signals of {d} was written by an earlier version of spymaster (no {', '.join(missing)} columns), so the "
            f"evaluation cannot score it beside the others: rebuild the gold tables, e.g. "
            f"`spymaster backfill --start {first} --end <the last session> --rebuild`"
        )
    return session_sums(scored, MODEL_PREFIXES, config.calibration_bins).with_columns(signals_fingerprint=pl.lit(fingerprint))


def _empty_sums(config: SpymasterConfig) -> pl.DataFrame:
    return pl.DataFrame(schema={**sums_schema(config.calibration_bins), "signals_fingerprint": pl.Utf8()})


def sums_of_day(lake: Lake, day: date, config: SpymasterConfig) -> pl.DataFrame:
    """The gold_evaluation_sums partition of ``day``: its sums when it is scored (enough earlier
    sessions, signals present), else an empty frame; the second frame of :func:`evaluation_sums_up_to`."""
    eligible = eligible_sessions(lake, day, config.min_history_sessions)
    return _session_sums(lake, day, config) if eligible and eligible[-1] == day else _empty_sums(config)


def store_sums_of_day(home: str, key: str, product: str = "") -> None:
    """Pool worker of gold_evaluation's range preparation: write :func:`sums_of_day` of product ``product``'s session ``key`` under data root ``home``."""
    from spymaster_resources import SpymasterResource

    spymaster = SpymasterResource(home=home, workers=1, product=product)
    day = date.fromisoformat(key)
    spymaster.lake.write("gold", EVALUATION_SUMS, day, sums_of_day(spymaster.lake, day, spymaster.config))


def evaluation_sums_up_to(lake: Lake, day: date, config: SpymasterConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sums of every eligible session up to ``day``, sums of ``day`` to store) for gold_evaluation.

    Each session's sums are read from its gold_evaluation_sums partition (through the process memo:
    once per run) when they match its current signals, else computed from them, so the day's
    cumulative scores cost one small read per session instead of re-scoring every episode. The
    second frame is ``day``'s (empty when ``day`` is not scored).
    """
    eligible = eligible_sessions(lake, day, config.min_history_sessions)
    frames = [_session_sums(lake, d, config) for d in eligible]
    empty = _empty_sums(config)
    everything = pl.concat(frames, how="vertical_relaxed") if frames else empty
    today = frames[-1] if eligible and eligible[-1] == day else empty
    return everything, today


#: A checkpoint of the cumulative sums is saved beside gold_evaluation every this many scored
#: sessions, so a new process (the daily job) adds at most this many sessions' sums to the latest
#: valid one instead of every scored session. Which sessions hold one depends on the history only.
CHECKPOINT_EVERY = 20
CHECKPOINT_FILE = "cumulative.npz"


def _checkpoint_path(lake: Lake, day: date) -> LakePath:
    return lake.partition_dir("gold", "gold_evaluation", day) / CHECKPOINT_FILE


def _signals_fingerprints(lake: Lake) -> dict[date, str]:
    return {d: info["fingerprint"] for d, info in lake.partition_files("gold", "gold_signals").items()}


def save_checkpoint(lake: Lake, day: date, carry: CumulativeSums) -> LakePath | None:
    """Save ``carry`` (its last session ``day``) with the fingerprints of its sessions' signals beside
    ``day``'s gold_evaluation when it holds a multiple of :data:`CHECKPOINT_EVERY` sessions
    (temporary file, then rename). Returns the path written, else None."""
    if not carry.sessions or carry.sessions[-1] != day or len(carry.sessions) % CHECKPOINT_EVERY:
        return None
    fingerprints = _signals_fingerprints(lake)
    meta, arrays = carry.state()
    meta["signals_fingerprints"] = {d.isoformat(): fingerprints.get(d, "") for d in carry.sessions}
    meta["layout"] = SUMS_LAYOUT

    def write(staged) -> None:
        with open(staged, "wb") as handle:  # a handle: given a path, np.savez would append ".npz" to it
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)

    return write_file_atomic(_checkpoint_path(lake, day), write)


def _latest_checkpoint(lake: Lake, earlier: list[date], fingerprints: dict[date, str]) -> CumulativeSums | None:
    """The latest checkpoint among the eligible sessions ``earlier`` whose sessions are exactly the
    first ones of ``earlier`` with today's signals ``fingerprints`` (nothing before it rebuilt), else None."""
    for count in range(len(earlier) - len(earlier) % CHECKPOINT_EVERY, 0, -CHECKPOINT_EVERY):
        day = earlier[count - 1]
        try:
            with open_binary(_checkpoint_path(lake, day)) as handle, np.load(handle) as saved:
                meta = json.loads(str(saved["meta"]))
                if meta.get("layout") != SUMS_LAYOUT or meta["signals_fingerprints"] != {d.isoformat(): fingerprints[d] for d in earlier[:count]}:
                    continue
                carry = CumulativeSums.from_state(meta, {k: saved[k] for k in saved.files if k != "meta"})
        except (OSError, ValueError, KeyError):
            continue
        if carry.sessions == earlier[:count]:
            return carry
    return None


#: The cumulative sums each lake (by its root) last reached in this process: (the last session
#: added, the signals fingerprint of every session added, the sums). The walk adds one session a day.
_RECENT_CUMULATIVE: dict[str, tuple[date, dict[date, str], CumulativeSums]] = {}


def cumulative_as_of(lake: Lake, day: date, config: SpymasterConfig) -> tuple[CumulativeSums, pl.DataFrame]:
    """(the sums of every eligible session up to ``day`` added up, ``day``'s own sums to store) for gold_evaluation.

    Carried: when this process last added up to the eligible session before ``day`` and no session
    it added has been rebuilt since (same signals fingerprints), ``day``'s sums are added to that;
    else the sessions after the latest valid checkpoint (:func:`save_checkpoint`) are added to it;
    else every eligible session's sums are added in date order (read from gold_evaluation_sums when
    they match the signals, as :func:`evaluation_sums_up_to`). Both give the same sums bit for bit,
    and the cost of a session in a date-order walk does not grow with history.
    """
    eligible = eligible_sessions(lake, day, config.min_history_sessions)
    signals = _signals_fingerprints(lake)
    fingerprints = {d: signals.get(d, "") for d in eligible}
    earlier = [d for d in eligible if d < day]
    recent = _RECENT_CUMULATIVE.get(str(lake.root))
    scored_today = bool(eligible) and eligible[-1] == day
    if recent is not None and recent[0] == (eligible[-1] if eligible else None) and recent[1] == fingerprints:
        return recent[2], _session_sums(lake, day, config) if scored_today else _empty_sums(config)
    if recent is not None and earlier and recent[0] == earlier[-1] and recent[1] == {d: fingerprints[d] for d in earlier}:
        today = _session_sums(lake, day, config) if scored_today else _empty_sums(config)
        carry = cumulative_sums(today.drop("signals_fingerprint"), config.bootstrap_replicates, config.bootstrap_seed, start=recent[2])
    else:
        saved = _latest_checkpoint(lake, earlier, fingerprints)
        if saved is not None and (saved.replicates, saved.seed) == (config.bootstrap_replicates, config.bootstrap_seed):
            rest = [d for d in eligible if d > saved.sessions[-1]]
            frames = [_session_sums(lake, d, config) for d in rest]
            today = frames[-1] if scored_today else _empty_sums(config)
            added = pl.concat(frames, how="vertical_relaxed").drop("signals_fingerprint") if frames else _empty_sums(config).drop("signals_fingerprint")
            carry = cumulative_sums(added, config.bootstrap_replicates, config.bootstrap_seed, start=saved)
        else:
            everything, today = evaluation_sums_up_to(lake, day, config)
            carry = cumulative_sums(everything.drop("signals_fingerprint"), config.bootstrap_replicates, config.bootstrap_seed)
    if eligible:
        _RECENT_CUMULATIVE[str(lake.root)] = (eligible[-1], fingerprints, carry)
    return carry, today


def evaluate_lake(config: SpymasterConfig, start: date | None = None, end: date | None = None) -> tuple[pl.DataFrame, str]:
    """Compare every model on the materialized gold_signals of sessions in [start, end] (with enough history).

    Returns (the :func:`evaluation.compare_models` tables per anchor and per approach (each
    approach's first anchor), one frame with a ``scope`` column "anchor" / "approach", and their text
    form with a header naming the sessions and a plain verdict against each baseline). Raises SpymasterError when nothing in the
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
    if "p_mix_break" not in scored.columns:
        raise SpymasterError("gold_signals were written by an older version without the reference columns (p_mix_*, p_distcal_*, p_t1_*): rematerialize the gold assets")
    complete = scored.drop_nulls("p_xgb_break")
    tables, texts = [], []
    for scope, rows, what in (("anchor", complete, "every anchor of the episodes every model answered"), ("approach", first_anchors(complete), "each approach once, at its first anchor")):
        try:
            table = compare_models(
                rows, MODEL_PREFIXES, bins=config.calibration_bins, level=config.interval_level,
                replicates=config.bootstrap_replicates, seed=config.bootstrap_seed,
            )
        except ValueError as exc:
            raise SpymasterError(f"cannot compare the models: {exc} (the first model exists after {config.model_min_sessions} sessions)") from None
        sessions = sorted(rows["session_date"].unique().to_list())
        header = f"Walk-forward evaluation per {scope}, sessions {sessions[0]} .. {sessions[-1]} ({what})"
        texts.append("\n".join([header, format_comparison(table, config.interval_level), *("  " + v for v in _verdict(table, config))]))
        tables.append(table.with_columns(scope=pl.lit(scope)))
    return pl.concat(tables), "\n\n".join(texts)


def _verdict(table: pl.DataFrame, config: SpymasterConfig) -> list[str]:
    """Plain sentences: does the answer beat each baseline of ``table`` (a :func:`compare_models` table)?"""
    answer = table.filter(pl.col("model") == "answer").row(0, named=True)
    verdict = []
    for tag, name in (("base", "the partition base rate"), ("distance", "the distance lookup"), ("best", f"the best baseline ({answer['best_baseline']})")):
        lo = answer[f"bss_{tag}_lo"]
        if lo is not None and lo > 0:
            verdict.append(f"the answer beats {name} (the whole {config.interval_level:.0%} interval is above 0)")
        elif answer[f"bss_{tag}"] > 0:
            verdict.append(f"the answer is ahead of {name}, but its {config.interval_level:.0%} interval includes 0")
        else:
            verdict.append(f"the answer does NOT beat {name}")
    return verdict
