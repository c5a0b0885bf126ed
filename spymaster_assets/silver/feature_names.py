"""Names of the level-relative feature columns of ``silver_level_state``, by feature family.

This is the contract between the silver tier, which computes these columns, and the gold tier,
which turns them into setup vectors in exactly this order. Adding a family appends names and bumps
the vector version; it never reorders existing names.

Families (DESIGN.md "The setup vector: each block only when its data exists"):

- ``bars``  always: distance, DCT trajectory of d and volume, kinematics, context.
- ``tape``  from bronze_futures_trades: aggressor volume, imbalance, trade rate, volume at the
  level, sweeps, DCT trajectory of trade imbalance.
- ``book``  from the top of book (bronze_futures_bbo or level 0 of bronze_futures_mbp10): book
  imbalance, microprice, spread, best-level OFI (Cont, Kukanov & Stoikov 2014), DCT trajectory of OFI.
- ``depth`` from bronze_futures_mbp10: multi-level OFI (Xu, Gould & Howison 2018), resting size near
  the level on the defending side and its change, wall ratio, DCT trajectory of depth at the level.
- ``mbo``   from MBO (bronze_futures_mbp10 rebuilt from mbo): size added / cancelled / filled near the
  level on the defending side (replenishment).
- ``gamma`` from the session's ES 0DTE options (bronze_options_*): dealer gamma exposure (GEX) around
  the level, call and put walls, gamma flip, and the dealer gamma traded since the open.
"""


from __future__ import annotations

from spymaster_core.config import LEVEL_KINDS, SpymasterConfig

#: Columns of silver_outcomes that carry (or derive from) a setup's future. None may enter a vector,
#: a normalization statistic or an index used to answer that day.
LABEL_COLUMNS: tuple[str, ...] = (
    "outcome",
    "first_event_ts",
    "time_to_event_s",
    "mfe_atr",
    "mae_atr",
    "ambiguous",
    "resolved_by_trades",
    "horizon_complete",
)

#: Version of the bars-only setup vector. An index partition never mixes vector versions.
BARS_VECTOR_VERSION = "bars-v1"
#: Version of the full (all-family) column layout; a vector's version also names its families.
VECTOR_LAYOUT_VERSION = "v2"
#: Feature families in vector order. ``bars`` is always present; the others only when their data exists.
FEATURE_FAMILIES: tuple[str, ...] = ("bars", "tape", "book", "depth", "mbo", "gamma")
ORDER_FLOW_FAMILIES: tuple[str, ...] = FEATURE_FAMILIES[1:]


def trajectory_columns(config: SpymasterConfig) -> list[str]:
    """DCT-II (orthonormal) coefficients of the last ``trajectory_minutes`` of d and of log1p(volume)."""
    n = config.dct_coefficients
    return [f"traj_d_dct_{i}" for i in range(n)] + [f"traj_logvol_dct_{i}" for i in range(n)]


def kinematic_columns(config: SpymasterConfig) -> list[str]:
    """Velocity, acceleration and jerk of d (ATR per minute^k) over each lag in minutes."""
    cols: list[str] = []
    for lag in config.kinematic_lags_minutes:
        cols += [f"d_velocity_{lag}m", f"d_acceleration_{lag}m", f"d_jerk_{lag}m"]
    return cols


def distance_columns() -> list[str]:
    """Signed distance (close - other level) / ATR to each level kind; null for the row's own kind or an unknown level."""
    return [f"dist_atr_{kind.lower()}" for kind in LEVEL_KINDS]


def stack_columns(config: SpymasterConfig) -> list[str]:
    """Count of other known levels within x ATR of this level, for each x in ``stack_thresholds_atr``."""
    return [f"stack_count_{str(x).replace('.', 'p')}atr" for x in config.stack_thresholds_atr]


def context_columns(config: SpymasterConfig) -> list[str]:
    """Context features: time, other levels, stacking, touches, opening-range width."""
    return (
        ["minutes_since_open"]
        + distance_columns()
        + stack_columns(config)
        + ["touches_today", "minutes_since_last_touch", "or_width_atr"]
    )


#: Chart blocks of the bars family (``chart_features``), in vector order; ``chart_blocks`` switches each on.
CHART_BLOCKS: tuple[str, ...] = ("vwap", "ranges", "round_numbers", "level_age", "prior_session", "atr_regime")


