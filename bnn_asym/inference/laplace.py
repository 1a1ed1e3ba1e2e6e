"""Laplace approximation around a MAP estimate, built on laplace-torch over the torch view of the network.

The steps are MAP steps (optim.py, JAX). The draws come from a Gaussian around the current MAP whose
precision is the generalised Gauss-Newton (GGN) curvature of the log-likelihood plus the model's own
prior precision, computed by laplace-torch on ``TorchNet``: its parameters are exactly the free
parameters (fixed W-Asym entries are buffers), so the curvature never covers a fixed entry.

hessian: "diag" (diagonal GGN over every free parameter), "full" (dense GGN; small networks),
"last_layer" (dense covariance over the output layer's free weights and bias, the rest at the MAP).
prior_precision: "model" (the BNN's prior: Laplace approximates exactly the posterior the other engines
sample) or "marglik" (laplace-torch tunes one precision per parameter tensor by the marginal likelihood,
starting from the model's; one for the whole output layer with ``hessian="last_layer"``). Predictions: by
sampling the network at the draws, or -- for a Laplace posterior the usual choice -- linearised around the
draws' mean (``Posterior.predict(X, method="glm")`` or ``"probit"`` for classification).

Written here rather than taken from laplace-torch: the MAP (JAX, like the other engines), the
translation of bnn_asym's likelihoods (a Bernoulli logit becomes two-class logits; a learned noise std
enters as laplace-torch's ``sigma_noise`` at its MAP value) and of its prior (per-tensor precisions and
means, norm scales centred on 1), and the mapping of laplace-torch's parameter vector back to named
free parameters. laplace-torch's KFAC needs ``nn.Linear``/``nn.Conv2d`` modules holding whole weight
matrices; a W-Asym layer's free entries are not one, so KFAC is not offered.

State and StepInfo: MAP's (optim.py: ``MAPState``; grad_evals, loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..validate import field, integer, one_of, optional
from .base import Algorithm, Plan
from .optim import MAP, OptimizerOptions, map_algorithm

HESSIANS = ("diag", "full", "last_layer")
PRIOR_PRECISIONS = ("model", "marglik")
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
FULL_MAX_PARAMS = 20_000  # a dense P x P curvature beyond this does not fit in memory comfortably


@dataclass
class LaplaceOptions(OptimizerOptions):
    hessian: str = field("last_layer", one_of(*HESSIANS), "GGN curvature: diagonal, full, or the output layer's dense")
    prior_precision: str = field(
        "model", one_of(*PRIOR_PRECISIONS), "the model's prior, or tuned by the marginal likelihood"
    )
    num_draws: int = field(100, integer(1), "draws from the Laplace approximation")
    curvature_batch_size: int | None = field(
        None, optional(integer(1)), "rows per curvature batch; None: sized to ~256 MB of Jacobians"
    )


class Laplace(MAP):
    """Laplace approximation (GGN; diagonal, full or last-layer) around a MAP estimate (laplace-torch)."""

    name, Options = "laplace", LaplaceOptions
    when_to_use = "post-hoc uncertainty for a trained network; last_layer with the GLM/probit predictive"
    objective = "map_loss"
    batch_over_n = "full"  # mini-batches of at most N rows
    draws_need_data = True  # the curvature is computed from the training data

    def check(self, model, data, options) -> None:
        super().check(model, data, options)
        if model.likelihood.name not in LIKELIHOODS:
            raise ValueError(
                f"laplace supports the likelihoods {', '.join(LIKELIHOODS)}; got {model.likelihood.name!r}"
            )
        if options.hessian == "full" and model.net.num_free_params > FULL_MAX_PARAMS:
            raise ValueError(
                f"laplace hessian='full' needs a dense {model.net.num_free_params}^2 matrix; accepted for "
                f"up to {FULL_MAX_PARAMS:,} free parameters: use hessian='diag' or 'last_layer'"
            )
        if not np.all((data.w == 0) | (data.w == 1)):
            raise ValueError("laplace accepts weights of 0 or 1 only (rows in or out of the curvature)")
        try:
            import laplace  # noqa: F401
        except ImportError:
            raise ValueError("engine 'laplace' needs laplace-torch: pip install laplace-torch") from None
        except RuntimeError as err:
            # A torchvision built for another torch fails to register its operators when torchmetrics
            # (imported by laplace-torch) imports it; laplace-torch itself never needs torchvision.
            raise ValueError(
                f"engine 'laplace' could not import laplace-torch ({err}); this happens when an "
                "installed torchvision does not match torch: uninstall torchvision or install "
                "the build that matches your torch"
            ) from None

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        return super().plan(options, n_rows, n_params)._replace(num_draws=options.num_draws)

    def facts(self, options, n_rows: int) -> dict:
        return {"objective": self.objective, "hessian": options.hessian, "prior_precision": options.prior_precision}

    def build(self, model, data, options, backend) -> Algorithm:
        algo = map_algorithm(model, data.n, options)

        map_draws: Any = algo.draws

        def draws(state, rng, num):
            point = {k: np.asarray(v[0]) for k, v in map_draws(state, rng, 1).items()}
            return laplace_draws(model, data, point, options, int(rng.integers(2**62)), num)

        return algo._replace(draws=draws)


def _torch_view(model, point: dict, dtype):
    import torch

    from ..nets.torch import TorchNet

    net = TorchNet(model.net, params={p.name: point[p.name] for p in model.net.layout}, dtype=dtype)
    if model.likelihood.name != "bernoulli":
        return net

    class TwoClassLogits(torch.nn.Module):  # Bernoulli logit l -> softmax logits (0, l): the same likelihood
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            logit = self.inner(x)
            return torch.cat([torch.zeros_like(logit), logit], dim=-1)

    return TwoClassLogits(net)


def _curvature_loader(model, data, options, dtype):
    """The training rows in (weight 1) as laplace-torch's data loader: targets as its likelihoods take them."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    lik = model.likelihood
    rows = data.w > 0
    X = torch.as_tensor(data.X[rows], dtype=dtype)
    y = torch.as_tensor(data.y[rows])
    # regression: laplace-torch's Gaussian likelihood on the network's own (standardised) scale
    y = y.long() if lik.task == "classification" else ((y.to(dtype) - lik.target_loc) / lik.target_scale)[:, None]
    n_out = 2 if lik.name == "bernoulli" else model.n_outputs
    batch = options.curvature_batch_size or max(1, min(256, 2**26 // max(1, n_out * model.net.layout.size)))
    return DataLoader(TensorDataset(X, y), batch_size=batch)


def _fitted_laplace(model, net, point: dict, options, loader, dtype):
    """laplace-torch's Laplace over ``net`` with the model's prior, fitted on ``loader``: (la, prior precision)."""
    import torch
    from laplace import Laplace as make_laplace
    from laplace.curvature import CurvlinopsGGN

    layout, lik, prior = model.net.layout, model.likelihood, model.prior_loc_scale()
    sigma = 1.0
    if lik.name == "gaussian":  # in standardised units, like the targets laplace-torch sees
        sigma = (float(point["noise_std"]) if lik.learns_noise else float(lik.noise_std)) / lik.target_scale
    kwargs: dict[str, Any] = dict(
        likelihood="classification" if lik.task == "classification" else "regression",
        sigma_noise=sigma,
        backend=CurvlinopsGGN,
    )
    if options.hessian == "last_layer":
        last = [p for p in layout if p.layer == model.net.weight_layers()[-1].name]
        idx = torch.cat([torch.arange(*layout.offsets[p.name]) for p in last])
        precision = torch.cat([torch.full((p.size,), 1.0 / prior[p.name][1] ** 2, dtype=dtype) for p in last])
        la: Any = make_laplace(
            net,
            subset_of_weights="subnetwork",
            hessian_structure="full",
            subnetwork_indices=idx,
            prior_mean=0.0,
            **kwargs,
        )  # the output layer's prior is centred on 0
        # laplace-torch 0.3's SubnetLaplace reads a per-parameter prior precision of the subnetwork's length,
        # but its setter only accepts lengths 1, n_tensors or n_params(all): set the attribute it reads.
        la._prior_precision, la._posterior_scale = precision, None
    else:
        names = [p.name for p in layout]
        precision = torch.as_tensor([1.0 / prior[n][1] ** 2 for n in names], dtype=dtype)
        prior_mean = torch.cat([torch.full((layout[n].size,), prior[n][0], dtype=dtype) for n in names])
        la = make_laplace(
            net,
            subset_of_weights="all",
            hessian_structure=options.hessian,
            prior_precision=precision,
            prior_mean=prior_mean,
            **kwargs,
        )
    la.fit(loader, progress_bar=False)
    return la, precision


def laplace_draws(model, data, point: dict, options, seed: int, num: int) -> dict[str, np.ndarray]:
    """``num`` draws of the Laplace approximation around ``point`` (named, constrained MAP values)."""
    import warnings

    import torch

    layout = model.net.layout
    dtype = torch.float64 if np.asarray(point[layout.infos[0].name]).dtype == np.float64 else torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _torch_view(model, point, dtype)
        la, precision = _fitted_laplace(
            model, net, point, options, _curvature_loader(model, data, options, dtype), dtype
        )
        if options.prior_precision == "marglik":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # laplace-torch's reminder about link_approx
                # last_layer: one precision for the output layer (laplace-torch cannot tune a subnetwork's vector)
                init = precision.clone() if options.hessian != "last_layer" else precision.mean().reshape(1)
                la.optimize_prior_precision(pred_type="glm", method="marglik", init_prior_prec=init)
        flat = la.sample(n_samples=num, generator=torch.Generator().manual_seed(seed)).detach().cpu().numpy()
    draws = layout.unpack(flat)
    for name in model.likelihood.latent_sites():  # a learned noise std stays at its MAP value
        draws[name] = np.full((num,), point[name], dtype=flat.dtype)
    return draws
