"""Bad input is refused at fit() with a message naming what is wrong and what is accepted."""

import numpy as np
import pytest

import bnn_asym
from bnn_asym.models import BayesianModel, Likelihood

X = np.random.default_rng(0).standard_normal((30, 3)).astype(np.float32)
Y = np.random.default_rng(1).integers(0, 3, 30)
NET = bnn_asym.MLP(3, (4,), 3)


def test_nan_or_inf_inputs():
    bad = X.copy()
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        bnn_asym.fit(NET, bad, Y, engine="mfvi")
    with pytest.raises(ValueError, match="y contains NaN"):
        bnn_asym.fit(bnn_asym.MLP(3, (4,), 1), X, np.where(np.arange(30) == 3, np.nan, 1.0), engine="mfvi")


def test_length_and_shape_mismatch():
    with pytest.raises(ValueError, match="different lengths: 30 rows vs 29 targets"):
        bnn_asym.fit(NET, X, Y[:-1], engine="mfvi")
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\)"):
        bnn_asym.fit(NET, X[:, :2], Y, engine="mfvi")


def test_labels_must_be_0_to_k_minus_1():
    with pytest.raises(ValueError, match=r"class labels must be in 0..2"):
        bnn_asym.fit(NET, X, Y + 1, engine="mfvi")
    with pytest.raises(ValueError, match="integer class labels"):
        bnn_asym.fit(NET, X, Y + 0.5, engine="mfvi", likelihood="categorical")


def test_likelihood_must_fit_the_network_and_targets():
    with pytest.raises(ValueError, match="needs a network with 1 output"):
        bnn_asym.fit(NET, X, Y.astype(float), engine="mfvi", likelihood="gaussian")
    with pytest.raises(ValueError, match="likelihood='poisson' is not valid; accepted: categorical"):
        bnn_asym.fit(NET, X, Y, engine="mfvi", likelihood="poisson")
    with pytest.raises(ValueError, match="inside the BayesianModel"):
        bnn_asym.fit(BayesianModel(NET, Likelihood("categorical")), X, Y, likelihood="categorical")


def test_default_likelihood_follows_outputs_and_targets():
    from bnn_asym.fit import _default_likelihood

    assert _default_likelihood(NET, Y).name == "categorical"
    assert _default_likelihood(bnn_asym.MLP(3, (4,), 1), np.array([0, 1, 1])).name == "bernoulli"
    assert _default_likelihood(bnn_asym.MLP(3, (4,), 1), np.array([0.2, 1.5])).name == "gaussian"
    assert _default_likelihood(bnn_asym.MLP(3, (4,), 2), np.array([0.2, 1.5])).name == "heteroscedastic"


def test_other_arguments():
    with pytest.raises(ValueError, match="network spec"):
        bnn_asym.fit("mlp", X, Y, engine="mfvi")
    with pytest.raises(ValueError, match="seed"):
        bnn_asym.fit(NET, X, Y, engine="mfvi", seed=-1)
    with pytest.raises(ValueError, match="device='tpu' is not valid"):
        bnn_asym.fit(NET, X, Y, engine="mfvi", device="tpu")
    with pytest.raises(ValueError, match="no GPU"):
        bnn_asym.fit(NET, X, Y, engine="mfvi", device="gpu", num_steps=5)
    with pytest.raises(ValueError, match="batch_size=64 exceeds the 30 training rows"):
        bnn_asym.fit(NET, X, Y, engine="mfvi", batch_size=64, progress=False)


def test_minibatch_mfvi_runs():
    post = bnn_asym.fit(NET, X, Y, engine="mfvi", batch_size=10, num_steps=200, num_draws=20, progress=False)
    assert post.draws["out.weight"].shape == (1, 20, 3, 4)


def test_inputs_outside_the_documented_contract_are_refused():
    with pytest.raises(ValueError, match="X is complex"):
        bnn_asym.fit(NET, X.astype(np.complex64), Y, engine="mfvi")
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\) for this MLP; got \(30, 3, 1\)"):
        bnn_asym.fit(NET, X[:, :, None], Y, engine="mfvi")
    with pytest.raises(ValueError, match="y must be real numbers"):
        bnn_asym.fit(NET, X, Y.astype(np.complex64), engine="mfvi")
    for bad_seed in (True, 1.5, "0"):
        with pytest.raises(ValueError, match=r"seed=.* is not valid; accepted: an integer >= 0"):
            bnn_asym.fit(NET, X, Y, engine="mfvi", seed=bad_seed)


def test_a_single_class_on_a_multiclass_net_warns_at_the_callers_line():
    with pytest.warns(UserWarning, match=r"y holds a single class \(1\) for a network with 3 classes") as record:
        bnn_asym.fit(NET, X, np.ones(30, np.int64), engine="mfvi", num_steps=5, progress=False)
    assert record[0].filename == __file__


def test_weights_are_checked_before_anything_reads_them():
    with pytest.raises(ValueError, match=r"weights must be 30 real numbers, one per row of X; got shape \(5,\)"):
        bnn_asym.fit(NET, X, np.zeros(30, int), engine="mfvi", weights=np.ones(5))  # a single class, too


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"] * 10), "category"])
def test_string_labels_get_a_hint(labels):
    if isinstance(labels, str):
        import pandas as pd

        labels = pd.Series(["cat", "dog", "emu"] * 10, dtype="category")
    with pytest.raises(ValueError, match=r"labels that are not numbers \('cat', 'dog', 'emu', ...\).*np.unique"):
        bnn_asym.fit(NET, X, labels, engine="mfvi")


def test_fractional_targets_on_two_outputs_say_they_become_a_regression():
    with pytest.warns(UserWarning, match="y is not integral, so fit models a heteroscedastic regression"):
        post = bnn_asym.fit(bnn_asym.MLP(3, (4,), 2), X, Y + 0.5, engine="mfvi", num_steps=10, progress=False)
    assert post.model.likelihood.name == "heteroscedastic"


def test_inputs_beyond_float32_are_named_as_such():
    with pytest.raises(ValueError, match=r"X has values up to .*e\+300, beyond the range of float32 .* rescale X"):
        bnn_asym.fit(NET, X.astype(np.float64) * 1e300, Y, engine="mfvi")
