"""What the benchmark harness costs, and what its local workers buy.

1. Overhead: one cell (digits, MLP 64-16-16-10 W-Asym, mfvi 3,000 steps, 10 checkpoints scored against
   a reference) through the harness vs the same ``fit`` called directly, alternated and repeated; compiled
   programs are warm for both. Reported: the ratio of the engine's own time (RunInfo wall time, which
   excludes scoring at checkpoints) and of the whole ``fit`` call (scoring included). Target: <= 1.05.
2. Scale-out: a grid of 8 small cells (moons, map and mfvi, two symmetries, two seeds) in this process vs
   in 2 joblib worker processes, each run twice alternately, the persistent compilation cache warm.
   Target: joblib >= 1.5x faster on 2 cores.

Run:  python benchmarks/harness.py [--repeats 3]
Writes benchmarks/results/harness.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

OVERHEAD_SUITE = {
    "name": "overhead", "symmetries": ["w_asym"], "seeds": [0], "data": [{"name": "digits"}],
    "networks": [{"depth": 3, "width": 16}],
    "reference": {"options": {"num_warmup": 200, "num_samples": 200, "num_chains": 2}},
    "engines": [{"name": "mfvi", "options": {"num_steps": 3000, "lr": 0.01, "batch_size": 128}}],
}
SCALING_SUITE = {
    "name": "scaling", "symmetries": ["standard", "w_asym"], "seeds": [0, 1], "metrics": ["calibration"],
    "data": [{"name": "moons", "n_samples": 600}], "networks": [{"depth": 3, "width": 32}],
    "engines": [{"name": "map", "options": {"num_steps": 3000, "batch_size": 64}},
                {"name": "mfvi", "options": {"num_steps": 3000, "batch_size": 64}}],
}


def overhead(repeats: int) -> dict:
    import bnn_asym
    from bnn_asym.bench.harness import build_model, compute_reference, load_data, run_cell
    from bnn_asym.bench.suites import parse_suite

    suite = parse_suite(OVERHEAD_SUITE)
    (cell,) = suite.cells()
    reference = compute_reference(cell, suite.reference)
    ds = load_data(cell)
    model = build_model(cell, ds)
    options = cell.engine.options_dict()

    def direct():
        start = time.perf_counter()
        post = bnn_asym.fit(model, ds.X_train, ds.y_train, engine="mfvi", seed=cell.seed, progress=False,
                            chain_method="sequential", **options)
        return time.perf_counter() - start, post.run_info.wall_time_s

    def harness():
        result = run_cell(cell, reference)
        return result["metrics"]["fit_s"], result["metrics"]["wall_s"]

    direct(), harness()  # compile both paths once
    runs = {"direct": [], "harness": []}
    for _ in range(repeats):
        runs["direct"].append(direct())
        runs["harness"].append(harness())
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
    return {"runs": runs, "fit_call_ratio": med["harness"][0] / med["direct"][0],
            "engine_time_ratio": med["harness"][1] / med["direct"][1], "median_direct_fit_s": med["direct"][0],
            "median_harness_fit_s": med["harness"][0], "checkpoints": 10}


def scaling(repeats: int) -> dict:
    from bnn_asym.bench.harness import run_suite
    from bnn_asym.bench.store import BenchStore
    from bnn_asym.bench.suites import parse_suite

    suite = parse_suite(SCALING_SUITE)
    times = {"inprocess": [], "joblib": []}
    with tempfile.TemporaryDirectory() as d:
        run_suite(suite, BenchStore(Path(d) / "warm.sqlite"), progress=False)  # warms the compilation cache
        for r in range(repeats):
            for backend in ("inprocess", "joblib"):
                start = time.perf_counter()
                run_suite(suite, BenchStore(Path(d) / f"{backend}{r}.sqlite"), backend=backend, jobs=2, progress=False)
                times[backend].append(time.perf_counter() - start)
    return {"cells": len(suite.cells()), "seconds": times,
            "speedup": min(times["inprocess"]) / min(times["joblib"])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    from bnn_asym.bench.machine import machine_description
    from bnn_asym.io import atomic_write_text

    torch.set_num_threads(1)
    out = {"machine": machine_description(), "overhead": overhead(args.repeats)}
    print("overhead", out["overhead"], flush=True)
    out["scaling"] = scaling(max(2, args.repeats - 1))
    print("scaling", out["scaling"], flush=True)
    atomic_write_text(RESULTS / "harness.json", json.dumps(out, indent=1))
    atomic_write_text(RESULTS / "harness.md", table(out))
    print(table(out))


def table(out: dict) -> str:
    o, s = out["overhead"], out["scaling"]
    return "\n".join([
        "Benchmark harness: overhead of a cell and speed-up of local workers", "",
        "| measure | value | target |", "|---|---|---|",
        f"| engine time of a cell through the harness / fit() called directly (mfvi, 3,000 steps, digits; "
        f"median of {len(o['runs']['direct'])}) | {o['engine_time_ratio']:.3f} | <= 1.05 |",
        f"| the whole fit() call, {o['checkpoints']} checkpoints scored against the reference included "
        f"({o['median_harness_fit_s']:.2f} s vs {o['median_direct_fit_s']:.2f} s) | {o['fit_call_ratio']:.3f} | <= 1.05 |",
        f"| {s['cells']} cells in 2 joblib workers vs in-process (best of {len(s['seconds']['joblib'])}: "
        f"{min(s['seconds']['joblib']):.1f} s vs {min(s['seconds']['inprocess']):.1f} s) | {s['speedup']:.2f}x | >= 1.5x |",
        "", f"Machine: {out['machine']}", ""])


if __name__ == "__main__":
    main()
