"""The NumPyro model of a BayesianModel (JAX apply)."""

from __future__ import annotations

import numpyro
from numpyro import handlers

from .likelihoods import jax_backend
from .ppl import build_model


def make_numpyro_model(model):
    """``f(X, y=None, n_total=None, weights=None)`` on JAX arrays; see ``ppl.build_model``."""
    return build_model(model, numpyro, handlers.scale, jax_backend(), model.net.apply_jax)
