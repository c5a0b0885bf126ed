"""Report assets (Dagster wiring only): the per-session chart PNG, shown in the UI and under reports/."""


import polars as pl
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from spymaster_resources import SpymasterResource

from ..gold.evaluation import png_to_markdown
from ..partitions import session_of_partition_key
from ..session_range import session_asset
from .session_chart import chart_path, chart_window_utc, write_session_chart


@session_asset(
    parallel=True,
    group_name="reports",
    # Upstreams by key, not by importing their definitions: load_assets_from_modules would otherwise
    # collect those imported definitions from this module a second time.
    deps=["silver_bars", "silver_levels", "gold_episodes", "gold_signals"],
)
def session_chart(context: AssetExecutionContext, spymaster: SpymasterResource) -> MaterializeResult:
    """The session as a trader sees it: 2-minute candles 04:00-12:30 ET with the six levels and the episodes, and the smoothed P(BREAK) beneath (PNG)."""
    day = session_of_partition_key(context.partition_key)
    cfg, lake = spymaster.config, spymaster.lake
    start, end = chart_window_utc(cfg, day)
    # Only the chart's bars: silver_bars covers the whole Globex session at 1 and 2 minutes.
    bars = (
        lake.scan("silver", "silver_bars", day)
        .filter((pl.col("bar_minutes") == cfg.level_bar_minutes) & pl.col("ts_event").is_between(pl.lit(start), pl.lit(end)))
        .collect()
    )
    levels = lake.read("silver", "silver_levels", day)
    episodes = lake.read("gold", "gold_episodes", day).drop("vector")
    signals = lake.read("gold", "gold_signals", day)
    path = write_session_chart(bars, levels, episodes, signals, cfg, day, chart_path(cfg, day))
    if episodes.height == 0:
        context.log.info(f"session_chart {day}: no episode (no level inside the approach zone); the P(BREAK) panel is empty")
    outcomes = dict(episodes.group_by("outcome").len().iter_rows())
    return MaterializeResult(
        metadata={
            "chart": MetadataValue.md(png_to_markdown(path, f"ES session {day}")),
            "path": MetadataValue.path(str(path)),
            "bars": bars.height,
            "episodes": episodes.height,
            "approaches": signals.select("level_kind", "approach_id").n_unique() if signals.height else 0,
            **{f"outcomes/{k}": int(v) for k, v in sorted(outcomes.items())},
            **cfg.as_metadata(),
        }
    )


#: Assets of this module, for definitions.py.
chart_assets = [session_chart]
