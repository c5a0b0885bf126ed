"""The honest references: the trailing class mix, the calibrated distance lookup, the blend at T = 1, the best baseline."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from spymaster_assets.gold import as_of
from spymaster_assets.gold.blend import fit_temperature, temper
from spymaster_assets.gold.class_mix import GROUPS, class_mix_probabilities, counts_before, fit_class_mix, session_counts
from spymaster_assets.gold.evaluation import compare_models, multiclass_brier
from spymaster_core.config import OUTCOMES, SpymasterConfig
from spymaster_resources import SpymasterResource

from tests.conftest import CHAIN_SESSIONS

G = GROUPS.index(("PM_HIGH", "UP"))


def _counts(per_session: list[tuple[int, int, int]]) -> np.ndarray:
    """Counts of one group (PM_HIGH UP) per session, every other group empty."""
    counts = np.zeros((len(per_session), len(GROUPS), 3), dtype=np.int64)
    counts[:, G] = per_session
    return counts


def test_the_class_mix_is_the_add_one_rate_of_the_chosen_window():
    config = SpymasterConfig(class_mix_windows=(1, 3), class_mix_select_sessions=2)
    table = fit_class_mix(_counts([(10, 0, 0), (0, 10, 0), (0, 10, 0), (0, 10, 0)]), config)
    row = table.filter((pl.col("level_kind") == "PM_HIGH") & (pl.col("direction") == "UP")).row(0, named=True)
    # Sessions 3 and 4 scored: the last session alone (all REJECT) forecasts them better than the last 3.
    assert row["window_sessions"] == 1
    assert (row["rate_break"], row["rate_reject"], row["rate_chop"]) == pytest.approx((1 / 13, 11 / 13, 1 / 13))
    assert row["n_episodes"] == 10
    # A regime that alternates: the longer window wins.
    table = fit_class_mix(_counts([(10, 0, 0), (0, 10, 0), (10, 0, 0), (0, 10, 0), (10, 0, 0)]), config)
    assert table["window_sessions"][0] == 3


def test_the_class_mix_choice_brier_equals_the_brier_of_its_episodes():
    """The window is chosen by sum ||p - e||^2 computed from counts; check that closed form on episodes."""
    p = np.array([0.2, 0.5, 0.3])
    n = np.array([3, 5, 2])
    labels = np.repeat(np.arange(3), n)
    episodes_brier = multiclass_brier(np.tile(p, (n.sum(), 1)), labels) * n.sum()
    assert n.sum() * (p**2).sum() - 2 * p @ n + n.sum() == pytest.approx(episodes_brier)


def test_the_class_mix_without_history_is_uniform_and_an_unknown_group_is_refused():
    config = SpymasterConfig()
    table = fit_class_mix(np.zeros((0, len(GROUPS), 3), dtype=np.int64), config)
    assert np.allclose(class_mix_probabilities(table, ["OR_LOW"], ["DOWN"]), 1 / 3)
    with pytest.raises(ValueError, match="unknown group"):
        session_counts(pl.DataFrame({"level_kind": ["VWAP"], "direction": ["UP"], "outcome": ["BREAK"]}))
    with pytest.raises(ValueError, match="must be"):
        fit_class_mix(np.zeros((2, 3)), config)


def test_counts_before_reads_only_sessions_before_the_day():
    config = SpymasterConfig(class_mix_windows=(2,), class_mix_select_sessions=1)
    days = [date(2024, 1, d) for d in (2, 3, 4, 5)]
    episodes = pl.DataFrame({"session_date": days, "level_kind": ["PM_HIGH"] * 4, "direction": ["UP"] * 4, "outcome": list(OUTCOMES) + ["BREAK"]})
    counts = counts_before(episodes, days, days[3], config)
    assert counts.shape == (3, len(GROUPS), 3)  # the trailing 2 + 1 sessions before Jan 5
    assert counts[:, G].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_the_class_mix_as_of_a_day_does_not_move_when_a_later_session_changes(materialized_home, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(materialized_home, home)
    spymaster = SpymasterResource(home=str(home))
    lake, config = spymaster.lake, spymaster.config
    day = CHAIN_SESSIONS[3]
    before = as_of.class_mix_as_of(lake, day, config)
    # Counted session by session (and kept for the next day) as from every earlier episode at once.
    earlier = lake.read_many("gold", "gold_episodes", CHAIN_SESSIONS[:3])
    assert before.equals(fit_class_mix(counts_before(earlier, CHAIN_SESSIONS, day, config), config))
    for later in CHAIN_SESSIONS[3:]:  # the day itself and after: every outcome flipped to CHOP
        episodes = lake.read("gold", "gold_episodes", later)
        lake.write("gold", "gold_episodes", later, episodes.with_columns(outcome=pl.lit("CHOP")))
    assert as_of.class_mix_as_of(lake, day, config).equals(before)
    assert not as_of.class_mix_as_of(lake, CHAIN_SESSIONS[4], config).equals(as_of.class_mix_as_of(SpymasterResource(home=str(materialized_home)).lake, CHAIN_SESSIONS[4], config))


def test_fit_temperature_recovers_the_temperature_that_calibrates_overconfident_forecasts():
    rng = np.random.default_rng(3)
    truth = rng.dirichlet([2.0, 2.0, 2.0], size=20_000)
    labels = np.array([rng.choice(3, p=p) for p in truth])
    overconfident = temper(truth, 0.5)  # softmax(2 log p): sharper than the truth
    assert fit_temperature(overconfident, labels, n_sessions=10, min_sessions=3) == pytest.approx(2.0, rel=0.08)
    assert fit_temperature(overconfident, labels, n_sessions=2, min_sessions=3) == 1.0  # too few sessions: not fitted


def test_gold_signals_carry_the_references_and_the_blend_at_t1(materialized_home):
    lake = SpymasterResource(home=str(materialized_home)).lake
    signals = pl.concat([lake.read("gold", "gold_signals", d) for d in CHAIN_SESSIONS])
    for prefix in ("p_mix_", "p_distcal_", "p_t1_"):
        p = signals.select([f"{prefix}{o.lower()}" for o in OUTCOMES]).to_numpy()
        assert np.allclose(p.sum(axis=1), 1.0), prefix
    fitted = signals.filter(pl.col("answer_source") == "blend")
    assert fitted.height, "the chain fits the blend on its last session"
    row = fitted.row(0, named=True)
    mixed = row["blend_weight"] * np.array([row[f"p_xgb_{c}"] for c in ("break", "reject", "chop")]) + (1 - row["blend_weight"]) * np.array([row[f"p_knn_{c}"] for c in ("break", "reject", "chop")])
    assert np.allclose([row[f"p_t1_{c}"] for c in ("break", "reject", "chop")], mixed / mixed.sum())
    assert np.allclose([row[f"p_{c}"] for c in ("break", "reject", "chop")], temper(mixed[None, :], row["temperature"])[0])
    early = signals.filter(pl.col("answer_source") == "knn")
    assert np.allclose(early.select("p_t1_break", "p_t1_reject", "p_t1_chop").to_numpy(), early.select("p_knn_break", "p_knn_reject", "p_knn_chop").to_numpy())


def test_the_best_baseline_is_the_reference_with_the_lowest_brier():
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.choice(list(OUTCOMES), size=n, p=[0.6, 0.3, 0.1])
    good = np.tile([0.6, 0.3, 0.1], (n, 1))
    flat = np.full((n, 3), 1 / 3)
    frame = pl.DataFrame({"session_date": [date(2024, 1, 2 + i % 10) for i in range(n)], "outcome": labels})
    for prefix, p in (("base_", flat), ("p_mix_", good), ("p_dist_", flat), ("p_", good)):
        frame = frame.with_columns(**{f"{prefix}{o.lower()}": p[:, j] for j, o in enumerate(OUTCOMES)})
    table = compare_models(frame, {"base_rate": "base_", "class_mix": "p_mix_", "distance": "p_dist_", "answer": "p_"}, replicates=200)
    assert set(table["best_baseline"]) == {"class_mix"}
    answer = table.filter(pl.col("model") == "answer").row(0, named=True)
    assert answer["bss_best"] == pytest.approx(0.0)
    assert answer["bss_base"] > 0.05


@pytest.mark.parametrize(("column", "value"), [("p_mix_break", 1.5), ("p_t1_chop", -0.1), ("base_reject", 0.0), ("p_xgb_break", float("nan"))])
def test_gold_signals_validation_refuses_a_probability_outside_its_range(materialized_home, column, value):
    from pandera.errors import SchemaError

    from spymaster_assets.gold.schemas import validate_signals

    lake = SpymasterResource(home=str(materialized_home)).lake
    signals = lake.read("gold", "gold_signals", CHAIN_SESSIONS[-1])
    validate_signals(signals, SpymasterConfig())
    with pytest.raises(SchemaError, match="probabilities_in_unit_interval"):
        validate_signals(signals.with_columns(pl.lit(value).alias(column)), SpymasterConfig())
