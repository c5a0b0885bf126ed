"""Per-partition asset checks of the lake tables (Dagster wiring plus the rules they apply).

Each check reads the partition just materialized from the lake through the ``spymaster`` resource,
applies one rule, and reports a count and the offending rows (at most ``OFFENDING_ROWS_SHOWN``) as
metadata. Blocking checks (``blocking=True``, ERROR severity) stop the rest of the run when a bad
partition would poison what is computed from it; the others fail with WARN severity.

The rules are plain functions over polars frames (``missing_rth_minutes``, ``paired_level_violations``,
``levels_outside_session_range``, ``outcome_distribution``, ``index_size_mismatches``) so they are
tested without Dagster.
"""

import json
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, PreviewWarning

from spymaster_resources import SpymasterResource

from spymaster_core.config import OUTCOMES, SpymasterConfig
from ..gold.as_of import carried_counts
from ..gold.assets import gold_model, gold_setup_index
from ..gold.model import training_window
from ..gold.schema_indexes import MANIFEST
from ..gold.vectors import parse_families, vector_version
from ..partitions import session_of_partition_key
from ..session_range import session_check
from ..sessions import et_to_utc
from ..silver.assets import silver_bars, silver_levels, silver_outcomes
from ..silver.bars import RTH_CLOSE
from .freshness import exchange_close_utc, freshness_checks

# Partitioned asset checks are "preview" in dagster 1.13 (the feature DESIGN.md relies on); say so once, here.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)

TS_DTYPE = pl.Datetime("ns", "UTC")
#: At most this many offending rows are shown in a check's metadata (the count is always complete).
OFFENDING_ROWS_SHOWN = 20
#: Fewer labelled rows than this say nothing about degeneracy (one quiet morning can be all CHOP).
MIN_ROWS_FOR_DISTRIBUTION = 30
#: Window levels (PM/OR) and SMA_90 are extremes / means of the bars themselves: only float rounding.
EXACT_TOLERANCE_POINTS = 1e-6
#: EMA_20 is checked once this many of the session's 2-minute bars fed it (x ema_period): the warm-up
#: session's weight is then (1 - alpha)^(5 * period) < 5e-5 (alpha = 2 / (period + 1)).
EMA_SETTLED_PERIODS = 5


# ----------------------------------------------------------------------------- calendar


def regular_hours_utc(session_date: date, config: SpymasterConfig) -> tuple[datetime, datetime]:
    """``[rth_open, close)`` of the session's regular hours in UTC: 09:30 ET to 16:00 ET, or the earlier exchange close.

    Raises ValueError when ``session_date`` is not a session (see :func:`.freshness.exchange_close_utc`).
    """
    close = min(et_to_utc(session_date, RTH_CLOSE), exchange_close_utc(session_date))
    return et_to_utc(session_date, config.rth_open), close


# ----------------------------------------------------------------------------- rules (pure)


def missing_rth_minutes(bars: pl.DataFrame, session_date: date, config: SpymasterConfig) -> pl.DataFrame:
    """Regular-hours minutes with no 1-minute bar.

    Input: silver_bars of the session (bar_minutes, ts_event = bar OPEN, Datetime ns UTC).
    Output: one row per missing minute, ``ts_event`` (Datetime ns UTC, the open the missing bar
    would have) and ``time_et`` (Utf8 ``HH:MM`` New York), sorted. Expected minutes are the opens in
    ``[09:30 ET, min(16:00 ET, exchange close))`` (:func:`regular_hours_utc`), so an early-close day
    expects fewer. Raises ValueError when ``session_date`` is not a session.
    """
    start, end = regular_hours_utc(session_date, config)
    step = f"{config.base_bar_minutes}m"
    expected = pl.DataFrame(
        {"ts_event": pl.datetime_range(start, end, step, closed="left", time_unit="ns", time_zone="UTC", eager=True)}
    ).with_columns(pl.col("ts_event").cast(TS_DTYPE))
    present = bars.filter(pl.col("bar_minutes") == config.base_bar_minutes).select(pl.col("ts_event").cast(TS_DTYPE))
    return (
        expected.join(present, on="ts_event", how="anti")
        .sort("ts_event")
        .with_columns(time_et=pl.col("ts_event").dt.convert_time_zone("America/New_York").dt.strftime("%H:%M"))
    )


