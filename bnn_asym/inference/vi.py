"""Variational inference: mean-field Gaussian ("mfvi") and low-rank-plus-diagonal Gaussian ("lowrank_vi").

mfvi and the default lowrank_vi (``per_layer=False``: one low-rank-plus-diagonal Gaussian over all free
parameters) are SVI with a Gaussian family and Adam: plain JAX over NumPyro's log joint (guides.py), or
Pyro's autoguides with ``backend="pyro"``. ``per_layer=True`` is the ELRG family the paper used (Tomczak
et al. 2020, as in the paper's BNN code): a low-rank-plus-diagonal Gaussian per layer, local
reparameterisation, closed-form KL (elrg.py, JAX only).

Full-batch or mini-batch (``batch_size``: the driver picks the rows, the likelihood is scaled to the
full data set). Draws from the fitted family are one pseudo-chain.

State: ``VIState(params, opt_state)`` (ppl_numpyro.py), ``ELRGState`` (elrg.py), or a ``PyroSVIChain``.
StepInfo: grad_evals (the particles of the ELBO estimate), loss (the negative ELBO).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..validate import BOOLEAN, any_number, field, integer, number, one_of, optional
from . import elrg, ppl_for
from .base import APPROXIMATION, Algorithm, Display, Engine, Plan, elbo_postfix, lr_hint
from .optim import SCHEDULES


@dataclass
class VIOptions:
    num_steps: int = field(5000, integer(1), "optimiser (Adam) steps")
    lr: float = field(1e-2, number(0.0), "Adam's (initial) learning rate")
    schedule: str = field("cosine", one_of(*SCHEDULES), "learning-rate schedule: cosine decay to 0, or constant")
    batch_size: int | None = field(None, optional(integer(1)), "rows per step; None: the full data set")
    num_particles: int = field(1, integer(1), "draws per ELBO estimate")
    num_draws: int = field(200, integer(1), "draws from the fitted family")
    init_scale: float = field(0.01, number(0.0), "initial posterior std of every parameter")


@dataclass
class LowRankVIOptions(VIOptions):
    rank: int = field(4, integer(1), "columns of the low-rank factor (per layer with per_layer=True)")
    per_layer: bool = field(
        False, BOOLEAN, "True: the paper's ELRG family (per-layer low rank, local reparameterisation)"
    )
    learn_diag: bool = field(
        True, BOOLEAN, "per_layer only: False fixes the diagonal variance at exp(init_logvar) (the paper)"
    )
    init_logvar: float = field(-10.0, any_number(), "per_layer only: initial (or fixed) log-variance of the diagonal")
    lowrank_noise: str = field(
        "per_example",
        one_of(*elrg.LOWRANK_NOISE),
        "per_layer only: low-rank noise per example (the paper's code) or per batch (faster)",
    )


class MFVI(Engine):
    """Mean-field Gaussian variational inference (JAX over NumPyro's log joint, or Pyro)."""

    name = "mfvi"
    Options = VIOptions
    when_to_use = "fast, scalable baseline; underestimates variance and misses correlations"
    objective = "negative_elbo"
    backends = ("numpyro", "pyro")
    guide = "normal"  # the Gaussian family (ppl_numpyro.svi / ppl_pyro.svi)

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        return Plan(options.num_steps, APPROXIMATION, 1, options.batch_size, num_draws=options.num_draws)

    def display(self, options, n_rows: int) -> Display:
        return Display(elbo_postfix, lr_hint(options.lr))

    def build(self, model, data, options, backend) -> Algorithm:
        return ppl_for(backend).svi(model, self.guide, options, data.n)


class LowRankVI(MFVI):
    """Low-rank-plus-diagonal Gaussian VI: one global Gaussian, or per layer (per_layer=True, the paper's ELRG
    family)."""

    name, Options, guide = "lowrank_vi", LowRankVIOptions, "lowrank"
    when_to_use = "captures correlations MFVI misses; per_layer=True reproduces the paper's BNN runs and scales"

    def facts(self, options, n_rows: int) -> dict:
        if not options.per_layer:
            return super().facts(options, n_rows)
        return {
            "objective": self.objective,
            "family": "elrg_per_layer",
            "rank": options.rank,
            "learn_diag": options.learn_diag,
            "lowrank_noise": options.lowrank_noise,
        }

    def build(self, model, data, options, backend) -> Algorithm:
        if not options.per_layer:
            return super().build(model, data, options, backend)
        if backend != "numpyro":
            raise ValueError("lowrank_vi with per_layer=True runs on the JAX backend only; use backend='numpyro'")
        return elrg.build(model, data.n, options)
