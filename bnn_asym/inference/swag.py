"""torch engines built on MAP training: deep ensembles, SWAG and MultiSWAG.

MAP objective per mini-batch: mean negative log-likelihood minus log prior / N (the prior is the
regulariser, so no extra weight decay). A learned Gaussian noise std is optimised with the network
(log-parameterised, HalfNormal prior) and kept as a point estimate per run.

SWAG (Maddox et al. 2019): after ``pretrain_steps`` of Adam, SGD at a constant ``swag_lr`` collects
the first and second moments of the free parameters and the last ``rank`` deviations; draws are
``mean + sqrt(scale) * (sqrt(diag / 2) z1 + D^T z2 / sqrt(2 (K - 1)))``. The specs only use
LayerNorm/GroupNorm, which keep no running statistics, so nothing needs refreshing after sampling.
Draws are pseudo-chains: one chain per ensemble member or per SWAG run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..training import TrainConfig, epochs_for_steps, steps_per_epoch, train
from .base import Engine, EngineResult, FitData, check_positive_float, check_positive_int, stack_draws


def map_objective(model, n: int, noise_raw: torch.Tensor | None):
    """``f(out, y, params)``: mean NLL - log prior / n (constants dropped)."""
    from ..models.likelihoods import torch_backend

    backend = torch_backend()
    lik = model.likelihood
    prior = model.prior_loc_scale()

    def objective(out, yb, params):
        latents = {"noise_std": noise_raw.exp()} if noise_raw is not None else {}
        nll = -lik.distribution(backend, out, latents).log_prob(yb).mean()
        neg_log_prior = sum(((p - prior[k][0]) ** 2).sum() / (2 * prior[k][1] ** 2) for k, p in params.items())
        if noise_raw is not None:
            neg_log_prior = neg_log_prior + noise_raw.exp() ** 2 / (2 * lik.noise_prior_scale ** 2)
        return nll + neg_log_prior / n

    return objective


@dataclass
class EnsembleOptions:
    n_members: int = 5
    num_steps: int = 2000  # optimiser steps per member (whole epochs: rounded up)
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "cosine"

    def __post_init__(self):
        for name in ("n_members", "num_steps", "batch_size"):
            check_positive_int("ensemble", name, getattr(self, name))
        check_positive_float("ensemble", "lr", self.lr)


def _map_run(model, data: FitData, config: TrainConfig, seed: int, progress: bool, device: str, desc: str,
             on_step=None, init_params=None, optimizer="adamw"):
    noise_raw = torch.tensor(math.log(0.5), requires_grad=True) if model.likelihood.learns_noise else None
    result = train(model.net, data.X, data.y, config=config, init_seed=seed, data_seed=seed + 1,
                   init_params=init_params, objective=map_objective(model, data.n, noise_raw),
                   extra_params=[noise_raw] if noise_raw is not None else (), optimizer=optimizer,
                   on_step=on_step, progress=progress, desc=desc, device=device)
    noise = {"noise_std": np.asarray(noise_raw.detach().exp().item(), np.float32)} if noise_raw is not None else {}
    return result, noise


def _config(data: FitData, steps: int, batch_size: int, lr: float, schedule: str) -> TrainConfig:
    return TrainConfig(epochs=epochs_for_steps(data.n, batch_size, steps), batch_size=batch_size, lr=lr,
                       weight_decay=0.0, schedule=schedule)


class EnsembleEngine(Engine):
    name = "ensemble"
    Options = EnsembleOptions
    description = "deep ensemble of MAP networks from independent inits (one pseudo-chain per member)"

    def run(self, model, data: FitData, options, seed: int, progress: bool, device: str) -> EngineResult:
        config = _config(data, options.num_steps, options.batch_size, options.lr, options.schedule)
        start = time.perf_counter()
        members, losses = [], []
        for m in range(options.n_members):
            result, noise = _map_run(model, data, config, 1000 * seed + m, progress, device,
                                     f"ensemble member {m + 1}/{options.n_members}")
            members.append({**result.params, **noise})
            losses.append(result.history[-1]["loss"])
        steps = config.epochs * steps_per_epoch(data.n, options.batch_size)
        info = {"wall_time_s": time.perf_counter() - start, "grad_evals": options.n_members * steps,
                "grad_evals_kind": "mini-batch", "final_loss": losses}
        return EngineResult(stack_draws(members, options.n_members), {}, info)


@dataclass
class SWAGOptions:
    pretrain_steps: int = 2000  # Adam steps to reach a mode (0: start SWAG from the init)
    swag_steps: int = 1000  # SGD steps at constant swag_lr while collecting
    collect_every: int | None = None  # steps between snapshots; None: one epoch, at least 10 steps
    lr: float = 1e-3
    swag_lr: float = 1e-2
    momentum: float = 0.9
    rank: int = 20
    scale: float = 0.5
    num_draws: int = 100
    batch_size: int = 128

    def __post_init__(self):
        owner = "swag"
        check_positive_int(owner, "pretrain_steps", self.pretrain_steps, 0)
        for name in ("swag_steps", "rank", "num_draws", "batch_size"):
            check_positive_int(owner, name, getattr(self, name))
        if self.collect_every is not None:
            check_positive_int(owner, "collect_every", self.collect_every)
        for name in ("lr", "swag_lr", "scale"):
            check_positive_float(owner, name, getattr(self, name))


@dataclass
class MultiSWAGOptions(SWAGOptions):
    n_runs: int = 3

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("multiswag", "n_runs", self.n_runs)


class SWAGMoments:
    """Running mean, mean of squares, and the last ``rank`` deviations of a flat parameter vector."""

    def __init__(self, rank: int):
        self.n = 0
        self.mean = None
        self.sq_mean = None
        self.deviations = deque(maxlen=rank)

    def collect(self, theta: np.ndarray) -> None:
        theta = theta.astype(np.float64)
        if self.n == 0:
            self.mean, self.sq_mean = np.zeros_like(theta), np.zeros_like(theta)
        self.n += 1
        self.mean += (theta - self.mean) / self.n
        self.sq_mean += (theta ** 2 - self.sq_mean) / self.n
        self.deviations.append(theta - self.mean)

    def sample(self, rng: np.random.Generator, num: int, scale: float) -> np.ndarray:
        var = np.clip(self.sq_mean - self.mean ** 2, 1e-30, None)
        out = self.mean + math.sqrt(scale / 2) * np.sqrt(var) * rng.standard_normal((num, len(self.mean)))
        k = len(self.deviations)
        if k >= 2:
            D = np.stack(self.deviations)  # (K, P)
            out += math.sqrt(scale / (2 * (k - 1))) * rng.standard_normal((num, k)) @ D
        return out


class SWAGEngine(Engine):
    name = "swag"
    Options = SWAGOptions
    description = "SWA-Gaussian: diagonal plus rank-K covariance from SGD iterates"

    def _one_run(self, model, data, options, seed, progress, device):
        layout = model.net.layout
        init = None
        if options.pretrain_steps:
            pre_config = _config(data, options.pretrain_steps, options.batch_size, options.lr, "cosine")
            init = _map_run(model, data, pre_config, seed, progress, device, "swag pretrain")[0].params
        moments = SWAGMoments(options.rank)
        every = options.collect_every or max(10, steps_per_epoch(data.n, options.batch_size))

        def collect(step, params):
            if (step + 1) % every == 0:
                moments.collect(layout.pack({k: v.detach().cpu().numpy() for k, v in params.items()}))

        swag_config = _config(data, options.swag_steps, options.batch_size, options.swag_lr, "constant")
        _, noise = _map_run(model, data, swag_config, seed + 7, progress, device, "swag collect", on_step=collect,
                            init_params=init, optimizer="sgd")
        if moments.n < 2:
            raise ValueError(f"swag collected {moments.n} snapshot(s); raise swag_steps or lower collect_every "
                             f"(now {options.swag_steps} steps, one snapshot every {every})")
        flat = moments.sample(np.random.default_rng(seed), options.num_draws, options.scale).astype(np.float32)
        draws = layout.unpack(flat)
        for k, v in noise.items():
            draws[k] = np.full(options.num_draws, v, np.float32)
        steps = (pre_config.epochs if options.pretrain_steps else 0) + swag_config.epochs
        return draws, steps * steps_per_epoch(data.n, options.batch_size), moments.n

    def run(self, model, data: FitData, options, seed: int, progress: bool, device: str) -> EngineResult:
        start = time.perf_counter()
        draws, steps, snapshots = self._one_run(model, data, options, seed, progress, device)
        info = {"wall_time_s": time.perf_counter() - start, "grad_evals": steps, "grad_evals_kind": "mini-batch",
                "rank": options.rank, "scale": options.scale, "snapshots": snapshots}
        return EngineResult({k: v[None] for k, v in draws.items()}, {}, info)


class MultiSWAGEngine(SWAGEngine):
    name = "multiswag"
    Options = MultiSWAGOptions
    description = "several SWAG runs from independent inits (one pseudo-chain per run)"

    def run(self, model, data: FitData, options, seed: int, progress: bool, device: str) -> EngineResult:
        start = time.perf_counter()
        runs, steps = [], 0
        for r in range(options.n_runs):
            draws, s, _ = self._one_run(model, data, options, 1000 * seed + r, progress, device)
            runs.append(draws)
            steps += s
        stacked = {k: np.stack([r[k] for r in runs]) for k in runs[0]}
        info = {"wall_time_s": time.perf_counter() - start, "grad_evals": steps, "grad_evals_kind": "mini-batch",
                "rank": options.rank, "scale": options.scale, "n_runs": options.n_runs}
        return EngineResult(stacked, {}, info)
