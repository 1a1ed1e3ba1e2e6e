"""A model zoo's weight-space tables beside the paper's: its networks, metanets (R^2, Kendall tau over seeds) and
MLI statistics, as Markdown, JSON and one figure.

Run after ``bnn-asym zoo`` built the zoo (the metanets and MLI are computed here, or read from the JSON that
``bnn-asym metanet ZOO --mli --json FILE`` wrote, with ``--scores FILE``):

    python benchmarks/zoo_tables.py ZOO [--kinds mlp statnn deepsets] [--seeds 5] [--scores FILE ...]
                                        [--zoo-wall "N min on 2 cores"]

Writes benchmarks/results/zoo_<data>_<family>.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _results import RESULTS, write_results

from bnn_asym import zoo
from bnn_asym.bench.machine import machine_description

# Lim et al. 2024, ResNet8 zoos on CIFAR-10 (metanets: test R^2 and Kendall tau; MLI: Table 5)
PAPER_METANETS = {  # (symmetry, metanet): (test R^2, Kendall tau)
    ("standard", "mlp"): (0.330, 0.389),
    ("w_asym", "mlp"): (0.594, 0.864),
    ("standard", "statnn"): (0.976, 0.866),
    ("w_asym", "statnn"): (0.978, 0.935),
    ("standard", "deepsets"): (0.855, 0.617),
    ("w_asym", "deepsets"): (0.936, 0.858),
}
FAMILY_NAMES = {"cnn": "CNNs", "mlp": "MLPs", "resnet": "ResNets"}
PAPER_MLI = {
    "standard": {"monotonic": 0.263, "local_convexity": 0.548, "globally_convex": 0.823},
    "sigma_asym": {"monotonic": 0.873, "local_convexity": 0.675, "globally_convex": 0.976},
    "w_asym": {"monotonic": 1.0, "local_convexity": 0.769, "globally_convex": 1.0},
}


def free_parameters(z: zoo.Zoo) -> dict[str, int]:
    """Each kind's number of trained (free) parameters per network."""
    ds = zoo.load_data(z.config)
    return {s: int(zoo.zoo_spec(z.config, ds, s).num_free_params) for s in z.config.symmetries}


def network_rows(z: zoo.Zoo) -> dict[str, dict]:
    out = {}
    for symmetry in z.config.symmetries:
        rows = z.rows(symmetry)
        acc = np.array([r["test_accuracy"] for r in rows if not r["diverged"]])
        out[symmetry] = {
            "networks": len(rows),
            "diverged": int(sum(r["diverged"] for r in rows)),
            "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_min": float(acc.min()),
            "test_accuracy_max": float(acc.max()),
            "test_accuracy_quartiles": np.percentile(acc, [25, 50, 75]).tolist(),
            # Kendall tau ranks networks; ties and test-set noise cap it where many networks score alike
            "distinct_accuracies_top_half": len(np.unique(acc[acc >= np.median(acc)])),
        }
    return out


def _with_paper(symmetry: str, key: str, value: float, pct: bool = False) -> str:
    """A statistic, and the paper's value for it in brackets where it has one."""
    text = f"{100 * value:.1f}%" if pct else f"{value:.3f}"
    paper = PAPER_MLI.get(symmetry, {}).get(key)
    if paper is not None:
        text += f" ({100 * paper:.1f}%)" if pct else f" ({paper:.3f})"
    return text


