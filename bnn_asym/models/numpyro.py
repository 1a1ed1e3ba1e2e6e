"""The NumPyro model of a BayesianModel (JAX apply)."""

from __future__ import annotations

import numpyro
import numpyro.distributions as dist

from .likelihoods import jax_backend


def make_numpyro_model(model):
    """``f(X, y=None, batch_size=None)``: priors on free parameters, likelihood in a data plate.

    With ``batch_size`` the plate subsamples that many rows per evaluation and scales the likelihood by
    N / batch_size, so SVI on mini-batches targets the full-data ELBO.
    """
    prior = model.prior_loc_scale()
    layout = model.net.layout
    backend = jax_backend()
    lik = model.likelihood

    def numpyro_model(X, y=None, batch_size=None):
        params = {}
        for p in layout:
            loc, std = prior[p.name]
            params[p.name] = numpyro.sample(p.name, dist.Normal(loc, std).expand(p.shape).to_event(len(p.shape)))
        latents = {name: numpyro.sample(name, lik.latent_prior(backend, name)) for name in lik.latent_sites()}
        with numpyro.plate("data", X.shape[0], subsample_size=batch_size) as idx:
            if batch_size is None:
                xb, yb = X, y
            else:
                xb, yb = X[idx], (None if y is None else y[idx])
            out = model.net.apply_jax(params, xb)
            numpyro.sample("y", lik.distribution(backend, out, latents), obs=yb)

    return numpyro_model
