"""Pinned draws: every engine (and backend, and the engine variants with their own code paths) on tiny
models at fixed seeds, compared with draws recorded in ``pinned_draws.json``.

The file holds, per case, a SHA-256 digest of each array of draws and sampler statistics (dtype, shape,
bytes) and, per array, its mean and standard deviation. On the machine and library versions that
recorded it (its ``fingerprint``) the digest must match exactly: a refactor of the inference layer that
changes no arithmetic changes no bit. Elsewhere -- another CPU model rounds XLA's arithmetic differently in
the last bits -- the per-array means and standard deviations must agree to 1e-2 (absolute, plus 1e-2
relative). Measured by emulating older CPUs on the pinning machine (XLA's ``--xla_cpu_max_isa=SSE4_2`` and
``AVX2``; and single-threaded XLA): the largest deviation was 1.6e-4 of that band (full-curvature Laplace),
so the band leaves a margin of > 5,000x while any change of algorithm, key handling or schedule moves the
summaries by far more than 1e-2. The runs are at most 40 steps, and NUTS / HMC run in float64 with short
trees (``FLOAT64``), because chaotic trajectories amplify rounding differences.

Re-pin after a deliberate change of the numbers (say which engines and why in the change's note):
``BNN_ASYM_REPIN=1 python -m pytest tests/inference/test_pinned_draws.py`` (one process: ``-p no:xdist``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from importlib.metadata import version
from pathlib import Path

import jax
import numpy as np
import pytest

import bnn_asym
from bnn_asym.models import BayesianModel, Likelihood, Prior

PINNED = Path(__file__).with_name("pinned_draws.json")
REPIN = os.environ.get("BNN_ASYM_REPIN") == "1"
ABS_TOL, REL_TOL = 1e-2, 1e-2

# name -> (problem, fit keywords: the engine's options, and backend or init where given); the engine is the
# name up to '['. Runs of at most 40 steps on 60 rows.
CASES = {
    "mfvi": ("classification", dict(num_steps=30, num_draws=4)),
    "mfvi[pyro]": ("classification", dict(num_steps=10, num_draws=3, backend="pyro")),
    "mfvi[regression]": ("regression", dict(num_steps=30, num_draws=4, batch_size=20)),
    "lowrank_vi": ("classification", dict(num_steps=30, num_draws=4, rank=2)),
    "lowrank_vi[pyro]": ("classification", dict(num_steps=10, num_draws=3, rank=2, backend="pyro")),
    "lowrank_vi[per_layer]": ("classification", dict(num_steps=30, num_draws=4, rank=2, per_layer=True, batch_size=20)),
    "lowrank_vi[per_layer,per_batch,learn_diag]": (
        "regression",
        dict(num_steps=30, num_draws=4, rank=2, per_layer=True, lowrank_noise="per_batch", learn_diag=True),
    ),
    "lowrank_vi[per_layer,fixed_diag,cnn]": (
        "image",
        dict(num_steps=10, num_draws=3, rank=2, per_layer=True, learn_diag=False),
    ),
    "nuts": ("classification", dict(num_warmup=15, num_samples=10, num_chains=2)),
    "nuts[regression]": ("regression", dict(num_warmup=10, num_samples=6, num_chains=1, max_tree_depth=4)),
    "nuts[pyro]": ("classification", dict(num_warmup=5, num_samples=5, num_chains=1, max_tree_depth=3, backend="pyro")),
    "hmc": ("classification", dict(num_warmup=15, num_samples=10, num_chains=2, num_leapfrog=4)),
    "hmc[pyro]": ("classification", dict(num_warmup=5, num_samples=5, num_chains=1, num_leapfrog=3, backend="pyro")),
    # 34 tuning steps: all three phases, the third long enough (10 steps) to set L from autocorrelations
    "mclmc": ("classification", dict(num_warmup=34, num_samples=6, num_chains=2)),
    "mclmc[regression,no_preconditioning]": (
        "regression",
        dict(num_warmup=34, num_samples=6, num_chains=1, diagonal_preconditioning=False),
    ),
    "adjusted_mclmc": ("classification", dict(num_warmup=34, num_samples=6, num_chains=2)),
    "mile": ("classification", dict(num_warmup=34, num_samples=3, thinning=2, num_chains=2)),
    "mile[adjusted]": ("classification", dict(num_warmup=34, num_samples=6, num_chains=2, adjusted=True)),
    "sgld": ("classification", dict(num_warmup=10, num_samples=20, num_chains=2, batch_size=20, thinning=2)),
    "psgld": ("classification", dict(num_warmup=10, num_samples=20, num_chains=2, batch_size=20)),
    "sgld[regression,polynomial]": (
        "regression",
        dict(num_warmup=10, num_samples=20, num_chains=1, batch_size=20, schedule="polynomial", decay_steps=5),
    ),
    "sghmc[cyclical]": (
        "classification",
        dict(
            num_warmup=0,
            num_samples=40,
            num_chains=2,
            batch_size=20,
            schedule="cyclical",
            num_cycles=2,
            num_integration_steps=3,
        ),
    ),
    "map": ("classification", dict(num_steps=30, num_chains=2, batch_size=20)),
    "map[regression]": ("regression", dict(num_steps=30, batch_size=None, schedule="constant")),
    "ensemble": ("classification", dict(n_members=3, num_steps=30, batch_size=20)),
    "swag": (
        "classification",
        dict(pretrain_steps=10, swag_steps=30, collect_every=5, num_draws=4, rank=3, batch_size=15),
    ),
    "swag[regression]": (
        "regression",
        dict(pretrain_steps=10, swag_steps=30, collect_every=5, num_draws=4, batch_size=15),
    ),
    "multiswag": (
        "classification",
        dict(pretrain_steps=10, swag_steps=20, collect_every=5, num_draws=3, n_runs=2, batch_size=15),
    ),
    "laplace": ("classification", dict(num_steps=30, num_draws=4, batch_size=20)),
    "laplace[diag,marglik]": (
        "classification",
        dict(num_steps=30, num_draws=4, batch_size=20, hessian="diag", prior_precision="marglik"),
    ),
    "laplace[full,regression]": ("regression", dict(num_steps=30, num_draws=4, batch_size=None, hessian="full")),
    "nuts[init=map]": ("classification", dict(num_warmup=10, num_samples=5, num_chains=2, init="map")),
    "sgld[init=ensemble]": (
        "classification",
        dict(num_warmup=0, num_samples=10, num_chains=2, batch_size=20, init="ensemble"),
    ),
}

# NumPyro's NUTS and HMC in float64: a float32 trajectory on another CPU (emulated with XLA's
# --xla_cpu_max_isa=SSE4_2) had left the pinned one after 25 steps (33x the band); in float64 the
# rounding differences start 10^9 times smaller.
# MCLMC's dynamics are as chaotic, and a flipped accept decision (adjusted) changes the rest of a chain.
FLOAT64 = ("nuts", "nuts[regression]", "hmc", "nuts[init=map]", "mclmc", "mclmc[regression,no_preconditioning]")
FLOAT64 += ("adjusted_mclmc", "mile", "mile[adjusted]")
# Pyro's HMC runs in float32 torch, whose kernels round differently on other CPUs, and its 10 accept / reject
# decisions turn a last-bit difference into another chain: pinned on an Intel Xeon, an AMD EPYC drew a mean of
# 0.61 for fc0.bias against the pinned 0.26. Its digests are checked on the pinning machine; elsewhere only what
# must hold on any CPU (the same arrays, finite values).
PINNING_MACHINE_ONLY = ("hmc[pyro]",)


def problem(kind: str):
    rng = np.random.default_rng(7)
    if kind == "image":
        X = rng.standard_normal((60, 1, 8, 8)).astype(np.float32)
        y = (X[:, 0, :4].mean((1, 2)) > 0).astype(np.int64)
        net = bnn_asym.CNN((1, 8, 8), (2, 3), 2, symmetry="w_asym", norm="group", seed=1)
        return BayesianModel(net, Likelihood("categorical"), Prior()), X.reshape(60, -1), y
    X = rng.standard_normal((60, 3)).astype(np.float32)
    if kind == "classification":
        y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
        net = bnn_asym.MLP(3, (5,), 2, symmetry="w_asym", seed=1)
        return BayesianModel(net, Likelihood("categorical"), Prior()), X, y
    y = (X @ np.array([1.0, -0.5, 0.3]) + 0.3 * rng.standard_normal(60)).astype(np.float32)
    net = bnn_asym.MLP(3, (4,), 1, symmetry="sigma_asym", norm="layer", seed=1)
    return BayesianModel(net, Likelihood("gaussian", noise_std=None), Prior()), X, y


def fingerprint() -> dict:
    """What decides XLA's CPU code and the libraries' arithmetic: the CPU (model and instruction-set flags,
    which decide the vector code XLA emits), XLA's flags (threading changes reduction order) and the
    package versions."""
    cpu = {"processor": platform.processor()}
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for key in ("vendor_id", "cpu family", "model", "model name", "flags"):
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip() == key:
                cpu[key] = value.strip() if key != "flags" else hashlib.sha256(value.encode()).hexdigest()[:16]
                break
    packages = ("numpy", "jax", "jaxlib", "numpyro", "blackjax", "optax", "torch", "pyro-ppl", "laplace-torch")
    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **{p: version(p) for p in packages},
    }


def arrays_of(post) -> dict[str, np.ndarray]:
    out = {f"draws/{k}": v for k, v in post.draws.items()}
    out.update({f"stats/{k}": v for k, v in post.sample_stats.items()})
    return dict(sorted(out.items()))


def digests(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 (16 hex digits) of each array's dtype, shape and bytes."""
    out = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        out[name] = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode() + a.tobytes()).hexdigest()[:16]
    return out


