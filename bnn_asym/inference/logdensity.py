"""The log joint of a BayesianModel as plain JAX functions, for engines that work on it directly
(MAP, ensembles, SWAG, SG-MCMC, ELRG VI, warm starts).

Positions are named arrays in *unconstrained* space: network parameters as they are, likelihood latents
with positive support (a learned noise std) as their log. ``potential`` is minus the log joint in those
coordinates (log-Jacobian included), on a mini-batch ``(X, y, weights)`` scaled to ``n_total`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class LogDensity(NamedTuple):
    potential: Callable  # (position, batch: (X, y, weights), n_total) -> scalar
    constrain: Callable  # position -> named arrays in the model's own coordinates
    constrain_host: Callable  # the same for numpy arrays (draws), returning numpy
    unconstrain: Callable  # named arrays -> position
    log_likelihood: Callable  # (constrained params, X, y) -> (N,) pointwise log-likelihood
    log_prior: Callable  # constrained params -> scalar log prior of the network parameters (latents excluded)


def jax_log_density(model) -> LogDensity:
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer.util import potential_energy

    from ..models.likelihoods import jax_backend

    backend = jax_backend()
    model_fn = model.numpyro_model()
    lik = model.likelihood
    transforms = {name: biject_to(lik.latent_prior(backend, name).support) for name in lik.latent_sites()}
    names = [p.name for p in model.net.layout]
    prior = model.prior_loc_scale()

    def potential(position, batch, n_total):
        return potential_energy(model_fn, (batch[0], batch[1], n_total, batch[2]), {}, position)

    def constrain(position):
        return {k: (transforms[k](v) if k in transforms else v) for k, v in position.items()}

    def constrain_host(position):
        return {k: (np.asarray(transforms[k](v)) if k in transforms else v) for k, v in position.items()}

    def unconstrain(values):
        return {k: (transforms[k].inv(v) if k in transforms else v) for k, v in values.items()}

    def log_likelihood(params, X, y):
        out = model.net.apply_jax({k: params[k] for k in names}, X)
        return lik.distribution(backend, out, {k: params[k] for k in transforms}).log_prob(y)

    def log_prior(params):
        total: Any = 0.0
        for k in names:
            loc, std = prior[k]
            total = total + jnp.sum(-0.5 * ((params[k] - loc) / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi))
        return total

    return LogDensity(potential, constrain, constrain_host, unconstrain, log_likelihood, log_prior)
