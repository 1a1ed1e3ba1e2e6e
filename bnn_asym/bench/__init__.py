"""Benchmark harness: results store, runners and reports.

Names the command line needs for its choices live here, so ``bnn-asym --help`` imports neither JAX nor
torch.
"""

PHENOMENON_MODELS = ("mlp", "cnn", "resnet")
