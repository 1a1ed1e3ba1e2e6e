"""NumPyro adapter: the PPL primitives the VI and HMC/NUTS engines need, as pure JAX pieces.

An engine asks the adapter of its ``backend`` for an SVI or an MCMC Algorithm and never branches on the
PPL itself; the Pyro adapter (ppl_pyro.py) offers the same two functions. Here the SVI families are
plain JAX over NumPyro's log joint (guides.py) and the MCMC kernels are NumPyro's; both ``init``s are
pure, so the driver compiles them (a warm compilation cache then starts a run in about a second).

(NumPyro 0.22's own Trace_ELBO sums over a Python ``set`` of site names, whose order -- and with it the
compiled program and its persistent-cache key -- changed with PYTHONHASHSEED in every new process; the
ELBO here sums in a fixed order.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import Algorithm, StepInfo, jax_float_dtype
from .logdensity import jax_log_density

RUNTIME = "jax"


class VIState(NamedTuple):
    params: Any  # the variational family's parameters (guides.py: MeanFieldParams or LowRankParams)
    opt_state: Any  # Adam's state


def svi(model, guide: str, options, n_total: int) -> Algorithm:
    """Stochastic VI with a Gaussian family over the unconstrained position ("normal": mean-field,
    "lowrank": low-rank plus diagonal of ``options.rank``; guides.py) and Adam at ``options.lr``;
    reparameterised ELBO with ``options.num_particles`` draws and analytic entropy. StepInfo: grad_evals
    (the particles), loss (the negative ELBO)."""
    import jax
    import jax.numpy as jnp
    import optax

    from .guides import low_rank, mean_field

    density = jax_log_density(model)
    dtype = jax_float_dtype()
    template = {k: jnp.zeros(s, dtype) for k, s in model.latent_shapes().items()}
    family = mean_field() if guide == "normal" else low_rank(options.rank, template)
    from .optim import learning_rate

    optimizer = optax.adam(learning_rate(options.lr, options.schedule, options.num_steps))
    particles = options.num_particles

    def neg_elbo(params, key, batch):
        def one(k):
            return -density.potential(family.sample(params, k), batch, n_total)

        expected = one(key) if particles == 1 else jnp.mean(jax.vmap(one)(jax.random.split(key, particles)))
        return -(expected + family.entropy(params))

    def init(key, start, batch) -> VIState:
        position = density.unconstrain({k: jnp.asarray(v, dtype) for k, v in start.items()})
        params = family.init(key, position, options.init_scale)
        return VIState(params, optimizer.init(params))

    def step(key, state: VIState, batch):
        loss, grads = jax.value_and_grad(neg_elbo)(state.params, key, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return VIState(optax.apply_updates(state.params, updates), opt_state), StepInfo(particles, loss=loss)

    def draws(state: VIState, rng, num):
        return density.constrain_host(family.draws(state.params, rng, num))

    return Algorithm(init, step, draws=draws, runtime=RUNTIME)


def mcmc(model, kernel: str, options, n_total: int) -> Algorithm:
    """NUTS ("nuts") or HMC with ``options.num_leapfrog`` steps ("hmc"); step size and mass matrix adapted
    during ``options.num_warmup`` steps (NumPyro's windowed adaptation, inside ``step``). After warmup each
    HMC transition uses the adapted step size times ``1 +- options.step_size_jitter`` (uniform): a
    fixed-length trajectory can otherwise resonate with the posterior's scales and stop mixing. The state
    is NumPyro's ``HMCState``. StepInfo: grad_evals (leapfrog steps), potential, diverging, accept_prob,
    step_size, energy, and (NUTS) tree_depth."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import HMC, NUTS

    model_fn = model.numpyro_model()
    density = jax_log_density(model)
    num_warmup = options.num_warmup
    jitter = getattr(options, "step_size_jitter", 0.0)
    # NUTS builds its trajectory up to a tree depth; HMC takes a fixed number of leapfrog steps
    length = (
        dict(max_tree_depth=options.max_tree_depth)
        if kernel == "nuts"
        else dict(num_steps=options.num_leapfrog, trajectory_length=None)
    )
    k = (NUTS if kernel == "nuts" else HMC)(
        model_fn, target_accept_prob=options.target_accept, dense_mass=options.dense_mass, **length
    )
    # a tree of depth d has 2^d - 1 leapfrog steps at most: the depth is the bit length of the step count
    depth_bits = 2 ** jnp.arange(options.max_tree_depth + 1)

    def init(key, start, batch):
        z = density.unconstrain({n: jnp.asarray(v, jax_float_dtype()) for n, v in start.items()})
        return k.init(key, num_warmup, init_params=z, model_args=(batch[0], batch[1], n_total, batch[2]))

    def step(key, state, batch):
        base = state.adapt_state.step_size
        if jitter:
            sampling = state.i >= num_warmup
            u = 1 + jitter * (2 * jax.random.uniform(key, (), base.dtype) - 1)
            state = state._replace(
                adapt_state=state.adapt_state._replace(step_size=jnp.where(sampling, base * u, base))
            )
        state = k.sample(state, (batch[0], batch[1], n_total, batch[2]), {})
        if jitter:
            used = state.adapt_state.step_size
            state = state._replace(adapt_state=state.adapt_state._replace(step_size=jnp.where(sampling, base, used)))
        depth = jnp.sum(state.num_steps >= depth_bits) if kernel == "nuts" else None
        return state, StepInfo(
            state.num_steps,
            potential=state.potential_energy,
            diverging=state.diverging,
            accept_prob=state.accept_prob,
            step_size=state.adapt_state.step_size,
            energy=state.energy,
            tree_depth=depth,
        )

    def position(state):
        return density.constrain(state.z)

    return Algorithm(init, step, position=position, runtime=RUNTIME)
