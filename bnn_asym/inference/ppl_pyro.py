"""Pyro adapter: the same two primitives as ppl_numpyro.py (an SVI and an MCMC Algorithm), on torch.

Pyro keeps state in globals -- the parameter store and torch's random generator -- and its kernels are
objects that change as they step, so a chain's state here is a mutable record (``PyroSVIChain``,
``PyroMCMCChain``) rather than a value. Each chain owns a parameter-store scope and a generator state,
swapped in around every step, so chains never see each other's parameters and the user's store and RNG
are left as they were (the driver also forks torch's RNG for the whole run). The ``key`` a step is given
is unused: a chain's randomness is its own generator, seeded from its key in ``init``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Algorithm, StepInfo

RUNTIME = "torch"


@dataclass
class PyroSVIChain:
    svi: Any  # pyro.infer.SVI
    guide: Any  # the autoguide (its parameters live in ``store``)
    store: dict  # this chain's parameter-store scope: {"params": ..., "constraints": ...}
    rng: Any  # this chain's torch generator state


@dataclass
class PyroMCMCChain:
    kernel: Any  # pyro.infer.NUTS or HMC, set up for this chain
    store: dict
    rng: Any
    calls: list  # [model evaluations so far]: each is one gradient evaluation
    z: dict  # the current unconstrained position


def _as_torch(batch):
    import torch

    X, y, w = batch
    return (
        torch.as_tensor(np.asarray(X), dtype=torch.float32),
        torch.as_tensor(np.asarray(y)),
        torch.as_tensor(np.asarray(w), dtype=torch.float32),
    )


class _Scoped:
    """Context: this chain's parameter-store scope and RNG state, saved back on exit."""

    def __init__(self, chain):
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

    return torch.Generator().manual_seed(int(key)).get_state()


def _empty_store() -> dict:
    return {"params": {}, "constraints": {}}


def svi(model, guide: str, options, n_total: int) -> Algorithm:
    """Pyro SVI with an AutoNormal ("normal") or AutoLowRankMultivariateNormal ("lowrank") guide, Adam (at
    ``options.lr`` under ``options.schedule``, as in the NumPyro backend) and Trace_ELBO. StepInfo: grad_evals
    (the particles), loss (the negative ELBO)."""
    import math

    import pyro
    import pyro.infer.autoguide as autoguide
    import torch
    from pyro.infer import SVI, Trace_ELBO

    model_fn = model.pyro_model()
    names = list(model.latent_shapes())

    def init(key, start, batch) -> PyroSVIChain:
        values = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in start.items()}
        init_fn = autoguide.init_to_value(values=values)
        g: Any
        if guide == "normal":
            g = autoguide.AutoNormal(model_fn, init_loc_fn=init_fn, init_scale=options.init_scale)
        else:
            g = autoguide.AutoLowRankMultivariateNormal(
                model_fn, init_loc_fn=init_fn, init_scale=options.init_scale, rank=options.rank
            )
        if options.schedule == "cosine":  # optax.cosine_decay_schedule(lr, num_steps): lr/2 (1 + cos(pi t/T))
            horizon = max(1, options.num_steps)
            adam = pyro.optim.LambdaLR(  # type: ignore[attr-defined]  # pyro.optim makes it at import
                {
                    "optimizer": torch.optim.Adam,
                    "optim_args": {"lr": options.lr},
                    "lr_lambda": lambda t: 0.5 * (1 + math.cos(math.pi * min(t, horizon) / horizon)),
                }
            )
        else:
            adam = pyro.optim.Adam({"lr": options.lr})  # type: ignore[attr-defined]
        svi_ = SVI(model_fn, g, adam, Trace_ELBO(num_particles=options.num_particles))
        chain = PyroSVIChain(svi_, g, _empty_store(), _seed_state(key))
        with _Scoped(chain):
            X, y, w = _as_torch(batch)
            g(X, y, n_total, w)  # creates the guide's parameters in this chain's scope
        return chain

    def step(key, chain: PyroSVIChain, batch):
        with _Scoped(chain):
            X, y, w = _as_torch(batch)
            loss = chain.svi.step(X, y, n_total, w)
            if isinstance(chain.svi.optim, pyro.optim.PyroLRScheduler):
                chain.svi.optim.step()
        return chain, StepInfo(options.num_particles, loss=loss)

    def draws(chain: PyroSVIChain, rng, num):
        with _Scoped(chain), torch.no_grad():
            torch.manual_seed(int(rng.integers(2**62)))
            samples = [chain.guide() for _ in range(num)]
        return {k: np.stack([d[k].detach().numpy() for d in samples]) for k in names}

    return Algorithm(init, step, draws=draws, runtime=RUNTIME)