def _setting(result: dict) -> str:
    """How the zoo differs from the paper's (10,000 ResNet8 with GroupNorm per variant on CIFAR-10)."""
    sizes = ", ".join(f"{s} {n:,}" for s, n in result.get("free_parameters", {}).items())
    size_text = f" (free parameters: {sizes}; the paper's standard ResNet8 has 78,042)" if sizes else ""
    if result["config"]["family"] == "resnet":
        return (
            f"The paper's architecture, ResNet{zoo.RESNET_DEPTH} with GroupNorm, at width {zoo.RESNET_WIDTH}"
            f"{size_text}, on other data and "
            "a tenth of the networks: the paper trained 10,000 per variant on CIFAR-10 with AdamW."
        )
    return f"Not the paper's setting, 10,000 ResNet8 per variant on CIFAR-10{size_text}."


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [
        f"# Model zoo: {FAMILY_NAMES.get(cfg['family'], cfg['family'])} on {cfg['data']}",
        "",
        f"`bnn-asym zoo --data {cfg['data']} --family {cfg['family']} --n-networks {cfg['n_networks']}` (the paper's "
        "sampled hyper-parameters: lr 0.5 * 10^-U(0,2), weight decay 10^-U(1,5), label smoothing U(0,0.2), epochs "
        f"randint({cfg['epochs_low']}, {cfg['epochs_high']}), SGD with momentum 0.9, batch {cfg['batch_size']}; one "
        f"shared spec per symmetry kind), then the metanets and MLI of {result['scored_by']}. "
        f"Zoo training: {result['zoo_wall']}; metanets and MLI: {result['analysis_wall']}. {_setting(result)}",
        "",
        "Networks (test accuracy of the networks that did not diverge; a diverged network stopped at a step that "
        "would have produced non-finite values):",
        "",
        "| symmetry | networks | diverged | test accuracy: mean | 25% | median | 75% | min | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s, r in result["networks"].items():
        q = r["test_accuracy_quartiles"]
        lines.append(
            f"| {s} | {r['networks']} | {r['diverged']} | {r['test_accuracy_mean']:.3f} | {q[0]:.3f} | {q[1]:.3f} | "
            f"{q[2]:.3f} | {r['test_accuracy_min']:.3f} | {r['test_accuracy_max']:.3f} |"
        )
    distinct = [r.get("distinct_accuracies_top_half") for r in result["networks"].values()]
    if all(d is not None for d in distinct):
        lines += [
            "",
            f"The better half of each kind's networks takes only {min(distinct)}-{max(distinct)} distinct test "
            "accuracies (the test set's size sets the step): Kendall tau, a rank statistic, is capped by those ties "
            "and by test-set noise where most networks score alike; R^2 is not.",
        ]
    lines += [
        "",
        "Metanets predicting test accuracy from the final free parameters (50/25/25 split; mean ± std over seeds, "
        "each a new split and init; the paper's values are its ResNet8 zoos on CIFAR-10):",
        "",
        "| symmetry | metanet | seeds x epochs | test R^2 | Kendall tau | paper's R^2 | paper's tau |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, by_kind in result["metanets"].items():
        for kind, r in by_kind.items():
            paper = PAPER_METANETS.get((s, kind))
            paper_text = " | ".join(f"{v:.3f}" for v in paper) if paper else " | "
            if "not_applicable" in r:
                lines.append(f"| {s} | {kind} | - | not applicable | not applicable | {paper_text} |")
                continue
            lines.append(
                f"| {s} | {kind} | {len(r['runs'])} x {r['runs'][0].get('epochs', '-')} | "
                f"{r['r2_mean']:.3f} ± {r['r2_std']:.3f} | "
                f"{r['tau_mean']:.3f} ± {r['tau_std']:.3f} "
                f"| {paper_text} |"
            )
    lines += [
        "",
        "MLI, init to trained, on 1,000 training rows (diverged networks left out; paper's Table 5 in brackets):",
        "",
        "| symmetry | networks | monotonic | Δ (mean max increase) | local convexity | globally convex |",
        "|---|---|---|---|---|---|",
    ]
    for s, r in result["mli"].items():
        lines.append(
            f"| {s} | {r['networks']} | {_with_paper(s, 'monotonic', r['monotonic'], True)} | "
            f"{r['max_increase']:.4f} | "
            f"{_with_paper(s, 'local_convexity', r['local_convexity'])} | "
            f"{_with_paper(s, 'globally_convex', r['globally_convex'], True)} |"
        )
    lines += ["", f"![metanets and accuracies]({result['figure']})", "", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


def figure(result: dict, z: zoo.Zoo, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    symmetries = list(result["metanets"])
    kinds = sorted(  # a metanet no kind of network could be read by has no bar to draw
        {k for by in result["metanets"].values() for k, r in by.items() if "not_applicable" not in r},
        key=["mlp", "statnn", "deepsets", "nfn"].index,
    )
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(symmetries)
    for i, s in enumerate(symmetries):
        x = np.arange(len(kinds)) + (i - (len(symmetries) - 1) / 2) * width
        got = [result["metanets"][s].get(k, {}) for k in kinds]
        tau = [r.get("tau_mean", np.nan) for r in got]
        err = [r.get("tau_std", 0.0) for r in got]
        ax.bar(x, tau, width, yerr=err, capsize=2, label=s, color=f"C{i}")
        for xi, k in zip(x, kinds):
            if (s, k) in PAPER_METANETS:
                ax.plot(xi, PAPER_METANETS[s, k][1], "k_", ms=14, mew=2)
    ax.plot([], [], "k_", ms=14, mew=2, label="paper (ResNet8 zoos)")
    ax.set(
        xticks=np.arange(len(kinds)), xticklabels=kinds, ylabel="test Kendall tau", ylim=(min(0, ax.get_ylim()[0]), 1.3)
    )
    ax.set_title("Metanets: accuracy from weights")
    ax.legend(fontsize=8, ncol=2, loc="upper center")
    bins = np.linspace(0, 1, 41)
    for i, s in enumerate(symmetries):
        acc = [r["test_accuracy"] for r in z.rows(s) if not r["diverged"]]
        hx.hist(acc, bins=bins, alpha=0.5, color=f"C{i}", label=s)
    hx.set(xlabel="test accuracy", ylabel="networks", title="The zoo")
    hx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recorded_wall(z: zoo.Zoo) -> str:
    """The zoo's training time per kind from its index's chunk times ("not recorded" for older zoos)."""
    timed = z.training_seconds()
    if not timed:
        return "not recorded"
    return "; ".join(f"{s} {t['seconds'] / 60:.1f} min for {t['networks']} networks" for s, t in timed.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo")
    parser.add_argument("--kinds", nargs="+", default=None, help="metanet kinds (default: mlp statnn deepsets)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--scores", nargs="+", default=None, help="bnn-asym metanet --json files to read instead")
    parser.add_argument(
        "--zoo-wall",
        default=None,
        help="how long the zoo took to train, as measured; default: the chunk times its index recorded",
    )
    parser.add_argument("--analysis-wall", default=None, help="with --scores: how long those scores took, as measured")
    args = parser.parse_args(argv)
    z = zoo.Zoo(args.zoo)
    start = time.perf_counter()
    if args.scores:  # several files (say, the NFN's run apart, or one per symmetry kind), merged
        metanets: dict = {}
        mli: dict = {}
        for path in args.scores:
            scores = json.loads(Path(path).read_text())
            for symmetry, by_kind in scores["metanets"].items():
                metanets.setdefault(symmetry, {}).update(by_kind)
            mli.update(scores.get("mli", {}))
        metanets = {s: metanets[s] for s in z.config.symmetries if s in metanets}  # the zoo's order
        mli = {s: mli[s] for s in z.config.symmetries if s in mli}
        if not mli:
            parser.error("none of the --scores files has MLI statistics (bnn-asym metanet ... --mli)")
        analysis_wall = args.analysis_wall or "not recorded"
        scored_by = (
            "`bnn-asym metanet ZOO --mli --json FILE` (per kind with `--symmetry`), read by `benchmarks/zoo_tables.py`"
        )
    else:
        metanets = zoo.metanet_table(z, args.kinds, range(args.seeds), args.epochs)
        mli = zoo.mli_table(z)
        analysis_wall = f"{(time.perf_counter() - start) / 60:.1f} min"
        scored_by = "`benchmarks/zoo_tables.py`"
    name = f"zoo_{z.config.data}_{z.config.family}"
    result = {
        "config": z.config.to_dict(),
        "networks": network_rows(z),
        "free_parameters": free_parameters(z),
        "metanets": metanets,
        "mli": mli,
        "zoo_wall": args.zoo_wall or recorded_wall(z),
        "analysis_wall": analysis_wall,
        "scored_by": scored_by,
        "figure": f"{name}.png",
        "machine": machine_description(),
    }
    RESULTS.mkdir(exist_ok=True)
    figure(result, z, RESULTS / f"{name}.png")
    write_results(name, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
