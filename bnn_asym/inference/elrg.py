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
``init_params`` does here.

The pieces, each a pure function of the variational parameters and an ``ELRGSetup`` (what they need to
know of the model): ``init_params``, ``gaussian_weights``, ``kl_divergence``, ``sample_latents``,
``sampled_outputs`` (the forward pass with sampled weights), ``neg_elbo``, ``step`` and ``draws``;
``build`` binds them into an Algorithm. State: ``ELRGState(q, opt_state)``. StepInfo: grad_evals (1),
loss (the negative ELBO).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from .base import Algorithm, StepInfo

LOWRANK_NOISE = ("per_example", "per_batch")


class GaussW(NamedTuple):
    """A Gaussian weight in its natural (full) shape: mean, diagonal variance, low-rank rows (rank, *shape),
    and the key of its layer's noise (a weight's; a bias shares its weight's draw, so its key is None).

    ``var`` is an array, or for a fixed diagonal a FixedVar that the ops evaluate without a matrix product."""

    mean: Any
    var: Any
    V: Any
    key: Any = None


class FixedVar(NamedTuple):
    """The same variance ``value`` on every free entry; ``mask``: a W-Asym weight's 0/1 mask of free
    entries (fixed ones carry no variance), None when every entry is free."""

    value: float
    mask: Any


class LatentGaussian(NamedTuple):
    """A Gaussian over a likelihood latent in unconstrained space (a noise std's log)."""

    loc: Any
    log_scale: Any


class ELRGParams(NamedTuple):
    """The variational parameters, all in full weight shapes."""

    mean: dict  # name -> mean (a W-Asym weight's fixed entries: 0, the fixed values are added in the forward pass)
    V: dict  # Dense/Conv parameter name -> (rank, *shape) low-rank rows
    latent: dict  # latent name -> LatentGaussian
    logvar: dict | None  # name -> log-variance of the diagonal; None when it is fixed (learn_diag=False)


class ELRGState(NamedTuple):
    q: ELRGParams
    opt_state: Any  # Adam's state


@dataclasses.dataclass
class Layer:
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

    def masked(self, name: str, x):
        """``x`` with the fixed entries zeroed when ``name`` is this layer's (W-Asym) weight."""
        return x if self.mask is None or name != self.weight else x * self.mask.astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class ELRGSetup:
    """What the pure pieces need to know of the model and the options (nothing here changes in a run)."""

    layers: tuple  # Layer per Dense/Conv node
    norm_names: tuple  # parameters outside Dense/Conv layers (norm scales and shifts): diagonal Gaussians
    latent_names: tuple  # likelihood latents (a learned noise std)
    graph: tuple  # the layer graph with every weight taken in full shape
    consts: dict  # the forward pass's constants (FiGLU matrices)
    input_shape: tuple
    full_shape: dict  # name -> full shape of its variational parameters
    sizes: dict  # name -> free entries (the layout's size)
    prior: dict  # name -> (loc, std) of its Gaussian prior
    rank: int
    per_example: bool  # low-rank noise per example (else per batch)
    learn_diag: bool
    fixed_logvar: float  # the diagonal's log-variance when fixed; its start when learned
    init_scale: float  # initial std of a latent's Gaussian
    n_total: int  # training rows (the likelihood of a batch is scaled to them)
    density: Any  # the model's LogDensity (constraining latents)
    likelihood: Any

    @property
    def alpha(self) -> float:
        return 1.0 / self.rank