def mcmc(model, kernel: str, options, n_total: int) -> Algorithm:
    """Pyro's NUTS or HMC (the same settings as ppl_numpyro.mcmc). StepInfo: grad_evals (model evaluations),
    potential, diverging, accept_prob, step_size; tree_depth for NUTS (Pyro reports no energy)."""
    latent = model.likelihood.latent_sites()
    jitter = getattr(options, "step_size_jitter", 0.0)

    def init(key, start, batch) -> PyroMCMCChain:
        import torch
        from pyro.infer import HMC, NUTS

        calls = [0]
        model_fn = model.pyro_model(calls=calls)
        length = (
            dict(max_tree_depth=options.max_tree_depth) if kernel == "nuts" else dict(num_steps=options.num_leapfrog)
        )
        k = (NUTS if kernel == "nuts" else HMC)(
            model_fn,
            target_accept_prob=options.target_accept,
            full_mass=options.dense_mass,
            jit_compile=False,
            **length,
        )
        z = {n: torch.as_tensor(np.asarray(v), dtype=torch.float32) for n, v in start.items()}
        for name in latent:  # the kernel works in unconstrained space: log of a positive noise std
            z[name] = torch.log(z[name])
        chain = PyroMCMCChain(k, _empty_store(), _seed_state(key), calls, z)
        with _Scoped(chain):
            k.initial_params = z
            X, y, w = _as_torch(batch)
            k.setup(options.num_warmup, X, y, n_total, w)
        return chain

    def step(key, chain: PyroMCMCChain, batch):
        k = chain.kernel
        before_calls, before_div, before_mean = chain.calls[0], len(k._divergences), k._mean_accept_prob
        with _Scoped(chain):
            chain.z = _jittered_sample(k, chain.z, jitter)
        t = k._t
        n = t - k._warmup_steps if t > k._warmup_steps else t  # Pyro's running-mean counter of this phase
        accept = n * k._mean_accept_prob - (n - 1) * (before_mean if n > 1 else 0.0)
        grad_evals = chain.calls[0] - before_calls
        return chain, StepInfo(
            grad_evals,
            potential=float(k._potential_energy_last),
            diverging=len(k._divergences) > before_div,
            accept_prob=float(np.clip(accept, 0.0, 1.0)),
            step_size=float(k.step_size),
            tree_depth=int(grad_evals).bit_length() if kernel == "nuts" else None,
        )

    def position(chain: PyroMCMCChain):
        out = {n: v.detach().numpy().copy() for n, v in chain.z.items()}
        for name in latent:
            out[name] = np.exp(out[name])
        return out

    return Algorithm(init, step, position=position, runtime=RUNTIME)


def _jittered_sample(k, z, jitter: float):
    """One transition of Pyro kernel ``k``; after warmup its step size is jittered by ``1 +- jitter``."""
    import torch

    sampling = k._t >= k._warmup_steps
    base = k.step_size
    if jitter and sampling:
        k._adapter.step_size = base * (1 + jitter * (2 * float(torch.rand(())) - 1))
    z = k.sample(z)
    if jitter and sampling:
        k._adapter.step_size = base  # Pyro's step_size is a read-only view of its adapter's
    return z
