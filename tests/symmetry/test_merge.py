"""Model merging on cases with known answers: identical parents, a parent and a permuted copy of itself, and
REPAIR's statistics matching."""

import numpy as np
import pytest
from conftest import perturbed_params

import bnn_asym
from bnn_asym.symmetry import permute_free, random_permutations
from bnn_asym.symmetry.merge import METHODS, _preactivations, merge, merge_scores

MLP = bnn_asym.MLP(10, (16, 12), 3, seed=0)  # no norm layers: REPAIR applies


def labelled_inputs(spec, params, n=300, seed=0):
    """Inputs labelled by ``params``' own argmax: that network is perfectly accurate on them."""
    X = np.random.default_rng(seed).standard_normal((n, 10)).astype(np.float32)
    y = np.asarray(spec.apply_jax({k: np.asarray(v, np.float32) for k, v in params.items()}, X)).argmax(-1)
    return X, y


@pytest.mark.parametrize("method", METHODS)
def test_merging_identical_networks_gives_the_network_back_with_barrier_0(method):
    a = perturbed_params(MLP, seed=1)
    X, y = labelled_inputs(MLP, a)
    result = merge(MLP, [a, a, a], method, X=X)
    for k in a:
        np.testing.assert_allclose(result.params[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    scores = merge_scores(MLP, result, X, y)
    assert abs(scores["barrier"]) < 1e-5 and scores["merged_accuracy"] == scores["parents_accuracy"] == 1.0
    assert scores["ensemble_accuracy"] == 1.0 and scores["accuracy_share"] == 1.0


def test_weight_matching_merges_a_network_with_a_permuted_copy_of_itself_without_barrier():
    """The copy computes the same function: aligned, the average is the network itself (barrier < 1e-5); the
    naive average of the unaligned weights is another network (measured barrier 0.26-0.63 nats over 5 seeds;
    asserted > 0.05)."""
    a = perturbed_params(MLP, seed=1)
    copy = permute_free(MLP, a, random_permutations(MLP, np.random.default_rng(3)))
    X, y = labelled_inputs(MLP, a)
    aligned = merge_scores(MLP, merge(MLP, [a, copy], "weight_matching"), X, y)
    naive = merge_scores(MLP, merge(MLP, [a, copy], "naive"), X, y)
    assert abs(aligned["barrier"]) < 1e-5 and aligned["merged_accuracy"] == 1.0
    assert naive["barrier"] > 0.05 and naive["merged_accuracy"] < 1.0
    assert naive["parents_accuracy"] == 1.0 and naive["ensemble_accuracy"] == 1.0  # the copy is as good


def test_repair_matches_every_hidden_units_statistics_to_the_parents_average():
    a, b = perturbed_params(MLP, seed=1), perturbed_params(MLP, seed=2)
    X = np.random.default_rng(0).standard_normal((400, 10))
    result = merge(MLP, [a, b], "repair", X=X)
    plain = merge(MLP, [a, b], "weight_matching")
    hidden = [i for i, n in enumerate(MLP.graph()) if type(n).__name__ == "Dense"][:-1]
    for i in hidden:
        parents = [_preactivations(MLP, p, X, i) for p in result.parents]
        got = _preactivations(MLP, {k: v.astype(np.float64) for k, v in result.params.items()}, X, i)
        np.testing.assert_allclose(got.mean(0), np.mean([s.mean(0) for s in parents], 0), atol=1e-4)
        np.testing.assert_allclose(got.std(0), np.mean([s.std(0) for s in parents], 0), rtol=1e-4, atol=1e-5)
        before = _preactivations(MLP, {k: v.astype(np.float64) for k, v in plain.params.items()}, X, i)
        assert before.std(0).mean() < got.std(0).mean()  # averaging had collapsed the variance REPAIR restores
    np.testing.assert_array_equal(result.params["out.weight"], plain.params["out.weight"])  # output untouched


def test_bad_merges_get_clear_errors():
    a = perturbed_params(MLP, seed=1)
    X = np.zeros((5, 10))
    with pytest.raises(ValueError, match="merge method='average' is not valid; accepted: naive"):
        merge(MLP, [a, a], "average")
    with pytest.raises(ValueError, match="at least 2 networks; got 1"):
        merge(MLP, [a])
    with pytest.raises(ValueError, match="network 1 does not have this spec's free parameters"):
        merge(MLP, [a, {"fc0.weight": a["fc0.weight"]}])
    wrong = dict(a, **{"fc0.weight": a["fc0.weight"][:, :4]})
    with pytest.raises(ValueError, match=r"network 1: fc0.weight has shape \(16, 4\)"):
        merge(MLP, [a, wrong])
    with pytest.raises(ValueError, match="needs X"):
        merge(MLP, [a, a], "repair")
    w_asym = bnn_asym.MLP(10, (16, 12), 3, symmetry="w_asym", seed=0)
    with pytest.raises(ValueError, match="fixed entries do not allow; merge W-Asym networks with method='naive'"):
        merge(w_asym, [w_asym.init(0), w_asym.init(1)], "repair", X=X)
    normed = bnn_asym.MLP(10, (16,), 3, norm="layer", seed=0)
    with pytest.raises(ValueError, match="has Norm layers"):
        merge(normed, [normed.init(0), normed.init(1)], "repair", X=X)
