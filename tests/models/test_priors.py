import math

import pytest

import bnn_asym
from bnn_asym.models import BayesianModel, Likelihood, Prior


def test_fan_in_prior_uses_full_fan_in_for_linear_and_conv():
    net = bnn_asym.CNN((2, 8, 8), (4,), 3, symmetry="w_asym")
    ls = Prior("fan_in", scale=2.0, bias_scale=0.5).loc_scale(net.layout)
    assert ls["conv0.weight"] == (0.0, pytest.approx(2.0 / math.sqrt(2 * 3 * 3)))
    assert ls["out.weight"] == (0.0, pytest.approx(2.0 / math.sqrt(4 * 4 * 4)))
    assert ls["conv0.bias"] == (0.0, 0.5)


def test_norm_scales_are_centred_at_one_and_overrides_apply():
    net = bnn_asym.MLP(5, (4,), 2, norm="layer")
    ls = Prior("normal", scale=1.5, overrides={"out": 0.1}).loc_scale(net.layout)
    assert ls["fc0_norm.scale"][0] == 1.0 and ls["fc0_norm.shift"][0] == 0.0
    assert ls["fc0.weight"] == (0.0, 1.5) and ls["out.weight"] == (0.0, 0.1)


def test_bad_priors_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        Prior("laplace")
    with pytest.raises(ValueError, match="scale"):
        Prior(scale=0.0)
    with pytest.raises(ValueError, match="unknown layers"):
        BayesianModel(bnn_asym.MLP(3, (4,), 2), Likelihood("categorical"), Prior(overrides={"fc9": 1.0}))


def test_likelihood_and_network_outputs_must_fit():
    with pytest.raises(ValueError, match="2 output"):
        BayesianModel(bnn_asym.MLP(3, (4,), 1), Likelihood("heteroscedastic"))
    with pytest.raises(ValueError, match=">= 2 outputs"):
        BayesianModel(bnn_asym.MLP(3, (4,), 1), Likelihood("categorical"))
    with pytest.raises(ValueError, match="likelihood"):
        Likelihood("poisson")


def test_model_round_trips_through_dict():
    model = BayesianModel(bnn_asym.MLP(3, (4,), 1, symmetry="sigma_asym"), Likelihood("gaussian", None), Prior(scale=2))
    back = BayesianModel.from_dict(model.to_dict())
    assert back == model
