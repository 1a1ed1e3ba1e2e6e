"""JAX backend: ``apply(spec, params, x)`` is pure, jit-able and vmap-able over parameter samples.

>>> import jax, bnn_asym
>>> net = bnn_asym.MLP(3, (8,), 2, symmetry="sigma_asym")
>>> stacked = {k: np.stack([v, v]) for k, v in net.init(0).items()}     # two parameter samples
>>> jax.vmap(lambda p: apply(net, p, np.ones((5, 3), np.float32)))(stacked).shape
(2, 5, 2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .forward import forward, prepared_constants


class JaxOps:
    reshape = staticmethod(jnp.reshape)
    relu = staticmethod(jax.nn.relu)
    sigmoid = staticmethod(jax.nn.sigmoid)
    rsqrt = staticmethod(jax.lax.rsqrt)

    @staticmethod
    def cast_like(c, like):
        return jnp.asarray(c, dtype=like.dtype)

    @staticmethod
    def concat_last(a, b):
        return jnp.concatenate([a, b], axis=-1)

    @staticmethod
    def take_last(a, idx):
        return jnp.take_along_axis(a, jnp.asarray(idx), axis=-1)

    @staticmethod
    def mean_last(a):
        return jnp.mean(a, axis=-1, keepdims=True)

    @staticmethod
    def mean_axes(a, axes):
        return jnp.mean(a, axis=axes)

    @staticmethod
    def linear(h, w, b):
        out = h @ w.T
        return out if b is None else out + b

    @staticmethod
    def conv2d(h, w, b, stride, padding):
        out = jax.lax.conv_general_dilated(
            h,
            w,
            (stride, stride),
            [(padding, padding), (padding, padding)],
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return out if b is None else out + b[None, :, None, None]

    @staticmethod
    def channel_mix(h, f):
        if h.ndim == 2:
            return h @ f.T
        return jnp.einsum("dc,nchw->ndhw", f, h)


def _constants(spec) -> dict[str, np.ndarray]:
    cached = spec.__dict__.get("_jax_constants")
    if cached is None:
        cached = prepared_constants(spec)
        object.__setattr__(spec, "_jax_constants", cached)
    return cached


def apply(spec, params: dict, x):
    """Network output (logits, or regression outputs) for inputs ``x``: (N, *input_shape) or (N, D)."""
    x = jnp.asarray(x)
    first = next(iter(params.values()))
    if x.dtype != jnp.asarray(first).dtype:
        x = x.astype(jnp.asarray(first).dtype)
    return forward(spec, params, _constants(spec), x, JaxOps)
