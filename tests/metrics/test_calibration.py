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
