"""OOD detection, the entropy decomposition and selective prediction on cases with known answers."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bnn_asym.metrics.uncertainty import (
    CRITERIA,
    entropy_decomposition,
    ood_detection,
    risk_coverage,
    uncertainty_score,
    uncertainty_scores,
)


def random_probs(rng, draws=6, rows=50, classes=4, sharpness=2.0):
    logits = sharpness * rng.standard_normal((draws, rows, classes))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_separable_scores_give_auroc_1_aupr_1_and_fpr95_0():
    got = ood_detection(np.linspace(0, 1, 30), np.linspace(2, 3, 20))
    assert got["auroc"] == 1.0 and got["aupr"] == 1.0 and got["fpr95"] == 0.0
    assert (got["n_in"], got["n_ood"]) == (30, 20)
    flipped = ood_detection(np.linspace(2, 3, 30), np.linspace(0, 1, 20))  # OOD scored *less* uncertain
    assert flipped["auroc"] == 0.0 and flipped["fpr95"] == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_identical_score_distributions_give_auroc_near_one_half(seed):
    """2,000 rows each from one distribution: AUROC's standard deviation is sqrt((n1 + n2 + 1) / (12 n1 n2))
    = 0.0091, so |AUROC - 0.5| < 0.05 is 5.5 standard deviations on any seed; FPR95 is then ~0.95."""
    rng = np.random.default_rng(seed)
    got = ood_detection(rng.standard_normal(2000), rng.standard_normal(2000))
    assert abs(got["auroc"] - 0.5) < 0.05 and abs(got["fpr95"] - 0.95) < 0.05
    assert ood_detection(np.ones(10), np.ones(7))["auroc"] == 0.5  # all tied


@pytest.mark.parametrize("seed", range(3))
def test_auroc_and_aupr_equal_scikit_learn_and_fpr95_a_direct_count(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 300), rng.normal(1, 1.5, 200)
    got = ood_detection(a, b)
    labels, scores = np.r_[np.zeros(300), np.ones(200)], np.r_[a, b]
    assert got["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert got["aupr"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    # continuous scores, no ties: flag every row at or above the OOD score that catches 95% of OOD rows
    threshold = np.sort(b)[::-1][int(np.ceil(0.95 * 200)) - 1]
    assert got["fpr95"] == pytest.approx(np.mean(a >= threshold), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_entropy_decomposition_total_is_expected_plus_mutual_information(seed):
    rng = np.random.default_rng(seed)
    probs = random_probs(rng)
    parts = entropy_decomposition(probs)
    mean = probs.mean(0)
    total = -(mean * np.log(mean)).sum(-1)
    expected = -(probs * np.log(probs)).sum(-1).mean(0)
    np.testing.assert_allclose(parts["total"], total, rtol=1e-12)
    np.testing.assert_allclose(parts["expected"], expected, rtol=1e-12)
    np.testing.assert_allclose(parts["total"], parts["expected"] + parts["mutual_information"], atol=1e-12)
    assert np.all(parts["mutual_information"] >= 0) and np.all(parts["total"] <= np.log(4) + 1e-12)


def test_mutual_information_is_zero_for_one_draw_and_for_agreeing_draws_and_largest_for_confident_disagreement():
    rng = np.random.default_rng(0)
    one = random_probs(rng, draws=1)
    assert np.all(entropy_decomposition(one)["mutual_information"] == 0)
    assert np.all(entropy_decomposition(one[0])["mutual_information"] == 0)  # (rows, classes) is one draw
    agreeing = np.repeat(one, 5, axis=0)
    np.testing.assert_allclose(entropy_decomposition(agreeing)["mutual_information"], 0, atol=1e-12)
    # two draws each certain of a different class: no aleatoric uncertainty, ln 2 nats of epistemic
    split = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    parts = entropy_decomposition(split)
    assert parts["expected"][0] == 0 and parts["mutual_information"][0] == pytest.approx(np.log(2))


def test_uncertainty_scores_rank_a_confident_row_below_an_uncertain_one():
    probs = np.array([[[0.98, 0.01, 0.01], [0.4, 0.3, 0.3]], [[0.97, 0.02, 0.01], [0.1, 0.8, 0.1]]])
    for criterion in CRITERIA:
        s = uncertainty_score(probs, criterion)
        assert s.shape == (2,) and s[0] < s[1], criterion
    np.testing.assert_allclose(uncertainty_score(probs, "max_probability"), 1 - probs.mean(0).max(-1))


@pytest.mark.parametrize("seed", range(3))
def test_all_scores_at_once_equal_each_criterion_alone(seed):
    probs = random_probs(np.random.default_rng(seed))
    scores = uncertainty_scores(probs)
    assert set(scores) == set(CRITERIA)
    for criterion in CRITERIA:
        np.testing.assert_array_equal(scores[criterion], uncertainty_score(probs, criterion))


def test_risk_coverage_of_a_perfect_ranking_and_of_a_worst_one():
    """4 rows, the two wrong ones least confident: risk 0, 0, 1/3, 1/2 (AURC 5/24); ranked most confident
    instead: risk 1, 1, 2/3, 1/2 (AURC 19/24)."""
    y = np.array([0, 1, 0, 1])
    right_confident = np.array([[0.99, 0.01], [0.02, 0.98], [0.4, 0.6], [0.55, 0.45]])
    got = risk_coverage(right_confident, y)
    np.testing.assert_allclose(got["risk"], [0, 0, 1 / 3, 1 / 2])
    np.testing.assert_allclose(got["coverage"], [0.25, 0.5, 0.75, 1.0])
    assert got["aurc"] == pytest.approx(5 / 24)
    wrong_confident = np.array([[0.6, 0.4], [0.45, 0.55], [0.01, 0.99], [0.98, 0.02]])
    assert risk_coverage(wrong_confident, y)["aurc"] == pytest.approx(19 / 24)


def test_bad_inputs_get_clear_errors():
    good = np.full((2, 3, 4), 0.25)
    with pytest.raises(ValueError, match="criterion='entropy' is not valid; accepted: total_entropy"):
        uncertainty_score(good, "entropy")
    with pytest.raises(ValueError, match=r"shape \(3,\); accepted: per-draw class probabilities"):
        entropy_decomposition(np.ones(3))
    with pytest.raises(ValueError, match="differs from 1 by 0.2"):
        entropy_decomposition(np.full((3, 4), 0.3))
    with pytest.raises(ValueError, match="outside"):
        entropy_decomposition(np.array([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="ood_scores is empty"):
        ood_detection([0.1, 0.2], [])
    with pytest.raises(ValueError, match="in_scores is empty or has non-finite"):
        ood_detection([np.nan], [0.1])
    with pytest.raises(ValueError, match=r"one label per row, shape \(3,\)"):
        risk_coverage(good, np.zeros(4))
