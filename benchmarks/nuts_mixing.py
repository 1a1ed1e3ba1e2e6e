"""Why the ``standard`` suite's sigma-Asym reference is the slow one: NUTS's mixing per gradient by symmetry.

On the ``standard`` suite's digits split and MLP (64-16-16-10, prior_scale 1), the reference sampler's own
setting (NUTS from deep-ensemble members, seed 1000) with 4 chains of 400 warmup + 400 draws, chains parallel
over 2 host devices, for standard, W-Asym and sigma-Asym nets -- and sigma-Asym with FiGLU's unscaled F
(N(0, 1): near-hard gates), to ask whether FiGLU's near-linear gate (sigmoid(Fx) * x ~ x / 2 + ... for small
Fx, F ~ N(0, 1/d)) leaves the slow directions. Per net: step size, tree depth, leapfrog steps per draw, the
test-set predictive probabilities' min / median bulk ESS and max rank-normalised R-hat (the reference's pass
rule), the min ESS over the probabilities that move predictions (mean >= 0.01), effective draws per 1,000
gradient evaluations of the kept draws, and where the slow parameters sit (per layer: min / median ESS,
units with a parameter of ESS < 20).

Run:  python benchmarks/nuts_mixing.py [--quick]
Writes benchmarks/results/nuts_mixing.{md,json}.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import bnn_asym

bnn_asym.set_cpu_devices(2)

from _results import write_results  # noqa: E402
from _standard_mlp import problem_text, sample  # noqa: E402

from bnn_asym.bench.machine import machine_description  # noqa: E402
from bnn_asym.metrics.convergence import ess_bulk, rhat_summary  # noqa: E402

VARIANTS = (
    ("standard", "standard", "scaled"),
    ("W-Asym", "w_asym", "scaled"),
    ("sigma-Asym (F ~ N(0, 1/d), the default)", "sigma_asym", "scaled"),
    ("sigma-Asym (F ~ N(0, 1), near-hard gates)", "sigma_asym", "unscaled"),
)
SLOW_ESS = 20


def layer_mixing(post) -> dict:
    """Per layer: min and median bulk ESS of its free parameters, and the output units (rows) with a parameter
    of ESS below SLOW_ESS."""
    out: dict[str, dict] = {}
    for name, v in sorted(post.draws.items()):
        ess = ess_bulk(v.reshape(post.n_chains, post.n_draws, -1)).reshape(v.shape[2:])
        layer = name.rsplit(".", 1)[0]
        row = out.setdefault(layer, {"ess": [], "slow_units": set()})
        row["ess"].append(ess.ravel())
        slow = ess < SLOW_ESS if ess.ndim == 1 else (ess < SLOW_ESS).any(axis=tuple(range(1, ess.ndim)))
        row["slow_units"] |= set(np.flatnonzero(slow).tolist())
    return {
        layer: {
            "min_ess": float(np.min(np.concatenate(r["ess"]))),
            "median_ess": float(np.median(np.concatenate(r["ess"]))),
            "slow_units": sorted(r["slow_units"]),
        }
        for layer, r in out.items()
    }


def run(label: str, symmetry: str, figlu_init: str, options: dict) -> dict:
    post, ds, probs, wall = sample(symmetry, "nuts", options, figlu_init=figlu_init)
    summary = rhat_summary(probs, ess="bulk")
    ess = ess_bulk(probs)
    moving = probs.mean((0, 1)) >= 0.01
    kept_grads = float(post.sample_stats["n_steps"].sum())
    p = probs.mean((0, 1)).reshape(len(ds.y_test), -1)
    row = {
        "label": label,
        "wall_s": wall,
        "grad_evals": post.info.get("grad_evals"),
        "step_size": float(post.sample_stats["step_size"].mean()),
        "tree_depth": float(post.sample_stats["tree_depth"].mean()),
        "leapfrog_per_draw": kept_grads / (post.n_chains * post.n_draws),
        "rhat_pred_max": summary["max_rhat"],
        "ess_pred_min": float(ess.min()),
        "ess_pred_median": float(np.median(ess)),
        "ess_pred_min_moving": float(ess[moving].min()),
        "ess_per_1000_grads": 1000 * float(ess.min()) / kept_grads,
        "ess_median_per_1000_grads": 1000 * float(np.median(ess)) / kept_grads,
        "test_nll": float(-np.mean(np.log(np.clip(p[np.arange(len(ds.y_test)), ds.y_test], 1e-12, None)))),
        "test_acc": float(np.mean(p.argmax(1) == ds.y_test)),
        "layers": layer_mixing(post),
    }
    print(
        f"{label}: {wall:.0f} s, depth {row['tree_depth']:.2f}, step {row['step_size']:.4f}, R-hat "
        f"{row['rhat_pred_max']:.3f}, min ESS {row['ess_pred_min']:.0f} ({row['ess_pred_min_moving']:.0f} moving)",
        flush=True,
    )
    return row


def table(out: dict) -> str:
    o = out["options"]
    lines = [
        f"NUTS's mixing by symmetry ({out['problem']}; {o['num_chains']} chains x ({o['num_warmup']} warmup + "
        f"{o['num_samples']} draws) from deep-ensemble members, seed 1000)",
        "",
        "| net | tree depth | step size | leapfrog / draw | max R-hat (test probs) | min ESS | min ESS, probs >= 0.01 "
        "| median ESS | min ESS / 1k grads | median ESS / 1k grads | test NLL | acc | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        lines.append(
            f"| {r['label']} | {r['tree_depth']:.2f} | {r['step_size']:.4f} | {r['leapfrog_per_draw']:.0f} "
            f"| {r['rhat_pred_max']:.3f} | {r['ess_pred_min']:.0f} | {r['ess_pred_min_moving']:.0f} "
            f"| {r['ess_pred_median']:.0f} | {r['ess_per_1000_grads']:.3f} | {r['ess_median_per_1000_grads']:.3f} "
            f"| {r['test_nll']:.3f} | {r['test_acc']:.3f} | {r['wall_s']:.0f} |"
        )
    lines += ["", f"Where the slow parameters sit (units with a parameter of bulk ESS < {SLOW_ESS}):", ""]
    lines += ["| net | layer | min ESS | median ESS | slow units |", "|---|---|---|---|---|"]
    for r in out["rows"]:
        for layer, m in r["layers"].items():
            units = ", ".join(map(str, m["slow_units"])) or "none"
            lines.append(f"| {r['label']} | {layer} | {m['min_ess']:.0f} | {m['median_ess']:.0f} | {units} |")
    lines += ["", f"Machine: {out['machine']}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 chains of 30 + 30")
    args = parser.parse_args(argv)
    options = (
        dict(num_chains=2, num_warmup=30, num_samples=30)
        if args.quick
        else dict(num_chains=4, num_warmup=400, num_samples=400)
    )
    rows = [run(label, symmetry, figlu, options) for label, symmetry, figlu in VARIANTS]
    out = {
        "problem": problem_text(),
        "options": options,
        "rows": rows,
        "machine": machine_description(),
        "quick": args.quick,
    }
    name = "nuts_mixing_quick" if args.quick else "nuts_mixing"
    write_results(name, out, table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
