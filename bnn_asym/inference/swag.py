"""SWAG (Maddox et al. 2019) and MultiSWAG: a Gaussian fitted to SGD iterates.

One run: a start at a mode -- by default a MAP estimate (the "map" engine with its defaults, full-batch
L-BFGS for small problems: ``fit`` runs it as the warm start ``init="map"``; MultiSWAG: ``init="ensemble"``,
one per run), or another posterior's draws with ``fit(init=...)``, or ``pretrain_steps`` of Adam on the MAP
objective from the network's init (``pretrain_steps > 0`` skips the default warm start) -- then
``swag_steps`` of SGD with momentum at a constant ``swag_lr``, collecting every ``collect_every`` steps:
running mean and variance of the free parameters (Welford, numerically stable in float32) and the last
``rank`` deviations from the running mean. Draws: ``mean + sqrt(scale / 2) * (sqrt(var) z1 + D^T z2 / sqrt(K - 1))``.

SWAG's spread comes from gradient noise: SGD on the full data set (``batch_size >= N``) has none and the
covariance collapses to ~0, so such a batch is replaced (with a warning) by min(128, N // 4). A gradient-norm clip
(``max_grad_norm``) keeps the SGD phase finite on badly scaled data or noise-free targets (where a
learned noise std heads to 0 and gradients explode). MultiSWAG: ``n_runs`` runs as pseudo-chains.

State: ``SWAGState(position, adam, sgd, step, moments)`` with ``SWAGMoments(n, mean, m2, dev)`` over the
flattened position. StepInfo: grad_evals (1), loss (the MAP loss of the batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..validate import field, integer, number, optional
from ..warn import warn_user
from .base import APPROXIMATION, Algorithm, Display, Engine, Plan, StepInfo, loss_postfix
from .optim import map_loss, unconstrained_start


@dataclass
class SWAGOptions:
    pretrain_steps: int = field(
        0, integer(0), "Adam steps to reach a mode from the init; 0: start from a MAP estimate (fit's init='map')"
    )
    swag_steps: int = field(1000, integer(1), "SGD steps at constant swag_lr while collecting")
    collect_every: int | None = field(
        None, optional(integer(1)), "steps between snapshots; None: one epoch, at least 10 steps"
    )
    lr: float = field(1e-2, number(0.0), "Adam's learning rate while pretraining (cosine decay)")
    swag_lr: float = field(1e-2, number(0.0), "SGD's constant learning rate while collecting")
    momentum: float = field(0.9, number(0.0, 1.0, low_open=False, high_open=True), "SGD momentum")
    rank: int = field(20, integer(1), "deviations kept for the low-rank part of the covariance")
    scale: float = field(0.5, number(0.0), "covariance scale of the draws")
    num_draws: int = field(100, integer(1), "draws from the fitted Gaussian")
    batch_size: int | None = field(
        None, optional(integer(1)), "rows per step; None: min(128, N // 4), so SGD always sees gradient noise"
    )
    max_grad_norm: float = field(10.0, number(0.0), "clip of the mini-batch gradient in both phases")


@dataclass
class MultiSWAGOptions(SWAGOptions):
    n_runs: int = field(3, integer(1), "SWAG runs from independent inits (one pseudo-chain each)")


class SWAGMoments(NamedTuple):
    """Running moments of the flattened SGD iterates (Welford) and the last ``rank`` deviations."""

    n: Any  # int32: snapshots so far
    mean: Any
    m2: Any  # sum of squared deviations from the running mean
    dev: Any  # (rank, D): deviations from the running mean, a ring buffer


class SWAGState(NamedTuple):
    position: Any  # named arrays, unconstrained
    adam: Any  # Adam's state (pretraining)
    sgd: Any  # SGD's state (collecting)
    step: Any  # int32: steps taken
    moments: SWAGMoments


def batch_size_for(options, n: int) -> int:
    """The batch SGD uses: as given when it leaves gradient noise (< N), else min(128, N // 4)."""
    if options.batch_size is not None and options.batch_size < n:
        return options.batch_size
    return max(1, min(128, n // 4))


def collect_every_for(options, n: int) -> int:
    return options.collect_every or max(10, n // batch_size_for(options, n))


def init(start: dict, density, adam, sgd, rank: int) -> SWAGState:
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    position = unconstrained_start(density, start)
    flat, _ = ravel_pytree(position)
    zeros = jnp.zeros_like(flat)
    moments = SWAGMoments(jnp.zeros((), jnp.int32), zeros, zeros, jnp.zeros((rank,) + flat.shape, flat.dtype))
    return SWAGState(position, adam.init(position), sgd.init(position), jnp.zeros((), jnp.int32), moments)


def collect(moments: SWAGMoments, flat, rank: int) -> SWAGMoments:
    """The moments with one more snapshot ``flat`` (Welford's update; the deviation joins the ring buffer)."""
    n = moments.n + 1
    delta = flat - moments.mean
    mean = moments.mean + delta / n
    m2 = moments.m2 + delta * (flat - mean)
    return SWAGMoments(n, mean, m2, moments.dev.at[(n - 1) % rank].set(flat - mean))


def step(key, state: SWAGState, batch, loss_fn, adam, sgd, pretrain_steps: int, every: int, rank: int):
    """Adam while ``step < pretrain_steps``, then SGD, collecting a snapshot every ``every`` SGD steps."""
    import jax
    import optax
    from jax.flatten_util import ravel_pytree

    position, t = state.position, state.step
    loss, grads = jax.value_and_grad(loss_fn)(position, batch)

    def pretrain(_):
        updates, opt = adam.update(grads, state.adam, position)
        return optax.apply_updates(position, updates), opt, state.sgd, state.moments

    def swag_phase(_):
        updates, opt = sgd.update(grads, state.sgd, position)
        new = optax.apply_updates(position, updates)
        due = ((t - pretrain_steps + 1) % every) == 0
        moments = jax.lax.cond(due, lambda m: collect(m, ravel_pytree(new)[0], rank), lambda m: m, state.moments)
        return new, state.adam, opt, moments

    new, adam_state, sgd_state, moments = jax.lax.cond(t < pretrain_steps, pretrain, swag_phase, None)
    return SWAGState(new, adam_state, sgd_state, t + 1, moments), StepInfo(1, loss=loss)


def draws(state: SWAGState, rng, num: int, scale: float, rank: int, shapes: dict, density) -> dict:
    """On the host: ``num`` draws ``mean + sqrt(scale / 2) * (sqrt(var) z1 + D^T z2 / sqrt(K - 1))`` (numpy)."""
    m = state.moments
    n = int(m.n)
    k = min(n, rank)
    var = np.maximum(m.m2 / max(n, 1), 1e-30)
    z1 = rng.standard_normal((num,) + m.mean.shape)
    z2 = rng.standard_normal((num, rank)) * (np.arange(rank) < k)  # rows not yet filled stay off
    flat = (
        m.mean + math.sqrt(scale / 2) * np.sqrt(var) * z1 + math.sqrt(scale / (2 * max(k - 1, 1))) * z2 @ m.dev
    ).astype(m.mean.dtype)
    names = sorted(shapes)  # ravel_pytree's order for a dict
    parts = np.split(flat, np.cumsum([int(np.prod(shapes[name])) for name in names])[:-1], axis=1)
    return density.constrain_host({name: p.reshape((num,) + tuple(shapes[name])) for name, p in zip(names, parts)})


class SWAG(Engine):
    """SWA-Gaussian: diagonal plus rank-K covariance from SGD iterates."""

    name = "swag"
    Options = SWAGOptions
    when_to_use = "cheap local uncertainty around one mode, for networks of any size"
    objective = "map_loss"

    def default_warm_start(self, options) -> str | None:
        return "map" if options.pretrain_steps == 0 else None

    def check(self, model, data, options) -> None:
        b = batch_size_for(options, data.n)
        if b >= data.n:
            raise ValueError(
                f"{self.name} needs at least 2 training rows (SGD must see gradient noise); got n_samples = {data.n}"
            )
        if options.batch_size is not None and options.batch_size >= data.n:
            warn_user(
                f"{self.name}: batch_size={options.batch_size} covers all {data.n} training rows, so SGD would see "
                f"no gradient noise and SWAG's covariance would collapse to ~0; using batch_size={b} instead",
                UserWarning,
            )
        elif b > data.n // 2:
            warn_user(
                f"{self.name}: batch_size={b} is more than half of the {data.n} training rows; SGD's gradient "
                "noise, and with it SWAG's spread, is small (a batch of N // 4 or less is usual)",
                UserWarning,
            )
        every = collect_every_for(options, data.n)
        if options.swag_steps // every < 2:
            raise ValueError(
                f"{self.name} would collect {options.swag_steps // every} snapshot(s); raise swag_steps or "
                f"lower collect_every (now {options.swag_steps} steps, one snapshot every {every})"
            )

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        return Plan(
            options.pretrain_steps + options.swag_steps,
            APPROXIMATION,
            self.num_chains(options),
            batch_size_for(options, n_rows),
            num_draws=options.num_draws,
        )

    def display(self, options, n_rows: int) -> Display:
        return Display(loss_postfix, f"try a smaller swag_lr (now {options.swag_lr:g}) or lr (now {options.lr:g})")

    def facts(self, options, n_rows: int) -> dict:
        every = collect_every_for(options, n_rows)
        return {
            "objective": self.objective,
            "rank": options.rank,
            "scale": options.scale,
            "collect_every": every,
            "snapshots": options.swag_steps // every,
        }

    def build(self, model, data, options, backend) -> Algorithm:
        import optax

        from .logdensity import jax_log_density

        density = jax_log_density(model)
        loss_fn = map_loss(density, data.n)
        pre, every, rank = options.pretrain_steps, collect_every_for(options, data.n), options.rank
        adam = optax.chain(
            optax.clip_by_global_norm(options.max_grad_norm),
            optax.adam(optax.cosine_decay_schedule(options.lr, max(1, pre))),
        )
        sgd = optax.chain(
            optax.clip_by_global_norm(options.max_grad_norm), optax.sgd(options.swag_lr, momentum=options.momentum)
        )
        shapes = model.latent_shapes()
        return Algorithm(
            lambda key, start, batch: init(start, density, adam, sgd, rank),
            lambda key, state, batch: step(key, state, batch, loss_fn, adam, sgd, pre, every, rank),
            draws=lambda state, rng, num: draws(state, rng, num, options.scale, rank, shapes, density),
        )


class MultiSWAG(SWAG):
    """Several SWAG runs from independent inits (one pseudo-chain per run)."""

    name, Options = "multiswag", MultiSWAGOptions
    when_to_use = "SWAG's local spread plus an ensemble's multimodality"
    chains_option = "n_runs"

    def default_warm_start(self, options) -> str | None:
        return "ensemble" if options.pretrain_steps == 0 else None  # one MAP per run
