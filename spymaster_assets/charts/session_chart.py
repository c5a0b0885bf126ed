"""Per-session chart: 2-minute candles 04:00-12:30 ET with the six levels, the episodes, and P(BREAK).

The top panel shows the session as a trader sees it: 2-minute candles from the pre-market start to
the end of the anchor window (New York time on the x axis), each level as a step line over the time
it was known (silver_levels: a level's value at a bar close holds until the next bar close), and
every episode (gold_episodes) as a small marker on the level it approached at the anchor close,
coloured by the outcome that followed and pointing in the approach direction. The bottom panel
(shared x axis) shows gold_signals' smoothed P(BREAK) of each level being approached, bar by bar,
one line per approach in the level's colour.

Pure plotting: polars frames in, a ``matplotlib.figure.Figure`` (Agg canvas, pyplot untouched) or a
PNG file out. Nothing here imports Dagster.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from spymaster_core.config import LEVEL_KINDS, OUTCOMES, SpymasterConfig
from ..gold.evaluation import write_png_atomically
from ..sessions import NY, et_to_utc

#: Line style of each level kind (issue 5: pre-market grey dotted, opening range red/green,
#: SMA_90 yellow, EMA_20 purple). The yellow is darkened so it reads on a white background.
LEVEL_STYLES: dict[str, dict[str, str]] = {
    "PM_HIGH": {"color": "grey", "linestyle": ":"},
    "PM_LOW": {"color": "grey", "linestyle": ":"},
    "OR_HIGH": {"color": "red", "linestyle": "-"},
    "OR_LOW": {"color": "green", "linestyle": "-"},
    "SMA_90": {"color": "#e6c200", "linestyle": "-"},
    "EMA_20": {"color": "purple", "linestyle": "-"},
}
#: Marker of each level kind in the P(BREAK) panel: the two grey pre-market levels stay distinguishable.
LEVEL_MARKERS: dict[str, str] = {"PM_HIGH": "^", "PM_LOW": "v", "OR_HIGH": "^", "OR_LOW": "v", "SMA_90": "o", "EMA_20": "s"}
#: Episode marker colour by outcome (none of them is a level colour).
OUTCOME_COLOURS: dict[str, str] = {"BREAK": "tab:blue", "REJECT": "darkorange", "CHOP": "black"}
#: Episode marker by approach direction: UP approaches from below (triangle up), DOWN from above.
DIRECTION_MARKERS: dict[str, str] = {"UP": "^", "DOWN": "v"}
#: Pixel size of the PNG: FIGURE_SIZE_INCHES x FIGURE_DPI (constrained layout keeps it fixed).
FIGURE_SIZE_INCHES: tuple[float, float] = (14.0, 8.0)
FIGURE_DPI: int = 100

#: gid of the dashed vertical lines at the RTH open and the end of the opening range (not data lines).
SESSION_CLOCK_GID = "session_clock"

_NS_PER_DAY = 86_400e9
_CANDLE_WIDTH_FRACTION = 0.7  # of the bar length, so neighbouring candles do not touch


def chart_window_utc(config: SpymasterConfig, day: date) -> tuple[datetime, datetime]:
    """``[start, end]`` of the chart as aware UTC datetimes: ``premarket_start`` to ``anchor_end`` New York time on ``day``.

    With the default configuration 04:00-12:30 ET; DST is handled by the time zone database.
    """
    return et_to_utc(day, config.premarket_start), et_to_utc(day, config.anchor_end)


def chart_path(config: SpymasterConfig, day: date) -> Path:
    """Where the PNG of session ``day`` is written: ``<home>/reports/session_<YYYY-MM-DD>.png``."""
    return config.reports_dir / f"session_{day.isoformat()}.png"


def to_plot_time(ts: pl.Series) -> np.ndarray:
    """Matplotlib date numbers (float64 days since matplotlib's epoch) of a Datetime series, vectorized.

    Input: a polars Datetime series (any unit; time zone aware or UTC-naive, taken as UTC). The
    numbers are UTC instants; axes display them in New York time through a tz-aware formatter.
    """
    epoch_offset = mdates.date2num(np.datetime64("1970-01-01T00:00:00"))  # 0 with matplotlib's default epoch
    return ts.dt.epoch("ns").to_numpy().astype(np.float64) / _NS_PER_DAY + epoch_offset


def _plot_time(instant: datetime) -> float:
    return float(mdates.date2num(instant))


def _in_window(frame: pl.DataFrame, column: str, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter(pl.col(column).is_between(pl.lit(start), pl.lit(end), closed="both"))


def draw_candles(ax: Axes, bars: pl.DataFrame, config: SpymasterConfig, day: date) -> int:
    """Draw the ``config.level_bar_minutes`` (2-minute) candles of the chart window on ``ax``; return how many.

    Input: silver_bars rows (bar_minutes, ts_event = bar open, ts_close, open, high, low, close in
    index points); rows of other bar lengths or outside the window (open before ``premarket_start``,
    close after ``anchor_end``) are ignored. Each candle spans its bar's [open, close) instants,
    centred on the bar's middle: a wick from low to high and a body from open to close, hollow
    (white) when close >= open, filled black otherwise (colours kept free for the levels).
    """
    start, end = chart_window_utc(config, day)
    shown = bars.filter(
        (pl.col("bar_minutes") == config.level_bar_minutes)
        & (pl.col("ts_event") >= pl.lit(start))
        & (pl.col("ts_close") <= pl.lit(end))
    ).sort("ts_event")
    if shown.height == 0:
        return 0
    bar_days = config.level_bar_minutes / (24 * 60)
    middle = to_plot_time(shown["ts_event"]) + bar_days / 2
    o, h, lo, c = (shown[col].to_numpy() for col in ("open", "high", "low", "close"))
    rising = c >= o
    ax.vlines(middle, lo, h, color="black", linewidth=0.6, zorder=2)
    # A doji has zero body height; the edge line keeps it visible as a horizontal tick.
    ax.bar(
        middle,
        np.abs(c - o),
        bottom=np.minimum(o, c),
        width=bar_days * _CANDLE_WIDTH_FRACTION,
        color=np.where(rising, "white", "black"),
        edgecolor="black",
        linewidth=0.6,
        zorder=3,
    )
    return shown.height


def draw_levels(ax: Axes, levels: pl.DataFrame, config: SpymasterConfig, day: date) -> dict[str, Line2D]:
    """Draw each level kind as a step line over the time it was known; return the line of each kind drawn.

    Input: silver_levels rows (ts_event = the 2-minute bar close from which level_price is known,
    level_kind, level_price in index points). A value holds from its bar close until the next one
    (``where="post"``), and the last value is carried to the end of the chart window. Styles are
    :data:`LEVEL_STYLES`; each line is labelled with its level kind for the legend. Kinds without
    rows in the window are not drawn.
    """
    start, end = chart_window_utc(config, day)
    shown = _in_window(levels, "ts_event", start, end)
    lines: dict[str, Line2D] = {}
    for kind in LEVEL_KINDS:
        rows = shown.filter(pl.col("level_kind") == kind).sort("ts_event")
        if rows.height == 0:
            continue
        x = np.append(to_plot_time(rows["ts_event"]), _plot_time(end))
        y = rows["level_price"].to_numpy()
        y = np.append(y, y[-1])
        (line,) = ax.step(x, y, where="post", linewidth=1.3, label=kind, zorder=4, **LEVEL_STYLES[kind])
        lines[kind] = line
    return lines


def draw_episodes(ax: Axes, episodes: pl.DataFrame, levels: pl.DataFrame) -> int:
    """Mark every episode on the level it approached, at its anchor close; return how many were marked.

    Input: gold_episodes rows (ts_event = anchor bar close, level_kind, direction, outcome) and
    silver_levels (ts_event, level_kind, level_price): the marker sits at the level's price known at
    the anchor, so episodes of different levels at the same bar stay apart. Colour by outcome
    (:data:`OUTCOME_COLOURS`), shape by direction (:data:`DIRECTION_MARKERS`). One legend entry per
    outcome present. Episodes without a level row at their anchor are skipped (none in a consistent lake).
    """
    placed = episodes.select("ts_event", "level_kind", "direction", "outcome").join(
        levels.select("ts_event", "level_kind", "level_price"), on=["ts_event", "level_kind"], how="inner"
    )
    for outcome in OUTCOMES:
        labelled = False
        for direction, marker in DIRECTION_MARKERS.items():
            rows = placed.filter((pl.col("outcome") == outcome) & (pl.col("direction") == direction))
            if rows.height == 0:
                continue
            ax.scatter(
                to_plot_time(rows["ts_event"]),
                rows["level_price"].to_numpy(),
                s=28,
                marker=marker,
                color=OUTCOME_COLOURS[outcome],
                edgecolors="white",
                linewidths=0.4,
                zorder=5,
                label=None if labelled else f"episode: {outcome}",
            )
            labelled = True
    return placed.height


def draw_break_probability(ax: Axes, signals: pl.DataFrame) -> dict[str, list[Line2D]]:
    """Plot the smoothed P(BREAK) of each level being approached, bar by bar; return the lines of each kind.

    Input: gold_signals rows (ts_event = anchor bar close, level_kind, approach_id,
    p_break_smooth in [0, 1]). One line per (level kind, approach) so separate approaches are not
    joined across the bars in between, in the level's colour with :data:`LEVEL_MARKERS` (an
    approach of a single anchor shows as one marker); one legend entry per kind. The y axis is
    fixed to [0, 1]. With no signals the panel says so.
    """
    lines: dict[str, list[Line2D]] = {}
    for kind in LEVEL_KINDS:
        rows = signals.filter(pl.col("level_kind") == kind).sort("ts_event")
        if rows.height == 0:
            continue
        for i, ((_approach,), approach) in enumerate(rows.partition_by("approach_id", as_dict=True, maintain_order=True).items()):
            (line,) = ax.plot(
                to_plot_time(approach["ts_event"]),
                approach["p_break_smooth"].to_numpy(),
                color=LEVEL_STYLES[kind]["color"],
                marker=LEVEL_MARKERS[kind],
                markersize=3,
                linewidth=1.2,
                label=kind if i == 0 else None,
            )
            lines.setdefault(kind, []).append(line)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("P(BREAK), smoothed")
    if not lines:
        ax.text(0.5, 0.5, "no level in the approach zone: no episodes", transform=ax.transAxes, ha="center", va="center", color="grey")
    return lines


def session_chart_figure(
    bars: pl.DataFrame,
    levels: pl.DataFrame,
    episodes: pl.DataFrame,
    signals: pl.DataFrame,
    config: SpymasterConfig,
    day: date,
) -> Figure:
    """The session chart of ``day`` as a Figure (Agg canvas): candles + levels + episodes above, P(BREAK) below.

    Inputs: silver_bars, silver_levels, gold_episodes and gold_signals of the session (columns as
    in :func:`draw_candles`, :func:`draw_levels`, :func:`draw_episodes`,
    :func:`draw_break_probability`); episodes and signals may be empty. The panels share the x
    axis, fixed to :func:`chart_window_utc` and labelled in New York time; dashed vertical lines
    mark the RTH open and the end of the opening range. Size :data:`FIGURE_SIZE_INCHES` at
    :data:`FIGURE_DPI`.
    """
    start, end = chart_window_utc(config, day)
    fig = Figure(figsize=FIGURE_SIZE_INCHES, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    price_ax, prob_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})

    n_candles = draw_candles(price_ax, bars, config, day)
    draw_levels(price_ax, levels, config, day)
    n_episodes = draw_episodes(price_ax, episodes, levels)
    draw_break_probability(prob_ax, signals)

    open_at = et_to_utc(day, config.rth_open)
    range_end = open_at + timedelta(minutes=config.opening_range_minutes)
    for ax in (price_ax, prob_ax):
        for instant in (open_at, range_end):
            ax.axvline(_plot_time(instant), color="lightgrey", linestyle="--", linewidth=0.8, zorder=1, gid=SESSION_CLOCK_GID)
        ax.grid(axis="y", color="0.92", linewidth=0.6)
    prob_ax.set_xlim(_plot_time(start), _plot_time(end))
    prob_ax.xaxis.set_major_locator(mdates.HourLocator(tz=NY))
    prob_ax.xaxis.set_minor_locator(mdates.MinuteLocator(byminute=[15, 30, 45], tz=NY))
    prob_ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=NY))
    prob_ax.set_xlabel("New York time")
    price_ax.set_ylabel(f"{config.product} price ({config.spec.price_unit})")
    # Legends outside the plotting area, on the right, so they never hide candles or lines.
    price_ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", title="levels, episodes")
    if prob_ax.get_legend_handles_labels()[0]:
        prob_ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", title="approaching")
    price_ax.set_title(
        f"{config.product} {day.isoformat()}: {n_candles} {config.level_bar_minutes}-minute bars "
        f"{config.premarket_start:%H:%M}-{config.anchor_end:%H:%M} ET, levels, {n_episodes} episodes; "
        "below: smoothed P(BREAK) of the level approached"
    )
    return fig


def write_session_chart(
    bars: pl.DataFrame,
    levels: pl.DataFrame,
    episodes: pl.DataFrame,
    signals: pl.DataFrame,
    config: SpymasterConfig,
    day: date,
    path: Path | None = None,
) -> Path:
    """Draw :func:`session_chart_figure` and write it atomically to ``path`` (default :func:`chart_path`); return the path."""
    return write_png_atomically(session_chart_figure(bars, levels, episodes, signals, config, day), path or chart_path(config, day))
