"""Session chart plotting on a hand-built session: candles, level step lines and colours, episodes, P(BREAK) panel, PNG."""

from __future__ import annotations

import colorsys
from datetime import date, datetime, timedelta, timezone

import matplotlib.dates as mdates
import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest
from matplotlib.colors import to_rgb

from spymaster_assets.charts.session_chart import (
    OUTCOME_COLOURS,
    SESSION_CLOCK_GID,
    chart_window_utc,
    session_chart_figure,
    write_session_chart,
)
from spymaster_core.config import LEVEL_KINDS, SpymasterConfig

UTC = timezone.utc
DAY = date(2013, 10, 10)  # EDT: New York = UTC - 4 h
CFG = SpymasterConfig()
TS = pl.Datetime("ns", "UTC")


def at(hh: int, mm: int) -> datetime:
    """UTC instant of New York wall time hh:mm on DAY (EDT, UTC-4)."""
    return datetime(2013, 10, 10, hh + 4, mm, tzinfo=UTC)


def num(instant: datetime) -> float:
    return float(mdates.date2num(instant))


def bars_frame() -> pl.DataFrame:
    """2-minute bars 09:30-09:36 (two rising, one falling), one before 04:00, one ending after 12:30, and a 1-minute row."""
    rows = [
        # (bar_minutes, open time, open, high, low, close)
        (2, at(9, 30), 100.0, 102.0, 99.0, 101.0),
        (2, at(9, 32), 101.0, 103.0, 100.5, 102.5),
        (2, at(9, 34), 102.5, 102.75, 100.0, 100.25),
        (2, at(3, 58), 98.0, 98.5, 97.0, 98.25),  # closes 04:00 but opens before the window
        (2, at(12, 30), 100.0, 101.0, 99.0, 100.5),  # opens at the window end
        (1, at(9, 31), 101.0, 101.5, 100.0, 101.25),  # 1-minute rows are not candles
    ]
    return pl.DataFrame(
        {
            "bar_minutes": [r[0] for r in rows],
            "ts_event": [r[1] for r in rows],
            "ts_close": [r[1] + timedelta(minutes=r[0]) for r in rows],
            "open": [r[2] for r in rows],
            "high": [r[3] for r in rows],
            "low": [r[4] for r in rows],
            "close": [r[5] for r in rows],
        },
        schema_overrides={"bar_minutes": pl.Int8, "ts_event": TS, "ts_close": TS},
    )


LEVEL_VALUES = {"PM_HIGH": 103.0, "PM_LOW": 95.0, "OR_HIGH": 102.75, "OR_LOW": 99.0}


def levels_frame() -> pl.DataFrame:
    """PM levels known from 09:30, OR levels from 09:46, SMA_90 / EMA_20 moving at each 2-minute close from 09:30."""
    rows = []
    for t in (at(9, 30), at(9, 32), at(9, 34), at(9, 46)):
        for kind in ("PM_HIGH", "PM_LOW"):
            rows.append((t, kind, LEVEL_VALUES[kind]))
    for kind in ("OR_HIGH", "OR_LOW"):
        rows.append((at(9, 46), kind, LEVEL_VALUES[kind]))
    for i, t in enumerate((at(9, 30), at(9, 32), at(9, 34))):
        rows.append((t, "SMA_90", 98.0 + i))
        rows.append((t, "EMA_20", 100.0 + 0.5 * i))
    return pl.DataFrame(
        {"ts_event": [r[0] for r in rows], "level_kind": [r[1] for r in rows], "level_price": [r[2] for r in rows]},
        schema_overrides={"ts_event": TS},
    )


def episodes_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts_event": [at(9, 32), at(9, 34), at(9, 34)],
            "level_kind": ["PM_HIGH", "PM_HIGH", "EMA_20"],
            "direction": ["UP", "UP", "DOWN"],
            "outcome": ["BREAK", "REJECT", "CHOP"],
        },
        schema_overrides={"ts_event": TS},
    )


