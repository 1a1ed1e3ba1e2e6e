import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import perturbed_params

import bnn_asym

pytestmark = pytest.mark.usefixtures("x64")  # compared at 1e-10: float64


def test_pack_unpack_round_trip_all_backends(family_symmetry):
    spec = family_symmetry
    params = perturbed_params(spec)
    flat = spec.layout.pack(params)
    assert flat.shape == (spec.num_free_params,)
    back = spec.layout.unpack(flat)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
    for convert in (jnp.asarray, torch.as_tensor):
        flat_b = spec.layout.pack({k: convert(v) for k, v in params.items()})
        np.testing.assert_array_equal(np.asarray(flat_b), flat)


def test_pack_unpack_with_leading_axes():
    spec = bnn_asym.MLP(3, (4,), 2, symmetry="w_asym")
    flat = np.random.default_rng(0).standard_normal((2, 5, spec.num_free_params))
    named = spec.layout.unpack(flat)
    assert named["fc0.weight"].shape == (2, 5) + spec.layout["fc0.weight"].shape
    np.testing.assert_array_equal(spec.layout.pack(named), flat)


def test_init_is_kaiming_on_free_entries_and_seeded():
    spec = bnn_asym.MLP(500, (400,), 2, symmetry="w_asym")
    p = spec.init(0, "float64")
    assert p["fc0.weight"].std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    assert np.all(p["fc0.bias"] == 0)
    assert np.array_equal(spec.init(0)["fc0.weight"], spec.init(0)["fc0.weight"])
    assert not np.array_equal(spec.init(0)["fc0.weight"], spec.init(1)["fc0.weight"])


def test_init_seed_is_independent_of_spec_seed():
    a = bnn_asym.MLP(5, (6,), 2, seed=0).init(3)
    b = bnn_asym.MLP(5, (6,), 2, seed=9).init(3)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_layout_check_names_the_problem():
    spec = bnn_asym.MLP(3, (4,), 2)
    p = spec.init(0)
    with pytest.raises(ValueError, match="missing"):
        spec.layout.check({k: v for k, v in p.items() if k != "out.bias"})
    with pytest.raises(ValueError, match="fc0.weight"):
        spec.layout.check({**p, "fc0.weight": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="entries"):
        spec.layout.unpack(np.zeros(5))
