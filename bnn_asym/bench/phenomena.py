"""Symmetry phenomena experiments: linear mode connectivity (LMC), monotonic linear interpolation (MLI) and
model merging.

``run_lmc`` trains pairs of networks for standard, sigma-Asym and W-Asym specs, interpolates each pair
(standard pairs also after weight-matching alignment) and reports loss barriers; ``run_mli`` trains
single networks and measures the init -> trained interpolation; ``run_merge`` trains sets of parents and
merges them (naive, weight matching, weight matching + REPAIR), on one task and split across two. Every
pair / run is one job in a ResultsStore: rerunning skips finished jobs, so an interrupted experiment resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import datasets
from ..io import atomic_path, atomic_write_text
from ..nets.builder import NetworkConfig, network_for_data
from ..progress import progress_bar
from ..symmetry.interpolation import Curve, interpolate, max_barrier, midpoint_barrier, mli_stats
from ..symmetry.weight_matching import weight_matching
from ..training import TrainConfig, evaluate, train
from . import PHENOMENON_MODELS as MODELS
from .store import ResultsStore

LMC_VARIANTS = ("standard", "standard+align", "sigma_asym", "w_asym")
MLI_VARIANTS = ("standard", "sigma_asym", "w_asym")
JOB_VERSION = 1


@dataclass(frozen=True)
class PhenomenonConfig:
    data: str = "mnist"
    model: str = "mlp"
    runs: int = 5  # pairs for LMC, networks per variant for MLI
    train: TrainConfig = field(default_factory=TrainConfig)
    n_points: int = 25
    seed: int = 0
    n_samples: int | None = None
    mli_subset: int = 1000
    init_scheme: str = "kaiming_normal"  # of the trained networks' initial weights (paper's scripts: torch_default)

    def __post_init__(self):
        if self.data not in datasets.NAMES:
            raise ValueError(f"data={self.data!r} is not valid; accepted: {', '.join(datasets.NAMES)}")
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is not valid; accepted: {', '.join(MODELS)}")
        if not isinstance(self.runs, int) or self.runs < 1:
            raise ValueError(f"runs={self.runs!r} is not valid; accepted: an integer >= 1")
        from ..nets.spec import check_init_scheme

        check_init_scheme(self.init_scheme)
        if self.n_points < 3 or self.n_points % 2 == 0:
            raise ValueError(
                f"n_points={self.n_points} is not valid; accepted: an odd integer >= 3 (t = 0.5 on the grid)"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


def network_config(model: str, ds: datasets.Dataset, symmetry: str, seed: int) -> NetworkConfig:
    """The network of each experiment, as the one network builder describes it.

    mlp: the paper's LMC MLP (784-512-512-512-10, LayerNorm, n_fix 64/64/64/256, kappa 1/1/.5/.25) for
    MNIST-sized inputs; the same widths with the default W-Asym rule otherwise.
    cnn: 3x3 convs (32, 64) with LayerNorm, a quarter of each row's entries fixed at kappa 1.
    resnet: ResNet-20 (width 1, LayerNorm-style norm) with the paper's W-Asym settings.
    """
    if ds.task != "classification":
        raise ValueError(f"symmetry experiments need a classification data set; {ds.name!r} is {ds.task}")
    if model == "mlp":
        if ds.n_features == 784 and ds.n_classes == 10:
            return NetworkConfig("mlp", preset="paper_lmc", seed=seed)
        return NetworkConfig("mlp", hidden=(512, 512, 512), norm="layer", seed=seed)
    if len(ds.input_shape) != 3:
        raise ValueError(f"model={model!r} needs image data; {ds.name!r} has input shape {ds.input_shape}")
    if model == "cnn":
        config = NetworkConfig("cnn", channels=(32, 64), norm="layer", seed=seed)
        if symmetry != "w_asym":
            return config
        base = network_for_data(config, ds, "standard")
        return dataclasses.replace(
            config, n_fix=tuple(max(1, layer.fan_in // 4) for layer in base.weight_layers()), kappa=1.0
        )
    return NetworkConfig("resnet", preset="paper_resnet20", norm="layer", seed=seed)


def make_spec(model: str, ds: datasets.Dataset, symmetry: str, seed: int):
    """The network of an experiment (``network_config``) for this data set and symmetry kind."""
    return network_for_data(network_config(model, ds, symmetry, seed), ds, symmetry)


def _job(cfg: PhenomenonConfig, kind: str, symmetry: str, run: int) -> dict:
    return {"kind": kind, "version": JOB_VERSION, "symmetry": symmetry, "run": run, **cfg.to_dict()}


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


# ----------------------------------------------------------------------------------------------------
def _trained(cfg: PhenomenonConfig, spec, ds, seeds: tuple[int, int], desc: str):
    """``spec`` trained on the data set's training rows with (init seed, data-order seed)."""
    return train(spec, ds.X_train, ds.y_train, config=cfg.train, init_seed=seeds[0], data_seed=seeds[1], desc=desc)


