"""scikit-learn estimators: ``BNNClassifier`` and ``BNNRegressor`` (an MLP BNN behind fit / predict).

>>> from bnn_asym.sklearn import BNNClassifier
>>> clf = BNNClassifier(hidden=(32, 32), symmetry="w_asym", engine="ensemble").fit(X, y)   # doctest: +SKIP
>>> clf.predict_proba(X_test)                                                               # doctest: +SKIP

Posterior draws are fixed at fit time, and predictions are computed in float64 from those draws, so
a row's prediction never depends on what else is in the batch. Regression targets are standardised
internally (the prior then has a sensible scale) and predictions mapped back.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .fit import fit
from .models import Prior
from .nets import MLP


class _BNNEstimator(BaseEstimator):
    def __init__(self, hidden=(32, 32), symmetry="w_asym", engine="ensemble", engine_options=None,
                 prior_scale=1.0, seed=0):
        self.hidden = hidden
        self.symmetry = symmetry
        self.engine = engine
        self.engine_options = engine_options
        self.prior_scale = prior_scale
        self.seed = seed

    def _fit_posterior(self, X, y, n_outputs: int, likelihood: str):
        net = MLP(X.shape[1], tuple(self.hidden), n_outputs, symmetry=self.symmetry, seed=self.seed)
        self.posterior_ = fit(net, X, y, engine=self.engine, likelihood=likelihood, prior=Prior(scale=self.prior_scale),
                              seed=self.seed, progress=False, **(self.engine_options or {}))
        flat = self.posterior_.flat_draws()
        self._draws = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in flat.items()}

    def _outputs(self, X) -> np.ndarray:
        """Network outputs for every draw, (S, N, n_outputs), in float64."""
        check_is_fitted(self, "posterior_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        spec = self.posterior_.model.net
        names = [p.name for p in spec.layout]
        x = torch.as_tensor(X, dtype=torch.float64)
        with torch.no_grad():
            out = torch.func.vmap(lambda p: spec.apply_torch(p, x))({k: self._draws[k] for k in names})
        return out.numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class BNNClassifier(ClassifierMixin, _BNNEstimator):
    """Bayesian MLP classifier (categorical likelihood); any bnn_asym engine via ``engine``/``engine_options``."""

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self._fit_posterior(X.copy(), encoded, max(2, len(self.classes_)), "categorical")
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

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        y = column_or_1d(y, warn=True).astype(np.float64)
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) if y.std() > 0 else 1.0
        self._fit_posterior(X.copy(), (y - self.y_mean_) / self.y_scale_, 1, "gaussian")
        return self

    def predict(self, X, return_std: bool = False):
        check_is_fitted(self, "posterior_")
        mean, std = self.posterior_.predictive_summary(self._outputs(X))
        mean = mean * self.y_scale_ + self.y_mean_
        return (mean, std * self.y_scale_) if return_std else mean
