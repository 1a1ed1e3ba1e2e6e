"""Microcanonical Langevin Monte Carlo on BlackJAX's kernels: unadjusted MCLMC (Robnik et al. 2024),
Metropolis-adjusted MCLMC with a random trajectory length (MAMS, Robnik et al. 2025), and MILE (Sommer
et al. 2025): tuned MCLMC started from every member of a deep ensemble.

Tuning is part of the chain. The first ``num_warmup`` steps adapt in three phases that follow BlackJAX's
tuners (``mclmc_find_L_and_step_size``, ``adjusted_mclmc_find_L_and_step_size``), written as one update per
step so that the driver's checkpoints, budgets, progress bar and gradient count see the tuning like any
other step:

- phase 1 (the first ``TUNE_PHASES[0]`` of the warmup): the step size alone. Unadjusted: from the energy
  error, by BlackJAX's weighted estimate of the step with energy variance ``desired_energy_var`` per
  dimension (Var[E] ~ step^6); a step that produced a NaN is undone and caps the step size at 0.8x.
  Adjusted: dual averaging towards ``target_accept``.
- phase 2 (the next ``TUNE_PHASES[1]``): the step size, and step-size-weighted running moments of the
  position. At its end: the diagonal preconditioner (the moments' variances, with
  ``diagonal_preconditioning``) and the momentum decoherence length L = sqrt(sum of variances) --
  sqrt(dim) in preconditioned coordinates. The step-size estimate then restarts for the new metric.
- phase 3 (the rest): the step size again, and the positions of up to ``WATCHED`` coordinates (evenly
  spaced over the flat parameter vector). At its end L = ``l_factor`` x step size x their mean integrated
  autocorrelation time in steps (from their ESS). BlackJAX uses every coordinate; keeping every coordinate
  of every step would cost dim x steps floats per chain. Adjusted MCLMC: a transition travels about L, so
  L = ``l_factor`` x L x the autocorrelation time in transitions, at most doubled (BlackJAX's adjusted rule),
  and the dual-averaged step size.

After the warmup the parameters stay fixed and every ``thinning``-th step is kept. The unadjusted kernel is
biased: its stationary distribution differs from the posterior by an amount set by the step size (the
tuning targets an energy error small enough that it is below the Monte Carlo error on well-conditioned
problems); the adjusted kernel accepts or rejects each trajectory and is exact. Adjusted transitions draw
their number of integration steps uniformly around L / step size (mean L / step size, BlackJAX's
rescaling), against resonances of a fixed length.

Gradient evaluations: the isokinetic McLachlan integrator takes two per integration step; an unadjusted
transition is one integration step, an adjusted one as many as its trajectory has.

State: ``MCLMCState`` (BlackJAX's integrator state -- unadjusted -- or dynamic-HMC state -- adjusted -- over
the flat position, the tuned parameters, the adaptation's running values, the phase-3 trace, the step
count). StepInfo: grad_evals, potential, step_size; adjusted also accept_prob, diverging, energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..validate import BOOLEAN, field, fraction, integer, number
from .base import TRAJECTORY, Algorithm, Display, Engine, KeepAfterWarmup, Plan, StepInfo, jax_float_dtype

TUNE_PHASES = (0.3, 0.4, 0.3)  # shares of num_warmup: step size; + moments; + autocorrelation
WATCHED = 256  # coordinates whose phase-3 trace sets L
MIN_TRACE = 10  # phase-3 steps needed to estimate L from autocorrelations (fewer: L stays as phase 2 set it)
GRADS_PER_INTEGRATION_STEP = 2  # isokinetic McLachlan
MAX_MEAN_INTEGRATION_STEPS = 512.0  # adjusted: cap on L / step size (bounds a transition's cost)
# unadjusted: the first step size, x sqrt(dim). BlackJAX starts at 0.25: its first steps then throw a chain that
# starts at a mode (MILE's) far from it before the estimate has shrunk; from a small step the estimate grows
# by xi^(-1/6) a step (10x a step at an energy error 1e-6 of the target), so starting low costs a few steps.
INITIAL_STEP_SHARE = 0.01
NAN_SHRINK = 0.8  # unadjusted: step-size cap after a step that produced a NaN


@dataclass
class MCLMCOptions:
    # an unadjusted step moves one step size: a default run is long and thinned (2,000 + 5 x 1,000 steps, two
    # gradients each). On the moons MLP of tests/inference/test_defaults.py: prediction ESS 150 for 56,000
    # gradients (R-hat 1.03), NUTS 413 for 305,000, adjusted MCLMC 1,277 for 593,000 (4 chains each, NUTS 2)
    num_warmup: int = field(2000, integer(3), "tuning steps per chain (step size, preconditioner, L; not kept)")
    num_samples: int = field(1000, integer(1), "kept draws per chain")
    num_chains: int = field(4, integer(1), "chains (parallel over devices when there are enough)")
    thinning: int = field(5, integer(1), "keep every thinning-th step after warmup")
    diagonal_preconditioning: bool = field(True, BOOLEAN, "adapt a diagonal preconditioner in tuning phase 2")
    desired_energy_var: float = field(5e-4, number(0.0), "energy-error variance per dimension the step targets")
    l_factor: float = field(0.4, number(0.0), "L = l_factor x step size x autocorrelation time (phase 3)")


@dataclass
class AdjustedMCLMCOptions:
    # a transition is a whole trajectory (~80 integration steps on a moons MLP): 4 x (500 + 500) of them gave
    # prediction R-hat 1.006 and ESS 553 there for 401,000 gradients; NUTS's 2 x (500 + 500) ESS 413 for 305,000
    num_warmup: int = field(500, integer(3), "tuning steps per chain (step size, preconditioner, L; not kept)")
    num_samples: int = field(500, integer(1), "kept draws per chain")
    num_chains: int = field(4, integer(1), "chains (parallel over devices when there are enough)")
    thinning: int = field(1, integer(1), "keep every thinning-th step after warmup")
    diagonal_preconditioning: bool = field(True, BOOLEAN, "adapt a diagonal preconditioner in tuning phase 2")
    target_accept: float = field(0.9, fraction(), "acceptance rate the step size's dual averaging targets")
    l_factor: float = field(0.5, number(0.0), "L = l_factor x L x autocorrelation time in transitions (phase 3)")


@dataclass
class MILEOptions:
    num_chains: int = field(8, integer(1), "ensemble members, one chain from each")
    num_warmup: int = field(2000, integer(3), "MCLMC tuning steps per chain (before schedule_scale)")
    num_samples: int = field(200, integer(1), "kept draws per chain (before schedule_scale)")
    thinning: int = field(10, integer(1), "keep every thinning-th step after warmup (MILE: 10)")
    schedule_scale: float = field(1.0, number(0.0), "multiplies num_warmup and num_samples (MILE's schedule: 1)")
    adjusted: bool = field(False, BOOLEAN, "Metropolis-adjusted MCLMC (exact) instead of unadjusted (MILE's)")
    diagonal_preconditioning: bool = field(True, BOOLEAN, "adapt a diagonal preconditioner in tuning phase 2")
    desired_energy_var: float = field(5e-4, number(0.0), "unadjusted: energy-error variance per dimension")
    target_accept: float = field(0.9, fraction(), "adjusted: acceptance rate the dual averaging targets")
    l_factor: float = field(0.4, number(0.0), "L = l_factor x step size x autocorrelation time (phase 3)")


class Tuning(NamedTuple):
    L: Any  # momentum decoherence length (unadjusted) / mean trajectory length (adjusted)
    step_size: Any
    inverse_mass_matrix: Any  # (dim,) diagonal


class MCLMCState(NamedTuple):
    chain: Any  # BlackJAX IntegratorState (unadjusted) or DynamicHMCState (adjusted), flat position
    tuning: Tuning  # what the next step uses
    adapt: Any  # unadjusted: (weight sum, weighted xi / step^6, step-size cap); adjusted: dual-averaging state
    moments: Any  # phase 2: (weight sum, weighted mean of x, weighted mean of x^2)
    trace: Any  # phase 3: (steps, watched coordinates)
    step: Any  # int32: steps taken


class Phases(NamedTuple):
    """Step indices where tuning phases end (phase k covers [ends[k-1], ends[k]))."""

    end1: int
    end2: int
    end3: int

    @classmethod
    def of(cls, num_warmup: int) -> Phases:
        end1 = max(1, round(TUNE_PHASES[0] * num_warmup))
        end2 = max(end1 + 1, round((TUNE_PHASES[0] + TUNE_PHASES[1]) * num_warmup))
        return cls(end1, end2, max(end2 + 1, num_warmup))


def watched_coordinates(dim: int) -> np.ndarray:
    return np.unique(np.linspace(0, dim - 1, min(dim, WATCHED)).round().astype(np.int64))


def autocorrelation_L(trace, step_size, l_factor, fallback):
    """l_factor x step size x mean autocorrelation time over the trace's coordinates (finite ones only);
    ``fallback`` when phase 3 is too short to estimate one."""
    import jax.numpy as jnp
    from blackjax.diagnostics import effective_sample_size

    if trace.shape[0] < MIN_TRACE:
        return fallback
    tau = trace.shape[0] / effective_sample_size(trace[None])
    finite = jnp.isfinite(tau) & (tau > 0)
    mean_tau = jnp.sum(jnp.where(finite, tau, 0.0)) / jnp.maximum(jnp.sum(finite), 1)
    return jnp.where(jnp.any(finite), l_factor * step_size * mean_tau, fallback)


def update_moments(moments, x, weight):
    """Running weighted means of x and x^2 (BlackJAX's incremental update)."""
    import jax.numpy as jnp

    total, mean, mean_sq = moments
    total = total + weight
    share = jnp.where(total > 0, weight / jnp.where(total > 0, total, 1.0), 0.0)
    return total, mean + share * (x - mean), mean_sq + share * (x * x - mean_sq)


def end_of_phase2(tuning: Tuning, moments, preconditioning: bool) -> Tuning:
    """The preconditioner and L from phase 2's moments (kept as they were without enough weight)."""
    import jax.numpy as jnp

    total, mean, mean_sq = moments
    var = jnp.maximum(mean_sq - mean * mean, 0.0)
    usable = (total > 0) & jnp.all(jnp.isfinite(var)) & jnp.any(var > 0)
    dim = var.shape[0]
    if preconditioning:
        var = jnp.where(var > 0, var, jnp.mean(var))
        return Tuning(
            jnp.where(usable, jnp.sqrt(float(dim)), tuning.L),
            tuning.step_size,
            jnp.where(usable, var, tuning.inverse_mass_matrix),
        )
    return Tuning(jnp.where(usable, jnp.sqrt(jnp.sum(var)), tuning.L), tuning.step_size, tuning.inverse_mass_matrix)


def record_phases(state: MCLMCState, x, weight, phases: Phases, watched):
    """Phase 2's moments and phase 3's trace after a step at ``state.step`` (values outside are unchanged)."""
    import jax.numpy as jnp

    t = state.step
    in2 = (t >= phases.end1) & (t < phases.end2)
    moments = update_moments(state.moments, x, jnp.where(in2, weight, 0.0))
    row = jnp.clip(t - phases.end2, 0, state.trace.shape[0] - 1)
    in3 = (t >= phases.end2) & (t < phases.end3)
    trace = state.trace.at[row].set(jnp.where(in3, x[watched], state.trace[row]))
    return moments, trace


def initial_tuning(dim: int, dtype, step_share: float) -> Tuning:
    import jax.numpy as jnp

    root = jnp.sqrt(jnp.asarray(dim, dtype))
    return Tuning(root, step_share * root, jnp.ones((dim,), dtype))


# ----- unadjusted MCLMC -------------------------------------------------------------------------------------
def unadjusted_step_size(adapt, tuning: Tuning, energy_change, ok, dim: int, options):
    """BlackJAX's step-size predictor: a weighted running estimate of the step whose energy error has
    variance ``desired_energy_var`` per dimension, capped below steps that produced NaNs."""
    import jax.numpy as jnp

    total, x_average, cap = adapt
    decay = (150 - 1.0) / (150 + 1.0)  # BlackJAX's num_effective_samples=150
    cap = jnp.where(ok, cap, tuning.step_size * NAN_SHRINK)
    energy_change = jnp.where(ok, energy_change, 0.0)
    xi = jnp.square(energy_change) / (dim * options.desired_energy_var) + 1e-8
    weight = jnp.exp(-0.5 * jnp.square(jnp.log(xi) / (6.0 * 1.5)))  # BlackJAX's trust_in_estimate=1.5
    x_average = decay * x_average + weight * xi / jnp.power(tuning.step_size, 6.0)
    total = decay * total + weight
    step = jnp.minimum(jnp.power(x_average / total, -1.0 / 6.0), cap)
    return (total, x_average, cap), step


def unadjusted_init(key, flat, logdensity_fn, dtype, trace_shape) -> MCLMCState:
    import jax.numpy as jnp
    from blackjax.mcmc import mclmc

    dim = flat.shape[0]
    chain = mclmc.init(flat, logdensity_fn, key)
    zero = jnp.zeros((), dtype)
    adapt = (zero, zero, jnp.asarray(jnp.inf, dtype))
    moments = (zero, jnp.zeros((dim,), dtype), jnp.zeros((dim,), dtype))
    return MCLMCState(
        chain,
        initial_tuning(dim, dtype, INITIAL_STEP_SHARE),
        adapt,
        moments,
        jnp.zeros(trace_shape, dtype),
        jnp.int32(0),
    )


def unadjusted_step(key, state: MCLMCState, logdensity_fn, kernel, phases: Phases, watched, options):
    import jax
    import jax.numpy as jnp

    t, tuning = state.step, state.tuning
    chain, info = kernel(key, state.chain, logdensity_fn, tuning.inverse_mass_matrix, tuning.L, tuning.step_size)
    dim = chain.position.shape[0]
    tuning_now = t < phases.end3
    adapt, new_step = unadjusted_step_size(state.adapt, tuning, info.energy_change, info.nonans, dim, options)
    moments, trace = record_phases(
        state, chain.position, jnp.where(info.nonans, tuning.step_size, 0.0), phases, watched
    )
    tuned = tuning._replace(step_size=jnp.where(tuning_now, new_step, tuning.step_size))
    at2 = t == phases.end2 - 1
    after2 = end_of_phase2(tuned, moments, options.diagonal_preconditioning)
    tuned = jax.tree.map(lambda a, b: jnp.where(at2, a, b), after2, tuned)
    zero = jnp.zeros_like(adapt[0])
    adapt = jax.tree.map(lambda a, b: jnp.where(at2, a, b), (zero, zero, adapt[2]), adapt)
    at3 = t == phases.end3 - 1
    L3 = jax.lax.cond(
        at3, lambda: autocorrelation_L(trace, tuned.step_size, options.l_factor, tuned.L), lambda: tuned.L
    )
    new = MCLMCState(chain, tuned._replace(L=L3), adapt, moments, trace, t + 1)
    return new, StepInfo(GRADS_PER_INTEGRATION_STEP, potential=-chain.logdensity, step_size=tuning.step_size)


# ----- Metropolis-adjusted MCLMC ------------------------------------------------------------------------------
def integration_steps(key, mean_steps):
    """A trajectory length with mean ``mean_steps`` (BlackJAX's rescaled uniform), at least 1."""
    import jax
    import jax.numpy as jnp
    from blackjax.mcmc.adjusted_mclmc import rescale

    n = jnp.rint(0.5 + jax.random.uniform(key) * rescale(mean_steps))
    return jnp.maximum(n, 1).astype(jnp.int32)


def adjusted_init(key, flat, logdensity_fn, dtype, trace_shape) -> MCLMCState:
    import jax.numpy as jnp
    from blackjax.adaptation.step_size import dual_averaging_adaptation
    from blackjax.mcmc import adjusted_mclmc_dynamic

    dim = flat.shape[0]
    chain = adjusted_mclmc_dynamic.init(flat, logdensity_fn, key)
    tuning = initial_tuning(dim, dtype, 0.2)
    tuning = tuning._replace(L=tuning.step_size * 4.0)  # start at 4 integration steps a transition
    da_init = dual_averaging_adaptation(0.9)[0]  # the target only enters the update
    zero = jnp.zeros((), dtype)
    moments = (zero, jnp.zeros((dim,), dtype), jnp.zeros((dim,), dtype))
    return MCLMCState(chain, tuning, da_init(tuning.step_size), moments, jnp.zeros(trace_shape, dtype), jnp.int32(0))


def adjusted_step(key, state: MCLMCState, logdensity_fn, kernel, phases: Phases, watched, options):
    import jax
    import jax.numpy as jnp
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    da_init, da_update, da_final = dual_averaging_adaptation(options.target_accept)
    t, tuning = state.step, state.tuning
    mean_steps = jnp.clip(tuning.L / tuning.step_size, 1.0, MAX_MEAN_INTEGRATION_STEPS)
    chain, info = kernel(
        key, state.chain, logdensity_fn, tuning.step_size, inverse_mass_matrix=tuning.inverse_mass_matrix,
        integration_steps_params=(mean_steps,),
    )  # fmt: skip
    accept = jnp.where(jnp.isfinite(info.acceptance_rate), info.acceptance_rate, 0.0)
    da = da_update(state.adapt, accept)
    tuning_now = t < phases.end3
    da = jax.tree.map(lambda a, b: jnp.where(tuning_now, a, b), da, state.adapt)
    step_now = jnp.where(tuning_now, jnp.exp(da.log_step_size), tuning.step_size)
    moments, trace = record_phases(state, chain.position, jnp.where(info.is_accepted, 1.0, 0.0), phases, watched)
    tuned = Tuning(step_now * mean_steps, step_now, tuning.inverse_mass_matrix)
    at2 = t == phases.end2 - 1
    after2 = end_of_phase2(tuned, moments, options.diagonal_preconditioning)
    tuned = jax.tree.map(lambda a, b: jnp.where(at2, a, b), after2, tuned)
    da = jax.tree.map(lambda a, b: jnp.where(at2, a, b), da_init(tuned.step_size), da)
    at3 = t == phases.end3 - 1
    final_step = jnp.where(at3, da_final(da), tuned.step_size)
    # a transition travels ~L (not one step size): L x its autocorrelation time in transitions, at most doubled
    L3 = jax.lax.cond(at3, lambda: autocorrelation_L(trace, tuned.L, options.l_factor, tuned.L), lambda: tuned.L)
    L3 = jnp.clip(jnp.minimum(L3, 2 * tuned.L), final_step, MAX_MEAN_INTEGRATION_STEPS * final_step)
    new = MCLMCState(chain, Tuning(L3, final_step, tuned.inverse_mass_matrix), da, moments, trace, t + 1)
    return new, StepInfo(
        GRADS_PER_INTEGRATION_STEP * info.num_integration_steps,
        potential=-chain.logdensity,
        diverging=info.is_divergent,
        accept_prob=accept,
        step_size=tuning.step_size,
        energy=info.energy,
    )


# ----- the engines -----------------------------------------------------------------------------------------
def mclmc_postfix(info) -> dict:
    fields = {"step size": f"{float(np.mean(info.step_size)):.2e}"}
    if info.accept_prob is not None:
        fields["accept"] = f"{float(np.mean(info.accept_prob)):.2f}"
    return fields


class MCLMC(Engine):
    """Unadjusted microcanonical Langevin Monte Carlo (BlackJAX), tuned step size, L and preconditioner; biased."""

    name = "mclmc"
    Options: type = MCLMCOptions
    when_to_use = (
        "fast approximate sampling of mid-sized BNNs (one gradient pair a step, no trees); biased by its step "
        "size, so not for reference posteriors"
    )
    kind, objective = TRAJECTORY, "potential"
    adjusted = False

    def is_adjusted(self, options) -> bool:
        return self.adjusted

    def schedule(self, options) -> tuple[int, int]:
        """(warmup steps, kept draws) per chain."""
        return options.num_warmup, options.num_samples

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        warmup, samples = self.schedule(options)
        return Plan(
            warmup + samples * options.thinning,
            TRAJECTORY,
            options.num_chains,
            keep=KeepAfterWarmup(warmup, options.thinning),
        )

    def display(self, options, n_rows: int) -> Display:
        if self.is_adjusted(options):
            return Display(mclmc_postfix, "try target_accept closer to 1, or a tighter prior")
        return Display(mclmc_postfix, "try a smaller desired_energy_var, or a tighter prior")

    def facts(self, options, n_rows: int) -> dict:
        warmup, samples = self.schedule(options)
        return {
            "objective": self.objective,
            "adjusted": self.is_adjusted(options),
            "num_warmup": warmup,
            "num_samples": samples,
        }

    def build(self, model, data, options, backend) -> Algorithm:
        return mclmc_algorithm(model, data.n, options, self.is_adjusted(options), self.schedule(options)[0])


class AdjustedMCLMC(MCLMC):
    """Metropolis-adjusted MCLMC with a random trajectory length (BlackJAX, MAMS); exact."""

    name, Options = "adjusted_mclmc", AdjustedMCLMCOptions
    when_to_use = "an exact sampler that needs fewer gradients than NUTS on many targets; reference posteriors"
    adjusted = True


class MILE(MCLMC):
    """Microcanonical Langevin ensembles: a deep ensemble, then tuned MCLMC from every member (Sommer et al. 2025)."""

    name, Options = "mile", MILEOptions
    when_to_use = (
        "multimodal BNN posteriors at a fraction of NUTS's cost: one chain per ensemble member (adjusted=True "
        "for an exact kernel)"
    )

    def is_adjusted(self, options) -> bool:
        return bool(options.adjusted)

    def schedule(self, options) -> tuple[int, int]:
        scale = options.schedule_scale
        return max(3, round(options.num_warmup * scale)), max(1, round(options.num_samples * scale))

    def default_warm_start(self, options) -> str | None:
        return "ensemble"


def mclmc_algorithm(model, n_total: int, options, adjusted: bool, num_warmup: int) -> Algorithm:
    """MCLMC's pure pieces over the model's log joint on the full data set (flat position)."""
    import jax.numpy as jnp
    from blackjax.mcmc import adjusted_mclmc_dynamic, mclmc
    from jax.flatten_util import ravel_pytree

    from .logdensity import jax_log_density
    from .optim import unconstrained_start

    density = jax_log_density(model)
    dtype = jax_float_dtype()
    template = {k: jnp.zeros(s, dtype) for k, s in model.latent_shapes().items()}
    unravel = ravel_pytree(template)[1]
    dim = int(ravel_pytree(template)[0].shape[0])
    if dim < 2:
        raise ValueError(f"MCLMC needs at least 2 free parameters; the model has {dim}")
    phases = Phases.of(num_warmup)
    watched = jnp.asarray(watched_coordinates(dim))
    trace_shape = (max(1, phases.end3 - phases.end2), len(watched))
    if adjusted:
        kernel = adjusted_mclmc_dynamic.build_kernel(integration_steps_fn=integration_steps)
        init_fn, step_fn = adjusted_init, adjusted_step
    else:
        kernel, init_fn, step_fn = mclmc.build_kernel(), unadjusted_init, unadjusted_step

    def logdensity(batch):
        return lambda flat: -density.potential(unravel(flat), batch, n_total)

    def init(key, start, batch):
        flat = ravel_pytree(unconstrained_start(density, start))[0]
        return init_fn(key, flat, logdensity(batch), dtype, trace_shape)

    def step(key, state, batch):
        return step_fn(key, state, logdensity(batch), kernel, phases, watched, options)

    return Algorithm(init, step, position=lambda state: density.constrain(unravel(state.chain.position)))
