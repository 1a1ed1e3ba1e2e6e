"""What scoring costs in an SG-MCMC benchmark cell, where the engine itself takes seconds.

The `standard` suite's cyclical SGHMC cell (digits, MLP 64-16-16-10, standard net, 2 chains x 1,000 kept
draws, 10 checkpoints scored against a reference: predictive, agreement, NLL and prediction R-hat over every
draw so far), through ``run_cell`` twice in this process (the second with warm compiled programs).
Reported: the whole cell, the fit() call (engine + checkpoint scoring), the engine's own steps, and the
final scoring (calibration, diagnostics, modes, barriers, R-hat before/after alignment).

Then the convergence summaries of that posterior -- rank-normalised R-hat, bulk and tail ESS of its 1,482
parameters and of its predictions at 200 training inputs (2,000 quantities) -- by ``bnn_asym.metrics``
(vectorised over quantities) vs ArviZ's ``array_stats`` (a Python loop per quantity, whose ESS loop runs
longer the more autocorrelated a chain is), alternated 3 times, best of each, with the largest difference.

Then every scorer of the final scoring timed alone on that cell, and the OOD scoring's uncertainty scores two
ways: all four criteria from one check and one entropy decomposition per set (``uncertainty_scores``, what
``Posterior.evaluate`` does) vs one criterion at a time (``uncertainty_score``, what it did: the test set's
decomposition redone for every criterion of every OOD set), alternated 3 times, best of each.

Run:  python benchmarks/mcmc_cell_scoring.py
Writes benchmarks/results/mcmc_cell_scoring.{md,json}.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np


def cell_and_reference():
    from bnn_asym.bench.harness import compute_reference
    from bnn_asym.bench.suites import load_suite, parse_suite

    suite = load_suite("standard")
    cell = next(c for c in suite.cells() if c.engine.label == "csghmc" and c.symmetry == "standard" and c.seed == 0)
    short = parse_suite(
        {
            "name": "ref",
            "data": [{"name": "digits"}],
            "networks": [{"depth": 3, "width": 16}],
            "reference": {"options": {"num_warmup": 200, "num_samples": 200, "num_chains": 2}},
            "engines": [{"name": "map"}],
        }
    ).reference  # enough to score against; not the suite's
    return cell, compute_reference(cell, short)


def whole_cell(cell, reference) -> list[dict]:
    from bnn_asym.bench.harness import run_cell

    runs = []
    for _ in range(2):
        start = time.perf_counter()
        m = run_cell(cell, reference)["metrics"]
        total = time.perf_counter() - start
        runs.append(
            {"total_s": total, "fit_s": m["fit_s"], "engine_s": m["wall_s"], "final_scoring_s": total - m["fit_s"]}
        )
        print("cell", runs[-1], flush=True)
    return runs


def summaries(cell) -> dict:
    from arviz_stats.base import array_stats

    from bnn_asym.bench.harness import fit_cell
    from bnn_asym.metrics.convergence import ess_bulk, ess_tail, split_rhat
    from bnn_asym.posterior import class_probabilities

    fitted = fit_cell(dataclasses.replace(cell, metrics=("calibration",), chain_method="sequential"))  # no curves
    ds, post = fitted.ds, fitted.post
    params = np.concatenate([v.reshape(post.n_chains, post.n_draws, -1) for v in post.draws.values()], -1)
    preds = class_probabilities(post.outputs(ds.X_train[:200]).astype(np.float64), "categorical")
    preds = preds.reshape(post.n_chains, post.n_draws, -1)

    def ours(x):
        return np.stack([split_rhat(x), ess_bulk(x), ess_tail(x)])

    def arviz(x):
        m = np.moveaxis(x, -1, 0)
        return np.stack(
            [
                np.asarray(array_stats.rhat(m, chain_axis=-2, draw_axis=-1)),
                np.asarray(array_stats.ess(m, chain_axis=-2, draw_axis=-1, method="bulk")),
                np.asarray(array_stats.ess(m, chain_axis=-2, draw_axis=-1, method="tail", prob=(0.05, 0.95))),
            ]
        )

    out = {}
    for name, x in (("parameters", params), ("predictions", preds)):
        x = x[..., x.reshape(-1, x.shape[-1]).std(0) > 0].astype(np.float64)  # both sides see the same values
        times = {"bnn_asym": [], "arviz": []}
        for _ in range(3):
            for side, fn in (("bnn_asym", ours), ("arviz", arviz)):
                start = time.perf_counter()
                result = fn(x)
                times[side].append(time.perf_counter() - start)
                if side == "bnn_asym":
                    mine = result
                else:
                    theirs = result
        rel = np.abs(mine - theirs) / np.maximum(np.abs(theirs), 1e-12)
        out[name] = {
            "shape": list(x.shape),
            "seconds": times,
            "speedup": min(times["arviz"]) / min(times["bnn_asym"]),
            "max_relative_difference": float(np.nanmax(rel)),
        }
        print(name, out[name], flush=True)
    return out


def scorers(cell, reference) -> dict:
    from bnn_asym.bench import harness

    fitted = harness.fit_cell(cell, reference)
    seconds = {}
    for scorer in harness.cell_scorers(cell):
        start = time.perf_counter()
        scorer(fitted)
        seconds[scorer.__name__] = time.perf_counter() - start
    print("scorers", seconds, flush=True)
    return {"seconds": seconds, "ood_scores": ood_scores(fitted)}


def ood_scores(fitted) -> dict:
    from bnn_asym.bench.harness import ood_kinds
    from bnn_asym.datasets import ood_inputs
    from bnn_asym.metrics.uncertainty import CRITERIA, ood_detection, uncertainty_score, uncertainty_scores

    post, ds = fitted.post, fitted.ds
    test = post.draw_probabilities(ds.X_test)
    sets = [post.draw_probabilities(ood_inputs(ds, kind, seed=0)) for kind in ood_kinds(ds)]

    def at_once():
        scores = uncertainty_scores(test)
        return [[ood_detection(scores[c], s[c])["auroc"] for c in CRITERIA] for s in map(uncertainty_scores, sets)]

    def one_by_one():
        return [
            [ood_detection(uncertainty_score(test, c), uncertainty_score(s, c))["auroc"] for c in CRITERIA]
            for s in sets
        ]

    times: dict[str, list[float]] = {"at_once": [], "one_by_one": []}
    results = {}
    for _ in range(3):
        for side, fn in (("at_once", at_once), ("one_by_one", one_by_one)):
            start = time.perf_counter()
            results[side] = np.asarray(fn())
            times[side].append(time.perf_counter() - start)
    out = {
        "probs_shape": list(test.shape),
        "ood_sets": len(sets),
        "seconds": times,
        "speedup": min(times["one_by_one"]) / min(times["at_once"]),
        "max_abs_difference": float(np.abs(results["at_once"] - results["one_by_one"]).max()),
    }
    print("ood scores", out, flush=True)
    return out


def main():
    import torch
    from _results import write_results

    from bnn_asym.bench.machine import machine_description

    torch.set_num_threads(1)
    cell, reference = cell_and_reference()
    out = {
        "machine": machine_description(),
        "cell": whole_cell(cell, reference),
        "summaries": summaries(cell),
        "scorers": scorers(cell, reference),
    }
    write_results("mcmc_cell_scoring", out, table(out))


def table(out: dict) -> str:
    warm = out["cell"][-1]
    lines = [
        "Scoring cost in an SG-MCMC benchmark cell (`standard` suite: cyclical SGHMC, digits, MLP 64-16-16-10, "
        "standard net, 2 chains x 1,000 kept draws, 10 scored checkpoints; second run in the process)",
        "",
        "| part | seconds |",
        "|---|---|",
        f"| whole cell | {warm['total_s']:.1f} |",
        f"| fit() call: engine + 10 scored checkpoints | {warm['fit_s']:.1f} |",
        f"| the engine's own steps | {warm['engine_s']:.1f} |",
        f"| final scoring (calibration, diagnostics, modes, barriers, aligned R-hat) | {warm['final_scoring_s']:.1f} |",
        "",
        "Rank-normalised R-hat + bulk ESS + tail ESS of that posterior, best of 3 alternated:",
        "",
        "| values | bnn_asym.metrics s | ArviZ array_stats s | speed-up | largest relative difference |",
        "|---|---|---|---|---|",
    ]
    for name, r in out["summaries"].items():
        lines.append(
            f"| {name} {tuple(r['shape'])} | {min(r['seconds']['bnn_asym']):.2f} | "
            f"{min(r['seconds']['arviz']):.2f} | {r['speedup']:.1f}x | {r['max_relative_difference']:.1e} |"
        )
    scorer_seconds = out["scorers"]["seconds"]
    o = out["scorers"]["ood_scores"]
    lines += [
        "",
        "The final scoring, scorer by scorer (one fit, each scorer once):",
        "",
        "| scorer | seconds |",
        "|---|---|",
        *(f"| {name} | {s:.2f} |" for name, s in scorer_seconds.items()),
        "",
        f"OOD detection by the four uncertainty criteria, test set vs {o['ood_sets']} OOD sets, per-draw "
        f"probabilities {tuple(o['probs_shape'])}, best of 3 alternated: all criteria from one decomposition per "
        f"set {min(o['seconds']['at_once']):.2f} s, one criterion at a time {min(o['seconds']['one_by_one']):.2f} s "
        f"({o['speedup']:.1f}x); largest AUROC difference {o['max_abs_difference']:.1e}.",
    ]
    lines += ["", f"Machine: {out['machine']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
