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
        # On the CPU, XLA's convolution inside a loop -- where every engine's steps and every zoo epoch run -- was
        # 7-25x slower than the same convolution as one matrix product over image patches (benchmarks/conv_cpu.py);
        # other platforms keep XLA's (cuDNN's) convolution. Both are exact up to float rounding.
        out = jax.lax.platform_dependent(
            h,
            w,
            cpu=lambda h, w: _conv2d_as_matmul(h, w, stride, padding),
            default=lambda h, w: _conv2d_xla(h, w, stride, padding),
        )
        return out if b is None else out + b[None, :, None, None]

    @staticmethod
    def channel_mix(h, f):
        if h.ndim == 2:
            return h @ f.T
        return jnp.einsum("dc,nchw->ndhw", f, h)


def _conv2d_xla(h, w, stride: int, padding: int):
    return jax.lax.conv_general_dilated(
        h,
        w,
        (stride, stride),
        [(padding, padding), (padding, padding)],
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        precision=jax.lax.Precision.HIGHEST,
    )


def _conv2d_as_matmul(h, w, stride: int, padding: int):
    """NCHW / OIHW convolution (cross-correlation, as torch's) as a product of the (rows x positions, C x kH x kW)
    patch matrix with the flattened kernels (im2col): slices and one matmul, no convolution op."""
    n, c, height, width = h.shape
    o, _, kh, kw = w.shape
    padded = jnp.pad(h, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
    shifted = [
        padded[:, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.stack(shifted, axis=-1).transpose(0, 2, 3, 1, 4).reshape(n * ho * wo, c * kh * kw)
    out = patches @ w.reshape(o, c * kh * kw).T
    return out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)


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
