"""The one typed configuration of Spymaster: sessions, levels, thresholds, retrieval and paths.

Every domain function takes a :class:`SpymasterConfig` (or the few fields it needs) as an argument;
nothing reads module-level settings. Each materialization records ``config.as_metadata()``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from .errors import SpymasterError
from .products import DEFAULT_PRODUCT, PRODUCTS, Product, get_product, lake_subdir, product_table

#: The six level kinds, in the fixed order used by every table and vector.
LEVEL_KINDS: tuple[str, ...] = ("PM_HIGH", "PM_LOW", "OR_HIGH", "OR_LOW", "SMA_90", "EMA_20")
#: Approach directions: UP = close below the level (testing resistance), DOWN = close above it.
DIRECTIONS: tuple[str, ...] = ("UP", "DOWN")
#: Outcome classes, in the fixed order of every probability vector.
OUTCOMES: tuple[str, ...] = ("BREAK", "REJECT", "CHOP")

#: Optional per-data-root configuration file (JSON object of field values).
CONFIG_FILE = "config.json"

SESSION_TZ = "America/New_York"
#: The calendar of the default product (ES): ``pandas_market_calendars``' CME Globex equity calendar.
EXCHANGE_CALENDAR = PRODUCTS[DEFAULT_PRODUCT].calendar


@dataclass(frozen=True)
class SpymasterConfig:
    """Configuration shared by every tier. Times are America/New_York wall-clock times.

    Units: ``*_atr`` fields are multiples of the 14-period ATR of 2-minute bars (index points per
    ATR); ``*_minutes`` are minutes; ``home`` is the data root holding ``raw/``, ``lake/`` and
    ``reports/``.
    """

    home: Path = Path("data")
    #: Where the lake lives when not under ``home``: an fsspec URL such as ``s3://bucket/spymaster/lake``
    #: (credentials and endpoint from the filesystem's environment, e.g. ``AWS_ENDPOINT_URL``); "" = ``home/lake``.
    lake_url: str = ""
    # Products (spymaster_core.products): the one this configuration serves, the data root's products,
    # and overrides of the shipped product table (config.json "product_table": {"GC": {"rth_open": "08:20"}}).
    # The session clock, calendar, tick size and dataset below are the served product's (for_product).
    product: str = DEFAULT_PRODUCT
    products: tuple[str, ...] = (DEFAULT_PRODUCT,)
    product_table: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    exchange_calendar: str = EXCHANGE_CALENDAR
    # Session clock (DESIGN.md "Sessions and levels").
    session_open: time = time(18, 0)  # previous calendar day when session_opens_previous_day
    session_close: time = time(17, 0)
    session_opens_previous_day: bool = True
    premarket_start: time = time(4, 0)
    rth_open: time = time(9, 30)
    rth_close: time = time(16, 0)  # end of regular hours (the previous session's regular-hours high, low and close)
    opening_range_minutes: int = 15
    anchor_start: time = time(9, 30)
    anchor_end: time = time(12, 30)
    # Bars and indicators.
    base_bar_minutes: int = 1
    level_bar_minutes: int = 2
    atr_period: int = 14
    sma_period: int = 90
    ema_period: int = 20
    warmup_sessions: int = 1
    # Setups and outcomes.
    approach_zone_atr: float = 2.0
    break_atr: float = 1.0
    reject_atr: float = 1.0
    horizon_minutes: int = 16
    # Vector.
    trajectory_minutes: int = 20
    dct_coefficients: int = 8
    kinematic_lags_minutes: tuple[int, ...] = (1, 3, 5, 10, 20)
    stack_thresholds_atr: tuple[float, ...] = (0.5, 1.0, 2.0)
    time_bucket_edges_minutes: tuple[int, ...] = (0, 15, 30, 60, 120, 180)
    # Order flow (trades, top of book, depth, MBO).
    tick_size_points: float = 0.25  # used when the definitions give no min_price_increment
    # Chart blocks of the bars family (silver/chart_features.py): any of "vwap", "ranges", "round_numbers",
    # "level_age", "prior_session", "atr_regime". Off by default: each changes the vector layout, and the sample's ablation decides.
    chart_blocks: tuple[str, ...] = ()
    round_number_handles_points: tuple[float, ...] = (25.0, 50.0, 100.0)  # ES points; scaled by tick_size_points / 0.25
    daily_atr_sessions: int = 14  # atr_regime: sessions in the daily ATR (silver/daily_regime.py)
    atr_regime_sessions: int = 252  # atr_regime: the trailing sessions (a year) the daily ATR is ranked among
    atr_regime_min_sessions: int = 20  # atr_regime: fewer daily ATR values than this leave the rank null
    order_flow_windows_seconds: tuple[int, ...] = (30, 60, 120, 300)
    level_band_ticks: tuple[int, ...] = (4, 8)  # depth / volume "at the level": within +-N ticks
    depth_change_minutes: tuple[int, ...] = (1, 3, 5)
    book_levels: int = 10
    sweep_min_price_levels: int = 3
    sweep_window_ms: int = 100
    decode_chunk_records: int = 500_000  # DBN records decoded per chunk (bounds memory)
    # Dealer gamma from ES 0DTE options (GEX).
    dealer_call_sign: float = 1.0  # dealers long calls (customers sell calls): the common convention
    dealer_put_sign: float = -1.0  # dealers short puts (customers buy puts)
    gex_strike_intervals: tuple[int, ...] = (1, 2, 3)  # bands above/below the level, in strike intervals
    implied_vol_bounds: tuple[float, float] = (0.01, 5.0)  # annualized; outside -> no IV (option skipped)
    options_rate: float = 0.0  # continuously compounded rate for Black-76 discounting
    # Databento download (DATABENTO_API_KEY from the environment or a .env file; never logged).
    download_dataset: str = "GLBX.MDP3"
    download_futures_schemas: tuple[str, ...] = ("definition", "ohlcv-1m")
    download_order_flow_schemas: tuple[str, ...] = ()  # e.g. ("trades", "mbp-10") or ("trades", "mbo")
    download_options: bool = False  # also the 0DTE option roots (definition, statistics, top of book, trades)
    download_options_schemas: tuple[str, ...] = ("definition", "statistics", "bbo-1m", "trades")
    download_spend_cap_usd: float = 5.0  # refuse a product's session download whose metadata.get_cost exceeds this
    download_total_spend_cap_usd: float = 15.0  # refuse a session whose products' downloads together exceed this
    # Normalization, index and retrieval.
    normalization_sessions: int = 60
    # Refit cadence once the trailing window is full: statistics refitted every N sessions (on the model's
    # retrain sessions, so the index is rebuilt on those sessions and extended by one session between).
    # 20 = the cheapest of 5, 10, 20 whose walk-forward score stays inside the 5-session one's interval (issue 19).
    normalization_refit_sessions: int = 20
    robust_z_clip: float = 4.0
    top_k: int = 50
    max_neighbours_per_session: int = 2
    dirichlet_prior_strength: float = 10.0
    # Prior mean of the kNN posterior: "partition_base_rate" (the index partition's outcome mix) or
    # "distance_lookup" (the setup's distance-lookup rate, so the neighbours move the answer away from it;
    # chosen by nested walk-forward on the sample, issue 20: scripts/compare_answers.py --nested).
    knn_prior: str = "distance_lookup"
    # Candidates of the kNN: "partition" (same level kind, direction and time bucket) or "distance_band"
    # (filter-then-rank: also the same |distance| band as the distance lookup's cells, ranked by similarity inside it).
    knn_candidates: str = "partition"
    interval_level: float = 0.90
    approximate_index_min_vectors: int = 200_000
    index_retention_sessions: int = 20
    smoothing_span_anchors: int = 3
    # Distance lookup (the baseline to beat): outcome rate by (level kind, direction, |d| bin).
    distance_bin_atr: float = 0.5
    distance_bins: int = 4
    distance_prior_strength: float = 10.0  # pseudo-setups of the (kind, direction) rate per cell
    # Trailing class mix (a reference): outcome rate by (level kind, direction) over the last W sessions,
    # W chosen among these by the Brier score over the class_mix_select_sessions before the day.
    class_mix_windows: tuple[int, ...] = (5, 10, 20, 40, 60)
    class_mix_select_sessions: int = 20
    # gold_model: XGBoost multi:softprob, trained as of D on sessions before D.
    model_retrain_sessions: int = 20  # cadence: a new model every N sessions, the latest one reused in between (chosen as normalization_refit_sessions)
    model_min_sessions: int = 5  # fewer earlier sessions: no model, the answer is the kNN posterior
    model_max_training_sessions: int = 250  # the model trains on at most this many (the latest) sessions of its window
    xgb_rounds: int = 150
    xgb_max_depth: int = 3
    xgb_learning_rate: float = 0.05
    xgb_min_child_weight: float = 5.0
    xgb_subsample: float = 0.8
    xgb_colsample_bytree: float = 0.8
    xgb_reg_lambda: float = 1.0
    xgb_seed: int = 7
    # Training weights: "anchor" = every anchor counts 1; "approach" = the anchors of one approach share a weight of 1
    # (anchors of an approach overlap and mostly share their outcome, so long approaches would dominate).
    model_sample_weighting: str = "anchor"
    # Learned similarity: "model_gain" weighs each vector dimension by its share of the model's gain; "equal" does not.
    similarity_weighting: str = "model_gain"
    # Multipliers per block of dimensions on top of those weights, e.g. (("distance", 2.0), ("context", 0.5));
    # blocks: distance, trajectory, kinematics, context (the bars family) and tape, book, depth, mbo, gamma.
    similarity_block_weights: tuple[tuple[str, float], ...] = ()
    similarity_dct_coefficients: int = 8  # DCT coefficients of each trajectory that count in the similarity (lowest first)
    # Blend and calibration: calibrate(w * P_xgb + (1 - w) * P_knn), fitted on earlier sessions' signals.
    blend_default_weight: float = 0.5
    blend_min_sessions: int = 3  # earlier sessions with a model needed to fit w and T
    blend_sessions: int = 60  # trailing sessions the blend is fitted on
    calibration: str = "temperature"  # or "temperature_bias": a per-class bias beside the temperature
    # Tuned values: a parameter file whose tuning ended before D overrides the defaults for D.
    tuned_params_file: str = ""  # "" = <home>/params/tuned.json when present
    # Evaluation.
    min_history_sessions: int = 3
    calibration_bins: int = 10
    bootstrap_replicates: int = 1000
    bootstrap_seed: int = 20131007

    @classmethod
    def from_env(cls, **overrides: object) -> "SpymasterConfig":
        """Build the configuration, taking ``home`` from ``SPYMASTER_HOME`` when it is set, then the
        data root's ``config.json`` (:meth:`for_home`), then ``overrides``."""
        if "home" not in overrides and os.environ.get("SPYMASTER_HOME"):
            overrides["home"] = Path(os.environ["SPYMASTER_HOME"])
        base = cls.for_home(Path(overrides.get("home", cls.home)))  # type: ignore[arg-type]
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    @classmethod
    def for_home(cls, home: Path) -> "SpymasterConfig":
        """The configuration of data root ``home``: the defaults, changed by ``<home>/config.json`` when present.

        ``config.json`` is one JSON object of field values (lists for tuples), e.g.
        ``{"model_min_sessions": 3, "top_k": 30}``; the CLI and the Dagster assets both read it, so
        they answer alike. Raises ValueError naming the file for unreadable JSON or an unknown field.
        """
        config = cls(home=Path(home))
        path = Path(home) / CONFIG_FILE
        if not path.is_file():
            return config
        try:
            values = json.loads(path.read_text())
            if not isinstance(values, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable configuration ({exc})") from None
        names = {f.name for f in dataclasses.fields(cls)} - {"home", "product", *_PRODUCT_FIELDS}
        unknown = sorted(set(values) - names)
        if unknown:
            hint = f" (a product's clock, calendar and tick size are set in product_table)" if set(unknown) & set(_PRODUCT_FIELDS) else ""
            raise ValueError(f"{path}: unknown configuration fields {unknown}{hint}")
        overrides = values.pop("product_table", None) or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"{path}: product_table must be a JSON object of product symbol -> fields")
        table = product_table(overrides, source=str(path))
        config = dataclasses.replace(config, **{k: coerce_field(getattr(config, k), v) for k, v in values.items()})
        config = dataclasses.replace(config, product_table=_freeze(overrides))
        for symbol in config.products:
            if symbol not in table:
                raise ValueError(f"{path}: products names {symbol!r}, which the product table lacks (known: {', '.join(sorted(table))})")
        if not config.products:
            raise ValueError(f"{path}: products is empty (name at least one, e.g. [\"ES\"])")
        return config.for_product(config.products[0])

    def serving(self, product: str | None) -> "SpymasterConfig":
        """This configuration serving ``product`` (a CLI ``--product``), which must be one of the data
        root's :attr:`products`; None means the data root's only product.

        Raises SpymasterError listing the data root's products when ``product`` is None and there are
        several, or when ``product`` is not one of them (UnknownProductError when the table lacks it).
        """
        if product is None:
            if len(self.products) > 1:
                raise SpymasterError(f"{Path(self.home) / CONFIG_FILE} configures {len(self.products)} products ({', '.join(self.products)}): choose one with --product")
            return self.for_product(self.products[0])
        symbol = get_product(product, self.products_table).symbol
        if symbol not in self.products:
            raise SpymasterError(
                f"--product {symbol}: not a product of this data root (products: {', '.join(self.products)}); "
                f"add it to \"products\" in {Path(self.home) / CONFIG_FILE}"
            )
        return self.for_product(symbol)

    @property
    def products_table(self) -> dict[str, Product]:
        """The product table of this configuration: the shipped one with ``product_table`` applied."""
        return product_table(_thaw(self.product_table))

    @property
    def spec(self) -> Product:
        """The product this configuration serves (:attr:`product` in :attr:`products_table`)."""
        return get_product(self.product, self.products_table)

    def for_product(self, symbol: str) -> "SpymasterConfig":
        """This configuration serving product ``symbol``: its calendar, session clock, pre-market
        window, regular-hours open (the opening range and the anchor window start there and keep
        their lengths), tick size and dataset from the product table.

        Raises UnknownProductError (listing the known symbols) for a symbol the table lacks.
        """
        spec = get_product(symbol, self.products_table)
        anchor_minutes = _minutes(self.anchor_end) - _minutes(self.anchor_start)
        anchor_offset = _minutes(self.anchor_start) - _minutes(self.rth_open)
        start = _minutes(spec.rth_open) + anchor_offset
        return dataclasses.replace(
            self,
            product=spec.symbol,
            exchange_calendar=spec.calendar,
            session_open=spec.session_open,
            session_close=spec.session_close,
            session_opens_previous_day=spec.session_opens_previous_day,
            premarket_start=spec.premarket_start,
            rth_open=spec.rth_open,
            rth_close=spec.rth_close,
            anchor_start=_clock(start),
            anchor_end=_clock(start + anchor_minutes),
            tick_size_points=spec.tick_size,
            download_dataset=spec.dataset,
        )

    @property
    def raw_dir(self) -> Path:
        """Where Databento DBN files are read from (any names, any split across files)."""
        return Path(self.home) / "raw"

    @property
    def lake_dir(self):
        """Root of the served product's Hive-partitioned Parquet lake: ``lake/<tier>/<table>/date=YYYY-MM-DD/``
        under ``home`` (a :class:`Path`), or at ``lake_url`` (a :class:`upath.UPath` on object storage);
        a product other than ES under ``lake/product=<SYMBOL>/`` (``products.lake_subdir``)."""
        sub = lake_subdir(self.product)
        return self.lake_root / sub if sub else self.lake_root

    @property
    def lake_root(self):
        """The lake of every product: ``home/lake`` or ``lake_url`` (ES's tables at its top, another
        product's under ``product=<SYMBOL>/``)."""
        if not self.lake_url:
            return Path(self.home) / "lake"
        from upath import UPath

        url = UPath(self.lake_url)
        return Path(url.path) if url.protocol in ("", "file", "local") else url

    @property
    def reports_dir(self) -> Path:
        """Where the served product's PNG reports (session charts, reliability diagrams) are written:
        ``home/reports``, for a product other than ES ``home/reports/<SYMBOL>``."""
        root = Path(self.home) / "reports"
        return root if not lake_subdir(self.product) else root / self.product

    @property
    def time_bucket_labels(self) -> tuple[str, ...]:
        """Labels of the time buckets, e.g. ``"0-15"`` (minutes since 09:30)."""
        e = self.time_bucket_edges_minutes
        return tuple(f"{e[i]}-{e[i + 1]}" for i in range(len(e) - 1))

    def as_metadata(self) -> dict[str, str]:
        """The configuration a materialization was built with, in two entries (Dagster stores each
        partition's metadata, so a decade of a dozen assets pays for every entry 30,000 times):
        ``config/digest``, the first 12 hex digits of SHA-256 over every field but ``home`` (the same
        configuration gives the same digest in any data root), and ``config/changed``, the JSON of the
        fields that differ from the product's defaults (``{}`` when none)."""
        return _metadata_of(self)

    def field_strings(self) -> dict[str, str]:
        """Every field (``home`` too) as a string, by name."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}


@functools.lru_cache(maxsize=64)
def _metadata_of(config: SpymasterConfig) -> dict[str, str]:
    fields = {name: value for name, value in config.field_strings().items() if name != "home"}
    try:
        defaults = SpymasterConfig().for_product(config.product).field_strings()
    except SpymasterError:  # a product only this data root's product_table defines
        defaults = SpymasterConfig().field_strings()
    changed = {name: value for name, value in fields.items() if defaults.get(name) != value}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return {"config/digest": digest, "config/changed": json.dumps(changed, sort_keys=True)}


#: Fields set from the product table by :meth:`SpymasterConfig.for_product` (not settable in config.json).
_PRODUCT_FIELDS = (
    "exchange_calendar", "session_open", "session_close", "session_opens_previous_day", "premarket_start", "rth_open",
    "rth_close", "tick_size_points", "download_dataset",
)


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _clock(minutes: int) -> time:
    if not 0 <= minutes < 24 * 60:
        raise ValueError(f"the anchor window runs past midnight ({minutes} minutes)")
    return time(minutes // 60, minutes % 60)


def _freeze(overrides: dict) -> tuple:
    """``product_table`` overrides as nested tuples (the configuration is frozen and hashable)."""
    return tuple((str(k), tuple((str(f), tuple(v) if isinstance(v, list) else v) for f, v in sorted(fields.items()))) for k, fields in sorted(overrides.items()))


def _thaw(frozen: tuple) -> dict:
    return {symbol: {f: list(v) if isinstance(v, tuple) else v for f, v in fields} for symbol, fields in frozen}


def coerce_field(default: object, value: object) -> object:
    """A JSON value as the type of a configuration field's default (lists become tuples, paths paths)."""
    if isinstance(default, tuple):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)  # type: ignore[union-attr]
    if isinstance(default, Path):
        return Path(str(value))
    if isinstance(default, time):
        return time.fromisoformat(str(value))
    return value if default is None else type(default)(value)