def chart_columns(config: SpymasterConfig) -> list[str]:
    """Columns of the enabled chart blocks (``config.chart_blocks``), in :data:`CHART_BLOCKS` order; definitions in ``chart_features``."""
    names = {
        "vwap": ["vwap_rth_dist_atr", "vwap_session_dist_atr"],
        "ranges": ["overnight_range_atr", "day_range_atr"],
        "round_numbers": [f"round_{h:g}_dist_atr".replace(".", "p") for h in config.round_number_handles_points],
        "level_age": ["minutes_since_level_set"],
        "prior_session": ["prev_rth_high_dist_atr", "prev_rth_low_dist_atr", "prev_rth_close_dist_atr", "open_gap_atr"],
        "atr_regime": ["daily_atr_atr", "daily_atr_pct_1y"],
    }
    return [c for block in CHART_BLOCKS if block in config.chart_blocks for c in names[block]]


def bars_feature_columns(config: SpymasterConfig) -> list[str]:
    """All vector feature columns of the bars-only vector, in vector order (d itself first, the chart blocks last)."""
    return ["distance_atr"] + trajectory_columns(config) + kinematic_columns(config) + context_columns(config) + chart_columns(config)


def _w(seconds: int) -> str:
    return f"{seconds}s"


def tape_columns(config: SpymasterConfig) -> list[str]:
    """Family ``tape`` (trades), per window w in ``order_flow_windows_seconds`` over (T - w, T]:

    tape_buy_volume_{w}s / tape_sell_volume_{w}s (contracts bought / sold by aggressors, side B / A),
    tape_imbalance_{w}s ((buy - sell) / (buy + sell), 0 when both are 0), tape_trade_rate_{w}s (trades
    per second, any side), tape_level_volume_{w}s (contracts traded at prices within
    +-``level_band_ticks[0]`` ticks of the level), tape_buy_sweeps_{w}s / tape_sell_sweeps_{w}s (sweeps:
    runs of same-aggressor trades through >= ``sweep_min_price_levels`` distinct prices within
    ``sweep_window_ms``); then traj_trade_imbalance_dct_i (DCT-II of the 1-minute trade imbalance).
    """
    cols: list[str] = []
    for w in config.order_flow_windows_seconds:
        cols += [
            f"tape_buy_volume_{_w(w)}",
            f"tape_sell_volume_{_w(w)}",
            f"tape_imbalance_{_w(w)}",
            f"tape_trade_rate_{_w(w)}",
            f"tape_level_volume_{_w(w)}",
            f"tape_buy_sweeps_{_w(w)}",
            f"tape_sell_sweeps_{_w(w)}",
        ]
    return cols + [f"traj_trade_imbalance_dct_{i}" for i in range(config.dct_coefficients)]


def book_columns(config: SpymasterConfig) -> list[str]:
    """Family ``book`` (top of book at T, and best-level OFI over (T - w, T]):

    book_imbalance ((bid_sz_00 - ask_sz_00) / (bid_sz_00 + ask_sz_00)), microprice_offset_ticks
    (microprice - mid, ticks; microprice = (bid_px_00 * ask_sz_00 + ask_px_00 * bid_sz_00) /
    (bid_sz_00 + ask_sz_00)), microprice_dist_atr ((microprice - level) / ATR), spread_ticks,
    ofi_{w}s (sum of Cont-Kukanov-Stoikov e_n over the window divided by the window's mean best-level
    depth (bid_sz_00 + ask_sz_00) / 2; dimensionless); then traj_ofi_dct_i (DCT-II of 1-minute OFI).
    """
    return (
        ["book_imbalance", "microprice_offset_ticks", "microprice_dist_atr", "spread_ticks"]
        + [f"ofi_{_w(w)}" for w in config.order_flow_windows_seconds]
        + [f"traj_ofi_dct_{i}" for i in range(config.dct_coefficients)]
    )


