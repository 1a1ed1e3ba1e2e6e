"""Symmetry phenomena experiments: linear mode connectivity (LMC) and monotonic linear interpolation (MLI).

``run_lmc`` trains pairs of networks for standard, sigma-Asym and W-Asym specs, interpolates each pair
(standard pairs also after weight-matching alignment) and reports loss barriers; ``run_mli`` trains
single networks and measures the init -> trained interpolation. Every pair / run is one job in a
ResultsStore: rerunning skips finished jobs, so an interrupted experiment resumes.
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


def write_report(report: dict, out_dir, machine: str | None = None, tag: str = "") -> list[Path]:
    """Markdown table, JSON (with curves) and PNG plot, each written atomically; returns the paths."""
    out_dir = Path(out_dir)
    cfg = report["config"]
    stem = f"{report['experiment']}_{cfg['data']}_{cfg['model']}" + (f"_{tag}" if tag else "")
    table = lmc_table(report) if report["experiment"] == "lmc" else mli_table(report)
    if machine:
        table += f"\nMachine: {machine}\n"
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.json", out_dir / f"{stem}.png"]
    atomic_write_text(paths[0], table)
    atomic_write_text(paths[1], json.dumps({**report, "machine": machine}, indent=1))
    plot_curves(report, paths[2])
    return paths
