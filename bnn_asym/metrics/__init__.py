"""Metrics: calibration and predictive quality, agreement with a reference posterior, convergence,
multimodality. Each is a plain function of numpy arrays, tested on cases with known answers."""

from .agreement import (agreement, classification_agreement, gaussian_kl, gaussian_w1, gaussian_w2,
                        regression_agreement, total_variation)
from .calibration import (accuracy, brier, classification_metrics, ece, gaussian_nll, in_between_uncertainty,
                          interval_coverage, nll, regression_metrics, reliability, rmse)
from .convergence import ess_rates, rhat_summary, time_to_target, time_to_within
from .multimodality import aligned_rhat, chain_barriers, coupon_collector, mode_count, predictive_distances

__all__ = ["accuracy", "brier", "classification_metrics", "ece", "gaussian_nll", "nll", "reliability", "rmse",
           "interval_coverage", "in_between_uncertainty", "regression_metrics", "agreement", "total_variation",
           "gaussian_kl", "gaussian_w1", "gaussian_w2", "classification_agreement", "regression_agreement",
           "rhat_summary", "time_to_target", "time_to_within", "ess_rates", "mode_count", "coupon_collector",
           "aligned_rhat", "chain_barriers", "predictive_distances"]
