"""Hand-worked tests of the walk-forward scores, calibration and the reliability PNG."""

from __future__ import annotations

import base64
import math
from datetime import date

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from spymaster_core.config import OUTCOMES
from spymaster_assets.gold.evaluation import (
    brier_skill_score,
    evaluate,
    evaluate_by,
    expected_calibration_error,
    log_loss,
    multiclass_brier,
    png_to_markdown,
    reliability_diagram_png,
    reliability_table,
    replicate_skill_interval,
    top_label_ece,
)

BREAK, REJECT, CHOP = 0, 1, 2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Two samples used in several tests.
#   sample 1: p = (0.7, 0.2, 0.1), outcome BREAK
#   sample 2: p = (0.5, 0.3, 0.2), outcome CHOP
TWO_PROBS = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
TWO_LABELS = np.array([BREAK, CHOP])


# ------------------------------------------------------------------ Brier


def test_brier_of_perfect_forecast_is_zero():
    labels = np.array([BREAK, REJECT, CHOP, CHOP])
    assert multiclass_brier(np.eye(3)[labels], labels) == 0.0


def test_brier_of_uniform_forecast_is_two_thirds():
    # Per sample: (1/3 - 1)^2 + 2 * (1/3)^2 = 4/9 + 2/9 = 2/3, whatever happened.
    labels = np.array([BREAK, REJECT, CHOP, BREAK, BREAK])
    assert multiclass_brier(np.full((5, 3), 1 / 3), labels) == pytest.approx(2 / 3)


def test_brier_two_sample_hand_example_and_string_labels():
    # sample 1: (0.7-1)^2 + 0.2^2 + 0.1^2 = 0.09 + 0.04 + 0.01 = 0.14
    # sample 2: 0.5^2 + 0.3^2 + (0.2-1)^2 = 0.25 + 0.09 + 0.64 = 0.98
    # mean = (0.14 + 0.98) / 2 = 0.56
    assert multiclass_brier(TWO_PROBS, TWO_LABELS) == pytest.approx(0.56)
    assert multiclass_brier(TWO_PROBS, ["BREAK", "CHOP"]) == pytest.approx(0.56)


