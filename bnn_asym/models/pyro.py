"""The Pyro model of a BayesianModel (torch apply)."""

from __future__ import annotations

import pyro
import torch

from .likelihoods import torch_backend
from .ppl import build_model


def make_pyro_model(model, dtype=torch.float32, calls: list | None = None):
    """``f(X, y=None, n_total=None, weights=None)`` on torch tensors; same sites and scaling as the NumPyro model.

    calls: optional one-element list incremented on every model evaluation (Pyro's NUTS evaluates the
    model once per potential-and-gradient evaluation, so this counts gradient evaluations).
    """

    counter = calls

    def count():
        if counter is not None:
            counter[0] += 1

    return build_model(
        model,
        pyro,
        pyro.poutine.scale,
        torch_backend(),
        model.net.apply_torch,
        scalar=lambda v: torch.tensor(v, dtype=dtype),
        on_call=count if calls is not None else None,
    )