class ELRGOps:
    """The ops table of nets/forward.py with Gaussian weights: every linear/conv draws fresh noise from its
    weight's key (split into the low-rank and the diagonal part's)."""

    def __init__(self, alpha: float, per_example: bool):
        import jax
        import jax.numpy as jnp

        from ..nets.jax import JaxOps

        self.jax, self.jnp, self.base = jax, jnp, JaxOps
        self.alpha = alpha
        self.per_example = per_example
        for name in ("relu", "sigmoid", "rsqrt", "mean_last", "mean_axes", "channel_mix", "reshape", "cast_like"):
            setattr(self, name, getattr(JaxOps, name))

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
        jnp, normal = self.jnp, self.jax.random.normal
        k_lowrank, k_diag = self.jax.random.split(w.key)
        var = self._dense_var(h, w, b)
        if self.per_example:
            mean = h @ w.mean.T
            lowrank = jnp.einsum("ni,roi->rno", h, w.V)
            if b is not None:
                mean, lowrank = mean + b.mean, lowrank + b.V[:, None, :]
            e = normal(k_lowrank, (lowrank.shape[0], h.shape[0], 1), h.dtype)
            mean = mean + math.sqrt(self.alpha) * jnp.sum(e * lowrank, axis=0)
        else:  # one low-rank draw for the whole batch, folded into the weight: one matrix product
            e = normal(k_lowrank, (w.V.shape[0],), h.dtype)
            weight = w.mean + math.sqrt(self.alpha) * jnp.tensordot(e, w.V, axes=1)
            mean = h @ weight.T
            if b is not None:
                mean = mean + b.mean + math.sqrt(self.alpha) * e @ b.V
        return mean + jnp.sqrt(jnp.maximum(var, 1e-16)) * normal(k_diag, mean.shape, mean.dtype)

    def conv2d(self, h, w: GaussW, b: GaussW | None, stride, padding):
        jnp, normal = self.jnp, self.jax.random.normal
        k_lowrank, k_diag = self.jax.random.split(w.key)
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
            e = normal(k_lowrank, (rank, h.shape[0], 1, 1, 1), h.dtype)
            mean = mean + math.sqrt(self.alpha) * jnp.sum(e * lowrank, axis=0)
        else:
            e = normal(k_lowrank, (rank,), h.dtype)
            mean = conv(h, w.mean + math.sqrt(self.alpha) * jnp.tensordot(e, w.V, axes=1), None, stride, padding)
            if b is not None:
                mean = mean + (b.mean + math.sqrt(self.alpha) * e @ b.V)[None, :, None, None]
        return mean + jnp.sqrt(jnp.maximum(var, 1e-16)) * normal(k_diag, mean.shape, mean.dtype)

    def _conv_mask(self, w: GaussW):
        return self.jnp.ones(w.mean.shape, w.mean.dtype) if w.var.mask is None else w.var.mask


# ----- the model as ELRG sees it ------------------------------------------------------------------------------
def _layer(node, net, consts) -> Layer:
    from ..nets.constants import free_index

    names = [p.name for p in net.layout if p.layer == node.name]
    if node.n_fix == 0:
        return Layer(node.name, names, f"{node.name}.weight", node.weight_shape, None, None, None, None)
    f_idx = consts[f"{node.name}.fixed_index"]
    mask_flat = np.ones((node.d_out, node.fan_in))
    fixed_flat = np.zeros((node.d_out, node.fan_in))
    np.put_along_axis(mask_flat, f_idx, 0.0, axis=1)
    np.put_along_axis(fixed_flat, f_idx, consts[f"{node.name}.fixed_value"], axis=1)
    return Layer(
        node.name,
        names,
        f"{node.name}.weight",
        node.weight_shape,
        mask_flat.reshape(node.weight_shape),
        fixed_flat.reshape(node.weight_shape),
        f_idx,
        free_index(f_idx, node.fan_in),
    )


def _full_graph(nodes):
    """The layer graph with every weight taken as given (n_fix = 0): ELRG passes full-shape weights."""
    from ..nets.graph import Conv, Dense, Residual

    out = []
    for node in nodes:
        if isinstance(node, (Dense, Conv)):
            node = dataclasses.replace(node, n_fix=0)
        elif isinstance(node, Residual):
            node = dataclasses.replace(
                node, main=tuple(_full_graph(node.main)), shortcut=tuple(_full_graph(node.shortcut))
            )
        out.append(node)
    return tuple(out)


