"""Point estimates: "map" (one MAP network per chain) and "ensemble" (a deep ensemble of MAP networks).

The objective is the model's own log joint: mean negative log-likelihood of a mini-batch minus log prior
/ N (the prior is the regulariser: no separate weight decay), in unconstrained coordinates (a learned
noise std is optimised as its log). Optimiser: Adam (optax), constant or cosine learning rate. Each
ensemble member is a chain: members train in parallel over devices when there are enough.
``map_algorithm`` is shared with Laplace; ``map_loss`` and ``unconstrained_start`` with SWAG and SG-MCMC.

State: ``MAPState(position, opt_state)``. StepInfo: grad_evals (1), loss (the MAP loss of the batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..validate import field, integer, number, one_of, optional
from .base import APPROXIMATION, Algorithm, Display, Engine, Plan, StepInfo, jax_float_dtype, loss_postfix

SCHEDULES = ("constant", "cosine")


@dataclass
class MAPOptions:
    num_steps: int = field(2000, integer(1), "optimiser (Adam) steps")
    batch_size: int | None = field(128, optional(integer(1)), "rows per step; None: the full data set")
    lr: float = field(1e-3, number(0.0), "Adam's (initial) learning rate")
    schedule: str = field("cosine", one_of(*SCHEDULES), "learning-rate schedule")
    num_chains: int = field(1, integer(1), "independent MAP estimates (one draw each)")


@dataclass
class EnsembleOptions:
    n_members: int = field(5, integer(1), "ensemble members (one pseudo-chain each)")
    num_steps: int = field(2000, integer(1), "optimiser (Adam) steps per member")
    batch_size: int | None = field(128, optional(integer(1)), "rows per step; None: the full data set")
    lr: float = field(1e-3, number(0.0), "Adam's (initial) learning rate")
    schedule: str = field("cosine", one_of(*SCHEDULES), "learning-rate schedule")


class MAPState(NamedTuple):
    position: Any  # named arrays, unconstrained
    opt_state: Any  # Adam's state


def learning_rate(lr: float, schedule: str, num_steps: int):
    import optax

    return optax.cosine_decay_schedule(lr, num_steps) if schedule == "cosine" else lr


def map_loss(density, n_total: int):
    """loss(position, batch): mean negative log-likelihood of the batch minus log prior / N."""

    def loss(position, batch):
        return density.potential(position, batch, n_total) / n_total

    return loss


def unconstrained_start(density, start: dict):
    import jax.numpy as jnp

    dtype = jax_float_dtype()
    return density.unconstrain({k: jnp.asarray(v, dtype) for k, v in start.items()})


def init(start: dict, density, optimizer) -> MAPState:
    position = unconstrained_start(density, start)
    return MAPState(position, optimizer.init(position))


def step(key, state: MAPState, batch, loss_fn, optimizer):
    """One Adam step on the MAP loss of ``batch``."""
    import jax
    import optax

    loss, grads = jax.value_and_grad(loss_fn)(state.position, batch)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.position)
    return MAPState(optax.apply_updates(state.position, updates), opt_state), StepInfo(1, loss=loss)


def draws(state: MAPState, rng, num: int, density) -> dict:
    """The point estimate (constrained), repeated ``num`` times."""
    position = density.constrain_host(state.position)
    return {k: np.broadcast_to(v, (num,) + np.shape(v)).copy() for k, v in position.items()}


def map_algorithm(model, n_total: int, num_steps: int, lr: float, schedule: str) -> Algorithm:
    import optax

    from .logdensity import jax_log_density

    density = jax_log_density(model)
    loss_fn = map_loss(density, n_total)
    optimizer = optax.adam(learning_rate(lr, schedule, num_steps))
    return Algorithm(
        lambda key, start, batch: init(start, density, optimizer),
        lambda key, state, batch: step(key, state, batch, loss_fn, optimizer),
        draws=lambda state, rng, num: draws(state, rng, num, density),
    )


class MAP(Engine):
    """Maximum a posteriori point estimate (Adam on the log joint), one draw per chain."""

    name = "map"
    Options: type = MAPOptions
    when_to_use = "a deterministic baseline, and the start of Laplace / SWAG / warm-started chains"
    objective = "map_loss"
    batch_over_n = "full"  # mini-batches of at most N rows

    def plan(self, options, n_rows: int) -> Plan:
        return Plan(options.num_steps, APPROXIMATION, self.num_chains(options), options.batch_size, num_draws=1)

    def display(self, options, n_rows: int) -> Display:
        return Display(loss_postfix, f"try a smaller learning rate (lr={options.lr:g} now)")

    def build(self, model, data, options, backend) -> Algorithm:
        return map_algorithm(model, data.n, options.num_steps, options.lr, options.schedule)


class Ensemble(MAP):
    """Deep ensemble of MAP networks from independent inits (one pseudo-chain per member)."""

    name, Options = "ensemble", EnsembleOptions
    when_to_use = "robust, multimodal and hard to beat for accuracy and calibration; no within-mode spread"
    chains_option = "n_members"
