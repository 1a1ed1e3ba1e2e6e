"""Predictive quality and calibration.

Classification (class probabilities (N, K) and labels): accuracy, NLL, Brier score, expected calibration
error (15 equal-width bins of the top-1 confidence) and its reliability-diagram data.
Regression (a Gaussian predictive summary: mean and std per point): RMSE, NLL, the coverage of central
50/90/95% intervals, and in-between uncertainty (predictive std inside a gap of the inputs vs outside).
"""

from __future__ import annotations

import numpy as np

COVERAGE_LEVELS = (0.5, 0.9, 0.95)


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


def reliability(probs, y, n_bins: int = 15) -> dict[str, list]:
    """Reliability-diagram data over equal-width bins of the top-1 confidence: per bin the lower edge, the
    mean confidence, the accuracy and the number of points (empty bins have NaN confidence/accuracy)."""
    probs, y = _check(probs, y)
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, conf, n_bins) / count
        acc = np.bincount(bins, correct.astype(float), n_bins) / count
    return {
        "bin_lower": edges[:-1].tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": acc.tolist(),
        "count": count.tolist(),
    }


def ece(probs, y, n_bins: int = 15) -> float:
    """Expected calibration error: count-weighted gap between confidence and accuracy, equal-width bins."""
    r = reliability(probs, y, n_bins)
    count = np.asarray(r["count"], dtype=np.float64)
    gap = np.abs(np.nan_to_num(np.asarray(r["confidence"])) - np.nan_to_num(np.asarray(r["accuracy"])))
    return float(np.sum(count * gap) / count.sum())


def classification_metrics(probs, y, n_bins: int = 15) -> dict[str, float]:
    return {
        "accuracy": accuracy(probs, y),
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        "ece": ece(probs, y, n_bins),
    }


def gaussian_nll(mean, std, y) -> float:
    """Mean negative log density of y under Normal(mean, std) (regression predictive)."""
    mean, std, y = (np.asarray(a, dtype=np.float64) for a in (mean, std, y))
    return float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * ((y - mean) / std) ** 2))


def rmse(mean, y) -> float:
    mean, y = np.asarray(mean, np.float64), np.asarray(y, np.float64)
    return float(np.sqrt(np.mean((mean - y) ** 2)))


def _normal_quantile(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def interval_coverage(mean, std, y, levels=COVERAGE_LEVELS) -> dict[str, float]:
    """Share of targets inside the central ``level`` interval of Normal(mean, std), per level."""
    mean, std, y = (np.asarray(a, dtype=np.float64) for a in (mean, std, y))
    out = {}
    for level in levels:
        z = _normal_quantile(0.5 + level / 2)
        out[f"coverage_{round(100 * level)}"] = float(np.mean(np.abs(y - mean) <= z * std))
    return out


def in_between_uncertainty(std, x, gap: tuple[float, float]) -> float:
    """Mean predictive std for inputs inside ``gap`` over the mean outside it (1-D inputs): a model with
    in-between uncertainty is less sure where it saw no data, so the ratio is well above 1."""
    std, x = np.asarray(std, np.float64), np.asarray(x, np.float64).reshape(len(std), -1)[:, 0]
    inside = (x > gap[0]) & (x < gap[1])
    if not inside.any() or inside.all():
        raise ValueError(f"in_between_uncertainty needs inputs both inside and outside the gap {gap}")
    return float(std[inside].mean() / std[~inside].mean())


def regression_metrics(mean, std, y) -> dict[str, float]:
    return {"rmse": rmse(mean, y), "nll": gaussian_nll(mean, std, y), **interval_coverage(mean, std, y)}


__all__ = [
    "accuracy",
    "brier",
    "classification_metrics",
    "ece",
    "gaussian_nll",
    "in_between_uncertainty",
    "interval_coverage",
    "nll",
    "regression_metrics",
    "reliability",
    "rmse",
]