def test_brier_of_certain_miss_is_two():
    assert multiclass_brier(np.array([[1.0, 0.0, 0.0]]), np.array([REJECT])) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.empty((0, 3)), np.array([], dtype=np.int64), "empty"),
        (np.array([[0.5, 0.5]]), np.array([0]), "shape"),
        (np.array([[0.5, 0.3, 0.1]]), np.array([0]), "sum to 1"),
        (np.array([[0.5, 0.5, 0.0]]), np.array(["UP"]), "not outcomes"),
        (np.array([[0.5, 0.5, 0.0]]), np.array([3]), "label indices"),
        (np.array([[np.nan, 0.5, 0.5]]), np.array([0]), "NaN"),
    ],
)
def test_invalid_inputs_raise(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        multiclass_brier(probs, labels)


# ------------------------------------------------------------------ Brier skill score


def test_bss_of_base_itself_is_zero():
    base = np.array([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    assert brier_skill_score(base, base, np.array([BREAK, CHOP, REJECT])) == pytest.approx(0.0)


def test_bss_hand_example_against_uniform_reference():
    # BS(model) = 0.56 (see above), BS(uniform) = 2/3  ->  BSS = 1 - 0.56 / (2/3) = 1 - 0.84 = 0.16
    uniform = np.full((2, 3), 1 / 3)
    assert brier_skill_score(TWO_PROBS, uniform, TWO_LABELS) == pytest.approx(0.16)
    # Swapping roles: 1 - (2/3) / 0.56 is negative: the uniform forecast is worse than the model.
    assert brier_skill_score(uniform, TWO_PROBS, TWO_LABELS) == pytest.approx(1 - (2 / 3) / 0.56)


def test_bss_is_nan_with_reason_when_reference_is_perfect():
    labels = np.array([BREAK, CHOP])
    with pytest.warns(RuntimeWarning, match="reference Brier score is 0"):
        assert math.isnan(brier_skill_score(TWO_PROBS, np.eye(3)[labels], labels))


# ------------------------------------------------------------------ log loss


def test_log_loss_hand_example():
    # True-class probabilities 0.7 and 0.2: -(ln 0.7 + ln 0.2) / 2 = (0.356675 + 1.609438) / 2 = 0.983056
    assert log_loss(TWO_PROBS, TWO_LABELS) == pytest.approx((-math.log(0.7) - math.log(0.2)) / 2)
    assert log_loss(TWO_PROBS, TWO_LABELS) == pytest.approx(0.983056, abs=1e-6)


def test_log_loss_clips_a_certain_miss():
    assert log_loss(np.array([[1.0, 0.0, 0.0]]), np.array([CHOP]), eps=1e-15) == pytest.approx(-math.log(1e-15))


# ------------------------------------------------------------------ calibration


def test_ece_zero_on_perfectly_calibrated_set():
    # Group A: 10 samples at (0.3, 0.5, 0.2) with 3 BREAK, 5 REJECT, 2 CHOP -> frequencies equal probabilities.
    # Group B: 4 samples at (0.75, 0.0, 0.25) with 3 BREAK, 1 CHOP.
    # CHOP's 0.2 and 0.25 share bin [0.2, 0.3): mean p = (10*0.2 + 4*0.25)/14 = 3/14, frequency (2+1)/14 = 3/14.
    probs = np.array([[0.3, 0.5, 0.2]] * 10 + [[0.75, 0.0, 0.25]] * 4)
    labels = np.array([BREAK] * 3 + [REJECT] * 5 + [CHOP] * 2 + [BREAK] * 3 + [CHOP])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_single_bin_miscalibration_hand_value():
    # 4 samples at (0.8, 0.1, 0.1); outcomes 2 BREAK, 2 REJECT.
    # BREAK: |0.5 - 0.8| = 0.3; REJECT: |0.5 - 0.1| = 0.4; CHOP: |0 - 0.1| = 0.1 -> ECE = 0.8 / 3.
    # Top label: confidence 0.8, BREAK right in 2 of 4 -> |0.5 - 0.8| = 0.3.
    probs = np.array([[0.8, 0.1, 0.1]] * 4)
    labels = np.array([BREAK, BREAK, REJECT, REJECT])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.8 / 3)
    assert top_label_ece(probs, labels) == pytest.approx(0.3)


def test_ece_two_bins_hand_value():
    # A: (0.9, 0.05, 0.05) outcome REJECT; B: (0.2, 0.4, 0.4) outcome REJECT. Each bin holds one sample (weight 1/2).
    # BREAK : bins 9 and 2 -> (|0 - 0.9| + |0 - 0.2|) / 2   = 0.55
    # REJECT: bins 0 and 4 -> (|1 - 0.05| + |1 - 0.4|) / 2  = 0.775
    # CHOP  : bins 0 and 4 -> (|0 - 0.05| + |0 - 0.4|) / 2  = 0.225
    # classwise ECE = (0.55 + 0.775 + 0.225) / 3 = 1.55 / 3
    # Top label: A conf 0.9 predicts BREAK (wrong) -> 0.9; B conf 0.4, tie goes to REJECT (right) -> 0.6; (0.9+0.6)/2
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.4, 0.4]])
    labels = np.array([REJECT, REJECT])
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(1.55 / 3)
    assert top_label_ece(probs, labels, bins=10) == pytest.approx(0.75)


def test_ece_single_bin_equals_gap_of_means():
    # With one bin the classwise ECE is the mean over classes of |mean(y_k) - mean(p_k)|.
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.4, 0.4]])
    labels = np.array([REJECT, REJECT])
    expected = (abs(0 - 0.55) + abs(1 - 0.225) + abs(0 - 0.225)) / 3
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(expected)


