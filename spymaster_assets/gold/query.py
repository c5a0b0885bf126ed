"""Answer a trader's question for one bar: which levels are near, and what did similar past setups do?"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import polars as pl

from spymaster_resources.lake import Lake

from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_core.errors import MissingPartitionError, SpymasterError
from ..sessions import NY, et_to_utc, is_trading_session, session_venue
from spymaster_core.tuned_params import config_for_day
from . import as_of
from .history import history_change
from .signals import answer_vector
from ..silver.levels import level_known_from


def anchor_instant(config: SpymasterConfig, day: date, wall: time) -> datetime:
    """The 2-minute bar close (UTC) at or just before ``wall`` New York time on ``day``.

    Raises:
        SpymasterError: ``wall`` is outside the anchor window (after 09:30, up to 12:30 by default)
            or is not a bar close (09:31 with 2-minute bars).
    """
    start, end = et_to_utc(day, config.anchor_start), et_to_utc(day, config.anchor_end)
    at = et_to_utc(day, wall)
    if not start < at <= end:
        raise SpymasterError(
            f"--time {wall:%H:%M} is outside the anchor window: choose a bar close after {config.anchor_start:%H:%M} and up to {config.anchor_end:%H:%M} New York time"
        )
    step = config.level_bar_minutes * 60
    offset = int((at - start).total_seconds())
    if offset % step:
        before = start + timedelta(seconds=offset // step * step)
        after = before + timedelta(seconds=step)
        earlier = f"{before.astimezone(NY):%H:%M} or " if before > start else ""
        raise SpymasterError(
            f"--time {wall:%H:%M} is not a {config.level_bar_minutes}-minute bar close: the bars close every {config.level_bar_minutes} minutes from "
            f"{config.anchor_start:%H:%M} New York; choose {earlier}{after.astimezone(NY):%H:%M}"
        )
    return at


def check_session(day: date, config: SpymasterConfig | None = None) -> None:
    """Raise SpymasterError when ``day`` is not a session of the product (default ES), saying whether
    it is a weekend or a holiday of its calendar."""
    cfg = config or SpymasterConfig()
    if not is_trading_session(day, cfg):
        venue = session_venue(cfg)
        why = "a weekend" if day.weekday() >= 5 else f"a {venue} holiday"
        raise SpymasterError(f"--date {day} ({day:%A}) is not a {venue} trading session: {why}, so there is nothing to answer")


def _read_state(lake: Lake, day: date, config: SpymasterConfig) -> pl.DataFrame:
    check_session(day, config)
    try:
        return lake.read("silver", "silver_level_state", day)
    except MissingPartitionError:
        known = lake.dates("silver", "silver_level_state")
        hint = f"materialized sessions: {known[0]} .. {known[-1]} ({len(known)})" if known else "nothing is materialized yet"
        raise SpymasterError(f"--date {day}: no materialized session on that date ({hint}); run `spymaster backfill` for it first") from None


def match_drivers(known, episode: pl.DataFrame, neighbours: pl.DataFrame, config: SpymasterConfig, top_neighbours: int = 10, top_dims: int = 3) -> list[dict]:
    """Which vector dimensions drove the match: the largest shares of the cosine similarity to the top neighbours.

    The cosine similarity of normalized vectors q and n is sum_j q_j n_j; dimension j's share is
    the mean over the ``top_neighbours`` best neighbours of q_j n_j divided by their mean similarity.
    Returns up to ``top_dims`` dicts (feature, share, weight: the learned similarity weight, or None
    with equal weights), largest share first; [] when there is no neighbour.
    """
    import numpy as np

    from .normalization import normalize
    from .vectors import schema_dims, state_to_matrix, vector_columns

    if neighbours.height == 0:
        return []
    families = episode["feature_families"][0] if "feature_families" in episode.columns else "bars"
    label, index = known.indexes.for_families(families)
    dims = schema_dims(config, label)
    if "vector" in episode.columns:
        full = episode["vector"].to_numpy().reshape(1, -1)
    else:
        full = state_to_matrix(episode, vector_columns(config))
    query = normalize(full, known.stats, config.robust_z_clip, dims, known.indexes.weights)[0]
    key = f"{episode['level_kind'][0]}|{episode['direction'][0]}|{episode['time_bucket'][0]}"
    ids, sims = index.search_batch(key, query[None, :], k=top_neighbours, exclude_on_or_after=known.as_of)
    found = ids[0][ids[0] >= 0]
    if found.size == 0:
        return []
    contributions = (index.vectors_of(key, found) * query[None, :]).mean(axis=0)
    total = float(contributions.sum())
    names = [vector_columns(config)[d] for d in dims]
    order = np.argsort(-contributions)[:top_dims]
    weights = known.indexes.weights
    return [
        {
            "feature": names[j],
            "share": round(float(contributions[j] / total), 3) if total > 0 else None,
            "weight": None if weights is None else round(float(weights[dims[j]]), 4),
        }
        for j in order
        if contributions[j] > 0
    ]


def answer_query(config: SpymasterConfig, day: date, wall: time, level_kind: str | None = None) -> dict:
    """The answer printed by ``spymaster query``, as a JSON-ready dict.

    Keys: date, time (bar close, New York), close, atr_points, warning (None, or why the history
    the day's signals were built on has changed since: ``history.history_change``), and levels: one entry per level kind
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
    config, _ = config_for_day(config, day)  # the tuned values that served the day, as in gold_signals
    state = _read_state(lake, day, config)
    anchor = anchor_instant(config, day, wall)
    rows = state.filter(pl.col("ts_event") == anchor)
    if rows.height == 0:
        raise SpymasterError(f"--time {wall:%H:%M}: no 2-minute bar closed at {anchor.astimezone(NY):%H:%M} on {day} (no trades in it)")
    if level_kind:
        rows = rows.filter(pl.col("level_kind") == level_kind)
        if rows.height == 0:
            since = level_known_from(day, config).get(level_kind)
            known = f"known from {since.astimezone(NY):%H:%M}" if since is not None else "not known that session"
            raise SpymasterError(f"--level {level_kind}: not known yet at {anchor.astimezone(NY):%H:%M} on {day} ({known})")
    in_zone = rows.filter(pl.col("in_zone"))
    known = as_of.known_before_from_lake(lake, day, config) if in_zone.height else None
    index = known.indexes if known is not None else None
    levels = []
    atr = rows["atr_points"][0]
    for row in rows.sort("level_price", descending=True).iter_rows(named=True):
        entry = {
            "level_kind": row["level_kind"],
            "level_price": row["level_price"],
            "direction": row["direction"],
            "distance_atr": row["distance_atr"],
            "distance_points": None if row["distance_atr"] is None else row["distance_atr"] * atr,
            "in_zone": bool(row["in_zone"]),
        }
        if row["in_zone"]:
            one = rows.filter(pl.col("level_kind") == row["level_kind"])
            signal, neighbours = answer_vector(known, one, config)
            s = signal.row(0, named=True)
            names = [o.lower() for o in OUTCOMES]

            def probs(prefix: str) -> dict[str, float | None]:
                return {o: s[f"{prefix}{n}"] for o, n in zip(OUTCOMES, names)}

            entry.update(
                probabilities=probs("p_"),
                lower={o: s[f"p_{n}_lo"] for o, n in zip(OUTCOMES, names)},
                upper={o: s[f"p_{n}_hi"] for o, n in zip(OUTCOMES, names)},
                answer_source=s["answer_source"],
                components={"knn": probs("p_knn_"), "xgboost": probs("p_xgb_") if s["p_xgb_break"] is not None else None, "distance": probs("p_dist_")},
                blend_weight=s["blend_weight"],
                temperature=s["temperature"],
                model_trained_through=None if s["model_trained_through"] is None else str(s["model_trained_through"]),
                effective_sample_size=s["effective_sample_size"],
                n_neighbours=s["n_neighbours"],
                base_rate=probs("base_"),
                index_partition=s["partition_key"],
                vector_schema=s["vector_version"],
                match_drivers=match_drivers(known, one, neighbours, config),
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
    stale = history_change(lake, day) if known is not None else None
    setups = sum(part.n_vectors for one in index.indexes.values() for part in one.stats.values()) if index is not None else None
    return {
        "warning": None if stale is None else f"{stale}: this answer may differ from the one recorded; rebuild with `spymaster backfill --start {day} --end {day}`",
        "thin": thin_history(index, levels, config),
        "date": str(day),
        "time": anchor.astimezone(NY).strftime("%H:%M"),
        "close": first["close"],
        "atr_points": atr,
        "product": config.product,
        "price_unit": config.spec.unit_label,
        "interval_level": config.interval_level,
        "outcomes": outcome_meanings(atr, config),
        "index_as_of": str(day),
        "index_sessions": len(index.sessions) if index is not None else None,
        "index_setups": setups,
        "levels": levels,
    }


#: Below this many earlier sessions, or this effective sample size, an answer is flagged as thin.
THIN_SESSIONS = 5
THIN_N_EFF = 5.0


def thin_history(index, levels: list[dict], config: SpymasterConfig) -> str | None:
    """Why the answer rests on too little to trust, or None: no or few earlier sessions in the index
    (fewer than :data:`THIN_SESSIONS`), or an answered level with an effective sample size below :data:`THIN_N_EFF`."""
    answered = [lvl for lvl in levels if lvl["in_zone"]]
    if index is None or not answered:
        return None
    if not index.sessions:
        return "no earlier session in the index: every probability is the uniform prior (1/3 each), not a track record"
    if len(index.sessions) < THIN_SESSIONS:
        return f"only {len(index.sessions)} earlier session(s) in the index: the answer is a rough guess"
    thin = [f"{lvl['level_kind']} n_eff {lvl['effective_sample_size']:.1f}" for lvl in answered if lvl["effective_sample_size"] < THIN_N_EFF]
    return f"few similar setups ({', '.join(thin)}): the answer stays close to the base rate" if thin else None


def outcome_meanings(atr_points: float, config: SpymasterConfig) -> dict[str, str]:
    """What BREAK, REJECT and CHOP mean at this bar, in the product's price units (``silver.labels``: first crossing within the horizon)."""
    brk, rej, unit = config.break_atr * atr_points, config.reject_atr * atr_points, config.spec.unit_label
    return {
        "BREAK": f"price trades {brk:.2f} {unit} ({config.break_atr:g} ATR) through the level within {config.horizon_minutes} minutes, before REJECT",
        "REJECT": f"price moves {rej:.2f} {unit} ({config.reject_atr:g} ATR) back from the bar's close, away from the level, within {config.horizon_minutes} minutes",
        "CHOP": f"neither within {config.horizon_minutes} minutes",
    }


def gamma_profile_at(config: SpymasterConfig, day: date, wall: time) -> dict:
    """The dealer-gamma profile of the session's 0DTE chain at ``wall`` New York time, for ``spymaster gamma``.

    Point in time like the gamma feature block: open interest known before the session, option
    quotes and trades with ts_event <= T, F the last 1-minute futures close at or before T.
    Returns a JSON-ready dict: date, time, futures_price (points), total_gex_bn (billions of USD
    per 1% move), gamma_flip (the price nearest F where total GEX changes sign, re-evaluated with
    each option's implied vol held: sticky strike; None when it does not), call_wall / put_wall
    (strikes of the largest call / put |GEX|), skipped (options without a GEX, by reason) and
    strikes: per strike call_oi, put_oi, implied_vol (mean of the call and put), call_gex_bn,
    put_gex_bn, gex_bn.

    Raises:
        SpymasterError: the session is not materialized, or it has no 0DTE chain with open interest.
    """
    import numpy as np

    from ..silver.gamma_features import gex_profile, option_snapshots

    lake = Lake(config.lake_dir)
    at = et_to_utc(day, wall)
    try:
        chain = lake.read("bronze", "bronze_options_definitions", day)
        open_interest = lake.read("bronze", "bronze_options_open_interest", day)
        bbo, trades = lake.read("bronze", "bronze_options_bbo", day), lake.read("bronze", "bronze_options_trades", day)
        bars = lake.read("silver", "silver_bars", day)
    except MissingPartitionError:
        raise SpymasterError(f"--date {day}: the session's options and bars are not materialized; run `spymaster backfill` for it first") from None
    if chain.is_empty() or open_interest.is_empty():
        raise SpymasterError(f"--date {day}: no ES 0DTE chain with open interest in raw/ for this session (the gamma block is absent)")
    snap = option_snapshots(pl.Series("ts_event", [at]).cast(pl.Datetime("ns", "UTC")), chain, open_interest, bbo, trades, bars, config)
    used = snap.filter(pl.col("gex_bn").is_not_null())
    if used.is_empty():
        raise SpymasterError(f"--time {wall:%H:%M}: no option of the chain has a price and open interest at that time")
    forward = float(used["futures_price"][0])
    per_strike = (
        used.group_by("strike_price")
        .agg(
            call_oi=pl.col("open_interest").filter(pl.col("instrument_class") == "C").sum(),
            put_oi=pl.col("open_interest").filter(pl.col("instrument_class") == "P").sum(),
            implied_vol=pl.col("implied_vol").mean(),
            call_gex_bn=pl.col("gex_bn").filter(pl.col("instrument_class") == "C").sum(),
            put_gex_bn=pl.col("gex_bn").filter(pl.col("instrument_class") == "P").sum(),
        )
        .with_columns(gex_bn=pl.col("call_gex_bn") + pl.col("put_gex_bn"))
        .sort("strike_price")
    )
    strikes = per_strike["strike_price"].to_numpy()
    totals = gex_profile(used, strikes, config)
    crossings = [
        strikes[i] + (strikes[i + 1] - strikes[i]) * totals[i] / (totals[i] - totals[i + 1])
        for i in range(len(strikes) - 1)
        if totals[i] == 0 or np.sign(totals[i]) * np.sign(totals[i + 1]) < 0
    ]
    flip = min(crossings, key=lambda p: abs(p - forward)) if crossings else None
    return {
        "date": str(day),
        "time": at.astimezone(NY).strftime("%H:%M"),
        "futures_price": forward,
        "total_gex_bn": float(used["gex_bn"].sum()),
        "gamma_flip": None if flip is None else float(flip),
        "call_wall": float(per_strike.sort("call_gex_bn", descending=True)["strike_price"][0]),
        "put_wall": float(per_strike.sort("put_gex_bn")["strike_price"][0]),
        "skipped": dict(snap.filter(pl.col("skip_reason").is_not_null()).group_by("skip_reason").len().iter_rows()),
        "strikes": per_strike.to_dicts(),
    }
