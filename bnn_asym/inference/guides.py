"""Gaussian variational families over a model's unconstrained position, in plain JAX.

"normal": mean-field, ``N(loc, diag(exp(log_scale))^2)`` per site (NumPyro's AutoNormal family).
"lowrank": one ``N(loc, diag(d^2) + W W^T)`` over all free parameters flattened, ``W = diag(d) F`` of ``rank``
columns (NumPyro's AutoLowRankMultivariateNormal family and parameterisation). Learning ``F`` relative to the
diagonal scale matters: a free ``W`` moves each of its D x rank entries by about the learning rate per Adam
step, so its variance grows with D and a deep net's fit stalls (digits MLP, lr 1e-2: 42% accuracy instead
of 96%; MNIST-1D depth 8: chance).

Written here instead of using NumPyro's autoguides so that setting a guide up is a pure function: the
driver compiles ``init`` together with the first step, and a new process with a warm compilation cache
starts in a second instead of tracing hundreds of eager operations. The ELBO uses the analytic entropy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class MeanFieldParams(NamedTuple):
    loc: Any  # named arrays: the mean of each site
    log_scale: Any  # named arrays: log of each entry's standard deviation


class LowRankParams(NamedTuple):
    loc: Any  # (D,) mean of the flattened position
    log_diag: Any  # (D,) log of the diagonal scale d
    factor: Any  # (D, rank) F: the covariance is D (I + F F^T) D with D = diag(d)


class Family(NamedTuple):
    init: Callable  # (key, position, init_scale) -> MeanFieldParams | LowRankParams
    sample: Callable  # (params, key) -> position (one draw, reparameterised; JAX, inside the ELBO)
    entropy: Callable  # params -> scalar
    draws: Callable  # (params as numpy, numpy Generator, num) -> named (num, *shape) numpy arrays


def mean_field() -> Family:
    import jax
    import jax.numpy as jnp

    def init(key, position, init_scale) -> MeanFieldParams:
        return MeanFieldParams(
            position, jax.tree.map(lambda v: jnp.full(jnp.shape(v), math.log(init_scale), jnp.result_type(v)), position)
        )

    def sample(params, key):
        # one normal draw for every site: each random call adds a threefry block to the compiled program
        leaves, tree = jax.tree.flatten(params.loc)
        sizes = [int(np.prod(np.shape(v))) for v in leaves]
        flat = jax.random.normal(key, (sum(sizes),), jnp.result_type(leaves[0]))
        pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
        noise = jax.tree.unflatten(tree, [p.reshape(np.shape(v)) for p, v in zip(pieces, leaves)])
        return jax.tree.map(lambda m, s, e: m + jnp.exp(s) * e, params.loc, params.log_scale, noise)

    def entropy(params):
        logs = jax.tree.leaves(params.log_scale)
        size = sum(x.size for x in logs)
        return sum(jnp.sum(x) for x in logs) + 0.5 * size * (1 + math.log(2 * math.pi))

    def draws(params, rng, num):
        return {
            k: loc + np.exp(params.log_scale[k]) * rng.standard_normal((num,) + np.shape(loc)).astype(loc.dtype)
            for k, loc in sorted(params.loc.items())
        }

    return Family(init, sample, entropy, draws)


def low_rank(rank: int, template: dict) -> Family:
    """``template``: a position (named arrays) of the right shapes and dtype, for flattening."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    _, unravel = ravel_pytree(template)

    def init(key, position, init_scale) -> LowRankParams:
        flat, _ = ravel_pytree(position)
        # NumPyro's start: diagonal only
        return LowRankParams(flat, jnp.full_like(flat, math.log(init_scale)), jnp.zeros((flat.size, rank), flat.dtype))

    def sample(params, key):
        k1, k2 = jax.random.split(key)
        loc = params.loc
        noise = jax.random.normal(k1, loc.shape, loc.dtype) + params.factor @ jax.random.normal(k2, (rank,), loc.dtype)
        return unravel(loc + jnp.exp(params.log_diag) * noise)

    def entropy(params):
        # cov = D (I + F F^T) D with D = diag(d): log det = 2 sum log d + log det(I_rank + F^T F)
        F = params.factor
        small = jnp.eye(rank, dtype=F.dtype) + F.T @ F
        logdet = 2 * jnp.sum(params.log_diag) + jnp.linalg.slogdet(small)[1]
        return 0.5 * logdet + 0.5 * F.shape[0] * (1 + math.log(2 * math.pi))

    names = sorted(template)  # the order ravel_pytree flattens a dict in
    sizes = [int(np.prod(np.shape(template[k]))) for k in names]

    def draws(params, rng, num):
        loc = params.loc
        noise = rng.standard_normal((num, loc.size)) + rng.standard_normal((num, rank)) @ params.factor.T
        flat = (loc + np.exp(params.log_diag) * noise).astype(loc.dtype)
        parts = np.split(flat, np.cumsum(sizes)[:-1], axis=1)
        return {k: p.reshape((num,) + np.shape(template[k])) for k, p in zip(names, parts)}

    return Family(init, sample, entropy, draws)