def setup(model, options, n_total: int) -> ELRGSetup:
    """The static facts the pieces need, from a BayesianModel and lowrank_vi options."""
    from ..nets.forward import prepared_constants
    from ..nets.graph import Conv, Dense, walk
    from .logdensity import jax_log_density

    net = model.net
    consts = net.constants()
    layers = tuple(_layer(node, net, consts) for node in walk(net.graph()) if isinstance(node, (Dense, Conv)))
    in_layers = {n for layer in layers for n in layer.names}
    full_shape = {p.name: p.shape for p in net.layout}
    full_shape.update({layer.weight: layer.shape for layer in layers})
    return ELRGSetup(
        layers,
        tuple(p.name for p in net.layout if p.name not in in_layers),
        tuple(model.likelihood.latent_sites()),
        _full_graph(net.graph()),
        prepared_constants(net),
        tuple(net.input_shape),
        full_shape,
        {p.name: p.size for p in net.layout},
        model.prior_loc_scale(),
        options.rank,
        options.lowrank_noise == "per_example",
        options.learn_diag,
        float(options.init_logvar),
        options.init_scale,
        n_total,
        jax_log_density(model),
        model.likelihood,
    )


# ----- the pieces -----------------------------------------------------------------------------------------------
def init_params(key, start: dict, s: ELRGSetup) -> ELRGParams:
    """Means at ``start`` (unconstrained), low-rank rows at ``0.5 * std(W) / sqrt(rank) * N(0, 1)`` (bias rows
    ``0.01 * N(0, 1)``), the diagonal's log-variance at ``fixed_logvar``, latents' std at ``init_scale``."""
    import jax
    import jax.numpy as jnp

    dtype = start[s.layers[0].weight].dtype
    mean = {n: start[n] for n in s.sizes}
    V = {}
    for i, layer in enumerate(s.layers):
        mean[layer.weight] = _to_full(layer, start[layer.weight])
        for j, name in enumerate(layer.names):
            z = jax.random.normal(
                jax.random.fold_in(jax.random.fold_in(key, i), j), (s.rank,) + s.full_shape[name], dtype
            )
            scale = 0.5 * jnp.std(start[name]) / math.sqrt(s.rank) if name == layer.weight else 0.01
            V[name] = layer.masked(name, scale * z)
    latent = {k: LatentGaussian(start[k], jnp.asarray(math.log(s.init_scale), dtype)) for k in s.latent_names}
    logvar = {n: jnp.full(s.full_shape[n], s.fixed_logvar, dtype) for n in s.full_shape} if s.learn_diag else None
    return ELRGParams(mean, V, latent, logvar)


def _to_full(layer: Layer, free):
    """Free entries (rows, free) -> the full weight with zeros at fixed entries."""
    import jax.numpy as jnp

    if layer.mask is None:
        return free
    rows = layer.shape[0]
    flat = jnp.zeros((rows, int(np.prod(layer.shape[1:]))), free.dtype)
    flat = flat.at[np.arange(rows)[:, None], layer.free_index].set(free)
    return flat.reshape(layer.shape)


def _logvar(q: ELRGParams, name: str, s: ELRGSetup):
    """The diagonal's log-variance of ``name`` as an array (JAX)."""
    import jax.numpy as jnp

    if q.logvar is not None:
        return q.logvar[name]
    return jnp.full(q.mean[name].shape, s.fixed_logvar, q.mean[name].dtype)


def gaussian_weights(q: ELRGParams, s: ELRGSetup, key) -> dict:
    """Every Dense/Conv parameter as a GaussW (a W-Asym weight's mean holds its fixed values); layer i's
    noise comes from the i-th key split from ``key``."""
    import jax
    import jax.numpy as jnp

    out = {}
    for layer, layer_key in zip(s.layers, jax.random.split(key, len(s.layers))):
        for name in layer.names:
            mean = q.mean[name]
            is_masked_weight = layer.mask is not None and name == layer.weight
            if is_masked_weight:
                mean = mean * layer.mask.astype(mean.dtype) + layer.fixed.astype(mean.dtype)
            if q.logvar is not None:  # a learned diagonal
                var = layer.masked(name, jnp.exp(q.logvar[name]))
            else:
                var = FixedVar(math.exp(s.fixed_logvar), layer.mask.astype(mean.dtype) if is_masked_weight else None)
            out[name] = GaussW(mean, var, layer.masked(name, q.V[name]), layer_key if name == layer.weight else None)
    return out


