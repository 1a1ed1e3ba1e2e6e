"""Metrics: calibration and predictive quality, agreement with a reference posterior, convergence,
multimodality, uncertainty (OOD detection, entropy decomposition, selective prediction). Each is a plain
function of numpy arrays, tested on cases with known answers."""

from .agreement import (
    agreement,
    classification_agreement,
    gaussian_kl,
    gaussian_w1,
    gaussian_w2,
    regression_agreement,
    total_variation,
)
from .calibration import (
    accuracy,
    brier,
    classification_metrics,
    ece,
    gaussian_nll,
    in_between_uncertainty,
    interval_coverage,
    nll,
    regression_metrics,
    reliability,
    rmse,
)
from .convergence import chainwise_rhat, ess_rates, nested_rhat, rhat_summary, time_to_target, time_to_within
from .multimodality import aligned_rhat, chain_barriers, coupon_collector, mode_count, predictive_distances
from .uncertainty import entropy_decomposition, ood_detection, risk_coverage, uncertainty_score, uncertainty_scores

__all__ = [
    "accuracy",
    "agreement",
    "aligned_rhat",
    "brier",
    "chain_barriers",
    "chainwise_rhat",
    "classification_agreement",
    "classification_metrics",
    "coupon_collector",
    "ece",
    "entropy_decomposition",
    "ess_rates",
    "gaussian_kl",
    "gaussian_nll",
    "gaussian_w1",
    "gaussian_w2",
    "in_between_uncertainty",
    "interval_coverage",
    "mode_count",
    "nested_rhat",
    "nll",
    "ood_detection",
    "predictive_distances",
    "regression_agreement",
    "regression_metrics",
    "reliability",
    "rhat_summary",
    "risk_coverage",
    "rmse",
    "time_to_target",
    "time_to_within",
    "total_variation",
    "uncertainty_score",
    "uncertainty_scores",
]
