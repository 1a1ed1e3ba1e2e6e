"""Multimodality of a posterior made of several chains (or ensemble members, or SWAG runs).

- ``mode_count``: distinct *functional* modes -- chains are clustered by the total variation between their
  predictive distributions on test inputs (single linkage: chains closer than ``threshold`` share a mode).
  Chains in permuted copies of one mode predict the same, so they count once.
- ``coupon_collector``: the expected number of chains needed to see every mode found, given how many
  chains landed in each (Wiese et al. 2023 report it for BNN posteriors): the unequal-probability coupon
  collector, E = int_0^inf (1 - prod_i (1 - exp(-p_i t))) dt.
- ``aligned_rhat``: parameter-space R-hat before and after aligning every chain to chain 0 by weight
  matching (one permutation per chain, found from the chains' mean parameters). For standard networks
  alignment shows how much apparent non-convergence is only relabelling; for W-Asym networks, which have
  no such symmetry, it should change little.
- ``chain_barriers``: the loss barrier along the straight line between every pair of chain means.
"""

from __future__ import annotations

import numpy as np

from .agreement import total_variation
from .convergence import rhat_summary

MODE_THRESHOLD = 0.05  # mean TV between two chains' predictives below which they share a mode


def predictive_distances(predictives: np.ndarray) -> np.ndarray:
    """(C, N, K) per-chain predictive probabilities -> (C, C) mean total variation between chains."""
    p = np.asarray(predictives, np.float64)
    c = len(p)
    d = np.zeros((c, c))
    for i in range(c):
        for j in range(i + 1, c):
            d[i, j] = d[j, i] = total_variation(p[i], p[j])
    return d


def mode_count(predictives: np.ndarray, threshold: float = MODE_THRESHOLD) -> dict:
    """Number of functional modes among chains, their labels and sizes (single linkage at ``threshold``)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    d = predictive_distances(predictives)
    if len(d) == 1:
        labels = np.array([1])
    else:
        labels = fcluster(linkage(squareform(d, checks=False), method="single"), t=threshold, criterion="distance")
    _, sizes = np.unique(labels, return_counts=True)
    return {
        "modes": len(sizes),
        "labels": (labels - 1).tolist(),
        "sizes": sorted(sizes.tolist(), reverse=True),
        "threshold": threshold,
        "max_distance": float(d.max()) if d.size else 0.0,
    }


def coupon_collector(sizes) -> float:
    """Expected chains until every mode has been visited, if a chain lands in mode i with probability
    sizes[i] / sum(sizes). Equal sizes give m * H_m (H_m: the m-th harmonic number)."""
    from scipy.integrate import quad

    p = np.asarray(sizes, np.float64)
    if p.ndim != 1 or not len(p) or np.any(p <= 0):
        raise ValueError(f"sizes must be positive counts per mode; got {sizes!r}")
    p = p / p.sum()
    if len(p) == 1:
        return 1.0
    value, _ = quad(lambda t: 1.0 - np.prod(1.0 - np.exp(-p * t)), 0, np.inf, limit=200)
    return float(value)


def _flat(draws: dict, names) -> np.ndarray:
    return np.concatenate([np.asarray(draws[k]).reshape(draws[k].shape[:2] + (-1,)) for k in names], axis=-1)


def aligned_rhat(spec, draws: dict, reference_chain: int = 0) -> dict:
    """Parameter R-hat over the free parameters before and after weight-matching alignment of every chain
    to ``reference_chain``; draws: name -> (chain, draw, *shape). The summaries hold R-hat only (ESS is
    NaN there: alignment is about between-chain agreement, and ESS over every parameter costs seconds)."""
    from ..symmetry.permutations import permute_free
    from ..symmetry.weight_matching import weight_matching

    names = [p.name for p in spec.layout]
    draws = {k: np.asarray(draws[k], np.float64) for k in names}
    n_chains, n_draws = draws[names[0]].shape[:2]
    before = rhat_summary(_flat(draws, names), ess=False)
    means = [{k: v[c].mean(0) for k, v in draws.items()} for c in range(n_chains)]
    aligned = {k: v.copy() for k, v in draws.items()}
    moved_chains = 0
    for c in range(n_chains):
        if c == reference_chain:
            continue
        perms = weight_matching(spec, means[reference_chain], means[c], seed=c).perms
        if all(np.array_equal(p, np.arange(len(p))) for p in perms.values()):
            continue
        moved_chains += 1
        for d in range(n_draws):
            moved = permute_free(spec, {k: v[c, d] for k, v in draws.items()}, perms)
            for k in names:
                aligned[k][c, d] = moved[k]
    after = rhat_summary(_flat(aligned, names), ess=False)
    return {"before": before, "after": after, "chains_permuted": moved_chains}


def chain_barriers(spec, chain_means: list[dict], X, y, task: str = "classification", n_points: int = 11) -> dict:
    """Loss barrier (max rise above the straight line between the end points' losses) between every pair
    of chain means; returns the matrix and its mean and max."""
    from ..symmetry.interpolation import interpolate, max_barrier

    c = len(chain_means)
    b = np.zeros((c, c))
    for i in range(c):
        for j in range(i + 1, c):
            b[i, j] = b[j, i] = max_barrier(interpolate(spec, chain_means[i], chain_means[j], X, y, task, n_points))
    upper = b[np.triu_indices(c, 1)]
    return {
        "matrix": b.tolist(),
        "mean": float(upper.mean()) if len(upper) else 0.0,
        "max": float(upper.max()) if len(upper) else 0.0,
    }
