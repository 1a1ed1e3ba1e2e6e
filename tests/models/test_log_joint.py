"""One BayesianModel, two PPLs: NumPyro and Pyro give the same log joint for the same values."""

import numpy as np
import pytest
import torch
from conftest import inputs_for, perturbed_params, small_specs
from numpyro import handlers as nh
from numpyro.infer.util import log_density
from pyro import poutine

import bnn_asym
from bnn_asym.models import BayesianModel, Likelihood, Prior

pytestmark = pytest.mark.usefixtures("x64")  # compared at 1e-10: float64

LIKELIHOOD_OUTPUTS = {"categorical": 3, "bernoulli": 1, "gaussian": 1, "heteroscedastic": 2}


def targets(lik: Likelihood, n: int, rng) -> np.ndarray:
    if lik.name == "categorical":
        return rng.integers(0, 3, n)
    if lik.name == "bernoulli":
        return rng.integers(0, 2, n).astype(np.float64)
    return rng.standard_normal(n)


def values(model, seed=0, dtype="float64"):
    vals = perturbed_params(model.net, seed, dtype)
    if model.likelihood.learns_noise:
        vals["noise_std"] = np.asarray(0.7, dtype)
    return vals


def both_log_joints(model, X, y, vals, dtype=torch.float64):
    lj_numpyro, _ = log_density(model.numpyro_model(), (X, y), {}, vals)
    cond = poutine.condition(model.pyro_model(dtype=dtype), data={k: torch.as_tensor(v) for k, v in vals.items()})
    lj_pyro = poutine.trace(cond).get_trace(torch.as_tensor(X), torch.as_tensor(y)).log_prob_sum()
    return float(lj_numpyro), float(lj_pyro)


def test_numpyro_and_pyro_agree_for_every_family_and_symmetry(family_symmetry):
    spec = family_symmetry
    model = BayesianModel(spec, Likelihood("categorical"), Prior("fan_in", scale=1.3, bias_scale=0.7))
    X = inputs_for(spec, n=11)
    y = np.random.default_rng(0).integers(0, 3, 11)
    a, b = both_log_joints(model, X, y, values(model))
    assert a == pytest.approx(b, rel=1e-10, abs=1e-8)


@pytest.mark.parametrize(
    "lik",
    [
        Likelihood("categorical"),
        Likelihood("bernoulli"),
        Likelihood("gaussian", 0.3),
        Likelihood("gaussian", None),
        Likelihood("heteroscedastic"),
    ],
    ids=lambda l: f"{l.name}-{l.noise_std}",
)
@pytest.mark.parametrize("symmetry", ["standard", "w_asym", "sigma_asym"])
def test_every_likelihood_agrees(lik, symmetry):
    spec = bnn_asym.MLP(4, (6,), LIKELIHOOD_OUTPUTS[lik.name], symmetry=symmetry, seed=1)
    model = BayesianModel(spec, lik, Prior("normal", scale=0.8))
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((9, 4)), targets(lik, 9, rng)
    a, b = both_log_joints(model, X, y, values(model))
    assert a == pytest.approx(b, rel=1e-10, abs=1e-8)


def test_float32_log_joints_agree_to_1e4():
    spec = small_specs("w_asym")["cnn"]
    model = BayesianModel(spec, Likelihood("categorical"))
    X = inputs_for(spec, dtype="float32")
    y = np.random.default_rng(0).integers(0, 3, len(X))
    import jax

    with jax.enable_x64(False):
        a, b = both_log_joints(model, X, y, values(model, dtype="float32"), dtype=torch.float32)
    assert a == pytest.approx(b, rel=1e-4)


def test_fixed_entries_are_not_random_variables():
    spec = bnn_asym.MLP(10, (8,), 2, symmetry="w_asym", n_fix=3)
    model = BayesianModel(spec, Likelihood("categorical"))
    trace = nh.trace(nh.seed(model.numpyro_model(), 0)).get_trace(np.zeros((2, 10)), np.zeros(2, int))
    latent = {k: v["value"].shape for k, v in trace.items() if v["type"] == "sample" and not v["is_observed"]}
    assert latent == {p.name: p.shape for p in spec.layout}
    assert latent["fc0.weight"] == (8, 7)
    assert sum(np.prod(s) for s in latent.values()) == spec.num_free_params


@pytest.mark.parametrize("ppl", ["numpyro", "pyro"])
def test_minibatch_likelihood_is_rescaled_to_the_full_data(ppl):
    spec = bnn_asym.MLP(3, (4,), 2, seed=0)
    model = BayesianModel(spec, Likelihood("categorical"))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 3)), rng.integers(0, 2, 10)  # a batch of 10 rows from 40
    vals = values(model)
    if ppl == "numpyro":
        tr = nh.trace(nh.seed(nh.substitute(model.numpyro_model(), vals), 0)).get_trace(X, y, 40)
        site = tr["y"]
        scaled = float(site["fn"].log_prob(site["value"]).sum() * site["scale"])
    else:
        cond = poutine.condition(
            model.pyro_model(dtype=torch.float64), data={k: torch.as_tensor(v) for k, v in vals.items()}
        )
        tr = poutine.trace(cond).get_trace(torch.as_tensor(X), torch.as_tensor(y), 40)
        tr.compute_log_prob()
        scaled = float(tr.nodes["y"]["log_prob_sum"])
    full = spec.apply_jax(vals, X)
    logp = np.asarray(full) - np.log(np.exp(np.asarray(full)).sum(-1, keepdims=True))
    batch_ll = logp[np.arange(10), y].sum()
    assert scaled == pytest.approx(batch_ll * 40 / 10, rel=1e-8)
