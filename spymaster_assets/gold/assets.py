"""Gold assets (Dagster wiring only): episodes, normalization, model, setup index, signals and their evaluation."""


from datetime import date

import polars as pl
from dagster import AssetDep, AssetExecutionContext, MaterializeResult, MetadataValue

from spymaster_resources import SpymasterResource

from ..partitions import PREVIOUS_SESSION, session_of_partition_key, trailing_sessions
from ..session_range import is_last_of_run, session_asset
from ..silver.assets import silver_level_state, silver_outcomes
from ..table_metadata import column_schema, same_columns, table_metadata
from . import as_of
from .answer import MODEL_PREFIXES, probability_columns
from .episodes import select_episodes
from .history import history_fingerprint, record_history
from .evaluation import png_to_markdown, reliability_diagram_png_of_table, reliability_table_from_sums
from .evaluation_sums import COMPLETE, FIRST_ANCHOR, WITHOUT_XGBOOST, CumulativeSums, scores_from_sums
from .report import EVALUATION_SUMS, cumulative_as_of, save_checkpoint, store_sums_of_day
from .model import OutcomeModel
from .normalization import stats_to_frame
from .schemas import GoldNormalization, column_descriptions, validate_episodes, validate_signals
from .signals import answer
from .vectors import vector_columns

TIER = "gold"


@session_asset(parallel=True, group_name="gold", deps=[silver_level_state, silver_outcomes])
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


@session_asset(
    parallel=False,
    group_name="gold",
    deps=[AssetDep(gold_episodes, partition_mapping=trailing_sessions(60))],
)
def gold_normalization(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Robust per-dimension median and IQR of setup vectors over the 60 sessions before the day (refitted every
    normalization_refit_sessions sessions once 60 are there: ``normalization.normalization_window``), one row per vector dimension."""
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
            refit_cadence=f"every session until {cfg.normalization_sessions} sessions of history, then every {cfg.normalization_refit_sessions} (normalization_refit_sessions)",
            statistics_digest=stats.digest()[:16],
        )
    )


def _pretrain_models(context, keys: list[str], spymaster: SpymasterResource, pool) -> None:
    """gold_model's range preparation: the range's retrains side by side in the pool (``as_of.pretrain_models``)."""
    days = [session_of_partition_key(k) for k in keys]
    trained = as_of.pretrain_models(spymaster.lake, str(spymaster.config.home), days, lambda d: spymaster.config_for_day(d)[0], pool, spymaster.product)
    context.log.info(f"gold_model: {trained} model(s) of the range trained ahead in the process pool")


@session_asset(
    parallel=False,
    prepare=_pretrain_models,
    group_name="gold",
    deps=[AssetDep(gold_episodes, partition_mapping=PREVIOUS_SESSION)],
)
def gold_model(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """XGBoost multiclass model of the outcome as of the day, trained on earlier sessions (retrained every model_retrain_sessions sessions), in XGBoost's JSON format."""
    day = session_of_partition_key(context.partition_key)
    (cfg, tuned), lake = spymaster.config_for_day(day), spymaster.lake
    model, how = as_of.fit_model_as_of(lake, day, cfg)
    directory = as_of.model_dir(lake, day)
    if model is None:
        as_of.save_no_model(lake, day, how)
        context.log.info(f"gold_model {day}: no model ({how}); the answer is the kNN posterior (answer_source 'knn')")
        return MaterializeResult(metadata={"path": MetadataValue.path(str(directory)), "model": "none", "reason": how, **cfg.as_metadata()})
    model.save(directory)
    return MaterializeResult(metadata={**model_metadata(model, directory, how, cfg), "tuned_params": tuned_label(tuned)})


def tuned_label(tuned) -> str:
    """Which tuned parameter file served the day, for the metadata ("defaults" when none)."""
    return "defaults" if tuned is None else f"{tuned.path} (v{tuned.version}, tuned through {tuned.tuned_through})"


def model_metadata(model: OutcomeModel, directory, how: str, cfg) -> dict:
    """UI metadata of a saved model: training window, parameters, and the feature importance table (gain share)."""
    gain = pl.DataFrame({"feature": list(model.gain), "total_gain": list(model.gain.values())}, schema={"feature": pl.Utf8, "total_gain": pl.Float64})
    gain = gain.with_columns(gain_share=pl.col("total_gain") / pl.col("total_gain").sum()).sort("total_gain", descending=True)
    top = gain.head(20).with_columns(pl.col("total_gain", "gain_share").round(4))
    return {
        "path": MetadataValue.path(str(directory)),
        "model": how,
        "training_first_session": str(model.training_sessions[0]),
        "training_last_session": str(model.trained_through),
        "training_sessions": len(model.training_sessions),
        "training_episodes": model.n_episodes,
        "features": len(model.features),
        "features_used": gain.height,
        "params": MetadataValue.json(model.params),
        "feature_importance": MetadataValue.md(top.to_pandas().to_markdown(index=False) if top.height else "no split"),
        **cfg.as_metadata(),
    }


@session_asset(
    parallel=False,
    group_name="gold",
    deps=[gold_normalization, gold_model, AssetDep(gold_episodes, partition_mapping=PREVIOUS_SESSION)],
)
def gold_setup_index(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """FAISS indexes as of the day: every earlier episode normalized with the day's statistics, one index per (level kind, direction, time bucket).

    The partition keeps the manifests (sessions, vectors per schema and index partition, outcome
    counts, statistics digest, weights); the vectors are the gold_episodes partitions, so a session
    writes a few kilobytes whatever the history. The index itself lives in the process that walks
    the range, extended by one session at a time between refits (``as_of.build_index_as_of``).
    """
    day = session_of_partition_key(context.partition_key)
    (cfg, tuned), lake = spymaster.config_for_day(day), spymaster.lake
    with as_of.sole_user_of_indexes():
        indexes = as_of.build_index_as_of(lake, day, as_of.stats_as_of(lake, day), cfg)
    directory = indexes.save(as_of.index_dir(lake, day), vectors=False)
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
            "similarity_weights": indexes.weights_source,
            "index_build": indexes.origin,
            "tuned_params": tuned_label(tuned),
            **cfg.as_metadata(),
        }
    )


