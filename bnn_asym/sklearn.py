"""scikit-learn estimators: ``BNNClassifier`` and ``BNNRegressor`` (an MLP BNN behind fit / predict).

>>> from bnn_asym.sklearn import BNNClassifier
>>> clf = BNNClassifier(hidden=(32, 32), symmetry="w_asym", engine="ensemble").fit(X, y)   # doctest: +SKIP
>>> clf.predict_proba(X_test)                                                               # doctest: +SKIP

Posterior draws are fixed at fit time, and predictions are computed in float64 from those draws, so
a row's prediction never depends on what else is in the batch. Inputs (and regression targets) are
standardised internally with the training set's statistics -- the prior and every engine's step sizes
then have a sensible scale whatever the units of X -- and predictions are mapped back. Every engine in
``bnn_asym.ENGINES`` can be used (``engine_options`` go to it).

Training sets are padded with zero-weight rows to one of a few sizes (16, 64, 256, 1024, then powers of
two): the posterior is the same, and fits of sets of nearby sizes (cross-validation folds,
scikit-learn's checks) reuse one compiled program instead of compiling a new one for every row count.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from .fit import fit
from .models import Prior
from .models.likelihoods import weighted_mean_std
from .models.priors import DEFAULT_SCALE
from .nets import MLP

PREDICTIVES = ("auto", "mc", "glm")
MIN_PADDED_ROWS = 16


def padded_rows(n: int) -> int:
    """Rows after padding: the next power of 4 from 16 up to 1024 (few sizes: few compilations, and small
    sets are cheap to pad), the next power of 2 beyond."""
    size = MIN_PADDED_ROWS
    while size < n and size < 1024:
        size *= 4
    return size if size >= n else 1 << (n - 1).bit_length()


def padded(X: np.ndarray, y: np.ndarray):
    """(X, y, weights) with zero-weight rows appended up to ``padded_rows(len(X))`` rows."""
    n = len(X)
    size = padded_rows(n)
    weights = np.zeros(size, np.float32)
    weights[:n] = 1.0
    X_pad = np.zeros((size,) + X.shape[1:], X.dtype)
    X_pad[:n] = X
    y_pad = np.full(size, y[0], dtype=y.dtype)
    y_pad[:n] = y
    return X_pad, y_pad, weights


class _BNNEstimator(BaseEstimator):
    """predictive: "mc" averages the network over the posterior draws; "glm" averages the network linearised
    around the draws' mean (the predictive a Laplace posterior is made for); "auto": "glm" for
    ``engine="laplace"``, else "mc"."""

    def __init__(
        self,
        hidden=(32, 32),
        symmetry="w_asym",
        engine="ensemble",
        engine_options=None,
        prior_scale=DEFAULT_SCALE,
        seed=0,
        predictive="auto",
    ):
        self.hidden = hidden
        self.symmetry = symmetry
        self.engine = engine
        self.engine_options = engine_options
        self.prior_scale = prior_scale
        self.seed = seed
        self.predictive = predictive

    def _fit_posterior(self, X, y, n_outputs: int, likelihood: str, sample_weight=None):
        if self.predictive not in PREDICTIVES:
            raise ValueError(
                f"predictive={self.predictive!r} is not valid; accepted: {', '.join(map(repr, PREDICTIVES))}"
            )
        row_weights = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        if row_weights is not None and not row_weights.sum() > 0:
            raise ValueError("sample_weight sums to 0: at least one row needs a positive weight")
        self.x_mean_, scale = weighted_mean_std(X, row_weights, axis=0)  # rows weighted 0 do not move the scaling
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        net = MLP(X.shape[1], self.hidden, n_outputs, symmetry=self.symmetry, seed=self.seed)
        X_pad, y_pad, weights = padded((X - self.x_mean_) / self.x_scale_, y)
        if row_weights is not None:  # fit's per-row likelihood weights; padding rows stay at 0
            weights[: len(X)] = row_weights
        self.posterior_ = fit(
            net,
            X_pad,
            y_pad,
            engine=self.engine,
            likelihood=likelihood,
            weights=weights,
            prior=Prior(scale=self.prior_scale),
            seed=self.seed,
            progress=False,
            **(self.engine_options or {}),
        )
        flat = self.posterior_.flat_draws()
        self._draws = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in flat.items()}
        self._center = {k: v.mean(0) for k, v in self._draws.items()}

    def _outputs(self, X) -> np.ndarray:
        """Network outputs for every draw, (S, N, n_outputs), in float64."""
        check_is_fitted(self, "posterior_")
        X = (validate_data(self, X, reset=False, dtype=np.float64) - self.x_mean_) / self.x_scale_
        spec = self.posterior_.model.net
        names = [p.name for p in spec.layout]
        x = torch.as_tensor(X, dtype=torch.float64)
        draws = {k: self._draws[k] for k in names}
        linear = self.predictive == "glm" or (self.predictive == "auto" and self.engine == "laplace")
        with torch.no_grad():
            if not linear:
                return torch.func.vmap(lambda p: spec.apply_torch(p, x))(draws).numpy()
            center = {k: self._center[k] for k in names}

            def linearised(p):  # f(center) + J (p - center)
                tangent = {k: p[k] - center[k] for k in names}
                primal_and_change = torch.func.jvp(lambda q: spec.apply_torch(q, x), (center,), (tangent,))
                return primal_and_change[0] + primal_and_change[1]

            return torch.func.vmap(linearised)(draws).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class BNNClassifier(ClassifierMixin, _BNNEstimator):
    """Bayesian MLP classifier (categorical likelihood); any bnn_asym engine via ``engine``/``engine_options``."""

    def fit(self, X, y, sample_weight=None):
        """Fit the BNN; ``sample_weight`` (>= 0 per row) weights each row's likelihood term, as ``fit(weights=)``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self._fit_posterior(X.copy(), encoded, max(2, len(self.classes_)), "categorical", sample_weight)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "posterior_")
        probs = self.posterior_.predictive_summary(self._outputs(X))
        return probs[:, : len(self.classes_)] / probs[:, : len(self.classes_)].sum(1, keepdims=True)

    def predict(self, X):
        check_is_fitted(self, "posterior_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class BNNRegressor(RegressorMixin, _BNNEstimator):
    """Bayesian MLP regressor (Gaussian likelihood with learned noise); ``predict(X, return_std=True)``."""

    def fit(self, X, y, sample_weight=None):
        """Fit the BNN; ``sample_weight`` (>= 0 per row) weights each row's likelihood term, as ``fit(weights=)``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        y = column_or_1d(y, warn=True).astype(np.float64)
        # fit standardises the targets (Likelihood.for_targets)
        self._fit_posterior(X.copy(), y, 1, "gaussian", sample_weight)
        return self

    def predict(self, X, return_std: bool = False):
        check_is_fitted(self, "posterior_")
        mean, std = self.posterior_.predictive_summary(self._outputs(X))  # in the targets' units
        return (mean, std) if return_std else mean
