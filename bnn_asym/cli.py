"""The ``bnn-asym`` command line.

bnn-asym demo                     the three network kinds and their symmetry check, on digits
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnn-asym", description="Bayesian deep learning with asymmetric networks")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build standard, W-Asym and sigma-Asym MLPs and check permutation symmetry")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # bad input: a clear message, no traceback
        print(f"bnn-asym {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
