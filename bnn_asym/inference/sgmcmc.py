"""Stochastic-gradient MCMC: SGLD (Welling & Teh 2011) and SGHMC (Chen et al. 2014) on BlackJAX's kernels.

Each step draws a mini-batch (the driver), estimates the gradient of the log joint scaled to the full data
set, and takes one BlackJAX ``sgld`` step (SGHMC: ``num_integration_steps`` friction-damped leapfrog
steps with fresh unit-mass momentum, on one mini-batch). Several chains run in parallel over devices.

Step-size schedules: "constant"; "polynomial", ``step_size * (1 + t / decay_steps) ** -0.55`` (Welling &
Teh's decay); "cyclical" (cSG-MCMC, Zhang et al. 2020): the run is cut into ``num_cycles`` cycles with a
cosine step size, the first ``exploration`` share of each cycle drops the noise (optimisation) and the
rest samples -- only those steps are kept. Without a cyclical schedule the first ``num_warmup`` steps are
burn-in and every ``thinning``-th later step is kept. ``temperature`` < 1 samples a cold posterior.

``step_size`` acts on the full-data log joint (BlackJAX's convention). SGLD's first-order step should
shrink like 1/N, SGHMC's leapfrog step (unit mass) like 1/sqrt(N); the defaults are 0.04 / (N + 100) and
0.1 / sqrt(N + 100) -- about the best of sweeps on moons (N=375), digits (N=1347) and blobs (N=300) MLPs,
where 3x smaller cost accuracy or NLL (a too small SGHMC step barely leaves the init within a short run).
The 100 stands for the prior's curvature, which bounds a stable step when N is tiny.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .base import (TRAJECTORY, Algorithm, Engine, check_choice, check_fraction, check_positive_float,
                   check_positive_int, jax_float_dtype)
from .optim import map_pieces, unconstrained_start

SCHEDULES = ("constant", "polynomial", "cyclical")


@dataclass
class SGLDOptions:
    num_warmup: int = 1000
    num_samples: int = 1000
    num_chains: int = 4
    thinning: int = 1
    batch_size: int = 128
    step_size: float | None = None  # on the full-data log joint; None: the engine's default_step(N)
    schedule: str = "constant"
    decay_steps: int = 1000  # polynomial: steps until the step size has fallen by 2^-0.55
    num_cycles: int = 4  # cyclical
    exploration: float = 0.5  # cyclical: share of each cycle without noise (not kept)
    temperature: float = 1.0

    def __post_init__(self):
        owner = self.owner()
        check_positive_int(owner, "num_warmup", self.num_warmup, 0)
        for name in ("num_samples", "num_chains", "thinning", "batch_size", "decay_steps", "num_cycles"):
            check_positive_int(owner, name, getattr(self, name))
        if self.step_size is not None:
            check_positive_float(owner, "step_size", self.step_size)
        check_positive_float(owner, "temperature", self.temperature)
        check_choice(owner, "schedule", self.schedule, SCHEDULES)
        check_fraction(owner, "exploration", self.exploration, closed=True)
        if self.schedule == "cyclical" and self.exploration >= 1:
            raise ValueError(f"{owner} option exploration=1 keeps no draws; accepted: 0 <= x < 1")

    @staticmethod
    def owner() -> str:
        return "sgld"


@dataclass
class SGHMCOptions(SGLDOptions):
    num_integration_steps: int = 10
    friction: float = 0.01  # BlackJAX's alpha (momentum is redrawn every step, so it acts within one step)

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("sghmc", "num_integration_steps", self.num_integration_steps)
        check_positive_float("sghmc", "friction", self.friction)

    @staticmethod
    def owner() -> str:
        return "sghmc"


def schedule_fns(options, total: int):
    """(step size at step t (JAX), temperature at step t (JAX), kept-step mask (numpy))."""
    import jax.numpy as jnp

    if options.schedule == "cyclical":
        cycle = math.ceil(total / options.num_cycles)

        def phase(t):
            return (t % cycle) / cycle

        def step_size(t):
            return options.step_size / 2 * (jnp.cos(jnp.pi * phase(t)) + 1)

        def temperature(t):
            return jnp.where(phase(t) < options.exploration, 0.0, options.temperature)

        def keep(idx):
            sampling = (idx % cycle) / cycle >= options.exploration
            return sampling & (idx % options.thinning == options.thinning - 1)

        return step_size, temperature, keep

    def keep(idx):
        return (idx >= options.num_warmup) & ((idx - options.num_warmup) % options.thinning == options.thinning - 1)

    if options.schedule == "polynomial":
        def step_size(t):
            return options.step_size * (1 + t / options.decay_steps) ** -0.55
    else:
        def step_size(t):
            return options.step_size + 0.0 * t

    return step_size, (lambda t: options.temperature + 0.0 * t), keep


class SGLD(Engine):
    batch_over_n = "full"  # mini-batches of at most N rows
    name = "sgld"
    Options = SGLDOptions
    description = "stochastic-gradient Langevin dynamics on mini-batches (BlackJAX), several chains"
    when_to_use = "MCMC for data sets too large for NUTS; cyclical schedule for multimodal posteriors"
    kind = TRAJECTORY
    multiple_chains = True
    uses_minibatches = True

    @staticmethod
    def default_step(n: int) -> float:
        return 0.04 / (n + 100)

    def kernel(self, options):
        import blackjax

        kernel = blackjax.sgmcmc.sgld.build_kernel()
        return lambda key, position, grad, batch, eps, temp: kernel(key, position, grad, batch, eps, temp)

    def grad_evals_per_step(self, options) -> int:
        return 1

    def build(self, model, data, options, backend) -> Algorithm:
        import jax
        import jax.numpy as jnp

        density, _ = map_pieces(model, data.n)
        n_total = data.n
        total = options.num_warmup + options.num_samples * options.thinning
        if options.step_size is None:
            options = dataclasses.replace(options, step_size=self.default_step(n_total))
        step_size, temperature, keep = schedule_fns(options, total)
        kernel = self.kernel(options)
        per_step = self.grad_evals_per_step(options)

        from jax.flatten_util import ravel_pytree

        template = {k: jnp.zeros(s, jax_float_dtype()) for k, s in model.latent_shapes().items()}
        unravel = ravel_pytree(template)[1]

        # The kernels see one flat vector: BlackJAX draws noise per leaf, and one random call per step
        # compiles far faster than one per parameter array.
        def grad_estimator(flat, batch):
            return jax.grad(lambda f: -density.potential(unravel(f), batch, n_total))(flat)

        def init(key, start, batch):
            return {"position": ravel_pytree(unconstrained_start(density, start))[0], "t": jnp.zeros((), jnp.int32)}

        def step(state, batch, key):
            t = state["t"]
            eps, temp = step_size(t), temperature(t)
            flat = kernel(key, state["position"], grad_estimator, batch, eps, temp)
            return {"position": flat, "t": t + 1}, {"finite": jnp.all(jnp.isfinite(flat)), "step_size": eps,
                                                    "grad_evals": per_step}

        def position(state):
            return density.constrain(unravel(state["position"]))

        return Algorithm(init, step, total, TRAJECTORY, position=position, keep=keep, batch_size=options.batch_size,
                         postfix=lambda info: {"step size": f"{float(np.mean(info['step_size'])):.2e}"},
                         nan_hint=f"try a smaller step_size (now {options.step_size:g})",
                         extra={"objective": "none", "schedule": options.schedule, "step_size": options.step_size})


class SGHMC(SGLD):
    name = "sghmc"
    Options = SGHMCOptions
    description = "stochastic-gradient HMC on mini-batches (BlackJAX), several chains"
    when_to_use = "like SGLD, with momentum: faster exploration at the same step size"

    @staticmethod
    def default_step(n: int) -> float:
        return 0.1 / math.sqrt(n + 100)

    def kernel(self, options):
        import blackjax

        kernel = blackjax.sgmcmc.sghmc.build_kernel(alpha=options.friction)
        steps = options.num_integration_steps
        return lambda key, position, grad, batch, eps, temp: kernel(key, position, grad, batch, eps, steps, temp)

    def grad_evals_per_step(self, options) -> int:
        return options.num_integration_steps
