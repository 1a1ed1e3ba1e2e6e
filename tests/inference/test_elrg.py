"""The ELRG pieces (bnn_asym/inference/elrg.py), each against a direct formula: the closed-form KL against
dense Gaussians, the sampled forward pass against the moments of the weights' distribution pushed through
a linear layer, the negative ELBO against its expectation under a Gaussian likelihood, one step against Adam
on the gradient, and the draws against q's own moments. float64, where the formulas are compared to 1e-8."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bnn_asym
from bnn_asym.inference import elrg
from bnn_asym.inference.vi import LowRankVI
from bnn_asym.models import BayesianModel, Likelihood, Prior

pytestmark = pytest.mark.usefixtures("x64")
NOISE = 0.4


def _setup(net, likelihood, learn_diag=True, per_example=True, rank=2, n_total=50):
    model = BayesianModel(net, likelihood, Prior("fan_in", 1.3))
    options = LowRankVI.make_options(
        dict(
            per_layer=True,
            rank=rank,
            learn_diag=learn_diag,
            init_logvar=-3.0,
            lowrank_noise="per_example" if per_example else "per_batch",
        )
    )
    return model, elrg.setup(model, options, n_total)


def _random_q(model, s, seed=0):
    """Variational parameters far from their init: random means, variances and low-rank rows."""
    rng = np.random.default_rng(seed)
    start = {k: jnp.asarray(v) for k, v in model.net.init(seed, "float64").items()}
    for k in model.likelihood.latent_sites():
        start[k] = jnp.asarray(0.0)
    q = elrg.init_params(jax.random.PRNGKey(seed), start, s)
    mean = {k: jnp.asarray(rng.normal(size=np.shape(v))) for k, v in q.mean.items()}
    V = {k: elrg_mask(s, k, jnp.asarray(0.5 * rng.normal(size=np.shape(v)))) for k, v in q.V.items()}
    logvar = (
        None if q.logvar is None else {k: jnp.asarray(rng.normal(-2, 0.5, np.shape(v))) for k, v in q.logvar.items()}
    )
    return q._replace(mean=mean, V=V, logvar=logvar)


def elrg_mask(s, name, x):
    for layer in s.layers:
        if name in layer.names:
            return layer.masked(name, x)
    return x


def _free(layer, name, full):
    """A parameter's free entries, flattened row by row (a W-Asym weight's fixed entries dropped)."""
    full = np.asarray(full)
    if layer.mask is None or name != layer.weight:
        return full.reshape(-1)
    return np.take_along_axis(full.reshape(layer.shape[0], -1), layer.free_index, axis=1).reshape(-1)


def _layer_gaussian(q, s, layer):
    """Mean, dense covariance, prior mean and prior std over a layer's free entries (weight then bias)."""
    means, diag, rows, loc, std = [], [], [], [], []
    for n in layer.names:
        m = _free(layer, n, q.mean[n])
        lv = q.logvar[n] if q.logvar is not None else np.full(np.shape(q.mean[n]), s.fixed_logvar)
        means.append(m)
        diag.append(np.exp(_free(layer, n, lv)))
        rows.append(np.stack([_free(layer, n, q.V[n][r]) for r in range(s.rank)]))
        loc.append(np.full(m.size, s.prior[n][0]))
        std.append(np.full(m.size, s.prior[n][1]))
    V = np.concatenate(rows, axis=1)
    cov = np.diag(np.concatenate(diag)) + s.alpha * V.T @ V
    return np.concatenate(means), cov, np.concatenate(loc), np.concatenate(std)


def _kl_dense(mean, cov, loc, std):
    """KL(N(mean, cov) || N(loc, diag(std^2))), directly."""
    prec = 1 / std**2
    k = len(mean)
    return 0.5 * (
        np.sum(prec * np.diag(cov))
        + np.sum(prec * (loc - mean) ** 2)
        - k
        + np.sum(np.log(std**2))
        - np.linalg.slogdet(cov)[1]
    )