def kl_divergence(q: ELRGParams, s: ELRGSetup):
    """KL(q || prior) of the network parameters, exact: per Dense/Conv layer the KL of
    ``N(m, diag(s) + a V^T V)`` (over its free entries) to ``N(loc, std^2)`` by the matrix determinant lemma;
    per norm parameter a diagonal Gaussian's."""
    import jax.numpy as jnp

    total: Any = 0.0
    for layer in s.layers:
        mask = {
            n: (1.0 if layer.mask is None or n != layer.weight else layer.mask.astype(q.mean[n].dtype))
            for n in layer.names
        }
        lv = {n: _logvar(q, n, s) for n in layer.names}
        V = {n: layer.masked(n, q.V[n]) for n in layer.names}
        std = {n: s.prior[n][1] for n in layer.names}
        trace_s = sum(jnp.sum(mask[n] * jnp.exp(lv[n])) / std[n] ** 2 for n in layer.names)
        trace_v = sum(jnp.sum(V[n] * V[n]) / std[n] ** 2 for n in layer.names)
        mahalanobis = sum(jnp.sum(mask[n] * (q.mean[n] - s.prior[n][0]) ** 2) / std[n] ** 2 for n in layer.names)
        log_det_prior = sum(2 * math.log(std[n]) * s.sizes[n] for n in layer.names)
        log_det_diag = sum(jnp.sum(mask[n] * lv[n]) for n in layer.names)
        flat_V = jnp.concatenate([V[n].reshape(s.rank, -1) for n in layer.names], axis=1)
        flat_s = jnp.concatenate([jnp.exp(lv[n]).reshape(-1) for n in layer.names])
        small = jnp.eye(s.rank, dtype=flat_V.dtype) + s.alpha * (flat_V / flat_s) @ flat_V.T
        free = sum(s.sizes[n] for n in layer.names)
        total = total + 0.5 * (
            trace_s
            + s.alpha * trace_v
            + mahalanobis
            - free
            + log_det_prior
            - log_det_diag
            - jnp.linalg.slogdet(small)[1]
        )
    for n in s.norm_names:
        m, lv = q.mean[n], _logvar(q, n, s)
        loc, std = s.prior[n]
        total = total + 0.5 * jnp.sum((jnp.exp(lv) + (m - loc) ** 2) / std**2 - 1 - lv + 2 * math.log(std))
    return total


def sample_latents(q: ELRGParams, key, s: ELRGSetup):
    """Latents (constrained) drawn from q and their Monte Carlo KL term log q(u) - log p(sigma) - log|d sigma/du|."""
    import jax
    import jax.numpy as jnp

    from ..models.likelihoods import jax_backend

    values: dict = {}
    kl_mc: Any = 0.0
    for i, name in enumerate(s.latent_names):
        loc, log_scale = q.latent[name]
        u = loc + jnp.exp(log_scale) * jax.random.normal(jax.random.fold_in(key, i), jnp.shape(loc), loc.dtype)
        value = s.density.constrain({name: u})[name]
        log_q = -0.5 * ((u - loc) / jnp.exp(log_scale)) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)
        jacobian = jax.grad(lambda t, name=name: s.density.constrain({name: t})[name])(u)
        log_p = s.likelihood.latent_prior(jax_backend(), name).log_prob(value) + jnp.log(jnp.abs(jacobian))
        values[name] = value
        kl_mc = kl_mc + log_q - log_p
    return values, kl_mc


