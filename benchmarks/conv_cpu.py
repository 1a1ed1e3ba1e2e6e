"""Convolution on the CPU: XLA's convolution op vs the same convolution as one matmul over image patches
(``bnn_asym.nets.jax._conv2d_as_matmul``, what conv layers run on the CPU).

Two settings, because XLA's CPU convolution is fast at the top level of a program and slow inside a loop:
- *in a loop*: SGD steps (gradient of a small conv net's loss on a batch of 64) in a ``fori_loop`` -- how every
  engine runs its steps and every zoo epoch its batches;
- *alone*: one jitted gradient of the same loss -- how a posterior's predictions run (vmapped over draws).
Then MFVI through ``fit()`` (200 steps) on a digits CNN (convs of 16 and 32 channels, W-Asym), and the zoo's CNN
trained end to end (2 epochs, the zoo's sampled hyper-parameters) one network at a time and
50 in one vmapped program, with each convolution. Each pair is alternated ``REPEATS`` times; best of each.

Run:  python benchmarks/conv_cpu.py
Writes benchmarks/results/conv_cpu.{md,json}.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _results import write_results

from bnn_asym import zoo
from bnn_asym.bench.machine import machine_description
from bnn_asym.nets import jax as nets_jax

REPEATS = 3
LOOP_STEPS = 20
# (label, batch, input channels, image side, conv channels): the first conv has stride 1, later ones stride 2
NETS = [
    ("zoo CNN: 8x8 digits, convs 8-16", 64, 1, 8, (8, 16)),
    ("28x28 MNIST-like, convs 16-32", 64, 1, 28, (16, 32)),
    ("32x32 CIFAR-like, convs 16-32-64", 64, 3, 32, (16, 32, 64)),
]
CONVS = {"xla": nets_jax._conv2d_xla, "matmul": nets_jax._conv2d_as_matmul}


def conv_net_loss(conv):
    def loss(params, x):
        h = x
        for i, (w, b) in enumerate(params):
            h = jax.nn.relu(conv(h, w, 1 if i == 0 else 2, 1) + b[None, :, None, None])
        return jnp.sum(h.mean((2, 3)) ** 2)

    return loss


def in_loop(grad):
    """``LOOP_STEPS`` SGD steps with ``grad`` in one compiled loop."""

    def step(i, carry):
        params, batch = carry
        return jax.tree.map(lambda a, d: a - 1e-4 * d, params, grad(params, batch)), batch

    return jax.jit(lambda params, batch: jax.lax.fori_loop(0, LOOP_STEPS, step, (params, batch))[0])


def best_seconds(fns: dict, args, repeats: int) -> dict[str, float]:
    for f in fns.values():
        jax.block_until_ready(f(*args))  # compiled
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[k].append(time.perf_counter() - start)
    return {k: min(v) for k, v in times.items()}


def layer_speeds() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for label, batch, channels, side, widths in NETS:
        x = jnp.asarray(rng.normal(size=(batch, channels, side, side)), jnp.float32)
        params, cin = [], channels
        for cout in widths:
            w = jnp.asarray(rng.normal(size=(cout, cin, 3, 3)) * 0.2, jnp.float32)
            params.append((w, jnp.zeros(cout, jnp.float32)))
            cin = cout
        grads = {k: jax.grad(conv_net_loss(conv)) for k, conv in CONVS.items()}

        loop = best_seconds({k: in_loop(g) for k, g in grads.items()}, (params, x), REPEATS)
        alone = best_seconds({k: jax.jit(g) for k, g in grads.items()}, (params, x), REPEATS)
        rows.append(
            {
                "net": label,
                "in_loop_ms_per_step": {k: 1e3 * v / LOOP_STEPS for k, v in loop.items()},
                "alone_ms": {k: 1e3 * v for k, v in alone.items()},
            }
        )
        print(rows[-1], flush=True)
    return rows


def swapped_conv(conv):
    """A JaxOps.conv2d that uses ``conv`` (the ops table's signature)."""

    def conv2d(h, w, b, stride, padding):
        out = conv(h, w, stride, padding)
        return out if b is None else out + b[None, :, None, None]

    return staticmethod(conv2d)


def fit_speeds() -> dict:
    """Seconds of fit()'s MFVI steps (compilation of the first chunk included) with each convolution."""
    import bnn_asym
    from bnn_asym import datasets
    from bnn_asym.nets.builder import NetworkConfig, network_for_data

    ds = datasets.load("digits", seed=0)
    original = nets_jax.JaxOps.conv2d
    out: dict = {}
    try:
        for repeat in range(2):
            for i, (name, conv) in enumerate(CONVS.items()):
                nets_jax.JaxOps.conv2d = swapped_conv(conv)
                # a spec of its own: fit() reuses compiled programs per spec
                config = NetworkConfig("cnn", channels=(16, 32), head="global_avg", seed=10 * repeat + i)
                net = network_for_data(config, ds, "w_asym")
                post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="mfvi", num_steps=200, progress=False)
                out[name] = min(out.get(name, np.inf), post.run_info.wall_time_s)
                print(name, out[name], flush=True)
    finally:
        nets_jax.JaxOps.conv2d = original
    return out


