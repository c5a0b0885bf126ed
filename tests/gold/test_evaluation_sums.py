"""Scores added up from per-session sums equal compare_models on the concatenated episodes."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import OUTCOMES
from spymaster_assets.gold.answer import MODEL_PREFIXES
from spymaster_assets.gold.evaluation import compare_models, first_anchors
from spymaster_assets.gold.evaluation_sums import COMPLETE, FIRST_ANCHOR, WITHOUT_XGBOOST, scores_from_sums, session_sums
from spymaster_assets.gold.report import EVALUATION_SUMS, evaluation_sums_up_to, scored_signals
from spymaster_resources import SpymasterResource

MODELS = list(MODEL_PREFIXES)


def _scored(sessions: int, seed: int = 3) -> pl.DataFrame:
    """Random walk-forward signals: every model's probabilities, XGBoost missing on the first two sessions."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(sessions):
        n = int(rng.integers(5, 40))
        data = {
            "session_date": [date(2024, 1, 2) + timedelta(days=s)] * n,
            "level_kind": rng.choice(["PM_HIGH", "OR_LOW", "EMA_20"], n).tolist(),
            "direction": rng.choice(["UP", "DOWN"], n).tolist(),
            "outcome": rng.choice(list(OUTCOMES), n).tolist(),
            "ts_event": [datetime(2024, 1, 2, 14, 30) + timedelta(days=s, minutes=2 * i) for i in range(n)],
            "approach_id": rng.integers(0, 4, n).tolist(),
        }
        for name, prefix in MODEL_PREFIXES.items():
            p = rng.dirichlet([1.0, 1.0, 1.0], n)
            p[::5] = [0.2, 0.3, 0.5]  # on bin edges
            for k, outcome in enumerate(OUTCOMES):
                column = p[:, k].tolist()
                if name == "xgboost" and s < 2:
                    column = [None] * n
                data[f"{prefix}{outcome.lower()}"] = column
        frames.append(pl.DataFrame(data, schema_overrides={c: pl.Float64 for c in data if c.startswith(tuple(MODEL_PREFIXES.values()))}))
    return pl.concat(frames)


