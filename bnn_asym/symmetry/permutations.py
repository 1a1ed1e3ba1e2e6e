"""Hidden-unit permutations and ReLU rescalings of a network's parameters.

Everything here works on *effective* parameters: numpy arrays holding full weights (fixed W-Asym
entries included), keyed like the free parameters (``fc0.weight`` ...). ``to_effective`` and
``to_free`` convert. Transforming a W-Asym network this way moves free and fixed entries alike and
then reads the free entries back -- the fixed entries are constants and stay where they are, which is
exactly why the transformed network computes a different function.

The permutation spec is derived from the layer graph: every Dense/Conv output (but the last) opens a
permutation group; norm parameters and the next layer's input axis follow it; a residual stream
shares one group across all blocks it flows through; after Flatten a group acts on blocks of
``spatial`` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..nets.constants import free_index
from ..nets.forward import prepared_constants
from ..nets.graph import Conv, Dense, Flatten, Norm, Residual

__all__ = ["PermutationSpec", "permutation_spec", "permute", "permute_free", "random_permutations", "rescale_free"]
__all__ += ["to_effective", "to_free"]


def to_effective(spec, params: dict) -> dict[str, np.ndarray]:
    """Free parameters -> parameters with full weights (fixed entries filled in), as float64 numpy: the
    forward pass's ``M * W + (1 - M) * F``, the free entries and the fixed values gathered into place."""
    consts = prepared_constants(spec)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    for layer in spec.weight_layers():
        if layer.n_fix:
            key = f"{layer.name}.weight"
            both = np.concatenate([out[key], consts[f"{layer.name}.fixed_value"].astype(np.float64)], axis=-1)
            out[key] = np.take_along_axis(both, consts[f"{layer.name}.gather"], axis=-1).reshape(layer.weight_shape)
    return out


def to_free(spec, effective: dict) -> dict[str, np.ndarray]:
    """Full weights -> free parameters (the entries at free positions; fixed positions are dropped)."""
    consts = spec.constants()
    out = dict(effective)
    for layer in spec.weight_layers():
        if layer.n_fix == 0:
            continue
        key = f"{layer.name}.weight"
        flat = np.asarray(effective[key]).reshape(layer.d_out, -1)
        out[key] = np.take_along_axis(flat, free_index(consts[f"{layer.name}.fixed_index"], layer.fan_in), axis=1)
    return out


@dataclass
class PermutationSpec:
    """groups: name -> size. axes: parameter -> per axis (group, block) or None.

    ``norm_groups[g] = G`` records a GroupNorm with G groups on group g: only permutations that keep
    every channel inside its norm group are symmetries there.
    """

    groups: dict[str, int] = field(default_factory=dict)
    axes: dict[str, tuple] = field(default_factory=dict)
    norm_groups: dict[str, int] = field(default_factory=dict)

    def params_of(self, group: str) -> list[tuple[str, int, int]]:
        """(parameter, axis, block) for every axis the group acts on."""
        return [(p, ax, a[1]) for p, axes in self.axes.items() for ax, a in enumerate(axes) if a and a[0] == group]


def permutation_spec(spec) -> PermutationSpec:
    """The hidden-unit permutation structure of a spec's layer graph."""
    ps = PermutationSpec()

    def weight_axes(node, g_in, block, g_out):
        rest = (None, None) if isinstance(node, Conv) else ()
        ps.axes[f"{node.name}.weight"] = ((g_out, 1) if g_out else None, (g_in, block) if g_in else None) + rest
        if node.bias:
            ps.axes[f"{node.name}.bias"] = ((g_out, 1) if g_out else None,)

    def walk(nodes, g, block, force_out=None):
        last_weight = max((i for i, n in enumerate(nodes) if isinstance(n, (Dense, Conv))), default=-1)
        for i, node in enumerate(nodes):
            if isinstance(node, (Dense, Conv)):
                if node.name == "out":
                    g_out = None
                elif i == last_weight and force_out is not None:
                    g_out = force_out
                else:
                    g_out = f"P_{node.name}"
                    ps.groups[g_out] = node.d_out
                weight_axes(node, g, block, g_out)
                g, block = g_out, 1
            elif isinstance(node, Norm):
                for role in ("scale", "shift"):
                    ps.axes[f"{node.name}.{role}"] = ((g, 1),)
                if node.groups > 1:
                    ps.norm_groups[g] = node.groups
            elif isinstance(node, Flatten):
                block = node.spatial
            elif isinstance(node, Residual):
                if node.shortcut:
                    g_out, _ = walk(node.shortcut, g, block)
                else:
                    g_out = g
                walk(node.main, g, block, force_out=g_out)
                g = g_out
        return g, block

    walk(spec.graph(), None, 1)
    return ps


def expand_permutation(perm: np.ndarray, block: int) -> np.ndarray:
    """Indices that move blocks of ``block`` consecutive entries as ``perm`` moves units."""
    return (perm[:, None] * block + np.arange(block)[None, :]).ravel()


def permute(spec, effective: dict, perms: dict[str, np.ndarray], pspec: PermutationSpec | None = None) -> dict:
    """Apply permutations (group -> perm array) to effective parameters: unit i of the result is unit
    ``perm[i]`` of the input. Groups left out are not permuted."""
    pspec = pspec or permutation_spec(spec)
    unknown = set(perms) - set(pspec.groups)
    if unknown:
        raise ValueError(f"unknown permutation groups {sorted(unknown)}; accepted: {sorted(pspec.groups)}")
    out = {}
    for name, value in effective.items():
        value = np.asarray(value)
        for axis, a in enumerate(pspec.axes.get(name, ())):
            if a and a[0] in perms:
                value = np.take(value, expand_permutation(np.asarray(perms[a[0]]), a[1]), axis=axis)
        out[name] = value
    return out


def permute_free(spec, params: dict, perms: dict[str, np.ndarray]) -> dict:
    """Permute a network's free parameters: full weights are permuted, then the free entries read back."""
    return to_free(spec, permute(spec, to_effective(spec, params), perms))


def random_permutations(spec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random permutation for every group (within norm groups where GroupNorm requires it)."""
    pspec = permutation_spec(spec)
    out = {}
    for g, size in pspec.groups.items():
        n_blocks = pspec.norm_groups.get(g, 1)
        width = size // n_blocks
        out[g] = np.concatenate([b * width + rng.permutation(width) for b in range(n_blocks)])
    return out


def rescale_free(spec, params: dict, group: str, scales: np.ndarray) -> dict:
    """ReLU positive rescaling: units of ``group`` scaled by ``scales`` (> 0) on their incoming weights and
    bias, and by ``1 / scales`` on the outgoing weights. A symmetry of standard ReLU networks whose
    scaled layer feeds the ReLU directly (no normalisation in between)."""
    scales = np.asarray(scales, dtype=np.float64)
    if np.any(scales <= 0):
        raise ValueError("scales must be > 0 (ReLU is only positively homogeneous)")
    pspec = permutation_spec(spec)
    if group not in pspec.groups:
        raise ValueError(f"unknown group {group!r}; accepted: {sorted(pspec.groups)}")
    eff = to_effective(spec, params)
    for name, axis, block in pspec.params_of(group):
        if name.endswith((".scale", ".shift")):
            raise ValueError(f"group {group!r} is normalised ({name}): ReLU rescaling is not a symmetry there")
        factor = np.repeat(scales if axis == 0 else 1.0 / scales, block)
        shape = [1] * eff[name].ndim
        shape[axis] = -1
        eff[name] = eff[name] * factor.reshape(shape)
    return to_free(spec, eff)