@pytest.mark.parametrize("learn_diag", [True, False])
@pytest.mark.parametrize("symmetry", ["standard", "w_asym"])
def test_kl_divergence_equals_the_dense_gaussians_kl(symmetry, learn_diag):
    net = bnn_asym.MLP(4, (5,), 3, symmetry=symmetry, norm="layer", seed=2)
    model, s = _setup(net, Likelihood("categorical"), learn_diag=learn_diag)
    q = _random_q(model, s)
    expected = 0.0
    for layer in s.layers:
        expected += _kl_dense(*_layer_gaussian(q, s, layer))
    for n in s.norm_names:  # diagonal Gaussians
        lv = np.asarray(q.logvar[n]) if q.logvar is not None else np.full(np.shape(q.mean[n]), s.fixed_logvar)
        expected += _kl_dense(
            np.asarray(q.mean[n]), np.diag(np.exp(lv)), np.full(lv.size, s.prior[n][0]), np.full(lv.size, s.prior[n][1])
        )
    np.testing.assert_allclose(float(jax.jit(lambda p: elrg.kl_divergence(p, s))(q)), expected, rtol=1e-10)


def _output_moments(q, s, layer, x):
    """Mean and covariance of a linear layer's outputs x W^T + b under q, directly from the weights' Gaussian."""
    W = np.asarray(q.mean[layer.weight])
    if layer.mask is not None:
        W = W * layer.mask + layer.fixed
    b = np.asarray(q.mean[f"{layer.name}.bias"])
    mean = x @ W.T + b
    lv = {n: q.logvar[n] if q.logvar is not None else np.full(np.shape(q.mean[n]), s.fixed_logvar) for n in layer.names}
    diag_w = np.exp(np.asarray(lv[layer.weight])) * (1 if layer.mask is None else layer.mask)
    cov = np.diag((x**2) @ diag_w.T + np.exp(np.asarray(lv[f"{layer.name}.bias"])))
    Vw = np.asarray(q.V[layer.weight]) * (1 if layer.mask is None else layer.mask)
    low = np.einsum("i,roi->ro", x, Vw) + np.asarray(q.V[f"{layer.name}.bias"])  # (rank, out)
    return mean, cov + s.alpha * low.T @ low


@pytest.mark.parametrize("per_example", [True, False])
@pytest.mark.parametrize("symmetry", ["standard", "w_asym"])
def test_sampled_forward_pass_has_the_moments_of_the_weights_gaussian(symmetry, per_example):
    """40,000 forward passes of one input through a linear layer: the sample mean and covariance equal
    the pushforward's within 5 standard errors (entries of order 1: SE ~ 0.007)."""
    net = bnn_asym.MLP(6, (), 3, symmetry=symmetry, seed=4, **(dict(n_fix=2) if symmetry == "w_asym" else {}))
    model, s = _setup(net, Likelihood("categorical"), per_example=per_example, rank=3)
    q = _random_q(model, s, seed=1)
    x = np.random.default_rng(2).normal(size=6)
    n = 40_000

    def one(key):
        k_w, k_n = jax.random.split(key)
        return elrg.sampled_outputs(q, jnp.asarray(x[None]), k_w, k_n, s)[0]

    out = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), n)))
    mean, cov = _output_moments(q, s, s.layers[0], x)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(out.mean(0) - mean), 5 * sd / np.sqrt(n))
    se_cov = np.sqrt((np.outer(sd, sd) ** 2 + cov**2) / n)  # of a sample covariance of Gaussians
    np.testing.assert_array_less(np.abs(np.cov(out.T) - cov), 5 * se_cov)