def signals_frame() -> pl.DataFrame:
    """EMA_20 has two approaches (09:32-09:34 and 09:40); PM_HIGH one (09:32)."""
    return pl.DataFrame(
        {
            "ts_event": [at(9, 32), at(9, 34), at(9, 40), at(9, 32)],
            "level_kind": ["EMA_20", "EMA_20", "EMA_20", "PM_HIGH"],
            "approach_id": [0, 0, 1, 0],
            "p_break_smooth": [0.2, 0.3, 0.6, 0.5],
        },
        schema_overrides={"ts_event": TS, "approach_id": pl.Int32},
    )


@pytest.fixture(scope="module")
def figure():
    return session_chart_figure(bars_frame(), levels_frame(), episodes_frame(), signals_frame(), CFG, DAY)


def data_lines(ax):
    """Lines of ``ax`` except the session-clock markers (RTH open, end of the opening range)."""
    return [line for line in ax.get_lines() if line.get_gid() != SESSION_CLOCK_GID]


def hue_saturation(colour) -> tuple[float, float]:
    h, _, s = colorsys.rgb_to_hls(*to_rgb(colour))
    return h * 360.0, s


def test_chart_window_follows_new_york_time_across_dst():
    assert chart_window_utc(CFG, date(2013, 10, 10)) == (datetime(2013, 10, 10, 8, 0, tzinfo=UTC), datetime(2013, 10, 10, 16, 30, tzinfo=UTC))
    assert chart_window_utc(CFG, date(2013, 12, 18)) == (datetime(2013, 12, 18, 9, 0, tzinfo=UTC), datetime(2013, 12, 18, 17, 30, tzinfo=UTC))


def test_x_axis_is_new_york_time_and_spans_the_window(figure):
    price_ax, prob_ax = figure.axes[:2]
    assert prob_ax.get_xlim() == pytest.approx((num(at(4, 0)), num(at(12, 30))))
    assert price_ax.get_xlim() == prob_ax.get_xlim()  # shared x axis
    formatter = prob_ax.xaxis.get_major_formatter()
    assert formatter(num(datetime(2013, 10, 10, 13, 30, tzinfo=UTC))) == "09:30"


def test_candles_only_for_two_minute_bars_inside_the_window(figure):
    price_ax = figure.axes[0]
    bodies = price_ax.patches
    assert len(bodies) == 3  # 09:30, 09:32, 09:34: not the 03:58 bar, the 12:30 bar or the 1-minute row
    two_minutes = 2 / (24 * 60)
    by_x = sorted(bodies, key=lambda p: p.get_x())
    for body, (o, c), opened in zip(by_x, [(100.0, 101.0), (101.0, 102.5), (102.5, 100.25)], (at(9, 30), at(9, 32), at(9, 34))):
        centre = body.get_x() + body.get_width() / 2
        assert centre == pytest.approx(num(opened) + two_minutes / 2)
        assert body.get_y() == pytest.approx(min(o, c)) and body.get_height() == pytest.approx(abs(c - o))
        assert to_rgb(body.get_facecolor()) == to_rgb("white" if c >= o else "black")
    (wicks,) = price_ax.collections[:1]
    segments = sorted(wicks.get_segments(), key=lambda s: s[0][0])
    assert [(s[0][1], s[1][1]) for s in segments] == [(99.0, 102.0), (100.5, 103.0), (100.0, 102.75)]


def test_levels_are_step_lines_in_their_colours(figure):
    price_ax = figure.axes[0]
    lines = {line.get_label(): line for line in price_ax.get_lines() if line.get_label() in LEVEL_KINDS}
    assert set(lines) == set(LEVEL_KINDS)
    hues = {kind: hue_saturation(line.get_color()) for kind, line in lines.items()}
    for kind in ("PM_HIGH", "PM_LOW"):
        assert hues[kind][1] == pytest.approx(0.0)  # grey: no saturation
        assert lines[kind].get_linestyle() == ":"  # dotted
    assert hues["OR_HIGH"][0] < 15 or hues["OR_HIGH"][0] > 345  # red
    assert 90 < hues["OR_LOW"][0] < 150  # green
    assert 45 < hues["SMA_90"][0] < 65  # yellow
    assert 270 < hues["EMA_20"][0] < 315  # purple
    for kind in ("OR_HIGH", "OR_LOW", "SMA_90", "EMA_20"):
        assert hues[kind][1] > 0.5 and lines[kind].get_linestyle() == "-"
    for line in lines.values():
        assert line.get_drawstyle() == "steps-post"  # a value holds until the next bar close
    # OR levels start when known (09:46) and are carried to the window end.
    x, y = lines["OR_HIGH"].get_data()
    assert list(x) == pytest.approx([num(at(9, 46)), num(at(12, 30))]) and list(y) == [102.75, 102.75]
    x, y = lines["SMA_90"].get_data()
    assert list(x) == pytest.approx([num(at(9, 30)), num(at(9, 32)), num(at(9, 34)), num(at(12, 30))])
    assert list(y) == [98.0, 99.0, 100.0, 100.0]
    legend = {t.get_text() for t in price_ax.get_legend().get_texts()}
    assert set(LEVEL_KINDS) <= legend


