"""The Laplace engine's curvature covers the free parameters only: fixed W-Asym entries are buffers of the
torch view that laplace-torch works on, so they never enter the Hessian or the draws."""

import numpy as np
import torch

import bnn_asym
from bnn_asym import datasets
from bnn_asym.inference.laplace import _torch_view
from bnn_asym.models import BayesianModel, Likelihood, Prior


def test_laplace_curvature_and_draws_cover_the_free_parameters_only():
    from laplace import Laplace

    ds = datasets.load("moons", seed=0, n_samples=200)
    net = bnn_asym.MLP(2, (8,), 2, symmetry="w_asym", n_fix=1, seed=0)
    all_weights = 2 * 8 + 8 + 8 * 2 + 2  # every weight and bias of the 2-8-2 MLP
    assert net.num_free_params == all_weights - (8 + 2)  # one fixed entry in each of the 10 rows

    post = bnn_asym.fit(
        net, ds.X_train, ds.y_train, engine="laplace", num_steps=200, hessian="full", num_draws=50, progress=False
    )
    assert {k: v.shape[2:] for k, v in post.draws.items()} == {p.name: p.shape for p in net.layout}
    assert sum(int(np.prod(v.shape[2:])) for v in post.draws.values()) == net.num_free_params
    assert all(np.std(v, axis=(0, 1)).min() > 0 for v in post.draws.values())  # every free entry has spread

    model = BayesianModel(net, Likelihood("categorical"), Prior("fan_in"))
    point = {k: v[0].mean(0) for k, v in post.draws.items()}
    view = _torch_view(model, point, torch.float64)
    la = Laplace(view, "classification", subset_of_weights="all", hessian_structure="full")
    assert la.n_params == net.num_free_params
    fixed = {n for n, _ in view.named_buffers()}
    assert fixed and not fixed & {n for n, _ in view.named_parameters()}
