"""Every engine on a small, well-specified classification task; seeds, options and warnings."""

import numpy as np
import pytest

import bnn_asym
from bnn_asym import datasets
from bnn_asym.metrics import accuracy, ece

ENGINE_OPTIONS = {
    "mfvi": dict(num_steps=1500, lr=0.01),
    "lowrank_vi": dict(num_steps=1500, lr=0.01),
    "nuts": dict(num_warmup=200, num_samples=200, num_chains=2),
    "hmc": dict(num_warmup=200, num_samples=200, num_chains=2, num_leapfrog=16),
    "swag": dict(pretrain_steps=800, swag_steps=400, batch_size=64),
    "multiswag": dict(pretrain_steps=500, swag_steps=300, batch_size=64, n_runs=2),
    "ensemble": dict(n_members=3, num_steps=800, batch_size=64),
}


@pytest.fixture(scope="module")
def moons():
    ds = datasets.load("moons", seed=0, n_samples=500)
    return ds, bnn_asym.MLP(2, (16, 16), 2, symmetry="w_asym", seed=0)


def test_every_engine_is_registered():
    assert set(ENGINE_OPTIONS) == set(bnn_asym.ENGINES)


@pytest.mark.parametrize("engine", list(ENGINE_OPTIONS))
def test_engine_beats_chance_and_nuts_ensembles_are_calibrated(moons, engine):
    ds, net = moons
    post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine=engine, seed=0, progress=False, **ENGINE_OPTIONS[engine])
    probs = post.predict(ds.X_test)
    assert probs.shape == (len(ds.X_test), 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert accuracy(probs, ds.y_test) > 0.8, engine
    if engine in ("nuts", "ensemble"):
        assert ece(probs, ds.y_test) < 0.1, engine
    diag = post.diagnostics()
    assert diag["wall_time_s"] > 0 and diag["grad_evals"] > 0
    if engine in ("mfvi", "lowrank_vi"):
        assert len(diag["elbo"]) == ENGINE_OPTIONS[engine]["num_steps"]
        assert np.mean(diag["elbo"][-100:]) > np.mean(diag["elbo"][:100])  # the ELBO improved
    if engine in ("nuts", "hmc"):
        assert {"n_steps", "tree_depth", "diverging", "step_size", "acceptance_rate"} <= set(post.sample_stats)
        assert diag["predictions"]["max_rhat"] < 1.1


@pytest.mark.filterwarnings("ignore:nuts. .* divergent")
@pytest.mark.parametrize("engine", ["mfvi", "nuts", "ensemble"])
def test_same_seed_same_draws(moons, engine):
    ds, net = moons
    small = {"mfvi": dict(num_steps=100), "nuts": dict(num_warmup=20, num_samples=10),
             "ensemble": dict(n_members=2, num_steps=30)}[engine]
    runs = [bnn_asym.fit(net, ds.X_train, ds.y_train, engine=engine, seed=s, progress=False, **small) for s in (3, 3, 4)]
    for k in runs[0].draws:
        np.testing.assert_array_equal(runs[0].draws[k], runs[1].draws[k])
    assert any(not np.array_equal(runs[0].draws[k], runs[2].draws[k]) for k in runs[0].draws)


def test_pyro_backends_run_and_give_the_same_structure(moons):
    ds, net = moons
    vi = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="mfvi", backend="pyro", num_steps=400, lr=0.02,
                      progress=False)
    assert accuracy(vi.predict(ds.X_test), ds.y_test) > 0.75
    mc = bnn_asym.fit(net, ds.X_train[:100], ds.y_train[:100], engine="nuts", backend="pyro", num_warmup=15,
                      num_samples=10, num_chains=2, max_tree_depth=4, progress=False)
    assert mc.draws["fc0.weight"].shape == (2, 10) + net.layout["fc0.weight"].shape
    assert mc.sample_stats["n_steps"].shape == (2, 10) and mc.info["grad_evals"] > 0


def test_regression_likelihoods_predict_mean_and_std():
    ds = datasets.load("gap", seed=0, n_samples=120)
    for lik, n_out in (("gaussian", 1), ("heteroscedastic", 2)):
        net = bnn_asym.MLP(1, (32,), n_out, seed=0)
        post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="ensemble", likelihood=lik, n_members=3,
                            num_steps=600, seed=0, progress=False)
        mean, std = post.predict(ds.X_test)
        assert mean.shape == std.shape == (len(ds.X_test),) and np.all(std > 0)
        near = np.abs(ds.X_test[:, 0] - ds.X_train[:, 0].mean()) < 3
        assert np.sqrt(np.mean((mean - ds.y_test)[near] ** 2)) < 0.8
        if lik == "gaussian":
            assert post.draws["noise_std"].shape == (3, 1)


def test_divergences_produce_a_warning_with_the_count(moons):
    ds, net = moons
    with pytest.warns(RuntimeWarning, match=r"\d+ divergent transitions"):
        post = bnn_asym.fit(net, ds.X_train, ds.y_train * 1, engine="hmc", num_warmup=0, num_samples=20,
                            num_chains=1, num_leapfrog=50, progress=False)
    assert post.diagnostics()["num_divergences"] > 0


def test_nan_elbo_stops_with_the_step_and_a_hint(moons):
    ds, net = moons
    with pytest.raises(FloatingPointError, match=r"step \d+.*smaller learning rate"):
        bnn_asym.fit(net, ds.X_train, ds.y_train, engine="mfvi", lr=1e30, num_steps=300, progress=False)


def test_unknown_engine_and_options(moons):
    ds, net = moons
    with pytest.raises(ValueError, match="valid engines: mfvi, lowrank_vi, nuts"):
        bnn_asym.fit(net, ds.X_train, ds.y_train, engine="laplace")
    with pytest.raises(TypeError, match=r"engine 'nuts' got unknown option\(s\) num_steps; valid options: num_warmup"):
        bnn_asym.fit(net, ds.X_train, ds.y_train, engine="nuts", num_steps=10)
    with pytest.raises(ValueError, match="num_chains"):
        bnn_asym.fit(net, ds.X_train, ds.y_train, engine="nuts", num_chains=0)
