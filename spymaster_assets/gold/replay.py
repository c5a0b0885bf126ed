"""Replay a session bar by bar: the probabilities a trader saw live at each approach, and what followed.

For every 2-minute anchor bar close of the anchor window (09:32-12:30 ET by default) and every level
inside the approach zone at that close, the replay shows gold_signals' P(BREAK/REJECT/CHOP) (raw and
smoothed along the approach). Those are point in time: gold_signals answered day D from the index
as of D, built only from earlier sessions. Beside them it shows the outcome that followed
(gold_episodes) and the time to it (silver_outcomes): hindsight, never available live.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from spymaster_resources.lake import Lake

from spymaster_core.config import LEVEL_KINDS, OUTCOMES, SpymasterConfig
from spymaster_core.errors import MissingPartitionError, SpymasterError
from ..sessions import NY, et_to_utc
from .query import check_session

_CLASSES = [o.lower() for o in OUTCOMES]  # break, reject, chop


def _anchor_bars(bars: pl.DataFrame, config: SpymasterConfig, day: date) -> pl.DataFrame:
    """Anchor bars of the window: ts_event = 2-minute bar close in (anchor_start, anchor_end], with close and ATR."""
    start, end = et_to_utc(day, config.anchor_start), et_to_utc(day, config.anchor_end)
    return (
        bars.filter(
            (pl.col("bar_minutes") == config.level_bar_minutes)
            & (pl.col("ts_close") > pl.lit(start))
            & (pl.col("ts_close") <= pl.lit(end))
        )
        .select(pl.col("ts_close").alias("ts_event"), "close", "atr_points")
        .sort("ts_event")
    )


def replay_table(
    bars: pl.DataFrame,
    signals: pl.DataFrame,
    episodes: pl.DataFrame,
    outcomes: pl.DataFrame,
    config: SpymasterConfig,
    day: date,
    level_kind: str | None = None,
) -> pl.DataFrame:
    """One row per (anchor bar close, level in the approach zone) of session ``day``, plus one row per anchor bar with none.

    Inputs (one session each): silver_bars (bar_minutes, ts_close, close, atr_points; points),
    gold_signals (ts_event = anchor close, level_kind, direction, approach_id, p_*, p_*_lo/hi,
    p_*_smooth, effective_sample_size, n_neighbours, base_*, vector_version), gold_episodes
    (ts_event, level_kind, distance_atr, outcome, ambiguous, horizon_complete) and silver_outcomes
    (ts_event, level_kind, level_price, first_event_ts, time_to_event_s, mfe_atr, mae_atr).

    Output columns: ts_event (anchor close, UTC), close (points), atr_points, level_kind (null on a
    bar with no level in the zone), level_price (points), direction, distance_atr (ATR),
    approach_id, the gold_signals probability columns unchanged, outcome, first_event_ts,
    time_to_outcome_min (minutes from the anchor close to the 1-minute bar close that decided it;
    null for CHOP), mfe_atr, mae_atr, ambiguous, horizon_complete. Sorted by ts_event, then level
    kind in LEVEL_KINDS order. Anchor bars are the 2-minute closes in (anchor_start, anchor_end];
    an anchor present in the signals but not in the bars still gets its row. ``level_kind`` keeps
    only that kind's approaches (every anchor bar is still listed).

    Raises:
        ValueError: ``level_kind`` is not one of LEVEL_KINDS, or a signal has no episode or outcome
            row (the lake partitions are inconsistent: re-materialize the session).
    """
    if level_kind is not None and level_kind not in LEVEL_KINDS:
        raise ValueError(f"unknown level kind {level_kind!r}; choose from {', '.join(LEVEL_KINDS)}")
    keys = ["ts_event", "level_kind"]
    if level_kind is not None:
        signals = signals.filter(pl.col("level_kind") == level_kind)
    probability_columns = [f"p_{c}{suffix}" for suffix in ("", "_lo", "_hi", "_smooth") for c in _CLASSES]
    # The answer's source and components (written since the model joined the answer), when present.
    components = [c for c in ("answer_source", *(f"{p}{c}" for p in ("p_knn_", "p_xgb_", "p_dist_") for c in _CLASSES)) if c in signals.columns]
    approaches = (
        signals.select(
            *keys, "direction", "approach_id", *probability_columns, *components, "effective_sample_size", "n_neighbours",
            *(f"base_{c}" for c in _CLASSES), "vector_version",
        )
        .join(episodes.select(*keys, "distance_atr", "outcome", "ambiguous", "horizon_complete"), on=keys, how="left")
        .join(
            outcomes.select(*keys, "level_price", "anchor_close", "first_event_ts", "time_to_event_s", "mfe_atr", "mae_atr"),
            on=keys,
            how="left",
        )
    )
    missing = approaches.filter(pl.col("outcome").is_null() | pl.col("level_price").is_null())
    if missing.height:
        first = missing.row(0, named=True)
        raise ValueError(
            f"{day}: {missing.height} gold_signals rows have no gold_episodes/silver_outcomes row "
            f"(first: {first['level_kind']} at {first['ts_event']}); re-materialize the session"
        )
    anchors = _anchor_bars(bars, config, day)
    # Anchors known only from the signals take the anchor close recorded with the outcome.
    from_signals = approaches.select("ts_event", pl.col("anchor_close").alias("close")).unique("ts_event")
    anchors = pl.concat(
        [anchors, from_signals.join(anchors, on="ts_event", how="anti").with_columns(atr_points=pl.lit(None, pl.Float64))],
        how="vertical_relaxed",
    )
    kind_order = pl.Enum(list(LEVEL_KINDS))
    return (
        anchors.join(approaches.drop("anchor_close"), on="ts_event", how="left")
        .with_columns(time_to_outcome_min=pl.col("time_to_event_s") / 60.0)
        .drop("time_to_event_s")
        .sort(["ts_event", pl.col("level_kind").cast(kind_order)], nulls_last=True)
    )


def _probabilities(row: dict, suffix: str) -> dict[str, float]:
    return {o: row[f"p_{c}{suffix}"] for o, c in zip(OUTCOMES, _CLASSES)}


def replay_rows(table: pl.DataFrame, day: date, neighbours: pl.DataFrame | None = None, top: int = 3) -> list[dict]:
    """The replay as JSON-ready dicts, one per anchor bar in time order, from :func:`replay_table`.

    Each bar: date, time (bar close, New York HH:MM), ts_event (ISO UTC), close, atr_points, and
    levels (LEVEL_KINDS order; empty when no level is in the approach zone), each with level_kind,
    level_price, direction, distance_atr, approach_id, probabilities / smoothed / lower / upper per
    outcome (the answer as seen live), answer_source and components (knn, xgboost or null, distance),
    effective_sample_size, n_neighbours, base_rate, vector_schema, the ``top`` neighbours (date,
    time, similarity, outcome; from ``neighbours``, gold_signal_neighbours of the day, when given),
    and the hindsight fields outcome, outcome_time (New York HH:MM, null for CHOP),
    time_to_outcome_min, mfe_atr, mae_atr, ambiguous, horizon_complete.
    """
    nearest: dict[tuple, list[dict]] = {}
    if neighbours is not None:
        for row in neighbours.filter(pl.col("rank") <= top).sort("rank").iter_rows(named=True):
            nearest.setdefault((row["ts_event"], row["level_kind"]), []).append(
                {
                    "date": str(row["neighbour_session_date"]),
                    "time": row["neighbour_ts_event"].astimezone(NY).strftime("%H:%M"),
                    "similarity": round(float(row["similarity"]), 4),
                    "outcome": row["outcome"],
                }
            )
    bars: list[dict] = []
    for (ts,), group in table.partition_by("ts_event", as_dict=True, maintain_order=True).items():
        first = group.row(0, named=True)
        levels = []
        for row in group.filter(pl.col("level_kind").is_not_null()).iter_rows(named=True):
            decided = row["first_event_ts"]
            levels.append(
                {
                    "level_kind": row["level_kind"],
                    "level_price": row["level_price"],
                    "direction": row["direction"],
                    "distance_atr": row["distance_atr"],
                    "approach_id": row["approach_id"],
                    "probabilities": _probabilities(row, ""),
                    "smoothed": _probabilities(row, "_smooth"),
                    "lower": _probabilities(row, "_lo"),
                    "upper": _probabilities(row, "_hi"),
                    "answer_source": row.get("answer_source"),
                    "components": {
                        name: ({o: row[f"{prefix}{c}"] for o, c in zip(OUTCOMES, _CLASSES)} if row.get(f"{prefix}break") is not None else None)
                        for name, prefix in (("knn", "p_knn_"), ("xgboost", "p_xgb_"), ("distance", "p_dist_"))
                    },
                    "effective_sample_size": row["effective_sample_size"],
                    "n_neighbours": row["n_neighbours"],
                    "base_rate": {o: row[f"base_{c}"] for o, c in zip(OUTCOMES, _CLASSES)},
                    "vector_schema": row["vector_version"],
                    "neighbours": nearest.get((ts, row["level_kind"]), []),
                    "outcome": row["outcome"],
                    "outcome_time": decided.astimezone(NY).strftime("%H:%M") if decided is not None else None,
                    "time_to_outcome_min": row["time_to_outcome_min"],
                    "mfe_atr": row["mfe_atr"],
                    "mae_atr": row["mae_atr"],
                    "ambiguous": row["ambiguous"],
                    "horizon_complete": row["horizon_complete"],
                }
            )
        bars.append(
            {
                "date": day.isoformat(),
                "time": ts.astimezone(NY).strftime("%H:%M"),
                "ts_event": ts.isoformat(),
                "close": first["close"],
                "atr_points": first["atr_points"],
                "levels": levels,
            }
        )
    return bars


def _scan(lake: Lake, tier: str, table: str, day: date) -> pl.LazyFrame:
    """Scan one partition; a missing one is a SpymasterError naming the table and the materialized sessions."""
    try:
        return lake.scan(tier, table, day)
    except MissingPartitionError:
        known = lake.dates("gold", "gold_signals")
        hint = f"sessions with signals: {known[0]} .. {known[-1]} ({len(known)})" if known else "nothing is materialized yet"
        raise SpymasterError(f"--date {day}: {table} is not materialized for that date ({hint}); run `spymaster backfill` for it first") from None


def replay(config: SpymasterConfig, day: date, level_kind: str | None = None) -> list[dict]:
    """Replay session ``day`` from the lake under ``config.home``: :func:`replay_rows` of :func:`replay_table`.

    Reads gold_signals, gold_episodes, silver_outcomes and the 2-minute silver_bars of ``day``.
    The probabilities are exactly gold_signals' (index as of ``day``: earlier sessions only); the
    outcome fields are hindsight.

    Raises:
        SpymasterError: the session (or one of those tables) is not materialized, naming the table
            and the materialized range; or ``level_kind`` is unknown.
    """
    if level_kind is not None and level_kind not in LEVEL_KINDS:
        raise SpymasterError(f"--level {level_kind!r}: unknown level kind; choose from {', '.join(LEVEL_KINDS)}")
    check_session(day, config)
    lake = Lake(config.lake_dir)
    signals = _scan(lake, "gold", "gold_signals", day).collect()
    episodes = _scan(lake, "gold", "gold_episodes", day).drop("vector").collect()
    outcomes = _scan(lake, "silver", "silver_outcomes", day).collect()
    bars = (
        _scan(lake, "silver", "silver_bars", day)
        .filter(pl.col("bar_minutes") == config.level_bar_minutes)
        .select("bar_minutes", "ts_close", "close", "atr_points")
        .collect()
    )
    neighbours = lake.read("gold", "gold_signal_neighbours", day) if lake.exists("gold", "gold_signal_neighbours", day) else None
    return replay_rows(replay_table(bars, signals, episodes, outcomes, config, day, level_kind), day, neighbours)


def format_replay(bars: list[dict], day: date, level_kind: str | None = None, horizon_minutes: int | None = None, warning: str | None = None, known_from: dict[str, str] | None = None) -> str:
    """The replay as text: a header naming what is live and what is hindsight, then one line per (bar, level in zone).

    A bar with no level in the approach zone gets one line saying so. P(B/R/C) are the live
    posterior means, ``smooth`` the EMA along the approach; ``outcome`` / ``after`` (minutes to the
    deciding 1-minute bar close) are hindsight; ``*`` marks a label from a horizon cut short by the
    session end, ``?`` an ambiguous bar. ``known_from``: level kind -> "HH:MM" New York when it becomes
    known (``silver.levels.level_known_from``); a bar before it says the level is not known yet, as ``query`` does.
    """
    scope = f" ({level_kind} only)" if level_kind else ""
    chop = f"none within {horizon_minutes} min" if horizon_minutes else "no threshold reached"
    lines = [f"warning: {warning}"] if warning else []
    lines += [
        f"{day.isoformat()} replay{scope}: P(B/R/C) as seen live from gold_signals (index as of {day.isoformat()}: earlier sessions only).",
        f"outcome / after are hindsight (first crossing after the anchor close; CHOP = {chop}).",
        "P(B/R/C): the answer (the calibrated blend of the model and the neighbours); P(B) 90%: its interval; neighbours: --json.",
        f"{'time':<5}  {'close':>8}  {'level':<8} {'price':>8} {'dir':<4} {'d/ATR':>6}  {'P(B)':>5} {'P(R)':>5} {'P(C)':>5}  {'P(B) 90%':<9}  {'smooth B/R/C':<14} {'n_eff':>5}  {'outcome':<8} {'after':>6}",
    ]
    for bar in bars:
        close = f"{bar['close']:>8.2f}" if bar["close"] is not None else f"{'-':>8}"
        if not bar["levels"]:
            since = (known_from or {}).get(level_kind) if level_kind else None
            if since is not None and bar["time"] < since:
                lines.append(f"{bar['time']:<5}  {close}  ({level_kind} not known yet: known from {since})")
            else:
                lines.append(f"{bar['time']:<5}  {close}  ({level_kind or 'no level'} {'not ' if level_kind else ''}in the approach zone)")
            continue
        for i, lvl in enumerate(bar["levels"]):
            head = f"{bar['time']:<5}  {close}" if i == 0 else " " * 15
            p, s = lvl["probabilities"], lvl["smoothed"]
            smooth = "/".join(f"{s[o]:.2f}" for o in OUTCOMES)
            after = f"{lvl['time_to_outcome_min']:.0f} min" if lvl["time_to_outcome_min"] is not None else "-"
            flags = ("*" if not lvl["horizon_complete"] else "") + ("?" if lvl["ambiguous"] else "")
            lines.append(
                f"{head}  {lvl['level_kind']:<8} {lvl['level_price']:>8.2f} {lvl['direction']:<4} {lvl['distance_atr']:>+6.2f}  "
                f"{p['BREAK']:>5.2f} {p['REJECT']:>5.2f} {p['CHOP']:>5.2f}  {lvl['lower']['BREAK']:.2f}-{lvl['upper']['BREAK']:.2f}  {smooth:<14} {lvl['effective_sample_size']:>5.1f}  "
                f"{lvl['outcome'] + flags:<8} {after:>6}"
            )
    return "\n".join(lines)