def depth_columns(config: SpymasterConfig) -> list[str]:
    """Family ``depth`` (10-level book): mlofi_{w}s (multi-level OFI summed over the ``book_levels``
    levels and the window, divided by the window's mean depth per level; Xu, Gould & Howison 2018),
    depth_{b}t (contracts resting within +-b ticks of the level on the defending side at T: ask when
    UP, bid when DOWN), depth_{b}t_change_{m}m (depth_{b}t at T minus the same at T - m minutes,
    contracts), wall_ratio_{b}t (depth_{b}t over the mean size per level of that side's 10 levels);
    then traj_depth_dct_i (DCT-II of log1p(depth_{b0}t) sampled each minute).
    """
    bands = config.level_band_ticks
    return (
        [f"mlofi_{_w(w)}" for w in config.order_flow_windows_seconds]
        + [f"depth_{b}t" for b in bands]
        + [f"depth_{b}t_change_{m}m" for b in bands for m in config.depth_change_minutes]
        + [f"wall_ratio_{b}t" for b in bands]
        + [f"traj_depth_dct_{i}" for i in range(config.dct_coefficients)]
    )


def mbo_columns(config: SpymasterConfig) -> list[str]:
    """Family ``mbo`` (order-level events within +-``level_band_ticks[0]`` ticks of the level on the
    defending side, over (T - m min, T]): repl_added_{b}t_{m}m, repl_cancelled_{b}t_{m}m,
    repl_filled_{b}t_{m}m (contracts), replenishment_ratio_{b}t_{M}m = added / (cancelled + filled)
    over the longest window M (null when nothing was removed).
    """
    b = config.level_band_ticks[0]
    cols: list[str] = []
    for m in config.depth_change_minutes:
        cols += [f"repl_added_{b}t_{m}m", f"repl_cancelled_{b}t_{m}m", f"repl_filled_{b}t_{m}m"]
    return cols + [f"replenishment_ratio_{b}t_{max(config.depth_change_minutes)}m"]


def gamma_columns(config: SpymasterConfig) -> list[str]:
    """Family ``gamma`` (ES 0DTE options, point in time at T; GEX in billions of USD per 1% move):

    GEX of a strike = sum over its calls and puts of sign x gamma x OI x multiplier x F^2 x 0.01
    (sign ``dealer_call_sign`` for calls, ``dealer_put_sign`` for puts; gamma Black-76 per point of
    F; OI known before the session; F the front-month price at T). gex_above_{k}strikes /
    gex_below_{k}strikes: net GEX of strikes in (level, level + k intervals] / [level - k
    intervals, level) for k in ``gex_strike_intervals`` (interval = the chain's strike spacing);
    gex_asymmetry_{K}strikes: (above - below) / (|above| + |below|) for the largest K (null when
    both are 0); gex_total: all strikes; call_wall_dist_atr / put_wall_dist_atr: (strike with the
    largest call / put |GEX| - level) / ATR; gamma_flip_dist_atr: (price where total GEX, re-evaluated
    as a function of F, crosses zero nearest the level - level) / ATR (null when it never does);
    dealer_gamma_traded_since_open: the GEX change implied by option trades from 09:30 ET to T
    (a customer buying, aggressor B, leaves dealers short: -gamma x size x multiplier x F^2 x 0.01).
    """
    ks = config.gex_strike_intervals
    return (
        [f"gex_above_{k}strikes" for k in ks]
        + [f"gex_below_{k}strikes" for k in ks]
        + [f"gex_asymmetry_{max(ks)}strikes", "gex_total", "call_wall_dist_atr", "put_wall_dist_atr", "gamma_flip_dist_atr", "dealer_gamma_traded_since_open"]
    )


def family_columns(family: str, config: SpymasterConfig) -> list[str]:
    """The feature columns of one family, in vector order.

    Raises ValueError for an unknown family name.
    """
    builders = {
        "bars": bars_feature_columns,
        "tape": tape_columns,
        "book": book_columns,
        "depth": depth_columns,
        "mbo": mbo_columns,
        "gamma": gamma_columns,
    }
    if family not in builders:
        raise ValueError(f"unknown feature family {family!r}; known: {FEATURE_FAMILIES}")
    return builders[family](config)


def all_feature_columns(config: SpymasterConfig) -> list[str]:
    """Every feature column of silver_level_state (all families, in FEATURE_FAMILIES order)."""
    return [c for family in FEATURE_FAMILIES for c in family_columns(family, config)]


def families_label(families) -> str:
    """Canonical text of a set of families, in FEATURE_FAMILIES order, e.g. ``"bars+tape+book"``."""
    unknown = set(families) - set(FEATURE_FAMILIES)
    if unknown:
        raise ValueError(f"unknown feature families {sorted(unknown)}; known: {FEATURE_FAMILIES}")
    return "+".join(f for f in FEATURE_FAMILIES if f in set(families))
