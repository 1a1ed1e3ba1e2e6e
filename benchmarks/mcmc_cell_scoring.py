"""What scoring costs in an SG-MCMC benchmark cell, where the engine itself takes seconds.

The `standard` suite's cyclical SGHMC cell (digits, MLP 64-16-16-10, 2 chains x 2,000 kept draws, 10
checkpoints scored against the reference: test predictive, agreement, NLL and prediction R-hat over every
draw so far), through ``run_cell``, in a new process per run, alternated with an MFVI cell of the same
suite as a control. Reported: the whole cell, the fit() call (engine + checkpoint scoring), the engine's
own steps, and the final scoring (calibration, diagnostics, modes, barriers, R-hat before/after alignment).
Also: rank-normalised R-hat of the cell's predictions (2 x 2,000 draws x 2,000 quantities) by
``split_rhat`` vs ArviZ's ``rhat``, alternated.

Run:  python benchmarks/mcmc_cell_scoring.py [--repeats 3]
Writes benchmarks/results/mcmc_cell_scoring.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CHILD = r"""
import json, sys, time
from bnn_asym.bench.harness import run_cell
from bnn_asym.bench.suites import load_suite

label = sys.argv[1]
suite = load_suite("standard")
cell = [c for c in suite.cells() if c.engine.label == label and c.symmetry == "standard" and c.seed == 0][0]
reference = json.load(open(sys.argv[2]))
start = time.perf_counter()
result = run_cell(cell, reference)
total = time.perf_counter() - start
m = result["metrics"]
print(json.dumps({"total_s": total, "fit_s": m["fit_s"], "engine_s": m["wall_s"]}))
"""


def reference_file(path: Path) -> Path:
    """The suite's reference for the standard net, computed once (a shorter NUTS run is enough to score)."""
    from bnn_asym.bench.harness import compute_reference
    from bnn_asym.bench.suites import load_suite, parse_suite

    if path.exists():
        return path
    suite = load_suite("standard")
    cell = [c for c in suite.cells() if c.symmetry == "standard" and c.seed == 0][0]
    short = parse_suite({"name": "ref", "data": [{"name": "digits"}], "networks": [{"depth": 3, "width": 16}],
                         "reference": {"options": {"num_warmup": 200, "num_samples": 200, "num_chains": 2}},
                         "engines": [{"name": "map"}]}).reference
    path.write_text(json.dumps(compute_reference(cell, short)))
    return path


def rhat_speed(repeats: int) -> dict:
    import numpy as np
    from arviz_stats.base import array_stats

    from bnn_asym.metrics.convergence import split_rhat

    rng = np.random.default_rng(0)
    values = rng.standard_normal((2, 2000, 2000)) + 0.1 * rng.standard_normal((2, 1, 2000))
    times = {"split_rhat": [], "arviz": []}
    for _ in range(repeats):
        start = time.perf_counter()
        ours = split_rhat(values)
        times["split_rhat"].append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = np.asarray(array_stats.rhat(np.moveaxis(values, -1, 0), chain_axis=-2, draw_axis=-1))
        times["arviz"].append(time.perf_counter() - start)
    return {"seconds": times, "max_abs_difference": float(np.max(np.abs(ours - theirs))),
            "speedup": min(times["arviz"]) / min(times["split_rhat"])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from bnn_asym.bench.machine import machine_description
    from bnn_asym.io import atomic_write_text

    with tempfile.TemporaryDirectory() as d:
        ref = reference_file(Path(d) / "reference.json")
        runs = {"csghmc": [], "mfvi": []}
        for _ in range(args.repeats):
            for label in runs:
                line = subprocess.run([sys.executable, "-c", CHILD, label, str(ref)], check=True, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1]
                runs[label].append(json.loads(line))
                print(label, runs[label][-1], flush=True)
    out = {"machine": machine_description(), "cells": runs, "rhat": rhat_speed(args.repeats)}
    atomic_write_text(RESULTS / "mcmc_cell_scoring.json", json.dumps(out, indent=1))
    atomic_write_text(RESULTS / "mcmc_cell_scoring.md", table(out))
    print(table(out))


def table(out: dict) -> str:
    lines = ["Scoring cost in a benchmark cell (`standard` suite settings, digits, MLP 64-16-16-10, standard net; "
             "a new process per run, median of the alternated runs)", "",
             "| cell | whole cell s | fit() call s (engine + 10 scored checkpoints) | engine's own steps s | "
             "final scoring s |", "|---|---|---|---|---|"]
    for label, runs in out["cells"].items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        lines.append(f"| {label} | {med['total_s']:.1f} | {med['fit_s']:.1f} | {med['engine_s']:.1f} | "
                     f"{med['total_s'] - med['fit_s']:.1f} |")
    r = out["rhat"]
    lines += ["", f"Rank-normalised R-hat of 2 x 2,000 draws x 2,000 quantities: `split_rhat` "
                  f"{min(r['seconds']['split_rhat']):.2f} s, ArviZ `rhat` {min(r['seconds']['arviz']):.2f} s "
                  f"({r['speedup']:.1f}x; largest difference {r['max_abs_difference']:.1e}).", "",
              f"Machine: {out['machine']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
