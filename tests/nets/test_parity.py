"""torch and JAX compute the same function, for every family x symmetry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import inputs_for, perturbed_params, torch_params
from torch import nn

import bnn_asym
from bnn_asym.nets.torch import asymmetrize
from bnn_asym.symmetry import to_effective

pytestmark = pytest.mark.usefixtures("x64")  # compared at 1e-10: float64


def test_float64_parity(family_symmetry):
    spec = family_symmetry
    params, x = perturbed_params(spec), inputs_for(spec)
    out_jax = np.asarray(spec.apply_jax(params, x))
    out_torch = spec.apply_torch(torch_params(params), x).numpy()
    assert out_jax.dtype == np.float64 and out_torch.dtype == np.float64
    np.testing.assert_allclose(out_jax, out_torch, rtol=0, atol=1e-10)
    assert np.abs(out_jax).max() > 1e-3  # not trivially zero


def test_float32_parity(family_symmetry):
    spec = family_symmetry
    params, x = perturbed_params(spec, dtype="float32"), inputs_for(spec, dtype="float32")
    out_jax = np.asarray(spec.apply_jax(params, x))
    out_torch = spec.apply_torch(torch_params(params), x).numpy()
    assert out_jax.dtype == np.float32
    np.testing.assert_allclose(out_jax, out_torch, rtol=1e-5, atol=1e-5)


def test_image_inputs_accept_flat_or_shaped(family_symmetry):
    spec = family_symmetry
    params, x = perturbed_params(spec), inputs_for(spec)
    shaped = x.reshape((x.shape[0],) + tuple(spec.input_shape))
    np.testing.assert_array_equal(np.asarray(spec.apply_jax(params, x)), np.asarray(spec.apply_jax(params, shaped)))


def test_jax_jit_and_vmap_over_parameter_samples(family_symmetry):
    spec = family_symmetry
    samples = [perturbed_params(spec, seed=s) for s in range(3)]
    stacked = {k: np.stack([p[k] for p in samples]) for k in samples[0]}
    x = inputs_for(spec)
    batched = jax.jit(jax.vmap(lambda p: spec.apply_jax(p, x)))(stacked)
    for i, p in enumerate(samples):
        np.testing.assert_allclose(batched[i], spec.apply_jax(p, x), rtol=1e-12, atol=1e-12)


def test_torch_func_vmap_and_grad_match_jax(family_symmetry):
    spec = family_symmetry
    params, x = perturbed_params(spec), inputs_for(spec)

    def loss_jax(p):
        return jnp.sum(spec.apply_jax(p, x) ** 2)

    def loss_torch(p):
        return torch.sum(spec.apply_torch(p, x) ** 2)

    g_jax = jax.grad(loss_jax)(params)
    g_torch = torch.func.grad(loss_torch)(torch_params(params))
    for k in params:
        np.testing.assert_allclose(np.asarray(g_jax[k]), g_torch[k].numpy(), rtol=1e-8, atol=1e-10)
    stacked = {k: torch.stack([v, v * 0.5]) for k, v in torch_params(params).items()}
    out = torch.func.vmap(lambda p: spec.apply_torch(p, x))(stacked)
    half = {k: v * 0.5 for k, v in torch_params(params).items()}
    np.testing.assert_allclose(out[1].numpy(), spec.apply_torch(half, x).numpy(), atol=1e-10)


def test_torch_module_view_matches_apply_and_hides_constants(family_symmetry):
    spec = family_symmetry
    params = perturbed_params(spec)
    module = spec.torch_module(dtype=torch.float64)
    module.load_state_dict(
        {**module.state_dict(), **{f"free.{k.replace('.', '__')}": torch.as_tensor(v) for k, v in params.items()}}
    )
    x = inputs_for(spec)
    np.testing.assert_allclose(
        module(torch.as_tensor(x)).detach().numpy(), spec.apply_torch(torch_params(params), x).numpy(), atol=1e-12
    )
    assert sum(p.numel() for p in module.parameters()) == spec.num_free_params


def test_asymmetrize_user_module_matches_spec():
    for kind, symmetry in (("w", "w_asym"), ("sigma", "sigma_asym")):
        asym = dict(n_fix=(2, 3, 4), kappa=0.7) if symmetry == "w_asym" else {}
        spec = bnn_asym.MLP(6, (8, 7), 3, symmetry=symmetry, seed=11, **asym)
        params = perturbed_params(spec)
        eff = to_effective(spec, params)
        seq = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 7), nn.ReLU(), nn.Linear(7, 3)).double()
        with torch.no_grad():
            for i, name in ((0, "fc0"), (2, "fc1"), (4, "out")):
                seq[i].weight.copy_(torch.as_tensor(eff[f"{name}.weight"]))
                seq[i].bias.copy_(torch.as_tensor(eff[f"{name}.bias"]))
        asymmetrize(seq, kind=kind, n_fix=[2, 3, 4], kappa=0.7, seed=11)
        x = inputs_for(spec)
        np.testing.assert_allclose(
            seq(torch.as_tensor(x)).detach().numpy(), spec.apply_torch(torch_params(params), x).numpy(), atol=1e-12
        )
        if kind == "w":
            assert sum(p.numel() for p in seq.parameters()) == spec.num_free_params


def test_asymmetrize_conv_module_and_errors():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2))
    asymmetrize(conv, kind="w", n_fix=2, mask_kind="filter", seed=0)
    assert conv[0].weight_free.shape == (8, 27 - 18) and conv[2].weight_free.shape == (4, 72 - 18)
    assert conv(torch.zeros(1, 3, 9, 9)).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="kind"):
        asymmetrize(nn.Linear(3, 3), kind="x")
    with pytest.raises(ValueError, match="activation"):
        asymmetrize(nn.Sequential(nn.Linear(3, 3)), kind="sigma")
    with pytest.raises(ValueError, match="n_fix"):
        asymmetrize(nn.Sequential(nn.Linear(3, 3)), kind="w", n_fix=3)


def test_torch_module_buffers_own_their_memory():
    spec = bnn_asym.MLP(5, (6,), 2, symmetry="sigma_asym", seed=0)
    w_spec = bnn_asym.MLP(5, (6,), 2, symmetry="w_asym", seed=0)
    for s in (spec, w_spec):
        digest = s.constants_digest()
        m1, m2, other = s.torch_module(), s.torch_module(), s.torch_module()
        with torch.no_grad():
            for buf in other.buffers():
                if buf.is_floating_point():
                    buf.mul_(3.0)
        m1.load_state_dict(other.state_dict())
        assert s.constants_digest() == digest  # the spec's cached constants are untouched
        for (name, b1), (_, b2) in zip(m2.named_buffers(), s.torch_module().named_buffers()):
            assert torch.equal(b1, b2), name  # a sibling module keeps the spec's values
        assert not any(np.shares_memory(b.numpy(), c) for b in m2.buffers() for c in s.constants().values())


@pytest.mark.parametrize("shape", [(3, 2, 8, 8, 4, 3, 1, 1), (2, 3, 9, 7, 5, 3, 2, 1), (2, 4, 6, 6, 3, 1, 2, 0)])
def test_the_cpu_convolution_is_xlas_up_to_rounding_and_has_no_convolution_op(shape):
    """On the CPU conv layers run as one matmul over image patches (XLA's convolution inside a loop was 7-25x
    slower): same values and gradients as XLA's convolution for kernel sizes, strides and paddings the nets use."""
    import jax
    import jax.numpy as jnp

    from bnn_asym.nets.jax import JaxOps, _conv2d_xla

    n, c, height, width, o, k, stride, padding = shape
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(n, c, height, width)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(o, c, k, k)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(o,)), jnp.float32)

    def loss(conv):
        return lambda h, w: jnp.sum(jnp.tanh(conv(h, w)))

    ours = jax.jit(lambda h, w: JaxOps.conv2d(h, w, b, stride, padding))
    xla = jax.jit(lambda h, w: _conv2d_xla(h, w, stride, padding) + b[None, :, None, None])
    np.testing.assert_allclose(ours(h, w), xla(h, w), rtol=1e-5, atol=1e-5)
    for a, e in zip(jax.grad(loss(ours), (0, 1))(h, w), jax.grad(loss(xla), (0, 1))(h, w)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
    assert " convolution(" not in ours.lower(h, w).compile().as_text()  # the HLO op, not a name in metadata
