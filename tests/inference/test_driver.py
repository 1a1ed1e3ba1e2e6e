"""The driver: seeds, checkpoints, budgets, NaN and divergence reports, warm starts, and no side effects."""

import random
import warnings

import jax
import numpy as np
import pyro
import pytest
import torch

import bnn_asym
from bnn_asym import datasets
from bnn_asym.inference.driver import Budget, CheckpointPlan, chain_seeds


@pytest.fixture(scope="module")
def moons():
    ds = datasets.load("moons", seed=0, n_samples=200)
    return ds.X_train, ds.y_train, bnn_asym.MLP(2, (8,), 2, symmetry="w_asym", seed=0)


def test_chain_streams_never_coincide_across_chains_or_seeds():
    keys = [tuple(s.run) for seed in range(30) for s in chain_seeds(seed, 4)]
    starts = [s.start for seed in range(30) for s in chain_seeds(seed, 4)]
    assert len(set(keys)) == len(keys) and len(set(starts)) == len(starts)
    assert tuple(chain_seeds(0, 4)[1].run) != tuple(chain_seeds(1, 1)[0].run)  # chain 1 of seed 0 vs chain 0 of 1
    assert [tuple(s.run) for s in chain_seeds(5, 2)] == [tuple(s.run) for s in chain_seeds(5, 3)[:2]]


def test_plans_and_budgets_are_validated():
    assert CheckpointPlan.parse([30, 10, 10]).steps == (10, 30)
    assert CheckpointPlan.parse({"every_steps": 5}).next_step_after(12) == 15
    for bad in ([0], {"every": 3}, "often", {"every_seconds": -1}):
        with pytest.raises(ValueError, match="checkpoint"):
            CheckpointPlan.parse(bad)
    assert Budget.parse({"seconds": 2}).seconds == 2
    for bad in ({"minutes": 1}, {"steps": 0}, 5):
        with pytest.raises(ValueError, match="budget"):
            Budget.parse(bad)


def test_num_steps_is_exact_whatever_the_chunking(moons):
    X, y, net = moons
    a = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=150, progress=False)
    b = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=200, progress=False)
    assert len(a.info["elbo"]) == 150 and a.info["grad_evals"] == 150 and a.run_info.steps == 150
    assert not np.array_equal(a.draws["out.bias"], b.draws["out.bias"])  # 150 steps are not 200
    with pytest.raises(TypeError, match="unknown option.*log_every"):
        bnn_asym.fit(net, X, y, engine="mfvi", log_every=100)


def test_checkpoints_every_steps_seconds_and_a_stopping_callback(moons):
    X, y, net = moons
    post = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=300, progress=False, checkpoints={"every_steps": 100})
    assert [c.step for c in post.checkpoints] == [100, 200, 300]
    assert all(c.posterior.n_draws == 200 and c.grad_evals == c.step for c in post.checkpoints)
    timed = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=400, progress=False, checkpoints={"every_seconds": 1e-6})
    assert len(timed.checkpoints) >= 2 and all(np.diff([c.wall_time_s for c in timed.checkpoints]) >= 0)
    seen = []

    def stop_at_200(checkpoint):
        seen.append(checkpoint.step)
        return checkpoint.step >= 200

    stopped = bnn_asym.fit(
        net,
        X,
        y,
        engine="nuts",
        num_warmup=50,
        num_samples=300,
        progress=False,
        checkpoints={"every_steps": 100},
        callback=stop_at_200,
    )
    assert seen == [100, 200] and stopped.run_info.stopped_by == "callback" and stopped.n_draws == 150
    assert seen and stopped.checkpoints == []  # handed to the callback, not kept


def test_budgets_stop_runs(moons):
    X, y, net = moons
    by_grads = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=1000, progress=False, budget={"grad_evals": 120})
    assert by_grads.run_info.stopped_by == "grad_evals" and 120 <= by_grads.run_info.grad_evals < 1000
    by_time = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=10**6, progress=False, budget={"seconds": 1.0})
    assert by_time.run_info.stopped_by == "seconds" and by_time.run_info.steps < 10**6
    with pytest.raises(ValueError, match="before keeping any draw"):
        bnn_asym.fit(net, X, y, engine="nuts", num_warmup=100, num_samples=10, progress=False, budget={"steps": 50})


