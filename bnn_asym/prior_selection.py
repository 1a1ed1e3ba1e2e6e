"""Empirical Bayes for the prior's weight scale: pick ``Prior.scale`` from the data.

Every number a BNN reports moves with its prior (on the ``standard`` suite's digits split, NUTS's test NLL goes
from 0.180 under ``N(0, 1/fan_in)`` to 0.088 under ``N(0, 1)``), and the paper's own prior (precision 0.01:
``scale`` 10) is far from the default. ``select_prior_scale`` tries a grid of scales and keeps the best, by

- ``method="evidence"``: the Laplace approximation of the marginal likelihood at each scale's MAP (MacKay
  1992; Immer et al. 2021), with the generalised Gauss-Newton curvature of the log-likelihood plus the
  prior's precision, ``log p(y) ~ log p(y | w*) + log p(w* | s) + d/2 log 2 pi - 1/2 log det H``; dense H up to
  ``DENSE_MAX_PARAMS`` free parameters, its diagonal beyond. Needs only the training data.
- ``method="validation"``: the MAP's mean negative log-likelihood on a held-out share of the training rows
  (stratified for classification); the data-hungry but assumption-free choice.

Each scale costs one MAP fit (the ``map`` engine's defaults: full-batch L-BFGS to the mode). Only ``scale``
varies; the prior's kind, bias scale and per-layer overrides are kept (an override is a fixed scale). A
learned noise std (regression) is held at its MAP value in the curvature.

``fit(..., prior="evidence")`` or ``prior="validation"`` runs the selection and fits with the chosen prior;
the selection is in ``posterior.info["prior_selection"]``.

>>> import bnn_asym
>>> from bnn_asym import datasets
>>> ds = datasets.load("moons", n_samples=200)
>>> net = bnn_asym.MLP(2, (8,), 2, symmetry="w_asym")
>>> choice = bnn_asym.select_prior_scale(net, ds.X_train, ds.y_train, scales=(0.5, 1.0, 2.0))
>>> choice.scale in (0.5, 1.0, 2.0)
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .models import BayesianModel, Prior
from .warn import ConvergenceWarning, warn_user

METHODS = ("evidence", "validation")
DEFAULT_SCALES = (0.25, 0.5, 1.0, math.sqrt(2.0), 2.0, 4.0, 10.0)  # sqrt(2): the default; 10: the paper's prior
DENSE_MAX_PARAMS = 5_000  # a dense d x d curvature up to here (200 MB in float64), its diagonal beyond
VALIDATION_SHARE = 0.2
CURVATURE_LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
JACOBIAN_FLOATS = 2**24  # rows per curvature chunk: rows x outputs x parameters <= this


@dataclass(frozen=True)
class PriorSelection:
    """The scale chosen and the score of every scale tried (``evidence``: log marginal likelihood per training
    row, higher is better; ``validation``: held-out mean NLL, lower is better)."""

    method: str
    scales: tuple[float, ...]
    scores: tuple[float, ...]
    scale: float
    prior: Prior

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "scales": list(self.scales),
            "scores": list(self.scores),
            "scale": self.scale,
            "prior": self.prior.to_dict(),
        }

    def table(self) -> str:
        """The scores as a Markdown table, the chosen scale marked."""
        what = "log evidence / row" if self.method == "evidence" else "validation NLL"
        rows = [f"| prior scale | {what} |", "|---|---|"]
        rows += [
            f"| {s:.3g}{' (chosen)' if s == self.scale else ''} | {v:.4f} |" for s, v in zip(self.scales, self.scores)
        ]
        return "\n".join(rows)


def select_prior_scale(
    net_or_model,
    X,
    y,
    method: str = "evidence",
    scales=DEFAULT_SCALES,
    likelihood=None,
    prior: Prior | None = None,
    weights=None,
    seed: int = 0,
    validation_share: float = VALIDATION_SHARE,
) -> PriorSelection:
    """Pick the prior's weight scale by the Laplace evidence or by held-out NLL (module docstring).

    net_or_model, X, y, likelihood, weights: as in ``fit``. prior: the prior whose ``scale`` varies (default
    ``Prior()``; a BayesianModel brings its own). scales: the grid (positive numbers). seed: the MAP fits' seed
    and, for ``validation``, the split's."""
    from .fit import _check_inputs, _check_weights, _model
    from .validate import integer, one_of

    one_of(*METHODS).check(method, "prior selection method")
    seed = integer(0).check(seed, "seed")
    grid = _check_scales(scales)
    if not 0.0 < float(validation_share) < 1.0:
        raise ValueError(f"validation_share={validation_share!r} is not valid; accepted: a number in (0, 1)")
    if isinstance(net_or_model, BayesianModel):
        if likelihood is not None or prior is not None:
            raise ValueError("pass likelihood and prior inside the BayesianModel, not to select_prior_scale as well")
        net, likelihood, base = net_or_model.net, net_or_model.likelihood, net_or_model.prior
    else:
        net, base = net_or_model, prior if prior is not None else Prior()
    X_arr, y_arr = _check_inputs(net, X, y)
    w_arr = _check_weights(weights, len(X_arr))
    if method == "validation":
        w_arr = _training_weights(y_arr, w_arr, validation_share, seed, _model(net, likelihood, base, y_arr, None))
    scores, unconverged = [], []
    for s in grid:
        candidate = Prior(base.kind, s, base.bias_scale, dict(base.overrides))
        model = _model(net, likelihood, candidate, y_arr, w_arr)
        if method == "evidence" and model.likelihood.name not in CURVATURE_LIKELIHOODS:
            raise ValueError(
                f"method='evidence' supports the likelihoods {', '.join(CURVATURE_LIKELIHOODS)}; got "
                f"{model.likelihood.name!r}: use method='validation'"
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            scores.append(_score(method, model, X_arr, y_arr, w_arr, seed))
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                unconverged.append((s, str(w.message).split(";")[0]))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    best = int(np.argmax(scores) if method == "evidence" else np.argmin(scores))
    _warn_if_doubtful(grid, best, unconverged)
    chosen = Prior(base.kind, grid[best], base.bias_scale, dict(base.overrides))
    return PriorSelection(method, grid, tuple(float(v) for v in scores), grid[best], chosen)


def _warn_if_doubtful(grid: tuple[float, ...], best: int, unconverged: list[tuple[float, str]]) -> None:
    """One warning for MAP fits that stopped short (their messages, per scale) and one for a choice on the
    grid's edge, where a better scale may lie beyond it."""
    if unconverged:
        detail = "; ".join(f"scale {s:.3g}: {message}" for s, message in unconverged)
        warn_user(
            f"prior selection: {len(unconverged)} of {len(grid)} MAP fits stopped before converging, so their "
            f"scores are approximate ({detail})",
            ConvergenceWarning,
        )
    if len(grid) > 1 and grid[best] in (min(grid), max(grid)):
        side = "largest" if grid[best] == max(grid) else "smallest"
        warn_user(
            f"prior selection: the chosen scale {grid[best]:.3g} is the {side} on the grid "
            f"({min(grid):.3g}-{max(grid):.3g}); a better one may lie beyond it: pass scales= reaching further",
            ConvergenceWarning,
        )


def _check_scales(scales) -> tuple[float, ...]:
    try:
        grid = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        grid = ()
    if not grid or not all(math.isfinite(s) and s > 0 for s in grid):
        raise ValueError(f"scales={scales!r} is not valid; accepted: a non-empty sequence of positive numbers")
    return grid


def _training_weights(y, w, share: float, seed: int, model: BayesianModel) -> np.ndarray:
    """Row weights that hold out ``share`` of the rows (weight 0; stratified for classification)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y)) if w is None else np.flatnonzero(w > 0)
    stratify = y[rows] if model.likelihood.task == "classification" else None
    try:
        _, held_out = train_test_split(rows, test_size=share, random_state=seed, stratify=stratify)
    except ValueError:  # a class too small to stratify
        _, held_out = train_test_split(rows, test_size=share, random_state=seed)
    out = np.ones(len(y), np.float32) if w is None else w.astype(np.float32).copy()
    out[held_out] = 0.0
    return out


def _score(method: str, model: BayesianModel, X, y, w, seed: int) -> float:
    from .fit import fit

    post = fit(model, X, y, engine="map", seed=seed, progress=False, weights=w)
    if method == "validation":
        held_out = w == 0
        return float(-post.log_likelihood(X[held_out], y[held_out]).mean())
    return log_evidence(post, X, y, w) / float(len(y) if w is None else np.sum(w))


def log_evidence(post, X, y, weights=None) -> float:
    """The Laplace approximation of log p(y) at a MAP posterior (one draw): log-likelihood and log prior at the
    MAP, plus d/2 log 2 pi - 1/2 log det(GGN + prior precision) over the d free network parameters."""
    from .inference.logdensity import jax_log_density

    model = post.model
    params = {k: v.reshape(v.shape[2:]) for k, v in post.draws.items()}
    density = jax_log_density(model)
    y_typed = model.likelihood.check_targets(y, model.n_outputs)
    if model.likelihood.name == "bernoulli":
        y_typed = y_typed.astype(np.float32)
    w = np.ones(len(y_typed), np.float32) if weights is None else np.asarray(weights, np.float32)
    loglik = float(np.sum(w * np.asarray(density.log_likelihood(params, X, y_typed))))
    log_prior = float(density.log_prior(params))
    prior_precision = _prior_precision(model)
    curvature = _ggn(model, params, X, y_typed, w, dense=len(prior_precision) <= DENSE_MAX_PARAMS)
    d = len(prior_precision)
    if curvature.ndim == 2:
        sign, logdet = np.linalg.slogdet(curvature + np.diag(prior_precision))
        if sign <= 0:
            raise ValueError("the Laplace curvature is not positive definite; use method='validation'")
    else:
        logdet = float(np.sum(np.log(curvature + prior_precision)))
    return loglik + log_prior + 0.5 * d * math.log(2 * math.pi) - 0.5 * float(logdet)


def _prior_precision(model: BayesianModel) -> np.ndarray:
    """1 / prior variance of every free network parameter, in the layout's order, flattened."""
    loc_scale = model.prior_loc_scale()
    return np.concatenate(
        [np.full(int(np.prod(p.shape)), 1.0 / loc_scale[p.name][1] ** 2) for p in model.net.layout]
    ).astype(np.float64)


def _ggn(model: BayesianModel, params: dict, X, y, w, dense: bool) -> np.ndarray:
    """sum_n w_n J_n^T Lambda_n J_n: J_n the Jacobian of row n's network outputs in the free parameters (in the
    layout's order), Lambda_n the Hessian of its negative log-likelihood in those outputs. Dense (d, d) or its
    diagonal (d,), accumulated over chunks of rows in float64."""
    import jax.numpy as jnp

    names = [p.name for p in model.net.layout]
    flat = jnp.concatenate([jnp.ravel(jnp.asarray(params[k])) for k in names])
    latents = {k: jnp.asarray(params[k]) for k in model.likelihood.latent_sites()}
    d, k = int(flat.shape[0]), model.n_outputs
    rows = min(len(X), max(1, JACOBIAN_FLOATS // max(1, k * d)))
    program = _ggn_program(model.net, model.likelihood, dense)
    total = np.zeros((d, d) if dense else (d,), np.float64)
    for start in range(0, len(X), rows):
        xs, ys, ws = X[start : start + rows], y[start : start + rows], w[start : start + rows]
        if len(xs) < rows:  # the last chunk padded to the compiled size, with weight 0
            pad = rows - len(xs)
            xs = np.concatenate([xs, np.repeat(xs[:1], pad, 0)])
            ys = np.concatenate([ys, np.repeat(ys[:1], pad, 0)])
            ws = np.concatenate([ws, np.zeros(pad, ws.dtype)])
        total += np.asarray(program(flat, latents, xs, ys, ws), np.float64)
    return total


@lru_cache(maxsize=8)
def _ggn_program(net, likelihood, dense: bool):
    """The jitted GGN of a chunk of rows, one per network and likelihood (the prior does not enter it), so the
    scales of a selection share one compiled program."""
    import jax
    import jax.numpy as jnp

    from .models.likelihoods import jax_backend

    names, sizes = [p.name for p in net.layout], [int(np.prod(p.shape)) for p in net.layout]
    shapes, backend = [p.shape for p in net.layout], jax_backend()

    def unflatten(flat):
        parts = jnp.split(flat, np.cumsum(sizes)[:-1])
        return {k: part.reshape(shape) for k, part, shape in zip(names, parts, shapes)}

    def row_outputs(flat, x):
        return net.apply_jax(unflatten(flat), x[None])[0]

    @jax.jit
    def chunk(flat, latents, xs, ys, ws):
        def row_nll(out, yn):
            return -likelihood.distribution(backend, out[None], latents).log_prob(yn[None])[0]

        J = jax.vmap(jax.jacrev(row_outputs), (None, 0))(flat, xs)  # (rows, K, d): K backward passes per row
        outs = jax.vmap(row_outputs, (None, 0))(flat, xs)
        H = jax.vmap(jax.hessian(row_nll))(outs, ys) * ws[:, None, None]  # (rows, K, K)
        if dense:
            return jnp.einsum("nkd,nkl,nle->de", J, H, J)
        return jnp.einsum("nkd,nkl,nld->d", J, H, J)

    return chunk
