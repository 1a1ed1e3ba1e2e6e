"""Weight matching (Git Re-Basin, Ainsworth et al. 2023): permute network b's hidden units so that its
weights line up with network a's.

Coordinate descent: each permutation group in turn solves a linear assignment problem (scipy) that
maximises ``sum <W_a, P W_b>`` over every weight the group touches, the other groups held fixed; sweeps
repeat in a seeded random order until no group changes. Permutation specs come from the layer graph
(``permutation_spec``), so MLPs, CNNs and ResNets (residual streams share one permutation) all work.
GroupNorm groups are respected: channels are only matched within their norm group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .permutations import PermutationSpec, expand_permutation, permutation_spec, permute, to_effective, to_free


@dataclass
class MatchResult:
    perms: dict[str, np.ndarray]
    aligned: dict[str, np.ndarray]  # b's free parameters after alignment
    sweeps: int


def _unit_matrix(w: np.ndarray, axis: int, block: int) -> np.ndarray:
    """Rows = the units of one axis (blocks of ``block`` entries kept together), columns = the rest."""
    moved = np.moveaxis(w, axis, 0)
    units = moved.shape[0] // block
    return moved.reshape(units, -1)


def _cost(pspec: PermutationSpec, group: str, eff_a: dict, eff_b: dict, perms: dict) -> np.ndarray:
    size = pspec.groups[group]
    cost = np.zeros((size, size))
    for name, axis, block in pspec.params_of(group):
        wb = eff_b[name]
        for other_axis, a in enumerate(pspec.axes[name]):  # other groups' current permutations
            if other_axis != axis and a and a[0] in perms:
                wb = np.take(wb, expand_permutation(perms[a[0]], a[1]), axis=other_axis)
        cost += _unit_matrix(eff_a[name], axis, block) @ _unit_matrix(wb, axis, block).T
    return cost


def _solve(cost: np.ndarray, norm_groups: int) -> np.ndarray:
    if norm_groups > 1:  # keep every channel inside its GroupNorm group
        width = len(cost) // norm_groups
        block = np.arange(len(cost)) // width
        cost = np.where(block[:, None] == block[None, :], cost, cost.min() - 1e6 * (1 + np.abs(cost).max()))
    _, cols = linear_sum_assignment(cost, maximize=True)
    return cols


def weight_matching(spec, a: dict, b: dict, max_sweeps: int = 100, seed: int = 0) -> MatchResult:
    """Permutations of b's hidden units that best match a's weights; returns them and aligned b.

    Meant for standard networks, where alignment leaves b's function unchanged. Applied to an
    asymmetric network it still returns the best-matching permutation, but moving the free entries
    changes the function (the fixed entries stay put).
    """
    pspec = permutation_spec(spec)
    eff_a, eff_b = to_effective(spec, a), to_effective(spec, b)
    perms = {g: np.arange(n) for g, n in pspec.groups.items()}
    rng = np.random.default_rng(seed)
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        changed = False
        for g in rng.permutation(list(pspec.groups)):
            cost = _cost(pspec, g, eff_a, eff_b, perms)
            new = _solve(cost, pspec.norm_groups.get(g, 1))
            old_score = cost[np.arange(len(new)), perms[g]].sum()
            new_score = cost[np.arange(len(new)), new].sum()
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[g] = new
                changed = True
        if not changed:
            break
    aligned = to_free(spec, permute(spec, eff_b, perms, pspec))
    return MatchResult(perms, aligned, sweeps)