@session_asset(
    parallel=False,
    group_name="gold",
    deps=[gold_setup_index, gold_model, gold_episodes, AssetDep("gold_signals", partition_mapping=PREVIOUS_SESSION)],
)
def gold_signals(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """What the trader would have seen that day: the calibrated blend of XGBoost and kNN with every component (kNN, model, distance lookup, base rate), one row per episode."""
    day = session_of_partition_key(context.partition_key)
    (cfg, tuned), lake = spymaster.config_for_day(day), spymaster.lake
    history = history_fingerprint(lake, day)  # before reading it: what these answers rest on
    with as_of.sole_user_of_indexes():
        known = as_of.known_before_from_lake(lake, day, cfg)
    signals, neighbours = answer(known, lake.read(TIER, "gold_episodes", day), cfg)
    signals = validate_signals(signals, cfg)
    path = lake.write(TIER, "gold_signals", day, signals)
    lake.write(TIER, "gold_signal_neighbours", day, neighbours)
    record_history(lake, day, history)
    fit = known.blend_fit
    return MaterializeResult(
        metadata=table_metadata(
            signals,
            path,
            cfg,
            column_descriptions["gold_signals"],
            {
                "gold_episodes": same_columns(["ts_event", "level_kind", "direction", "time_bucket", "partition_key"]),
                "gold_setup_index": {c: ["outcome", "vector"] for c in probability_columns("p_knn_")},
                "gold_model": {c: ["vector"] for c in probability_columns("p_xgb_")},
            },
            history_sessions=len(known.indexes.sessions),
            history_partitions=len(history),
            tuned_params=tuned_label(tuned),
            answer_sources=", ".join(f"{k} {v}" for k, v in sorted(signals.group_by("answer_source").len().iter_rows())) or "none",
            model_trained_through=str(known.model.trained_through) if known.model else "no model",
            blend_weight=fit.weight,
            temperature=fit.temperature,
            calibration=f"{cfg.calibration}, class bias {tuple(round(b, 4) for b in fit.bias)}",
            blend_fitted_on=f"{fit.n_episodes} episodes of {fit.n_sessions} earlier sessions" if fit.fitted else "defaults (too few earlier sessions with a model)",
            vector_schemas_used=", ".join(sorted(signals["vector_version"].unique().to_list())) or "none",
            mean_effective_sample_size=float(signals["effective_sample_size"].mean() or 0.0),
            neighbours_path=str(lake.partition_path(TIER, "gold_signal_neighbours", day)),
        )
    )


def evaluation_frame(carry: CumulativeSums, today: pl.DataFrame, day: date, cfg) -> pl.DataFrame:
    """Scores of every model beside the two baselines, one row per (scope, model, level kind, direction).

    ``carry``: the sums of every eligible session up to ``day`` added up (``report.cumulative_as_of``);
    ``today``: the day's own sums. Scopes: 'cumulative' (those sessions, on the episodes every model
    answered), 'cumulative_all' (the same sessions, every episode, without the XGBoost column, which
    is absent before the first model), 'cumulative_approach' (the first anchor of each approach of
    the 'cumulative' episodes: each approach scored once) and 'session' (the day only). Level kind and direction are
    'ALL' or one group. Columns as :func:`evaluation.compare_models`, plus scope, level_kind,
    direction and as_of (EVALUATION_SCHEMA).
    """
    models_all = list(MODEL_PREFIXES)
    without_model = [k for k in models_all if k != "xgboost"]
    level = cfg.interval_level
    tables = [
        ("cumulative", carry.scores(COMPLETE, models_all, level=level)),
        ("cumulative_all", carry.scores(WITHOUT_XGBOOST, without_model, level=level)),
        ("cumulative_approach", carry.scores(FIRST_ANCHOR, models_all, level=level)),
        ("session", scores_from_sums(today, COMPLETE, models_all, level=level, replicates=cfg.bootstrap_replicates, seed=cfg.bootstrap_seed) if today.height else pl.DataFrame()),
    ]
    rows = [table.with_columns(scope=pl.lit(scope)) for scope, table in tables if table.height]
    if not rows:
        return pl.DataFrame(schema=EVALUATION_SCHEMA)
    frame = pl.concat(rows, how="diagonal_relaxed").with_columns(as_of=pl.lit(day))
    return frame.select([pl.col(n).cast(t) for n, t in EVALUATION_SCHEMA.items()])


EVALUATION_SCHEMA: dict[str, pl.DataType] = {
    "scope": pl.Utf8(),
    "model": pl.Utf8(),
    "level_kind": pl.Utf8(),
    "direction": pl.Utf8(),
    "n_episodes": pl.Int64(),
    "n_sessions": pl.Int64(),
    "brier": pl.Float64(),
    "best_baseline": pl.Utf8(),
    "bss_base": pl.Float64(),
    "bss_base_lo": pl.Float64(),
    "bss_base_hi": pl.Float64(),
    "bss_distance": pl.Float64(),
    "bss_distance_lo": pl.Float64(),
    "bss_distance_hi": pl.Float64(),
    "bss_best": pl.Float64(),
    "bss_best_lo": pl.Float64(),
    "bss_best_hi": pl.Float64(),
    "log_loss": pl.Float64(),
    "ece": pl.Float64(),
    "top_label_ece": pl.Float64(),
    "accuracy": pl.Float64(),
    "as_of": pl.Date(),
}


def _store_evaluation_sums(context, keys: list[str], spymaster: SpymasterResource, pool) -> None:
    """gold_evaluation's range preparation: every session's sums side by side in the pool; the date-order
    walk then only adds each day's to the carried total (``report.cumulative_as_of``).
    A session whose sums fail here is left to its body, which computes them again and reports the error."""
    futures = [pool.submit(store_sums_of_day, str(spymaster.config.home), key, spymaster.product) for key in keys]
    for future in futures:
        try:
            future.result()
        except Exception:  # noqa: BLE001  (reported by the session's own body)
            continue


@session_asset(parallel=False, prepare=_store_evaluation_sums, group_name="gold", deps=[gold_signals])
def gold_evaluation(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """Walk-forward scores of every model (the four references, kNN, XGBoost, the blend at T = 1, the answer) on the same episodes, per anchor and per approach, with session-bootstrap intervals, for the day and cumulatively.

    The reliability diagrams (PNG under reports/, for the answer, the kNN, XGBoost and the best
    baseline, over the scored episodes every model answered, from the carried bin sums) are drawn
    for the day in a run of one session, and for the last session only in a range run.
    """
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    carry, today = cumulative_as_of(lake, day, cfg)
    lake.write(TIER, EVALUATION_SUMS, day, today)
    frame = evaluation_frame(carry, today, day, cfg) if carry.sessions else pl.DataFrame(schema=EVALUATION_SCHEMA)
    path = lake.write(TIER, "gold_evaluation", day, frame)
    save_checkpoint(lake, day, carry)
    if frame.height == 0:
        context.log.info(f"gold_evaluation {day}: no session with {cfg.min_history_sessions}+ earlier sessions yet; nothing to score")
        return MaterializeResult(metadata=table_metadata(frame, path, cfg, scored_episodes=0))
    diagrams = {}
    overall = frame.filter((pl.col("scope") == "cumulative") & (pl.col("level_kind") == "ALL"))
    # A PNG costs about 0.4 s: a range run draws them for its last session only (reports/, not the
    # lake), from the carried bin sums (the episodes every model answered), and only for the answer,
    # its two components and the best baseline (the daily job pays for them).
    best = overall["best_baseline"][0] if overall.height else None
    drawn = list(dict.fromkeys(name for name in ("answer", "knn", "xgboost", best) if name is not None))
    for name in drawn if is_last_of_run(context) else ():
        totals = carry.totals.get((COMPLETE, "ALL", "ALL", name))
        if totals is not None and totals["n_episodes"]:
            table = reliability_table_from_sums(totals["class_bin_n"], totals["class_bin_p"], totals["class_bin_y"], cfg.calibration_bins)
            diagrams[name] = reliability_diagram_png_of_table(
                table,
                cfg.reports_dir / f"reliability_{day}_{name}.png" if name != "answer" else cfg.reports_dir / f"reliability_{day}.png",
                f"{name}: walk-forward reliability up to {day}", cfg.calibration_bins,
            )
    summary = overall.select("model", "n_episodes", "brier", "bss_base", "bss_base_lo", "bss_base_hi", "bss_distance", "bss_distance_lo", "bss_distance_hi", "best_baseline", "bss_best", "bss_best_lo", "bss_best_hi", "log_loss", "top_label_ece")
    answer_row = {r["model"]: r for r in overall.iter_rows(named=True)}.get("answer")
    return MaterializeResult(
        metadata={
            **table_metadata(frame, path, cfg, column_descriptions.get("gold_evaluation")),
            "comparison": MetadataValue.md(summary.with_columns(pl.col(pl.Float64).round(4)).to_pandas().to_markdown(index=False)),
            "reliability_diagram": MetadataValue.md("\n\n".join(png_to_markdown(p, name) for name, p in diagrams.items())),
            **{f"reliability_png/{name}": MetadataValue.path(str(p)) for name, p in diagrams.items()},
            **({f"answer/{k}": float(answer_row[k]) for k in ("bss_base", "bss_base_lo", "bss_base_hi", "bss_distance", "bss_distance_lo", "bss_distance_hi", "bss_best", "bss_best_lo", "bss_best_hi", "top_label_ece")} if answer_row else {}),
        }
    )