def summary(arrays: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {k: [float(np.mean(v.astype(np.float64))), float(np.std(v.astype(np.float64)))] for k, v in arrays.items()}


def run_case(name: str):
    kind, options = CASES[name]
    model, X, y = problem(kind)
    precision = jax.enable_x64(True) if name in FLOAT64 else contextlib.nullcontext()
    with precision:
        return bnn_asym.fit(
            model, X, y, engine=engine_of(name), seed=11, progress=False, chain_method="sequential", **options
        )


def _load() -> dict:
    return json.loads(PINNED.read_text()) if PINNED.exists() else {"fingerprint": None, "cases": {}}


def engine_of(name: str) -> str:
    return name.split("[")[0]


def test_every_engine_is_pinned():
    pinned = {engine_of(n) for n in CASES}
    assert pinned == set(bnn_asym.ENGINES)
    if not REPIN:
        assert set(_load()["cases"]) == set(CASES), "run with BNN_ASYM_REPIN=1 to record the new cases"


@pytest.mark.filterwarnings("ignore:(nuts|hmc). .* divergent")
@pytest.mark.parametrize("name", list(CASES))
def test_draws_match_the_pinned_ones(name):
    arrays = arrays_of(run_case(name))
    record = _load()
    if REPIN:
        record["fingerprint"] = fingerprint()
        record["cases"][name] = {"digests": digests(arrays), "summary": summary(arrays)}
        PINNED.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        return
    pinned = record["cases"][name]
    if record["fingerprint"] == fingerprint():
        changed = sorted(k for k, d in digests(arrays).items() if pinned["digests"].get(k) != d)
        assert not changed and set(arrays) == set(pinned["digests"]), (
            f"{name}: changed on the pinning machine: {changed}"
        )
        return
    got = summary(arrays)
    assert set(got) == set(pinned["summary"]), name
    if name in PINNING_MACHINE_ONLY:
        assert all(np.all(np.isfinite(a)) for a in arrays.values()), name
        return
    for key, (mean, std) in pinned["summary"].items():
        np.testing.assert_allclose(got[key], [mean, std], atol=ABS_TOL, rtol=REL_TOL, err_msg=f"{name}: {key}")
