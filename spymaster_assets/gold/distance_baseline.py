"""The distance lookup: outcome rate by (level kind, direction, |distance_atr| bin), the baseline to beat.

DESIGN.md "Evaluation": distance alone carries most of the easy information (a setup 1.9 ATR away
needs 2.9 ATR to break and 1 ATR to reject), so an answer that does not beat this lookup adds
nothing a trader could not read off the chart.

Model, fitted on earlier sessions only: for each cell c = (level_kind, direction, bin), with
bin = floor(|distance_atr| / ``distance_bin_atr``) capped at ``distance_bins - 1`` (so 0.5-ATR bins
over the 2-ATR approach zone by default), the outcome probabilities are the posterior mean of a
Dirichlet-multinomial with prior mean the (level_kind, direction) rate (add-one smoothed) and prior
strength s = ``distance_prior_strength`` pseudo-setups:
``p_k = (n_ck + s * q_k) / (n_c + s)`` (Gelman et al., *Bayesian Data Analysis*, 3rd ed., 3.4).
A cell with no history is its (kind, direction) rate; a (kind, direction) with no history is uniform.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from spymaster_core.config import OUTCOMES, SpymasterConfig

#: Columns of a fitted lookup table (one row per cell seen in history, plus the coarser prior rows).
DISTANCE_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "level_kind": pl.String(),
    "direction": pl.String(),
    "distance_bin": pl.Int32(),  # -1 = the (kind, direction) prior row
    "n_episodes": pl.Int64(),
    **{f"rate_{o.lower()}": pl.Float64() for o in OUTCOMES},
}
_RATES = [f"rate_{o.lower()}" for o in OUTCOMES]
_PRIOR_BIN = -1


def distance_bin_expr(config: SpymasterConfig) -> pl.Expr:
    """Polars expression: the |distance_atr| bin of each row (Int32, 0 .. distance_bins - 1)."""
    raw = (pl.col("distance_atr").abs() / config.distance_bin_atr).floor().cast(pl.Int32)
    return pl.min_horizontal(raw, pl.lit(config.distance_bins - 1, dtype=pl.Int32)).alias("distance_bin")


def distance_bins(distances_atr, bin_atr: float, n_bins: int) -> np.ndarray:
    """The |distance| bin of each distance in ATR: ``min(floor(|d| / bin_atr), n_bins - 1)`` (int64, the
    last bin open), as :func:`distance_bin_expr`; the lookup's cells and the kNN's distance band share it."""
    raw = np.floor(np.abs(np.asarray(distances_atr, dtype=np.float64)) / bin_atr).astype(np.int64)
    return np.minimum(raw, n_bins - 1)


#: Columns of the lookup's sufficient statistics: outcome counts per cell (exact integers, so the
#: counts of many sessions add up to those of their episodes together, in any order).
DISTANCE_COUNTS_SCHEMA: dict[str, pl.DataType] = {
    "level_kind": pl.String(),
    "direction": pl.String(),
    "distance_bin": pl.Int32(),
    **{f"n_{o.lower()}": pl.Int64() for o in OUTCOMES},
}
_COUNTS = [f"n_{o.lower()}" for o in OUTCOMES]


def distance_counts(history: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Outcome counts per (level_kind, direction, distance bin) of episodes (columns level_kind,
    direction, distance_atr, outcome): :data:`DISTANCE_COUNTS_SCHEMA`, sorted by cell.

    Raises ValueError if an outcome is not one of OUTCOMES or a distance is not finite.
    """
    if history.height == 0:
        return pl.DataFrame(schema=DISTANCE_COUNTS_SCHEMA)
    bad = set(history["outcome"].unique().to_list()) - set(OUTCOMES)
    if bad:
        raise ValueError(f"unknown outcome labels {sorted(map(str, bad))}; expected one of {OUTCOMES}")
    if not history["distance_atr"].is_finite().all():
        raise ValueError("distance_atr has null or non-finite values: the distance lookup needs every episode's distance")
    onehot = [(pl.col("outcome") == o).cast(pl.Int64).alias(f"n_{o.lower()}") for o in OUTCOMES]
    frame = history.select("level_kind", "direction", distance_bin_expr(config), *onehot)
    return frame.group_by("level_kind", "direction", "distance_bin").agg(pl.col(_COUNTS).sum()).sort("level_kind", "direction", "distance_bin")


