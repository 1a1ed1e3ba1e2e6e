"""Uncertainty beyond calibration: what a posterior knows it does not know.

From a posterior's per-draw class probabilities ``probs`` (draws, rows, classes):

- ``entropy_decomposition``: the total predictive entropy ``H[E_w p(y|x,w)]`` (of the Bayesian model average),
  the expected entropy ``E_w H[p(y|x,w)]`` (aleatoric) and their difference, the mutual information between
  the label and the weights (epistemic, >= 0; 0 for a single draw). The mean of the draws' entropies is the
  *expected* entropy, not the total one: a criterion called "entropy" must say which it is.
- ``uncertainty_score``: one number per row, higher = more uncertain, for each ``CRITERIA`` entry
  (``uncertainty_scores``: all of them at once).
- ``ood_detection``: AUROC, AUPR and FPR at 95% TPR of a score separating in-distribution rows (label 0) from
  out-of-distribution rows (label 1), both sets pooled (scikit-learn's ``roc_auc_score``,
  ``average_precision_score`` and ``roc_curve``).
- ``risk_coverage``: selective prediction -- keep the most confident rows first; the error rate among the kept
  rows at every coverage, and the area under that curve (AURC, lower is better).

Entropies are in nats and computed in float64.
"""

from __future__ import annotations

import numpy as np

CRITERIA = ("total_entropy", "expected_entropy", "mutual_information", "max_probability")
_DECOMPOSITION_PART = {  # criterion -> its term of entropy_decomposition
    "total_entropy": "total",
    "expected_entropy": "expected",
    "mutual_information": "mutual_information",
}
PROBABILITY_TOLERANCE = 1e-3  # rows must sum to 1 within this (float32 softmax outputs do to ~1e-6)


def _check_probs(probs, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(
            f"{name} has shape {np.shape(probs)}; accepted: per-draw class probabilities (draws, rows, classes) "
            "or one prediction (rows, classes), none of them empty"
        )
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1 + PROBABILITY_TOLERANCE:
        raise ValueError(f"{name} has entries outside [0, 1] or non-finite ones; accepted: probabilities")
    worst = float(np.max(np.abs(p.sum(-1) - 1.0)))
    if worst > PROBABILITY_TOLERANCE:
        raise ValueError(
            f"{name}: a row's sum differs from 1 by {worst:.3g}; accepted: class probabilities "
            f"summing to 1 within {PROBABILITY_TOLERANCE}"
        )
    return p


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(-1)


def entropy_decomposition(probs) -> dict[str, np.ndarray]:
    """Per row: ``total`` entropy of the averaged prediction, ``expected`` entropy of the draws (aleatoric),
    ``mutual_information`` = total - expected (epistemic, clipped at 0 against rounding)."""
    return _decomposition(_check_probs(probs))


def _decomposition(p: np.ndarray) -> dict[str, np.ndarray]:
    total = _entropy(p.mean(0))
    expected = _entropy(p).mean(0)
    return {"total": total, "expected": expected, "mutual_information": np.maximum(total - expected, 0.0)}


def uncertainty_score(probs, criterion: str = "total_entropy") -> np.ndarray:
    """One score per row, higher = more uncertain: an entropy term of ``entropy_decomposition`` or, for
    ``max_probability``, one minus the averaged prediction's largest class probability."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r} is not valid; accepted: {', '.join(CRITERIA)}")
    p = _check_probs(probs)
    if criterion == "max_probability":
        return _max_probability_score(p)
    return _decomposition(p)[_DECOMPOSITION_PART[criterion]]


def uncertainty_scores(probs) -> dict[str, np.ndarray]:
    """Every ``CRITERIA`` score per row (``uncertainty_score``'s numbers) from one check of ``probs`` and one
    entropy decomposition: scoring a set by all four criteria costs one criterion's time."""
    p = _check_probs(probs)
    parts = _decomposition(p)
    return {**{c: parts[part] for c, part in _DECOMPOSITION_PART.items()}, "max_probability": _max_probability_score(p)}


def _max_probability_score(p: np.ndarray) -> np.ndarray:
    return 1.0 - p.mean(0).max(-1)


def ood_detection(in_scores, ood_scores) -> dict[str, float]:
    """How well a score (higher = more uncertain) tells out-of-distribution rows (positives, label 1) from
    in-distribution ones (label 0): ``auroc``, ``aupr`` (OOD as the positive class) and ``fpr95`` (the share
    of in-distribution rows flagged when 95% of OOD rows are)."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    a, b = np.ravel(np.asarray(in_scores, np.float64)), np.ravel(np.asarray(ood_scores, np.float64))
    for name, s in (("in_scores", a), ("ood_scores", b)):
        if s.size == 0 or not np.all(np.isfinite(s)):
            raise ValueError(f"{name} is empty or has non-finite entries; accepted: finite scores, at least one")
    labels = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    scores = np.concatenate([a, b])
    fpr, tpr, _ = roc_curve(labels, scores)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr": float(average_precision_score(labels, scores)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
        "n_in": int(a.size),
        "n_ood": int(b.size),
    }


def risk_coverage(probs, y, criterion: str = "max_probability") -> dict[str, np.ndarray | float]:
    """Selective prediction: rows sorted from most to least confident by ``criterion``; ``coverage[k]`` =
    (k + 1) / n and ``risk[k]`` = the error rate of the averaged prediction's argmax over the first k + 1 rows;
    ``aurc`` = the mean of ``risk`` (area under the curve, lower is better). Ties keep the rows' order."""
    p = _check_probs(probs)
    y = np.asarray(y)
    if y.shape != (p.shape[1],):
        raise ValueError(f"y has shape {y.shape}; accepted: one label per row, shape ({p.shape[1]},)")
    errors = (p.mean(0).argmax(-1) != y).astype(np.float64)
    order = np.argsort(uncertainty_score(p, criterion), kind="stable")
    risk = np.cumsum(errors[order]) / np.arange(1, len(y) + 1)
    return {"coverage": np.arange(1, len(y) + 1) / len(y), "risk": risk, "aurc": float(risk.mean())}
