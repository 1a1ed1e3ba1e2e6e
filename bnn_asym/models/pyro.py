"""The Pyro model of a BayesianModel (torch apply)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from .likelihoods import torch_backend


def make_pyro_model(model, dtype=torch.float32, calls: list | None = None):
    """``f(X, y=None, batch_size=None)`` on torch tensors; same sites and scaling as the NumPyro model.

    calls: optional one-element list incremented on every model evaluation (Pyro's NUTS evaluates the
    model once per potential-and-gradient evaluation, so this counts gradient evaluations).
    """
    prior = model.prior_loc_scale()
    layout = model.net.layout
    backend = torch_backend()
    lik = model.likelihood

    def pyro_model(X, y=None, batch_size=None):
        if calls is not None:
            calls[0] += 1
        params = {}
        for p in layout:
            loc, std = prior[p.name]
            base = dist.Normal(torch.tensor(loc, dtype=dtype), torch.tensor(std, dtype=dtype))
            params[p.name] = pyro.sample(p.name, base.expand(p.shape).to_event(len(p.shape)))
        latents = {name: pyro.sample(name, lik.latent_prior(backend, name)) for name in lik.latent_sites()}
        with pyro.plate("data", X.shape[0], subsample_size=batch_size) as idx:
            if batch_size is None:
                xb, yb = X, y
            else:
                xb, yb = X[idx], (None if y is None else y[idx])
            out = model.net.apply_torch(params, xb)
            pyro.sample("y", lik.distribution(backend, out, latents), obs=yb)

    return pyro_model
