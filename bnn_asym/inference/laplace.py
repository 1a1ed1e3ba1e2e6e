"""Laplace approximation around a MAP estimate, built on laplace-torch over the torch view of the network.

The steps are MAP steps (optim.py, JAX). The draws come from a Gaussian around the current MAP whose
precision is the generalised Gauss-Newton (GGN) curvature of the log-likelihood plus the model's own
prior precision, computed by laplace-torch on ``TorchNet``: its parameters are exactly the free
parameters (fixed W-Asym entries are buffers), so the curvature never covers a fixed entry.

hessian: "diag" (diagonal GGN over every free parameter), "full" (dense GGN; small networks),
"last_layer" (dense covariance over the output layer's free weights and bias, the rest at the MAP).
prior_precision: "model" (the BNN's prior: Laplace approximates exactly the posterior the other engines
sample) or "marglik" (laplace-torch tunes one precision per parameter tensor by the marginal likelihood,
starting from the model's; one for the whole output layer with ``hessian="last_layer"``). Predictions: by sampling the network at the draws, or -- for a Laplace
posterior the usual choice -- linearised around the draws' mean (``Posterior.predict(X, method="glm")``
or ``"probit"`` for classification).

Written here rather than taken from laplace-torch: the MAP (JAX, like the other engines), the
translation of bnn_asym's likelihoods (a Bernoulli logit becomes two-class logits; a learned noise std
enters as laplace-torch's ``sigma_noise`` at its MAP value) and of its prior (per-tensor precisions and
means, norm scales centred on 1), and the mapping of laplace-torch's parameter vector back to named
free parameters. laplace-torch's KFAC needs ``nn.Linear``/``nn.Conv2d`` modules holding whole weight
matrices; a W-Asym layer's free entries are not one, so KFAC is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Algorithm, Engine, check_choice, check_optional_int, check_positive_float, check_positive_int
from .optim import SCHEDULES, build_map

HESSIANS = ("diag", "full", "last_layer")
PRIOR_PRECISIONS = ("model", "marglik")
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
FULL_MAX_PARAMS = 20_000  # a dense P x P curvature beyond this does not fit in memory comfortably


@dataclass
class LaplaceOptions:
    hessian: str = "last_layer"
    prior_precision: str = "model"
    num_steps: int = 2000  # MAP steps
    batch_size: int | None = 128
    lr: float = 1e-3
    schedule: str = "cosine"
    num_draws: int = 100
    curvature_batch_size: int | None = None  # rows per curvature batch; None: sized to ~256 MB of Jacobians

    def __post_init__(self):
        owner = "laplace"
        check_choice(owner, "hessian", self.hessian, HESSIANS)
        check_choice(owner, "prior_precision", self.prior_precision, PRIOR_PRECISIONS)
        check_choice(owner, "schedule", self.schedule, SCHEDULES)
        for name in ("num_steps", "num_draws"):
            check_positive_int(owner, name, getattr(self, name))
        check_optional_int(owner, "batch_size", self.batch_size)
        check_optional_int(owner, "curvature_batch_size", self.curvature_batch_size)
        check_positive_float(owner, "lr", self.lr)


class Laplace(Engine):
    batch_over_n = "full"  # mini-batches of at most N rows
    name = "laplace"
    Options = LaplaceOptions
    description = "Laplace approximation (GGN; diagonal, full or last-layer) around a MAP estimate (laplace-torch)"
    when_to_use = "post-hoc uncertainty for a trained network; last_layer with the GLM/probit predictive"
    uses_minibatches = True
    needs_map_start = True
    draws_need_data = True

    def check(self, model, data, options) -> None:
        if model.likelihood.name not in LIKELIHOODS:
            raise ValueError(f"laplace supports the likelihoods {', '.join(LIKELIHOODS)}; got "
                             f"{model.likelihood.name!r}")
        if options.hessian == "full" and model.net.num_free_params > FULL_MAX_PARAMS:
            raise ValueError(f"laplace hessian='full' needs a dense {model.net.num_free_params}^2 matrix; accepted for "
                             f"up to {FULL_MAX_PARAMS:,} free parameters: use hessian='diag' or 'last_layer'")
        if not np.all((data.w == 0) | (data.w == 1)):
            raise ValueError("laplace accepts weights of 0 or 1 only (rows in or out of the curvature)")
        try:
            import laplace  # noqa: F401
        except ImportError:
            raise ValueError("engine 'laplace' needs laplace-torch: pip install laplace-torch") from None
        except RuntimeError as err:
            # A torchvision built for another torch fails to register its operators when torchmetrics
            # (imported by laplace-torch) imports it; laplace-torch itself never needs torchvision.
            raise ValueError(f"engine 'laplace' could not import laplace-torch ({err}); this happens when an "
                             "installed torchvision does not match torch: uninstall torchvision or install "
                             "the build that matches your torch") from None

    def build(self, model, data, options, backend) -> Algorithm:
        algo = build_map(model, data, options.num_steps, options.batch_size, options.lr, options.schedule, self.name)
        map_draws = algo.draws

        def draws(state, rng, num):
            point = {k: np.asarray(v[0]) for k, v in map_draws(state, rng, 1).items()}
            return laplace_draws(model, data, point, options, int(rng.integers(2 ** 62)), num)

        extra = {**algo.extra, "hessian": options.hessian, "prior_precision": options.prior_precision}
        return algo._replace(draws=draws, num_draws=options.num_draws, extra=extra)


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


def laplace_draws(model, data, point: dict, options, seed: int, num: int) -> dict[str, np.ndarray]:
    """``num`` draws of the Laplace approximation around ``point`` (named, constrained MAP values)."""
    import torch
    from laplace import Laplace as make_laplace
    from laplace.curvature import CurvlinopsGGN
    from torch.utils.data import DataLoader, TensorDataset

    layout = model.net.layout
    dtype = torch.float64 if np.asarray(point[layout.infos[0].name]).dtype == np.float64 else torch.float32
    lik = model.likelihood
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _torch_view(model, point, dtype)
        rows = data.w > 0
        X = torch.as_tensor(data.X[rows], dtype=dtype)
        y = torch.as_tensor(data.y[rows])
        if lik.task == "classification":
            y = y.long()
        else:
            y = y.to(dtype)[:, None]
        n_out = 2 if lik.name == "bernoulli" else model.n_outputs
        batch = options.curvature_batch_size or max(1, min(256, 2 ** 26 // max(1, n_out * layout.size)))
        loader = DataLoader(TensorDataset(X, y), batch_size=batch)
        sigma = 1.0
        if lik.name == "gaussian":
            sigma = float(point["noise_std"]) if lik.learns_noise else float(lik.noise_std)
        prior = model.prior_loc_scale()
        names = [p.name for p in layout]
        per_tensor = torch.as_tensor([1.0 / prior[n][1] ** 2 for n in names], dtype=dtype)
        prior_mean = torch.cat([torch.full((layout[n].size,), prior[n][0], dtype=dtype) for n in names])
        kwargs = dict(likelihood="classification" if lik.task == "classification" else "regression",
                      sigma_noise=sigma, backend=CurvlinopsGGN)
        if options.hessian == "last_layer":
            last = [p for p in layout if p.layer == model.net.weight_layers()[-1].name]
            offsets = layout.offsets
            idx = torch.cat([torch.arange(*offsets[p.name]) for p in last])
            precision = torch.cat([torch.full((p.size,), 1.0 / prior[p.name][1] ** 2, dtype=dtype) for p in last])
            la = make_laplace(net, subset_of_weights="subnetwork", hessian_structure="full", subnetwork_indices=idx,
                              prior_mean=0.0, **kwargs)  # the output layer's prior is centred on 0
            # laplace-torch 0.3's SubnetLaplace reads a per-parameter prior precision of the subnetwork's length,
            # but its setter only accepts lengths 1, n_tensors or n_params(all): set the attribute it reads.
            la._prior_precision, la._posterior_scale = precision, None
        else:
            precision = per_tensor
            la = make_laplace(net, subset_of_weights="all", hessian_structure=options.hessian,
                              prior_precision=precision, prior_mean=prior_mean, **kwargs)
        la.fit(loader, progress_bar=False)
        if options.prior_precision == "marglik":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # laplace-torch's reminder about link_approx
                # last_layer: one precision for the output layer (laplace-torch cannot tune a subnetwork's vector)
                init = precision.clone() if options.hessian != "last_layer" else precision.mean().reshape(1)
                la.optimize_prior_precision(pred_type="glm", method="marglik", init_prior_prec=init)
        generator = torch.Generator().manual_seed(seed)
        flat = la.sample(n_samples=num, generator=generator).detach().cpu().numpy()
    draws = layout.unpack(flat)
    for name in lik.latent_sites():  # a learned noise std stays at its MAP value
        draws[name] = np.full((num,), point[name], dtype=flat.dtype)
    return draws
