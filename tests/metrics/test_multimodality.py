"""Mode counts, the coupon collector, symmetry-aware R-hat and barriers: known answers."""

import numpy as np
import pytest

import bnn_asym
from bnn_asym.metrics import aligned_rhat, chain_barriers, coupon_collector, mode_count
from bnn_asym.symmetry import permute_free, random_permutations


@pytest.mark.parametrize("k", [1, 2, 4])
def test_mode_count_finds_planted_clusters(k):
    rng = np.random.default_rng(k)
    centres = rng.dirichlet(np.ones(3), size=(k, 40))  # k distinct predictives on 40 points
    chains = []
    for c in range(3 * k):  # three chains per mode, each a small perturbation of its centre
        p = centres[c % k] + 0.002 * rng.random((40, 3))
        chains.append(p / p.sum(1, keepdims=True))
    result = mode_count(np.stack(chains))
    assert result["modes"] == k and result["sizes"] == [3] * k


def test_coupon_collector_matches_the_classic_answers():
    assert coupon_collector([5]) == 1.0
    assert coupon_collector([2, 2, 2]) == pytest.approx(3 * (1 + 1 / 2 + 1 / 3), rel=1e-6)
    assert coupon_collector([9, 1]) > coupon_collector([5, 5])  # a rare mode takes longer to find
    with pytest.raises(ValueError, match="positive counts"):
        coupon_collector([])


def test_alignment_removes_rhat_inflation_of_permuted_copies_of_one_chain():
    spec = bnn_asym.MLP(3, (6,), 2, seed=0)
    rng = np.random.default_rng(0)
    base = spec.init(0, "float64")
    chain = [{k: v + 0.05 * rng.standard_normal(v.shape) for k, v in base.items()} for _ in range(200)]
    perms = [random_permutations(spec, rng) for _ in range(3)]  # one relabelling per copy
    copies = [chain] + [[permute_free(spec, d, p) for d in chain] for p in perms]
    draws = {k: np.stack([np.stack([d[k] for d in c]) for c in copies]) for k in base}
    r = aligned_rhat(spec, draws)
    assert r["before"]["max_rhat"] > 2.0  # the same posterior, relabelled: R-hat sees four modes
    assert r["after"]["max_rhat"] < 1.05 and r["chains_permuted"] == 3


def test_alignment_changes_little_for_w_asym_chains_of_one_mode():
    spec = bnn_asym.MLP(3, (6,), 2, symmetry="w_asym", seed=0)
    rng = np.random.default_rng(0)
    base = spec.init(0, "float64")
    draws = {k: v + 0.05 * rng.standard_normal((4, 100) + v.shape) for k, v in base.items()}
    r = aligned_rhat(spec, draws)
    assert r["after"]["max_rhat"] == pytest.approx(r["before"]["max_rhat"], abs=0.02)


def test_barrier_is_zero_between_identical_end_points():
    spec = bnn_asym.MLP(3, (6,), 2, seed=0)
    a = spec.init(0)
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    result = chain_barriers(spec, [a, a, spec.init(1)], X, y)
    assert result["matrix"][0][1] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(result["matrix"], np.asarray(result["matrix"]).T)
