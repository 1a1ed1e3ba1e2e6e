"""Per-layer low-rank-plus-diagonal Gaussian VI (ELRG, Tomczak et al. 2020), the family the paper's BNN
experiments used -- ``lowrank_vi(per_layer=True)``.

Each Dense/Conv layer's free parameters (free weight entries and bias) get ``N(m, diag(s) + a V^T V)`` with
``V`` of ``rank`` rows and ``a = 1 / rank``; norm scales and shifts get a diagonal Gaussian; a learned
noise std a log-normal. Fixed W-Asym entries are constants: no mean, no variance, no low-rank entry.

The forward pass is the network's own (nets/forward.py) run over an ops table whose weights are Gaussian:
``linear`` returns ``x m^T + sqrt(x^2 s^T) e + sqrt(a) sum_r e_r (x V_r^T)`` -- local reparameterisation
for the diagonal part and, by default, fresh low-rank noise per example (``lowrank_noise="per_example"``,
as in the paper's code: 1 + rank matrix products per layer) or one low-rank draw per mini-batch
(``"per_batch"``: folded into the mean's product, so a step costs about one network pass; an unbiased
but noisier ELBO gradient). With a fixed diagonal (``learn_diag=False``, the paper's setting) the
variance term needs no matrix product at all. The KL divergence to the model's Gaussian prior is exact
(matrix determinant lemma, a rank x rank log-determinant per layer).

Speed: the variational parameters of a W-Asym layer are kept in the weight's full shape, with the fixed
entries masked out (their mean holds the fixed value, their variance and low-rank rows are zero and
receive no gradient), so a step multiplies by masks instead of gathering free entries into weights --
the gather of a rank-4 factor per layer and its scatter in the backward pass cost more than the matrix
products. Draws are read back into the free-parameter layout.

Settings of the paper's runs (bnn/train_sparse_MLP.py of its code): rank 4, ``learn_diag=False`` with
log-variance -10, Adam lr 5e-4, batch 250, prior precision 0.01 scaled by the layer width; low-rank
factors start at ``0.5 * std(W) / sqrt(rank) * N(0, 1)`` (bias rows ``0.01 * N(0, 1)``), which is what
``init`` does here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .base import APPROXIMATION, Algorithm

LOWRANK_NOISE = ("per_example", "per_batch")


class GaussW(NamedTuple):
    """A Gaussian weight in its natural (full) shape: mean, diagonal variance, low-rank rows (rank, *shape).

    ``var`` is an array, or for a fixed diagonal a FixedVar that the ops evaluate without a matrix product."""

    mean: object
    var: object
    V: object


class FixedVar(NamedTuple):
    """The same variance ``value`` on every free entry; ``mask``: a W-Asym weight's 0/1 mask of free
    entries (fixed ones carry no variance), None when every entry is free."""

    value: float
    mask: object


class ELRGOps:
    """The ops table of nets/forward.py with Gaussian weights; every linear/conv draws fresh noise."""

    def __init__(self, key, alpha: float, per_example: bool):
        import jax
        import jax.numpy as jnp

        from ..nets.jax import JaxOps

        self.jax, self.jnp, self.base = jax, jnp, JaxOps
        self.key = key
        self.count = 0
        self.alpha = alpha
        self.per_example = per_example
        for name in ("relu", "sigmoid", "rsqrt", "mean_last", "mean_axes", "channel_mix", "reshape", "cast_like"):
            setattr(self, name, getattr(JaxOps, name))

    def _noise(self, shape, dtype):
        self.count += 1
        return self.jax.random.normal(self.jax.random.fold_in(self.key, self.count), shape, dtype)

    def _dense_var(self, h, w: GaussW, b: GaussW | None):
        jnp = self.jnp
        h2 = h * h
        if not isinstance(w.var, FixedVar):
            var = h2 @ w.var.T
        elif w.var.mask is not None:  # a product with the 0/1 mask: gathering the fixed inputs instead is
            var = w.var.value * (h2 @ w.var.mask.T)  # 5x slower on a CPU (its gradient is a scatter)
        else:  # every input free: the same variance on each, so a row sum
            var = w.var.value * jnp.broadcast_to(jnp.sum(h2, axis=-1, keepdims=True), (h.shape[0], w.mean.shape[0]))
        if b is not None:
            var = var + (b.var.value if isinstance(b.var, FixedVar) else b.var)
        return var

    def linear(self, h, w: GaussW, b: GaussW | None):
        jnp = self.jnp
        var = self._dense_var(h, w, b)
        if self.per_example:
            mean = h @ w.mean.T
            lowrank = jnp.einsum("ni,roi->rno", h, w.V)
            if b is not None:
                mean, lowrank = mean + b.mean, lowrank + b.V[:, None, :]
            e = self._noise((lowrank.shape[0], h.shape[0], 1), h.dtype)
            mean = mean + math.sqrt(self.alpha) * jnp.sum(e * lowrank, axis=0)
        else:  # one low-rank draw for the whole batch, folded into the weight: one matrix product
            e = self._noise((w.V.shape[0],), h.dtype)
            weight = w.mean + math.sqrt(self.alpha) * jnp.tensordot(e, w.V, axes=1)
            mean = h @ weight.T
            if b is not None:
                mean = mean + b.mean + math.sqrt(self.alpha) * e @ b.V
        return mean + jnp.sqrt(jnp.maximum(var, 1e-16)) * self._noise(mean.shape, mean.dtype)

    def conv2d(self, h, w: GaussW, b: GaussW | None, stride, padding):
        jnp = self.jnp
        conv = self.base.conv2d
        rank, c_out = w.V.shape[0], w.V.shape[1]
        var_w = w.var if not isinstance(w.var, FixedVar) else w.var.value * self._conv_mask(w)
        var = conv(h * h, var_w, None, stride, padding)
        if b is not None:
            var = var + (b.var.value if isinstance(b.var, FixedVar) else b.var[None, :, None, None])
        if self.per_example:
            mean = conv(h, w.mean, None, stride, padding)
            lowrank = conv(h, w.V.reshape((rank * c_out,) + w.V.shape[2:]), None, stride, padding)
            lowrank = jnp.moveaxis(lowrank.reshape((h.shape[0], rank, c_out) + lowrank.shape[2:]), 1, 0)
            if b is not None:
                mean = mean + b.mean[None, :, None, None]
                lowrank = lowrank + b.V[:, None, :, None, None]
            e = self._noise((rank, h.shape[0], 1, 1, 1), h.dtype)
            mean = mean + math.sqrt(self.alpha) * jnp.sum(e * lowrank, axis=0)
        else:
            e = self._noise((rank,), h.dtype)
            mean = conv(h, w.mean + math.sqrt(self.alpha) * jnp.tensordot(e, w.V, axes=1), None, stride, padding)
            if b is not None:
                mean = mean + (b.mean + math.sqrt(self.alpha) * e @ b.V)[None, :, None, None]
        return mean + jnp.sqrt(jnp.maximum(var, 1e-16)) * self._noise(mean.shape, mean.dtype)

    def _conv_mask(self, w: GaussW):
        return self.jnp.ones(w.mean.shape, w.mean.dtype) if w.var.mask is None else w.var.mask


@dataclasses.dataclass
class _Layer:
    """A Dense/Conv layer as ELRG holds it: parameter names, the mask and fixed values of a W-Asym weight
    (full shape), and where its free entries sit (for reading draws back into the layout)."""

    name: str
    names: list
    weight: str
    shape: tuple
    mask: np.ndarray | None  # 1 at free entries, 0 at fixed ones; None: all free
    fixed: np.ndarray | None  # fixed values at fixed entries, 0 elsewhere
    fixed_index: np.ndarray | None  # (rows, k) in the flattened row
    free_index: np.ndarray | None  # (rows, free) in the flattened row


def _layers(model) -> tuple[list[_Layer], list[str]]:
    from ..nets.constants import free_index
    from ..nets.graph import Conv, Dense, walk

    net = model.net
    consts = net.constants()
    layers = []
    for node in walk(net.graph()):
        if not isinstance(node, (Dense, Conv)):
            continue
        names = [p.name for p in net.layout if p.layer == node.name]
        mask = fixed = f_idx = fr_idx = None
        if node.n_fix > 0:
            f_idx = consts[f"{node.name}.fixed_index"]
            values = consts[f"{node.name}.fixed_value"]
            rows = node.d_out
            mask_flat = np.ones((rows, node.fan_in))
            fixed_flat = np.zeros((rows, node.fan_in))
            np.put_along_axis(mask_flat, f_idx, 0.0, axis=1)
            np.put_along_axis(fixed_flat, f_idx, values, axis=1)
            mask, fixed = mask_flat.reshape(node.weight_shape), fixed_flat.reshape(node.weight_shape)
            fr_idx = free_index(f_idx, node.fan_in)
        layers.append(_Layer(node.name, names, f"{node.name}.weight", node.weight_shape, mask, fixed, f_idx, fr_idx))
    in_layers = {n for layer in layers for n in layer.names}
    return layers, [p.name for p in net.layout if p.name not in in_layers]


def _full_graph(nodes):
    """The layer graph with every weight taken as given (n_fix = 0): ELRG passes full-shape weights."""
    from ..nets.graph import Conv, Dense, Residual

    out = []
    for node in nodes:
        if isinstance(node, (Dense, Conv)):
            node = dataclasses.replace(node, n_fix=0)
        elif isinstance(node, Residual):
            node = dataclasses.replace(node, main=tuple(_full_graph(node.main)),
                                       shortcut=tuple(_full_graph(node.shortcut)))
        out.append(node)
    return tuple(out)


def build_elrg(model, data, options) -> Algorithm:
    import jax
    import jax.numpy as jnp
    import optax

    from ..models.likelihoods import jax_backend
    from ..nets.forward import prepared_constants, run
    from .logdensity import jax_log_density
    from .optim import unconstrained_start

    net, lik = model.net, model.likelihood
    backend = jax_backend()
    density = jax_log_density(model)
    layers, norm_names = _layers(model)
    graph = _full_graph(net.graph())
    consts = prepared_constants(net)  # FiGLU matrices (weights come in full shape)
    rank, alpha = options.rank, 1.0 / options.rank
    prior = model.prior_loc_scale()
    latent_names = list(lik.latent_sites())
    fixed_logvar = float(options.init_logvar)
    per_example = options.lowrank_noise == "per_example"
    n_total = data.n
    optimizer = optax.adam(options.lr)
    shapes = {p.name: p.shape for p in net.layout}
    full_shape = {**shapes, **{layer.weight: layer.shape for layer in layers}}
    info = {p.name: p for p in net.layout}

    def to_full(layer: _Layer, free):
        """Free entries (rows, free) -> the full weight with zeros at fixed entries."""
        if layer.mask is None:
            return free
        rows = layer.shape[0]
        flat = jnp.zeros((rows, int(np.prod(layer.shape[1:]))), free.dtype)
        flat = flat.at[np.arange(rows)[:, None], layer.free_index].set(free)
        return flat.reshape(layer.shape)

    def init(key, start, batch):
        start = unconstrained_start(density, start)
        dtype = start[net.layout.infos[0].name].dtype
        mean = {n: start[n] for n in shapes}
        V = {}
        for i, layer in enumerate(layers):
            mean[layer.weight] = to_full(layer, start[layer.weight])
            for j, name in enumerate(layer.names):
                z = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, i), j), (rank,) + full_shape[name], dtype)
                scale = 0.5 * jnp.std(start[name]) / math.sqrt(rank) if name == layer.weight else 0.01
                V[name] = scale * z * (1 if layer.mask is None or name != layer.weight else layer.mask.astype(dtype))
        q = {"mean": mean, "V": V,
             "latent": {k: {"loc": start[k], "log_scale": jnp.asarray(math.log(options.init_scale), dtype)}
                        for k in latent_names}}
        if options.learn_diag:
            q["logvar"] = {n: jnp.full(full_shape[n], fixed_logvar, dtype) for n in full_shape}
        return q, optimizer.init(q)

    def masked(layer: _Layer, name: str, x):
        return x if layer.mask is None or name != layer.weight else x * layer.mask.astype(x.dtype)

    def gauss(layer: _Layer, name: str, q) -> GaussW:
        mean = q["mean"][name]
        if layer.mask is not None and name == layer.weight:
            mean = mean * layer.mask.astype(mean.dtype) + layer.fixed.astype(mean.dtype)
        if options.learn_diag:
            var = masked(layer, name, jnp.exp(q["logvar"][name]))
        else:
            mask = layer.mask.astype(mean.dtype) if layer.mask is not None and name == layer.weight else None
            var = FixedVar(math.exp(fixed_logvar), mask)
        return GaussW(mean, var, masked(layer, name, q["V"][name]))

    def free_counts():
        return {layer.name: int(sum(info[n].size for n in layer.names)) for layer in layers}

    counts = free_counts()

    def kl(q):
        total = 0.0
        for layer in layers:
            terms = []
            for n in layer.names:
                m = q["mean"][n]
                lv = q["logvar"][n] if options.learn_diag else jnp.full(m.shape, fixed_logvar, m.dtype)
                mask = 1.0 if layer.mask is None or n != layer.weight else layer.mask.astype(m.dtype)
                V = masked(layer, n, q["V"][n])
                loc, std = prior[n]
                terms.append((mask, m, lv, V, loc, std))
            s_over_p = sum(jnp.sum(mask * jnp.exp(lv)) / std ** 2 for mask, m, lv, V, loc, std in terms)
            v_over_p = sum(jnp.sum(V * V) / std ** 2 for mask, m, lv, V, loc, std in terms)
            m_term = sum(jnp.sum(mask * (m - loc) ** 2) / std ** 2 for mask, m, lv, V, loc, std in terms)
            log_p = sum(2 * math.log(std) * info[n].size for n, (_, _, _, _, _, std) in zip(layer.names, terms))
            log_s = sum(jnp.sum(mask * lv) for mask, m, lv, V, loc, std in terms)
            flat_V = jnp.concatenate([V.reshape(rank, -1) for _, _, _, V, _, _ in terms], axis=1)
            flat_s = jnp.concatenate([jnp.exp(lv).reshape(-1) for _, _, lv, _, _, _ in terms])
            small = jnp.eye(rank, dtype=flat_V.dtype) + alpha * (flat_V / flat_s) @ flat_V.T
            total = total + 0.5 * (s_over_p + alpha * v_over_p + m_term - counts[layer.name] + log_p - log_s
                                   - jnp.linalg.slogdet(small)[1])
        for n in norm_names:
            m = q["mean"][n]
            lv = q["logvar"][n] if options.learn_diag else jnp.full(m.shape, fixed_logvar, m.dtype)
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
        params = {n: gauss(layer, n, q) for layer in layers for n in layer.names}
        for i, n in enumerate(norm_names):  # one reparameterised sample per batch
            lv = q["logvar"][n] if options.learn_diag else fixed_logvar
            z = jax.random.normal(jax.random.fold_in(k_norm, i), q["mean"][n].shape, q["mean"][n].dtype)
            params[n] = q["mean"][n] + jnp.exp(0.5 * lv) * z
        latents, kl_latent = latent_sample(q, k_lat)
        dtype = q["mean"][layers[0].weight].dtype
        h = X.astype(dtype).reshape((X.shape[0],) + tuple(net.input_shape))
        out = run(graph, params, consts, h, ELRGOps(k_net, alpha, per_example))
        loglik = (lik.distribution(backend, out, latents).log_prob(y) * w).sum() * (n_total / X.shape[0])
        return -(loglik - kl(q) - kl_latent)

    def step(state, batch, key):
        q, opt_state = state
        loss, grads = jax.value_and_grad(lambda q: neg_elbo(q, batch, key) / n_total)(q)
        updates, opt_state = optimizer.update(grads, opt_state, q)
        return (optax.apply_updates(q, updates), opt_state), {"loss": loss * n_total, "grad_evals": 1}

    def draws(state, rng, num):
        """On the host: ``num`` draws of every free parameter from the fitted family (numpy)."""
        q, _ = state

        def host_logvar(n):
            return q["logvar"][n] if options.learn_diag else np.full(q["mean"][n].shape, fixed_logvar)

        out = {}
        for layer in layers:
            z2 = rng.standard_normal((num, rank))  # shared by the layer's weight and bias: one joint Gaussian
            for n in layer.names:
                m = q["mean"][n]
                full = (m + np.exp(0.5 * host_logvar(n)) * rng.standard_normal((num,) + m.shape)
                        + math.sqrt(alpha) * np.tensordot(z2, q["V"][n], axes=1))
                if layer.mask is not None and n == layer.weight:  # back to the free entries of each row
                    full = np.take_along_axis(full.reshape(num, layer.shape[0], -1), layer.free_index[None], axis=2)
                out[n] = full
        for n in norm_names:
            out[n] = q["mean"][n] + np.exp(0.5 * host_logvar(n)) * rng.standard_normal((num,) + q["mean"][n].shape)
        for name in latent_names:
            loc, log_scale = q["latent"][name]["loc"], q["latent"][name]["log_scale"]
            out[name] = loc + np.exp(log_scale) * rng.standard_normal(num)
        dtype = q["mean"][layers[0].weight].dtype
        return density.constrain_host({k: np.asarray(v).astype(dtype) for k, v in out.items()})

    return Algorithm(init, step, options.num_steps, APPROXIMATION, draws=draws, num_draws=options.num_draws,
                     batch_size=options.batch_size,
                     postfix=lambda info: {"elbo": f"{-float(info['loss'].mean()):.4g}"},
                     nan_hint=f"try a smaller learning rate (lr={options.lr:g} now, e.g. lr={options.lr / 10:g})",
                     extra={"objective": "negative_elbo", "family": "elrg_per_layer", "rank": rank,
                            "learn_diag": options.learn_diag, "lowrank_noise": options.lowrank_noise})
