"""Empirical Bayes for the prior scale: the Laplace evidence is exact where it should be, the selection picks
the scale the data came from, and fit(prior=...) uses and records the choice."""

import math
import warnings

import numpy as np
import pytest

import bnn_asym
from bnn_asym.models import BayesianModel, Likelihood, Prior
from bnn_asym.prior_selection import log_evidence
from bnn_asym.warn import ConvergenceWarning

NOISE = 0.5


def linear_gaussian(symmetry: str, scale: float):
    """40 rows, 4 inputs, one linear output with a known noise std, N(0, scale^2) weights, N(0, 1) bias."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    y = X @ np.array([1.0, -0.5, 0.3, 0.8]) + 0.2 + NOISE * rng.standard_normal(40)
    asym = dict(n_fix=2, kappa=1.0) if symmetry == "w_asym" else {}
    net = bnn_asym.MLP(4, (), 1, symmetry=symmetry, seed=3, **asym)
    model = BayesianModel(net, Likelihood("gaussian", NOISE), Prior("normal", scale=scale, bias_scale=1.0))
    return model, X.astype(np.float32), y.astype(np.float32)


def exact_log_evidence(model, X, y, noise):
    """log N(y; offset, noise^2 I + Phi Sigma_prior Phi^T) of a linear-Gaussian model (free weights and bias)."""
    net, X = model.net, X.astype(np.float64)
    offset, cols = np.zeros(len(X)), np.arange(X.shape[1])
    if net.symmetry == "w_asym":
        c = net.constants()
        fixed = c["out.fixed_index"][0]
        offset = X[:, fixed] @ c["out.fixed_value"][0]
        cols = np.setdiff1d(cols, fixed)
    phi = np.column_stack([X[:, cols], np.ones(len(X))])
    prior_var = np.array([model.prior.scale**2] * len(cols) + [model.prior.bias_scale**2])
    cov = noise**2 * np.eye(len(X)) + phi @ np.diag(prior_var) @ phi.T
    r = y.astype(np.float64) - offset
    sign, logdet = np.linalg.slogdet(cov)
    return -0.5 * (r @ np.linalg.solve(cov, r) + logdet + len(X) * math.log(2 * math.pi))


@pytest.mark.parametrize("symmetry", ["standard", "w_asym"])
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_laplace_evidence_is_exact_for_a_linear_gaussian_model(symmetry, scale):
    """Linear in its parameters and Gaussian, the posterior is Gaussian and the Laplace evidence exact: equal to
    the closed form up to the float32 MAP (measured |difference| <= 2e-3 nats of ~-20; asserted 0.02)."""
    model, X, y = linear_gaussian(symmetry, scale)
    post = bnn_asym.fit(model, X, y, engine="map", progress=False)
    got = log_evidence(post, X, y)
    assert abs(got - exact_log_evidence(model, X, y, NOISE)) < 0.02, (got, exact_log_evidence(model, X, y, NOISE))


def test_evidence_picks_the_scale_the_weights_were_drawn_from(seed_shift):
    """400 rows of a linear-Gaussian model whose 20 weights are N(0, 3^2): on the grid 0.3 / 3 / 30 (a decade
    apart) the evidence picks 3 (the log evidence per row separates the grid points by > 0.01 nats, i.e. > 4
    nats in all, on every seed tried: 0-9)."""
    rng = np.random.default_rng(seed_shift)
    X = rng.standard_normal((400, 20)).astype(np.float32)
    y = (X @ (3.0 * rng.standard_normal(20)) + 0.5 * rng.standard_normal(400)).astype(np.float32)
    net = bnn_asym.MLP(20, (), 1, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "prior selection", ConvergenceWarning)  # an inner choice, MAPs converged
        choice = bnn_asym.select_prior_scale(
            net, X, y, scales=(0.3, 3.0, 30.0), likelihood=Likelihood("gaussian", 0.5), prior=Prior("normal")
        )
    assert choice.scale == 3.0 and choice.prior.scale == 3.0, choice.table()
    assert np.argmax(choice.scores) == 1 and choice.method == "evidence"


def test_validation_holds_rows_out_and_picks_the_lowest_held_out_nll(tiny_task):
    net, X, y = tiny_task
    with pytest.warns(ConvergenceWarning, match=r"chosen scale 1 is the largest on the grid \(0.05-1\)"):
        choice = bnn_asym.select_prior_scale(net, X, y, method="validation", scales=(0.05, 1.0))
    assert choice.scores[0] > choice.scores[1] and choice.scale == 1.0  # 0.05 shrinks every weight to ~0
    assert "(chosen)" in choice.table().splitlines()[3]


def test_fit_selects_uses_and_records_the_prior(tiny_task):
    net, X, y = tiny_task
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "prior selection: the chosen scale", ConvergenceWarning)  # edge or not
        post = bnn_asym.fit(net, X, y, engine="map", prior="evidence", progress=False)
    chosen = post.info["prior_selection"]
    assert chosen["method"] == "evidence" and len(chosen["scores"]) == len(chosen["scales"])
    assert post.model.prior.scale == chosen["scale"] == chosen["scales"][int(np.argmax(chosen["scores"]))]


def test_bad_selections_get_clear_errors(tiny_task):
    net, X, y = tiny_task
    with pytest.raises(ValueError, match="prior selection method"):
        bnn_asym.select_prior_scale(net, X, y, method="marglik")
    for bad in ((), (1.0, -2.0), "wide", (float("nan"),)):
        with pytest.raises(ValueError, match="scales"):
            bnn_asym.select_prior_scale(net, X, y, scales=bad)
    with pytest.raises(ValueError, match="accepted: a bnn_asym.Prior"):
        bnn_asym.fit(net, X, y, engine="map", prior="empirical", progress=False)
    with pytest.raises(ValueError, match="validation_share"):
        bnn_asym.select_prior_scale(net, X, y, method="validation", validation_share=1.5)
    regression = bnn_asym.MLP(5, (4,), 2, seed=0)  # two outputs and real targets: heteroscedastic
    with pytest.raises(ValueError, match="method='validation'"):
        bnn_asym.select_prior_scale(regression, X, X[:, 0], likelihood="heteroscedastic", scales=(1.0,))