def test_nan_stops_with_the_step_and_a_hint(moons):
    X, y, net = moons
    with pytest.raises(
        FloatingPointError, match=r"mfvi: the loss became NaN or inf at step \d+; .*smaller learning rate"
    ):
        bnn_asym.fit(net, X, y, engine="mfvi", lr=1e30, num_steps=300, progress=False)
    with pytest.raises(FloatingPointError, match=r"sgld: a parameter became NaN or inf at step \d+.*smaller step_size"):
        bnn_asym.fit(net, X, y, engine="sgld", step_size=1e6, num_warmup=10, num_samples=10, progress=False)


def test_divergences_warn_at_the_callers_line(moons):
    X, y, net = moons
    with pytest.warns(RuntimeWarning, match=r"\d+ divergent transitions") as record:
        post = bnn_asym.fit(
            net, X, y, engine="hmc", num_warmup=0, num_samples=20, num_chains=1, num_leapfrog=50, progress=False
        )
    assert post.diagnostics()["num_divergences"] > 0
    assert record[0].filename == __file__


@pytest.mark.parametrize(
    "engine, backend, options",
    [
        ("mfvi", "numpyro", dict(num_steps=30)),
        ("mfvi", "pyro", dict(num_steps=30)),
        ("nuts", "pyro", dict(num_warmup=5, num_samples=5, max_tree_depth=3)),
        ("ensemble", "numpyro", dict(num_steps=30)),
        ("laplace", "numpyro", dict(num_steps=30, num_draws=5)),
    ],
)
def test_fit_leaves_global_state_alone(moons, engine, backend, options):
    X, y, net = moons
    bnn_asym.fit(net, X, y, engine="mfvi", num_steps=5, progress=False)  # the cache is set up on the first fit
    np.random.seed(11)
    random.seed(11)
    torch.manual_seed(11)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state().clone())
    pyro.clear_param_store()
    pyro.param("users_param", torch.ones(3))
    config = {
        k: jax.config.values[k]
        for k in ("jax_enable_x64", "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    }
    bnn_asym.fit(net, X, y, engine=engine, backend=backend, progress=False, **options)
    assert np.array_equal(np.random.get_state()[1], before[0]) and random.getstate() == before[1]
    assert torch.equal(torch.get_rng_state(), before[2])
    assert list(pyro.get_param_store().keys()) == ["users_param"]
    assert {k: jax.config.values[k] for k in config} == config


def test_warm_starts_stop_at_a_looser_rule_than_the_map_engine(moons):
    # a sampler's start needs the mode's basin: the warm start's L-BFGS stops sooner (301 vs 725 gradients here)
    X, y, net = moons
    tight = bnn_asym.fit(net, X, y, engine="map", num_chains=2, progress=False)
    warm = bnn_asym.fit(
        net, X, y, engine="nuts", init="ensemble", num_warmup=5, num_samples=5, num_chains=2, progress=False
    )
    assert 0 < warm.info["init_grad_evals"] < 0.7 * tight.run_info.grad_evals


def test_warm_starts(moons):
    X, y, net = moons
    base = dict(num_warmup=20, num_samples=20, num_chains=2, progress=False)
    from_map = bnn_asym.fit(net, X, y, engine="nuts", init="map", **base)
    assert from_map.run_info.init == "map" and from_map.info["init_grad_evals"] > 0
    ens = bnn_asym.fit(net, X, y, engine="ensemble", n_members=2, num_steps=200, progress=False)
    chained = bnn_asym.fit(
        net, X, y, engine="sgld", init=ens, num_warmup=0, num_samples=5, num_chains=2, progress=False
    )
    assert chained.run_info.init == "posterior:ensemble"
    swag = bnn_asym.fit(
        net, X, y, engine="swag", init=ens, pretrain_steps=0, swag_steps=100, collect_every=10, progress=False
    )
    assert np.abs(swag.draws["out.bias"].mean((0, 1)) - ens.draws["out.bias"][0, 0]).max() < 0.5
    paper_init = bnn_asym.fit(net, X, y, engine="map", init="torch_default", num_steps=5, progress=False)
    assert paper_init.model.net.init_scheme == "torch_default"
    with pytest.raises(ValueError, match="init='xavier' is not valid; accepted: an init scheme"):
        bnn_asym.fit(net, X, y, engine="map", init="xavier")
    with pytest.raises(ValueError, match="200 draws; 300 chains"):
        bnn_asym.fit(
            net,
            X,
            y,
            engine="sgld",
            init=bnn_asym.fit(net, X, y, engine="mfvi", num_steps=5, progress=False),
            num_chains=300,
        )


def test_engine_backend_device_and_chain_method_errors(moons):
    X, y, net = moons
    with pytest.raises(ValueError, match="engine 'sgld' runs on backend 'numpyro'; got backend='pyro'"):
        bnn_asym.fit(net, X, y, engine="sgld", backend="pyro")
    with pytest.raises(ValueError, match="backend='jax' is not valid"):
        bnn_asym.fit(net, X, y, engine="mfvi", backend="jax")
    with pytest.raises(ValueError, match="chain_method='fast' is not valid"):
        bnn_asym.fit(net, X, y, engine="nuts", chain_method="fast")
    with pytest.raises(ValueError, match="chain_method='parallel' needs 3 JAX devices"):
        bnn_asym.fit(net, X, y, engine="nuts", num_chains=3, chain_method="parallel", progress=False)
    with pytest.raises(ValueError, match="unknown engine 'vae'; valid engines: mfvi, lowrank_vi, nuts"):
        bnn_asym.fit(net, X, y, engine="vae")
    with pytest.raises(TypeError, match=r"engine 'nuts' got unknown option\(s\) num_steps; valid options: num_warmup"):
        bnn_asym.fit(net, X, y, engine="nuts", num_steps=10)
    assert bnn_asym.fit(net, X, y, engine="map", num_steps=5, progress=False).run_info.device == "cpu"


def test_chain_methods_give_the_same_draws(moons):
    X, y, net = moons
    runs = {
        m: bnn_asym.fit(
            net, X, y, engine="sgld", num_warmup=10, num_samples=10, num_chains=2, chain_method=m, progress=False
        )
        for m in ("sequential", "parallel", "vectorized")
    }
    for m in ("parallel", "vectorized"):
        np.testing.assert_allclose(
            runs[m].draws["out.weight"], runs["sequential"].draws["out.weight"], rtol=1e-4, atol=1e-5
        )


def test_more_chains_than_devices_run_in_parallel_rounds(moons):
    """3 chains on 2 devices: "auto" runs them in rounds of 2 (pmap), with the draws of one chain at a time."""
    import jax

    X, y, net = moons
    options = dict(engine="sgld", num_warmup=10, num_samples=10, num_chains=3, progress=False)
    auto = bnn_asym.fit(net, X, y, **options)
    sequential = bnn_asym.fit(net, X, y, chain_method="sequential", **options)
    assert len(jax.devices("cpu")) == 2 and auto.run_info.chain_method == "parallel"
    np.testing.assert_allclose(auto.draws["out.weight"], sequential.draws["out.weight"], rtol=1e-4, atol=1e-5)


def test_swag_replaces_a_full_batch_with_a_noisy_one(moons):
    X, y, net = moons
    with pytest.warns(UserWarning, match="no gradient noise.*using batch_size=37"):
        post = bnn_asym.fit(
            net,
            X,
            y,
            engine="swag",
            batch_size=len(X),
            pretrain_steps=10,
            swag_steps=50,
            collect_every=5,
            progress=False,
        )
    assert post.draws["out.bias"].std(axis=(0, 1)).min() > 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bnn_asym.fit(net, X, y, engine="swag", pretrain_steps=10, swag_steps=50, collect_every=5, progress=False)


def test_the_progress_bar_shows_the_chunk_it_has_just_counted(moons, monkeypatch):
    """The postfix is set before the bar advances, so what is displayed after the last update is the last
    step's value (it lagged one chunk behind: MFVI ended showing an ELBO from hundreds of steps earlier)."""
    from bnn_asym.inference import driver

    events = []

    class Bar:
        def set_postfix(self, values, refresh=True):
            events.append(("postfix", values))

        def update(self, n):
            events.append(("update", n))

        def close(self):
            pass

    monkeypatch.setattr(driver, "progress_bar", lambda **kwargs: Bar())
    X, y, net = moons
    post = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=300, progress=True)
    shown = [values for kind, values in events if kind == "postfix"][-1]
    assert events[-1][0] == "update" and events[-2][0] == "postfix"
    assert float(shown["elbo"]) == pytest.approx(post.info["elbo"][-1], rel=1e-3)
