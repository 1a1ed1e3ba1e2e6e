"""What every engine is made of: the maths (``Algorithm``), the schedule (``Plan``), the display (``Display``)
and the one record a step reports (``StepInfo``).

An engine module holds pure functions over a typed state -- in the spirit of BlackJAX, no loop inside:

    init(key, start, batch)   -> State                 one chain, from a starting point (named arrays)
    step(key, state, batch)   -> (State, StepInfo)     one update on a batch (X, y, weights)
    position(state)           -> named arrays          trajectory engines: the draw a kept step records
    draws(state, rng, num)    -> named arrays          approximation engines: ``num`` draws from the state,
                                                       on the host (numpy), so drawing compiles nothing

``State`` is a NamedTuple of the engine's own (``MAPState``, ``SGMCMCState``, ``SWAGState``, ...). The
engine's class (a registry entry) says which options it takes (``Options``, a dataclass whose fields carry
their rule and a one-line description), what it can do (class attributes), and binds the pure functions to
one model, data set and option set in ``build(model, data, options, backend) -> Algorithm``.
``plan(options, n_rows, n_params) -> Plan`` gives the schedule without building anything, ``display(options, n_rows)``
the progress-bar fields and the hint for a NaN, and ``facts(options, n_rows)`` what RunInfo records of them.

The driver (driver.py) owns the only loop: it picks batches, runs jitted chunks of steps, times them,
checks ``StepInfo`` for NaNs and divergences, takes checkpoints, honours budgets and assembles RunInfo.
Draws always have (chain, draw) leading axes; engines that are not Markov chains (VI, SWAG, ensembles,
Laplace) store independent runs as pseudo-chains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..validate import check_fields

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


class StepInfo(NamedTuple):
    """What one step reports, the same record for every engine.

    A field is ``None`` where the engine has no such quantity; each engine's module docstring lists the
    fields its ``step`` fills. The driver reads fields by name, by these rules only:

    - ``grad_evals``: gradient evaluations of the step (every engine): leapfrog steps for NUTS / HMC, one per
      mini-batch gradient for SG-MCMC, MAP and SWAG (SGHMC: its integration steps), the particles of a VI
      step. Summed into ``RunInfo.grad_evals``; per kept draw, the sample statistic ``n_steps``.
    - ``loss``: the objective an optimising engine minimises, at the state the step started from: VI the
      negative ELBO (its one-sample estimate), MAP / ensemble / SWAG / Laplace the MAP loss (mean negative
      log-likelihood of the batch minus log prior / N). The run stops at the first non-finite value; the
      values form ``RunInfo.trace["loss"]`` (VI: the ELBO trace).
    - ``potential``: minus the log joint at the new position (NUTS, HMC). Stops the run when not finite; per
      kept draw, the sample statistic ``lp`` (= -potential).
    - ``finite``: whether the new position is finite (SG-MCMC, which computes no objective). Stops the run
      when false.
    - ``diverging``: the transition diverged (NUTS, HMC); counted after warmup, with a warning.
    - ``accept_prob``: acceptance probability of the transition (NUTS, HMC); sample statistic
      ``acceptance_rate``.
    - ``step_size``: the step size the transition used (NUTS, HMC, SG-MCMC); sample statistic ``step_size``.
    - ``energy``: the Hamiltonian at the new state (NUTS, HMC); sample statistic ``energy``.
    - ``tree_depth``: depth of the trajectory's binary tree (NUTS only: HMC's trajectory has a fixed length
      and no tree); sample statistic ``tree_depth``.
    - ``converged``: the engine's own stopping rule is met (optimisers with one: L-BFGS MAP); from then on the
      engine's ``step`` leaves the state unchanged, so where a run stops does not change its result. The run
      stops once every chain has converged (``RunInfo.stopped_by == "converged"``); a run that ends with a
      chain unconverged warns (``ConvergenceWarning``). ``RunInfo.extra["converged_at"]`` is each chain's first
      step with the rule met (-1: never); ``RunInfo.steps`` is later, since the driver checks between chunks.
    - ``grad_norm``: the largest entry of the objective's gradient after the step (optimisers); the last
      value per chain is ``RunInfo.extra["grad_norm"]`` and goes into that warning.
    """

    grad_evals: Any
    loss: Any = None
    potential: Any = None
    finite: Any = None
    diverging: Any = None
    accept_prob: Any = None
    step_size: Any = None
    energy: Any = None
    tree_depth: Any = None
    converged: Any = None
    grad_norm: Any = None


class Algorithm(NamedTuple):
    """One engine's pure pieces, bound to one model, data set and option set (see the module docstring)."""

    init: Callable  # (key, start: named arrays, batch) -> State
    step: Callable  # (key, State, batch: (X, y, weights)) -> (State, StepInfo)
    position: Callable | None = None  # trajectory: State -> named arrays (the draw a kept step records)
    draws: Callable | None = None  # approximation: (State as numpy, numpy Generator, num) -> named (num, *shape)
    runtime: str = "jax"  # "jax": jitted chunks (parallel / vectorized / sequential chains); "torch": a Python loop


@dataclass(frozen=True)
class KeepAfterWarmup:
    """Kept steps of a chain: every ``thinning``-th step after the first ``num_warmup``."""

    num_warmup: int
    thinning: int = 1

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        return (idx >= self.num_warmup) & ((idx - self.num_warmup) % self.thinning == self.thinning - 1)


