"""bnn_asym: Bayesian deep learning with asymmetric (symmetry-free) neural networks."""

from .nets import CNN, MLP, SYMMETRIES, ResNet, spec_from_dict, spec_from_json

__version__ = "0.1.0"
__all__ = ["MLP", "CNN", "ResNet", "SYMMETRIES", "spec_from_dict", "spec_from_json"]
