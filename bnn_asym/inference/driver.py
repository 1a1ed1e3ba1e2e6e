"""The driver: the one loop over inference steps, shared by every engine.

``run`` seeds every chain, finds its starting point (the network's init, a MAP estimate, ensemble
members, or another posterior's draws), runs the engine's steps in chunks through a runner, and on the
way: times the steps, shows progress, stops at the first NaN with the step it happened at, counts
divergences, records per-step scalars, takes checkpoints (draws at chosen steps or seconds, handed to a
callback or kept), and honours budgets in steps, gradient evaluations or seconds. Engines only describe
one step (base.py); none of this is repeated in them.

Randomness: ``numpy.random.SeedSequence(seed).spawn(num_chains)`` gives each chain its own stream, from
which come its starting point, its JAX key (or torch generator) and the key of its final draws -- chain c
of seed s never shares anything with chain 0 of another seed.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..progress import progress_bar
from ..warn import warn_user
from .base import APPROXIMATION, TRAJECTORY, Algorithm, FitData, start_values

class _LRU:
    """Compiled runners of recent fits: a later fit with the same engine, model, options and data shapes
    reuses the compiled programs instead of tracing and compiling them again (scikit-learn's checks, a
    benchmark's seeds and warm starts fit the same setting many times)."""

    def __init__(self, size: int):
        self.size, self.items = size, {}

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
TARGET_CHUNK_SECONDS = 1.0  # steps per chunk are sized to take about this long (progress, budgets)
TRAJECTORY_BUFFER_BYTES = 2 ** 27  # positions held on the device per chain and chunk


# ----- what the caller asks for ------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointPlan:
    """When to hand out intermediate posteriors: at given steps, every k steps and/or every s seconds."""

    steps: tuple[int, ...] = ()
    every_steps: int | None = None
    every_seconds: float | None = None

    @classmethod
    def parse(cls, value) -> "CheckpointPlan":
        if value is None or isinstance(value, cls):
            return value or cls()
        if isinstance(value, dict):
            unknown = set(value) - {"steps", "every_steps", "every_seconds"}
            if unknown:
                raise ValueError(f"checkpoints has unknown key(s) {sorted(unknown)}; accepted: steps, every_steps, "
                                 "every_seconds")
            plan = cls(tuple(value.get("steps", ())), value.get("every_steps"), value.get("every_seconds"))
        elif isinstance(value, (list, tuple, range)):
            plan = cls(tuple(value))
        else:
            raise ValueError(f"checkpoints={value!r} is not valid; accepted: a list of steps, or a dict with steps, "
                             "every_steps and/or every_seconds")
        if any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1 for s in plan.steps):
            raise ValueError(f"checkpoint steps must be integers >= 1; got {list(plan.steps)}")
        if plan.every_steps is not None and (not isinstance(plan.every_steps, (int, np.integer)) or plan.every_steps < 1):
            raise ValueError(f"checkpoints every_steps={plan.every_steps!r} is not valid; accepted: an integer >= 1")
        if plan.every_seconds is not None and not (isinstance(plan.every_seconds, (int, float)) and plan.every_seconds > 0):
            raise ValueError(f"checkpoints every_seconds={plan.every_seconds!r} is not valid; accepted: a number > 0")
        return cls(tuple(sorted({int(s) for s in plan.steps})), plan.every_steps, plan.every_seconds)

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
    def parse(cls, value) -> "Budget":
        if value is None or isinstance(value, cls):
            return value or cls()
        if not isinstance(value, dict) or set(value) - {"steps", "grad_evals", "seconds"}:
            raise ValueError(f"budget={value!r} is not valid; accepted: a dict with any of steps, grad_evals, seconds")
        for k, v in value.items():
            if v is not None and (not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool)
                                  or not v > 0):
                raise ValueError(f"budget {k}={v!r} is not valid; accepted: a number > 0")
        return cls(**value)


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
            d["final_elbo"] = float(np.mean(elbo[-max(1, len(elbo) // 20):]))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunInfo":
        names = {f for f in cls.__dataclass_fields__}
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
        out.append(ChainSeeds(int(start.generate_state(1, np.uint64)[0]), run.generate_state(2, np.uint32),
                              draws.generate_state(2, np.uint32)))
    return out


# ----- the loop -------------------------------------------------------------------------------------------
def run(engine, model, data: FitData, options, *, backend: str, seed: int, starts: list[dict], device,
        device_name: str, chain_method: str, progress: bool, checkpoints: CheckpointPlan, callback: Callable | None,
        budget: Budget, make_posterior: Callable, init_label: str = "network") -> RunResult:
    """Run ``engine`` on ``model`` and ``data``; see the module docstring."""
    from .runners import JaxRunner, TorchRunner, resolve_chain_method

    algo: Algorithm = engine.build(model, data, options, backend)
    num_chains = len(starts)
    seeds = chain_seeds(seed, num_chains)
    platform = getattr(device, "platform", "cpu")
    method = resolve_chain_method(chain_method, num_chains, algo.runtime, platform)
    size = sum(int(np.prod(s)) for s in model.latent_shapes().values())
    total = algo.num_steps if budget.steps is None else min(algo.num_steps, int(budget.steps))
    if algo.kind == TRAJECTORY:
        capacity = max(1, min(total, 500, TRAJECTORY_BUFFER_BYTES // (4 * size)))
    else:
        capacity = max(1, min(total, 2000))
    if algo.runtime == "jax":
        key = (engine.name, model, repr(options), backend, data.X.shape, data.X.dtype.str, data.y.shape,
               data.y.dtype.str, num_chains, method, str(device), capacity)
        if engine.draws_need_data:
            key += tuple(hashlib.sha1(np.ascontiguousarray(a)).hexdigest() for a in (data.X, data.y, data.w))
        runner = _COMPILED.get(key)
        if runner is None:
            runner = _COMPILED.put(key, JaxRunner(algo, data, num_chains, method, device, capacity))
        else:
            runner.set_data(data)
        algo = runner.algo
        keys = [s.run for s in seeds]
    else:
        runner = TorchRunner(algo, data, num_chains, [np.random.default_rng(int(s.run[0])) for s in seeds])
        keys = [int(s.run[0]) for s in seeds]

    with _isolated_torch_rng(algo.runtime):
        states, keys = runner.init(keys, starts)
        traces: dict[str, list[np.ndarray]] = {}
        kept = _KeptDraws(int(np.count_nonzero(algo.keep(np.arange(total))))) if algo.kind == TRAJECTORY else None
        kept_stats: list[dict[str, np.ndarray]] = []
        taken: list[Checkpoint] = []
        done, wall, first_chunk, grad_evals, data_passes = 0, 0.0, 0.0, 0, 0.0
        per_step = None
        next_time = checkpoints.every_seconds
        stopped_by = "num_steps" if total == algo.num_steps else "steps"
        rows_per_step = data.n if algo.batch_size is None else min(algo.batch_size, data.n)
        bar = progress_bar(total=total, desc=engine.name, enabled=progress)
        try:
            while done < total:
                n = _chunk_length(done, total, capacity, per_step, checkpoints, next_time, wall, budget,
                                  grad_evals, grad_evals / done if done else None)
                start = time.perf_counter()
                states, keys, info, positions = runner.run(states, keys, n)
                elapsed = time.perf_counter() - start
                if done == 0:
                    first_chunk = elapsed
                elif n > 0:
                    per_step = elapsed / n
                if per_step is None and n > 1 and done == 0:
                    per_step = elapsed / n  # an upper bound: compilation included
                wall += elapsed
                _check_finite(engine.name, info, done, algo.nan_hint)
                for k, v in info.items():
                    traces.setdefault(k, []).append(np.asarray(v))
                steps_ge = _grad_evals(algo, info)
                grad_evals += int(steps_ge.sum())
                data_passes += float(steps_ge.sum()) * rows_per_step / data.n
                if algo.kind == TRAJECTORY:
                    mask = algo.keep(np.arange(done, done + n))
                    if mask.any():
                        kept.add(positions if mask.all() else {k: v[:, mask] for k, v in positions.items()})
                        kept_stats.append(_sample_stats(info, steps_ge, mask))
                done += n
                bar.update(n)
                if algo.postfix is not None:
                    bar.set_postfix(algo.postfix({k: v[:, -1] for k, v in info.items()}), refresh=False)
                reason = _budget_reason(budget, grad_evals, wall)
                due = done in checkpoints.steps or (checkpoints.every_steps and done % checkpoints.every_steps == 0)
                if next_time is not None and wall >= next_time:
                    due = True
                    while next_time <= wall:
                        next_time += checkpoints.every_seconds
                if due or (reason and not checkpoints.empty):
                    posterior = None
                    if algo.kind == APPROXIMATION or kept:
                        draws, stats = _current_draws(algo, runner, states, seeds, kept, kept_stats)
                        posterior = make_posterior(draws, stats, _info(engine, backend, device_name, method, num_chains,
                                                                      done, total, "checkpoint", wall, first_chunk,
                                                                      grad_evals, data_passes, traces, kept_stats,
                                                                      init_label, algo))
                    checkpoint = Checkpoint(done, wall, grad_evals, data_passes, posterior)
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
        draws, stats = _current_draws(algo, runner, states, seeds, kept, kept_stats)
    if algo.kind == TRAJECTORY and not kept:
        raise ValueError(f"{engine.name} stopped after {done} steps, before keeping any draw (the first kept step is "
                         "after warmup): raise the budget or lower num_warmup")
    info = _info(engine, backend, device_name, method, num_chains, done, total, stopped_by, wall, first_chunk,
                 grad_evals, data_passes, traces, kept_stats, init_label, algo)
    if info.num_divergences:
        warn_user(f"{engine.name}: {info.num_divergences} divergent transitions after warmup (of "
                  f"{int(np.prod(stats['diverging'].shape))} draws); try target_accept closer to 1, or a tighter prior",
                  RuntimeWarning)
    return RunResult(draws, stats, info, taken)


def _chunk_length(done, total, capacity, per_step, plan: CheckpointPlan, next_time, wall, budget: Budget,
                  grad_evals: int, grad_evals_per_step: float | None) -> int:
    n = min(capacity, total - done)
    if budget.grad_evals is not None and grad_evals_per_step:
        n = min(n, max(1, math.ceil((budget.grad_evals - grad_evals) / grad_evals_per_step)))
    if per_step is None:
        n = min(n, 10)  # the first chunk compiles; keep it short to learn the speed
    else:
        n = min(n, max(1, int(TARGET_CHUNK_SECONDS / max(per_step, 1e-9))))
        for deadline in (next_time, budget.seconds):
            if deadline is not None:
                n = min(n, max(1, math.ceil((deadline - wall) / max(per_step, 1e-9))))
    target = plan.next_step_after(done)
    if target is not None:
        n = min(n, target - done)
    return max(1, n)


def _grad_evals(algo: Algorithm, info) -> np.ndarray:
    if algo.grad_evals is not None:
        return np.asarray(algo.grad_evals(info))
    return np.asarray(info.get("grad_evals", np.ones_like(next(iter(info.values())))), dtype=np.int64)


def _check_finite(name: str, info: dict, done: int, hint: str) -> None:
    for key in ("loss", "finite"):
        if key not in info:
            continue
        v = np.asarray(info[key])
        bad = ~np.isfinite(v) if key == "loss" else ~v.astype(bool)
        if bad.any():
            chain, step = np.argwhere(bad)[0]
            what = "the loss" if key == "loss" else "a parameter"
            raise FloatingPointError(f"{name}: {what} became NaN or inf at step {done + int(step)}"
                                     f"{f' of chain {int(chain)}' if v.shape[0] > 1 else ''}; {hint}")


SAMPLE_STAT_NAMES = {"grad_evals": "n_steps", "diverging": "diverging", "accept_prob": "acceptance_rate",
                     "energy": "energy", "step_size": "step_size"}


def _sample_stats(info: dict, grad_evals: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for key, name in SAMPLE_STAT_NAMES.items():
        if key in info:
            out[name] = np.asarray(info[key])[:, mask]
    out["n_steps"] = np.asarray(grad_evals)[:, mask].astype(np.int64)
    if "loss" in info:
        out["lp"] = -np.asarray(info["loss"], dtype=np.float64)[:, mask]
    if "diverging" in out:
        out["diverging"] = out["diverging"].astype(bool)
        out["tree_depth"] = np.ceil(np.log2(out["n_steps"].astype(np.float64) + 1)).astype(np.int64)
    return out


class _KeptDraws:
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
            self.buffers[k][:, self.filled:self.filled + n] = v
        self.filled += n

    def arrays(self) -> dict[str, np.ndarray]:
        # Views of the filled part: later chunks write only past it, so a checkpoint's draws never change.
        return {k: b[:, :self.filled] for k, b in self.buffers.items()}

    def __bool__(self) -> bool:
        return self.filled > 0


def _current_draws(algo, runner, states, seeds, kept, kept_stats):
    if algo.kind == TRAJECTORY:
        if not kept:
            return {}, {}
        draws = kept.arrays()
        stats = {k: np.concatenate([c[k] for c in kept_stats], axis=1) for k in kept_stats[0]}
        return draws, stats
    per_chain = []
    for c in range(runner.num_chains):
        state = runner.chain_state(states, c)
        if algo.runtime == "jax":
            import jax

            state = jax.device_get(state)
        rng = np.random.default_rng(seeds[c].draws)  # the same draws at a checkpoint and at the end of a run
        per_chain.append({k: np.asarray(v) for k, v in algo.draws(state, rng, algo.num_draws).items()})
    return {k: np.stack([d[k] for d in per_chain]) for k in per_chain[0]}, {}


def _budget_reason(budget: Budget, grad_evals: int, wall: float) -> str | None:
    if budget.grad_evals is not None and grad_evals >= budget.grad_evals:
        return "grad_evals"
    if budget.seconds is not None and wall >= budget.seconds:
        return "seconds"
    return None


def _info(engine, backend, device_name, method, num_chains, done, total, stopped_by, wall, first_chunk, grad_evals,
          data_passes, traces, kept_stats, init_label, algo) -> RunInfo:
    trace = {}
    if algo.kind == APPROXIMATION and "loss" in traces:
        trace["loss"] = np.concatenate(traces["loss"], axis=1).astype(np.float64).tolist()
    extra = dict(algo.extra)
    divergences = None
    if kept_stats and "diverging" in kept_stats[0]:
        divergences = int(sum(int(s["diverging"].sum()) for s in kept_stats))
        extra["step_size"] = [float(s) for s in kept_stats[-1]["step_size"][:, -1]] if "step_size" in kept_stats[-1] else None
    return RunInfo(engine.name, backend, device_name, method, num_chains, done, total, stopped_by, wall, first_chunk,
                   grad_evals, data_passes, divergences, init_label, trace, extra)


class _isolated_torch_rng:
    """torch's global generator is forked for torch runs: Pyro draws from it, the user's stream stays put."""

    def __init__(self, runtime: str):
        self.runtime = runtime

    def __enter__(self):
        if self.runtime == "torch":
            import torch

            self._fork = torch.random.fork_rng(devices=[])
            self._fork.__enter__()
        return self

    def __exit__(self, *exc):
        if self.runtime == "torch":
            return self._fork.__exit__(*exc)
        return False


def default_starts(model, seeds: list[ChainSeeds], dtype) -> list[dict]:
    return [start_values(model, s.start, dtype) for s in seeds]
