"""Distance of an approximate predictive from a reference one, as the NeurIPS 2021 approximate-inference
competition scored entries against long HMC runs (Wilson et al., 2021).

Classification: *agreement* (the share of test points where both predict the same top class) and *total
variation* (half the L1 distance between the two predictive distributions, averaged over test points).
Regression, on Gaussian predictive summaries (mean, std per point): Wasserstein-1 (computed by quadrature of
the quantile functions), Wasserstein-2 (closed form) and KL(reference || approximation), averaged over points.
"""

from __future__ import annotations

import numpy as np


def _pair(p, q):
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"predictive probabilities must both be (N, K); got {p.shape} and {q.shape}")
    return p, q


def agreement(p_reference, p_approx) -> float:
    """Share of points where the top-1 classes agree: 1 for identical predictives."""
    p, q = _pair(p_reference, p_approx)
    return float(np.mean(p.argmax(1) == q.argmax(1)))


def total_variation(p_reference, p_approx) -> float:
    """Mean over points of 0.5 * sum_k |p_k - q_k|: 0 for identical predictives, 1 for disjoint ones."""
    p, q = _pair(p_reference, p_approx)
    return float(np.mean(0.5 * np.abs(p - q).sum(1)))


def gaussian_kl(mean_ref, std_ref, mean, std) -> float:
    """Mean over points of KL(N(mean_ref, std_ref) || N(mean, std))."""
    m1, s1, m2, s2 = (np.asarray(a, np.float64) for a in (mean_ref, std_ref, mean, std))
    return float(np.mean(np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5))


def gaussian_w2(mean_ref, std_ref, mean, std) -> float:
    """Mean over points of the Wasserstein-2 distance sqrt((m1 - m2)^2 + (s1 - s2)^2)."""
    m1, s1, m2, s2 = (np.asarray(a, np.float64) for a in (mean_ref, std_ref, mean, std))
    return float(np.mean(np.sqrt((m1 - m2) ** 2 + (s1 - s2) ** 2)))


def gaussian_w1(mean_ref, std_ref, mean, std, n_quantiles: int = 2000) -> float:
    """Mean over points of the Wasserstein-1 distance, the integral over u of |F1^-1(u) - F2^-1(u)|
    (midpoint rule on ``n_quantiles`` quantiles); equals |m1 - m2| when the stds are equal."""
    from scipy.special import ndtri

    m1, s1, m2, s2 = (np.asarray(a, np.float64)[:, None] for a in (mean_ref, std_ref, mean, std))
    z = ndtri((np.arange(n_quantiles) + 0.5) / n_quantiles)[None, :]
    return float(np.mean(np.abs((m1 + s1 * z) - (m2 + s2 * z)).mean(1)))


def classification_agreement(p_reference, p_approx) -> dict[str, float]:
    return {"agreement": agreement(p_reference, p_approx), "total_variation": total_variation(p_reference, p_approx)}


def regression_agreement(reference: tuple, approx: tuple) -> dict[str, float]:
    """``reference`` and ``approx``: (mean, std) arrays of the two predictives."""
    return {
        "w1": gaussian_w1(*reference, *approx),
        "w2": gaussian_w2(*reference, *approx),
        "kl": gaussian_kl(*reference, *approx),
    }