def test_reliability_table_bins_and_edges():
    # p = 1.0 must land in the last bin [0.9, 1.0], p = 0.5 in [0.5, 0.6).
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.25, 0.25]])
    labels = np.array([BREAK, REJECT, BREAK])
    table = reliability_table(probs, labels, bins=10)
    assert table.columns == ["class", "bin_lo", "bin_hi", "n", "mean_predicted", "observed_frequency"]
    assert table.height == 3 * 10
    assert table.group_by("class").agg(pl.col("n").sum()).sort("class")["n"].to_list() == [3, 3, 3]

    brk = table.filter(pl.col("class") == "BREAK").sort("bin_lo")
    last = brk.row(9, named=True)
    assert (last["bin_lo"], last["bin_hi"], last["n"]) == (pytest.approx(0.9), pytest.approx(1.0), 1)
    assert last["mean_predicted"] == pytest.approx(1.0) and last["observed_frequency"] == pytest.approx(1.0)
    mid = brk.row(5, named=True)  # two samples at 0.5: one BREAK, one REJECT
    assert mid["n"] == 2 and mid["mean_predicted"] == pytest.approx(0.5) and mid["observed_frequency"] == pytest.approx(0.5)
    empty = brk.row(0, named=True)
    assert empty["n"] == 0 and empty["mean_predicted"] is None and empty["observed_frequency"] is None


# ------------------------------------------------------------------ PNG


def test_reliability_png_written_and_markdown(tmp_path):
    rng = np.random.default_rng(7)
    probs = rng.dirichlet([2.0, 2.0, 2.0], size=200)
    labels = rng.integers(0, 3, size=200)
    out = reliability_diagram_png(probs, labels, tmp_path / "reports" / "rel.png", title="walk-forward")
    assert out == tmp_path / "reports" / "rel.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert [p.name for p in out.parent.iterdir()] == ["rel.png"]  # no temporary file left behind

    md = png_to_markdown(out, title="Reliability")
    prefix = "![Reliability](data:image/png;base64,"
    assert md.startswith(prefix) and md.endswith(")")
    assert base64.b64decode(md[len(prefix) : -1]) == data


def test_failed_png_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "rel.png"
    target.write_bytes(b"previous report")

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(PNG_MAGIC + b"half")  # a partial image, then the disk "fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="No space"):
        reliability_diagram_png(TWO_PROBS, TWO_LABELS, target, title="t")
    assert target.read_bytes() == b"previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["rel.png"]


def test_png_to_markdown_rejects_non_png(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a PNG"):
        png_to_markdown(f)


# ------------------------------------------------------------------ evaluate


def _scored(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "session_date": pl.Date,
            "level_kind": pl.String,
            "direction": pl.String,
            "p_break": pl.Float64,
            "p_reject": pl.Float64,
            "p_chop": pl.Float64,
            "base_break": pl.Float64,
            "base_reject": pl.Float64,
            "base_chop": pl.Float64,
            "outcome": pl.String,
        },
        orient="row",
    )


D1, D2 = date(2024, 3, 4), date(2024, 3, 5)
U = 1 / 3
# Model = the two-sample example (Brier 0.56), base = uniform (Brier 2/3), plus one PM_LOW row.
#   row 3: model (0.2, 0.6, 0.2) outcome REJECT: 0.04 + 0.16 + 0.04 = 0.24; base 2/3.
SCORED = _scored(
    [
        (D1, "PM_HIGH", "UP", 0.7, 0.2, 0.1, U, U, U, "BREAK"),
        (D1, "PM_HIGH", "UP", 0.5, 0.3, 0.2, U, U, U, "CHOP"),
        (D2, "PM_LOW", "DOWN", 0.2, 0.6, 0.2, U, U, U, "REJECT"),
    ]
)

EVALUATE_KEYS = {
    "n_episodes",
    "n_sessions",
    "brier",
    "brier_base",
    "brier_skill_score",
    "log_loss",
    "log_loss_base",
    "ece",
    "top_label_ece",
    "accuracy",
    "base_accuracy",
    "beats_base_rate",
}


