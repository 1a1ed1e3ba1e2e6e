"""Point estimates: "map" (one MAP network per chain) and "ensemble" (a deep ensemble of MAP networks).

The objective is the model's own log joint: mean negative log-likelihood of a mini-batch minus log prior
/ N (the prior is the regulariser: no separate weight decay), in unconstrained coordinates (a learned
noise std is optimised as its log). Optimiser: Adam (optax), constant or cosine learning rate. Each
ensemble member is a chain: members train in parallel over devices when there are enough.
``map_pieces`` is shared with SWAG, Laplace and warm starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import (APPROXIMATION, Algorithm, Engine, check_choice, check_optional_int, check_positive_float,
                   check_positive_int)

SCHEDULES = ("constant", "cosine")


@dataclass
class MAPOptions:
    num_steps: int = 2000
    batch_size: int | None = 128  # None: full batch
    lr: float = 1e-3
    schedule: str = "cosine"
    num_chains: int = 1

    def __post_init__(self):
        owner = "map"
        check_positive_int(owner, "num_steps", self.num_steps)
        check_optional_int(owner, "batch_size", self.batch_size)
        check_positive_float(owner, "lr", self.lr)
        check_choice(owner, "schedule", self.schedule, SCHEDULES)
        check_positive_int(owner, "num_chains", self.num_chains)


@dataclass
class EnsembleOptions:
    n_members: int = 5
    num_steps: int = 2000  # optimiser steps per member
    batch_size: int | None = 128
    lr: float = 1e-3
    schedule: str = "cosine"

    def __post_init__(self):
        owner = "ensemble"
        for name in ("n_members", "num_steps"):
            check_positive_int(owner, name, getattr(self, name))
        check_optional_int(owner, "batch_size", self.batch_size)
        check_positive_float(owner, "lr", self.lr)
        check_choice(owner, "schedule", self.schedule, SCHEDULES)


def learning_rate(lr: float, schedule: str, num_steps: int):
    import optax

    return optax.cosine_decay_schedule(lr, num_steps) if schedule == "cosine" else lr


def map_pieces(model, n_total: int):
    """(density, loss(position, batch) -> mean NLL - log prior / N, position -> constrained)."""
    from .logdensity import jax_log_density

    density = jax_log_density(model)

    def loss(position, batch):
        return density.potential(position, batch, n_total) / n_total

    return density, loss


def unconstrained_start(density, start: dict):
    import jax.numpy as jnp

    from .base import jax_float_dtype

    dtype = jax_float_dtype()
    return density.unconstrain({k: jnp.asarray(v, dtype) for k, v in start.items()})


def build_map(model, data, num_steps: int, batch_size, lr: float, schedule: str, name: str) -> Algorithm:
    import jax
    import optax

    density, loss_fn = map_pieces(model, data.n)
    optimizer = optax.adam(learning_rate(lr, schedule, num_steps))

    def init(key, start, batch):
        position = unconstrained_start(density, start)
        return position, optimizer.init(position)

    def step(state, batch, key):
        position, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(position, batch)
        updates, opt_state = optimizer.update(grads, opt_state, position)
        return (optax.apply_updates(position, updates), opt_state), {"loss": loss, "grad_evals": 1}

    def draws(state, rng, num):
        position = density.constrain_host(state[0])
        return {k: np.broadcast_to(v, (num,) + np.shape(v)).copy() for k, v in position.items()}

    return Algorithm(init, step, num_steps, APPROXIMATION, draws=draws, num_draws=1, batch_size=batch_size,
                     postfix=lambda info: {"loss": f"{float(info['loss'].mean()):.4g}"},
                     nan_hint=f"try a smaller learning rate (lr={lr:g} now)", extra={"objective": "map_loss"})


class MAP(Engine):
    batch_over_n = "full"  # mini-batches of at most N rows
    name = "map"
    Options = MAPOptions
    description = "maximum a posteriori point estimate (Adam on the log joint), one draw per chain"
    when_to_use = "a deterministic baseline, and the start of Laplace / SWAG / warm-started chains"
    multiple_chains = True
    uses_minibatches = True

    def build(self, model, data, options, backend) -> Algorithm:
        return build_map(model, data, options.num_steps, options.batch_size, options.lr, options.schedule, self.name)


class Ensemble(Engine):
    batch_over_n = "full"  # mini-batches of at most N rows
    name = "ensemble"
    Options = EnsembleOptions
    description = "deep ensemble of MAP networks from independent inits (one pseudo-chain per member)"
    when_to_use = "robust, multimodal and hard to beat for accuracy and calibration; no within-mode spread"
    multiple_chains = True
    uses_minibatches = True

    @classmethod
    def num_chains(cls, options) -> int:
        return options.n_members

    def build(self, model, data, options, backend) -> Algorithm:
        return build_map(model, data, options.num_steps, options.batch_size, options.lr, options.schedule, self.name)
