"""The model of a BayesianModel, written once for both PPLs.

NumPyro and Pyro share ``sample``, ``plate``, a ``scale`` handler and their distribution classes, so one
function builds both models; numpyro.py and pyro.py only choose the PPL, the array backend and the
network's apply function.
"""

from __future__ import annotations


def build_model(model, ppl, scale_handler, backend, apply, scalar=float, on_call=None):
    """``f(X, y=None, n_total=None, weights=None)``: priors on the free parameters, likelihood in a data plate.

    ppl: the ``numpyro`` or ``pyro`` module; scale_handler: its ``handlers.scale`` / ``poutine.scale``.
    backend: the likelihood Backend of the same library. apply: the network's apply function for that
    library. scalar: converts prior constants to the library's scalars. on_call: called on every model
    evaluation (to count gradient evaluations).
    ``X, y`` may be a mini-batch of a data set of ``n_total`` rows: the likelihood is then scaled by
    ``n_total / len(X)``, so mini-batch estimates target the full-data log joint. The caller picks the
    batch (the inference driver does), so every engine and both PPLs see the same rows. ``weights``
    multiplies each row's log-likelihood (sample weights; 0 drops a row, e.g. padding).
    """
    prior = model.prior_loc_scale()
    layout = model.net.layout
    lik = model.likelihood
    dist = backend.dist

    def ppl_model(X, y=None, n_total=None, weights=None):
        if on_call is not None:
            on_call()
        params = {}
        for p in layout:
            loc, std = prior[p.name]
            base = dist.Normal(scalar(loc), scalar(std))
            params[p.name] = ppl.sample(p.name, base.expand(p.shape).to_event(len(p.shape)))
        latents = {name: ppl.sample(name, lik.latent_prior(backend, name)) for name in lik.latent_sites()}
        n = X.shape[0]
        factor = 1.0 if n_total is None or n_total == n else n_total / n
        if weights is not None:
            factor = factor * weights
        with ppl.plate("data", n), scale_handler(scale=factor):
            ppl.sample("y", lik.distribution(backend, apply(params, X), latents), obs=y)

    return ppl_model
