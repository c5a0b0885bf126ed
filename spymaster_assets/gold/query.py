"""Answer a trader's question for one bar: which levels are near, and what did similar past setups do?"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl

from spymaster_resources.lake import Lake

from ..config import OUTCOMES, SpymasterConfig
from ..errors import MissingPartitionError, SpymasterError
from ..sessions import NY, et_to_utc
from . import as_of
from .signals import answer_vector


def anchor_instant(config: SpymasterConfig, day: date, wall: time) -> datetime:
    """The 2-minute bar close (UTC) at or just before ``wall`` New York time on ``day``.

    Raises:
        SpymasterError: ``wall`` is outside the anchor window (after 09:30, up to 12:30 by default).
    """
    start, end = et_to_utc(day, config.anchor_start), et_to_utc(day, config.anchor_end)
    at = et_to_utc(day, wall)
    if not start < at <= end:
        raise SpymasterError(
            f"--time {wall:%H:%M} is outside the anchor window: choose a bar close after {config.anchor_start:%H:%M} and up to {config.anchor_end:%H:%M} New York time"
        )
    step = config.level_bar_minutes * 60
    offset = int((at - start).total_seconds()) // step * step
    return start + timedelta(seconds=offset)


def _read_state(lake: Lake, day: date) -> pl.DataFrame:
    try:
        return lake.read("silver", "silver_level_state", day)
    except MissingPartitionError:
        known = lake.dates("silver", "silver_level_state")
        hint = f"materialized sessions: {known[0]} .. {known[-1]} ({len(known)})" if known else "nothing is materialized yet"
        raise SpymasterError(f"--date {day}: no materialized session on that date ({hint}); run `spymaster backfill` for it first") from None


def answer_query(config: SpymasterConfig, day: date, wall: time, level_kind: str | None = None) -> dict:
    """The answer printed by ``spymaster query``, as a JSON-ready dict.

    Keys: date, time (bar close, New York), close, atr_points, and levels: one entry per level kind
    known at that bar (or only ``level_kind``) with level_price (points), direction (UP/DOWN),
    distance_atr, in_zone and, when in the approach zone, probabilities / lower / upper per outcome
    (Dirichlet posterior from the index as of ``day``), effective_sample_size, n_neighbours,
    base_rate, index_partition, vector_schema (the layout version and the feature families of the
    index that answered) and neighbours (date, time, similarity, outcome; best first).

    Raises:
        SpymasterError: unknown date (not materialized), time outside the anchor window, no bar at
            that time, or the level not known at that bar.
    """
    lake = Lake(config.lake_dir)
    state = _read_state(lake, day)
    anchor = anchor_instant(config, day, wall)
    rows = state.filter(pl.col("ts_event") == anchor)
    if rows.height == 0:
        raise SpymasterError(f"--time {wall:%H:%M}: no 2-minute bar closed at {anchor.astimezone(NY):%H:%M} on {day} (no trades in it)")
    if level_kind:
        rows = rows.filter(pl.col("level_kind") == level_kind)
        if rows.height == 0:
            raise SpymasterError(f"--level {level_kind}: not known at {anchor.astimezone(NY):%H:%M} on {day} (opening-range levels are known from 09:45)")
    in_zone = rows.filter(pl.col("in_zone"))
    index = stats = None
    if in_zone.height:
        index = as_of.index_as_of(lake, day, config)
        stats = as_of.stats_as_of(lake, day)
    levels = []
    for row in rows.sort("level_kind").iter_rows(named=True):
        entry = {
            "level_kind": row["level_kind"],
            "level_price": row["level_price"],
            "direction": row["direction"],
            "distance_atr": row["distance_atr"],
            "in_zone": bool(row["in_zone"]),
        }
        if row["in_zone"]:
            one = rows.filter(pl.col("level_kind") == row["level_kind"])
            signal, neighbours = answer_vector(index, stats, one, config)
            s = signal.row(0, named=True)
            names = [o.lower() for o in OUTCOMES]
            entry.update(
                probabilities={o: s[f"p_{n}"] for o, n in zip(OUTCOMES, names)},
                lower={o: s[f"p_{n}_lo"] for o, n in zip(OUTCOMES, names)},
                upper={o: s[f"p_{n}_hi"] for o, n in zip(OUTCOMES, names)},
                effective_sample_size=s["effective_sample_size"],
                n_neighbours=s["n_neighbours"],
                base_rate={o: s[f"base_{n}"] for o, n in zip(OUTCOMES, names)},
                index_partition=s["partition_key"],
                vector_schema=s["vector_version"],
                neighbours=[
                    {
                        "date": str(n["neighbour_session_date"]),
                        "time": n["neighbour_ts_event"].astimezone(NY).strftime("%H:%M"),
                        "similarity": round(float(n["similarity"]), 4),
                        "outcome": n["outcome"],
                    }
                    for n in neighbours.sort("rank").iter_rows(named=True)
                ],
            )
        levels.append(entry)
    first = rows.row(0, named=True)
    return {
        "date": str(day),
        "time": anchor.astimezone(NY).strftime("%H:%M"),
        "close": first["close"],
        "atr_points": first["atr_points"],
        "index_as_of": str(day),
        "index_sessions": len(index.sessions) if index is not None else None,
        "levels": levels,
    }
