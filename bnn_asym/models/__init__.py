"""Probabilistic models: priors on free parameters, likelihoods, and their NumPyro / Pyro models."""

from .bayesian import BayesianModel
from .likelihoods import LIKELIHOODS, Likelihood
from .priors import PRIOR_KINDS, Prior

__all__ = ["LIKELIHOODS", "PRIOR_KINDS", "BayesianModel", "Likelihood", "Prior"]
