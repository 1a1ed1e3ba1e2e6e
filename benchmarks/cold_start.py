"""Cold starts: how long a new process takes to fit a tiny BNN, and whether the compilation cache works.

Measured, each in fresh processes (the machine line is in the output):
1. ``bnn-asym --help`` wall time (target <= 1 s): building the parser must not import JAX or torch.
2. A 2-8-2 MLP on 200 rows, fitted by ``mfvi`` (500 steps) and ``nuts`` (1 chain, 100 + 100), each in a
   new process: the first process fills an empty cache, the next ones (each with a different
   PYTHONHASHSEED) must hit it. Targets with a warm cache: mfvi <= 3 s, nuts <= 5 s (import included).
3. Persistent-cache hits and misses of those later processes (JAX's compiler log): every program must
   hit, and the cache must not grow -- it grew by ~330 KB per process when a key depended on hash order.
4. Pruning: a cache above its cap is cut to 80% of the cap by the next process.

Run:  python benchmarks/cold_start.py [--repeats 3]
Writes benchmarks/results/cold_start.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
BNN_ASYM = str(Path(PYTHON).parent / "bnn-asym")

FIT_SCRIPT = r"""
import logging, sys, time
start = time.perf_counter()
logging.basicConfig(level=logging.WARNING, format="%(message)s")
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
import numpy as np
import bnn_asym
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 2)).astype(np.float32)
y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
net = bnn_asym.MLP(2, 8, 2, symmetry="w_asym")
options = {"mfvi": dict(num_steps=500), "nuts": dict(num_warmup=100, num_samples=100, num_chains=1)}[sys.argv[1]]
post = bnn_asym.fit(net, X, y, engine=sys.argv[1], progress=False, **options)
post.predict(X[:5])
print(f"TOTAL {time.perf_counter() - start:.3f}", file=sys.stderr)
"""


def cache_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir()) if path.exists() else 0


def run_fit(engine: str, cache: Path, hashseed: int) -> dict:
    env = {**os.environ, "BNN_ASYM_JAX_CACHE": str(cache), "PYTHONHASHSEED": str(hashseed)}
    start = time.perf_counter()
    out = subprocess.run([PYTHON, "-c", FIT_SCRIPT, engine], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    log = out.stderr
    return {
        "wall_s": wall,
        "in_process_s": float(re.search(r"TOTAL ([\d.]+)", log).group(1)),
        "cache_misses": len(re.findall(r"PERSISTENT COMPILATION CACHE MISS", log)),
        "missed": sorted(set(re.findall(r"CACHE MISS for '([^']+)'", log))),
    }


def help_time(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([BNN_ASYM, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def pruning() -> dict:
    from bnn_asym.jax_setup import prune_cache

    with tempfile.TemporaryDirectory() as d:
        for i in range(100):  # 100 entries of 100 KB, oldest first
            p = Path(d) / f"jit_f-{i:03d}-cache"
            p.write_bytes(b"x" * 100_000)
            os.utime(p, (1_000_000 + i, 1_000_000 + i))
        before = cache_size(Path(d))
        freed = prune_cache(d, max_bytes=5_000_000)
        after = cache_size(Path(d))
        oldest_left = min(int(p.name.split("-")[1]) for p in Path(d).iterdir())
    return {
        "before_bytes": before,
        "cap_bytes": 5_000_000,
        "after_bytes": after,
        "freed_bytes": freed,
        "oldest_entry_left": oldest_left,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from bnn_asym.bench.machine import machine_description

    out = {"machine": machine_description(), "help_s": help_time(args.repeats), "engines": {}}
    with tempfile.TemporaryDirectory() as d:
        for engine in ("mfvi", "nuts"):
            cache = Path(d) / engine
            cold = run_fit(engine, cache, hashseed=1)
            size_after_first = cache_size(cache)
            warm = [run_fit(engine, cache, hashseed=2 + r) for r in range(args.repeats)]
            out["engines"][engine] = {
                "cold": cold,
                "warm": warm,
                "cache_bytes_after_first": size_after_first,
                "cache_bytes_after_all": cache_size(cache),
            }
            print(engine, out["engines"][engine], flush=True)
    out["pruning"] = pruning()
    from _results import write_results

    write_results("cold_start", out, table(out))


def table(out: dict) -> str:
    lines = [
        "Cold starts (a new process each; the warm runs use a different PYTHONHASHSEED each)",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| `bnn-asym --help` (best of {len(out['help_s'])}) | {min(out['help_s']):.2f} s | <= 1 s |",
    ]
    targets = {"mfvi": 3.0, "nuts": 5.0}
    for engine, r in out["engines"].items():
        warm = [w["wall_s"] for w in r["warm"]]
        misses = sum(w["cache_misses"] for w in r["warm"])
        grew = r["cache_bytes_after_all"] - r["cache_bytes_after_first"]
        lines += [
            f"| {engine}: first process, empty cache | {r['cold']['wall_s']:.2f} s | - |",
            f"| {engine}: later processes, warm cache (median of {len(warm)}) | {sorted(warm)[len(warm) // 2]:.2f} s "
            f"(max {max(warm):.2f}) | <= {targets[engine]:.0f} s |",
            f"| {engine}: persistent-cache misses in later processes | {misses} | 0 |",
            f"| {engine}: cache growth over later processes | {grew} bytes | 0 |",
        ]
    p = out["pruning"]
    lines.append(
        f"| pruning: 10 MB cache, 5 MB cap | {p['after_bytes'] / 1e6:.1f} MB left, the 60 oldest entries "
        f"removed | <= cap |"
        if p["oldest_entry_left"] == 60
        else f"| pruning: 10 MB cache, 5 MB cap | {p['after_bytes'] / 1e6:.1f} MB left | <= cap |"
    )
    lines += ["", f"Machine: {out['machine']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