def test_episodes_marked_on_their_level_coloured_by_outcome(figure):
    price_ax = figure.axes[0]
    marked = []
    for coll in price_ax.collections[1:]:
        colour = to_rgb(coll.get_facecolor()[0])
        for x, y in coll.get_offsets():
            marked.append((round(float(x), 9), float(y), colour))
    expected = [
        (round(num(at(9, 32)), 9), LEVEL_VALUES["PM_HIGH"], to_rgb(OUTCOME_COLOURS["BREAK"])),
        (round(num(at(9, 34)), 9), LEVEL_VALUES["PM_HIGH"], to_rgb(OUTCOME_COLOURS["REJECT"])),
        (round(num(at(9, 34)), 9), 100.0 + 0.5 * 2, to_rgb(OUTCOME_COLOURS["CHOP"])),  # EMA_20 known at 09:34 (third value)
    ]
    assert sorted(marked) == sorted(expected)
    assert len({c for *_, c in expected}) == 3  # the three outcomes are told apart


def test_break_probability_panel_one_line_per_approach_in_level_colour(figure):
    price_lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    prob_ax = figure.axes[1]
    lines = data_lines(prob_ax)
    data = sorted((to_rgb(line.get_color()), tuple(line.get_ydata())) for line in lines)
    ema, pm = to_rgb(price_lines["EMA_20"].get_color()), to_rgb(price_lines["PM_HIGH"].get_color())
    assert data == sorted([(ema, (0.2, 0.3)), (ema, (0.6,)), (pm, (0.5,))])  # two EMA_20 approaches are not joined
    assert prob_ax.get_ylim() == (0.0, 1.0)
    assert sorted(t.get_text() for t in prob_ax.get_legend().get_texts()) == ["EMA_20", "PM_HIGH"]
    clock = sorted(line.get_xdata()[0] for line in prob_ax.get_lines() if line.get_gid() == SESSION_CLOCK_GID)
    assert clock == pytest.approx([num(at(9, 30)), num(at(9, 45))])


def test_session_without_episodes_still_draws(tmp_path):
    empty_episodes, empty_signals = episodes_frame().clear(), signals_frame().clear()
    fig = session_chart_figure(bars_frame(), levels_frame(), empty_episodes, empty_signals, CFG, DAY)
    prob_ax = fig.axes[1]
    assert data_lines(prob_ax) == [] and prob_ax.get_legend() is None
    assert any("no episodes" in t.get_text() for t in prob_ax.texts)
    path = write_session_chart(bars_frame(), levels_frame(), empty_episodes, empty_signals, CFG, DAY, tmp_path / "r" / "s.png")
    assert mpimg.imread(path).shape == (800, 1400, 4)


def test_png_written_atomically_with_the_figure_size(tmp_path):
    path = tmp_path / "session.png"
    path.write_bytes(b"old")
    written = write_session_chart(bars_frame(), levels_frame(), episodes_frame(), signals_frame(), CFG, DAY, path)
    assert written == path
    image = mpimg.imread(path)
    assert image.shape == (800, 1400, 4)  # 14 x 8 inches at 100 dpi
    assert np.unique(image.reshape(-1, 4), axis=0).shape[0] > 10  # something was drawn
    assert [p.name for p in tmp_path.iterdir()] == ["session.png"]  # no temporary file left