def paired_level_violations(levels: pl.DataFrame) -> pl.DataFrame:
    """Bar closes at which a low level lies above its high: PM_LOW > PM_HIGH or OR_LOW > OR_HIGH.

    Input: silver_levels (ts_event = bar close, level_kind, level_price in points).
    Output: ts_event, pair ("PM" or "OR"), low_price, high_price (points), one row per violation,
    sorted by ts_event then pair. A bar where one side of a pair is absent has nothing to compare.
    """
    parts = []
    for pair in ("PM", "OR"):
        low = levels.filter(pl.col("level_kind") == f"{pair}_LOW").select("ts_event", low_price=pl.col("level_price"))
        high = levels.filter(pl.col("level_kind") == f"{pair}_HIGH").select("ts_event", high_price=pl.col("level_price"))
        parts.append(
            low.join(high, on="ts_event", how="inner")
            .filter(pl.col("low_price") > pl.col("high_price"))
            .select("ts_event", pl.lit(pair).alias("pair"), "low_price", "high_price")
        )
    return pl.concat(parts).sort("ts_event", "pair")


def levels_outside_session_range(levels: pl.DataFrame, bars: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Level prices outside the range the session has traded up to the instant they are known.

    Input: silver_levels (ts_event = 2-minute bar close T, level_kind, level_price) and silver_bars
    of the same session (1- and 2-minute bars; ts_close = open + bar length).
    Output: ts_event, level_kind, level_price, range_low, range_high (points; min low / max high of
    the session's 1-minute bars with ts_close <= T, null when none), one row per violation.

    Rule: a level is a violation when ``level_price < range_low - tol`` or ``> range_high + tol``,
    or when no bar closed by T (nothing it could have been computed from). PM/OR levels are window
    extremes and SMA_90 a mean of closes, so ``tol`` = EXACT_TOLERANCE_POINTS. The moving averages
    warm up from the previous session, so they are only checked once this session's bars alone feed
    them: SMA_90 from the ``sma_period``-th 2-minute bar of the session, EMA_20 from the
    ``EMA_SETTLED_PERIODS * ema_period``-th (tolerance one tick, ``tick_size_points``, for the
    vanishing warm-up weight).
    """
    one = (
        bars.filter(pl.col("bar_minutes") == config.base_bar_minutes)
        .sort("ts_close")
        .select(pl.col("ts_close").cast(TS_DTYPE), range_low=pl.col("low").cum_min(), range_high=pl.col("high").cum_max())
    )
    two = (
        bars.filter(pl.col("bar_minutes") == config.level_bar_minutes)
        .sort("ts_close")
        .select(pl.col("ts_close").cast(TS_DTYPE), level_bars_closed=pl.int_range(1, pl.len() + 1))
    )
    ema_bars = EMA_SETTLED_PERIODS * config.ema_period
    joined = (
        levels.select(pl.col("ts_event").cast(TS_DTYPE), "level_kind", "level_price")
        .sort("ts_event")
        .join_asof(one.rename({"ts_close": "ts_event"}), on="ts_event", strategy="backward")
        .join_asof(two.rename({"ts_close": "ts_event"}), on="ts_event", strategy="backward")
        .with_columns(pl.col("level_bars_closed").fill_null(0))
    )
    kind = pl.col("level_kind")
    checked = (
        kind.is_in(["PM_HIGH", "PM_LOW", "OR_HIGH", "OR_LOW"])
        | ((kind == "SMA_90") & (pl.col("level_bars_closed") >= config.sma_period))
        | ((kind == "EMA_20") & (pl.col("level_bars_closed") >= ema_bars))
    )
    tol = pl.when(kind == "EMA_20").then(pl.lit(config.tick_size_points)).otherwise(pl.lit(EXACT_TOLERANCE_POINTS))
    outside = (
        pl.col("range_low").is_null()
        | (pl.col("level_price") < pl.col("range_low") - tol)
        | (pl.col("level_price") > pl.col("range_high") + tol)
    )
    return joined.filter(checked & outside).select("ts_event", "level_kind", "level_price", "range_low", "range_high")


def outcome_distribution(outcomes: pl.DataFrame) -> dict[str, int]:
    """Rows per outcome class of a silver_outcomes partition, for every class of OUTCOMES (0 when absent)."""
    counts = dict(outcomes.group_by("outcome").len().iter_rows())
    return {outcome: int(counts.get(outcome, 0)) for outcome in OUTCOMES}


def is_degenerate(counts: dict[str, int], min_rows: int = MIN_ROWS_FOR_DISTRIBUTION) -> bool:
    """True when there are at least ``min_rows`` labels and all of them are one class."""
    total = sum(counts.values())
    return total >= min_rows and max(counts.values()) == total


def read_index_sizes(index_dir: Path) -> tuple[pl.DataFrame, dict]:
    """Vectors per (schema, partition_key) of a saved gold_setup_index directory, from its manifests (no FAISS load).

    Output: (frame with schema (Utf8 families label), partition_key (Utf8), n_vectors (Int64);
    the top-level manifest as a dict). Raises FileNotFoundError when a manifest is missing.
    """
    top = json.loads((index_dir / MANIFEST).read_text())
    rows = []
    for label, entry in top["schemas"].items():
        schema_manifest = json.loads((index_dir / entry["dir"] / MANIFEST).read_text())
        for key, part in schema_manifest["partitions"].items():
            rows.append({"schema": label, "partition_key": key, "n_vectors": int(part["n_vectors"])})
    frame = pl.DataFrame(rows, schema={"schema": pl.Utf8, "partition_key": pl.Utf8, "n_vectors": pl.Int64}, orient="row")
    return frame, top


def expected_index_sizes(episodes: pl.DataFrame, schemas: list[str], layout_version: str) -> pl.DataFrame:
    """Vectors each (schema, partition_key) index should hold, from the earlier episodes.

    Input: gold_episodes rows of every session before the day (partition_key, feature_families,
    vector_version); ``schemas``: the families labels the saved index holds.
    Output: schema, partition_key, expected (Int64). Rule (as
    :meth:`spymaster_assets.gold.schema_indexes.SchemaIndexes.build`): only rows of
    ``layout_version``; the schemas are "bars" plus every families label of those rows (plus
    ``schemas``, so a schema the index holds without cause shows up); schema S holds the rows
    whose families include all of S's.
    """
    return expected_sizes_from_counts(episode_key_counts(episodes), schemas, layout_version)


def episode_key_counts(episodes: pl.DataFrame) -> pl.DataFrame:
    """Episodes per (vector_version, feature_families, partition_key): column ``expected`` (Int64), additive over sessions."""
    return episodes.group_by("vector_version", "feature_families", "partition_key").agg(pl.len().cast(pl.Int64).alias("expected"))


def expected_sizes_from_counts(counts: pl.DataFrame, schemas: list[str], layout_version: str) -> pl.DataFrame:
    """:func:`expected_index_sizes` from the episodes' :func:`episode_key_counts`."""
    by_families = counts.filter(pl.col("vector_version") == layout_version).select("feature_families", "partition_key", "expected")
    parts = []
    for label in sorted({"bars", *schemas, *by_families["feature_families"].to_list()}):
        wanted = parse_families(label)
        member = [f for f in by_families["feature_families"].unique().to_list() if wanted <= parse_families(f)]
        parts.append(
            by_families.filter(pl.col("feature_families").is_in(member))
            .group_by("partition_key")
            .agg(pl.col("expected").sum().cast(pl.Int64))
            .select(pl.lit(label).alias("schema"), "partition_key", "expected")
        )
    return pl.concat(parts)


def index_size_mismatches(actual: pl.DataFrame, expected: pl.DataFrame) -> pl.DataFrame:
    """(schema, partition_key) whose index size differs from the episodes it should hold.

    Input: :func:`read_index_sizes` frame (schema, partition_key, n_vectors) and
    :func:`expected_index_sizes` frame (schema, partition_key, expected). A key on one side only
    counts 0 on the other. Output: schema, partition_key, n_vectors, expected, sorted.
    """
    return (
        actual.join(expected, on=["schema", "partition_key"], how="full", coalesce=True)
        .with_columns(pl.col("n_vectors").fill_null(0), pl.col("expected").fill_null(0))
        .filter(pl.col("n_vectors") != pl.col("expected"))
        .sort("schema", "partition_key")
    )


# ----------------------------------------------------------------------------- Dagster wiring


def _markdown_rows(frame: pl.DataFrame, limit: int = OFFENDING_ROWS_SHOWN) -> MetadataValue:
    """The first ``limit`` rows of ``frame`` as a Markdown table (rendered by the Dagster UI)."""
    if frame.height == 0:
        return MetadataValue.md("none")
    shown = frame.head(limit)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * shown.width]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in shown.iter_rows()]
    if frame.height > limit:
        lines.append(f"\n... {frame.height - limit} more")
    return MetadataValue.md("\n".join(lines))


