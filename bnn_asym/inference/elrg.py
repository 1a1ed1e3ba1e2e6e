"""Per-layer low-rank-plus-diagonal Gaussian VI (ELRG, Tomczak et al. 2020), the family the paper's BNN
experiments used -- ``lowrank_vi(per_layer=True)``.

Each Dense/Conv layer's free parameters (free weight entries and bias) get ``N(m, diag(s) + a V^T V)`` with
``V`` of ``rank`` rows and ``a = 1 / rank``; norm scales and shifts get a diagonal Gaussian; a learned
noise std a log-normal. Fixed W-Asym entries are constants: no mean, no variance, no low-rank entry.

The forward pass is the network's own (nets/forward.py) run over an ops table whose weights are Gaussian:
``linear`` returns ``x m^T + sqrt(x^2 s^T) e + sqrt(a) sum_r e_r (x V_r^T)`` with fresh noise per example
(local reparameterisation for the diagonal part, per-example low-rank noise, as in the paper's code), so
one pass over a mini-batch costs 2 + rank matrix products per layer and no weight sample is materialised.
The KL divergence to the model's Gaussian prior is exact (matrix determinant lemma, a rank x rank
log-determinant per layer).

Settings of the paper's runs (bnn/train_sparse_MLP.py of its code): rank 4, ``learn_diag=False`` with
log-variance -10, Adam lr 5e-4, batch 250, prior precision 0.01 scaled by the layer width; low-rank
factors start at ``0.5 * std(W) / sqrt(rank) * N(0, 1)`` (bias rows ``0.01 * N(0, 1)``), which is what
``init`` does here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .base import APPROXIMATION, Algorithm


class GaussW(NamedTuple):
    """A Gaussian weight in its natural shape: mean, diagonal variance, low-rank rows (rank, *shape)."""

    mean: object
    var: object
    V: object


class ELRGOps:
    """The ops table of nets/forward.py with Gaussian weights; every linear/conv draws fresh noise."""

    def __init__(self, key, alpha: float):
        import jax
        import jax.numpy as jnp
        from ..nets.jax import JaxOps

        self.jax, self.jnp, self.base = jax, jnp, JaxOps
        self.key = key
        self.count = 0
        self.alpha = alpha
        for name in ("relu", "sigmoid", "rsqrt", "mean_last", "mean_axes", "channel_mix"):
            setattr(self, name, getattr(JaxOps, name))

    def _noise(self, shape, dtype):
        self.count += 1
        return self.jax.random.normal(self.jax.random.fold_in(self.key, self.count), shape, dtype)

    def reshape(self, a, shape):
        if isinstance(a, GaussW):
            return GaussW(a.mean.reshape(shape), a.var.reshape(shape), a.V.reshape((a.V.shape[0],) + tuple(shape)))
        return self.jnp.reshape(a, shape)

    def cast_like(self, c, like):
        return self.jnp.asarray(c, dtype=(like.mean if isinstance(like, GaussW) else like).dtype)

    def concat_last(self, a, b):  # free entries (Gaussian) then fixed values (constants)
        jnp = self.jnp
        zeros_v = jnp.zeros((a.V.shape[0],) + b.shape, b.dtype)
        return GaussW(jnp.concatenate([a.mean, b], -1), jnp.concatenate([a.var, jnp.zeros_like(b)], -1),
                      jnp.concatenate([a.V, zeros_v], -1))

    def take_last(self, a, idx):
        jnp = self.jnp
        idx = jnp.asarray(idx)
        return GaussW(jnp.take_along_axis(a.mean, idx, -1), jnp.take_along_axis(a.var, idx, -1),
                      jnp.take_along_axis(a.V, jnp.broadcast_to(idx, a.V.shape), -1))

    def _combine(self, mean, var, lowrank):
        """mean + sqrt(var) e + sqrt(alpha) sum_r e_r lowrank_r, noise per example; lowrank: (rank, N, ...)."""
        jnp = self.jnp
        out = mean + jnp.sqrt(jnp.maximum(var, 1e-16)) * self._noise(mean.shape, mean.dtype)
        e = self._noise((lowrank.shape[0], mean.shape[0]) + (1,) * (mean.ndim - 1), mean.dtype)
        return out + math.sqrt(self.alpha) * jnp.sum(e * lowrank, axis=0)

    def linear(self, h, w: GaussW, b: GaussW | None):
        jnp = self.jnp
        mean = h @ w.mean.T
        var = (h * h) @ w.var.T
        lowrank = jnp.einsum("ni,roi->rno", h, w.V)
        if b is not None:
            mean, var, lowrank = mean + b.mean, var + b.var, lowrank + b.V[:, None, :]
        return self._combine(mean, var, lowrank)

    def conv2d(self, h, w: GaussW, b: GaussW | None, stride, padding):
        jnp = self.jnp
        conv = self.base.conv2d
        rank, c_out = w.V.shape[0], w.V.shape[1]
        mean = conv(h, w.mean, None, stride, padding)
        var = conv(h * h, w.var, None, stride, padding)
        lowrank = conv(h, w.V.reshape((rank * c_out,) + w.V.shape[2:]), None, stride, padding)
        lowrank = jnp.moveaxis(lowrank.reshape((h.shape[0], rank, c_out) + lowrank.shape[2:]), 1, 0)
        if b is not None:
            mean = mean + b.mean[None, :, None, None]
            var = var + b.var[None, :, None, None]
            lowrank = lowrank + b.V[:, None, :, None, None]
        return self._combine(mean, var, lowrank)


def _groups(model):
    """Layer groups: (Dense/Conv layer name, [its parameter names]) and the norm parameter names."""
    from ..nets.graph import Conv, Dense, walk

    layout = model.net.layout
    weighted = [n.name for n in walk(model.net.graph()) if isinstance(n, (Dense, Conv))]
    groups = [(name, [p.name for p in layout if p.layer == name]) for name in weighted]
    in_groups = {p for _, names in groups for p in names}
    others = [p.name for p in layout if p.name not in in_groups]
    return groups, others


def build_elrg(model, data, options) -> Algorithm:
    import jax
    import jax.numpy as jnp
    import optax

    from ..models.likelihoods import jax_backend
    from ..nets.forward import forward, prepared_constants
    from .logdensity import jax_log_density

    net, lik = model.net, model.likelihood
    backend = jax_backend()
    density = jax_log_density(model)
    groups, norm_names = _groups(model)
    rank, alpha = options.rank, 1.0 / options.rank
    prior = model.prior_loc_scale()
    consts = prepared_constants(net)
    latent_names = list(lik.latent_sites())
    fixed_logvar = float(options.init_logvar)
    n_total = data.n
    optimizer = optax.adam(options.lr)
    lowrank_names = [p for _, names in groups for p in names]

    def logvar(q, name):
        return q["logvar"][name] if options.learn_diag else jnp.full(q["mean"][name].shape, fixed_logvar,
                                                                      q["mean"][name].dtype)

    def init(key, start, batch):
        from .optim import unconstrained_start

        start = unconstrained_start(density, start)
        dtype = start[net.layout.infos[0].name].dtype
        mean = {p.name: start[p.name] for p in net.layout}
        V = {}
        for i, (layer, names) in enumerate(groups):
            wkey = jax.random.fold_in(key, i)
            for j, name in enumerate(names):
                info = net.layout[name]
                z = jax.random.normal(jax.random.fold_in(wkey, j), (rank,) + info.shape, dtype)
                scale = 0.5 * jnp.std(mean[name]) / math.sqrt(rank) if info.role == "weight" else 0.01
                V[name] = scale * z
        q = {"mean": mean, "V": V,
             "latent": {k: {"loc": start[k], "log_scale": jnp.asarray(math.log(options.init_scale), dtype)}
                        for k in latent_names}}
        if options.learn_diag:
            q["logvar"] = {p.name: jnp.full(p.shape, fixed_logvar, dtype) for p in net.layout}
        return q, optimizer.init(q)

    def kl(q):
        total = 0.0
        for layer, names in groups:
            m = jnp.concatenate([q["mean"][n].ravel() for n in names])
            s = jnp.concatenate([jnp.exp(logvar(q, n)).ravel() for n in names])
            V = jnp.concatenate([q["V"][n].reshape(rank, -1) for n in names], axis=1)
            p_loc = jnp.concatenate([jnp.full(net.layout[n].size, prior[n][0], m.dtype) for n in names])
            p_var = jnp.concatenate([jnp.full(net.layout[n].size, prior[n][1] ** 2, m.dtype) for n in names])
            small = jnp.eye(rank, dtype=m.dtype) + alpha * (V / s) @ V.T
            total = total + 0.5 * (jnp.sum(s / p_var) + alpha * jnp.sum(V * V / p_var)
                                   + jnp.sum((m - p_loc) ** 2 / p_var) - m.size + jnp.sum(jnp.log(p_var))
                                   - jnp.sum(jnp.log(s)) - jnp.linalg.slogdet(small)[1])
        for n in norm_names:
            m, lv = q["mean"][n], logvar(q, n)
            loc, std = prior[n]
            total = total + 0.5 * jnp.sum((jnp.exp(lv) + (m - loc) ** 2) / std ** 2 - 1 - lv + 2 * math.log(std))
        return total

    def latent_sample(q, key):
        """Latents (constrained) and their MC KL term log q(u) - log p(sigma) - log|d sigma / d u|."""
        values, kl_mc = {}, 0.0
        for i, name in enumerate(latent_names):
            loc, log_scale = q["latent"][name]["loc"], q["latent"][name]["log_scale"]
            u = loc + jnp.exp(log_scale) * jax.random.normal(jax.random.fold_in(key, i), jnp.shape(loc), loc.dtype)
            value = density.constrain({name: u})[name]
            log_q = -0.5 * ((u - loc) / jnp.exp(log_scale)) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)
            log_p = lik.latent_prior(backend, name).log_prob(value) + jnp.log(jnp.abs(
                jax.grad(lambda t: density.constrain({name: t})[name])(u)))
            values[name] = value
            kl_mc = kl_mc + log_q - log_p
        return values, kl_mc

    def neg_elbo(q, batch, key):
        X, y, w = batch
        k_net, k_norm, k_lat = jax.random.split(key, 3)
        params = {}
        for n in lowrank_names:
            params[n] = GaussW(q["mean"][n], jnp.exp(logvar(q, n)), q["V"][n])
        for i, n in enumerate(norm_names):  # one reparameterised sample per batch
            z = jax.random.normal(jax.random.fold_in(k_norm, i), q["mean"][n].shape, q["mean"][n].dtype)
            params[n] = q["mean"][n] + jnp.exp(0.5 * logvar(q, n)) * z
        latents, kl_latent = latent_sample(q, k_lat)
        out = forward(net, params, consts, X.astype(q["mean"][lowrank_names[0]].dtype), ELRGOps(k_net, alpha))
        loglik = (lik.distribution(backend, out, latents).log_prob(y) * w).sum() * (n_total / X.shape[0])
        return -(loglik - kl(q) - kl_latent)

    def step(state, batch, key):
        q, opt_state = state
        loss, grads = jax.value_and_grad(lambda q: neg_elbo(q, batch, key) / n_total)(q)
        updates, opt_state = optimizer.update(grads, opt_state, q)
        return (optax.apply_updates(q, updates), opt_state), {"loss": loss * n_total, "grad_evals": 1}

    def draws(state, rng, num):
        """On the host: ``num`` draws of every parameter from the fitted family (numpy)."""
        q, _ = state

        def host_logvar(n):
            return q["logvar"][n] if options.learn_diag else np.full(q["mean"][n].shape, fixed_logvar)

        out = {}
        for layer, names in groups:
            z2 = rng.standard_normal((num, rank))  # shared by the layer's weight and bias: one joint Gaussian
            for n in names:
                m = q["mean"][n]
                z1 = rng.standard_normal((num,) + m.shape)
                out[n] = (m + np.exp(0.5 * host_logvar(n)) * z1 + math.sqrt(alpha) * np.tensordot(z2, q["V"][n], axes=1))
        for n in norm_names:
            out[n] = q["mean"][n] + np.exp(0.5 * host_logvar(n)) * rng.standard_normal((num,) + q["mean"][n].shape)
        for name in latent_names:
            loc, log_scale = q["latent"][name]["loc"], q["latent"][name]["log_scale"]
            out[name] = loc + np.exp(log_scale) * rng.standard_normal(num)
        dtype = q["mean"][groups[0][1][0]].dtype
        return density.constrain_host({k: v.astype(dtype) for k, v in out.items()})

    return Algorithm(init, step, options.num_steps, APPROXIMATION, draws=draws, num_draws=options.num_draws,
                     batch_size=options.batch_size,
                     postfix=lambda info: {"elbo": f"{-float(info['loss'].mean()):.4g}"},
                     nan_hint=f"try a smaller learning rate (lr={options.lr:g} now, e.g. lr={options.lr / 10:g})",
                     extra={"objective": "negative_elbo", "family": "elrg_per_layer", "rank": rank,
                            "learn_diag": options.learn_diag})