def _close(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns or set(a.columns) == set(b.columns)
    for column in b.columns:
        left, right = a[column].to_list(), b[column].to_list()
        if b[column].dtype == pl.Float64:
            np.testing.assert_allclose(np.array(left, dtype=float), np.array(right, dtype=float), rtol=1e-12, atol=1e-12, err_msg=column)
        else:
            assert left == right, column


def _sums(scored: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([session_sums(day, MODEL_PREFIXES, 10) for day in scored.partition_by("session_date", maintain_order=True)])


def test_sums_of_sessions_give_the_scores_of_their_episodes():
    scored = _scored(12)
    sums = _sums(scored)
    table = scores_from_sums(sums, COMPLETE, MODELS, level=0.9, replicates=400, seed=5)
    expected = compare_models(scored, MODEL_PREFIXES, replicates=400, seed=5)
    _close(table.filter(pl.col("level_kind") == "ALL").drop("level_kind", "direction"), expected)
    # Each (level kind, direction) group, on its own sessions.
    for (kind, direction), group in scored.partition_by("level_kind", "direction", as_dict=True).items():
        got = table.filter((pl.col("level_kind") == kind) & (pl.col("direction") == direction)).drop("level_kind", "direction")
        _close(got, compare_models(group, MODEL_PREFIXES, replicates=400, seed=5))
    # Every episode without the XGBoost column (it is absent on the first sessions).
    without = {k: v for k, v in MODEL_PREFIXES.items() if k != "xgboost"}
    got = scores_from_sums(sums, WITHOUT_XGBOOST, list(without), level=0.9, replicates=400, seed=5).drop("level_kind", "direction")
    _close(got, compare_models(scored, without, replicates=400, seed=5))
    assert got["n_episodes"][0] == scored.height > expected["n_episodes"][0]
    # Each approach once, at its first anchor, of the episodes every model answered.
    firsts = first_anchors(scored.drop_nulls("p_xgb_break"))
    got = scores_from_sums(sums, FIRST_ANCHOR, MODELS, level=0.9, replicates=400, seed=5)
    _close(got.filter(pl.col("level_kind") == "ALL").drop("level_kind", "direction"), compare_models(firsts, MODEL_PREFIXES, replicates=400, seed=5))
    assert got["n_episodes"][0] == firsts.height == scored.drop_nulls("p_xgb_break").select("session_date", "level_kind", "approach_id").n_unique()


def test_first_anchors_keeps_the_earliest_anchor_of_each_approach():
    t0 = datetime(2024, 1, 2, 14, 30)
    frame = pl.DataFrame({
        "session_date": [date(2024, 1, 2)] * 5,
        "level_kind": ["PM_HIGH", "PM_HIGH", "PM_HIGH", "OR_LOW", "PM_HIGH"],
        "approach_id": [0, 0, 1, 0, 1],
        "ts_event": [t0 + timedelta(minutes=m) for m in (4, 2, 8, 2, 6)],
    })
    assert first_anchors(frame)["ts_event"].to_list() == [t0 + timedelta(minutes=2), t0 + timedelta(minutes=2), t0 + timedelta(minutes=6)]


def test_sums_refuse_invalid_input():
    scored = _scored(2)
    with pytest.raises(ValueError, match="one session"):
        session_sums(scored, MODEL_PREFIXES, 10)
    day = scored.filter(pl.col("session_date") == scored["session_date"][0])
    broken = day.with_columns(pl.lit(0.9).alias("base_break"))
    with pytest.raises(ValueError, match="sum to 1"):
        session_sums(broken, MODEL_PREFIXES, 10)
    with pytest.raises(ValueError, match="baseline 'distance'"):
        scores_from_sums(_sums(scored), COMPLETE, ["base_rate", "knn"])


def test_materialized_gold_evaluation_equals_scoring_every_episode_again(materialized_home):
    spymaster = SpymasterResource(home=str(materialized_home))
    lake, config = spymaster.lake, spymaster.config
    scored_days = 0
    for day in lake.dates("gold", "gold_evaluation"):
        stored = lake.read("gold", "gold_evaluation", day)
        scored = scored_signals(lake, day, config.min_history_sessions)
        if scored is None:
            assert stored.height == 0 and lake.read("gold", EVALUATION_SUMS, day).height == 0
            continue
        scored_days += 1
        overall = stored.filter((pl.col("scope") == "cumulative") & (pl.col("level_kind") == "ALL"))
        expected = compare_models(scored, MODEL_PREFIXES, bins=config.calibration_bins, level=config.interval_level, replicates=config.bootstrap_replicates, seed=config.bootstrap_seed)
        _close(overall.select(expected.columns), expected)
        approaches = stored.filter((pl.col("scope") == "cumulative_approach") & (pl.col("level_kind") == "ALL"))
        expected = compare_models(first_anchors(scored.drop_nulls("p_xgb_break")), MODEL_PREFIXES, bins=config.calibration_bins, level=config.interval_level, replicates=config.bootstrap_replicates, seed=config.bootstrap_seed)
        _close(approaches.select(expected.columns), expected)
        assert lake.read("gold", EVALUATION_SUMS, day)["session_date"].unique().to_list() == [day]
    assert scored_days >= 2


def _copy_of(materialized_home, home):
    """(lake, config) of a copy of the chain's data root, to change without touching the shared one."""
    shutil.copytree(materialized_home / "lake", home / "lake")
    shutil.copy2(materialized_home / "config.json", home / "config.json")
    spymaster = SpymasterResource(home=str(home))
    return spymaster.lake, spymaster.config


def test_sums_of_a_session_whose_signals_changed_are_computed_again(materialized_home, tmp_path):
    lake, config = _copy_of(materialized_home, tmp_path / "home")
    first, last = lake.dates("gold", "gold_evaluation")[-2:]
    before, _ = evaluation_sums_up_to(lake, last, config)
    # The earlier session's signals are rewritten (every answer now the base rate) without rerunning its evaluation.
    signals = lake.read("gold", "gold_signals", first)
    lake.write("gold", "gold_signals", first, signals.with_columns(p_break=pl.col("base_break"), p_reject=pl.col("base_reject"), p_chop=pl.col("base_chop")))
    after, _ = evaluation_sums_up_to(lake, last, config)
    answer = pl.col("model") == "answer"
    changed = after.filter((pl.col("session_date") == first) & answer)["brier_sum"].to_list()
    base = after.filter((pl.col("session_date") == first) & (pl.col("model") == "base_rate"))["brier_sum"].to_list()
    assert changed == base != before.filter((pl.col("session_date") == first) & answer)["brier_sum"].to_list()
    # The stored sums of that session are untouched (they belong to its own gold_evaluation run), the later session's equal.
    assert lake.read("gold", EVALUATION_SUMS, first).equals(before.filter(pl.col("session_date") == first))
    assert after.filter(pl.col("session_date") == last).equals(before.filter(pl.col("session_date") == last))


def test_sums_carried_session_by_session_equal_sums_added_at_once_bit_for_bit():
    from spymaster_assets.gold.evaluation_sums import cumulative_sums

    scored = _scored(12)
    days = sorted(scored["session_date"].unique().to_list())
    sums = pl.concat([session_sums(scored.filter(pl.col("session_date") == d), MODEL_PREFIXES, 10) for d in days])
    carry = None
    for day in days:  # as the date-order walk does: the previous day's total plus the day's sums
        carry = cumulative_sums(sums.filter(pl.col("session_date") == day), 200, 5, start=carry)
        at_once = cumulative_sums(sums.filter(pl.col("session_date") <= day).sample(fraction=1.0, shuffle=True, seed=1), 200, 5)
        assert carry.scores(COMPLETE, MODELS).equals(at_once.scores(COMPLETE, MODELS)), day
    with pytest.raises(ValueError, match="date order"):
        carry.add(sums.filter(pl.col("session_date") == days[0]))


def test_the_evaluation_carried_through_a_walk_equals_one_computed_afresh(materialized_home):
    from spymaster_assets.gold import report
    from spymaster_assets.gold.assets import evaluation_frame

    spymaster = SpymasterResource(home=str(materialized_home))
    lake, config = spymaster.lake, spymaster.config
    report._RECENT_CUMULATIVE.clear()
    walked = {}
    for day in lake.dates("gold", "gold_evaluation"):
        carry, today = report.cumulative_as_of(lake, day, config)
        walked[day] = evaluation_frame(carry, today, day, config) if carry.sessions else None
    assert sum(frame is not None for frame in walked.values()) >= 2
    for day, frame in walked.items():
        report._RECENT_CUMULATIVE.clear()  # a new process: every eligible session added up again
        carry, today = report.cumulative_as_of(lake, day, config)
        if frame is not None:
            assert evaluation_frame(carry, today, day, config).equals(frame), day
        # and it equals what gold_evaluation stored for the day
        stored = lake.read("gold", "gold_evaluation", day)
        assert stored.equals(frame if frame is not None else stored.clear()), day


def test_the_reliability_table_of_summed_bins_equals_the_one_of_the_episodes():
    from spymaster_assets.gold.evaluation import reliability_table, reliability_table_from_sums
    from spymaster_assets.gold.evaluation_sums import cumulative_sums

    scored = _scored(6)
    days = sorted(scored["session_date"].unique().to_list())
    sums = pl.concat([session_sums(scored.filter(pl.col("session_date") == d), MODEL_PREFIXES, 10) for d in days])
    totals = cumulative_sums(sums, 50, 0).totals[(COMPLETE, "ALL", "ALL", "knn")]
    complete = scored.drop_nulls([c for c in scored.columns if c.startswith(("p_", "base_"))])
    expected = reliability_table(complete.select("p_knn_break", "p_knn_reject", "p_knn_chop").to_numpy(), complete["outcome"].to_numpy(), 10)
    from polars.testing import assert_frame_equal

    assert_frame_equal(reliability_table_from_sums(totals["class_bin_n"], totals["class_bin_p"], totals["class_bin_y"], 10), expected, abs_tol=1e-12)


def test_a_new_process_starts_from_the_latest_valid_checkpoint_and_gets_the_same_evaluation(materialized_home, tmp_path, monkeypatch):
    """Checkpoints of the carried sums (every CHECKPOINT_EVERY scored sessions) spare a new process
    every earlier session's sums; one whose sessions were rebuilt since is not used."""
    import os

    from spymaster_assets.gold import report
    from spymaster_assets.gold.assets import evaluation_frame
    from spymaster_resources.lake import Lake

    home = tmp_path / "home"
    for table in ("gold_signals", "gold_episodes", EVALUATION_SUMS, "gold_evaluation"):
        shutil.copytree(materialized_home / "lake" / "gold" / table, home / "lake" / "gold" / table)
    config = SpymasterResource(home=str(materialized_home)).config
    lake = Lake(home / "lake")
    monkeypatch.setattr(report, "CHECKPOINT_EVERY", 1)  # the chain has two scored sessions
    report._RECENT_CUMULATIVE.clear()
    walked, saved = {}, []
    for day in lake.dates("gold", "gold_evaluation"):
        carry, today = report.cumulative_as_of(lake, day, config)
        walked[day] = evaluation_frame(carry, today, day, config) if carry.sessions else None
        saved.append(report.save_checkpoint(lake, day, carry))
    scored = [day for day, frame in walked.items() if frame is not None]
    checkpoints = [p for p in saved if p is not None]
    assert len(scored) >= 2 and len(checkpoints) == len(scored)
    read: list[date] = []
    real = report._session_sums
    monkeypatch.setattr(report, "_session_sums", lambda lk, d, cfg: read.append(d) or real(lk, d, cfg))

    def afresh(day):
        report._RECENT_CUMULATIVE.clear()  # a new process
        read.clear()
        carry, today = report.cumulative_as_of(lake, day, config)
        return evaluation_frame(carry, today, day, config)

    last = scored[-1]
    assert afresh(last).equals(walked[last]) and read == [last]  # the previous session's checkpoint plus the day
    # The first scored session's signals rebuilt: no checkpoint holds that history any more.
    signals = lake.partition_path("gold", "gold_signals", scored[0])
    os.utime(signals, ns=(signals.stat().st_atime_ns, signals.stat().st_mtime_ns + 1_000_000))
    assert afresh(last).equals(walked[last]) and read == scored


def test_signals_of_an_earlier_version_get_an_error_that_says_to_rebuild(materialized_home, tmp_path):
    """A lake whose earlier gold_signals lack the references (written before them) cannot be scored
    beside today's: the evaluation says which session and the command that rebuilds, not a bare missing column."""
    from spymaster_core.errors import SpymasterError

    lake, config = _copy_of(materialized_home, tmp_path / "home")
    first, last = lake.dates("gold", "gold_evaluation")[-2:]
    old = lake.read("gold", "gold_signals", first).drop(pl.selectors.starts_with("p_mix_", "p_distcal_"))
    lake.write("gold", "gold_signals", first, old)
    with pytest.raises(SpymasterError, match=rf"gold_signals of {first} was written by an earlier version .*p_mix_\*, p_distcal_\*.*--rebuild"):
        evaluation_sums_up_to(lake, last, config)
