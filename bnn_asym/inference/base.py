"""The step-level protocol every engine implements, and what engines share.

An engine is a small class: a name, an ``Options`` dataclass (its valid keyword options, with defaults and
validation), capability attributes, and ``build(model, data, options, backend) -> Algorithm``. The
Algorithm holds pure pieces in the spirit of BlackJAX (``init`` + ``step``, no loop inside):

    init(key, start)                 -> state            one chain, from a starting point (named arrays)
    step(state, batch, key)          -> (state, info)    one update; ``info`` is a dict of scalars
    position(state)                  -> named arrays     trajectory engines: the draw a kept step records
    draws(state, rng, num)           -> named arrays     approximation engines: ``num`` draws from the state,
                                                         on the host (numpy), so drawing compiles nothing

The driver (driver.py) owns the only loop: it picks batches, runs jitted chunks of steps, times them,
checks for NaNs and divergences, takes checkpoints, honours budgets, and assembles the typed RunInfo.
Draws always have (chain, draw) leading axes; engines that are not Markov chains (VI, SWAG, ensembles,
Laplace) store independent runs as pseudo-chains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

BACKENDS = ("numpyro", "pyro")
TRAJECTORY = "trajectory"  # draws are the states a chain visits (NUTS, HMC, SG-MCMC)
APPROXIMATION = "approximation"  # draws come from the final state's distribution (VI, SWAG, Laplace, MAP)


@dataclass
class FitData:
    X: np.ndarray
    y: np.ndarray  # int64 class labels, or float32 regression targets / 0-1 labels for bernoulli
    w: np.ndarray | None = None  # float32 per-row likelihood weights; None: all 1

    def __post_init__(self):
        if self.w is None:
            self.w = np.ones(len(self.X), np.float32)

    @property
    def n(self) -> int:
        return len(self.X)


class Algorithm(NamedTuple):
    """One engine's pure pieces, built for one model, data set and option set."""

    init: Callable  # (key, start: dict) -> state
    step: Callable  # (state, batch: (X, y, weights), key) -> (state, info: dict of scalars)
    num_steps: int  # steps per chain when no budget stops the run first
    kind: str = APPROXIMATION
    position: Callable | None = None  # trajectory: state -> dict (the draw a kept step records)
    draws: Callable | None = None  # approximation: (state as numpy, numpy Generator, num) -> dict of (num, *shape)
    num_draws: int = 1  # approximation: draws per chain
    keep: Callable | None = None  # trajectory: step indices (numpy int array) -> bool mask of kept steps
    batch_size: int | None = None  # rows per step; None: the full data set every step
    grad_evals: Callable | None = None  # info -> gradient evaluations of that step (default info["grad_evals"])
    postfix: Callable | None = None  # info of the last step (numpy) -> dict for the progress bar
    nan_hint: str = "try a smaller learning rate or step size"
    runtime: str = "jax"  # "jax": jitted chunks (parallel / vectorized / sequential chains); "torch": a Python loop
    extra: dict = {}  # JSON-able facts for RunInfo (e.g. the objective the "loss" info is, SWAG's rank)


class Engine:
    """Registry entry of an inference algorithm: options, capabilities and ``build``."""

    name: str = ""
    Options: type = None
    description: str = ""
    when_to_use: str = ""
    kind: str = APPROXIMATION
    backends: tuple[str, ...] = ("numpyro",)
    multiple_chains: bool = False  # several chains / members / runs (an option of the engine)
    uses_minibatches: bool = False
    needs_map_start: bool = False  # starts from a MAP estimate it computes first
    warm_start: bool = True  # accepts fit(init="map" | "ensemble" | Posterior)
    batch_over_n: str = "error"  # a batch_size above N: "error", or "full" (use the full data set)
    draws_need_data: bool = False  # ``draws`` reads the training data (Laplace's curvature)

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

    @classmethod
    def num_chains(cls, options) -> int:
        return int(getattr(options, "num_chains", 1))

    def build(self, model, data: FitData, options, backend: str) -> Algorithm:
        raise NotImplementedError

    def check(self, model, data: FitData, options) -> None:
        """Refuse option values that only make sense against the data (called once, before any work)."""
        batch = getattr(options, "batch_size", None)
        if batch is not None and batch > data.n and self.batch_over_n == "error":
            raise ValueError(f"{self.name} option batch_size={batch} exceeds the {data.n} training rows")


# ----- option validation helpers (shared by every engine's Options) -------------------------------------
def check_positive_int(owner: str, name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: an integer >= {minimum}")


def check_positive_float(owner: str, name: str, value, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: a finite number "
                         f"{'>= 0' if allow_zero else '> 0'}")


def check_fraction(owner: str, name: str, value, closed: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not (0 <= value <= 1 if closed else 0 < value < 1):
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: "
                         f"{'0 <= x <= 1' if closed else '0 < x < 1'}")


def check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{owner} option {name}={value!r} is not valid; accepted: {', '.join(map(repr, choices))}")


def check_optional_int(owner: str, name: str, value, minimum: int = 1) -> None:
    if value is not None:
        check_positive_int(owner, name, value, minimum)


def jax_float_dtype() -> np.dtype:
    """float64 when JAX runs with x64 enabled, else float32: the dtype of sample sites and states."""
    import jax

    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def start_values(model, seed: int, dtype="float32") -> dict[str, np.ndarray]:
    """A chain's or guide's default starting point: the network's init (by its spec's init scheme, seeded),
    noise std 0.5 where the likelihood learns it."""
    values = dict(model.net.init(seed, dtype))
    for name in model.likelihood.latent_sites():
        values[name] = np.asarray(0.5, dtype=dtype)
    return values


Info = dict[str, Any]
