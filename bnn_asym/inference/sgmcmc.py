"""Stochastic-gradient MCMC: SGLD (Welling & Teh 2011) and SGHMC (Chen et al. 2014) on BlackJAX's kernels, and
preconditioned SGLD (pSGLD, Li et al. 2016).

Each step draws a mini-batch (the driver), estimates the gradient of the log joint scaled to the full data
set, and takes one BlackJAX ``sgld`` step (SGHMC: ``num_integration_steps`` friction-damped leapfrog
steps with fresh unit-mass momentum, on one mini-batch). Several chains run in parallel over devices.

Step-size schedules: "constant"; "polynomial", ``step_size * (1 + t / decay_steps) ** -0.55`` (Welling &
Teh's decay); "cyclical" (cSG-MCMC, Zhang et al. 2020): the run is cut into ``num_cycles`` cycles with a
cosine step size, the first ``exploration`` share of each cycle drops the noise (optimisation) and the
rest samples -- only those steps are kept. Without a cyclical schedule the first ``num_warmup`` steps are
burn-in and every ``thinning``-th later step is kept. ``temperature`` < 1 samples a cold posterior.

``step_size`` acts on the full-data log joint (BlackJAX's convention). SGLD's first-order step should
shrink like 1/N, SGHMC's leapfrog step (unit mass) like 1/sqrt(N); the defaults are 0.3 / (N + 100) and
0.1 / sqrt(N + 100). The 100 stands for the prior's curvature, which bounds a stable step when N is tiny.
SGHMC's is about the best of sweeps on moons (N=375), digits (N=1347) and blobs (N=300) MLPs, where 3x
smaller cost accuracy or NLL (a too small step barely leaves the init within a short run). SGLD's was
0.04 / (N + 100) in those sweeps; at the default prior scale (sqrt 2) and 1,000 burn-in steps that left a
moons MLP at 0.936 test accuracy against 0.962-0.964 at 0.3 / (N + 100) (tests/inference/test_defaults.py).
Neither mixes across the functional modes of a neural-net posterior within a default run: fit() then warns
with the prediction R-hat (see bnn_asym.fit).

pSGLD scales SGLD's step per coordinate by an RMSprop preconditioner G = 1 / (lambda + sqrt(V)), V the running
mean (decay ``alpha``) of the squared per-row gradient (the full-data gradient / N): position + step x G x
gradient + N(0, 2 x step x G x temperature). G ~ 1 / |per-row gradient| makes the step size free of the
gradients' scale in every coordinate; the correction term Gamma of Li et al. is dropped (as they do; it
vanishes as alpha -> 1). Its default step is 0.02 / (N + 100), a compromise from sweeps of c / (N + 100) with
the default 1,000 + 1,000 steps: on moons (N=375, 2-16-16-2) c = 0.01-0.03 gave accuracy 0.964-0.966 (0.1:
0.960); on digits (N=1347, 64-16-16-10) c = 0.003 / 0.01 / 0.03 gave test NLL 0.144 / 0.158 / 0.246 and 0.1
diverged to chance; on the conjugate regression (N=40) c = 0.01 left the mean 0.53 sd off, c = 0.02 0.23 sd at
worst (12 runs). None of these chain sets mixed across modes (prediction R-hat 1.12-2.07), and fit says so.

State: ``SGMCMCState(position, step)`` (pSGLD: ``PSGLDState``, with V), the position flattened into one vector
(BlackJAX draws noise per leaf, and one random call per step compiles far faster than one per parameter array).
StepInfo: grad_evals (1 for SGLD and pSGLD, the integration steps for SGHMC), finite, step_size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..validate import field, fraction, integer, number, one_of, optional
from .base import (
    TRAJECTORY,
    Algorithm,
    Display,
    Engine,
    KeepAfterWarmup,
    Plan,
    StepInfo,
    jax_float_dtype,
    step_size_postfix,
)

SCHEDULES = ("constant", "polynomial", "cyclical")


@dataclass
class SGLDOptions:
    num_warmup: int = field(1000, integer(0), "burn-in steps per chain, not kept (not used by the cyclical schedule)")
    num_samples: int = field(
        1000,
        integer(1),
        "steps per chain after burn-in (cyclical: all steps are num_warmup + "
        "num_samples; the sampling part of each cycle is kept)",
    )
    num_chains: int = field(4, integer(1), "chains (parallel over devices when there are enough)")
    thinning: int = field(1, integer(1), "keep every thinning-th step")
    batch_size: int = field(128, integer(1), "rows per step (at most the training rows)")
    step_size: float | None = field(
        None, optional(number(0.0)), "on the full-data log joint; None: the engine's default for N rows"
    )
    schedule: str = field("constant", one_of(*SCHEDULES), "step-size schedule")
    decay_steps: int = field(1000, integer(1), "polynomial: steps until the step size has fallen by 2^-0.55")
    num_cycles: int = field(4, integer(1), "cyclical: cycles over the run")
    exploration: float = field(0.5, fraction(closed=True), "cyclical: share of each cycle without noise (not kept)")
    temperature: float = field(1.0, number(0.0), "posterior temperature (< 1: a cold posterior)")


@dataclass
class SGHMCOptions(SGLDOptions):
    num_integration_steps: int = field(10, integer(1), "leapfrog steps per transition, on one mini-batch")
    friction: float = field(0.01, number(0.0), "BlackJAX's alpha (momentum is redrawn every step)")


@dataclass
class PSGLDOptions(SGLDOptions):
    alpha: float = field(0.99, fraction(), "decay of the running mean of squared gradients (RMSprop's)")
    eps: float = field(1e-5, number(0.0), "lambda: added to sqrt(V) in the preconditioner 1 / (lambda + sqrt(V))")


class SGMCMCState(NamedTuple):
    position: Any  # the unconstrained position, flattened into one vector
    step: Any  # int32: steps taken (indexes the step-size and temperature schedules)


@dataclass(frozen=True)
class KeepCyclical:
    """Kept steps of a cyclical schedule: the sampling part of every cycle, thinned."""

    cycle: int
    exploration: float
    thinning: int = 1

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        sampling = (idx % self.cycle) / self.cycle >= self.exploration
        return sampling & (idx % self.thinning == self.thinning - 1)


class Schedule(NamedTuple):
    step_size: Callable  # step index (JAX int) -> step size
    temperature: Callable  # step index -> temperature (0 during a cyclical schedule's exploration)


def total_steps(options) -> int:
    return options.num_warmup + options.num_samples * options.thinning


def keep_rule(options) -> Callable[[np.ndarray], np.ndarray]:
    if options.schedule == "cyclical":
        return KeepCyclical(math.ceil(total_steps(options) / options.num_cycles), options.exploration, options.thinning)
    return KeepAfterWarmup(options.num_warmup, options.thinning)


def schedule(options, step_size: float) -> Schedule:
    import jax.numpy as jnp

    if options.schedule == "cyclical":
        cycle = math.ceil(total_steps(options) / options.num_cycles)

        def phase(t):
            return (t % cycle) / cycle

        return Schedule(
            lambda t: step_size / 2 * (jnp.cos(jnp.pi * phase(t)) + 1),
            lambda t: jnp.where(phase(t) < options.exploration, 0.0, options.temperature),
        )
    if options.schedule == "polynomial":
        return Schedule(
            lambda t: step_size * (1 + t / options.decay_steps) ** -0.55, lambda t: options.temperature + 0.0 * t
        )
    return Schedule(lambda t: step_size + 0.0 * t, lambda t: options.temperature + 0.0 * t)


def init(start: dict, density, flatten) -> SGMCMCState:
    """A chain at ``start`` (constrained values)."""
    import jax.numpy as jnp

    from .optim import unconstrained_start

    return SGMCMCState(flatten(unconstrained_start(density, start)), jnp.zeros((), jnp.int32))


def step(key, state: SGMCMCState, batch, kernel, grad_estimator, sched: Schedule, grad_evals: int):
    """One kernel transition at the scheduled step size and temperature."""
    import jax.numpy as jnp

    eps, temp = sched.step_size(state.step), sched.temperature(state.step)
    flat = kernel(key, state.position, grad_estimator, batch, eps, temp)
    return SGMCMCState(flat, state.step + 1), StepInfo(grad_evals, finite=jnp.all(jnp.isfinite(flat)), step_size=eps)


class PSGLDState(NamedTuple):
    position: Any  # flat unconstrained position
    step: Any  # int32
    square_avg: Any  # V: running mean of the squared per-row gradient, flat


def psgld_init(start: dict, density, flatten) -> PSGLDState:
    import jax.numpy as jnp

    base = init(start, density, flatten)
    return PSGLDState(base.position, base.step, jnp.zeros_like(base.position))


def psgld_step(key, state: PSGLDState, batch, grad_estimator, sched: Schedule, n_total: int, options):
    """One preconditioned Langevin step: V updated with this batch's gradient, then the step under G."""
    import jax
    import jax.numpy as jnp

    eps, temp = sched.step_size(state.step), sched.temperature(state.step)
    grad = grad_estimator(state.position, batch)
    square_avg = options.alpha * state.square_avg + (1 - options.alpha) * jnp.square(grad / n_total)
    precond = 1.0 / (options.eps + jnp.sqrt(square_avg))
    noise = jax.random.normal(key, state.position.shape, state.position.dtype)
    flat = state.position + eps * precond * grad + jnp.sqrt(2 * eps * precond * temp) * noise
    info = StepInfo(1, finite=jnp.all(jnp.isfinite(flat)), step_size=eps)
    return PSGLDState(flat, state.step + 1, square_avg), info


