"""How much does ``bnn_asym.fit`` cost on top of hand-written NumPyro / the hardware limit?

Measured side by side in one run (machines are noisy; ratios are what count):
1. NUTS through fit() vs a hand-written NumPyro NUTS on the same BNN: wall-time ratio (target <= 1.10).
2. Gradient evaluations per second inside NUTS (sampling phase) vs a jitted raw value_and_grad loop
   of the same log joint (target >= 0.9).
3. MFVI through fit(): SVI steps per second vs a hand-written jitted SVI loop (target >= 0.9).
4. SGLD through fit(): steps per second vs a hand-written jitted SGLD loop on BlackJAX's kernel, same
   mini-batches of 128, 4 chains in parallel over 2 devices (target >= 0.9).
5. MCLMC through fit() (its tuning included) vs a hand-written jitted BlackJAX MCLMC loop at fixed L and
   step size, same model, 2 chains in parallel over 2 devices: steps per second (target >= 0.9).
6. NumPyro vs Pyro NUTS backends on the same model: ESS per second.

Run:  python benchmarks/engine_overhead.py [--quick] [--parts gradients ...]
Writes benchmarks/results/engine_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpyro

numpyro.set_host_device_count(2)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _results import RESULTS, write_results  # noqa: E402

import bnn_asym  # noqa: E402
from bnn_asym import datasets  # noqa: E402
from bnn_asym.bench.machine import machine_description  # noqa: E402
from bnn_asym.inference.base import start_values  # noqa: E402
from bnn_asym.models import BayesianModel, Likelihood, Prior  # noqa: E402

torch.set_num_threads(1)
# both sides of every comparison share the persistent compilation cache (opt-in in the library), so repeated
# runs time the steps rather than compilation
bnn_asym.configure_compilation_cache(True)
PARTS = ("nuts_wall", "gradients", "mfvi", "sgld", "mclmc", "backends")


def problem(n_samples=None):
    ds = datasets.load("digits", seed=0, n_samples=n_samples)
    net = bnn_asym.MLP(ds.n_features, (32, 32), ds.n_classes, symmetry="w_asym", seed=0)
    return ds, BayesianModel(net, Likelihood("categorical"), Prior())


def chain_inits(model, chains):
    inits = [start_values(model, 1000 * c) for c in range(chains)]
    return {k: np.stack([v[k] for v in inits]) for k in inits[0]}


def hand_written_nuts(model, X, y, warmup, samples, chains):
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(
        NUTS(model.numpyro_model()),
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chain_method="parallel",
        progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(X), jnp.asarray(y), init_params=chain_inits(model, chains))
    jax.block_until_ready(mcmc.get_samples())
    return time.perf_counter() - start


def quiet_fit(model, X, y, **options):
    """bnn_asym.fit without a progress bar (what every measurement here times)."""
    return bnn_asym.fit(model, X, y, progress=False, **options)


def fit_nuts(model, X, y, warmup, samples, chains):
    start = time.perf_counter()
    options = dict(num_warmup=warmup, num_samples=samples, num_chains=chains, chain_method="parallel")
    post = quiet_fit(model, X, y, engine="nuts", **options)
    return time.perf_counter() - start, post


def nuts_gradient_rate(model, X, y, warmup, short, long):
    """Leapfrog steps (= gradient evaluations) per second of NumPyro NUTS in the sampling phase.

    Every ``mcmc.run`` compiles its sampling loop (seconds). Two runs from the same warmed-up state,
    ``short`` and ``long`` draws, cost the same compilation; the difference of their steps over the
    difference of their times is the rate of sampling itself.
    """
    from numpyro.infer import MCMC, NUTS

    X, y = jnp.asarray(X), jnp.asarray(y)
    timings = []
    for samples in (short, long):
        mcmc = MCMC(NUTS(model.numpyro_model()), num_warmup=warmup, num_samples=samples, progress_bar=False)
        mcmc.warmup(jax.random.PRNGKey(0), X, y, init_params=start_values(model, 0), extra_fields=("num_steps",))
        start = time.perf_counter()
        mcmc.run(mcmc.post_warmup_state.rng_key, X, y, extra_fields=("num_steps",))
        jax.block_until_ready(mcmc.get_samples())
        timings.append((time.perf_counter() - start, int(np.asarray(mcmc.get_extra_fields()["num_steps"]).sum())))
    (t1, s1), (t2, s2) = timings
    return (s2 - s1) / (t2 - t1), s2 - s1, t1 - s1 * (t2 - t1) / (s2 - s1)


def raw_gradient_rate(model, X, y, n_evals):
    """value_and_grad of the same log joint, n_evals times in one jitted fori_loop (the hardware limit)."""
    from numpyro.infer.util import log_density

    model_fn = model.numpyro_model()
    X, y = jnp.asarray(X), jnp.asarray(y)

    def potential(p):
        return -log_density(model_fn, (X, y), {}, p)[0]

    vg = jax.value_and_grad(potential)

    @jax.jit
    def loop(p):
        def body(_, carry):
            p, acc = carry
            v, g = vg(p)  # each step depends on the last: nothing can be hoisted or skipped
            return jax.tree.map(lambda a, b: a - 1e-9 * b, p, g), acc + v

        return jax.lax.fori_loop(0, n_evals, body, (p, 0.0))

    p0 = {k: jnp.asarray(v) for k, v in start_values(model, 0).items()}
    jax.block_until_ready(loop(p0))
    start = time.perf_counter()
    jax.block_until_ready(loop(p0))
    return n_evals / (time.perf_counter() - start)


def hand_written_svi(model, X, y, steps):
    from numpyro.infer import SVI, Trace_ELBO, init_to_value
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.optim import Adam

    model_fn = model.numpyro_model()
    init = {k: jnp.asarray(v) for k, v in start_values(model, 0).items()}
    guide = AutoNormal(model_fn, init_loc_fn=init_to_value(values=init), init_scale=0.01)
    svi = SVI(model_fn, guide, Adam(1e-2), Trace_ELBO())
    X, y = jnp.asarray(X), jnp.asarray(y)
    start = time.perf_counter()
    state = svi.init(jax.random.PRNGKey(0), X, y, None)
    update = jax.jit(svi.update, static_argnums=3)
    for _ in range(steps):
        state, loss = update(state, X, y, None)
    jax.block_until_ready(loss)
    params = svi.get_params(state)
    jax.block_until_ready(guide.sample_posterior(jax.random.PRNGKey(1), params, sample_shape=(200,)))
    return steps / (time.perf_counter() - start)


def fit_svi(model, X, y, steps):
    start = time.perf_counter()
    quiet_fit(model, X, y, engine="mfvi", num_steps=steps, lr=1e-2)
    return steps / (time.perf_counter() - start)


def hand_written_sgld(model, X, y, steps, chains, batch, step_size):
    """BlackJAX's SGLD kernel in a jitted scan per chain, chains pmapped over the devices: the same
    mini-batch rule (a random subset without replacement per step), the same gradient estimate, and, as
    fit() does, every draw kept and brought to the host."""
    import blackjax
    from numpyro.infer.util import potential_energy

    model_fn = model.numpyro_model()
    n = len(X)
    X, y = jnp.asarray(X), jnp.asarray(y)
    kernel = blackjax.sgmcmc.sgld.build_kernel()

    def grad(position, minibatch):
        return jax.grad(lambda p: -potential_energy(model_fn, (minibatch[0], minibatch[1], n), {}, p))(position)

    def chain(position, key):
        def step(carry, _):
            position, key = carry
            key, k_batch, k_step = jax.random.split(key, 3)
            idx = jax.random.choice(k_batch, n, (batch,), replace=False)
            position = kernel(k_step, position, grad, (X[idx], y[idx]), step_size, 1.0)
            return (position, key), position

        return jax.lax.scan(step, (position, key), None, length=steps)[1]

    run = jax.pmap(chain)
    starts = [start_values(model, c) for c in range(chains)]
    positions = {k: jnp.stack([jnp.asarray(s[k]) for s in starts]) for k in starts[0]}
    keys = jax.random.split(jax.random.PRNGKey(0), chains)
    start = time.perf_counter()
    draws = {k: np.asarray(v) for k, v in run(positions, keys).items()}
    assert all(np.isfinite(v).all() for v in draws.values())
    return chains * steps / (time.perf_counter() - start)


def fit_sgld(model, X, y, steps, chains, batch, step_size):
    start = time.perf_counter()
    options = dict(num_warmup=0, num_samples=steps, num_chains=chains, batch_size=batch, step_size=step_size)
    quiet_fit(model, X, y, engine="sgld", chain_method="parallel", **options)
    return chains * steps / (time.perf_counter() - start)


def hand_written_mclmc(model, X, y, steps, chains):
    """BlackJAX's MCLMC kernel in a jitted scan per chain at a fixed L and step size (no tuning), chains
    pmapped over the devices, every position brought to the host (as fit() keeps every draw)."""
    import blackjax
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    model_fn = model.numpyro_model()
    n = len(X)
    X, y = jnp.asarray(X), jnp.asarray(y)
    template = start_values(model, 0)
    unravel = ravel_pytree({k: jnp.asarray(v) for k, v in template.items()})[1]

    def logdensity(flat):
        return -potential_energy(model_fn, (X, y, n), {}, unravel(flat))

    kernel = blackjax.mcmc.mclmc.build_kernel()
    dim = sum(np.size(v) for v in template.values())

    def chain(flat, key):
        state = blackjax.mcmc.mclmc.init(flat, logdensity, key)

        def step(carry, k):
            state, _ = kernel(k, carry, logdensity, 1.0, jnp.sqrt(dim), 0.05)
            return state, state.position

        return jax.lax.scan(step, state, jax.random.split(key, steps))[1]

    run = jax.pmap(chain)
    starts = jnp.stack(
        [ravel_pytree({k: jnp.asarray(v) for k, v in start_values(model, c).items()})[0] for c in range(chains)]
    )
    keys = jax.random.split(jax.random.PRNGKey(0), chains)
    start = time.perf_counter()
    draws = np.asarray(run(starts, keys))
    assert np.isfinite(draws).all()
    return chains * steps / (time.perf_counter() - start)


def fit_mclmc(model, X, y, steps, chains):
    # thinning=1: fit() then takes ``steps`` steps and keeps every post-warmup one, as the hand-written loop
    # does (the default thinning of 5 runs 5 steps per kept draw: counting draws as steps undercounted 3x)
    start = time.perf_counter()
    options = dict(num_warmup=steps // 2, num_samples=steps - steps // 2, num_chains=chains, thinning=1)
    quiet_fit(model, X, y, engine="mclmc", chain_method="parallel", **options)
    return chains * steps / (time.perf_counter() - start)


def ess_per_second(model, X, y, backend, warmup, samples):
    options = dict(num_warmup=warmup, num_samples=samples, num_chains=2, max_tree_depth=6)
    post = quiet_fit(model, X, y, engine="nuts", backend=backend, **options)
    d = post.diagnostics()
    wall = post.info["wall_time_s"]
    return {
        "wall_s": wall,
        "grad_evals": d["grad_evals"],
        "grad_evals_per_s": d["grad_evals"] / wall,
        "min_ess_bulk_params": d["parameters"]["min_ess_bulk"],
        "median_ess_bulk_params": d["parameters"]["median_ess_bulk"],
        "min_ess_bulk_pred": d["predictions"]["min_ess_bulk"],
        "median_ess_per_s": d["parameters"]["median_ess_bulk"] / wall,
        "min_ess_pred_per_s": d["predictions"]["min_ess_bulk"] / wall,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small settings, to check the script runs")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=list(PARTS),
        choices=PARTS,
        help="measure only these (the others are kept from the last results file)",
    )
    args = parser.parse_args()
    q, parts = args.quick, set(args.parts)
    name = "engine_overhead_quick" if q else "engine_overhead"
    ds, model = problem()
    X, y = ds.X_train, ds.y_train
    previous = RESULTS / f"{name}.json"
    out = json.loads(previous.read_text()) if previous.exists() and parts != set(PARTS) else {}
    out.update(
        {
            "machine": machine_description(),
            "problem": f"digits ({len(X)} train rows), MLP 64-32-32-10 "
            f"W-Asym, {model.net.num_free_params} free parameters, categorical likelihood",
        }
    )

    warmup, samples = (50, 50) if q else (300, 300)
    if "nuts_wall" in parts:
        # alternate, and keep the faster of two runs each: both share the persistent compilation cache
        hand, via_fit = [], []
        for _ in range(2):
            hand.append(hand_written_nuts(model, X, y, warmup, samples, 2))
            via_fit.append(fit_nuts(model, X, y, warmup, samples, 2)[0])
        out["nuts_wall"] = {
            "hand_written_s": hand,
            "fit_s": via_fit,
            "ratio": min(via_fit) / min(hand),
            "settings": f"2 parallel chains, {warmup} warmup + {samples} samples",
        }
        print("nuts wall", out["nuts_wall"], flush=True)

    if "gradients" in parts:
        # alternate three times and keep the best of each side: a busy neighbour only ever slows one down
        nuts_rates, raw_rates = [], []
        for _ in range(3):
            nuts_rate, steps, compile_s = nuts_gradient_rate(model, X, y, warmup, 50 if q else 100, 200 if q else 800)
            nuts_rates.append(nuts_rate)
            raw_rates.append(raw_gradient_rate(model, X, y, n_evals=2000 if q else 20000))
        out["nuts_gradients"] = {
            "nuts_grad_evals_per_s": max(nuts_rates),
            "raw_value_and_grad_per_s": max(raw_rates),
            "ratio": max(nuts_rates) / max(raw_rates),
            "nuts_grad_evals_timed": steps,
            "sampling_loop_compile_s": compile_s,
            "nuts_rates": nuts_rates,
            "raw_rates": raw_rates,
        }
        print("gradients", out["nuts_gradients"], flush=True)

    svi_steps = 500 if q else 5000
    if "mfvi" in parts:
        hand_svi, fit_rate = [], []
        for _ in range(2):
            hand_svi.append(hand_written_svi(model, X, y, svi_steps))
            fit_rate.append(fit_svi(model, X, y, svi_steps))
        out["mfvi_steps"] = {
            "hand_written_steps_per_s": hand_svi,
            "fit_steps_per_s": fit_rate,
            "ratio": max(fit_rate) / max(hand_svi),
            "steps": svi_steps,
        }
        print("mfvi", out["mfvi_steps"], flush=True)
    if "sgld" in parts:
        sgld_steps = 500 if q else 5000
        hand, via_fit = [], []
        for _ in range(2):  # alternate; compilation included on both sides (each compiles its own loop)
            hand.append(hand_written_sgld(model, X, y, sgld_steps, 2, 128, 3e-5))
            via_fit.append(fit_sgld(model, X, y, sgld_steps, 2, 128, 3e-5))
        out["sgld_steps"] = {
            "hand_written_steps_per_s": hand,
            "fit_steps_per_s": via_fit,
            "ratio": max(via_fit) / max(hand),
            "steps": sgld_steps,
            "settings": "2 chains in parallel, batch 128, step size 3e-5",
        }
        print("sgld", out["sgld_steps"], flush=True)
    if "mclmc" in parts:
        mclmc_steps = 500 if q else 5000
        hand, via_fit = [], []
        for _ in range(2):  # alternate; compilation included on both sides
            hand.append(hand_written_mclmc(model, X, y, mclmc_steps, 2))
            via_fit.append(fit_mclmc(model, X, y, mclmc_steps, 2))
        out["mclmc_steps"] = {
            "hand_written_steps_per_s": hand,
            "fit_steps_per_s": via_fit,
            "ratio": max(via_fit) / max(hand),
            "steps": mclmc_steps,
            "settings": "2 chains in parallel; fit(): half the steps tuning (step size, preconditioner, L), "
            "thinning 1, its mixing check included (at most 1,000 draws per chain; reading every draw, "
            "it made this 0.62x); hand-written: fixed L = sqrt(dim), step size 0.05",
        }
        print("mclmc", out["mclmc_steps"], flush=True)
    if "backends" in parts:
        out["backends"] = backend_comparison(q)
        print("backends", out["backends"], flush=True)

    write_results(name, out, table(out))


def backend_comparison(q: bool) -> dict:
    small_ds = datasets.load("moons", seed=0, n_samples=300)
    small = BayesianModel(bnn_asym.MLP(2, (16, 16), 2, symmetry="w_asym", seed=0))
    w, s = (20, 20) if q else (150, 150)
    backends = {b: ess_per_second(small, small_ds.X_train, small_ds.y_train, b, w, s) for b in ("numpyro", "pyro")}
    return {
        "problem": f"moons ({len(small_ds.X_train)} rows), MLP 2-16-16-2 W-Asym, 2 chains, "
        f"{w} warmup + {s} samples, max tree depth 6",
        **backends,
        "median_ess_per_s_ratio_numpyro_over_pyro": backends["numpyro"]["median_ess_per_s"]
        / backends["pyro"]["median_ess_per_s"],
        "grad_evals_per_s_ratio_numpyro_over_pyro": backends["numpyro"]["grad_evals_per_s"]
        / backends["pyro"]["grad_evals_per_s"],
    }


def mclmc_row(out: dict) -> list[str]:
    if "mclmc_steps" not in out:
        return []
    mc = out["mclmc_steps"]
    return [
        f"| MCLMC steps/s via fit() vs hand-written jitted BlackJAX MCLMC loop ({mc['settings']}, {mc['steps']} "
        f"steps per chain, compile included, every draw kept on the host) | {max(mc['fit_steps_per_s']):.0f} | "
        f"{max(mc['hand_written_steps_per_s']):.0f} | {mc['ratio']:.3f} | >= 0.9 |"
    ]


def table(out: dict) -> str:
    n, g, m, b = out["nuts_wall"], out["nuts_gradients"], out["mfvi_steps"], out["backends"]
    sg = out["sgld_steps"]
    return "\n".join(
        [
            f"Engine overhead ({out['problem']})",
            "",
            "| measure | bnn_asym | reference | ratio | target |",
            "|---|---|---|---|---|",
            f"| NUTS wall time via fit() vs hand-written NumPyro ({n['settings']}) | {min(n['fit_s']):.1f} s | "
            f"{min(n['hand_written_s']):.1f} s | {n['ratio']:.3f} | <= 1.10 |",
            f"| gradient evaluations/s inside NUTS (sampling, compilation excluded) vs jitted raw value_and_grad "
            f"loop | {g['nuts_grad_evals_per_s']:.0f} | "
            f"{g['raw_value_and_grad_per_s']:.0f} | {g['ratio']:.3f} | >= 0.9 |",
            f"| MFVI steps/s via fit() vs hand-written jitted SVI loop ({m['steps']} steps, init and compile "
            "included) | "
            f"{max(m['fit_steps_per_s']):.0f} | {max(m['hand_written_steps_per_s']):.0f} | {m['ratio']:.3f} | >= 0.9 |",
            f"| SGLD steps/s via fit() vs hand-written jitted BlackJAX SGLD loop ({sg['settings']}, "
            f"{sg['steps']} steps "
            f"per chain, compile included, every draw kept on the host) | {max(sg['fit_steps_per_s']):.0f} | "
            f"{max(sg['hand_written_steps_per_s']):.0f} "
            f"| {sg['ratio']:.3f} | >= 0.9 |",
            *mclmc_row(out),
            f"| NUTS median ESS/s, NumPyro vs Pyro backend ({b['problem']}) | {b['numpyro']['median_ess_per_s']:.2f} | "
            f"{b['pyro']['median_ess_per_s']:.2f} | {b['median_ess_per_s_ratio_numpyro_over_pyro']:.1f}x | reported |",
            f"| NUTS gradient evaluations/s, NumPyro vs Pyro | {b['numpyro']['grad_evals_per_s']:.0f} | "
            f"{b['pyro']['grad_evals_per_s']:.0f} | {b['grad_evals_per_s_ratio_numpyro_over_pyro']:.1f}x | reported |",
            "",
            f"Machine: {out['machine']}",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