def fit_distance_table(history: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """Fit the lookup on history episodes (columns level_kind, direction, distance_atr, outcome).

    Returns a frame of :data:`DISTANCE_TABLE_SCHEMA`: one prior row per (level_kind, direction)
    seen (distance_bin = -1, add-one smoothed rates) and one row per seen cell with its smoothed
    rates (formula in the module docstring). The caller passes sessions before D only.
    Raises ValueError if an outcome is not one of OUTCOMES or a distance is not finite.
    """
    return distance_table_from_counts(distance_counts(history, config), config)


def distance_table_from_counts(cells: pl.DataFrame, config: SpymasterConfig) -> pl.DataFrame:
    """The lookup table (:data:`DISTANCE_TABLE_SCHEMA`) from its cells' outcome counts (:func:`distance_counts`)."""
    if cells.height == 0:
        return pl.DataFrame(schema=DISTANCE_TABLE_SCHEMA)
    counts = _COUNTS
    prior = cells.group_by("level_kind", "direction").agg(pl.col(counts).sum())
    total = pl.sum_horizontal(counts)
    prior = prior.with_columns(
        pl.lit(_PRIOR_BIN, dtype=pl.Int32).alias("distance_bin"),
        total.alias("n_episodes"),
        *[((pl.col(c) + 1.0) / (total + len(OUTCOMES))).alias(r) for c, r in zip(counts, _RATES)],
    )
    s = float(config.distance_prior_strength)
    cells = cells.join(prior.select("level_kind", "direction", *[pl.col(r).alias(f"q_{r}") for r in _RATES]), on=["level_kind", "direction"])
    cell_total = pl.sum_horizontal(counts)
    cells = cells.with_columns(
        cell_total.alias("n_episodes"),
        *[((pl.col(c) + s * pl.col(f"q_{r}")) / (cell_total + s)).alias(r) for c, r in zip(counts, _RATES)],
    )
    columns = list(DISTANCE_TABLE_SCHEMA)
    return (
        pl.concat([prior.select(columns), cells.select(columns)])
        .select([pl.col(n).cast(t) for n, t in DISTANCE_TABLE_SCHEMA.items()])
        .sort("level_kind", "direction", "distance_bin")
    )


class DistanceLookup:
    """A fitted lookup table as a dictionary, for answering many setups or one live setup fast.

    ``probabilities(level_kinds, directions, distances_atr)`` -> float64 (n, 3) in OUTCOMES order:
    the cell's rates when the cell was seen, else the (kind, direction) prior row, else uniform.
    """

    def __init__(self, table: pl.DataFrame, config: SpymasterConfig):
        self.config = config
        self._rates = {
            (kind, direction, int(b)): np.array(rates, dtype=np.float64)
            for kind, direction, b, *rates in table.select("level_kind", "direction", "distance_bin", *_RATES).iter_rows()
        }
        self._uniform = np.full(len(OUTCOMES), 1.0 / len(OUTCOMES))

    def bins(self, distances_atr: np.ndarray) -> np.ndarray:
        """The |distance| bin of each distance (int, 0 .. distance_bins - 1), as :func:`distance_bin_expr`."""
        return distance_bins(distances_atr, self.config.distance_bin_atr, self.config.distance_bins)

    def probabilities(self, level_kinds, directions, distances_atr) -> np.ndarray:
        out = np.empty((len(level_kinds), len(OUTCOMES)))
        for i, (kind, direction, b) in enumerate(zip(level_kinds, directions, self.bins(distances_atr).tolist())):
            found = self._rates.get((kind, direction, b))
            if found is None:
                found = self._rates.get((kind, direction, _PRIOR_BIN), self._uniform)
            out[i] = found
        return out


def distance_probabilities(episodes: pl.DataFrame, table: pl.DataFrame, config: SpymasterConfig) -> np.ndarray:
    """Lookup probabilities of ``episodes`` (level_kind, direction, distance_atr): float64 (n, 3) in OUTCOMES order.

    The cell's rates when the cell was seen, else the (kind, direction) prior row, else uniform
    (:class:`DistanceLookup`).
    """
    return DistanceLookup(table, config).probabilities(
        episodes["level_kind"].to_list(), episodes["direction"].to_list(), episodes["distance_atr"].to_numpy()
    )
