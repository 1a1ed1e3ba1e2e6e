"""Variational inference: mean-field Gaussian ("mfvi") and low-rank-plus-diagonal Gaussian ("lowrank_vi").

mfvi and the default lowrank_vi (``per_layer=False``: one ``AutoLowRankMultivariateNormal`` over all free
parameters) are NumPyro (or Pyro, ``backend="pyro"``) SVI with an autoguide and Adam. ``per_layer=True``
is the ELRG family the paper used (Tomczak et al. 2020, as in the paper's BNN code): a low-rank-plus-
diagonal Gaussian per layer, local reparameterisation, closed-form KL (elrg.py, JAX only).

Full-batch or mini-batch (``batch_size``: the driver picks the rows, the likelihood is scaled to the
full data set). Draws from the fitted guide are one pseudo-chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import (APPROXIMATION, Algorithm, Engine, check_choice, check_optional_int, check_positive_float,
                   check_positive_int)


@dataclass
class VIOptions:
    num_steps: int = 2000
    lr: float = 1e-2
    batch_size: int | None = None  # None: full batch
    num_particles: int = 1
    num_draws: int = 200
    init_scale: float = 0.01  # initial posterior std of every parameter (autoguides)

    def __post_init__(self):
        owner = "vi"
        for name in ("num_steps", "num_particles", "num_draws"):
            check_positive_int(owner, name, getattr(self, name))
        check_optional_int(owner, "batch_size", self.batch_size)
        check_positive_float(owner, "lr", self.lr)
        check_positive_float(owner, "init_scale", self.init_scale)


@dataclass
class LowRankVIOptions(VIOptions):
    rank: int = 4
    per_layer: bool = False  # True: the paper's ELRG family (per-layer low rank, local reparameterisation)
    learn_diag: bool = True  # per_layer only: False fixes the diagonal variance at exp(init_logvar) (the paper)
    init_logvar: float = -10.0  # per_layer only: initial (or fixed) log-variance of the diagonal part
    lowrank_noise: str = "per_example"  # per_layer only: "per_example" (the paper's code) or "per_batch" (faster)

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("lowrank_vi", "rank", self.rank)
        check_choice("lowrank_vi", "lowrank_noise", self.lowrank_noise, ("per_example", "per_batch"))
        for name in ("per_layer", "learn_diag"):
            check_choice("lowrank_vi", name, getattr(self, name), (True, False))
        if not isinstance(self.init_logvar, (int, float)) or isinstance(self.init_logvar, bool):
            raise ValueError(f"lowrank_vi option init_logvar={self.init_logvar!r} is not valid; accepted: a number")


def _nan_hint(lr: float) -> str:
    return f"try a smaller learning rate (lr={lr:g} now, e.g. lr={lr / 10:g})"


def _elbo_postfix(info) -> dict:
    return {"elbo": f"{-float(info['loss'].mean()):.4g}"}


class MFVI(Engine):
    name = "mfvi"
    Options = VIOptions
    description = "mean-field Gaussian variational inference (NumPyro SVI + AutoNormal, or Pyro)"
    when_to_use = "fast, scalable baseline; underestimates variance and misses correlations"
    backends = ("numpyro", "pyro")
    uses_minibatches = True
    guide = "normal"

    def build(self, model, data, options, backend) -> Algorithm:
        from . import ppl_for

        ppl = ppl_for(backend)
        parts = ppl.svi(model, self.guide, options.init_scale, options.lr, options.num_particles,
                        getattr(options, "rank", None))
        n = data.n
        particles = options.num_particles

        def init(key, start, batch):
            return parts.init(key, start, batch, n)

        def step(state, batch, key):
            state, loss = parts.update(state, batch, n, key)
            return state, {"loss": loss, "grad_evals": particles}

        return Algorithm(init, step, options.num_steps, APPROXIMATION, draws=parts.sample, num_draws=options.num_draws,
                         batch_size=options.batch_size, postfix=_elbo_postfix, nan_hint=_nan_hint(options.lr),
                         runtime=ppl.RUNTIME, extra={"objective": "negative_elbo"})


class LowRankVI(MFVI):
    name = "lowrank_vi"
    Options = LowRankVIOptions
    description = ("low-rank-plus-diagonal Gaussian VI: one global AutoLowRankMultivariateNormal, or per layer "
                   "(per_layer=True, the paper's ELRG family)")
    when_to_use = "captures correlations MFVI misses; per_layer=True reproduces the paper's BNN runs and scales"
    guide = "lowrank"

    def build(self, model, data, options, backend) -> Algorithm:
        if not options.per_layer:
            return super().build(model, data, options, backend)
        if backend != "numpyro":
            raise ValueError("lowrank_vi with per_layer=True runs on the JAX backend only; use backend='numpyro'")
        from .elrg import build_elrg

        return build_elrg(model, data, options)
