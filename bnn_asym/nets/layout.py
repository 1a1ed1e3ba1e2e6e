"""The free-parameter layout: named arrays holding only trainable entries.

A W-Asym layer's free weight is stored as a (rows, fan_in - fixed_per_row) array -- its fixed
entries are constants and never appear here, so priors, posteriors, R-hat and SWAG never see them.
``pack``/``unpack`` map the named arrays to one flat vector (in layout order) and back; both work on
numpy, JAX and torch arrays and accept leading batch axes (e.g. (chain, draw, ...)).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from .constants import STREAM_INIT, STREAM_INIT_BIAS, node_rng
from .graph import Conv, Dense, Norm, walk


@dataclass(frozen=True)
class ParamInfo:
    name: str  # "<layer>.<role>"
    shape: tuple[int, ...]
    role: str  # "weight" | "bias" | "scale" | "shift"
    layer: str
    fan_in: int  # full fan-in of the layer (fixed positions included); 1 for norm parameters

    @property
    def size(self) -> int:
        return prod(self.shape)


class Layout:
    """Ordered ParamInfo records; ``layout["fc0.weight"]`` looks one up by name."""

    def __init__(self, infos: list[ParamInfo], nodes=()):
        self.infos = tuple(infos)
        self._by_name = {p.name: p for p in self.infos}
        self._nodes = {n.name: n for n in walk(nodes) if hasattr(n, "name")}
        offsets, o = {}, 0
        for p in self.infos:
            offsets[p.name] = (o, o + p.size)
            o += p.size
        self.offsets = offsets
        self.size = o

    @classmethod
    def from_graph(cls, nodes) -> Layout:
        infos = []
        for node in walk(nodes):
            if isinstance(node, (Dense, Conv)):
                # a W-Asym weight keeps its free entries: (rows, fan-in minus the fixed ones)
                wshape = (node.d_out, node.fan_in - node.fixed_per_row) if node.n_fix > 0 else node.weight_shape
                infos.append(ParamInfo(f"{node.name}.weight", wshape, "weight", node.name, node.fan_in))
                if node.bias:
                    infos.append(ParamInfo(f"{node.name}.bias", (node.d_out,), "bias", node.name, node.fan_in))
            elif isinstance(node, Norm):
                infos.append(ParamInfo(f"{node.name}.scale", (node.features,), "scale", node.name, 1))
                infos.append(ParamInfo(f"{node.name}.shift", (node.features,), "shift", node.name, 1))
        return cls(infos, nodes)

    def __getitem__(self, name: str) -> ParamInfo:
        return self._by_name[name]

    def __iter__(self):
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.infos]

    def node(self, layer: str):
        return self._nodes[layer]

    def init(self, seed: int = 0, dtype="float32", scheme="kaiming_normal") -> dict[str, np.ndarray]:
        """Initial free parameters; norm scales start at 1 and shifts at 0 under every scheme.

        scheme "kaiming_normal": weights N(0, 2 / full fan-in), zero biases. "torch_default": PyTorch's
        nn.Linear / nn.Conv2d default, uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
        A callable ``f(param: ParamInfo, rng: numpy Generator) -> array of param.shape`` initialises
        weights and biases. The fan-in is the layer's full fan-in (fixed W-Asym entries included).
        Seeded by ``(seed, node index, stream)`` so the init of a layer never depends on the others.
        """
        out = {}
        for p in self.infos:
            if p.role == "scale":
                out[p.name] = np.ones(p.shape, dtype)
                continue
            if p.role == "shift":
                out[p.name] = np.zeros(p.shape, dtype)
                continue
            rng = node_rng(seed, self._nodes[p.layer].index, STREAM_INIT if p.role == "weight" else STREAM_INIT_BIAS)
            if callable(scheme):
                value = np.asarray(scheme(p, rng))
                if value.shape != p.shape:
                    raise ValueError(
                        f"init scheme {scheme!r} returned shape {value.shape} for {p.name!r}; expected {p.shape}"
                    )
            elif scheme == "torch_default":
                bound = 1.0 / np.sqrt(p.fan_in)
                value = rng.uniform(-bound, bound, p.shape)
            elif p.role == "weight":
                value = rng.standard_normal(p.shape) * np.sqrt(2.0 / p.fan_in)
            else:
                value = np.zeros(p.shape)
            out[p.name] = value.astype(dtype)
        return out

    def check(self, params: dict) -> None:
        """Raise a ValueError naming any missing, unexpected or mis-shaped parameter."""
        missing = [n for n in self._by_name if n not in params]
        extra = [n for n in params if n not in self._by_name]
        if missing or extra:
            raise ValueError(f"parameters do not match the layout: missing {missing}, unexpected {extra}")
        for p in self.infos:
            shape = tuple(params[p.name].shape)
            if shape[len(shape) - len(p.shape) :] != p.shape:
                raise ValueError(
                    f"parameter {p.name!r} has shape {shape}; expected (..., {', '.join(map(str, p.shape))})"
                )

    def pack(self, params: dict):
        """Concatenate the named arrays (any leading batch axes) into (..., size)."""
        first = params[self.infos[0].name]
        batch = tuple(first.shape[: first.ndim - len(self.infos[0].shape)])
        flats = [params[p.name].reshape(batch + (p.size,)) for p in self.infos]
        if isinstance(first, np.ndarray):
            return np.concatenate(flats, axis=-1)
        mod = type(first).__module__
        if mod.startswith("torch"):
            import torch

            return torch.cat(flats, dim=-1)
        import jax.numpy as jnp

        return jnp.concatenate(flats, axis=-1)

    def unpack(self, flat) -> dict:
        """Inverse of pack: (..., size) -> named arrays with the same leading axes."""
        if flat.shape[-1] != self.size:
            raise ValueError(f"flat vector has {flat.shape[-1]} entries; this layout has {self.size}")
        batch = tuple(flat.shape[:-1])
        return {
            p.name: flat[..., a:b].reshape(batch + p.shape)
            for p, (a, b) in ((p, self.offsets[p.name]) for p in self.infos)
        }
