"""Inference engines, selected by name: one module per engine family, one registry line per engine.

``ENGINES`` maps each name to where its class lives; classes are imported on first use, so listing the
engines (``bnn-asym --help``) loads neither JAX nor torch. Every engine implements the step-level protocol
in base.py and runs through the one loop in driver.py.
"""

from __future__ import annotations

import importlib

from .base import APPROXIMATION, TRAJECTORY

ENGINES: dict[str, str] = {
    "mfvi": "bnn_asym.inference.vi:MFVI",
    "lowrank_vi": "bnn_asym.inference.vi:LowRankVI",
    "nuts": "bnn_asym.inference.mcmc:NUTS",
    "hmc": "bnn_asym.inference.mcmc:HMC",
    "adjusted_mclmc": "bnn_asym.inference.mclmc:AdjustedMCLMC",
    "mclmc": "bnn_asym.inference.mclmc:MCLMC",
    "mile": "bnn_asym.inference.mclmc:MILE",
    "sgld": "bnn_asym.inference.sgmcmc:SGLD",
    "sghmc": "bnn_asym.inference.sgmcmc:SGHMC",
    "psgld": "bnn_asym.inference.sgmcmc:PSGLD",
    "map": "bnn_asym.inference.optim:MAP",
    "ensemble": "bnn_asym.inference.optim:Ensemble",
    "swag": "bnn_asym.inference.swag:SWAG",
    "multiswag": "bnn_asym.inference.swag:MultiSWAG",
    "laplace": "bnn_asym.inference.laplace:Laplace",
}
PPLS = {"numpyro": "bnn_asym.inference.ppl_numpyro", "pyro": "bnn_asym.inference.ppl_pyro"}


def get_engine(name: str):
    """The engine class registered under ``name``; a ValueError lists the valid names."""
    if not isinstance(name, str) or name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid engines: {', '.join(ENGINES)}")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def ppl_for(backend: str):
    """The PPL adapter module (ppl_numpyro or ppl_pyro) of a backend name."""
    return importlib.import_module(PPLS[backend])


__all__ = ["APPROXIMATION", "ENGINES", "TRAJECTORY", "get_engine", "ppl_for"]