class Plan(NamedTuple):
    """An engine's schedule for one option set and data size, known before anything is built."""

    num_steps: int  # steps per chain when no budget stops the run first
    kind: str  # TRAJECTORY or APPROXIMATION
    num_chains: int = 1  # chains, members or runs (pseudo-chains)
    batch_size: int | None = None  # rows per step; None: the full data set every step
    keep: Callable[[np.ndarray], np.ndarray] | None = None  # trajectory: step indices -> bool mask (None: all)
    num_draws: int = 1  # approximation: draws per chain from the final state

    def kept(self, idx: np.ndarray) -> np.ndarray:
        """Which of the steps ``idx`` a trajectory keeps (a bool mask)."""
        return np.ones(len(idx), bool) if self.keep is None else self.keep(idx)

    def kept_draws(self, steps: int | None = None) -> int:
        """Draws per chain after ``steps`` (default: all planned) steps."""
        steps = self.num_steps if steps is None else steps
        if self.kind == TRAJECTORY:
            return int(np.count_nonzero(self.kept(np.arange(steps))))
        return self.num_draws


class Display(NamedTuple):
    """What the progress bar shows, what a NaN error suggests, and what to do about an unconverged run."""

    postfix: Callable[[StepInfo], dict]  # info of a chunk's last step (numpy, one value per chain) -> bar fields
    nan_hint: str
    unconverged_hint: str = ""  # engines that report StepInfo.converged: the end of the warning


def loss_postfix(info: StepInfo) -> dict:
    return {"loss": f"{float(np.mean(info.loss)):.4g}"}


def elbo_postfix(info: StepInfo) -> dict:
    return {"elbo": f"{-float(np.mean(info.loss)):.4g}"}


def step_size_postfix(info: StepInfo) -> dict:
    return {"step size": f"{float(np.mean(info.step_size)):.2e}"}


def lr_hint(lr: float) -> str:
    return f"try a smaller learning rate (lr={lr:g} now, e.g. lr={lr / 10:g})"


class Engine:
    """Registry entry of an inference algorithm: options, capabilities, plan, display and ``build``.

    The first line of an engine's docstring says what it is (``summary()``); ``when_to_use`` when to pick it.
    """

    name: str = ""
    Options: type = type(None)
    when_to_use: str = ""
    kind: str = APPROXIMATION
    objective: str = "none"  # what StepInfo.loss is: "negative_elbo", "map_loss", "potential" or "none"
    backends: tuple[str, ...] = ("numpyro",)
    chains_option: str = "num_chains"  # the option that sets the chains, members or runs (absent: one chain)
    warm_start: bool = True  # accepts fit(init="map" | "ensemble" | Posterior)
    batch_over_n: str = "error"  # a batch_size above N: "error", or "full" (use the full data set)
    draws_need_data: bool = False  # ``draws`` reads the training data (Laplace's curvature)

    @classmethod
    def summary(cls) -> str:
        """The first paragraph of the engine's docstring, on one line."""
        first = (cls.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(line.strip() for line in first.splitlines())

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options)]

    @classmethod
    def make_options(cls, options: dict):
        """The engine's Options from keyword options, every value checked; errors name the engine."""
        valid = cls.option_names()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise TypeError(
                f"engine {cls.name!r} got unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}"
            )
        opts = cls.Options(**options)
        check_fields(opts, f"{cls.name} option")
        cls.check_options(opts)
        return opts

    @classmethod
    def check_options(cls, options) -> None:
        """Rules that tie several options together (each field's own rule is already checked)."""

    @classmethod
    def num_chains(cls, options) -> int:
        return int(getattr(options, cls.chains_option, 1))

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        raise NotImplementedError

    def display(self, options, n_rows: int) -> Display:
        raise NotImplementedError

    def default_warm_start(self, options) -> str | None:
        """The warm start (``fit``'s ``init="map"`` or ``"ensemble"``) an engine takes when none is given."""
        return None

    def facts(self, options, n_rows: int) -> dict:
        """JSON-able facts about the run's settings for RunInfo (the objective ``loss`` is, and the engine's own)."""
        return {"objective": self.objective}

    def build(self, model, data: FitData, options, backend: str) -> Algorithm:
        raise NotImplementedError

    def check(self, model, data: FitData, options) -> None:
        """Refuse option values that only make sense against the data (called once, before any work)."""
        batch = getattr(options, "batch_size", None)
        if batch is not None and batch > data.n and self.batch_over_n == "error":
            raise ValueError(f"{self.name} option batch_size={batch} exceeds the {data.n} training rows")


def jax_float_dtype() -> np.dtype:
    """float64 when JAX runs with x64 enabled, else float32: the dtype of sample sites and states."""
    import jax

    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def start_values(model, seed: int, dtype="float32") -> dict[str, np.ndarray]:
    """A chain's or guide's default starting point: the network's init (by its spec's init scheme, seeded),
    noise std 0.5 (in standardised units: 0.5 * target_scale) where the likelihood learns it."""
    values = dict(model.net.init(seed, dtype))
    for name in model.likelihood.latent_sites():
        values[name] = np.asarray(0.5 * model.likelihood.target_scale, dtype=dtype)
    return values
