"""``fit``: any network or BayesianModel, any engine, one Posterior.

>>> import bnn_asym
>>> from bnn_asym import datasets
>>> ds = datasets.load("moons", n_samples=200)
>>> net = bnn_asym.MLP(2, (16, 16), 2, symmetry="w_asym")
>>> post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="mfvi", num_steps=300, progress=False)
>>> post.predict(ds.X_test).shape
(50, 2)
"""

from __future__ import annotations

import warnings

import numpy as np

from .inference import ENGINES, FitData, get_engine
from .jax_setup import enable_compilation_cache
from .models import BayesianModel, Likelihood, Prior
from .models.likelihoods import as_likelihood
from .nets.spec import NetSpec
from .posterior import Posterior

DEVICES = ("auto", "cpu", "gpu")


def _default_likelihood(net: NetSpec, y: np.ndarray) -> Likelihood:
    n_out = net.weight_layers()[-1].d_out
    integral = np.issubdtype(y.dtype, np.integer) or bool(np.all(np.equal(np.mod(y, 1), 0)))
    if n_out >= 2 and integral:
        return Likelihood("categorical")
    if n_out == 2:
        return Likelihood("heteroscedastic")
    if integral and set(np.unique(y).tolist()) <= {0, 1}:
        return Likelihood("bernoulli")
    return Likelihood("gaussian", noise_std=None)


def _check_inputs(model_or_net, X, y) -> tuple[np.ndarray, np.ndarray]:
    net = model_or_net.net if isinstance(model_or_net, BayesianModel) else model_or_net
    X = net.check_inputs(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths: {len(X)} rows vs {len(y)} targets")
    if len(X) == 0:
        raise ValueError("X is empty; fit needs at least one training row")
    if np.iscomplexobj(y) or not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise ValueError(f"y must be real numbers or booleans; got dtype {y.dtype}")
    if not np.isfinite(y.astype(np.float64)).all():
        raise ValueError("y contains NaN or inf")
    return X, y


def _warn_single_class(model: BayesianModel, y: np.ndarray) -> None:
    if model.task == "classification" and len(np.unique(y)) == 1:
        k = 2 if model.likelihood.name == "bernoulli" else model.n_outputs
        warnings.warn(f"y holds a single class ({int(y[0])}) for a network with {k} classes: the posterior can only "
                      "learn that every input belongs to it; check the labels", UserWarning, stacklevel=3)


def _resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not valid; accepted: {', '.join(DEVICES)}")
    import jax

    has_gpu = any(d.platform == "gpu" for d in jax.devices()) if device != "cpu" else False
    if device == "gpu" and not has_gpu:
        raise ValueError("device='gpu' but JAX sees no GPU; install a CUDA build of jax/torch or use device='cpu'")
    return "gpu" if has_gpu else "cpu"


def fit(net_or_model, X, y, engine: str = "nuts", likelihood=None, prior: Prior | None = None, seed: int = 0,
        progress: bool = True, device: str = "auto", **options) -> Posterior:
    """Fit a Bayesian neural network and return its Posterior.

    net_or_model: a network spec (MLP, CNN, ResNet) or a BayesianModel. likelihood: "categorical",
    "bernoulli", "gaussian" (learned noise) or "heteroscedastic", or a Likelihood; None picks from the
    network's outputs and y. prior: default ``Prior("fan_in", scale=1.0)``. engine: one of
    ``bnn_asym.ENGINES`` ("mfvi", "lowrank_vi", "nuts", "hmc", "swag", "multiswag", "ensemble");
    options: that engine's options (an unknown one raises TypeError listing the valid ones).
    The same seed gives the same draws.
    """
    engine_cls = get_engine(engine)
    if not isinstance(net_or_model, (BayesianModel, NetSpec)):
        raise ValueError(f"fit needs a network spec (MLP, CNN, ResNet) or a BayesianModel; got {type(net_or_model).__name__}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; accepted: an integer >= 0")
    X_arr, y_arr = _check_inputs(net_or_model, X, y)
    if isinstance(net_or_model, BayesianModel):
        if likelihood is not None or prior is not None:
            raise ValueError("pass likelihood and prior inside the BayesianModel, not to fit() as well")
        model = net_or_model
    else:
        lik = _default_likelihood(net_or_model, y_arr) if likelihood is None else as_likelihood(likelihood)
        model = BayesianModel(net_or_model, lik, prior if prior is not None else Prior())
    y_typed = model.likelihood.check_targets(y_arr, model.n_outputs)
    _warn_single_class(model, y_typed)
    if model.likelihood.name == "bernoulli":
        y_typed = y_typed.astype(np.float32)
    opts = engine_cls.make_options(options)
    device = _resolve_device(device)
    enable_compilation_cache()
    result = _run(engine_cls(), model, FitData(X_arr, y_typed), opts, int(seed), progress, device)
    return Posterior(model, result.draws, result.sample_stats, {**result.info, "device": device}, engine,
                     _jsonable(vars(opts)), int(seed), X_arr, y_typed)


def _run(engine, model, data, opts, seed, progress, device):
    if device == "gpu":
        import jax

        with jax.default_device(jax.devices("gpu")[0]):
            return engine.run(model, data, opts, seed, progress, "cuda")
    return engine.run(model, data, opts, seed, progress, "cpu")


def _jsonable(d: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


__all__ = ["fit", "ENGINES", "DEVICES"]
