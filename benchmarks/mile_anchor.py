"""MILE against its anchors on the ``standard`` suite's digits split, under bde's prior (N(0, 1) on every weight).

The issue's anchor, measured on this split and prior on 2 cores: bde's MILE (8 members, 5,000 MCLMC warm-up
steps, 200 draws thinned by 10) 28 s for test NLL 0.090 and accuracy 0.980; bnn_asym's NUTS (2 x (200 + 200))
156 s for NLL 0.088; a 5-member deep ensemble 5 s for NLL 0.060. Measured here, every engine with its defaults
unless stated, in one process:

- ``ensemble``: 5 members (the deep ensemble alone), and 8 (MILE's own members, for its share of MILE's time);
- ``mile``: defaults (8 members, one tuned MCLMC chain from each), seeds 0-2;
- ``nuts``: 2 chains x (200 + 200) from the prior's start (the anchor's setting), and 2 chains from ensemble
  members (``init="ensemble"``, DEI-MCMC);
- MILE's and ensemble-initialised NUTS's agreement (share of test points whose argmax agrees) and total
  variation against NUTS from the prior's start.

Wall time: the whole ``fit()`` call, compilation included (first fit of each engine and shape in the process
compiles; MILE's seeds 1-2 reuse seed 0's programs, so their times are warm), 2 host devices.

Run:  python benchmarks/mile_anchor.py [--quick]
Writes benchmarks/results/mile_anchor.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

import bnn_asym

bnn_asym.set_cpu_devices(2)

from _results import write_results  # noqa: E402

from bnn_asym import datasets  # noqa: E402
from bnn_asym.bench.machine import machine_description  # noqa: E402
from bnn_asym.models import Prior  # noqa: E402

BDE = {"wall_s": 28.0, "nll": 0.090, "acc": 0.980}  # the measurement of bde's MILE on this split and prior


def scored(post, ds, wall: float) -> dict:
    p = post.predict(ds.X_test)
    return {
        "wall_s": wall,
        "nll": float(-np.mean(np.log(np.clip(p[np.arange(len(ds.y_test)), ds.y_test], 1e-12, None)))),
        "acc": float(np.mean(p.argmax(1) == ds.y_test)),
        "grad_evals": post.info.get("grad_evals"),
        "probs": p,
    }


def run(label: str, net, ds, engine: str, seed: int = 0, **options) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = bnn_asym.fit(
            net, ds.X_train, ds.y_train, engine=engine, prior=Prior("normal", 1.0), seed=seed, progress=False, **options
        )
    out = scored(post, ds, time.perf_counter() - start)
    out["warnings"] = sorted({str(w.message)[:160] for w in caught if "Warning" in type(w.message).__name__})
    print(f"{label} seed {seed}: {out['wall_s']:.1f} s, NLL {out['nll']:.4f}, acc {out['acc']:.4f}", flush=True)
    return out


def agreement(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    return float(np.mean(p.argmax(1) == q.argmax(1))), float(0.5 * np.abs(p - q).sum(1).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short chains, one seed")
    args = parser.parse_args(argv)
    ds = datasets.load("digits")  # the standard suite's split (test_size 0.25, seed 0)
    net = bnn_asym.MLP(ds.n_features, (16, 16), ds.n_classes, seed=0)
    seeds = [0] if args.quick else [0, 1, 2]
    nuts = dict(num_warmup=50, num_samples=50) if args.quick else dict(num_warmup=200, num_samples=200)
    rows: dict[str, list[dict]] = {}
    rows["ensemble, 5 members"] = [run("ensemble-5", net, ds, "ensemble", s, n_members=5) for s in seeds]
    rows["ensemble, 8 members (MILE's)"] = [run("ensemble-8", net, ds, "ensemble", s, n_members=8) for s in seeds]
    mile_opts = dict(schedule_scale=0.1) if args.quick else {}
    rows["mile (defaults)"] = [run("mile", net, ds, "mile", s, **mile_opts) for s in seeds]
    rows["nuts, 2 x (200 + 200), prior start"] = [run("nuts", net, ds, "nuts", 0, num_chains=2, **nuts)]
    rows["nuts, 2 x (200 + 200), ensemble start"] = [
        run("nuts-ens", net, ds, "nuts", 0, num_chains=2, init="ensemble", **nuts)
    ]
    reference = rows["nuts, 2 x (200 + 200), prior start"][0]["probs"]
    for runs in rows.values():
        for r in runs:
            r["agree_with_nuts"], r["tv_to_nuts"] = agreement(r.pop("probs"), reference)
    out = {
        "problem": f"digits ({len(ds.X_train)} train / {len(ds.X_test)} test rows), MLP 64-16-16-10 standard, "
        "N(0, 1) prior on every weight and bias",
        "bde_anchor": BDE,
        "rows": rows,
        "machine": machine_description(),
        "quick": args.quick,
    }
    name = "mile_anchor_quick" if args.quick else "mile_anchor"
    write_results(name, out, table(out))
    return 0


def summary(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.3f}" if len(values) == 1 else f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def table(out: dict) -> str:
    lines = [
        f"MILE and its anchors ({out['problem']})",
        "",
        "| engine | seeds | wall s (fit, compile included) | test NLL | accuracy | agreement with NUTS | TV to NUTS "
        "| gradient evaluations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in out["rows"].items():
        lines.append(
            f"| {label} | {len(runs)} | {summary([r['wall_s'] for r in runs])} | {summary([r['nll'] for r in runs])} "
            f"| {summary([r['acc'] for r in runs])} | {summary([r['agree_with_nuts'] for r in runs])} "
            f"| {summary([r['tv_to_nuts'] for r in runs])} | {summary([r['grad_evals'] for r in runs])} |"
        )
    b = out["bde_anchor"]
    lines += [
        f"| bde's MILE (the issue's measurement, not rerun here) | 1 | {b['wall_s']:.0f} | {b['nll']:.3f} "
        f"| {b['acc']:.3f} | - | - | - |",
        "",
        f"Machine: {out['machine']}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
