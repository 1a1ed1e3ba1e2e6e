"""Predictive quality of class probabilities: accuracy, NLL, Brier score, expected calibration error."""

from __future__ import annotations

import numpy as np


def _check(probs, y):
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError(f"probs must be (N, K) and y (N,); got {probs.shape} and {y.shape}")
    return probs, y.astype(np.int64)


def accuracy(probs, y) -> float:
    probs, y = _check(probs, y)
    return float(np.mean(probs.argmax(1) == y))


def nll(probs, y, eps: float = 1e-12) -> float:
    """Mean negative log predictive probability of the true class."""
    probs, y = _check(probs, y)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, None))))


def brier(probs, y) -> float:
    probs, y = _check(probs, y)
    onehot = np.eye(probs.shape[1])[y]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def ece(probs, y, n_bins: int = 15) -> float:
    """Expected calibration error: confidence-weighted gap between confidence and accuracy, equal-width bins."""
    probs, y = _check(probs, y)
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(total)


def classification_metrics(probs, y, n_bins: int = 15) -> dict[str, float]:
    return {"accuracy": accuracy(probs, y), "nll": nll(probs, y), "brier": brier(probs, y), "ece": ece(probs, y, n_bins)}


def gaussian_nll(mean, std, y) -> float:
    """Mean negative log density of y under Normal(mean, std) (regression predictive)."""
    mean, std, y = (np.asarray(a, dtype=np.float64) for a in (mean, std, y))
    return float(np.mean(0.5 * np.log(2 * np.pi * std ** 2) + 0.5 * ((y - mean) / std) ** 2))
