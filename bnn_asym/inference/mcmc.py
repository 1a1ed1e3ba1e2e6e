"""NUTS and HMC: NumPyro kernels by default (chains parallel over devices, vectorized or sequential), or
Pyro's (``backend="pyro"``).

One step is one kernel transition; step size and (diagonal or dense) mass matrix are adapted during the
first ``num_warmup`` steps inside the kernel, and the kept draws are every ``thinning``-th step after
that. Chains start from the network's own init (a different seed per chain), not from NumPyro's
uniform(-2, 2), which would saturate a deep net -- or from a MAP estimate / ensemble members / another
posterior with ``fit(init=...)``. Sampler statistics per draw: n_steps (gradient evaluations),
tree_depth, diverging, acceptance_rate, energy, lp, step_size. Gradient evaluations count warmup too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import TRAJECTORY, Algorithm, Engine, check_choice, check_fraction, check_positive_int


@dataclass
class NUTSOptions:
    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    thinning: int = 1

    def __post_init__(self):
        owner = "nuts/hmc"
        check_positive_int(owner, "num_warmup", self.num_warmup, 0)
        for name in ("num_samples", "num_chains", "max_tree_depth", "thinning"):
            check_positive_int(owner, name, getattr(self, name))
        check_fraction(owner, "target_accept", self.target_accept)
        check_choice(owner, "dense_mass", self.dense_mass, (True, False))


@dataclass
class HMCOptions(NUTSOptions):
    num_leapfrog: int = 32  # fixed trajectory: num_leapfrog steps of the adapted step size
    step_size_jitter: float = 0.2  # after warmup: step size x uniform(1 - j, 1 + j), against resonance

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("hmc", "num_leapfrog", self.num_leapfrog)
        if not isinstance(self.step_size_jitter, (int, float)) or not 0 <= self.step_size_jitter < 1:
            raise ValueError(f"hmc option step_size_jitter={self.step_size_jitter!r} is not valid; accepted: 0 <= x < 1")


def keep_after_warmup(num_warmup: int, thinning: int):
    def keep(idx: np.ndarray) -> np.ndarray:
        return (idx >= num_warmup) & ((idx - num_warmup) % thinning == thinning - 1)

    return keep


class NUTS(Engine):
    name = "nuts"
    Options = NUTSOptions
    description = "No-U-Turn sampler (NumPyro, or Pyro with backend='pyro')"
    when_to_use = "the gold standard for small BNNs (up to ~10^4 parameters); reference posteriors"
    kind = TRAJECTORY
    backends = ("numpyro", "pyro")
    multiple_chains = True
    kernel = "nuts"

    def build(self, model, data, options, backend) -> Algorithm:
        from . import ppl_for

        ppl = ppl_for(backend)
        parts = ppl.mcmc(model, self.kernel, options.num_warmup, options.target_accept, options.max_tree_depth,
                         options.dense_mass, getattr(options, "num_leapfrog", None),
                         getattr(options, "step_size_jitter", 0.0))
        n = data.n

        def init(key, start, batch):
            return parts.init(key, start, batch, n)

        def step(state, batch, key):
            return parts.step(state, batch, n, key)

        return Algorithm(init, step, options.num_warmup + options.num_samples * options.thinning, TRAJECTORY,
                         position=parts.position, keep=keep_after_warmup(options.num_warmup, options.thinning),
                         postfix=lambda info: {"step size": f"{float(info['step_size'].mean()):.2e}",
                                               "accept": f"{float(info['accept_prob'].mean()):.2f}"},
                         nan_hint="try target_accept closer to 1, or a tighter prior", runtime=ppl.RUNTIME,
                         extra={"objective": "potential"})


class HMC(NUTS):
    name = "hmc"
    Options = HMCOptions
    description = "Hamiltonian Monte Carlo with a fixed number of leapfrog steps (NumPyro or Pyro)"
    when_to_use = "when NUTS trees grow too deep; needs num_leapfrog tuned"
    kernel = "hmc"
