"""One forward pass, written once, run by both backends.

``run`` walks the layer graph and calls a small table of array operations (``ops``); jax.py and
torch.py each provide that table. Writing the network once is what makes the two backends compute the
same function: a parity test then only has to check the handful of primitive operations.
"""

from __future__ import annotations

import numpy as np

from .constants import gather_index, read_only
from .graph import Act, AvgPool2, Conv, Dense, Flatten, GlobalAvgPool, Norm, Residual, walk


def prepared_constants(spec) -> dict[str, np.ndarray]:
    """The constants a forward pass reads: fixed values, gather indices, FiGLU matrices (read-only numpy)."""
    consts = spec.constants()
    out = {}
    for node in walk(spec.graph()):
        if isinstance(node, (Dense, Conv)) and node.n_fix > 0:
            out[f"{node.name}.gather"] = gather_index(consts[f"{node.name}.fixed_index"], node.fan_in)
            out[f"{node.name}.fixed_value"] = consts[f"{node.name}.fixed_value"]
        elif isinstance(node, Act) and node.kind == "figlu":
            out[f"{node.name}.figlu"] = consts[f"{node.name}.figlu"]
    return read_only(out)


def effective_weight(node, params, consts, ops):
    """The full weight ``M * W + (1 - M) * F`` of a Dense/Conv node, in its natural shape."""
    w = params[f"{node.name}.weight"]
    if node.n_fix == 0:
        return w
    fixed = ops.cast_like(consts[f"{node.name}.fixed_value"], w)
    full = ops.take_last(ops.concat_last(w, fixed), consts[f"{node.name}.gather"])
    return ops.reshape(full, node.weight_shape)


def _norm(node: Norm, h, params, ops):
    n = h.shape[0]
    grouped = ops.reshape(h, (n, node.groups, -1))
    mean = ops.mean_last(grouped)
    centered = grouped - mean
    var = ops.mean_last(centered * centered)
    normed = ops.reshape(centered * ops.rsqrt(var + node.eps), h.shape)
    bshape = (1, node.features) + (1,) * (h.ndim - 2)
    return normed * ops.reshape(params[f"{node.name}.scale"], bshape) + ops.reshape(
        params[f"{node.name}.shift"], bshape
    )


def run(nodes, params, consts, h, ops):
    for node in nodes:
        if isinstance(node, Dense):
            h = ops.linear(h, effective_weight(node, params, consts, ops), params.get(f"{node.name}.bias"))
        elif isinstance(node, Conv):
            w = effective_weight(node, params, consts, ops)
            h = ops.conv2d(h, w, params.get(f"{node.name}.bias"), node.stride, node.padding)
        elif isinstance(node, Norm):
            h = _norm(node, h, params, ops)
        elif isinstance(node, Act):
            if node.kind == "relu":
                h = ops.relu(h)
            else:
                f = ops.cast_like(consts[f"{node.name}.figlu"], h)
                h = ops.sigmoid(ops.channel_mix(h, f)) * h
        elif isinstance(node, AvgPool2):
            n, c, hh, ww = h.shape
            h = h[:, :, : hh // 2 * 2, : ww // 2 * 2]
            h = ops.mean_axes(ops.reshape(h, (n, c, hh // 2, 2, ww // 2, 2)), (3, 5))
        elif isinstance(node, GlobalAvgPool):
            h = ops.mean_axes(h, (2, 3))
        elif isinstance(node, Flatten):
            h = ops.reshape(h, (h.shape[0], -1))
        elif isinstance(node, Residual):
            skip = run(node.shortcut, params, consts, h, ops) if node.shortcut else h
            h = run(node.main, params, consts, h, ops) + skip
        else:  # pragma: no cover - the graph only holds the node types above
            raise TypeError(f"unknown graph node {node!r}")
    return h


def forward(spec, params, consts, x, ops):
    """Network output for a batch ``x`` of shape (N, *input_shape) or flat (N, prod(input_shape))."""
    h = ops.reshape(x, (x.shape[0],) + tuple(spec.input_shape))
    return run(spec.graph(), params, consts, h, ops)
