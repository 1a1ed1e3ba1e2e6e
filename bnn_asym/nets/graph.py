"""The layer graph every network spec compiles to.

A spec (MLP, CNN, ResNet) is a user-facing description; ``spec.graph()`` turns it into a flat tuple of
the node types below. The JAX and torch backends, the parameter layout, the constants and the
permutation specs all walk this one graph, which is what keeps the two backends identical.

Weight-bearing nodes (Dense, Conv) and FiGLU activations carry an ``index``: the integer that, with the
spec's seed, keys every random constant of that node (see constants.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dense:
    name: str
    d_in: int
    d_out: int
    n_fix: int  # fixed entries per output row; 0 = standard layer
    kappa: float
    index: int
    bias: bool = True

    @property
    def fan_in(self) -> int:
        return self.d_in

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.d_out, self.d_in)

    @property
    def fixed_per_row(self) -> int:
        return self.n_fix


@dataclass(frozen=True)
class Conv:
    name: str
    c_in: int
    c_out: int
    kernel: int
    stride: int
    padding: int
    n_fix: int  # fixed entries (mask_kind="entry") or whole k x k filters ("filter") per output channel
    kappa: float
    mask_kind: str
    index: int
    bias: bool = True

    @property
    def fan_in(self) -> int:
        return self.c_in * self.kernel * self.kernel

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.c_out, self.c_in, self.kernel, self.kernel)

    @property
    def d_out(self) -> int:
        return self.c_out

    @property
    def fixed_per_row(self) -> int:
        block = self.kernel * self.kernel if self.mask_kind == "filter" else 1
        return self.n_fix * block


@dataclass(frozen=True)
class Norm:
    """Normalisation with a learned per-feature scale and shift.

    kind="layer" normalises over all features of a sample (for conv maps: C, H, W together);
    kind="group" normalises over ``groups`` channel groups (GroupNorm). Both are permutation-equivariant
    over features within a group, so they never add or remove a permutation symmetry.
    """

    name: str
    kind: str
    features: int
    groups: int = 1
    eps: float = 1e-5


@dataclass(frozen=True)
class Act:
    """ReLU, or FiGLU ``sigmoid(F x) * x`` with a fixed random F (sigma-Asym)."""

    name: str
    kind: str  # "relu" | "figlu"
    features: int
    index: int = -1
    scale: float = 1.0
    fan_scaled: bool = True  # FiGLU matrix std: scale / sqrt(features) if True, else scale (the paper's code)


@dataclass(frozen=True)
class AvgPool2:
    """2 x 2 average pooling (odd trailing rows/columns are dropped)."""


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""


@dataclass(frozen=True)
class Flatten:
    """(N, C, H, W) -> (N, C * H * W); ``channels`` and ``spatial`` let permutations act on channel blocks."""

    channels: int
    spatial: int


@dataclass(frozen=True)
class Residual:
    """``main(x) + shortcut(x)``; an empty shortcut is the identity."""

    name: str
    main: tuple
    shortcut: tuple = ()


def walk(nodes):
    """Every node in graph order, entering residual blocks (main branch first, then shortcut)."""
    for node in nodes:
        yield node
        if isinstance(node, Residual):
            yield from walk(node.main)
            yield from walk(node.shortcut)


def weight_layers(nodes) -> list:
    """Dense and Conv nodes in graph order."""
    return [n for n in walk(nodes) if isinstance(n, (Dense, Conv))]
