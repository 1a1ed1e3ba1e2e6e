"""Shared fixtures. Tests run in float32, the precision users run; the few that compare to a tight
tolerance (backend parity, log joints) opt into float64 with the ``x64`` fixture.

Stochastic tests read ``BNN_ASYM_TEST_SEED_SHIFT`` (default 0) through the ``seed_shift`` fixture and add it
to every seed, so the whole suite can be rerun under other seeds: thresholds must hold for any seed, with
the margins stated next to them.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax
import numpy as np
import pytest
import torch

import bnn_asym

torch.set_num_threads(1)
SEED_SHIFT = int(os.environ.get("BNN_ASYM_TEST_SEED_SHIFT", "0"))


@pytest.fixture(autouse=True)
def _release_compiled_programs_near_the_map_limit():
    """A test worker fits a thousand different models; XLA's compiled kernels hold memory maps, and at Linux's
    limit the next compilation crashes the worker (bnn_asym.jax_setup). Free them when past half the limit."""
    yield
    if bnn_asym.jax_setup.near_memory_map_limit(0.5):
        bnn_asym.release_compiled_programs()


@pytest.fixture
def seed_shift() -> int:
    return SEED_SHIFT


@pytest.fixture
def x64():
    """float64 JAX for this test (parity and log-joint checks at 1e-10)."""
    with jax.enable_x64(True):
        yield


SYMMETRIES = ("standard", "w_asym", "sigma_asym")


def small_specs(symmetry: str) -> dict:
    """One small network per family (fast enough for exhaustive checks)."""
    return {
        "mlp": bnn_asym.MLP(8, (6, 5), 3, symmetry=symmetry, norm="layer", seed=3),
        "cnn": bnn_asym.CNN(
            (1, 8, 8), (4, 6), 3, hidden=(5,), norm="group", groups=2, symmetry=symmetry, mask_kind="filter", seed=3
        ),
        "resnet": bnn_asym.ResNet((2, 8, 8), 3, depth=8, width=0.25, norm="group", groups=2, symmetry=symmetry, seed=3),
    }


@pytest.fixture(params=[(f, s) for f in ("mlp", "cnn", "resnet") for s in SYMMETRIES], ids=lambda p: f"{p[0]}-{p[1]}")
def family_symmetry(request):
    family, symmetry = request.param
    return small_specs(symmetry)[family]


def perturbed_params(spec, seed=0, dtype="float64"):
    """Init plus noise on every parameter, so biases and norm parameters are not trivially 0/1."""
    rng = np.random.default_rng(seed)
    return {k: (v + 0.2 * rng.standard_normal(v.shape)).astype(dtype) for k, v in spec.init(seed, dtype).items()}


def inputs_for(spec, n=7, seed=0, dtype="float64"):
    return np.random.default_rng(seed + 100).standard_normal((n, int(np.prod(spec.input_shape)))).astype(dtype)


def torch_params(params):
    return {k: torch.as_tensor(np.asarray(v)) for k, v in params.items()}


@pytest.fixture(scope="module")
def tiny_task():
    """A W-Asym MLP and a linearly separable 64-row classification set."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return bnn_asym.MLP(5, (8,), 2, symmetry="w_asym", seed=0), X, y
