"""What every engine shares: its options, its result, and the data it is given.

An engine is a small class with a name, an ``Options`` dataclass (its valid keyword options, with
defaults) and ``run(model, data, options, seed, progress, device) -> EngineResult``. Draws always have
(chain, draw) leading axes; engines that are not Markov chains (VI, SWAG, ensembles) store their
draws as pseudo-chains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FitData:
    X: np.ndarray
    y: np.ndarray  # int64 class labels, or float32 regression targets / 0-1 labels for bernoulli

    @property
    def n(self) -> int:
        return len(self.X)


@dataclass
class EngineResult:
    draws: dict[str, np.ndarray]  # name -> (chain, draw, *shape)
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (chain, draw)
    info: dict = field(default_factory=dict)  # wall_time_s, grad_evals, elbo, ... (JSON-able)


class Engine:
    name: str = ""
    Options: type = None
    description: str = ""

    def run(self, model, data: FitData, options, seed: int, progress: bool, device: str) -> EngineResult:
        raise NotImplementedError

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options)]

    @classmethod
    def make_options(cls, options: dict):
        valid = cls.option_names()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise TypeError(f"engine {cls.name!r} got unknown option(s) {', '.join(unknown)}; "
                            f"valid options: {', '.join(valid)}")
        return cls.Options(**options)


def check_positive_int(owner: str, name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: an integer >= {minimum}")


def check_positive_float(owner: str, name: str, value) -> None:
    if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: a finite number > 0")


def check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: {', '.join(map(repr, choices))}")


def stack_draws(samples: list[dict[str, np.ndarray]], n_chains: int) -> dict[str, np.ndarray]:
    """List of per-draw dicts (chain-major) -> name -> (chain, draw, *shape)."""
    out = {}
    for k in samples[0]:
        a = np.stack([np.asarray(s[k]) for s in samples])
        out[k] = a.reshape((n_chains, len(samples) // n_chains) + a.shape[1:])
    return out


def jax_float_dtype() -> np.dtype:
    """float64 when JAX runs with x64 enabled, else float32: the dtype of NumPyro's sample sites."""
    import jax

    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def init_values(model, seed: int, dtype="float32") -> dict[str, np.ndarray]:
    """Starting values for a chain or guide: the network's Kaiming init, noise std 0.5 where learned."""
    values = dict(model.net.init(seed, dtype))
    for name in model.likelihood.latent_sites():
        values[name] = np.asarray(0.5, dtype=dtype)
    return values
