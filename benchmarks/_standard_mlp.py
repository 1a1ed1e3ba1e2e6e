"""The problem the sampler benchmarks share: the ``standard`` suite's digits split and MLP (64-16-16-10,
prior_scale 1), sampled as its reference is -- chains from deep-ensemble members, seed 1000, in parallel over the
process's devices."""

from __future__ import annotations

import dataclasses
import time
import warnings

import bnn_asym
from bnn_asym.bench import harness
from bnn_asym.bench.suites import load_suite
from bnn_asym.posterior import class_probabilities

PROBLEM = "the standard suite's MLP 64-16-16-10, prior_scale 1"


def sample(symmetry: str, engine: str, options: dict, **network_changes):
    """A run of ``engine`` on the standard cell of ``symmetry`` (its network changed by ``network_changes``), with
    its wall time and its test-set class probabilities, (chains, draws, rows x classes)."""
    cell = next(c for c in load_suite("standard").cells() if c.symmetry == symmetry)
    cell = dataclasses.replace(cell, network=dataclasses.replace(cell.network, **network_changes))
    ds = harness.load_data(cell)
    model = harness.build_model(cell, ds)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = bnn_asym.fit(
            model, ds.X_train, ds.y_train, engine=engine, init="ensemble", seed=1000, chain_method="auto",
            progress=False, **options,
        )  # fmt: skip
    wall = time.perf_counter() - start
    probs = class_probabilities(post.outputs(ds.X_test), "categorical").reshape(post.n_chains, post.n_draws, -1)
    return post, ds, probs, wall


def problem_text() -> str:
    ds = harness.load_data(next(iter(load_suite("standard").cells())))
    return f"digits ({len(ds.X_train)} train / {len(ds.X_test)} test rows), {PROBLEM}"
