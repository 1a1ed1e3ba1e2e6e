"""Engines against an exact answer: Bayesian linear regression (a network with no hidden layer)."""

import numpy as np
import pytest

import bnn_asym
from bnn_asym.models import BayesianModel, Likelihood, Prior

NOISE, W_SCALE, B_SCALE = 0.5, 1.0, 2.0


def problem(symmetry="standard", n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ np.array([1.0, -0.5, 0.3, 0.8]) + 0.2 + NOISE * rng.standard_normal(n)
    asym = dict(n_fix=2, kappa=1.0) if symmetry == "w_asym" else {}
    net = bnn_asym.MLP(d, (), 1, symmetry=symmetry, seed=3, **asym)
    model = BayesianModel(net, Likelihood("gaussian", NOISE), Prior("normal", scale=W_SCALE, bias_scale=B_SCALE))
    return model, X.astype(np.float32), y.astype(np.float32)


def exact_posterior(model, X, y):
    """Mean and covariance over (free weights..., bias); fixed W-Asym entries act as a known offset."""
    net = model.net
    X = X.astype(np.float64)
    offset = np.zeros(len(X))
    free_cols = np.arange(X.shape[1])
    if net.symmetry == "w_asym":
        c = net.constants()
        fixed = c["out.fixed_index"][0]
        offset = X[:, fixed] @ c["out.fixed_value"][0]
        free_cols = np.setdiff1d(free_cols, fixed)
    phi = np.column_stack([X[:, free_cols], np.ones(len(X))])
    prior_prec = np.diag([1 / W_SCALE ** 2] * len(free_cols) + [1 / B_SCALE ** 2])
    cov = np.linalg.inv(prior_prec + phi.T @ phi / NOISE ** 2)
    mean = cov @ phi.T @ (y - offset) / NOISE ** 2
    return mean, cov


def flat_draws(post):
    w = post.draws["out.weight"].reshape(post.n_chains * post.n_draws, -1)
    b = post.draws["out.bias"].reshape(post.n_chains * post.n_draws, 1)
    return np.column_stack([w, b]).astype(np.float64)


@pytest.mark.parametrize("symmetry", ["standard", "w_asym"])
def test_nuts_matches_the_analytic_posterior(symmetry):
    model, X, y = problem(symmetry)
    mean, cov = exact_posterior(model, X, y)
    post = bnn_asym.fit(model, X, y, engine="nuts", num_warmup=300, num_samples=600, num_chains=2, seed=1,
                        progress=False)
    draws = flat_draws(post)
    std = np.sqrt(np.diag(cov))
    ess = post.diagnostics()["parameters"]["min_ess_bulk"]
    assert ess > 100
    # means within 4 Monte Carlo standard errors; covariance within 25%
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 4 * std / np.sqrt(ess))
    assert np.max(np.abs(np.cov(draws.T) - cov) / np.outer(std, std)) < 0.25


def test_mfvi_matches_the_posterior_mean():
    model, X, y = problem()
    mean, cov = exact_posterior(model, X, y)
    post = bnn_asym.fit(model, X, y, engine="mfvi", num_steps=3000, lr=0.01, num_draws=400, seed=0, progress=False)
    draws = flat_draws(post)
    std = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 0.25 * std + 3 * draws.std(0) / 20)
    # mean-field underestimates variance, never by orders of magnitude here
    assert np.all(draws.std(0) < 1.5 * std) and np.all(draws.std(0) > 0.2 * std)


def test_lowrank_vi_captures_the_posterior_mean():
    model, X, y = problem()
    mean, cov = exact_posterior(model, X, y)
    post = bnn_asym.fit(model, X, y, engine="lowrank_vi", num_steps=3000, rank=2, num_particles=4,
                        lr=0.005, num_draws=400, seed=0, progress=False)
    std = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(flat_draws(post).mean(0) - mean), 0.3 * std + 0.02)


def test_swag_is_reasonable():
    model, X, y = problem()
    mean, cov = exact_posterior(model, X, y)
    post = bnn_asym.fit(model, X, y, engine="swag", pretrain_steps=1500, swag_steps=1000, batch_size=40, lr=0.01,
                        swag_lr=0.005, collect_every=20, num_draws=200, seed=0, progress=False)
    draws = flat_draws(post)
    std = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), std)  # within one posterior std
    assert np.all(draws.std(0) > 0) and np.all(draws.std(0) < 10 * std)
