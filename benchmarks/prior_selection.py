"""Empirical Bayes for the prior scale on the ``standard`` suite's digits split.

For each symmetry (MLP 64-16-16-10, the suite's network), ``select_prior_scale`` by the Laplace evidence and
by held-out NLL over the default grid (0.25, 0.5, 1, sqrt 2, 2, 4, 10; ``Prior("fan_in", s)``:
``N(0, s^2 / fan_in)``), the seconds each selection takes (one MAP per scale, compilation included), and a
5-member deep ensemble's test NLL and accuracy at the suite's scale (1) and at each chosen one.

Run:  python benchmarks/prior_selection.py
Writes benchmarks/results/prior_selection.{md,json}.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
from _results import write_results

import bnn_asym
from bnn_asym import datasets
from bnn_asym.bench.machine import machine_description
from bnn_asym.models import Prior
from bnn_asym.warn import ConvergenceWarning

SUITE_SCALE = 1.0


def ensemble_scores(net, ds, scale: float) -> dict:
    post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="ensemble", prior=Prior("fan_in", scale), progress=False)
    p = post.predict(ds.X_test)
    return {
        "nll": float(-np.mean(np.log(np.clip(p[np.arange(len(ds.y_test)), ds.y_test], 1e-12, None)))),
        "acc": float(np.mean(p.argmax(1) == ds.y_test)),
    }


def main() -> int:
    ds = datasets.load("digits")
    out: dict = {"problem": "digits, MLP 64-16-16-10, Prior('fan_in', scale)", "rows": {}}
    for symmetry in ("standard", "w_asym", "sigma_asym"):
        net = bnn_asym.MLP(ds.n_features, (16, 16), ds.n_classes, symmetry=symmetry, seed=0)
        row: dict = {}
        for method in ("evidence", "validation"):
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                choice = bnn_asym.select_prior_scale(net, ds.X_train, ds.y_train, method=method)
            row[method] = {
                **choice.to_dict(),
                "seconds": time.perf_counter() - start,
                "warnings": [str(w.message)[:300] for w in caught],
            }
            print(symmetry, method, f"{row[method]['seconds']:.1f} s", choice.scale, flush=True)
        scales = sorted({SUITE_SCALE, row["evidence"]["scale"], row["validation"]["scale"]})
        row["ensemble"] = {f"{s:.3g}": ensemble_scores(net, ds, s) for s in scales}
        print(symmetry, row["ensemble"], flush=True)
        out["rows"][symmetry] = row
    out["machine"] = machine_description()
    write_results("prior_selection", out, table(out))
    return 0


def table(out: dict) -> str:
    first = next(iter(out["rows"].values()))
    grid = first["evidence"]["scales"]
    lines = [
        f"Prior-scale selection ({out['problem']}): log evidence per training row (higher is better) and "
        "held-out NLL (lower is better) at each scale; the chosen scale in bold",
        "",
        "| symmetry | method | " + " | ".join(f"{s:.3g}" for s in grid) + " | chosen | seconds |",
        "|---|---|" + "---|" * (len(grid) + 2),
    ]
    for symmetry, row in out["rows"].items():
        for method in ("evidence", "validation"):
            r = row[method]
            cells = [f"**{v:.4f}**" if s == r["scale"] else f"{v:.4f}" for s, v in zip(r["scales"], r["scores"])]
            tail = f" | {r['scale']:.3g} | {r['seconds']:.0f} |"
            lines.append(f"| {symmetry} | {method} | " + " | ".join(cells) + tail)
    lines += ["", "5-member deep ensemble at the suite's scale (1) and at the chosen ones (test NLL / accuracy):", ""]
    lines += ["| symmetry | scale | test NLL | accuracy |", "|---|---|---|---|"]
    for symmetry, row in out["rows"].items():
        for scale, m in row["ensemble"].items():
            lines.append(f"| {symmetry} | {scale} | {m['nll']:.4f} | {m['acc']:.4f} |")
    lines += ["", f"Machine: {out['machine']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
