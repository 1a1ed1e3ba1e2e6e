"""The model of a BayesianModel, written once for both PPLs.

NumPyro and Pyro share ``sample``, ``plate`` (with ``subsample_size``) and their distribution classes,
so one function builds both models; numpyro.py and pyro.py only choose the PPL, the array backend and
the network's apply function.
"""

from __future__ import annotations


def build_model(model, ppl, backend, apply, scalar=float, on_call=None):
    """``f(X, y=None, batch_size=None)``: priors on the free parameters, likelihood in a data plate.

    ppl: the ``numpyro`` or ``pyro`` module. backend: the likelihood Backend of the same library.
    apply: the network's apply function for that library. scalar: converts prior constants to the
    library's scalars. on_call: called on every model evaluation (to count gradient evaluations).
    With ``batch_size`` the plate subsamples that many rows per evaluation and scales the likelihood by
    N / batch_size, so stochastic VI on mini-batches targets the full-data ELBO.
    """
    prior = model.prior_loc_scale()
    layout = model.net.layout
    lik = model.likelihood
    dist = backend.dist

    def ppl_model(X, y=None, batch_size=None):
        if on_call is not None:
            on_call()
        params = {}
        for p in layout:
            loc, std = prior[p.name]
            base = dist.Normal(scalar(loc), scalar(std))
            params[p.name] = ppl.sample(p.name, base.expand(p.shape).to_event(len(p.shape)))
        latents = {name: ppl.sample(name, lik.latent_prior(backend, name)) for name in lik.latent_sites()}
        with ppl.plate("data", X.shape[0], subsample_size=batch_size) as idx:
            if batch_size is None:
                xb, yb = X, y
            else:
                xb, yb = X[idx], (None if y is None else y[idx])
            ppl.sample("y", lik.distribution(backend, apply(params, xb), latents), obs=yb)

    return ppl_model
