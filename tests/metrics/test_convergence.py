"""Convergence summaries: R-hat on known cases, time to target, ESS rates."""

import numpy as np
import pytest

from bnn_asym.metrics import ess_rates, rhat_summary, time_to_target, time_to_within


def test_rhat_is_near_one_for_iid_chains_and_large_for_shifted_ones():
    rng = np.random.default_rng(0)
    same = rng.standard_normal((4, 500, 3))
    assert rhat_summary(same)["max_rhat"] < 1.02
    shifted = same + np.arange(4)[:, None, None] * 3.0
    assert rhat_summary(shifted)["max_rhat"] > 2.0
    assert rhat_summary(same)["min_ess_bulk"] > 1000
    with pytest.raises(ValueError, match="chain >= 2"):
        rhat_summary(same[:1])


def test_time_to_target_and_within():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert time_to_target(x, [0.5, 0.8, 0.95, 0.97], 0.9) == 3.0
    assert time_to_target(x, [0.5, 0.8, 0.85, 0.87], 0.9) is None
    assert time_to_target(x, [2.0, 1.0, 0.5, 0.4], 0.6, higher_is_better=False) == 3.0
    assert time_to_within(x, [2.0, 1.0, 0.41, 0.4], 0.05) == 3.0
    assert time_to_within(x, [0.4, 2.0, 0.4, 0.4], 0.05) == 3.0  # leaving and coming back counts from the return


def test_ess_rates():
    assert ess_rates(100.0, 4.0, 1000) == {"ess_per_s": 25.0, "ess_per_grad": 0.1}
