"""The ``bnn-asym`` command line.

bnn-asym demo                     the three network kinds and their symmetry check, on digits
bnn-asym lmc  --data mnist --model mlp     linear mode connectivity: table, JSON and plot
bnn-asym mli  --data mnist --model mlp     monotonic linear interpolation: table, JSON and plot
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _cmd_demo(args) -> int:
    import torch

    from . import MLP, datasets
    from .symmetry import permute_free, random_permutations

    ds = datasets.load("digits", seed=args.seed)
    x = torch.as_tensor(ds.X_test[:256], dtype=torch.float64)
    rng = np.random.default_rng(args.seed)
    print(f"data: {ds}")
    print(f"{'symmetry':<12} {'free params':>12} {'max |f(x) - f_perm(x)|':>24}   permutation-invariant?")
    for symmetry in ("standard", "w_asym", "sigma_asym"):
        net = MLP(ds.n_features, (32, 32), ds.n_classes, symmetry=symmetry, seed=args.seed)
        params = net.init(seed=args.seed, dtype="float64")
        permuted = permute_free(net, params, random_permutations(net, rng))

        def f(p):
            return net.apply_torch({k: torch.as_tensor(v) for k, v in p.items()}, x).numpy()

        change = float(np.abs(f(params) - f(permuted)).max())
        print(f"{symmetry:<12} {net.num_free_params:>12,} {change:>24.3g}   {'yes' if change < 1e-9 else 'no'}")
    return 0


def _cmd_phenomenon(args) -> int:
    import torch

    from .bench.machine import machine_description
    from .bench.phenomena import PhenomenonConfig, run_lmc, run_mli, write_report
    from .bench.store import ResultsStore
    from .training import TrainConfig

    torch.set_num_threads(args.threads)
    cfg = PhenomenonConfig(
        data=args.data, model=args.model, runs=args.runs, n_points=args.n_points, seed=args.seed,
        n_samples=args.n_samples,
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                          schedule=args.schedule),
    )
    store = ResultsStore(args.store)
    runner = run_lmc if args.command == "lmc" else run_mli
    report = runner(cfg, store, progress=not args.no_progress)
    paths = write_report(report, args.out, machine=machine_description())
    print(paths[0].read_text())
    print(f"reused {report['jobs_reused']} of {report['jobs']} jobs from {args.store}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _add_phenomenon_parser(sub, name: str, help_text: str, runs_help: str):
    from .bench.phenomena import MODELS
    from .datasets import NAMES

    p = sub.add_parser(name, help=help_text)
    p.add_argument("--data", default="mnist", choices=NAMES)
    p.add_argument("--model", default="mlp", choices=MODELS)
    p.add_argument("--runs", type=int, default=5, help=runs_help)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", default="cosine", choices=("cosine", "constant"))
    p.add_argument("--n-points", type=int, default=25)
    p.add_argument("--n-samples", type=int, default=None, help="subsample the data set (default: all of it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest and most robust on small CPUs)")
    p.add_argument("--out", default="benchmarks/results", help="folder for the table, JSON and plot")
    p.add_argument("--store", default="runs/phenomena.sqlite", help="SQLite store of finished jobs (for resuming)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_phenomenon)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnn-asym", description="Bayesian deep learning with asymmetric networks")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build standard, W-Asym and sigma-Asym MLPs and check permutation symmetry")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
    _add_phenomenon_parser(sub, "lmc", "linear mode connectivity: standard, aligned, sigma-Asym, W-Asym pairs",
                           "pairs per variant")
    _add_phenomenon_parser(sub, "mli", "monotonic linear interpolation from init to trained weights",
                           "networks per variant")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FloatingPointError) as e:  # bad input or a diverged run: a clear message, no traceback
        print(f"bnn-asym {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
