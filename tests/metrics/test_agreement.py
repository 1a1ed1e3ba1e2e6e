"""Agreement with a reference predictive: known answers."""

import numpy as np
import pytest

from bnn_asym.metrics import agreement, gaussian_kl, gaussian_w1, gaussian_w2, regression_agreement, total_variation


def test_identical_predictives_agree_fully_with_zero_distance():
    p = np.random.default_rng(0).dirichlet(np.ones(4), size=50)
    assert agreement(p, p) == 1.0 and total_variation(p, p) == 0.0


def test_disjoint_and_half_overlapping_predictives():
    p = np.array([[1.0, 0.0], [1.0, 0.0]])
    q = np.array([[0.0, 1.0], [0.5, 0.5 + 1e-9]])
    assert total_variation(p, q) == pytest.approx(0.75)  # 1 and 0.5
    assert agreement(p, q) == 0.0
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        agreement(p, q[:1])


def test_gaussian_distances():
    m, s = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    assert gaussian_kl(m, s, m, s) == pytest.approx(0.0) and gaussian_w2(m, s, m, s) == 0.0
    assert gaussian_w1(m, s, m, s) == pytest.approx(0.0)
    assert gaussian_w1([0.0], [1.0], [3.0], [1.0]) == pytest.approx(3.0)  # a shift: |m1 - m2|
    assert gaussian_w2([0.0], [1.0], [0.0], [3.0]) == pytest.approx(2.0)
    # KL(N(0,1) || N(0,2)) = log 2 + 1/8 - 1/2
    assert gaussian_kl([0.0], [1.0], [0.0], [2.0]) == pytest.approx(np.log(2) + 1 / 8 - 0.5)
    # W1 between N(0,1) and N(0,2): E|Z| * (2 - 1) = sqrt(2/pi)
    assert gaussian_w1([0.0], [1.0], [0.0], [2.0]) == pytest.approx(np.sqrt(2 / np.pi), rel=1e-3)
    assert set(regression_agreement((m, s), (m, s))) == {"w1", "w2", "kl"}
