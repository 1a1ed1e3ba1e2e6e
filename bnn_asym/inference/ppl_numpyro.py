"""NumPyro adapter: the PPL primitives the VI and HMC/NUTS engines need, as pure JAX pieces.

An engine asks the adapter of its ``backend`` for an SVI or an MCMC kernel and never branches on the
PPL itself; the Pyro adapter (ppl_pyro.py) offers the same two functions. Here the SVI families are
plain JAX over NumPyro's log joint (guides.py) and the MCMC kernels are NumPyro's; both ``init``s are
pure, so the driver compiles them (a warm compilation cache then starts a run in about a second).

(NumPyro 0.22's own Trace_ELBO sums over a Python ``set`` of site names, whose order -- and with it the
compiled program and its persistent-cache key -- changed with PYTHONHASHSEED in every new process; the
ELBO here sums in a fixed order.)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .base import jax_float_dtype
from .logdensity import jax_log_density

RUNTIME = "jax"


class SVIParts(NamedTuple):
    init: Callable  # (key, start, batch, n_total) -> state
    update: Callable  # (state, batch, n_total, key) -> (state, loss)
    sample: Callable  # (state on the host, numpy Generator, num) -> named numpy arrays (num, *shape), constrained


class MCMCParts(NamedTuple):
    init: Callable  # (key, start, data, n_total) -> state
    step: Callable  # (state, data, n_total, key) -> (state, info)
    position: Callable  # state -> named arrays, constrained


def svi(model, guide: str, init_scale: float, lr: float, num_particles: int, rank: int | None = None) -> SVIParts:
    """Stochastic VI with a Gaussian family over the unconstrained position ("normal": mean-field,
    "lowrank": low-rank plus diagonal; guides.py) and Adam; reparameterised ELBO with analytic entropy."""
    import jax
    import jax.numpy as jnp
    import optax

    from .guides import low_rank, mean_field

    density = jax_log_density(model)
    dtype = jax_float_dtype()
    template = {k: jnp.zeros(s, dtype) for k, s in model.latent_shapes().items()}
    family = mean_field() if guide == "normal" else low_rank(rank, template)
    optimizer = optax.adam(lr)

    def neg_elbo(params, key, batch, n_total):
        def one(k):
            return -density.potential(family.sample(params, k), batch, n_total)

        expected = one(key) if num_particles == 1 else jnp.mean(jax.vmap(one)(jax.random.split(key, num_particles)))
        return -(expected + family.entropy(params))

    def init(key, start, batch, n_total):
        position = density.unconstrain({k: jnp.asarray(v, dtype) for k, v in start.items()})
        params = family.init(key, position, init_scale)
        return params, optimizer.init(params)

    def update(state, batch, n_total, key):
        params, opt_state = state
        loss, grads = jax.value_and_grad(neg_elbo)(params, key, batch, n_total)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def sample(state, rng, num):
        return density.constrain_host(family.draws(state[0], rng, num))

    return SVIParts(init, update, sample)


def mcmc(model, kernel: str, num_warmup: int, target_accept: float, max_tree_depth: int, dense_mass: bool,
         num_leapfrog: int | None = None, step_size_jitter: float = 0.0) -> MCMCParts:
    """NUTS ("nuts") or HMC with ``num_leapfrog`` steps ("hmc"); step size and mass matrix adapted during
    ``num_warmup`` steps (NumPyro's windowed adaptation, inside ``step``). After warmup each transition may
    use the adapted step size times ``1 +- step_size_jitter`` (uniform): a fixed-length HMC trajectory can
    otherwise resonate with the posterior's scales and stop mixing."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import HMC, NUTS

    model_fn = model.numpyro_model()
    density = jax_log_density(model)
    if kernel == "nuts":
        k = NUTS(model_fn, target_accept_prob=target_accept, max_tree_depth=max_tree_depth, dense_mass=dense_mass)
    else:
        k = HMC(model_fn, target_accept_prob=target_accept, num_steps=num_leapfrog, trajectory_length=None,
                dense_mass=dense_mass)

    def init(key, start, data, n_total):
        dtype = jax_float_dtype()
        z = density.unconstrain({n: jnp.asarray(v, dtype) for n, v in start.items()})
        return k.init(key, num_warmup, init_params=z, model_args=(data[0], data[1], n_total, data[2]))

    def step(state, data, n_total, key):
        base = state.adapt_state.step_size
        if step_size_jitter:
            sampling = state.i >= num_warmup
            u = 1 + step_size_jitter * (2 * jax.random.uniform(key, (), base.dtype) - 1)
            state = state._replace(adapt_state=state.adapt_state._replace(step_size=jnp.where(sampling, base * u, base)))
        state = k.sample(state, (data[0], data[1], n_total, data[2]), {})
        if step_size_jitter:
            used = state.adapt_state.step_size
            state = state._replace(adapt_state=state.adapt_state._replace(step_size=jnp.where(sampling, base, used)))
        info = {"grad_evals": state.num_steps, "diverging": state.diverging, "accept_prob": state.accept_prob,
                "energy": state.energy, "loss": state.potential_energy, "step_size": state.adapt_state.step_size}
        return state, info

    def position(state):
        return density.constrain(state.z)

    return MCMCParts(init, step, position)