class SGLD(Engine):
    """Stochastic-gradient Langevin dynamics on mini-batches (BlackJAX), several chains."""

    name = "sgld"
    Options = SGLDOptions
    when_to_use = "MCMC for data sets too large for NUTS; cyclical schedule for multimodal posteriors"
    kind = TRAJECTORY
    batch_over_n = "full"  # mini-batches of at most N rows

    @classmethod
    def check_options(cls, options) -> None:
        if options.schedule == "cyclical" and options.exploration >= 1:
            raise ValueError(f"{cls.name} option exploration=1 keeps no draws; accepted: 0 <= x < 1")

    @staticmethod
    def default_step(n: int) -> float:
        return 0.3 / (n + 100)

    def step_size(self, options, n_rows: int) -> float:
        return self.default_step(n_rows) if options.step_size is None else options.step_size

    def kernel(self, options):
        import blackjax

        kernel = blackjax.sgmcmc.sgld.build_kernel()
        return lambda key, position, grad, batch, eps, temp: kernel(key, position, grad, batch, eps, temp)

    def grad_evals_per_step(self, options) -> int:
        return 1

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        return Plan(total_steps(options), TRAJECTORY, options.num_chains, options.batch_size, keep=keep_rule(options))

    def display(self, options, n_rows: int) -> Display:
        return Display(step_size_postfix, f"try a smaller step_size (now {self.step_size(options, n_rows):g})")

    def facts(self, options, n_rows: int) -> dict:
        return {"objective": self.objective, "schedule": options.schedule, "step_size": self.step_size(options, n_rows)}

    def build(self, model, data, options, backend) -> Algorithm:
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        from .logdensity import jax_log_density

        density = jax_log_density(model)
        n_total = data.n
        template = {k: jnp.zeros(s, jax_float_dtype()) for k, s in model.latent_shapes().items()}
        unravel = ravel_pytree(template)[1]

        def grad_estimator(flat, batch):
            return jax.grad(lambda f: -density.potential(unravel(f), batch, n_total))(flat)

        sched = schedule(options, self.step_size(options, n_total))
        return Algorithm(
            lambda key, start, batch: self.init_state(start, density, lambda p: ravel_pytree(p)[0]),
            self.step_fn(options, grad_estimator, sched, n_total),
            position=lambda state: density.constrain(unravel(state.position)),
        )

    def init_state(self, start, density, flatten):
        return init(start, density, flatten)

    def step_fn(self, options, grad_estimator, sched: Schedule, n_total: int):
        kernel, per_step = self.kernel(options), self.grad_evals_per_step(options)
        return lambda key, state, batch: step(key, state, batch, kernel, grad_estimator, sched, per_step)


class SGHMC(SGLD):
    """Stochastic-gradient HMC on mini-batches (BlackJAX), several chains."""

    name, Options = "sghmc", SGHMCOptions
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


class PSGLD(SGLD):
    """Preconditioned SGLD (RMSprop preconditioner, Li et al. 2016) on mini-batches, several chains."""

    name, Options = "psgld", PSGLDOptions
    when_to_use = "SGLD for posteriors whose coordinates have very different scales (deep or wide nets)"

    @staticmethod
    def default_step(n: int) -> float:
        return 0.02 / (n + 100)

    def init_state(self, start, density, flatten):
        return psgld_init(start, density, flatten)

    def step_fn(self, options, grad_estimator, sched: Schedule, n_total: int):
        return lambda key, state, batch: psgld_step(key, state, batch, grad_estimator, sched, n_total, options)
