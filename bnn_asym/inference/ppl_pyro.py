"""Pyro adapter: the same two primitives as ppl_numpyro.py (an SVI and an MCMC kernel), on torch.

Pyro keeps state in globals -- the parameter store and torch's random generator. Each chain here owns
a parameter-store scope and a generator state, swapped in around every step, so chains never see each
other's parameters and the user's store and RNG are left as they were (the driver also forks torch's RNG
for the whole run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ppl_numpyro import MCMCParts, SVIParts

RUNTIME = "torch"


@dataclass
class PyroChain:
    """Mutable per-chain state: the algorithm object, its parameter-store scope and its RNG state."""

    algo: object
    store: dict
    rng: object
    extra: dict


def _as_torch(batch):
    import torch

    X, y, w = batch
    return (torch.as_tensor(np.asarray(X), dtype=torch.float32), torch.as_tensor(np.asarray(y)),
            torch.as_tensor(np.asarray(w), dtype=torch.float32))


class _Scoped:
    """Context: this chain's parameter-store scope and RNG state, saved back on exit."""

    def __init__(self, chain: PyroChain):
        self.chain = chain

    def __enter__(self):
        import pyro
        import torch

        self._scope = pyro.get_param_store().scope(self.chain.store)
        self._scope.__enter__()
        torch.set_rng_state(self.chain.rng)
        return self.chain

    def __exit__(self, *exc):
        import torch

        self.chain.rng = torch.get_rng_state()
        return self._scope.__exit__(*exc)


def _seed_state(key) -> object:
    """A torch generator state from the driver's integer key for this chain."""
    import torch

    g = torch.Generator().manual_seed(int(key))
    return g.get_state()


def svi(model, guide: str, init_scale: float, lr: float, num_particles: int, rank: int | None = None) -> SVIParts:
    import pyro
    import pyro.infer.autoguide as autoguide
    import torch
    from pyro.infer import SVI, Trace_ELBO

    model_fn = model.pyro_model()
    names = list(model.latent_shapes())

    def init(key, start, batch, n_total):
        values = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in start.items()}
        init_fn = autoguide.init_to_value(values=values)
        if guide == "normal":
            g = autoguide.AutoNormal(model_fn, init_loc_fn=init_fn, init_scale=init_scale)
        else:
            g = autoguide.AutoLowRankMultivariateNormal(model_fn, init_loc_fn=init_fn, init_scale=init_scale, rank=rank)
        chain = PyroChain(SVI(model_fn, g, pyro.optim.Adam({"lr": lr}), Trace_ELBO(num_particles=num_particles)),
                          {"params": {}, "constraints": {}}, _seed_state(key), {"guide": g})
        with _Scoped(chain):
            X, y, w = _as_torch(batch)
            g(X, y, n_total, w)  # creates the guide's parameters in this chain's scope
        return chain

    def update(chain, batch, n_total, key):
        with _Scoped(chain):
            X, y, w = _as_torch(batch)
            loss = chain.algo.step(X, y, n_total, w)
        return chain, loss

    def sample(chain, rng, num):
        g = chain.extra["guide"]
        with _Scoped(chain), torch.no_grad():
            torch.manual_seed(int(rng.integers(2 ** 62)))
            draws = [g() for _ in range(num)]
        return {k: np.stack([d[k].detach().numpy() for d in draws]) for k in names}

    return SVIParts(init, update, sample)


def mcmc(model, kernel: str, num_warmup: int, target_accept: float, max_tree_depth: int, dense_mass: bool,
         num_leapfrog: int | None = None, step_size_jitter: float = 0.0) -> MCMCParts:
    import torch
    from pyro.infer import HMC, NUTS

    latent = model.likelihood.latent_sites()

    def init(key, start, data, n_total):
        calls = [0]
        model_fn = model.pyro_model(calls=calls)
        if kernel == "nuts":
            k = NUTS(model_fn, target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                     full_mass=dense_mass, jit_compile=False)
        else:
            k = HMC(model_fn, target_accept_prob=target_accept, num_steps=num_leapfrog, full_mass=dense_mass,
                    jit_compile=False)
        z = {n: torch.as_tensor(np.asarray(v), dtype=torch.float32) for n, v in start.items()}
        for name in latent:  # the kernel works in unconstrained space: log of a positive noise std
            z[name] = torch.log(z[name])
        chain = PyroChain(k, {"params": {}, "constraints": {}}, _seed_state(key),
                          {"calls": calls, "z": z, "accept": 0.0})
        with _Scoped(chain):
            k.initial_params = z
            X, y, w = _as_torch(data)
            k.setup(num_warmup, X, y, n_total, w)
        return chain

    def step(chain, data, n_total, key):
        k, extra = chain.algo, chain.extra
        before_calls, before_div, before_mean = extra["calls"][0], len(k._divergences), k._mean_accept_prob
        with _Scoped(chain):
            sampling = k._t >= k._warmup_steps
            base = k.step_size
            if step_size_jitter and sampling:
                k._adapter.step_size = base * (1 + step_size_jitter * (2 * float(torch.rand(())) - 1))
            extra["z"] = k.sample(extra["z"])
            if step_size_jitter and sampling:
                k._adapter.step_size = base  # Pyro's step_size is a read-only view of its adapter's
        t = k._t
        n = t - k._warmup_steps if t > k._warmup_steps else t  # Pyro's running-mean counter of this phase
        accept = n * k._mean_accept_prob - (n - 1) * (before_mean if n > 1 else 0.0)
        info = {"grad_evals": extra["calls"][0] - before_calls, "diverging": len(k._divergences) > before_div,
                "accept_prob": float(np.clip(accept, 0.0, 1.0)), "loss": float(k._potential_energy_last),
                "step_size": float(k.step_size)}
        return chain, info

    def position(chain):
        z = chain.extra["z"]
        out = {n: v.detach().numpy().copy() for n, v in z.items()}
        for name in latent:
            out[name] = np.exp(out[name])
        return out

    return MCMCParts(init, step, position)
