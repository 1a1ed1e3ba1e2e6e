"""NUTS and HMC: NumPyro kernels by default (chains parallel over devices, vectorized or sequential), or
Pyro's (``backend="pyro"``).

One step is one kernel transition; step size and (diagonal or dense) mass matrix are adapted during the
first ``num_warmup`` steps inside the kernel, and the kept draws are every ``thinning``-th step after
that. Chains start from the network's own init (a different seed per chain), not from NumPyro's
uniform(-2, 2), which would saturate a deep net -- or from a MAP estimate / ensemble members / another
posterior with ``fit(init=...)``. Gradient evaluations count warmup too.

State: the PPL kernel's own (NumPyro's ``HMCState``; a ``PyroMCMCChain`` for Pyro). StepInfo: grad_evals
(leapfrog steps), potential, diverging, accept_prob, step_size, energy; tree_depth for NUTS only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..validate import BOOLEAN, field, fraction, integer, number
from . import ppl_for
from .base import TRAJECTORY, Algorithm, Display, Engine, KeepAfterWarmup, Plan


@dataclass
class NUTSOptions:
    num_warmup: int = field(500, integer(0), "warmup steps per chain (step size and mass matrix adapted; not kept)")
    num_samples: int = field(500, integer(1), "kept draws per chain")
    num_chains: int = field(2, integer(1), "chains (parallel over devices when there are enough)")
    target_accept: float = field(0.8, fraction(), "target acceptance probability of the step-size adaptation")
    max_tree_depth: int = field(10, integer(1), "NUTS: at most 2^depth - 1 leapfrog steps per transition")
    dense_mass: bool = field(False, BOOLEAN, "adapt a dense mass matrix instead of a diagonal one")
    thinning: int = field(1, integer(1), "keep every thinning-th step after warmup")


@dataclass
class HMCOptions(NUTSOptions):
    num_leapfrog: int = field(32, integer(1), "leapfrog steps of the adapted step size per transition")
    step_size_jitter: float = field(
        0.2,
        number(0.0, 1.0, low_open=False, high_open=True),
        "after warmup: step size x uniform(1 - j, 1 + j), against resonance",
    )


def nuts_postfix(info) -> dict:
    return {"step size": f"{float(info.step_size.mean()):.2e}", "accept": f"{float(info.accept_prob.mean()):.2f}"}


class NUTS(Engine):
    """No-U-Turn sampler (NumPyro, or Pyro with backend='pyro')."""

    name = "nuts"
    Options = NUTSOptions
    when_to_use = "the gold standard for small BNNs (up to ~10^4 parameters); reference posteriors"
    kind, objective = TRAJECTORY, "potential"
    backends = ("numpyro", "pyro")

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        return Plan(
            options.num_warmup + options.num_samples * options.thinning,
            TRAJECTORY,
            options.num_chains,
            keep=KeepAfterWarmup(options.num_warmup, options.thinning),
        )

    def display(self, options, n_rows: int) -> Display:
        return Display(nuts_postfix, "try target_accept closer to 1, or a tighter prior")

    def build(self, model, data, options, backend) -> Algorithm:
        return ppl_for(backend).mcmc(model, self.name, options, data.n)  # the kernel's name is the engine's


class HMC(NUTS):
    """Hamiltonian Monte Carlo with a fixed number of leapfrog steps (NumPyro or Pyro)."""

    name, Options = "hmc", HMCOptions
    when_to_use = "when NUTS trees grow too deep; needs num_leapfrog tuned"
