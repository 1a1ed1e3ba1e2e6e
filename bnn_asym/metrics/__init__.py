"""Metrics: calibration and predictive quality."""

from .calibration import accuracy, brier, classification_metrics, ece, gaussian_nll, nll

__all__ = ["accuracy", "brier", "classification_metrics", "ece", "gaussian_nll", "nll"]
