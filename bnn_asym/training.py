"""Point-estimate training in torch, for any spec.

Used for linear mode connectivity and MLI experiments, and by the ensemble / SWAG engines. The
network's parameters are its free parameters only (``TorchNet``), so weight decay can never shrink a
fixed W-Asym entry: those are buffers, outside the optimiser.

Seeds are separate on purpose: the spec's seed fixes masks, fixed values and FiGLU matrices (shared by
both networks of an LMC pair); ``init_seed`` fixes the initial free weights and ``data_seed`` the
mini-batch order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

TASKS = ("classification", "regression")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings; the defaults follow the paper's LMC runs (AdamW, cosine schedule)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}={v!r} is not valid; accepted: an integer >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr={self.lr!r} is not valid; accepted: a finite number > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} is not valid; accepted: a number >= 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not valid; accepted: {', '.join(SCHEDULES)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    params: dict[str, np.ndarray]
    init: dict[str, np.ndarray]
    history: list[dict] = field(default_factory=list)


def data_loss(out: torch.Tensor, y: torch.Tensor, task: str, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy for classification, mean squared error for regression (single output)."""
    if task == "classification":
        return F.cross_entropy(out, y, reduction=reduction)
    return F.mse_loss(out.reshape(y.shape), y, reduction=reduction)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // min(batch_size, n))


def epochs_for_steps(n: int, batch_size: int, steps: int) -> int:
    """The number of epochs that makes at least ``steps`` optimiser steps."""
    return max(1, -(-steps // steps_per_epoch(n, batch_size)))


def _lr_factor(step: int, total: int, config: TrainConfig) -> float:
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def as_targets(y) -> torch.Tensor:
    """Integer targets (class labels) as long, anything else as float32."""
    y = np.asarray(y)
    return torch.as_tensor(y, dtype=torch.long if np.issubdtype(y.dtype, np.integer) else torch.float32)


def train(
    spec,
    X,
    y,
    task: str = "classification",
    config: TrainConfig = TrainConfig(),
    init_seed: int = 0,
    data_seed: int = 0,
    init_params: dict | None = None,
    init_scheme=None,
    objective=None,
    extra_params=(),
    optimizer: str = "adamw",
    momentum: float = 0.9,
    on_step=None,
    progress: bool = False,
    desc: str = "train",
    device: str = "cpu",
) -> TrainResult:
    """Train the free parameters of ``spec`` on (X, y).

    objective: ``f(out, y_batch, params) -> Tensor`` (a mean loss per example); default: cross-entropy
    or squared error by ``task``. extra_params: more tensors to optimise (e.g. a log noise scale).
    optimizer: "adamw" or "sgd" (with ``momentum``); weight decay applies to the free parameters only.
    on_step: ``f(step, params: dict[str, Tensor])`` called after every optimiser step.
    init_scheme: overrides the spec's init scheme ("kaiming_normal", "torch_default" or a callable).
    Returns final and initial parameters (numpy) and the per-epoch mean training loss.
    """
    from .nets.torch import TorchNet
    from .progress import progress_bar

    if task not in TASKS:
        raise ValueError(f"task={task!r} is not valid; accepted: {', '.join(TASKS)}")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer={optimizer!r} is not valid; accepted: 'adamw', 'sgd'")
    init = init_params if init_params is not None else spec.init(init_seed, scheme=init_scheme)
    module = TorchNet(spec, params=init, dtype=torch.float32).to(device)
    X_t = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=device)
    y_t = as_targets(y).to(device)
    n = len(X_t)
    batch = min(config.batch_size, n)
    per_epoch = steps_per_epoch(n, batch)
    total = config.epochs * per_epoch
    groups = [{"params": list(module.parameters()), "weight_decay": config.weight_decay}]
    if extra_params:
        groups.append({"params": list(extra_params), "weight_decay": 0.0})
    opt: torch.optim.Optimizer
    if optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=config.lr)
    else:
        opt = torch.optim.SGD(groups, lr=config.lr, momentum=momentum)
    if objective is None:

        def objective(out, yb, params):
            return data_loss(out, yb, task)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total, config))
    gen = torch.Generator().manual_seed(int(data_seed))
    history = []
    bar = progress_bar(range(config.epochs), desc=desc, enabled=progress)
    for epoch in bar:
        order = torch.randperm(n, generator=gen).to(device)
        losses = []
        for s in range(per_epoch):
            idx = order[s * batch : (s + 1) * batch]
            loss = objective(module(X_t[idx]), y_t[idx], module.params())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at epoch {epoch}, step {s}; try a smaller lr (now {config.lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(epoch * per_epoch + s, module.params())
        history.append({"epoch": epoch, "loss": float(np.mean(losses))})
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
    return TrainResult(module.numpy_params(), {k: np.asarray(v).copy() for k, v in init.items()}, history)


def evaluate(spec, params: dict, X, y, task: str, batch_size: int = 2048) -> dict[str, float]:
    """Mean loss (and accuracy for classification) of one parameter set, in torch."""
    with torch.no_grad():
        p = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in params.items()}
        X_t = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        y_t = as_targets(y)
        total, correct = 0.0, 0
        for i in range(0, len(X_t), batch_size):
            out = spec.apply_torch(p, X_t[i : i + batch_size])
            total += data_loss(out, y_t[i : i + batch_size], task, reduction="sum").item()
            if task == "classification":
                correct += (out.argmax(-1) == y_t[i : i + batch_size]).sum().item()
        result = {"loss": total / len(X_t)}
        if task == "classification":
            result["accuracy"] = correct / len(X_t)
        return result
