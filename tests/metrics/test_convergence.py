"""Convergence summaries: R-hat on known cases, time to target, ESS rates."""

import numpy as np
import pytest

from bnn_asym.metrics import chainwise_rhat, ess_rates, nested_rhat, rhat_summary, time_to_target, time_to_within
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
    bulk = rhat_summary(x, ess="bulk")  # fit's mixing check: the tail ESS (a second pass) left out
    assert {k: bulk[k] for k in ("max_rhat", "min_ess_bulk", "median_ess_bulk")} == {
        k: full[k] for k in ("max_rhat", "min_ess_bulk", "median_ess_bulk")
    }
    assert np.isnan(bulk["min_ess_tail"]) and full["min_ess_tail"] > 0
    with pytest.raises(ValueError, match="ess must be True, False or 'bulk'; got 'tail'"):
        rhat_summary(x, ess="tail")


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


# ----- chainwise and nested R-hat --------------------------------------------------------------------------------
def _rank_rhat_direct(chains: np.ndarray) -> float:
    """Vehtari et al. (2021) rank-normalised R-hat of (chain, draw) values taken as they are (no split): the larger
    of the bulk value and the folded one, from scipy's ranks."""
    from scipy import special, stats

    def rhat(x):
        z = special.ndtri((stats.rankdata(x, method="average").reshape(x.shape) - 3 / 8) / (x.size + 1 / 4))
        n = z.shape[1]
        within, between = z.var(axis=1, ddof=1).mean(), n * z.mean(axis=1).var(ddof=1)
        return np.sqrt(((n - 1) / n * within + between / n) / within)

    return max(rhat(chains), rhat(np.abs(chains - np.median(chains))))


def test_chainwise_rhat_equals_rank_rhat_of_each_chains_pieces():
    """Each chain on its own: its 4 consecutive pieces (the first draws dropped to make them equal) as the chains
    of a rank-normalised R-hat, without a further split."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 403, 2)).cumsum(axis=1) * 0.1 + rng.standard_normal((3, 403, 2))
    got = chainwise_rhat(values)
    for c in range(3):
        for k in range(2):
            assert got[c, k] == pytest.approx(_rank_rhat_direct(values[c, 3:, k].reshape(4, 100)), rel=1e-10)


def test_chainwise_rhat_ignores_chains_in_different_modes_that_split_rhat_flags():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((4, 800, 3)) + 10 * np.arange(4)[:, None, None]  # every chain i.i.d. at its own mean
    assert chainwise_rhat(values).max() < 1.02  # 4 pieces of 200 i.i.d. draws: R-hat - 1 ~ 1/200
    assert split_rhat(values).min() > 2  # rank normalisation bounds it: 2.8 for 4 chains with no overlap
    stuck = values.copy()
    stuck[0, 400:] += 5  # chain 0 jumps half-way: not stationary on its own
    assert chainwise_rhat(stuck)[0].min() > 1.5 and chainwise_rhat(stuck)[1:].max() < 1.02


def _nested_rhat_direct(values, labels):
    """Margossian et al. (2023), eq. 3-5, one quantity at a time, in loops."""
    out = []
    for k in range(values.shape[2]):
        supers = sorted(set(labels))
        chain_mean = {g: [values[c, :, k].mean() for c in range(len(labels)) if labels[c] == g] for g in supers}
        super_mean = {g: np.mean(chain_mean[g]) for g in supers}
        grand = np.mean(list(super_mean.values()))
        b = sum((super_mean[g] - grand) ** 2 for g in supers) / (len(supers) - 1)
        w = 0.0
        for g in supers:
            members = [c for c in range(len(labels)) if labels[c] == g]
            bk = sum((m - super_mean[g]) ** 2 for m in chain_mean[g]) / (len(members) - 1) if len(members) > 1 else 0
            wk = np.mean([values[c, :, k].var(ddof=1) for c in members]) if values.shape[1] > 1 else 0
            w += (bk + wk) / len(supers)
        out.append(np.sqrt(1 + b / w))
    return np.array(out)


@pytest.mark.parametrize("chains_per_super, draws", [(3, 10), (1, 50), (4, 1)])
def test_nested_rhat_equals_the_direct_formula(chains_per_super, draws):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(4), chains_per_super)
    values = rng.standard_normal((len(labels), draws, 3)) + 0.3 * labels[:, None, None]
    np.testing.assert_allclose(nested_rhat(values, labels), _nested_rhat_direct(values, labels), rtol=1e-12)


def test_nested_rhat_is_one_for_iid_superchains_and_large_for_separated_ones():
    """64 chains of 10 draws in 8 superchains. i.i.d.: B estimates W / 80 (the variance of a mean of 80 draws)
    with 7 degrees of freedom, so nR-hat - 1 ~ 1/160, and its 99.9% point is below 1.03 (chi-square bound)."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(8), 8)
    iid = rng.standard_normal((64, 10, 200))
    assert np.quantile(nested_rhat(iid, labels), 0.5) < 1.01 and nested_rhat(iid, labels).max() < 1.05
    separated = iid + 3 * labels[:, None, None]
    assert nested_rhat(separated, labels).min() > 3
    with pytest.raises(ValueError, match="superchains of equal size"):
        nested_rhat(iid[:5], np.array([0, 0, 0, 1, 1]))


def test_stationary_chains_rhat_averages_one_plus_chains_over_ess():
    """The rule of thumb the reference's flagged message states: a stationary chain set's split R-hat averages
    about 1 + K / ESS (K chains), so R-hat <= 1.01 needs ESS >= 100 K. AR(1) chains started in their stationary
    law, with known ESS = K n (1 - phi) / (1 + phi); over 20 seeds the mean over 200 quantities came out at
    0.92-1.02 x K / ESS (spread 0.03), so the bounds leave 5 spreads either way."""
    rng = np.random.default_rng(0)
    chains, draws, quantities, phi = 8, 800, 200, 0.9
    noise = rng.standard_normal((chains, draws, quantities)) * np.sqrt(1 - phi**2)
    x = np.empty_like(noise)
    x[:, 0] = rng.standard_normal((chains, quantities))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    ess = chains * draws * (1 - phi) / (1 + phi)
    excess = np.mean(split_rhat(x)) - 1
    assert 0.8 < excess / (chains / ess) < 1.2