def sampled_outputs(q: ELRGParams, X, weight_key, norm_key, s: ELRGSetup):
    """Network outputs for rows X with weights drawn from q: Dense/Conv layers by local reparameterisation
    (noise from ``weight_key``), norm parameters once per batch (from ``norm_key``)."""
    import jax
    import jax.numpy as jnp

    from ..nets.forward import run

    params = gaussian_weights(q, s, weight_key)
    for i, n in enumerate(s.norm_names):
        z = jax.random.normal(jax.random.fold_in(norm_key, i), q.mean[n].shape, q.mean[n].dtype)
        lv = q.logvar[n] if q.logvar is not None else s.fixed_logvar
        params[n] = q.mean[n] + jnp.exp(0.5 * lv) * z
    dtype = q.mean[s.layers[0].weight].dtype
    h = X.astype(dtype).reshape((X.shape[0],) + s.input_shape)
    return run(s.graph, params, s.consts, h, ELRGOps(s.alpha, s.per_example))


def neg_elbo(q: ELRGParams, batch, key, s: ELRGSetup):
    """One-sample estimate of the negative ELBO: -(N / batch rows) sum_i w_i log p(y_i | x_i, theta) + KL."""
    import jax

    from ..models.likelihoods import jax_backend

    X, y, w = batch
    k_net, k_norm, k_lat = jax.random.split(key, 3)
    latents, kl_latent = sample_latents(q, k_lat, s)
    out = sampled_outputs(q, X, k_net, k_norm, s)
    loglik = (s.likelihood.distribution(jax_backend(), out, latents).log_prob(y) * w).sum() * (s.n_total / X.shape[0])
    return -(loglik - kl_divergence(q, s) - kl_latent)


def step(key, state: ELRGState, batch, s: ELRGSetup, optimizer):
    """One Adam step on the negative ELBO per training row."""
    import jax
    import optax

    loss, grads = jax.value_and_grad(lambda q: neg_elbo(q, batch, key, s) / s.n_total)(state.q)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.q)
    return ELRGState(optax.apply_updates(state.q, updates), opt_state), StepInfo(1, loss=loss * s.n_total)


def draws(state: ELRGState, rng, num: int, s: ELRGSetup) -> dict:
    """On the host: ``num`` draws of every free parameter from q (numpy), in the free-parameter layout."""
    q = state.q

    def logvar(n):
        return q.logvar[n] if q.logvar is not None else np.full(q.mean[n].shape, s.fixed_logvar)

    out = {}
    for layer in s.layers:
        z2 = rng.standard_normal((num, s.rank))  # shared by the layer's weight and bias: one joint Gaussian
        for n in layer.names:
            m = q.mean[n]
            full = (
                m
                + np.exp(0.5 * logvar(n)) * rng.standard_normal((num,) + m.shape)
                + math.sqrt(s.alpha) * np.tensordot(z2, q.V[n], axes=1)
            )
            if layer.mask is not None and n == layer.weight:  # back to the free entries of each row
                full = np.take_along_axis(full.reshape(num, layer.shape[0], -1), layer.free_index[None], axis=2)
            out[n] = full
    for n in s.norm_names:
        out[n] = q.mean[n] + np.exp(0.5 * logvar(n)) * rng.standard_normal((num,) + q.mean[n].shape)
    for name in s.latent_names:
        loc, log_scale = q.latent[name]
        out[name] = loc + np.exp(log_scale) * rng.standard_normal(num)
    dtype = q.mean[s.layers[0].weight].dtype
    return s.density.constrain_host({k: np.asarray(v).astype(dtype) for k, v in out.items()})


def build(model, n_total: int, options) -> Algorithm:
    import optax

    from .optim import unconstrained_start

    s = setup(model, options, n_total)
    from .optim import learning_rate

    optimizer = optax.adam(learning_rate(options.lr, options.schedule, options.num_steps))

    def init(key, start, batch) -> ELRGState:
        q = init_params(key, unconstrained_start(s.density, start), s)
        return ELRGState(q, optimizer.init(q))

    return Algorithm(
        init,
        lambda key, state, batch: step(key, state, batch, s, optimizer),
        draws=lambda state, rng, num: draws(state, rng, num, s),
    )
