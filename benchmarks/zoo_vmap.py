"""Model-zoo training speed: networks per second trained by one vmapped program vs one network at a time.

The zoo's CNN (digits, convs of 8 and 16 channels, global-average-pool head), the same sampled
hyper-parameters, every network trained for a fixed number of epochs (``EPOCHS``) so the two sides do the same
work. Each side is timed warm (its program compiled by a first call of the same shape) and cold (that first
call), alternated ``REPEATS`` times; the ratio of the best warm rates is the speed-up (target >= 5x).

Run:  python benchmarks/zoo_vmap.py [--family cnn|mlp|resnet]
Writes benchmarks/results/zoo_vmap.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax
import numpy as np
from _results import write_results

from bnn_asym import zoo
from bnn_asym.bench.machine import machine_description

EPOCHS = 2
CHUNK = 50
ALONE = 5  # networks trained one at a time per repeat
REPEATS = 2


def timed(cfg, ds, spec, networks) -> float:
    hyper = zoo.sample_hyperparameters(cfg, "standard", networks)
    hyper["epochs"] = np.full(len(networks), EPOCHS, np.int32)  # equal work on both sides
    inits_list = [spec.init(zoo.init_seed(cfg, "standard", n)) for n in networks]
    inits = {k: np.stack([p[k] for p in inits_list]) for k in inits_list[0]}
    keys = jax.numpy.stack([jax.random.PRNGKey(int(n)) for n in networks])
    start = time.perf_counter()
    zoo.train_networks(spec, ds, hyper, inits, keys, cfg.batch_size)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="cnn", choices=zoo.FAMILIES)
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(zoo.ZooConfig(), family=args.family)
    ds = zoo.load_data(cfg)
    spec = zoo.zoo_spec(cfg, ds, "standard")
    cold = {"vmapped": timed(cfg, ds, spec, np.arange(CHUNK)), "alone": timed(cfg, ds, spec, np.arange(1))}
    rates: dict[str, list[float]] = {"vmapped": [], "alone": []}
    for r in range(REPEATS):  # alternated: a busy neighbour slows both sides alike
        rates["vmapped"].append(CHUNK / timed(cfg, ds, spec, np.arange(CHUNK) + 1000 * (r + 1)))
        seconds = sum(timed(cfg, ds, spec, np.array([2000 * (r + 1) + i])) for i in range(ALONE))
        rates["alone"].append(ALONE / seconds)
    out = {
        "problem": f"{args.family} on digits ({len(ds.X_train)} training rows), {spec.num_free_params} free "
        f"parameters, {EPOCHS} epochs of batch {cfg.batch_size} per network",
        "chunk": CHUNK,
        "cold_s": cold,
        "networks_per_s": rates,
        "speedup": max(rates["vmapped"]) / max(rates["alone"]),
        "machine": machine_description(),
    }
    table = "\n".join(
        [
            f"Zoo training speed ({out['problem']})",
            "",
            "| side | networks / s (warm, best of repeats) | first call (compile included) | target |",
            "|---|---|---|---|",
            f"| {CHUNK} networks in one vmapped program | {max(rates['vmapped']):.2f} | {cold['vmapped']:.1f} s | |",
            f"| one network at a time | {max(rates['alone']):.2f} | {cold['alone']:.1f} s | |",
            f"| speed-up | {out['speedup']:.1f}x | | >= 5x |",
            "",
            f"Machine: {out['machine']}",
            "",
        ]
    )
    write_results(f"zoo_vmap_{args.family}", out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
