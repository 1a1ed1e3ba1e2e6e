"""SWAG (Maddox et al. 2019) and MultiSWAG: a Gaussian fitted to SGD iterates.

One run: ``pretrain_steps`` of Adam on the MAP objective (optim.py) to reach a mode -- or a start from a
given MAP with ``fit(init=map_posterior)`` and ``pretrain_steps=0`` -- then ``swag_steps`` of SGD with
momentum at a constant ``swag_lr``, collecting every ``collect_every`` steps: running mean and variance
of the free parameters (Welford, numerically stable in float32) and the last ``rank`` deviations from the
running mean. Draws: ``mean + sqrt(scale / 2) * (sqrt(var) z1 + D^T z2 / sqrt(K - 1))``.

SWAG's spread comes from gradient noise: SGD on the full data set (``batch_size >= N``) has none and the
covariance collapses to ~0, so such a batch is replaced (with a warning) by min(128, N // 4). A gradient-norm clip
(``max_grad_norm``) keeps the SGD phase finite on badly scaled data or noise-free targets (where a
learned noise std heads to 0 and gradients explode). MultiSWAG: ``n_runs`` runs as pseudo-chains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..warn import warn_user
from .base import (APPROXIMATION, Algorithm, Engine, check_optional_int, check_positive_float,
                   check_positive_int)
from .optim import map_pieces, unconstrained_start


@dataclass
class SWAGOptions:
    pretrain_steps: int = 2000  # Adam steps to reach a mode (0: start SWAG from the init / the given start)
    swag_steps: int = 1000  # SGD steps at constant swag_lr while collecting
    collect_every: int | None = None  # steps between snapshots; None: one epoch, at least 10 steps
    lr: float = 1e-3
    swag_lr: float = 1e-2
    momentum: float = 0.9
    rank: int = 20
    scale: float = 0.5
    num_draws: int = 100
    batch_size: int | None = None  # None: min(128, N // 4), so SGD always sees gradient noise
    max_grad_norm: float = 10.0  # clip of the mini-batch gradient (per-example objective) in both phases

    def __post_init__(self):
        owner = "swag"
        check_positive_int(owner, "pretrain_steps", self.pretrain_steps, 0)
        for name in ("swag_steps", "rank", "num_draws"):
            check_positive_int(owner, name, getattr(self, name))
        check_optional_int(owner, "collect_every", self.collect_every)
        check_optional_int(owner, "batch_size", self.batch_size)
        for name in ("lr", "swag_lr", "scale", "max_grad_norm"):
            check_positive_float(owner, name, getattr(self, name))
        if not 0 <= self.momentum < 1:
            raise ValueError(f"{owner} option momentum={self.momentum!r} is not valid; accepted: 0 <= x < 1")


@dataclass
class MultiSWAGOptions(SWAGOptions):
    n_runs: int = 3

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("multiswag", "n_runs", self.n_runs)


def batch_size_for(options, n: int) -> int:
    """The batch SGD uses: as given when it leaves gradient noise (< N), else min(128, N // 4)."""
    if options.batch_size is not None and options.batch_size < n:
        return options.batch_size
    return max(1, min(128, n // 4))


def collect_every_for(options, n: int) -> int:
    return options.collect_every or max(10, n // batch_size_for(options, n))


class SWAG(Engine):
    name = "swag"
    Options = SWAGOptions
    description = "SWA-Gaussian: diagonal plus rank-K covariance from SGD iterates"
    when_to_use = "cheap local uncertainty around one mode, for networks of any size"
    uses_minibatches = True

    def check(self, model, data, options) -> None:
        b = batch_size_for(options, data.n)
        if b >= data.n:
            raise ValueError(f"{self.name} needs at least 2 training rows (SGD must see gradient noise); got "
                             f"n_samples = {data.n}")
        if options.batch_size is not None and options.batch_size >= data.n:
            warn_user(f"{self.name}: batch_size={options.batch_size} covers all {data.n} training rows, so SGD would see "
                      f"no gradient noise and SWAG's covariance would collapse to ~0; using batch_size={b} instead",
                      UserWarning)
        elif b > data.n // 2:
            warn_user(f"{self.name}: batch_size={b} is more than half of the {data.n} training rows; SGD's gradient "
                      "noise, and with it SWAG's spread, is small (a batch of N // 4 or less is usual)", UserWarning)
        every = collect_every_for(options, data.n)
        if options.swag_steps // every < 2:
            raise ValueError(f"{self.name} would collect {options.swag_steps // every} snapshot(s); raise swag_steps or "
                             f"lower collect_every (now {options.swag_steps} steps, one snapshot every {every})")

    def build(self, model, data, options, backend) -> Algorithm:
        import jax
        import jax.numpy as jnp
        import optax
        from jax.flatten_util import ravel_pytree

        density, loss_fn = map_pieces(model, data.n)
        pre, every, rank = options.pretrain_steps, collect_every_for(options, data.n), options.rank
        adam = optax.chain(optax.clip_by_global_norm(options.max_grad_norm),
                           optax.adam(optax.cosine_decay_schedule(options.lr, max(1, pre))))
        sgd = optax.chain(optax.clip_by_global_norm(options.max_grad_norm),
                          optax.sgd(options.swag_lr, momentum=options.momentum))

        def init(key, start, batch):
            position = unconstrained_start(density, start)
            flat, _ = ravel_pytree(position)
            zeros = jnp.zeros_like(flat)
            moments = {"n": jnp.zeros((), jnp.int32), "mean": zeros, "m2": zeros,
                       "dev": jnp.zeros((rank,) + flat.shape, flat.dtype)}
            return {"position": position, "adam": adam.init(position), "sgd": sgd.init(position),
                    "t": jnp.zeros((), jnp.int32), "moments": moments}

        def collect(moments, flat):
            n = moments["n"] + 1
            delta = flat - moments["mean"]
            mean = moments["mean"] + delta / n
            m2 = moments["m2"] + delta * (flat - mean)
            dev = moments["dev"].at[(n - 1) % rank].set(flat - mean)
            return {"n": n, "mean": mean, "m2": m2, "dev": dev}

        def step(state, batch, key):
            position, t = state["position"], state["t"]
            loss, grads = jax.value_and_grad(loss_fn)(position, batch)

            def pretrain(_):
                updates, opt = adam.update(grads, state["adam"], position)
                return optax.apply_updates(position, updates), opt, state["sgd"], state["moments"]

            def swag_phase(_):
                updates, opt = sgd.update(grads, state["sgd"], position)
                new = optax.apply_updates(position, updates)
                due = ((t - pre + 1) % every) == 0
                moments = jax.lax.cond(due, lambda m: collect(m, ravel_pytree(new)[0]), lambda m: m, state["moments"])
                return new, state["adam"], opt, moments

            new, adam_state, sgd_state, moments = jax.lax.cond(t < pre, pretrain, swag_phase, None)
            state = {"position": new, "adam": adam_state, "sgd": sgd_state, "t": t + 1, "moments": moments}
            return state, {"loss": loss, "grad_evals": 1}

        names = sorted(model.latent_shapes())  # ravel_pytree's order for a dict
        shapes = model.latent_shapes()
        sizes = [int(np.prod(shapes[k])) for k in names]

        def draws(state, rng, num):
            """On the host: ``num`` draws of the SWAG Gaussian (numpy)."""
            m = state["moments"]
            n = int(m["n"])
            k = min(n, rank)
            var = np.maximum(m["m2"] / max(n, 1), 1e-30)
            z1 = rng.standard_normal((num,) + m["mean"].shape)
            z2 = rng.standard_normal((num, rank)) * (np.arange(rank) < k)  # rows not yet filled stay off
            flat = (m["mean"] + math.sqrt(options.scale / 2) * np.sqrt(var) * z1
                    + math.sqrt(options.scale / (2 * max(k - 1, 1))) * z2 @ m["dev"]).astype(m["mean"].dtype)
            parts = np.split(flat, np.cumsum(sizes)[:-1], axis=1)
            return density.constrain_host({name: p.reshape((num,) + tuple(shapes[name])) for name, p in zip(names, parts)})

        return Algorithm(init, step, pre + options.swag_steps, APPROXIMATION, draws=draws, num_draws=options.num_draws,
                         batch_size=batch_size_for(options, data.n),
                         postfix=lambda info: {"loss": f"{float(info['loss'].mean()):.4g}"},
                         nan_hint=f"try a smaller swag_lr (now {options.swag_lr:g}) or lr (now {options.lr:g})",
                         extra={"objective": "map_loss", "rank": rank, "scale": options.scale,
                                "collect_every": every, "snapshots": options.swag_steps // every})


class MultiSWAG(SWAG):
    name = "multiswag"
    Options = MultiSWAGOptions
    description = "several SWAG runs from independent inits (one pseudo-chain per run)"
    when_to_use = "SWAG's local spread plus an ensemble's multimodality"
    multiple_chains = True

    @classmethod
    def num_chains(cls, options) -> int:
        return options.n_runs