def zoo_speeds() -> dict:
    """Networks per second training the zoo's CNN with each convolution (JaxOps.conv2d swapped)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from zoo_vmap import CHUNK, timed

    cfg = dataclasses.replace(zoo.ZooConfig(), family="cnn")
    ds = zoo.load_data(cfg)
    original = nets_jax.JaxOps.conv2d
    out: dict = {}
    alone = 5
    try:
        for repeat in range(2):
            for name, conv in CONVS.items():
                nets_jax.JaxOps.conv2d = swapped_conv(conv)
                zoo._training_program.cache_clear()  # compiled per spec: retrace with this convolution
                spec = zoo.zoo_spec(cfg, ds, "standard")  # a fresh spec: programs compiled with this conv
                if repeat == 0:  # compile both shapes
                    timed(cfg, ds, spec, np.arange(CHUNK))
                    timed(cfg, ds, spec, np.arange(1))
                vmapped = CHUNK / timed(cfg, ds, spec, np.arange(CHUNK) + 1000 * (repeat + 1))
                one = alone / sum(timed(cfg, ds, spec, np.array([2000 * (repeat + 1) + i])) for i in range(alone))
                rates = out.setdefault(name, {"vmapped": 0.0, "alone": 0.0})
                rates["vmapped"], rates["alone"] = max(rates["vmapped"], vmapped), max(rates["alone"], one)
                print(name, rates, flush=True)
    finally:
        nets_jax.JaxOps.conv2d = original
        zoo._training_program.cache_clear()
    return out


def main() -> int:
    out = {
        "layers": layer_speeds(),
        "mfvi_fit_s": fit_speeds(),
        "zoo_networks_per_s": zoo_speeds(),
        "machine": machine_description(),
    }
    lines = [
        "# Convolution on the CPU: XLA's convolution op vs one matmul over image patches",
        "",
        f"Gradient of a conv net's loss on a batch of 64, in a `fori_loop` of {LOOP_STEPS} SGD steps (how engines and "
        f"zoo epochs run) and alone (one jitted call, as predictions run); best of {REPEATS}, alternated.",
        "",
        "| net | in a loop: XLA conv (ms/step) | in a loop: matmul | speed-up | alone: XLA conv (ms) | alone: matmul "
        "| speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["layers"]:
        loop, alone = r["in_loop_ms_per_step"], r["alone_ms"]
        lines.append(
            f"| {r['net']} | {loop['xla']:.2f} | {loop['matmul']:.2f} | {loop['xla'] / loop['matmul']:.1f}x | "
            f"{alone['xla']:.2f} | {alone['matmul']:.2f} | {alone['xla'] / alone['matmul']:.2f}x |"
        )
    fit_s = out["mfvi_fit_s"]
    lines += [
        "",
        "MFVI through `fit()`, 200 steps (batch 128) on a digits CNN (convs 16-32, W-Asym), seconds of its steps "
        f"(first chunk's compilation included), best of 2: XLA conv {fit_s['xla']:.1f} s, matmul "
        f"{fit_s['matmul']:.1f} s ({fit_s['xla'] / fit_s['matmul']:.1f}x).",
    ]
    z = out["zoo_networks_per_s"]
    lines += [
        "",
        "The zoo's CNN (digits, 2 epochs of batch 64 per network; networks / s, best of 2):",
        "",
        "| convolution | one network at a time | 50 in one vmapped program | vmapped / one at a time |",
        "|---|---|---|---|",
    ]
    for name, r in z.items():
        lines.append(f"| {name} | {r['alone']:.1f} | {r['vmapped']:.1f} | {r['vmapped'] / r['alone']:.2f}x |")
    lines += ["", f"Machine: {out['machine']}", ""]
    write_results("conv_cpu", out, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
