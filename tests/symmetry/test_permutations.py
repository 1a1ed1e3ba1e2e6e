"""The paper's guarantees: standard nets are invariant to hidden-unit permutations (and ReLU rescaling);
W-Asym and sigma-Asym nets are not -- checked exhaustively over every permutation of a small layer."""

from itertools import permutations

import jax
import numpy as np
import pytest
from conftest import inputs_for, perturbed_params, small_specs

import bnn_asym
from bnn_asym.symmetry import (
    permutation_spec,
    permute,
    permute_free,
    random_permutations,
    rescale_free,
    to_effective,
    to_free,
)

pytestmark = pytest.mark.usefixtures("x64")  # invariance checked at 1e-10: float64


def outputs(spec, params, x):
    return np.asarray(spec.apply_jax(params, x))


@pytest.mark.parametrize("family", ["mlp", "cnn", "resnet"])
def test_standard_networks_are_invariant_to_every_random_permutation(family):
    spec = small_specs("standard")[family]
    params, x = perturbed_params(spec), inputs_for(spec)
    rng = np.random.default_rng(0)
    for _ in range(5):
        perms = random_permutations(spec, rng)
        moved = permute_free(spec, params, perms)
        assert any(not np.array_equal(moved[k], params[k]) for k in params)
        np.testing.assert_allclose(outputs(spec, moved, x), outputs(spec, params, x), atol=1e-10)


@pytest.mark.parametrize("family", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize("symmetry", ["w_asym", "sigma_asym"])
def test_asymmetric_networks_change_under_random_permutations(family, symmetry):
    spec = small_specs(symmetry)[family]
    params, x = perturbed_params(spec), inputs_for(spec)
    rng = np.random.default_rng(0)
    for _ in range(5):
        moved = permute_free(spec, params, random_permutations(spec, rng))
        assert np.abs(outputs(spec, moved, x) - outputs(spec, params, x)).max() > 1e-3


def _all_permutation_outputs(spec, params, x, group):
    """Outputs for every permutation of one group, evaluated in one vmapped call."""
    pspec = permutation_spec(spec)
    effective = to_effective(spec, params)
    perms = list(permutations(range(pspec.groups[group])))
    moved = [to_free(spec, permute(spec, effective, {group: np.array(p)}, pspec)) for p in perms]
    stacked = {k: np.stack([m[k] for m in moved]) for k in params}
    outs = np.asarray(jax.jit(jax.vmap(lambda p: spec.apply_jax(p, x)))(stacked))
    return perms, outs


@pytest.mark.parametrize("symmetry", ["standard", "w_asym", "sigma_asym"])
def test_exhaustive_hidden_permutations(symmetry):
    # Every one of the 6! permutations of each width-6 hidden layer.
    spec = bnn_asym.MLP(10, (6, 6), 3, symmetry=symmetry, seed=5)
    params, x = perturbed_params(spec, seed=1), inputs_for(spec, n=32)
    reference = outputs(spec, params, x)
    for group in ("P_fc0", "P_fc1"):
        perms, outs = _all_permutation_outputs(spec, params, x, group)
        change = np.abs(outs - reference[None]).max(axis=(1, 2))
        identity = perms.index(tuple(range(6)))
        assert change[identity] < 1e-12
        others = np.delete(change, identity)
        if symmetry == "standard":
            assert others.max() < 1e-10
        else:
            assert others.min() > 1e-4, f"a non-identity permutation of {group} left the {symmetry} net unchanged"


def test_exhaustive_resnet_stream_permutations_for_w_asym():
    # A residual stream shares one permutation across blocks; none but identity is a symmetry of W-Asym.
    spec = bnn_asym.ResNet((2, 6, 6), 2, depth=8, width=0.3125, norm="layer", symmetry="w_asym", seed=1)
    params, x = perturbed_params(spec), inputs_for(spec, n=8)
    assert permutation_spec(spec).groups["P_stem"] == 5  # all 5! = 120 permutations
    perms, outs = _all_permutation_outputs(spec, params, x, "P_stem")
    change = np.abs(outs - outputs(spec, params, x)[None]).max(axis=(1, 2))
    assert np.sum(change < 1e-10) == 1


def test_relu_rescaling_is_a_symmetry_of_standard_but_not_w_asym():
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.2, 5.0, 6)
    for symmetry, invariant in (("standard", True), ("w_asym", False)):
        spec = bnn_asym.MLP(10, (6, 6), 3, symmetry=symmetry, seed=2)
        params, x = perturbed_params(spec), inputs_for(spec)
        change = np.abs(outputs(spec, rescale_free(spec, params, "P_fc0", scales), x) - outputs(spec, params, x)).max()
        assert (change < 1e-10) == invariant, (symmetry, change)


def test_rescaling_refuses_normalised_layers_and_bad_scales():
    spec = bnn_asym.MLP(4, (5,), 2, norm="layer")
    with pytest.raises(ValueError, match="normalised"):
        rescale_free(spec, spec.init(0), "P_fc0", np.ones(5))
    with pytest.raises(ValueError, match="> 0"):
        rescale_free(bnn_asym.MLP(4, (5,), 2), spec.init(0), "P_fc0", -np.ones(5))


def test_effective_round_trip_and_fixed_entries_are_the_constants():
    spec = small_specs("w_asym")["cnn"]
    params = perturbed_params(spec)
    eff = to_effective(spec, params)
    back = to_free(spec, eff)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
    consts = spec.constants()
    w = eff["conv1.weight"].reshape(6, -1)
    np.testing.assert_array_equal(np.take_along_axis(w, consts["conv1.fixed_index"], 1), consts["conv1.fixed_value"])


def test_unknown_group_is_rejected():
    spec = bnn_asym.MLP(4, (5,), 2)
    with pytest.raises(ValueError, match="P_fc0"):
        permute_free(spec, spec.init(0), {"P_nope": np.arange(5)})
