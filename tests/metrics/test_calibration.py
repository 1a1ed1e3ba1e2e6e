import numpy as np
import pytest

from bnn_asym.metrics import accuracy, brier, ece, gaussian_nll, nll


def test_perfectly_calibrated_predictions_have_zero_ece():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200_000)
    correct = rng.uniform(size=conf.size) < conf  # right exactly as often as claimed
    y = np.where(correct, 0, 1)
    probs = np.column_stack([conf, 1 - conf])
    assert ece(probs, y) < 0.01


def test_overconfident_predictions_have_the_expected_ece():
    probs = np.tile([0.9, 0.1], (1000, 1))
    y = np.r_[np.zeros(600, int), np.ones(400, int)]  # 90% confident, 60% right
    assert ece(probs, y) == pytest.approx(0.3)
    assert accuracy(probs, y) == pytest.approx(0.6)


def test_nll_brier_and_gaussian_nll_on_known_values():
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    y = np.array([0, 0])
    assert nll(probs, y) == pytest.approx(np.log(2) / 2)
    assert brier(probs, y) == pytest.approx((0.25 + 0.25 + 0) / 2)
    assert gaussian_nll([0.0], [1.0], [0.0]) == pytest.approx(0.5 * np.log(2 * np.pi))


def test_shape_errors():
    with pytest.raises(ValueError, match="probs"):
        ece(np.ones(3), np.zeros(3))


def test_reliability_diagram_data_and_ece_agree():
    from bnn_asym.metrics import reliability

    probs = np.tile([0.9, 0.1], (1000, 1))
    y = np.r_[np.zeros(600, int), np.ones(400, int)]
    r = reliability(probs, y)
    full = [i for i, c in enumerate(r["count"]) if c]
    assert len(r["count"]) == 15 and full == [13] and r["count"][13] == 1000  # 0.9 falls in (0.867, 0.933]
    assert r["confidence"][13] == pytest.approx(0.9) and r["accuracy"][13] == pytest.approx(0.6)


def test_regression_metrics_on_known_cases():
    from bnn_asym.metrics import in_between_uncertainty, interval_coverage, regression_metrics, rmse

    rng = np.random.default_rng(0)
    y = rng.standard_normal(200_000)
    cov = interval_coverage(np.zeros_like(y), np.ones_like(y), y)  # the true predictive: nominal coverage
    assert cov["coverage_50"] == pytest.approx(0.5, abs=0.005) and cov["coverage_95"] == pytest.approx(0.95, abs=0.005)
    assert rmse([1.0, 3.0], [0.0, 0.0]) == pytest.approx(np.sqrt(5))
    assert set(regression_metrics([0.0], [1.0], [0.0])) == {"rmse", "nll", "coverage_50", "coverage_90", "coverage_95"}
    x = np.linspace(-2, 2, 9)
    std = np.where(np.abs(x) < 0.5, 2.0, 1.0)
    assert in_between_uncertainty(std, x, (-0.5, 0.5)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="inside and outside"):
        in_between_uncertainty(std, x, (5, 6))
