"""One session on the trader's screen: its 1-minute bars, the engine that answers them, and what the page says about the answer.

:func:`open_replay` prepares a session of the lake for replay: the front month's 1-minute bars read
from the raw DBN files (as ``bronze_futures_ohlcv_1m`` reads them), the previous session's bars as
the indicators' warm-up, the session's order-flow and options tables from the lake (cut at each
bar close by the engine), and what was known before the day (index, normalization, model, distance
lookup, blend fit as of the day). :func:`payload` turns a :class:`BarClose` into the JSON the page draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

import polars as pl

from spymaster_core.config import LEVEL_KINDS, OUTCOMES, SpymasterConfig
from spymaster_core.errors import MissingPartitionError, SpymasterError
from spymaster_core.tuned_params import config_for_day
from spymaster_resources.lake import Lake
from spymaster_resources.raw_files import RawCatalog, empty_definitions

from ..bronze.ingest import session_ohlcv_1m
from ..charts.session_chart import LEVEL_STYLES
from ..gold.as_of import known_before_from_lake
from ..silver.assets import daily_history, options_inputs, order_flow_inputs, warmup_bars
from ..sessions import NY, is_trading_session, session_venue
from .engine import BAR_COLUMNS, BarClose, SessionEngine

_CLASSES = [o.lower() for o in OUTCOMES]
#: Neighbours sent per level and bar (the page lists them best first).
TOP_NEIGHBOURS = 5
#: lightweight-charts line styles: 0 solid, 1 dotted, 2 dashed.
_LINE_STYLE = {"-": 0, ":": 1, "--": 2}


@dataclass
class ReplaySession:
    """A session ready to replay: ``bars`` (1-minute, BAR_COLUMNS, by ts_event), the ``engine``, and ``meta`` for the page."""

    day: date
    bars: pl.DataFrame
    engine: SessionEngine
    meta: dict


def sessions_in_lake(lake: Lake) -> list[date]:
    """Sessions the screen can replay with answers: those with gold_signals in the lake (sorted)."""
    return lake.dates("gold", "gold_signals")


def open_replay(config: SpymasterConfig, day: date, catalog: RawCatalog) -> ReplaySession:
    """Prepare session ``day`` for replay (see the module docstring).

    Raises:
        SpymasterError: ``day`` is not a CME trading session, or it has no index as of the day in
            the lake (not materialized: run ``spymaster backfill``), naming the date.
        RawDataError: no raw DBN file covers the session.
    """
    if not is_trading_session(day, config):
        raise SpymasterError(f"{day} is not a {session_venue(config)} trading session (weekend or holiday)")
    lake = Lake(config.lake_dir)
    config, _ = config_for_day(config, day)
    try:
        known = known_before_from_lake(lake, day, config)
    except MissingPartitionError as exc:
        raise SpymasterError(f"{day}: no answer as of that day in the lake ({exc}); run `spymaster backfill --start {day} --end {day}`") from None
    defs = lake.read("bronze", "bronze_definitions", day) if lake.exists("bronze", "bronze_definitions", day) else empty_definitions()
    minutes = session_ohlcv_1m(catalog, day, defs, config).bars.sort("ts_event")
    instrument = int(minutes["instrument_id"][0]) if minutes.height else -1
    # Order flow and options come from the lake's bronze and silver tables; the engine passes each bar close only their rows up to it.
    daily = daily_history(lake, day, config, catalog) if "atr_regime" in config.chart_blocks else None
    engine = SessionEngine(day, config, known, warmup_bars(lake, day, instrument, config)[0], order_flow_inputs(lake, day, config), options_inputs(lake, day), daily)
    return ReplaySession(day, minutes.select(BAR_COLUMNS), engine, session_meta(lake, day, known, config))


@dataclass
class LiveSession:
    """Today's session for the live source: the ``engine``, the front month's ``instrument_id`` when
    the lake's previous session names it (None: chosen from the feed), ``meta`` for the page and
    ``problem`` (why there are no answers, or None)."""

    day: date
    engine: SessionEngine
    instrument_id: int | None
    meta: dict
    problem: str | None


def open_live(config: SpymasterConfig, day: date) -> LiveSession:
    """Prepare session ``day`` for the live source. Without an index as of the day in the lake the
    engine still draws candles, levels and state, and ``problem`` says why there are no answers.

    Raises:
        SpymasterError: ``day`` is not a CME trading session.
    """
    if not is_trading_session(day, config):
        raise SpymasterError(f"{day} is not a {session_venue(config)} trading session (weekend or holiday): no live session")
    lake = Lake(config.lake_dir)
    config, _ = config_for_day(config, day)
    problem = None
    try:
        known = known_before_from_lake(lake, day, config)
    except MissingPartitionError as exc:
        known, problem = None, f"no index as of {day} in the lake ({exc}): candles and levels only, no answers; materialize gold_setup_index for {day}"
    before = lake.dates_before("bronze", "bronze_futures_ohlcv_1m", day, limit=1)
    previous = lake.read("bronze", "bronze_futures_ohlcv_1m", before[0]) if before else None
    instrument = int(previous["instrument_id"][0]) if previous is not None and previous.height else None
    warmup = warmup_bars(lake, day, instrument, config)[0] if instrument is not None else None
    daily = daily_history(lake, day, config) if "atr_regime" in config.chart_blocks else None
    engine = SessionEngine(day, config, known, warmup_1m=warmup, daily_history=daily)
    return LiveSession(day, engine, instrument, session_meta(lake, day, known, config), problem)


def reliability_line(lake: Lake, day: date) -> str:
    """One line on how far to trust the answer: its walk-forward scores through the session before ``day``.

    From the latest gold_evaluation partition before ``day`` (point in time: the day's own outcomes
    are not in it), scope cumulative, all levels: the answer's BSS against the partition base rate,
    the distance lookup and the best baseline (the strongest reference on those episodes) with their
    session-bootstrap intervals, and its top-label ECE.
    """
    before = lake.dates_before("gold", "gold_evaluation", day, limit=1)
    if not before:
        return "no walk-forward evaluation before this session yet"
    table = lake.read("gold", "gold_evaluation", before[0])
    row = table.filter((pl.col("scope") == "cumulative") & (pl.col("model") == "answer") & (pl.col("level_kind") == "ALL") & (pl.col("direction") == "ALL"))
    if row.height == 0:
        return f"no walk-forward score of the answer through {before[0]} yet"
    r = row.row(0, named=True)

    def bss(name: str) -> str:
        if r[name] is None or math.isnan(r[name]):
            return "n/a"
        lo, hi = r[f"{name}_lo"], r[f"{name}_hi"]
        if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
            return f"{r[name]:+.3f} (no interval from {r['n_sessions']} session{'s' if r['n_sessions'] != 1 else ''})"
        return f"{r[name]:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    sessions = f"{r['n_sessions']} session{'s' if r['n_sessions'] != 1 else ''}"
    return (
        f"walk-forward through {before[0]} ({sessions}, {r['n_episodes']:,} setups): "
        f"BSS vs base rate {bss('bss_base')}, vs distance lookup {bss('bss_distance')}, "
        f"vs the best baseline ({r.get('best_baseline') or 'n/a'}) {bss('bss_best') if 'bss_best' in r else 'n/a'}, top-label ECE {r['top_label_ece']:.3f}"
    )


def session_meta(lake: Lake, day: date, known, config: SpymasterConfig) -> dict:
    """What the page says about every probability of the session: index as of, vector schemas,
    reliability, level styles (``known`` None: no index as of the day, so no answers)."""
    indexes = known.indexes if known is not None else None
    return {
        "date": day.isoformat(),
        "index_as_of": day.isoformat() if known is not None else None,
        "index_sessions": len(indexes.sessions) if indexes is not None else 0,
        "index_last_session": indexes.sessions[-1].isoformat() if indexes is not None and indexes.sessions else None,
        "vector_schemas": sorted(indexes.indexes) if indexes is not None else [],
        "answer_source": known.answer_source if known is not None else "none: no index as of this session",
        "model_trained_through": known.model.trained_through.isoformat() if known is not None and known.model is not None else None,
        "reliability": reliability_line(lake, day),
        "levels": {kind: {"color": LEVEL_STYLES[kind]["color"], "style": _LINE_STYLE.get(LEVEL_STYLES[kind]["linestyle"], 0)} for kind in LEVEL_KINDS},
        "approach_zone_atr": config.approach_zone_atr,
    }


def chart_time(ts: datetime) -> int:
    """Seconds of the New York wall-clock time of ``ts`` as if it were UTC: lightweight-charts draws
    times in UTC, and the trader reads New York time."""
    wall = ts.astimezone(NY).replace(tzinfo=timezone.utc)
    return int(wall.timestamp())


def payload(close: BarClose) -> dict:
    """The JSON the page draws for one 2-minute bar close.

    Keys: t (chart time, :func:`chart_time`), ts_utc (ISO), time_ny (HH:MM), candle (open, high,
    low, close in points; volume in contracts; t is its open), levels (level_kind, level_price in points),
    gap_minutes, and answers: per level in the approach zone its direction, distance_atr, the
    answer's probabilities p with their interval lo/hi (the configured level), smooth (the EMA
    along the approach), base (partition base rate), n_eff (Kish effective sample size),
    n_neighbours, answer_source, vector_version (the index schema that answered) and neighbours
    (date, time New York, similarity, outcome; best first, at most :data:`TOP_NEIGHBOURS`).
    """
    candle = close.candle
    answers = []
    distance = dict(close.state.select("level_kind", "distance_atr").iter_rows()) if close.state.height else {}
    for row in close.signals.iter_rows(named=True):
        mine = close.neighbours.filter((pl.col("level_kind") == row["level_kind"]) & (pl.col("ts_event") == row["ts_event"])).sort("rank").head(TOP_NEIGHBOURS)
        answers.append(
            {
                "level_kind": row["level_kind"],
                "direction": row["direction"],
                "distance_atr": distance.get(row["level_kind"]),
                "p": {o: row[f"p_{c}"] for o, c in zip(OUTCOMES, _CLASSES)},
                "lo": {o: row[f"p_{c}_lo"] for o, c in zip(OUTCOMES, _CLASSES)},
                "hi": {o: row[f"p_{c}_hi"] for o, c in zip(OUTCOMES, _CLASSES)},
                "smooth": {o: row[f"p_{c}_smooth"] for o, c in zip(OUTCOMES, _CLASSES)},
                "base": {o: row[f"base_{c}"] for o, c in zip(OUTCOMES, _CLASSES)},
                "n_eff": row["effective_sample_size"],
                "n_neighbours": row["n_neighbours"],
                "answer_source": row["answer_source"],
                "vector_version": row["vector_version"],
                "neighbours": [
                    {
                        "date": n["neighbour_session_date"].isoformat(),
                        "time": n["neighbour_ts_event"].astimezone(NY).strftime("%H:%M"),
                        "similarity": round(float(n["similarity"]), 4),
                        "outcome": n["outcome"],
                    }
                    for n in mine.iter_rows(named=True)
                ],
            }
        )
    levels = [] if close.levels.height == 0 else [{"level_kind": k, "level_price": p} for k, p in close.levels.select("level_kind", "level_price").iter_rows() if p is not None]
    return {
        "t": chart_time(candle["ts_event"]),
        "ts_utc": close.ts_close.isoformat(),
        "time_ny": close.ts_close.astimezone(NY).strftime("%H:%M"),
        "candle": {k: candle[k] for k in ("open", "high", "low", "close", "volume")},
        "levels": levels,
        "gap_minutes": close.gap_minutes,
        "answers": answers,
    }


def screen_start(day: date) -> datetime:
    """04:00 New York on ``day`` (UTC): the page's candles start there."""
    return datetime.combine(day, time(4, 0), tzinfo=NY).astimezone(timezone.utc)