def test_negative_elbo_is_unbiased_for_its_gaussian_likelihood_expectation():
    """Linear model, Gaussian likelihood with a fixed noise: E[-loglik] is analytic from the output moments.
    Over 20,000 keys the estimate's mean is within 5 standard errors of expectation + KL."""
    net = bnn_asym.MLP(3, (), 1, symmetry="w_asym", n_fix=1, seed=5)
    model, s = _setup(net, Likelihood("gaussian", NOISE), rank=2, n_total=50)
    q = _random_q(model, s, seed=3)
    rng = np.random.default_rng(4)
    X, y, w = rng.normal(size=(10, 3)), rng.normal(size=10), rng.uniform(0.5, 1.5, 10)
    expected = float(elrg.kl_divergence(q, s))
    for xi, yi, wi in zip(X, y, w):
        mean, cov = _output_moments(q, s, s.layers[0], xi)
        e_loglik = -0.5 * np.log(2 * np.pi * NOISE**2) - ((yi - mean[0]) ** 2 + cov[0, 0]) / (2 * NOISE**2)
        expected -= wi * e_loglik * s.n_total / len(X)
    batch = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(w))
    keys = jax.random.split(jax.random.PRNGKey(1), 20_000)
    values = np.asarray(jax.jit(jax.vmap(lambda k: elrg.neg_elbo(q, batch, k, s)))(keys))
    assert abs(values.mean() - expected) < 5 * values.std() / np.sqrt(len(values))


def test_step_is_adam_on_the_per_row_negative_elbo():
    net = bnn_asym.MLP(3, (4,), 2, symmetry="w_asym", seed=6)
    model, s = _setup(net, Likelihood("categorical"), n_total=30)
    q = _random_q(model, s, seed=5)
    rng = np.random.default_rng(6)
    batch = (jnp.asarray(rng.normal(size=(8, 3))), jnp.asarray(rng.integers(0, 2, 8)), jnp.ones(8))
    optimizer = optax.adam(0.01)
    key = jax.random.PRNGKey(7)
    state, info = jax.jit(lambda st: elrg.step(key, st, batch, s, optimizer))(elrg.ELRGState(q, optimizer.init(q)))
    loss, grads = jax.jit(jax.value_and_grad(lambda p: elrg.neg_elbo(p, batch, key, s) / s.n_total))(q)
    updates, _ = optimizer.update(grads, optimizer.init(q), q)
    expected = optax.apply_updates(q, updates)
    assert info.grad_evals == 1 and float(info.loss) == pytest.approx(float(loss) * s.n_total, rel=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15), state.q, expected)


def test_draws_have_q_s_moments_in_the_free_parameter_layout():
    net = bnn_asym.MLP(4, (3,), 2, symmetry="w_asym", seed=7)
    model, s = _setup(net, Likelihood("categorical"), rank=2)
    q = _random_q(model, s, seed=8)
    host = jax.device_get(elrg.ELRGState(q, None))
    draws = elrg.draws(host, np.random.default_rng(9), 40_000, s)
    assert set(draws) == set(model.latent_shapes())
    for layer in s.layers:
        mean, cov, _, _ = _layer_gaussian(q, s, layer)
        flat = np.concatenate([draws[n].reshape(len(draws[n]), -1) for n in layer.names], axis=1)
        assert flat.shape[1] == sum(model.net.layout[n].size for n in layer.names)  # free entries only
        sd = np.sqrt(np.diag(cov))
        np.testing.assert_array_less(np.abs(flat.mean(0) - mean), 5 * sd / np.sqrt(len(flat)))
        np.testing.assert_allclose(np.cov(flat.T), cov, atol=5 * np.sqrt(2 / len(flat)) * np.outer(sd, sd).max())


def test_build_runs_through_fit_data():
    """``build`` binds the pieces: its init gives q at the network's start and its step changes it."""
    net = bnn_asym.MLP(3, (4,), 2, symmetry="w_asym", seed=6)
    model, _ = _setup(net, Likelihood("categorical"))
    options = LowRankVI.make_options(dict(per_layer=True, rank=2))
    algo = elrg.build(model, 5, options)
    start = {k: jnp.asarray(v) for k, v in model.net.init(0, "float64").items()}
    batch = (jnp.ones((5, 3)), jnp.zeros(5, jnp.int32), jnp.ones(5))
    state = algo.init(jax.random.PRNGKey(0), start, batch)
    np.testing.assert_array_equal(state.q.mean["fc0.bias"], start["fc0.bias"])
    new, info = jax.jit(algo.step)(jax.random.PRNGKey(1), state, batch)
    assert np.isfinite(float(info.loss)) and not np.array_equal(new.q.mean["out.bias"], state.q.mean["out.bias"])
