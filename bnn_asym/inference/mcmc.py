"""NUTS and HMC: NumPyro by default (several chains, parallel over devices or vectorized), or Pyro.

Chains start from the network's own Kaiming init (a different init seed per chain), not from
NumPyro's default uniform(-2, 2), which would saturate a deep net. Sampler statistics per draw:
n_steps (= gradient evaluations), tree_depth, diverging, acceptance_rate, energy, lp, step_size.
Gradient evaluations are counted over the sampling phase (NumPyro does not report warmup's).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from .base import (Engine, EngineResult, FitData, check_choice, check_positive_int,
                   init_values, jax_float_dtype)

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")
BACKENDS = ("numpyro", "pyro")


@dataclass
class NUTSOptions:
    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    chain_method: str = "auto"  # auto: parallel when there are enough JAX devices, else sequential
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    thinning: int = 1
    backend: str = "numpyro"

    def __post_init__(self):
        owner = "nuts/hmc"
        check_positive_int(owner, "num_warmup", self.num_warmup, 0)
        for name in ("num_samples", "num_chains", "max_tree_depth", "thinning"):
            check_positive_int(owner, name, getattr(self, name))
        if not 0 < self.target_accept < 1:
            raise ValueError(f"{owner} option target_accept={self.target_accept!r} is not valid; accepted: 0 < x < 1")
        check_choice(owner, "chain_method", self.chain_method, CHAIN_METHODS)
        check_choice(owner, "backend", self.backend, BACKENDS)


@dataclass
class HMCOptions(NUTSOptions):
    num_leapfrog: int = 32  # fixed trajectory: num_leapfrog steps of the adapted step size

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("hmc", "num_leapfrog", self.num_leapfrog)


def _resolve_chain_method(method: str, num_chains: int) -> str:
    import jax

    if method != "auto":
        if method == "parallel" and jax.local_device_count() < num_chains:
            raise ValueError(
                f"chain_method='parallel' needs {num_chains} JAX devices, found {jax.local_device_count()}; call "
                "bnn_asym.set_cpu_devices(n) before JAX starts, or use chain_method='sequential'/'vectorized'"
            )
        return method
    if num_chains == 1:
        return "sequential"
    return "parallel" if jax.local_device_count() >= num_chains else "sequential"


def _tree_depth(n_steps: np.ndarray) -> np.ndarray:
    return np.ceil(np.log2(np.asarray(n_steps, dtype=np.float64) + 1)).astype(np.int64)


def _warn_divergences(diverging: np.ndarray, engine: str) -> int:
    count = int(np.sum(diverging))
    if count:
        warnings.warn(f"{engine}: {count} divergent transitions after warmup (of {diverging.size} draws); "
                      "try target_accept closer to 1, or a tighter prior", RuntimeWarning, stacklevel=3)
    return count


class NUTSEngine(Engine):
    name = "nuts"
    Options = NUTSOptions
    description = "No-U-Turn sampler (NumPyro, or Pyro with backend='pyro')"

    def _kernel(self, model_fn, options):
        from numpyro.infer import NUTS

        return NUTS(model_fn, target_accept_prob=options.target_accept, max_tree_depth=options.max_tree_depth,
                    dense_mass=options.dense_mass)

    def _pyro_kernel(self, model_fn, options):
        from pyro.infer import NUTS

        return NUTS(model_fn, target_accept_prob=options.target_accept, max_tree_depth=options.max_tree_depth,
                    full_mass=options.dense_mass, jit_compile=False)

    def run(self, model, data: FitData, options, seed: int, progress: bool, device: str) -> EngineResult:
        if options.backend == "pyro":
            return self._run_pyro(model, data, options, seed, progress)
        return self._run_numpyro(model, data, options, seed, progress)

    def _run_numpyro(self, model, data, options, seed, progress):
        import jax
        import jax.numpy as jnp
        from numpyro.infer import MCMC

        method = _resolve_chain_method(options.chain_method, options.num_chains)
        inits = [init_values(model, seed + 1000 * c, jax_float_dtype()) for c in range(options.num_chains)]
        init_params = {k: np.stack([v[k] for v in inits]) for k in inits[0]}
        for name in model.likelihood.latent_sites():  # NUTS starts in unconstrained space: log(noise_std)
            init_params[name] = np.log(init_params[name])
        if options.num_chains == 1:
            init_params = {k: v[0] for k, v in init_params.items()}
        mcmc = MCMC(self._kernel(model.numpyro_model(), options), num_warmup=options.num_warmup,
                    num_samples=options.num_samples, num_chains=options.num_chains, chain_method=method,
                    thinning=options.thinning, progress_bar=progress)
        fields = ("num_steps", "diverging", "accept_prob", "energy", "potential_energy", "adapt_state.step_size")
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(data.X), jnp.asarray(data.y), init_params=init_params,
                 extra_fields=fields)
        samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
        wall = time.perf_counter() - start
        extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
        stats = {
            "n_steps": extra["num_steps"].astype(np.int64),
            "tree_depth": _tree_depth(extra["num_steps"]),
            "diverging": extra["diverging"].astype(bool),
            "acceptance_rate": extra["accept_prob"].astype(np.float64),
            "energy": extra["energy"].astype(np.float64),
            "lp": -extra["potential_energy"].astype(np.float64),
            "step_size": extra["adapt_state.step_size"].astype(np.float64),
        }
        info = {
            "wall_time_s": wall,
            "grad_evals": int(stats["n_steps"].sum()),
            "num_divergences": _warn_divergences(stats["diverging"], self.name),
            "step_size": stats["step_size"][:, -1].tolist(),
            "chain_method": method,
            "backend": "numpyro",
        }
        return EngineResult(samples, stats, info)

    def _run_pyro(self, model, data, options, seed, progress):
        import pyro
        import torch
        from pyro.infer import MCMC

        calls = [0]
        model_fn = model.pyro_model(calls=calls)
        X = torch.as_tensor(data.X, dtype=torch.float32)
        y = torch.as_tensor(data.y)
        chains, steps, diverging, accept, step_sizes = [], [], [], [], []
        start = time.perf_counter()
        for c in range(options.num_chains):
            pyro.set_rng_seed(seed + 1000 * c)
            pyro.clear_param_store()
            init = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in init_values(model, seed + 1000 * c).items()}
            for name in model.likelihood.latent_sites():
                init[name] = torch.log(init[name])
            kernel = self._pyro_kernel(model_fn, options)
            marks = []  # (stage, model evaluations so far) after every iteration

            def hook(kernel, params, stage, i, marks=marks):
                marks.append((stage, calls[0]))

            calls[0] = 0
            mcmc = MCMC(kernel, num_samples=options.num_samples * options.thinning, warmup_steps=options.num_warmup,
                        initial_params=init, disable_progbar=not progress, hook_fn=hook)
            mcmc.run(X, y)
            keep = slice(options.thinning - 1, None, options.thinning)
            chains.append({k: v.detach().numpy()[keep] for k, v in mcmc.get_samples().items()})
            per_iteration = np.diff([0] + [count for _, count in marks])
            sampling = np.asarray([stage == "Sample" for stage, _ in marks])
            steps.append(per_iteration[sampling][keep])
            div = np.zeros(options.num_samples * options.thinning, dtype=bool)
            div_idx = mcmc.diagnostics().get("divergences", {}).get("chain 0", [])
            div[np.asarray(div_idx, dtype=np.int64)] = True
            diverging.append(div[keep])
            accept.append(float(mcmc.diagnostics().get("acceptance rate", {}).get("chain 0", np.nan)))
            step_sizes.append(float(kernel.step_size))
        wall = time.perf_counter() - start
        draws = {k: np.stack([ch[k] for ch in chains]) for k in chains[0]}
        stats = {"n_steps": np.stack(steps).astype(np.int64), "diverging": np.stack(diverging)}
        stats["tree_depth"] = _tree_depth(stats["n_steps"])
        info = {
            "wall_time_s": wall,
            "grad_evals": int(stats["n_steps"].sum()),
            "num_divergences": _warn_divergences(stats["diverging"], self.name),
            "step_size": step_sizes,
            "acceptance_rate": accept,
            "chain_method": "sequential",
            "backend": "pyro",
        }
        return EngineResult(draws, stats, info)


class HMCEngine(NUTSEngine):
    name = "hmc"
    Options = HMCOptions
    description = "Hamiltonian Monte Carlo with a fixed number of leapfrog steps (NumPyro or Pyro)"

    def _kernel(self, model_fn, options):
        from numpyro.infer import HMC

        return HMC(model_fn, target_accept_prob=options.target_accept, num_steps=options.num_leapfrog,
                   trajectory_length=None, dense_mass=options.dense_mass)

    def _pyro_kernel(self, model_fn, options):
        from pyro.infer import HMC

        return HMC(model_fn, target_accept_prob=options.target_accept, num_steps=options.num_leapfrog,
                   full_mass=options.dense_mass, jit_compile=False)
