"""Inference engines, selected by name. Each is one small module; ``ENGINES`` maps names to them."""

from .base import Engine, EngineResult, FitData
from .mcmc import HMCEngine, NUTSEngine
from .swag import EnsembleEngine, MultiSWAGEngine, SWAGEngine
from .vi import LowRankVIEngine, MFVIEngine

ENGINES: dict[str, type[Engine]] = {
    e.name: e for e in (MFVIEngine, LowRankVIEngine, NUTSEngine, HMCEngine, SWAGEngine, MultiSWAGEngine,
                        EnsembleEngine)
}


def get_engine(name: str) -> type[Engine]:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid engines: {', '.join(ENGINES)}")
    return ENGINES[name]


__all__ = ["ENGINES", "Engine", "EngineResult", "FitData", "get_engine"]