def _lmc_pair(cfg: PhenomenonConfig, ds, symmetry: str, pair: int) -> dict:
    spec = make_spec(cfg.model, ds, symmetry, seed=cfg.seed + pair).with_init(cfg.init_scheme)
    # the same masks / fixed values, independent inits and data orders
    nets = []
    for member in (0, 1):
        seeds = (10_000 + 2 * pair + member, 20_000 + 2 * pair + member)
        nets.append(_trained(cfg, spec, ds, seeds, f"{symmetry} pair {pair} net {member}").params)
    a, b = nets

    def curves(b_params):
        out = {}
        for split, X, y in (("train", ds.X_train, ds.y_train), ("test", ds.X_test, ds.y_test)):
            c = interpolate(spec, a, b_params, X, y, n_points=cfg.n_points)
            out[split] = {"curve": c.to_dict(), "barrier": midpoint_barrier(c), "max_barrier": max_barrier(c)}
        return out

    result = {"unaligned": curves(b)}
    if symmetry == "standard":
        match = weight_matching(spec, a, b, seed=pair)
        result["aligned"] = curves(match.aligned)
        result["aligned"]["sweeps"] = match.sweeps
    return result


def _run_jobs(cfg: PhenomenonConfig, store: ResultsStore, kind: str, compute, progress: bool):
    """Every (symmetry, run) job of an experiment, from the store where finished; returns results by symmetry."""
    ds = datasets.load(cfg.data, seed=cfg.seed, n_samples=cfg.n_samples)
    jobs = [(s, r) for r in range(cfg.runs) for s in MLI_VARIANTS]
    results: dict[str, list] = {s: [] for s in MLI_VARIANTS}
    reused = 0
    for symmetry, run in progress_bar(jobs, desc=kind, enabled=progress):
        result, cached = store.cached(
            _job(cfg, kind, symmetry, run), functools.partial(compute, cfg, ds, symmetry, run)
        )
        reused += cached
        results[symmetry].append(result)
    return results, reused, len(jobs)


def run_lmc(cfg: PhenomenonConfig, store: ResultsStore, progress: bool = True) -> dict:
    """Train ``cfg.runs`` pairs per symmetry kind (skipping pairs already in the store); return the report."""
    results, reused, total = _run_jobs(cfg, store, "lmc_pair", _lmc_pair, progress)
    per_variant = {v: [r["unaligned"] for r in results.get(v, [])] for v in LMC_VARIANTS}
    per_variant["standard+align"] = [r["aligned"] for r in results["standard"]]
    return _lmc_report(cfg, per_variant, reused, total)


