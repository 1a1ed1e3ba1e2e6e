"""Network specs (MLP, CNN, ResNet) and their JAX / torch implementations."""

from .spec import CNN, MLP, SYMMETRIES, NetSpec, ResNet, spec_from_dict, spec_from_json

__all__ = ["CNN", "MLP", "SYMMETRIES", "NetSpec", "ResNet", "spec_from_dict", "spec_from_json"]