def test_evaluate_keys_and_hand_values():
    result = evaluate(SCORED)
    assert set(result) == EVALUATE_KEYS
    assert result["n_episodes"] == 3 and result["n_sessions"] == 2
    # brier = (0.14 + 0.98 + 0.24) / 3 = 1.36 / 3; base = 2/3; BSS = 1 - (1.36/3) / (2/3) = 1 - 0.68 = 0.32
    assert result["brier"] == pytest.approx(1.36 / 3)
    assert result["brier_base"] == pytest.approx(2 / 3)
    assert result["brier_skill_score"] == pytest.approx(0.32)
    assert result["log_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.2) + math.log(0.6)) / 3)
    assert result["log_loss_base"] == pytest.approx(math.log(3))
    # argmax: BREAK (right), BREAK (wrong, was CHOP), REJECT (right) -> 2/3; base ties pick BREAK -> 1/3
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["base_accuracy"] == pytest.approx(1 / 3)
    assert result["beats_base_rate"] is True


def test_evaluate_reports_not_beating_the_base_rate():
    # Swap model and base: the uniform forecast now plays the model and loses to the base rate.
    swapped = SCORED.with_columns(
        p_break=pl.col("base_break"), p_reject=pl.col("base_reject"), p_chop=pl.col("base_chop"),
        base_break=pl.col("p_break"), base_reject=pl.col("p_reject"), base_chop=pl.col("p_chop"),
    )
    result = evaluate(swapped)
    assert result["brier_skill_score"] < 0
    assert result["beats_base_rate"] is False

    # Model identical to the base rate: BSS = 0, which is not beating it.
    same = SCORED.with_columns(p_break=pl.lit(U), p_reject=pl.lit(U), p_chop=pl.lit(U))
    assert evaluate(same)["beats_base_rate"] is False


def test_evaluate_empty_and_malformed_input_raise():
    with pytest.raises(ValueError, match="empty"):
        evaluate(SCORED.clear())
    with pytest.raises(ValueError, match="lacks columns"):
        evaluate(SCORED.drop("base_chop"))
    with pytest.raises(ValueError, match="not outcomes"):
        evaluate(SCORED.with_columns(outcome=pl.lit("SIDEWAYS")))
    with pytest.raises(ValueError, match="nulls"):
        evaluate(SCORED.with_columns(p_chop=pl.when(pl.col("outcome") == "CHOP").then(None).otherwise(pl.col("p_chop"))))


def test_evaluate_by_groups():
    table = evaluate_by(SCORED)
    assert table.columns[:2] == ["level_kind", "direction"]
    assert set(table.columns[2:]) == EVALUATE_KEYS
    assert table.select("level_kind", "direction").rows() == [("PM_HIGH", "UP"), ("PM_LOW", "DOWN")]
    high = table.row(0, named=True)
    assert high["n_episodes"] == 2 and high["n_sessions"] == 1
    assert high["brier"] == pytest.approx(0.56) and high["brier_skill_score"] == pytest.approx(0.16)
    low = table.row(1, named=True)
    # 0.24 vs 2/3 -> BSS = 1 - 0.36 = 0.64
    assert low["brier"] == pytest.approx(0.24) and low["brier_skill_score"] == pytest.approx(0.64)
    assert table["beats_base_rate"].to_list() == [True, True]
    assert table.schema["beats_base_rate"] == pl.Boolean and table.schema["n_episodes"] == pl.Int64
    with pytest.raises(ValueError, match="empty"):
        evaluate_by(SCORED.clear())


def test_outcome_order_matches_config():
    # The probability columns are read in OUTCOMES order; the hand examples above rely on it.
    assert OUTCOMES == ("BREAK", "REJECT", "CHOP")


# --------------------------------------------------------------------------------------------------
# Session bootstrap and the comparison of every model
# --------------------------------------------------------------------------------------------------

from spymaster_assets.gold.evaluation import compare_models, format_comparison, session_bootstrap_skill  # noqa: E402


def test_bootstrap_of_sessions_with_one_skill_is_that_skill():
    # Every session: the model's Brier sum is 80% of the reference's, so every resample has BSS 0.2.
    reference = np.array([10.0, 30.0, 5.0, 12.0])
    lo, hi = session_bootstrap_skill(0.8 * reference, reference, replicates=200, seed=1)
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    assert all(math.isnan(v) for v in session_bootstrap_skill(np.array([1.0]), np.array([2.0])))
    with pytest.raises(ValueError):
        session_bootstrap_skill(np.ones(3), np.ones(4))


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    """Two kinds of session, equal size: BSS +0.5 (model 5 of 10) or -0.5 (15 of 10). A resample of
    S = 40 sessions with j good ones has BSS 1 - (5j + 15(40 - j)) / 400 = (j - 20) / 40, with
    j ~ Binomial(40, 1/2): its 5% and 95% quantiles are about j = 15 and 25, i.e. BSS -0.125 and +0.125."""
    model = np.array([5.0, 15.0] * 20)
    reference = np.full(40, 10.0)
    lo, hi = session_bootstrap_skill(model, reference, replicates=20_000, seed=7)
    assert lo == pytest.approx(-0.125, abs=0.026) and hi == pytest.approx(0.125, abs=0.026)


def _comparison_frame():
    """Two sessions, 2 episodes each: outcomes BREAK, REJECT | BREAK, CHOP."""
    rows = []
    outcomes = [("2024-01-02", "BREAK"), ("2024-01-02", "REJECT"), ("2024-01-03", "BREAK"), ("2024-01-03", "CHOP")]
    for day, outcome in outcomes:
        hit = {"BREAK": (0.6, 0.2, 0.2), "REJECT": (0.2, 0.6, 0.2), "CHOP": (0.2, 0.2, 0.6)}[outcome]
        rows.append(
            {
                "session_date": date.fromisoformat(day), "outcome": outcome,
                **dict(zip(["base_break", "base_reject", "base_chop"], [1 / 3] * 3)),
                **dict(zip(["p_dist_break", "p_dist_reject", "p_dist_chop"], (0.5, 0.25, 0.25))),
                **dict(zip(["p_break", "p_reject", "p_chop"], hit)),
                **dict(zip(["p_xgb_break", "p_xgb_reject", "p_xgb_chop"], [None] * 3 if day == "2024-01-03" and outcome == "CHOP" else hit)),
            }
        )
    return pl.DataFrame(rows)


def test_compare_models_scores_every_model_on_the_same_episodes():
    frame = _comparison_frame()
    models = {"base_rate": "base_", "distance": "p_dist_", "xgboost": "p_xgb_", "answer": "p_"}
    table = compare_models(frame, models, replicates=100)
    assert table["model"].to_list() == list(models)
    assert (table["n_episodes"] == 3).all()  # the episode without a model probability is dropped for all
    rows = {r["model"]: r for r in table.iter_rows(named=True)}
    # Hand-worked Brier: uniform 2/3; the answer hits with 0.6: 0.16 + 0.04 + 0.04 = 0.24.
    assert rows["base_rate"]["brier"] == pytest.approx(2 / 3)
    assert rows["answer"]["brier"] == pytest.approx(0.24)
    assert rows["answer"]["bss_base"] == pytest.approx(1 - 0.24 / (2 / 3))
    # Distance (0.5, 0.25, 0.25): BREAK 0.375, REJECT 0.875 -> mean over B, R, B = 0.5416...
    distance = (0.375 + 0.875 + 0.375) / 3
    assert rows["distance"]["brier"] == pytest.approx(distance)
    assert rows["answer"]["bss_distance"] == pytest.approx(1 - 0.24 / distance)
    assert rows["distance"]["bss_distance"] == 0.0
    text = format_comparison(table)
    assert "answer" in text and "3 episodes in 2 sessions" in text
    with pytest.raises(ValueError, match="baseline"):
        compare_models(frame, {"answer": "p_"})


def test_a_report_png_is_readable_by_other_users(tmp_path):
    """mkstemp makes 0600 files; the written PNG gets what open() would give: 0666 less the umask."""
    import os
    import stat

    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(3), size=60)
    labels = rng.choice(list(OUTCOMES), size=60)
    old = os.umask(0o022)
    try:
        path = reliability_diagram_png(probs, labels, tmp_path / "reports" / "r.png", "t")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_replicate_skill_interval_rows_with_and_without_left_out_replicates():
    """The stacked interval equals each pair's own nanquantile: a whole row, a row with replicates whose
    reference sum is 0 (left out) and a row with none usable (NaN)."""
    rng = np.random.default_rng(3)
    model = rng.uniform(0.5, 1.0, size=(3, 200))
    reference = rng.uniform(0.6, 1.1, size=(3, 200))
    reference[1, :17] = 0.0
    reference[2, :] = 0.0
    lo, hi = replicate_skill_interval(model, reference, 0.90)
    for k in range(2):
        usable = reference[k] > 0
        tail = (1.0 - 0.90) / 2.0
        expected = np.nanquantile(1.0 - model[k, usable] / reference[k, usable], [tail, 1.0 - tail])
        assert (lo[k], hi[k]) == (expected[0], expected[1])
    assert np.isnan(lo[2]) and np.isnan(hi[2])