def _lmc_report(cfg, per_variant: dict, reused: int, total: int) -> dict:
    rows = {}
    for variant, results in per_variant.items():
        test_curves = [Curve.from_dict(r["test"]["curve"]) for r in results]
        accuracies = [c.accuracy for c in test_curves if c.accuracy is not None]  # interpolate() records it
        rows[variant] = {
            "test_barrier": _summary([r["test"]["barrier"] for r in results]),
            "train_barrier": _summary([r["train"]["barrier"] for r in results]),
            "test_max_barrier": _summary([r["test"]["max_barrier"] for r in results]),
            "endpoint_test_accuracy": _summary([acc for a in accuracies for acc in (a[0], a[-1])]),
            "midpoint_test_accuracy": _summary([a[len(a) // 2] for a in accuracies]),
            "t": test_curves[0].t.tolist(),
            "test_loss_curves": [c.loss.tolist() for c in test_curves],
        }
    return {"experiment": "lmc", "config": cfg.to_dict(), "variants": rows, "jobs_reused": reused, "jobs": total}


# ----------------------------------------------------------------------------------------------------
def _mli_run(cfg: PhenomenonConfig, ds, symmetry: str, run: int) -> dict:
    spec = make_spec(cfg.model, ds, symmetry, seed=cfg.seed + run).with_init(cfg.init_scheme)
    result = _trained(cfg, spec, ds, (30_000 + run, 40_000 + run), f"{symmetry} run {run}")
    n = min(cfg.mli_subset, len(ds.X_train))  # a fixed, un-augmented training subset
    curve = interpolate(spec, result.init, result.params, ds.X_train[:n], ds.y_train[:n], n_points=cfg.n_points)
    final = evaluate(spec, result.params, ds.X_test, ds.y_test, "classification")
    return {"curve": curve.to_dict(), "stats": mli_stats(curve).to_dict(), "test": final}


def run_mli(cfg: PhenomenonConfig, store: ResultsStore, progress: bool = True) -> dict:
    """Train ``cfg.runs`` networks per symmetry kind and measure init -> trained interpolation."""
    per_variant, reused, total = _run_jobs(cfg, store, "mli_run", _mli_run, progress)
    rows = {}
    for variant, results in per_variant.items():
        stats = [r["stats"] for r in results]
        rows[variant] = {
            "monotonic_fraction": float(np.mean([s["monotonic"] for s in stats])),
            "max_increase": _summary([s["max_increase"] for s in stats]),
            "local_convexity": _summary([s["local_convexity"] for s in stats]),
            "globally_convex_fraction": float(np.mean([s["globally_convex"] for s in stats])),
            "test_accuracy": _summary([r["test"]["accuracy"] for r in results]),
            "t": results[0]["curve"]["t"],
            "train_loss_curves": [r["curve"]["loss"] for r in results],
        }
    return {"experiment": "mli", "config": cfg.to_dict(), "variants": rows, "jobs_reused": reused, "jobs": total}


# ----------------------------------------------------------------------------------------------------
MERGE_VARIANTS = (
    ("standard", "naive"),
    ("standard", "weight_matching"),
    ("standard", "repair"),
    ("sigma_asym", "naive"),
    ("w_asym", "naive"),
)
MERGE_PARENTS = 2
SPLIT_CLASSES = (0, 1, 2, 3, 4)  # the split-task case: one parent sees these classes, the other the rest


def merge_spec(cfg: PhenomenonConfig, ds, symmetry: str, seed: int):
    """The merging experiment's MLP: three hidden layers of 512 without normalisation layers (REPAIR corrects
    the statistics a norm layer would reset), the default W-Asym rule."""
    if cfg.model != "mlp":
        raise ValueError(f"the merging experiment uses MLPs; got model={cfg.model!r}")
    config = NetworkConfig("mlp", hidden=(512, 512, 512), norm="none", seed=seed)
    return network_for_data(config, ds, symmetry).with_init(cfg.init_scheme)


def _merge_run(cfg: PhenomenonConfig, ds, symmetry: str, run: int) -> dict:
    """MERGE_PARENTS networks of one spec (shared masks / F) from independent inits and data orders, merged by
    every method of MERGE_VARIANTS for this symmetry; and the split-task case (each parent trained on half the
    classes, the merge scored on all)."""
    from ..symmetry.merge import merge, merge_scores

    spec = merge_spec(cfg, ds, symmetry, seed=cfg.seed + run)
    methods = [m for s, m in MERGE_VARIANTS if s == symmetry]
    seeds = [(50_000 + MERGE_PARENTS * run + k, 60_000 + MERGE_PARENTS * run + k) for k in range(MERGE_PARENTS)]
    parents = [_trained(cfg, spec, ds, sd, f"{symmetry} run {run} net {k}").params for k, sd in enumerate(seeds)]
    out: dict = {"same_task": {}, "split_task": {}}
    for method in methods:
        result = merge(spec, parents, method, X=ds.X_train, seed=run)
        out["same_task"][method] = {
            "test": merge_scores(spec, result, ds.X_test, ds.y_test),
            "train": merge_scores(spec, result, ds.X_train, ds.y_train),
        }
    first = np.isin(ds.y_train, SPLIT_CLASSES)
    halves = [(ds.X_train[first], ds.y_train[first]), (ds.X_train[~first], ds.y_train[~first])]
    split = [
        train(spec, X, y, config=cfg.train, init_seed=sd[0], data_seed=sd[1], desc=f"{symmetry} run {run} half {k}")
        for k, ((X, y), sd) in enumerate(zip(halves, seeds))
    ]
    for method in methods:
        result = merge(spec, [r.params for r in split], method, X=ds.X_train, seed=run)
        out["split_task"][method] = {"test": merge_scores(spec, result, ds.X_test, ds.y_test)}
    return out


def run_merge(cfg: PhenomenonConfig, store: ResultsStore, progress: bool = True) -> dict:
    """Train ``cfg.runs`` parent sets per symmetry kind and merge them by every method (MERGE_VARIANTS)."""
    per_symmetry, reused, total = _run_jobs(cfg, store, "merge_run", _merge_run, progress)
    rows = {}
    for symmetry, method in MERGE_VARIANTS:
        runs = per_symmetry[symmetry]
        same = [r["same_task"][method] for r in runs]
        split = [r["split_task"][method]["test"] for r in runs]
        rows[f"{symmetry} {method}"] = {
            "test_barrier": _summary([r["test"]["barrier"] for r in same]),
            "train_barrier": _summary([r["train"]["barrier"] for r in same]),
            "merged_test_accuracy": _summary([r["test"]["merged_accuracy"] for r in same]),
            "parents_test_accuracy": _summary([r["test"]["parents_accuracy"] for r in same]),
            "ensemble_test_accuracy": _summary([r["test"]["ensemble_accuracy"] for r in same]),
            "accuracy_share": _summary([r["test"]["accuracy_share"] for r in same]),
            "split_merged_accuracy": _summary([r["merged_accuracy"] for r in split]),
            "split_parents_accuracy": _summary([r["parents_accuracy"] for r in split]),
            "split_ensemble_accuracy": _summary([r["ensemble_accuracy"] for r in split]),
        }
    return {"experiment": "merge", "config": cfg.to_dict(), "variants": rows, "jobs_reused": reused, "jobs": total}


def merge_table(report: dict) -> str:
    cfg = report["config"]
    t = cfg["train"]
    lines = [
        f"Model merging on {cfg['data']} (MLP, 3 x 512, no norm layers): {MERGE_PARENTS} parents per run, "
        f"{cfg['runs']} runs per variant, {t['epochs']} epochs of AdamW (lr {t['lr']}, {t['schedule']} schedule, "
        f"weight decay {t['weight_decay']}); mean ± std over runs. Barrier = loss of the merged network - mean "
        "loss of its parents; share = merged accuracy / accuracy of the parents' ensemble. Split task: one parent "
        f"trained on classes {', '.join(map(str, SPLIT_CLASSES))}, the other on the rest, scored on all.",
        "",
        "| variant | test barrier | train barrier | merged test acc | parents' test acc | ensemble test acc "
        "| share | split task: merged acc | split: parents' acc | split: ensemble acc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, r in report["variants"].items():
        lines.append(
            f"| {v} | {_pm(r['test_barrier'])} | {_pm(r['train_barrier'])} | {_pm(r['merged_test_accuracy'])} | "
            f"{_pm(r['parents_test_accuracy'])} | {_pm(r['ensemble_test_accuracy'])} | {_pm(r['accuracy_share'])} "
            f"| {_pm(r['split_merged_accuracy'])} | {_pm(r['split_parents_accuracy'])} "
            f"| {_pm(r['split_ensemble_accuracy'])} |"
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
def _pm(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def lmc_table(report: dict) -> str:
    cfg = report["config"]
    t = cfg["train"]
    lines = [
        f"LMC on {cfg['data']} with {cfg['model']}: {cfg['runs']} pairs per variant, {t['epochs']} epochs of AdamW "
        f"(lr {t['lr']}, {t['schedule']} schedule, weight decay {t['weight_decay']}, batch {t['batch_size']}); "
        f"mean ± std over pairs; barrier = L(mid) - (L(a)+L(b))/2",
        "",
        "| variant | test-loss barrier | train-loss barrier | max test barrier | endpoint test acc "
        "| midpoint test acc |",
        "|---|---|---|---|---|---|",
    ]
    for v, r in report["variants"].items():
        lines.append(
            f"| {v} | {_pm(r['test_barrier'])} | {_pm(r['train_barrier'])} | {_pm(r['test_max_barrier'])} | "
            f"{_pm(r['endpoint_test_accuracy'])} | {_pm(r['midpoint_test_accuracy'])} |"
        )
    return "\n".join(lines) + "\n"


def mli_table(report: dict) -> str:
    cfg = report["config"]
    t = cfg["train"]
    lines = [
        f"MLI on {cfg['data']} with {cfg['model']}: {cfg['runs']} runs per variant, {t['epochs']} epochs of AdamW "
        f"(lr {t['lr']}, {t['schedule']} schedule, weight decay {t['weight_decay']}), "
        f"train loss on a fixed subset of {cfg['mli_subset']} training examples",
        "",
        "| variant | monotonic | Δ (max increase) | local convexity | globally convex | test acc |",
        "|---|---|---|---|---|---|",
    ]
    for v, r in report["variants"].items():
        lines.append(
            f"| {v} | {100 * r['monotonic_fraction']:.0f}% | {_pm(r['max_increase'], 4)} | "
            f"{_pm(r['local_convexity'], 2)} | {100 * r['globally_convex_fraction']:.0f}% | "
            f"{_pm(r['test_accuracy'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(report: dict, path) -> None:
    """Interpolation curves, mean ± std over runs, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report["experiment"] == "merge":
        return plot_merge(report, path)
    key = "test_loss_curves" if report["experiment"] == "lmc" else "train_loss_curves"
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, r in report["variants"].items():
        t, curves = np.asarray(r["t"]), np.asarray(r[key])
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(t, mean, label=variant)
        ax.fill_between(t, mean - std, mean + std, alpha=0.2)
    cfg = report["config"]
    if report["experiment"] == "lmc":
        ax.set(
            xlabel="interpolation t (net a -> net b)",
            ylabel="test loss",
            title=f"Linear mode connectivity: {cfg['model']} on {cfg['data']}",
        )
    else:
        ax.set(
            xlabel="interpolation t (init -> trained)",
            ylabel="train loss",
            title=f"Monotonic linear interpolation: {cfg['model']} on {cfg['data']}",
        )
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_merge(report: dict, path) -> None:
    """Per variant: the merged network's test accuracy next to its parents' and their ensemble's (same task),
    and the split-task merge's; mean with std whiskers over runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(report["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    panels = (
        ("same task", ("parents_test_accuracy", "merged_test_accuracy", "ensemble_test_accuracy")),
        ("split task", ("split_parents_accuracy", "split_merged_accuracy", "split_ensemble_accuracy")),
    )
    xs = np.arange(len(variants))
    for ax, (title, keys) in zip(axes, panels):
        for offset, key, label in zip((-0.27, 0, 0.27), keys, ("parents", "merged", "ensemble of parents")):
            r = [report["variants"][v][key] for v in variants]
            ax.bar(xs + offset, [x["mean"] for x in r], 0.27, yerr=[x["std"] for x in r], label=label, capsize=2)
        ax.set_xticks(xs, [v.replace(" ", "\n") for v in variants], fontsize=8)
        ax.set(title=f"{title}: test accuracy", ylim=(0, 1))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_report(report: dict, out_dir, machine: str | None = None, tag: str = "") -> list[Path]:
    """Markdown table, JSON (with curves) and PNG plot, each written atomically; returns the paths."""
    out_dir = Path(out_dir)
    cfg = report["config"]
    stem = f"{report['experiment']}_{cfg['data']}_{cfg['model']}" + (f"_{tag}" if tag else "")
    tables = {"lmc": lmc_table, "mli": mli_table, "merge": merge_table}
    table = tables[report["experiment"]](report)
    if machine:
        table += f"\nMachine: {machine}\n"
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.json", out_dir / f"{stem}.png"]
    atomic_write_text(paths[0], table)
    atomic_write_text(paths[1], json.dumps({**report, "machine": machine}, indent=1))
    plot_curves(report, paths[2])
    return paths
