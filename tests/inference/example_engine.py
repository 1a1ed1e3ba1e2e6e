"""The unadjusted Langevin algorithm (ULA) as a bnn_asym engine: the worked example of docs/adding-an-engine.md.

Full-batch gradient steps on the log joint plus Gaussian noise, ``x <- x + eps * grad log p(x) + sqrt(2 eps) z``;
biased by its discretisation (no Metropolis correction), so only a small step samples the posterior well.

State: ``ULAState(position)``. StepInfo: grad_evals (1), finite, step_size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from bnn_asym.inference.base import TRAJECTORY, Algorithm, Display, Engine, KeepAfterWarmup, Plan, StepInfo
from bnn_asym.inference.logdensity import jax_log_density
from bnn_asym.inference.optim import unconstrained_start
from bnn_asym.validate import field, integer, number


@dataclass
class ULAOptions:
    num_warmup: int = field(500, integer(0), "burn-in steps per chain, not kept")
    num_samples: int = field(1000, integer(1), "kept steps per chain")
    num_chains: int = field(2, integer(1), "chains")
    step_size: float = field(1e-4, number(0.0), "Langevin step size on the full-data log joint")


class ULAState(NamedTuple):
    position: Any  # named arrays, unconstrained


def init(start: dict, density) -> ULAState:
    return ULAState(unconstrained_start(density, start))


def step(key, state: ULAState, batch, density, n_total: int, step_size: float):
    """One Langevin step on ``batch`` (the full data set: this engine takes no batch_size)."""
    import jax
    import jax.numpy as jnp

    grad = jax.grad(lambda p: -density.potential(p, batch, n_total))(state.position)
    leaves, tree = jax.tree.flatten(state.position)
    keys = jax.random.split(key, len(leaves))
    noise = jax.tree.unflatten(tree, [jax.random.normal(k, jnp.shape(x), x.dtype) for k, x in zip(keys, leaves)])
    new = jax.tree.map(lambda x, g, e: x + step_size * g + jnp.sqrt(2 * step_size) * e, state.position, grad, noise)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(new)]))
    return ULAState(new), StepInfo(1, finite=finite, step_size=jnp.asarray(step_size))


class ULA(Engine):
    """Unadjusted Langevin algorithm on the full data set (the worked example of adding an engine)."""

    name, Options = "ula", ULAOptions
    when_to_use = "a teaching example; biased unless step_size is small"
    kind = TRAJECTORY

    def plan(self, options, n_rows: int, n_params: int | None = None) -> Plan:
        total = options.num_warmup + options.num_samples
        return Plan(total, TRAJECTORY, options.num_chains, keep=KeepAfterWarmup(options.num_warmup))

    def display(self, options, n_rows: int) -> Display:
        def postfix(info: StepInfo) -> dict:  # what the progress bar shows of a chunk's last step (one per chain)
            return {"step size": f"{float(info.step_size.mean()):.1e}"}

        return Display(postfix, f"try a smaller step_size (now {options.step_size:g})")

    def build(self, model, data, options, backend) -> Algorithm:
        density = jax_log_density(model)
        return Algorithm(
            lambda key, start, batch: init(start, density),
            lambda key, state, batch: step(key, state, batch, density, data.n, options.step_size),
            position=lambda state: density.constrain(state.position),
        )