def _missing_partition(lake, day: date, *tables: str) -> AssetCheckResult | None:
    """A failed result naming the first silver table of ``tables`` with no partition ``day``, else None (all present)."""
    for table in tables:
        if not lake.exists("silver", table, day):
            path = lake.partition_path("silver", table, day)
            return AssetCheckResult(passed=False, description=f"{table} has no partition {day} ({path} missing)", metadata={"path": str(path)})
    return None


@session_check(
    asset=silver_bars,
    description=(
        "No missing minute among the regular-hours 1-minute bars (09:30 ET to 16:00 ET, or the exchange "
        "calendar's earlier close). WARN: a thin market can skip a minute; the missing minutes are listed."
    ),
)
def silver_bars_rth_no_gaps(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
    """Regular-hours 1-minute bars have no gap."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    if missing := _missing_partition(lake, day, "silver_bars"):
        return missing
    bars = lake.scan("silver", "silver_bars", day).select("bar_minutes", "ts_event").collect()
    missing = missing_rth_minutes(bars, day, cfg)
    start, end = regular_hours_utc(day, cfg)
    expected = int((end - start) / timedelta(minutes=cfg.base_bar_minutes))
    return AssetCheckResult(
        passed=missing.height == 0,
        severity=AssetCheckSeverity.WARN,
        description=f"{missing.height} of {expected} regular-hours minutes have no bar",
        metadata={
            "missing_minutes": missing.height,
            "expected_minutes": expected,
            "rth_close_utc": end.isoformat(),
            "missing": _markdown_rows(missing),
        },
    )


@session_check(
    asset=silver_levels,
    blocking=True,
    description="PM_LOW <= PM_HIGH and OR_LOW <= OR_HIGH at every bar close (blocking: swapped levels poison every feature and label).",
)
def silver_levels_pairs_ordered(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
    """Low levels never lie above their high."""
    day = session_of_partition_key(context.partition_key)
    lake = spymaster.lake
    if missing := _missing_partition(lake, day, "silver_levels"):
        return missing
    levels = lake.read("silver", "silver_levels", day)
    bad = paired_level_violations(levels)
    return AssetCheckResult(
        passed=bad.height == 0,
        description=f"{bad.height} bar closes with a low level above its high",
        metadata={"violations": bad.height, "level_rows": levels.height, "offending_rows": _markdown_rows(bad)},
    )


@session_check(
    asset=silver_levels,
    blocking=True,
    additional_deps=[silver_bars],
    description=(
        "Every level lies inside the session's range [min low, max high] of the bars closed by the time it is known "
        "(moving averages once this session's bars alone feed them). Blocking: a level outside is a bug or bad data."
    ),
)
def silver_levels_inside_session_range(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
    """Levels lie inside the range traded so far."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    if missing := _missing_partition(lake, day, "silver_levels", "silver_bars"):
        return missing
    levels = lake.read("silver", "silver_levels", day)
    bars = lake.scan("silver", "silver_bars", day).select("bar_minutes", "ts_close", "high", "low").collect()
    bad = levels_outside_session_range(levels, bars, cfg)
    return AssetCheckResult(
        passed=bad.height == 0,
        description=f"{bad.height} of {levels.height} level rows outside the session's range so far",
        metadata={"violations": bad.height, "level_rows": levels.height, "offending_rows": _markdown_rows(bad)},
    )


@session_check(
    asset=silver_outcomes,
    description=f"The outcome labels are not all one class when there are at least {MIN_ROWS_FOR_DISTRIBUTION} of them (WARN: a labelling bug or a threshold far off the day's volatility).",
)
def silver_outcomes_not_degenerate(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
    """Label distribution is not degenerate."""
    day = session_of_partition_key(context.partition_key)
    lake = spymaster.lake
    if missing := _missing_partition(lake, day, "silver_outcomes"):
        return missing
    counts = outcome_distribution(lake.scan("silver", "silver_outcomes", day).select("outcome").collect())
    degenerate = is_degenerate(counts)
    total = sum(counts.values())
    return AssetCheckResult(
        passed=not degenerate,
        severity=AssetCheckSeverity.WARN,
        description=(f"all {total} labels are {max(counts, key=counts.get)}" if degenerate else f"{total} labels: " + ", ".join(f"{k} {v}" for k, v in counts.items())),
        metadata={"rows": total, "min_rows": MIN_ROWS_FOR_DISTRIBUTION, **{f"outcomes/{k}": v for k, v in counts.items()}},
    )


def _pruned_by_retention(lake, day: date, config: SpymasterConfig) -> bool:
    """True when at least ``index_retention_sessions`` later indexes are saved (so ``day``'s was pruned, and is rebuilt on demand)."""
    later = [d for d in lake.dates("gold", "gold_setup_index", marker=MANIFEST) if d > day]
    return len(later) >= config.index_retention_sessions


@session_check(
    asset=gold_setup_index,
    blocking=True,
    additional_deps=["gold_episodes"],
    description=(
        "The index as of the day holds exactly the episodes of every earlier session (same vector layout), per vector "
        "schema and index partition, and no session on or after the day. Blocking: signals from a short or leaky index are wrong."
    ),
)
def gold_setup_index_holds_every_episode(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
    """Index size equals the earlier episodes it should hold."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    directory = lake.partition_dir("gold", "gold_setup_index", day)
    if not (directory / MANIFEST).is_file():
        if _pruned_by_retention(lake, day, cfg):
            return AssetCheckResult(passed=True, description=f"index of {day} pruned by retention (rebuilt on demand from the lake)", metadata={"pruned": True})
        return AssetCheckResult(passed=False, description=f"no saved index for {day} ({directory / MANIFEST} missing)", metadata={"path": str(directory)})
    actual, manifest = read_index_sizes(directory)
    layout = vector_version(cfg)
    dates = lake.dates_before("gold", "gold_episodes", day)
    columns = {"partition_key": pl.Utf8, "feature_families": pl.Utf8, "vector_version": pl.Utf8}
    # Counted once per walk and carried session to session: the check's cost does not grow with history.
    counts = carried_counts(lake, day, "index_sizes", columns, episode_key_counts, ["vector_version", "feature_families", "partition_key"])
    expected = expected_sizes_from_counts(counts, list(manifest["schemas"]), layout)
    mismatches = index_size_mismatches(actual, expected)
    leaked = [s for s in manifest.get("source_session_dates", []) if s >= day.isoformat()]
    layout_ok = manifest.get("layout_version") == layout
    bars_actual = int(actual.filter(pl.col("schema") == "bars")["n_vectors"].sum())
    bars_expected = int(expected.filter(pl.col("schema") == "bars")["expected"].sum())
    problems = []
    if mismatches.height:
        problems.append(f"{mismatches.height} (schema, partition) sizes differ")
    if leaked:
        problems.append(f"sessions on or after {day}: {', '.join(leaked)}")
    if not layout_ok:
        problems.append(f"layout {manifest.get('layout_version')} is not the configuration's {layout}")
    return AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or f"bars index holds {bars_actual} vectors = the {bars_expected} episodes before {day}",
        metadata={
            "bars_index_vectors": bars_actual,
            "bars_expected_episodes": bars_expected,
            "earlier_sessions": len(dates),
            "schemas": ", ".join(manifest["schemas"]),
            "mismatched_partitions": mismatches.height,
            "sessions_not_before_day": len(leaked),
            "layout_version": str(manifest.get("layout_version")),
            "offending_rows": _markdown_rows(mismatches),
        },
    )


@session_check(
    asset=gold_model,
    blocking=True,
    additional_deps=["gold_episodes"],
    description=(
        "The model as of the day was trained on exactly its cadence's window of earlier sessions (model.training_window), "
        "none on or after the day. Blocking: a model that saw the day would leak its outcomes into its signals."
    ),
)
def gold_model_trained_before_the_day(context: AssetCheckExecutionContext, spymaster: SpymasterResource) -> AssetCheckResult:
    """Training window = the cadence's window of the lake's earlier sessions, all before the day."""
    day = session_of_partition_key(context.partition_key)
    (cfg, _), lake = spymaster.config_for_day(day), spymaster.lake
    expected = training_window(lake.dates_before("gold", "gold_episodes", day), cfg)
    directory = lake.partition_dir("gold", "gold_model", day)
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        return AssetCheckResult(passed=False, description=f"{directory / 'meta.json'} unreadable: {exc}")
    trained = sorted(date.fromisoformat(d) for d in (meta.get("training_sessions") or []))
    leaked = [d.isoformat() for d in trained if d >= day]
    problems = []
    if leaked:
        problems.append(f"trained on sessions on or after {day}: {', '.join(leaked)}")
    if trained != expected:
        problems.append(f"trained on {len(trained)} sessions, the cadence gives {len(expected)}")
    return AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or (f"trained on the {len(trained)} sessions {trained[0]} .. {trained[-1]}" if trained else "no model yet (too few earlier sessions)"),
        metadata={"training_sessions": len(trained), "expected_sessions": len(expected), "sessions_not_before_day": len(leaked)},
    )


#: Every asset check to register in the Definitions (the per-partition checks and the freshness check).
partition_checks = [
    silver_bars_rth_no_gaps,
    silver_levels_pairs_ordered,
    silver_levels_inside_session_range,
    silver_outcomes_not_degenerate,
    gold_setup_index_holds_every_episode,
    gold_model_trained_before_the_day,
]
asset_checks = [*partition_checks, *freshness_checks]
