"""silver_outcomes: first-crossing rule, ambiguity, horizon and excursions on hand-built bars."""

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.labels import label_outcomes
from spymaster_assets.silver.schemas import validate_silver_outcomes

UTC = timezone.utc
CONFIG = SpymasterConfig()  # break 1 ATR from the level, reject 1 ATR from the close, 16-minute horizon
T = datetime(2024, 7, 10, 14, 0, tzinfo=UTC)  # 10:00 ET anchor


def bars_after_anchor(ohlc_by_minute, first_minute=0):
    """1-minute bars opening at T + first_minute, T + first_minute + 1, ... from (open, high, low) tuples."""
    rows = [(T + timedelta(minutes=first_minute + i), o, h, lo) for i, (o, h, lo) in enumerate(ohlc_by_minute)]
    ts, o, h, lo = zip(*rows)
    return pl.DataFrame(
        {"bar_minutes": [1] * len(ts), "ts_event": list(ts), "open": o, "high": h, "low": lo, "close": o},
        schema_overrides={"bar_minutes": pl.Int8},
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


def state_row(direction, level, close, atr=1.0, kind="PM_HIGH"):
    return pl.DataFrame(
        {
            "session_date": [date(2024, 7, 10)],
            "ts_event": [T],
            "level_kind": [kind],
            "level_price": [level],
            "close": [close],
            "atr_points": [atr],
            "direction": [direction],
        }
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


def label_one(bars, state):
    out = label_outcomes(bars, state, CONFIG)
    validate_silver_outcomes(out)
    assert out.height == 1
    return out.row(0, named=True)


QUIET = (99.0, 99.5, 98.5)  # for UP level 100 / close 99 / ATR 1: break at 101, reject at 98


def test_up_break_first_crossing_and_excursions():
    bars = bars_after_anchor([QUIET, (99.0, 101.25, 98.75), (101.0, 102.0, 97.0)] + [QUIET] * 13)
    row = label_one(bars, state_row("UP", 100.0, 99.0))
    assert row["outcome"] == "BREAK" and not row["ambiguous"]
    assert row["first_event_ts"] == T + timedelta(minutes=2)  # close of the bar opening at T+1
    assert row["time_to_event_s"] == 120.0
    # Over the whole horizon: highest high 102 -> +3 ATR, lowest low 97 -> 2 ATR adverse.
    assert row["mfe_atr"] == pytest.approx(3.0) and row["mae_atr"] == pytest.approx(2.0)
    assert row["horizon_complete"]


def test_up_reject_scaled_by_atr():
    # ATR 2: break at 100 + 2 = 102, reject at 99 - 2 = 97.
    bars = bars_after_anchor([QUIET, QUIET, (98.0, 98.5, 96.75)] + [QUIET] * 13)
    row = label_one(bars, state_row("UP", 100.0, 99.0, atr=2.0))
    assert row["outcome"] == "REJECT" and row["time_to_event_s"] == 180.0
    assert row["mae_atr"] == pytest.approx((99.0 - 96.75) / 2.0)
    assert row["mfe_atr"] == pytest.approx((99.5 - 99.0) / 2.0)


def test_down_is_mirrored():
    # DOWN: level 100, close 101, ATR 1: break at low <= 99, reject at high >= 102.
    quiet = (101.0, 101.5, 100.5)
    broke = label_one(bars_after_anchor([quiet, (100.5, 100.75, 98.9)] + [quiet] * 14), state_row("DOWN", 100.0, 101.0))
    assert broke["outcome"] == "BREAK" and broke["time_to_event_s"] == 120.0
    assert broke["mfe_atr"] == pytest.approx(101.0 - 98.9) and broke["mae_atr"] == pytest.approx(0.5)
    rejected = label_one(bars_after_anchor([quiet, quiet, quiet, (101.5, 102.0, 101.0)] + [quiet] * 12), state_row("DOWN", 100.0, 101.0))
    assert rejected["outcome"] == "REJECT" and rejected["time_to_event_s"] == 240.0


def test_chop_has_no_event_and_bars_outside_the_horizon_do_not_count():
    # A bar opening before T and a bar opening at T + 16 min both break: neither is in [T, T + 16).
    early = bars_after_anchor([(99.0, 105.0, 90.0)], first_minute=-1)
    inside = bars_after_anchor([QUIET] * 16)
    late = bars_after_anchor([(99.0, 105.0, 90.0)], first_minute=16)
    row = label_one(pl.concat([early, inside, late]), state_row("UP", 100.0, 99.0))
    assert row["outcome"] == "CHOP"
    assert row["first_event_ts"] is None and row["time_to_event_s"] is None
    assert row["mfe_atr"] == pytest.approx(0.5) and row["mae_atr"] == pytest.approx(0.5)
    assert row["horizon_complete"]
    # The last minute inside the horizon still counts.
    last = bars_after_anchor([QUIET] * 15 + [(99.0, 101.0, 99.0)])
    assert label_one(last, state_row("UP", 100.0, 99.0))["time_to_event_s"] == 16 * 60.0


@pytest.mark.parametrize(
    ("bar_open", "expected"),
    [
        (100.6, "BREAK"),  # 0.4 from the break threshold 101, 2.6 from the reject threshold 98
        (98.4, "REJECT"),  # 2.6 from break, 0.4 from reject
        (101.2, "BREAK"),  # opened beyond the break threshold
        (97.9, "REJECT"),  # opened beyond the reject threshold
    ],
)
def test_bar_touching_both_thresholds_is_ambiguous_and_resolved_by_its_open(bar_open, expected):
    bars = bars_after_anchor([QUIET, (bar_open, 101.5, 97.5)] + [QUIET] * 14)
    row = label_one(bars, state_row("UP", 100.0, 99.0))
    assert row["ambiguous"] and row["outcome"] == expected
    assert row["time_to_event_s"] == 120.0


def test_incomplete_horizon_is_flagged():
    bars = bars_after_anchor([QUIET] * 10)  # the session's data ends at T + 10 min
    row = label_one(bars, state_row("UP", 100.0, 99.0))
    assert row["outcome"] == "CHOP" and not row["horizon_complete"]
    # Bars reaching exactly T + horizon complete it.
    assert label_one(bars_after_anchor([QUIET] * 16), state_row("UP", 100.0, 99.0))["horizon_complete"]


def test_one_row_per_state_row_in_order():
    state = pl.concat([state_row("UP", 100.0, 99.0), state_row("DOWN", 98.0, 99.0, kind="PM_LOW")])
    bars = bars_after_anchor([QUIET, (99.0, 101.0, 99.0)] + [QUIET] * 14)
    out = label_outcomes(bars, state, CONFIG)
    validate_silver_outcomes(out)
    assert out["level_kind"].to_list() == ["PM_HIGH", "PM_LOW"]
    # PM_LOW DOWN: break at 97, reject at 100 -> the high of 101 at T+1 rejects.
    assert out["outcome"].to_list() == ["BREAK", "REJECT"]
    assert out["anchor_close"].to_list() == [99.0, 99.0]


def test_unknown_direction_raises():
    with pytest.raises(ValueError, match="directions"):
        label_outcomes(bars_after_anchor([QUIET]), state_row("SIDEWAYS", 100.0, 99.0), CONFIG)


def _trades(points):
    """Trades at (seconds after T, price), in receive order."""
    return pl.DataFrame(
        {"ts_event": [T + timedelta(seconds=s) for s, _ in points], "price": [p for _, p in points]}
    ).with_columns(pl.col("ts_event").cast(pl.Datetime("ns", "UTC")))


def test_an_ambiguous_bar_is_settled_by_the_first_trade_through_a_threshold():
    """UP level 100, close 99, ATR 1: break 101, reject 98. The bar opening at T+1 touches both and
    opens nearer the reject side (the bar rule says REJECT); its trades reach 101 first."""
    bars = bars_after_anchor([QUIET, (98.5, 101.5, 97.5)] + [QUIET] * 14)
    state = state_row("UP", 100.0, 99.0)
    by_bar = label_one(bars, state)
    assert by_bar["outcome"] == "REJECT" and by_bar["ambiguous"] and not by_bar["resolved_by_trades"]
    trades = _trades([(30, 97.0), (65, 99.0), (80, 101.25), (95, 97.75), (130, 99.0)])  # 30 s: before the bar
    row = label_outcomes(bars, state, CONFIG, trades).row(0, named=True)
    assert row["outcome"] == "BREAK" and row["ambiguous"] and row["resolved_by_trades"]
    assert row["first_event_ts"] == T + timedelta(seconds=80) and row["time_to_event_s"] == 80.0
    # Trades that never cross inside the deciding bar leave the bar rule in place.
    quiet = label_outcomes(bars, state, CONFIG, _trades([(70, 99.5), (100, 100.5)])).row(0, named=True)
    assert quiet["outcome"] == "REJECT" and not quiet["resolved_by_trades"]
    # A row that is not ambiguous is never touched by trades.
    clean = label_outcomes(bars_after_anchor([QUIET, (99.0, 101.25, 98.75)] + [QUIET] * 14), state, CONFIG, trades).row(0, named=True)
    assert clean["outcome"] == "BREAK" and not clean["ambiguous"] and not clean["resolved_by_trades"]
    assert clean["first_event_ts"] == T + timedelta(minutes=2)
