"""Gold assets (Dagster wiring only): episodes, normalization, setup index, signals and their evaluation."""


from datetime import date

import polars as pl
from dagster import AssetDep, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from spymaster_resources import SpymasterResource

from ..partitions import PREVIOUS_SESSION, session_of_partition_key, trading_day_partitions, trailing_sessions
from ..silver.assets import silver_level_state, silver_outcomes
from ..table_metadata import column_schema, same_columns, table_metadata
from . import as_of
from .episodes import select_episodes
from .evaluation import evaluate, evaluate_by, png_to_markdown, reliability_diagram_png
from .normalization import stats_to_frame
from .schemas import GoldNormalization, column_descriptions, validate_episodes, validate_signals
from .signals import answer
from .vectors import vector_columns

TIER = "gold"
PROBS = ["p_break", "p_reject", "p_chop"]
BASES = ["base_break", "base_reject", "base_chop"]


@asset(partitions_def=trading_day_partitions, group_name="gold", deps=[silver_level_state, silver_outcomes])
def gold_episodes(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Setups: anchors inside the approach zone (|d| <= 2 ATR) with their vector, index partition key and outcome, one row per (anchor, level kind)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    episodes = validate_episodes(
        select_episodes(lake.read("silver", "silver_level_state", day), lake.read("silver", "silver_outcomes", day), cfg), cfg
    )
    path = lake.write(TIER, "gold_episodes", day, episodes)
    counts = dict(episodes.group_by("outcome").len().iter_rows())
    return MaterializeResult(
        metadata=table_metadata(
            episodes,
            path,
            cfg,
            column_descriptions["gold_episodes"],
            {
                "silver_level_state": same_columns(["ts_event", "level_kind", "direction", "time_bucket", "distance_atr", "feature_families"]) | {"vector": vector_columns(cfg)},
                "silver_outcomes": same_columns(["outcome", "ambiguous", "horizon_complete"]),
            },
            vector_dims=len(vector_columns(cfg)),
            feature_families=", ".join(sorted(episodes["feature_families"].unique().to_list())) or "none",
            **{f"outcomes/{k}": int(v) for k, v in counts.items()},
        )
    )


@asset(
    partitions_def=trading_day_partitions,
    group_name="gold",
    deps=[AssetDep(gold_episodes, partition_mapping=trailing_sessions(60))],
)
def gold_normalization(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Robust per-dimension median and IQR of setup vectors over the 60 sessions before the day, one row per vector dimension."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    stats = as_of.fit_as_of(lake, day, cfg)
    frame = GoldNormalization.validate(stats_to_frame(stats))
    path = lake.write(TIER, "gold_normalization", day, frame)
    if stats.n_sessions == 0:
        context.log.warning(f"gold_normalization {day}: no earlier session in the lake; identity statistics (median 0, scale 1)")
    return MaterializeResult(
        metadata=table_metadata(
            frame,
            path,
            cfg,
            column_descriptions["gold_normalization"],
            {"gold_episodes": {"median": ["vector"], "iqr": ["vector"]}},
            history_sessions=stats.n_sessions,
            history_episodes=stats.n_episodes,
            first_session=str(stats.first_session),
            last_session=str(stats.last_session),
        )
    )


@asset(
    partitions_def=trading_day_partitions,
    group_name="gold",
    deps=[gold_normalization, AssetDep(gold_episodes, partition_mapping=PREVIOUS_SESSION)],
)
def gold_setup_index(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """FAISS indexes as of the day: every earlier episode normalized with the day's statistics, one index per (level kind, direction, time bucket)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    indexes = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), cfg)
    directory = indexes.save(as_of.index_dir(lake, day))
    pruned = as_of.prune_old_indexes(lake, day, cfg)
    table = indexes.summary()
    sessions = indexes.sessions
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(directory)),
            "dagster/row_count": int(table.filter(pl.col("schema") == "bars")["n_vectors"].sum()),
            "partitions": MetadataValue.md(table.to_pandas().to_markdown(index=False) if table.height else "empty"),
            "dagster/column_schema": column_schema(table),
            "vector_schemas": ", ".join(f"{label} ({indexes.indexes[label].dim} dims, {len(indexes.indexes[label].sessions)} sessions)" for label in indexes.schemas),
            "index_partitions": table.height,
            "source_sessions": len(sessions),
            "first_session": str(sessions[0]) if sessions else "none",
            "last_session": str(sessions[-1]) if sessions else "none",
            "vector_layout_version": indexes.layout_version,
            "pruned_indexes": ", ".join(map(str, pruned)) or "none",
            **cfg.as_metadata(),
        }
    )


@asset(partitions_def=trading_day_partitions, group_name="gold", deps=[gold_setup_index, gold_episodes])
def gold_signals(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """What the trader would have seen that day: P(BREAK/REJECT/CHOP) from the index as of the day, one row per episode."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    indexes = as_of.index_as_of(lake, day, cfg)
    signals, neighbours = answer(indexes, as_of.stats_as_of(lake, day), lake.read(TIER, "gold_episodes", day), cfg)
    signals = validate_signals(signals, cfg)
    path = lake.write(TIER, "gold_signals", day, signals)
    lake.write(TIER, "gold_signal_neighbours", day, neighbours)
    return MaterializeResult(
        metadata=table_metadata(
            signals,
            path,
            cfg,
            column_descriptions["gold_signals"],
            {"gold_episodes": same_columns(["ts_event", "level_kind", "direction", "time_bucket", "partition_key"]), "gold_setup_index": {c: ["outcome", "vector"] for c in PROBS}},
            history_sessions=len(indexes.sessions),
            vector_schemas_used=", ".join(sorted(signals["vector_version"].unique().to_list())) or "none",
            mean_effective_sample_size=float(signals["effective_sample_size"].mean() or 0.0),
            neighbours_path=str(lake.partition_path(TIER, "gold_signal_neighbours", day)),
        )
    )


def _scored(lake, day: date, min_history: int) -> pl.DataFrame | None:
    """Signals of every session up to ``day`` with at least ``min_history`` earlier sessions, joined with what happened."""
    episode_dates = lake.dates("gold", "gold_episodes")
    eligible = [d for d in lake.dates("gold", "gold_signals") if d <= day and sum(e < d for e in episode_dates) >= min_history]
    if not eligible:
        return None
    signals = lake.read_many("gold", "gold_signals", eligible)
    outcomes = lake.read_many("gold", "gold_episodes", eligible).select("session_date", "ts_event", "level_kind", "outcome")
    return signals.join(outcomes, on=["session_date", "ts_event", "level_kind"], how="inner")


def evaluation_frame(scored: pl.DataFrame, day: date, bins: int) -> pl.DataFrame:
    """Scores per scope ('session' = the day only, 'cumulative' = every eligible session up to it), overall and by level kind x direction."""
    rows = []
    for scope, frame in (("cumulative", scored), ("session", scored.filter(pl.col("session_date") == day))):
        if frame.height == 0:
            continue
        rows.append(pl.DataFrame([{"scope": scope, "level_kind": "ALL", "direction": "ALL", **evaluate(frame, bins)}]))
        rows.append(evaluate_by(frame, ("level_kind", "direction"), bins).with_columns(scope=pl.lit(scope)))
    return pl.concat(rows, how="diagonal_relaxed").with_columns(as_of=pl.lit(day))


@asset(partitions_def=trading_day_partitions, group_name="gold", deps=[gold_signals])
def gold_evaluation(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Walk-forward scores of the signals against what happened (Brier, skill vs base rate, log loss, ECE), for the day and cumulatively."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    scored = _scored(lake, day, cfg.min_history_sessions)
    if scored is None or scored.height == 0:
        context.log.info(f"gold_evaluation {day}: no session with {cfg.min_history_sessions}+ earlier sessions yet; nothing to score")
        frame = pl.DataFrame(schema={"scope": pl.Utf8, "level_kind": pl.Utf8, "direction": pl.Utf8, "n_episodes": pl.Int64, "as_of": pl.Date})
        path = lake.write(TIER, "gold_evaluation", day, frame)
        return MaterializeResult(metadata=table_metadata(frame, path, cfg, scored_episodes=0))
    frame = evaluation_frame(scored, day, cfg.calibration_bins)
    path = lake.write(TIER, "gold_evaluation", day, frame)
    probs = scored.select(PROBS).to_numpy()
    png = reliability_diagram_png(probs, scored["outcome"].to_numpy(), cfg.reports_dir / f"reliability_{day}.png", f"Walk-forward reliability up to {day}", cfg.calibration_bins)
    overall = frame.filter((pl.col("scope") == "cumulative") & (pl.col("level_kind") == "ALL")).row(0, named=True)
    return MaterializeResult(
        metadata={
            **table_metadata(frame, path, cfg, column_descriptions.get("gold_evaluation")),
            "reliability_diagram": MetadataValue.md(png_to_markdown(png)),
            "reliability_png": MetadataValue.path(str(png)),
            **{f"cumulative/{k}": (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)) for k, v in overall.items() if k not in ("scope", "level_kind", "direction", "as_of")},
        }
    )
