"""Convergence summaries: R-hat on known cases, time to target, ESS rates."""

import numpy as np
import pytest

from bnn_asym.metrics import ess_rates, rhat_summary, time_to_target, time_to_within
from bnn_asym.metrics.convergence import split_rhat


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


@pytest.mark.parametrize("shape", [(2, 7, 5), (4, 100, 12), (3, 51, 8)])
def test_split_rhat_equals_arviz_rank_rhat_with_ties_and_odd_draw_counts(shape):
    from arviz_stats.base import array_stats

    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) + 0.5 * rng.standard_normal((shape[0], 1, shape[2]))
    x[..., 0] = np.round(x[..., 0])  # heavy ties
    x[..., 1] = np.clip(x[..., 1], -0.2, None)  # a block of ties at a bound, as saturated probabilities give
    expected = np.asarray(array_stats.rhat(np.moveaxis(x, -1, 0), chain_axis=-2, draw_axis=-1, method="rank"))
    np.testing.assert_allclose(split_rhat(x), expected, rtol=1e-12)


def test_rhat_summary_without_ess_gives_the_same_rhat():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 200, 6)) + np.arange(3)[:, None, None] * 0.2
    full, fast = rhat_summary(x), rhat_summary(x, ess=False)
    assert full["max_rhat"] == fast["max_rhat"] and full["median_rhat"] == fast["median_rhat"]
    assert np.isnan(fast["min_ess_bulk"]) and full["min_ess_bulk"] > 0


def _ar1(rng, shape, phi):
    x = np.zeros(shape)
    noise = rng.standard_normal(shape)
    for t in range(shape[1]):
        x[:, t] = (phi * x[:, t - 1] if t else 0.0) + noise[:, t]
    return x


@pytest.mark.parametrize("shape", [(1, 40, 4), (2, 5, 4), (3, 51, 6), (4, 300, 6)])
@pytest.mark.parametrize("phi", [0.0, 0.95, -0.6])
def test_bulk_and_tail_ess_equal_arviz_for_any_autocorrelation(shape, phi):
    """Geyer's truncation, vectorised over quantities, gives ArviZ's numbers: independent, strongly
    autocorrelated and antithetic chains, one chain, too few draws for a lag pair, ties, a constant."""
    from arviz_stats.base import array_stats

    from bnn_asym.metrics.convergence import ess_bulk, ess_tail

    rng = np.random.default_rng(shape[1])
    x = _ar1(rng, shape, phi) + 0.3 * rng.standard_normal((shape[0], 1, shape[2]))
    x[..., 0] = np.round(x[..., 0])
    x[..., 1] = 3.0
    moved = np.moveaxis(x, -1, 0)
    np.testing.assert_allclose(
        ess_bulk(x), array_stats.ess(moved, chain_axis=-2, draw_axis=-1, method="bulk"), rtol=1e-9
    )
    np.testing.assert_allclose(
        ess_tail(x), array_stats.ess(moved, chain_axis=-2, draw_axis=-1, method="tail", prob=(0.05, 0.95)), rtol=1e-9
    )
