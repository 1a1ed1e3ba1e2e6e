"""Likelihoods: how network outputs explain the targets.

Each likelihood builds its observation distribution from either PPL's distributions module
(``numpyro.distributions`` or ``pyro.distributions`` share the API), so one definition serves the
NumPyro model, the Pyro model and the torch engines.

categorical      K outputs = class logits; y in 0..K-1
bernoulli        1 output = logit; y in {0, 1}
gaussian         1 output = mean; noise_std fixed, or learned (noise_std=None) with a HalfNormal prior
heteroscedastic  2 outputs = mean and softplus(raw) + min_std as the noise std

Regression targets in their own units: ``target_loc`` and ``target_scale`` map the network's outputs to
them, ``mean = target_loc + target_scale * out``, and every noise std -- fixed, learned (its prior is
``HalfNormal(noise_prior_scale * target_scale)``) or predicted -- is in the targets' units too. The
network then works on standardised targets, where its init, the prior and the noise prior are on the right
scale, while predictions, log-likelihoods and noise draws stay in the user's units. ``fit`` sets them from
the training targets when it builds the likelihood (``Likelihood.for_targets``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

LIKELIHOODS = ("categorical", "bernoulli", "gaussian", "heteroscedastic")


def weighted_mean_std(a, weights=None, axis: int | None = None) -> tuple[Any, Any]:
    """Mean and (population) std of ``a`` along ``axis``, rows weighted by ``weights`` (None: equally), in float64."""
    a = np.asarray(a, np.float64)
    mean = np.average(a, axis=axis, weights=weights)
    return mean, np.sqrt(np.average((a - mean) ** 2, axis=axis, weights=weights))


@dataclass(frozen=True)
class Backend:
    """What a likelihood needs from an array library: its distributions and softplus."""

    dist: Any  # a distributions module (numpyro.distributions or pyro.distributions)
    softplus: Any


def jax_backend() -> Backend:
    import jax
    import numpyro.distributions as dist

    return Backend(dist, jax.nn.softplus)


def torch_backend() -> Backend:
    import pyro.distributions as dist
    import torch.nn.functional as F

    return Backend(dist, F.softplus)


@dataclass(frozen=True)
class Likelihood:
    name: str = "categorical"
    noise_std: float | None = None  # gaussian: a fixed noise std, or None (default) to learn it
    noise_prior_scale: float = 1.0  # gaussian with learned noise: HalfNormal(noise_prior_scale)
    min_std: float = 1e-3  # heteroscedastic: floor of the predicted std (standardised units)
    target_loc: float = 0.0  # regression: the targets' location, mean = target_loc + target_scale * output
    target_scale: float = 1.0  # regression: their scale (noise stds are in the targets' units)

    def __post_init__(self):
        if self.name not in LIKELIHOODS:
            raise ValueError(f"likelihood={self.name!r} is not valid; accepted: {', '.join(LIKELIHOODS)}")
        if self.noise_std is not None and not (math.isfinite(self.noise_std) and self.noise_std > 0):
            raise ValueError(f"noise_std={self.noise_std!r} is not valid; accepted: a number > 0, or None to learn it")
        if not self.noise_prior_scale > 0 or not self.min_std > 0:
            raise ValueError("noise_prior_scale and min_std must be > 0")
        if not (math.isfinite(self.target_loc) and math.isfinite(self.target_scale) and self.target_scale > 0):
            raise ValueError(
                f"target_loc={self.target_loc!r}, target_scale={self.target_scale!r} are not valid; "
                "accepted: finite numbers, target_scale > 0"
            )
        if self.task == "classification" and (self.target_loc, self.target_scale) != (0.0, 1.0):
            raise ValueError(f"target_loc and target_scale apply to regression likelihoods; {self.name!r} is not one")

    @classmethod
    def for_targets(cls, name: str, y, weights=None, **kwargs) -> Likelihood:
        """A regression likelihood whose targets are standardised by the (weighted) mean and std of ``y``;
        a classification likelihood as it is."""
        lik = cls(name, **kwargs)
        if lik.task == "classification":
            return lik
        loc, scale = weighted_mean_std(y, weights)
        return cls(name, **kwargs, target_loc=float(loc), target_scale=float(scale) if scale > 0 else 1.0)

    @property
    def task(self) -> str:
        return "classification" if self.name in ("categorical", "bernoulli") else "regression"

    @property
    def learns_noise(self) -> bool:
        return self.name == "gaussian" and self.noise_std is None

    def latent_sites(self) -> dict[str, tuple]:
        """Random variables besides the network parameters: name -> shape."""
        return {"noise_std": ()} if self.learns_noise else {}

    def latent_prior(self, backend: Backend, name: str):
        return backend.dist.HalfNormal(self.noise_prior_scale * self.target_scale)

    def mean(self, out):
        """The regression mean of network outputs ``out`` (N, n_outputs), in the targets' units."""
        return self.target_loc + self.target_scale * out[..., 0]

    def predicted_std(self, softplus, out):
        """Heteroscedastic: the noise std the network predicts, in the targets' units."""
        return self.target_scale * (softplus(out[..., 1]) + self.min_std)

    def expected_outputs(self, n_classes: int | None) -> int | None:
        return {"categorical": n_classes, "bernoulli": 1, "gaussian": 1, "heteroscedastic": 2}[self.name]

    def distribution(self, backend: Backend, out, latents: dict):
        """The observation distribution for network outputs ``out`` of shape (N, n_outputs)."""
        d = backend.dist
        if self.name == "categorical":
            return d.Categorical(logits=out)
        if self.name == "bernoulli":
            return d.Bernoulli(logits=out[..., 0])
        if self.name == "gaussian":
            std = latents["noise_std"] if self.learns_noise else self.noise_std
            return d.Normal(self.mean(out), std)
        return d.Normal(self.mean(out), self.predicted_std(backend.softplus, out))

    def check_targets(self, y, n_outputs: int) -> np.ndarray:
        """Validate targets against this likelihood and the network's output width; return them typed."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be one target per row (shape (N,)); got shape {y.shape}")
        if self.task == "classification":
            if not np.all(np.isfinite(y.astype(np.float64))) or not np.all(np.equal(np.mod(y, 1), 0)):
                raise ValueError(
                    f"likelihood={self.name!r} needs integer class labels 0..K-1; y has non-integer values "
                    "(use likelihood='gaussian' for regression)"
                )
            y = y.astype(np.int64)
            k = 2 if self.name == "bernoulli" else n_outputs
            if len(y) and (y.min() < 0 or y.max() >= k):
                raise ValueError(
                    f"class labels must be in 0..{k - 1} for a network with {n_outputs} output(s) and "
                    f"likelihood={self.name!r}; got labels {sorted(np.unique(y).tolist())[:10]}"
                )
            return y
        expected = self.expected_outputs(None)
        if n_outputs != expected:
            raise ValueError(
                f"likelihood={self.name!r} needs a network with {expected} output(s); this one has {n_outputs}"
            )
        return y.astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "noise_std": self.noise_std,
            "noise_prior_scale": self.noise_prior_scale,
            "min_std": self.min_std,
            "target_loc": self.target_loc,
            "target_scale": self.target_scale,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Likelihood:
        return cls(**d)


def as_likelihood(value) -> Likelihood:
    if isinstance(value, Likelihood):
        return value
    if isinstance(value, str):
        return Likelihood(value)
    raise ValueError(f"likelihood={value!r} is not valid; accepted: a Likelihood or one of {', '.join(LIKELIHOODS)}")
