import numpy as np
import pytest
from conftest import inputs_for, perturbed_params

import bnn_asym
from bnn_asym.symmetry import permute_free, random_permutations
from bnn_asym.symmetry.weight_matching import weight_matching

pytestmark = pytest.mark.usefixtures("x64")  # invariance checked at 1e-10: float64

SPECS = {
    "mlp": bnn_asym.MLP(10, (16, 12, 8), 3, norm="layer", seed=0),
    "cnn": bnn_asym.CNN((2, 8, 8), (6, 8), 3, hidden=(10,), norm="group", groups=2, seed=0),
    "resnet": bnn_asym.ResNet((2, 8, 8), 3, depth=8, width=0.5, norm="group", groups=2, seed=0),
}


@pytest.mark.parametrize("family", list(SPECS))
def test_planted_permutation_is_recovered_exactly(family):
    spec = SPECS[family]
    a = perturbed_params(spec, seed=1)
    planted = random_permutations(spec, np.random.default_rng(7))
    b = permute_free(spec, a, planted)
    match = weight_matching(spec, a, b)
    for k in a:
        np.testing.assert_allclose(match.aligned[k], a[k], atol=1e-12, err_msg=k)
    for g, perm in planted.items():  # the recovered permutation undoes the planted one
        np.testing.assert_array_equal(perm[match.perms[g]], np.arange(len(perm)))


@pytest.mark.parametrize("family", list(SPECS))
def test_alignment_keeps_the_function(family):
    spec = SPECS[family]
    a, b = perturbed_params(spec, seed=1), perturbed_params(spec, seed=2)
    match = weight_matching(spec, a, b)
    x = inputs_for(spec)
    np.testing.assert_allclose(
        np.asarray(spec.apply_jax(match.aligned, x)), np.asarray(spec.apply_jax(b, x)), atol=1e-10
    )
    # alignment brings b closer to a
    dist = lambda p: sum(np.sum((p[k] - a[k]) ** 2) for k in a)  # noqa: E731
    assert dist(match.aligned) < dist(b)
