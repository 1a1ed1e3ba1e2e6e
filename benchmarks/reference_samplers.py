"""What the ``standard`` suite's sigma-Asym reference needs: NUTS against Metropolis-adjusted MCLMC, and whether
its chains' effective draws grow with length.

The reference's own setting (digits, MLP 64-16-16-10, prior_scale 1, chains from deep-ensemble members, seed
1000, 4 chains parallel over 2 host devices), one long round per sampler. Per sampler, on the test-set
predictive probabilities (the reference's pass rule): max rank-normalised R-hat and min bulk ESS over all kept
draws, over their first half and over their second half (a transient left by a short warmup shows as a first
half worse than the second; a slow switch between states as an ESS that does not grow from half to whole),
the max chainwise R-hat (every chain in 4 pieces: has each chain settled where it is?), effective draws per
1,000 gradient evaluations (kept draws' gradients; tuning's in the total), and the worst quantity's mean per
chain and half.

Run:  python benchmarks/reference_samplers.py [--quick] [--symmetry sigma_asym]
Writes benchmarks/results/reference_samplers.{md,json}.
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

# about equal gradient budgets on sigma-Asym: NUTS's trees there are 511 leapfrog steps (depth 9), an adjusted
# MCLMC trajectory at most 512 integration steps of 2 gradients
SAMPLERS = {
    "nuts": dict(num_chains=4, num_warmup=400, num_samples=1200),
    "adjusted_mclmc": dict(num_chains=4, num_warmup=500, num_samples=700),
}
QUICK = {
    "nuts": dict(num_chains=2, num_warmup=20, num_samples=20),
    "adjusted_mclmc": dict(num_chains=2, num_warmup=20, num_samples=20),
}


def mixing(probs: np.ndarray) -> dict:
    """Max R-hat and min bulk ESS of (chains, draws, quantities)."""
    return {"rhat_max": rhat_summary(probs, ess=False)["max_rhat"], "ess_min": float(ess_bulk(probs).min())}


def run(symmetry: str, engine: str, options: dict) -> dict:
    post, ds, probs, wall = sample(symmetry, engine, options)
    half = post.n_draws // 2
    whole, first, second = mixing(probs), mixing(probs[:, :half]), mixing(probs[:, half:])
    worst = int(np.argmin(ess_bulk(probs)))
    stats = post.sample_stats  # NUTS counts a draw's leapfrog steps, MCLMC its gradient evaluations
    kept_grads = float((stats["grad_evals"] if "grad_evals" in stats else stats["n_steps"]).sum())
    convergence = post.prediction_convergence(X=ds.X_test)
    row = {
        "sampler": engine,
        "options": options,
        "wall_s": wall,
        "grad_evals": post.info.get("grad_evals"),
        "kept_grad_evals": kept_grads,
        "step_size": float(post.sample_stats["step_size"].mean()),
        "whole": whole,
        "first_half": first,
        "second_half": second,
        "chainwise_rhat_max": convergence["max_chainwise_rhat"],
        "ess_per_1000_grads": 1000 * whole["ess_min"] / kept_grads,
        "worst_quantity": worst,
        "worst_means": [
            [float(probs[c, :half, worst].mean()), float(probs[c, half:, worst].mean())] for c in range(post.n_chains)
        ],
    }
    print(
        f"{symmetry} / {engine}: {wall:.0f} s, R-hat {whole['rhat_max']:.3f} (halves {first['rhat_max']:.3f}, "
        f"{second['rhat_max']:.3f}), min ESS {whole['ess_min']:.0f} (halves {first['ess_min']:.0f}, "
        f"{second['ess_min']:.0f}), chainwise R-hat {row['chainwise_rhat_max']:.3f}",
        flush=True,
    )
    return row


def table(out: dict) -> str:
    lines = [
        f"Reference samplers on {out['problem']} ({out['symmetry']}; chains from deep-ensemble members, seed 1000, "
        "one round)",
        "",
        "| sampler | chains x (warmup + draws) | max R-hat: all / 1st half / 2nd half | min ESS: all / 1st half / "
        "2nd half | max chainwise R-hat | min ESS / 1k grads | step size | grads (M) | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        o, w, a, b = r["options"], r["whole"], r["first_half"], r["second_half"]
        lines.append(
            f"| {r['sampler']} | {o['num_chains']} x ({o['num_warmup']} + {o['num_samples']}) "
            f"| {w['rhat_max']:.3f} / {a['rhat_max']:.3f} / {b['rhat_max']:.3f} "
            f"| {w['ess_min']:.0f} / {a['ess_min']:.0f} / {b['ess_min']:.0f} | {r['chainwise_rhat_max']:.3f} "
            f"| {r['ess_per_1000_grads']:.3f} | {r['step_size']:.4f} | {(r['grad_evals'] or 0) / 1e6:.2f} "
            f"| {r['wall_s']:.0f} |"
        )
    lines += ["", "The worst quantity's mean per chain (1st half, 2nd half):", ""]
    for r in out["rows"]:
        means = "; ".join(f"{a:.3g}, {b:.3g}" for a, b in r["worst_means"])
        lines.append(f"- {r['sampler']} (test probability #{r['worst_quantity']}): {means}")
    lines += ["", f"Machine: {out['machine']}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 chains of 20 + 20")
    parser.add_argument("--symmetry", default="sigma_asym", choices=("standard", "w_asym", "sigma_asym"))
    args = parser.parse_args(argv)
    samplers = QUICK if args.quick else SAMPLERS
    rows = [run(args.symmetry, engine, options) for engine, options in samplers.items()]
    out = {
        "problem": problem_text(),
        "symmetry": args.symmetry,
        "rows": rows,
        "machine": machine_description(),
        "quick": args.quick,
    }
    name = f"reference_samplers_{args.symmetry}" + ("_quick" if args.quick else "")
    write_results(name, out, table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
