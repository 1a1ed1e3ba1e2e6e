"""The driver: the one loop over inference steps, shared by every engine.

``run`` seeds every chain, runs the engine's steps in chunks through a runner (runners.py) and records
what they report. What happens between chunks is decided by small pure functions of one ``Progress``
record -- how long the next chunk is (``next_chunk_length``), whether a checkpoint is due
(``checkpoint_due``), whether a budget is spent (``budget_reached``), whether a step went NaN
(``first_nonfinite``) -- so ``run`` itself only times, calls and records. Engines only describe one step
(base.py); none of this is repeated in them.

On the way a run: shows progress, stops at the first NaN with the step it happened at, counts divergences,
records per-step scalars, takes checkpoints (draws at chosen steps or seconds, handed to a callback or
kept), and honours budgets in steps, gradient evaluations or seconds.

Randomness: ``numpy.random.SeedSequence(seed).spawn(num_chains)`` gives each chain its own stream, from
which come its starting point, its JAX key (or torch generator) and the key of its final draws -- chain c
of seed s never shares anything with chain 0 of another seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..progress import progress_bar
from ..validate import check_keys, integer, number, sequence_of
from ..warn import ConvergenceWarning, warn_user
from .base import APPROXIMATION, TRAJECTORY, Algorithm, FitData, Plan, StepInfo, start_values

TARGET_CHUNK_SECONDS = 1.0  # steps per chunk are sized to take about this long (progress, budgets)
FIRST_CHUNK_STEPS = 10  # the first chunk compiles: keep it short to learn the speed
TRAJECTORY_BUFFER_BYTES = 2**27  # positions held on the device per chain and chunk
MAX_TRAJECTORY_CHUNK, MAX_APPROXIMATION_CHUNK = 500, 2000


class _LRU:
    """Compiled runners of recent fits: a later fit with the same engine, model, options and data shapes
    reuses the compiled programs instead of tracing and compiling them again (scikit-learn's checks, a
    benchmark's seeds and warm starts fit the same setting many times)."""

    def __init__(self, size: int):
        self.size: int = size
        self.items: dict = {}

    def get(self, key):
        value = self.items.pop(key, None)
        if value is not None:
            self.items[key] = value
        return value

    def put(self, key, value):
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.pop(next(iter(self.items)))
        return value


_COMPILED = _LRU(16)


def forget_compiled_runners() -> None:
    """Drop the compiled runners of recent fits (``bnn_asym.release_compiled_programs``)."""
    _COMPILED.items.clear()


# ----- what the caller asks for ------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointPlan:
    """When to hand out intermediate posteriors: at given steps, every k steps and/or every s seconds."""

    steps: tuple[int, ...] = ()
    every_steps: int | None = None
    every_seconds: float | None = None

    @classmethod
    def parse(cls, value) -> CheckpointPlan:
        if value is None or isinstance(value, cls):
            return value or cls()
        if isinstance(value, (list, tuple, range)):
            value = {"steps": list(value)}
        elif not isinstance(value, dict):
            raise ValueError(
                f"checkpoints={value!r} is not valid; accepted: a list of steps, or a dict with steps, "
                "every_steps and/or every_seconds"
            )
        check_keys(value, "checkpoints has", ("steps", "every_steps", "every_seconds"))
        steps = sequence_of(integer(1), "a list of integers >= 1").check(value.get("steps", ()), "checkpoints steps")
        every_steps, every_seconds = value.get("every_steps"), value.get("every_seconds")
        if every_steps is not None:
            every_steps = integer(1).check(every_steps, "checkpoints every_steps")
        if every_seconds is not None:
            every_seconds = number(0.0).check(every_seconds, "checkpoints every_seconds")
        return cls(tuple(sorted(set(steps))), every_steps, every_seconds)

    @property
    def empty(self) -> bool:
        return not self.steps and self.every_steps is None and self.every_seconds is None

    def next_step_after(self, done: int) -> int | None:
        candidates = [s for s in self.steps if s > done]
        if self.every_steps:
            candidates.append((done // self.every_steps + 1) * self.every_steps)
        return min(candidates) if candidates else None


@dataclass(frozen=True)
class Budget:
    """Stop a run early: after ``steps`` steps per chain, ``grad_evals`` gradient evaluations (all chains)
    or ``seconds`` of run time, whichever comes first. Seconds depend on the machine: runs stopped by time
    are not reproducible."""

    steps: int | None = None
    grad_evals: float | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, value) -> Budget:
        """A Budget from fit's ``budget``: None (no budget), a Budget, or a dict of steps, grad_evals, seconds."""
        if isinstance(value, cls):
            return value
        value = {} if value is None else value
        if not isinstance(value, dict) or set(value) - {"steps", "grad_evals", "seconds"}:
            raise ValueError(f"budget={value!r} is not valid; accepted: a dict with any of steps, grad_evals, seconds")
        positive = number(0.0, finite=False)
        return cls(**{k: v if v is None else positive.check(v, f"budget {k}") for k, v in value.items()})


# ----- what the driver returns --------------------------------------------------------------------------
@dataclass
class RunInfo:
    """How a run went: cost, where it ran, how it stopped, and per-step scalars."""

    engine: str = ""
    backend: str = "numpyro"
    device: str = "cpu"
    chain_method: str = "sequential"
    num_chains: int = 1
    steps: int = 0  # steps per chain actually run
    planned_steps: int = 0
    stopped_by: str = "num_steps"  # "num_steps" | "steps" | "grad_evals" | "seconds" | "callback"
    wall_time_s: float = 0.0  # the steps themselves (compilation in the first chunk included, checkpoints excluded)
    first_chunk_s: float = 0.0
    grad_evals: int = 0  # all chains; mini-batch gradients count one each
    data_passes: float = 0.0  # rows touched / training rows, all chains
    num_divergences: int | None = None
    init: str = "network"
    trace: dict[str, list] = field(default_factory=dict)  # name -> per chain, per step
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific (step sizes, snapshots, ...)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        if "loss" in self.trace and self.num_chains == 1 and self.extra.get("objective") == "negative_elbo":
            elbo = -np.asarray(self.trace["loss"][0], dtype=np.float64)
            d["elbo"] = elbo.tolist()
            d["final_elbo"] = float(np.mean(elbo[-max(1, len(elbo) // 20) :]))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunInfo:
        names = set(cls.__dataclass_fields__)
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and k not in ("elbo", "final_elbo")}
        known.setdefault("extra", {}).update(extra)
        return cls(**known)


@dataclass
class Checkpoint:
    step: int  # steps per chain so far
    wall_time_s: float
    grad_evals: int
    data_passes: float
    posterior: Any  # a Posterior of the draws so far (None while a chain has not kept any draw yet)


@dataclass
class RunResult:
    draws: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    info: RunInfo
    checkpoints: list[Checkpoint]


# ----- seeds ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainSeeds:
    start: int  # seed of the chain's starting point (network init)
    run: np.ndarray  # uint32[2]: the chain's JAX key (legacy threefry layout); its first word seeds torch
    draws: np.ndarray  # uint32[2]: key of the chain's final draws


def chain_seeds(seed: int, num_chains: int) -> list[ChainSeeds]:
    out = []
    for child in np.random.SeedSequence(seed).spawn(num_chains):
        start, run, draws = child.spawn(3)
        out.append(
            ChainSeeds(
                int(start.generate_state(1, np.uint64)[0]),
                run.generate_state(2, np.uint32),
                draws.generate_state(2, np.uint32),
            )
        )
    return out


def default_starts(model, seeds: list[ChainSeeds], dtype) -> list[dict]:
    return [start_values(model, s.start, dtype) for s in seeds]


# ----- progress, and the policies that read it --------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """Where a run stands between chunks."""

    steps: int = 0  # per chain so far
    wall_s: float = 0.0  # time in steps (the first chunk's compilation included, checkpoints excluded)
    first_chunk_s: float = 0.0
    seconds_per_step: float | None = None  # of the last chunk (the first chunk's, compilation included: an upper bound)
    grad_evals: int = 0  # all chains
    data_passes: float = 0.0  # rows touched / training rows, all chains
    next_checkpoint_s: float | None = None  # when the next every_seconds checkpoint is due


def advanced(p: Progress, n: int, elapsed: float, grad_evals: int, data_passes: float) -> Progress:
    """``p`` after a chunk of ``n`` steps that took ``elapsed`` seconds."""
    first = p.steps == 0
    # the first chunk compiles: its speed is an upper bound, and from one step not even that
    speed = elapsed / n if (not first or n > 1) else None
    return dataclasses.replace(
        p,
        steps=p.steps + n,
        wall_s=p.wall_s + elapsed,
        first_chunk_s=elapsed if first else p.first_chunk_s,
        seconds_per_step=speed,
        grad_evals=p.grad_evals + grad_evals,
        data_passes=p.data_passes + data_passes,
    )


def next_chunk_length(p: Progress, total: int, capacity: int, checkpoints: CheckpointPlan, budget: Budget) -> int:
    """Steps in the next chunk: up to ``capacity``, about TARGET_CHUNK_SECONDS long, and ending exactly at the
    next checkpoint step or at the step where a budget of gradients or seconds is expected to run out."""
    n = min(capacity, total - p.steps)
    if budget.grad_evals is not None and p.grad_evals:
        n = min(n, max(1, math.ceil((budget.grad_evals - p.grad_evals) / (p.grad_evals / p.steps))))
    if p.seconds_per_step is None:
        n = min(n, FIRST_CHUNK_STEPS)
    else:
        per_step = max(p.seconds_per_step, 1e-9)
        n = min(n, max(1, int(TARGET_CHUNK_SECONDS / per_step)))
        for deadline in (p.next_checkpoint_s, budget.seconds):
            if deadline is not None:
                n = min(n, max(1, math.ceil((deadline - p.wall_s) / per_step)))
    target = checkpoints.next_step_after(p.steps)
    if target is not None:
        n = min(n, target - p.steps)
    return max(1, n)


def checkpoint_due(p: Progress, checkpoints: CheckpointPlan) -> bool:
    at_step = p.steps in checkpoints.steps or bool(checkpoints.every_steps and p.steps % checkpoints.every_steps == 0)
    return at_step or (p.next_checkpoint_s is not None and p.wall_s >= p.next_checkpoint_s)


def past_checkpoint(p: Progress, checkpoints: CheckpointPlan) -> Progress:
    """``p`` with the next timed checkpoint moved past the current time."""
    due = p.next_checkpoint_s
    if due is None or checkpoints.every_seconds is None:
        return p
    while due <= p.wall_s:
        due += checkpoints.every_seconds
    return dataclasses.replace(p, next_checkpoint_s=due)


def all_converged(info: StepInfo) -> bool:
    """Whether every chain's stopping rule was met by the end of the chunk (engines that have one)."""
    return info.converged is not None and bool(np.all(np.asarray(info.converged)[:, -1]))


def _may_stop_converged(info: StepInfo, p: Progress, checkpoints: CheckpointPlan) -> bool:
    """Every chain converged and no checkpoint is still to come (the state no longer changes, so stopping
    early only saves time; a planned checkpoint still gets the frozen state at its step)."""
    return all_converged(info) and checkpoints.next_step_after(p.steps) is None and checkpoints.every_seconds is None


def budget_reached(p: Progress, budget: Budget) -> str | None:
    """Which budget of gradients or seconds is spent ("grad_evals" | "seconds"), if any (steps are planned)."""
    if budget.grad_evals is not None and p.grad_evals >= budget.grad_evals:
        return "grad_evals"
    if budget.seconds is not None and p.wall_s >= budget.seconds:
        return "seconds"
    return None


NONFINITE_WHAT = {"loss": "the loss", "potential": "the log density", "finite": "a parameter"}


def first_nonfinite(info: StepInfo) -> tuple[str, int, int] | None:
    """(field, chain, step within the chunk) of the first step whose loss or potential is not finite or whose
    position is not (``finite`` false); None if every step is fine."""
    for name in NONFINITE_WHAT:
        value = getattr(info, name)
        if value is None:
            continue
        v = np.asarray(value)
        bad = ~v.astype(bool) if name == "finite" else ~np.isfinite(v)
        if bad.any():
            chain, step = np.argwhere(bad)[0]
            return name, int(chain), int(step)
    return None


# ----- what a run records ---------------------------------------------------------------------------------
# sample statistic <- StepInfo field, with the dtype it is stored in (None: as the engine reports it)
SAMPLE_STATS = (
    ("n_steps", "grad_evals", np.int64),
    ("diverging", "diverging", np.bool_),
    ("acceptance_rate", "accept_prob", None),
    ("energy", "energy", None),
    ("step_size", "step_size", None),
    ("lp", "potential", np.float64),
    ("tree_depth", "tree_depth", np.int64),
)


class KeptDraws:
    """The kept draws of a trajectory, written chunk by chunk into arrays allocated once for the whole run
    (concatenating chunks at the end copied every draw a second time: 13% of a long SGLD run)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.filled = 0
        self.buffers: dict[str, np.ndarray] = {}

    def add(self, chunk: dict[str, np.ndarray]) -> None:
        n = next(iter(chunk.values())).shape[1]
        if not self.buffers:
            self.buffers = {k: np.empty((v.shape[0], self.capacity) + v.shape[2:], v.dtype) for k, v in chunk.items()}
        for k, v in chunk.items():
            self.buffers[k][:, self.filled : self.filled + n] = v
        self.filled += n

    def arrays(self) -> dict[str, np.ndarray]:
        # Views of the filled part: later chunks write only past it, so a checkpoint's draws never change.
        return {k: b[:, : self.filled] for k, b in self.buffers.items()}

    def __bool__(self) -> bool:
        return self.filled > 0


class Record:
    """Per-step scalars, kept draws and their sample statistics of one run."""

    def __init__(self, plan: Plan, total: int):
        self.plan = plan
        self.losses: list[np.ndarray] = []  # per chunk: (chain, n) loss values
        self.kept = KeptDraws(plan.kept_draws(total)) if plan.kind == TRAJECTORY else None
        self.kept_stats: list[dict[str, np.ndarray]] = []
        self.converged: np.ndarray | None = None  # per chain, after the last step (engines with a stopping rule)
        # per chain, the first step (1-based) after which its stopping rule held, -1 if never: unlike
        # RunInfo.steps (a chunk boundary, so timing-dependent) this is a property of the trajectory
        self.converged_at: np.ndarray | None = None
        self.grad_norm: np.ndarray | None = None

    def add(self, start: int, info: StepInfo, positions: dict | None) -> None:
        if info.loss is not None:
            self.losses.append(np.asarray(info.loss))
        if info.converged is not None:
            flags = np.asarray(info.converged).astype(bool)
            self.converged = flags[:, -1]
            if self.converged_at is None:
                self.converged_at = np.full(flags.shape[0], -1, dtype=np.int64)
            first = np.argmax(flags, axis=1)
            newly = (self.converged_at < 0) & flags.any(axis=1)
            self.converged_at[newly] = start + first[newly] + 1
        if info.grad_norm is not None:
            self.grad_norm = np.asarray(info.grad_norm)[:, -1].astype(np.float64)
        if self.kept is None:
            return
        if positions is None:
            raise RuntimeError("a trajectory engine's runner returned no positions")
        mask = self.plan.kept(np.arange(start, start + np.shape(info.grad_evals)[1]))
        if mask.any():
            self.kept.add(positions if mask.all() else {k: v[:, mask] for k, v in positions.items()})
            self.kept_stats.append(self._stats(info, mask))

    @staticmethod
    def _stats(info: StepInfo, mask: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, source, dtype in SAMPLE_STATS:
            value = getattr(info, source)
            if value is not None:
                value = np.asarray(value)[:, mask]
                out[name] = value if dtype is None else value.astype(dtype)
        if "lp" in out:
            out["lp"] = np.negative(out["lp"])
        return out

    def sample_stats(self) -> dict[str, np.ndarray]:
        if not self.kept_stats:
            return {}
        return {k: np.concatenate([c[k] for c in self.kept_stats], axis=1) for k in self.kept_stats[0]}

    def num_divergences(self) -> int | None:
        if not self.kept_stats or "diverging" not in self.kept_stats[0]:
            return None
        return int(sum(int(s["diverging"].sum()) for s in self.kept_stats))


class RunContext(NamedTuple):
    """What RunInfo says of a run besides its progress."""

    engine: str
    backend: str
    device: str
    chain_method: str
    num_chains: int
    planned_steps: int
    init: str
    facts: dict


def run_info(ctx: RunContext, p: Progress, record: Record, stopped_by: str) -> RunInfo:
    trace = {}
    if record.plan.kind == APPROXIMATION and record.losses:
        trace["loss"] = np.concatenate(record.losses, axis=1).astype(np.float64).tolist()
    extra = dict(ctx.facts)
    if record.converged is not None:
        extra["converged"] = record.converged.tolist()
        if record.converged_at is not None:
            extra["converged_at"] = record.converged_at.tolist()
    if record.grad_norm is not None:
        extra["grad_norm"] = record.grad_norm.tolist()
    divergences = record.num_divergences()
    if divergences is not None:
        last = record.kept_stats[-1]
        extra["step_size"] = [float(s) for s in last["step_size"][:, -1]] if "step_size" in last else None
    return RunInfo(
        engine=ctx.engine, backend=ctx.backend, device=ctx.device, chain_method=ctx.chain_method,
        num_chains=ctx.num_chains, steps=p.steps, planned_steps=ctx.planned_steps, stopped_by=stopped_by,
        wall_time_s=p.wall_s, first_chunk_s=p.first_chunk_s, grad_evals=p.grad_evals, data_passes=p.data_passes,
        num_divergences=divergences, init=ctx.init, trace=trace, extra=extra,
    )  # fmt: skip


# ----- the loop -------------------------------------------------------------------------------------------
class Session(NamedTuple):
    """One run's fixed parts: the engine's pieces, schedule and display, the runner, seeds and context."""

    engine: Any
    algo: Algorithm
    plan: Plan
    display: Any
    runner: Any
    seeds: list
    ctx: RunContext
    total: int
    rows_per_step: int
    n_rows: int


def run(
    engine,
    model,
    data: FitData,
    options,
    *,
    backend: str,
    seed: int,
    starts: list[dict],
    device,
    device_name: str,
    chain_method: str,
    progress: bool,
    checkpoints: CheckpointPlan,
    callback: Callable | None,
    budget: Budget,
    make_posterior: Callable,
    init_label: str = "network",
) -> RunResult:
    """Run ``engine`` on ``model`` and ``data``; see the module docstring."""
    s = _session(
        engine, model, data, options, backend, seed, len(starts), device, device_name, chain_method, budget, init_label
    )
    with _isolated_torch_rng(s.algo.runtime):
        states, keys = s.runner.init(_runner_keys(s), starts)
        record, taken = Record(s.plan, s.total), []
        p = Progress(next_checkpoint_s=checkpoints.every_seconds)
        stopped_by = "num_steps" if s.total == s.plan.num_steps else "steps"
        bar = progress_bar(total=s.total, desc=engine.name, enabled=progress)
        try:
            while p.steps < s.total:
                n = next_chunk_length(p, s.total, s.runner.capacity, checkpoints, budget)
                start = time.perf_counter()
                states, keys, info, positions = s.runner.run(states, keys, n)
                elapsed = time.perf_counter() - start
                _raise_if_nonfinite(s, info, p.steps)
                grads = int(np.sum(info.grad_evals))
                record.add(p.steps, info, positions)
                p = advanced(p, n, elapsed, grads, grads * s.rows_per_step / s.n_rows)
                bar.set_postfix(s.display.postfix(_last_step(info)), refresh=False)
                bar.update(n)
                reason = budget_reached(p, budget) or (
                    "converged" if _may_stop_converged(info, p, checkpoints) else None
                )
                if checkpoint_due(p, checkpoints) or (reason and not checkpoints.empty):
                    p = past_checkpoint(p, checkpoints)
                    checkpoint = _checkpoint(s, states, record, p, make_posterior)
                    if callback is None:
                        taken.append(checkpoint)
                    elif callback(checkpoint) is True:
                        stopped_by = "callback"
                        break
                if reason:
                    stopped_by = reason
                    break
        finally:
            bar.close()
        draws, stats = _current_draws(s, states, record)
    return _result(s, p, record, stopped_by, draws, stats, taken)


def _session(
    engine, model, data, options, backend, seed, num_chains, device, device_name, chain_method, budget, init_label
) -> Session:
    from .runners import resolve_chain_method

    algo = engine.build(model, data, options, backend)
    plan = engine.plan(options, data.n, model.net.num_free_params)
    method = resolve_chain_method(chain_method, num_chains, algo.runtime, getattr(device, "platform", "cpu"))
    total = plan.num_steps if budget.steps is None else min(plan.num_steps, int(budget.steps))
    runner = _runner(engine, algo, plan, model, data, options, backend, num_chains, method, device, total)
    ctx = RunContext(
        engine.name, backend, device_name, method, num_chains, total, init_label, engine.facts(options, data.n)
    )
    rows = data.n if plan.batch_size is None else min(plan.batch_size, data.n)
    return Session(
        engine,
        runner.algo,
        plan,
        engine.display(options, data.n),
        runner,
        chain_seeds(seed, num_chains),
        ctx,
        total,
        rows,
        data.n,
    )


def _capacity(plan: Plan, total: int, model) -> int:
    """Steps per compiled chunk: trajectories keep a position per step on the device (bounded in bytes)."""
    if plan.kind == TRAJECTORY:
        size = sum(int(np.prod(s)) for s in model.latent_shapes().values())
        return max(1, min(total, MAX_TRAJECTORY_CHUNK, TRAJECTORY_BUFFER_BYTES // (4 * size)))
    return max(1, min(total, MAX_APPROXIMATION_CHUNK))


def _runner(engine, algo, plan, model, data, options, backend, num_chains, method, device, total):
    """A runner for the algorithm: JAX runners are compiled once per setting and reused (``_COMPILED``)."""
    from .runners import JaxRunner, TorchRunner

    capacity = _capacity(plan, total, model)
    if algo.runtime != "jax":
        return TorchRunner(algo, plan, data, num_chains, capacity)
    key: tuple = (
        engine.name,
        model,
        repr(options),
        backend,
        data.X.shape,
        data.X.dtype.str,
        data.y.shape,
        data.y.dtype.str,
        num_chains,
        method,
        str(device),
        capacity,
    )
    if engine.draws_need_data:
        key += tuple(hashlib.sha1(np.ascontiguousarray(a).data).hexdigest() for a in (data.X, data.y, data.w))
    runner = _COMPILED.get(key)
    if runner is None:
        return _COMPILED.put(key, JaxRunner(algo, plan, data, num_chains, method, device, capacity))
    runner.set_data(data)
    return runner


def _runner_keys(s: Session) -> list:
    """Each chain's key: a JAX key, or (torch) the integer that seeds its generators."""
    return [c.run for c in s.seeds] if s.algo.runtime == "jax" else [int(c.run[0]) for c in s.seeds]


def _raise_if_nonfinite(s: Session, info: StepInfo, done: int) -> None:
    bad = first_nonfinite(info)
    if bad is not None:
        name, chain, step = bad
        chain_text = f" of chain {chain}" if s.ctx.num_chains > 1 else ""
        raise FloatingPointError(
            f"{s.engine.name}: {NONFINITE_WHAT[name]} became NaN or inf at step {done + step}"
            f"{chain_text}; {s.display.nan_hint}"
        )


def _last_step(info: StepInfo) -> StepInfo:
    return StepInfo(*(None if v is None else np.asarray(v)[:, -1] for v in info))


def _checkpoint(s: Session, states, record: Record, p: Progress, make_posterior) -> Checkpoint:
    posterior = None
    if s.plan.kind == APPROXIMATION or record.kept:
        draws, stats = _current_draws(s, states, record)
        posterior = make_posterior(draws, stats, run_info(s.ctx, p, record, "checkpoint"))
    return Checkpoint(p.steps, p.wall_s, p.grad_evals, p.data_passes, posterior)


def _current_draws(s: Session, states, record: Record):
    if s.plan.kind == TRAJECTORY:
        return (record.kept.arrays(), record.sample_stats()) if record.kept else ({}, {})
    if s.algo.draws is None:
        raise RuntimeError(f"engine {s.engine.name!r} is an approximation but its Algorithm has no draws")
    per_chain = []
    for c in range(s.runner.num_chains):
        state = s.runner.host_state(states, c)
        rng = np.random.default_rng(s.seeds[c].draws)  # the same draws at a checkpoint and at the end of a run
        per_chain.append({k: np.asarray(v) for k, v in s.algo.draws(state, rng, s.plan.num_draws).items()})
    return {k: np.stack([d[k] for d in per_chain]) for k in per_chain[0]}, {}


def _result(s: Session, p: Progress, record: Record, stopped_by: str, draws, stats, taken) -> RunResult:
    if s.plan.kind == TRAJECTORY and not record.kept:
        raise ValueError(
            f"{s.engine.name} stopped after {p.steps} steps, before keeping any draw (the first kept "
            "step is after warmup): raise the budget or lower num_warmup"
        )
    info = run_info(s.ctx, p, record, stopped_by)
    if info.num_divergences:
        warn_user(
            f"{s.engine.name}: {info.num_divergences} divergent transitions after warmup (of "
            f"{int(np.prod(stats['diverging'].shape))} draws); try target_accept closer to 1, or a tighter prior",
            RuntimeWarning,
        )
    _warn_if_unconverged(s, record, p, stopped_by)
    return RunResult(draws, stats, info, taken)


def _warn_if_unconverged(s: Session, record: Record, p: Progress, stopped_by: str) -> None:
    """An engine with a stopping rule (StepInfo.converged) whose run ended with a chain short of it says so."""
    if record.converged is None or record.converged.all():
        return
    late = np.flatnonzero(~record.converged)
    which = "the run" if s.ctx.num_chains == 1 else f"{len(late)} of {s.ctx.num_chains} chains"
    why = {"num_steps": f"after all {p.steps} steps", "callback": f"by the callback at step {p.steps}"}.get(
        stopped_by, f"by its {stopped_by} budget at step {p.steps}"
    )
    norm = "" if record.grad_norm is None else f" (largest gradient entry {record.grad_norm[late].max():.2g})"
    hint = f"; {s.display.unconverged_hint}" if s.display.unconverged_hint else ""
    warn_user(f"{s.engine.name}: {which} stopped {why} without converging{norm}{hint}", ConvergenceWarning)


@contextlib.contextmanager
def _isolated_torch_rng(runtime: str):
    """torch's global generator is forked for torch runs: Pyro draws from it, the user's stream stays put."""
    if runtime != "torch":
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[]):
        yield
