"""BNN benchmarks: standard vs asymmetric networks, engine vs engine.

Two suites, each a grid of (symmetry, setting, seed) jobs kept in the ResultsStore (a rerun skips
finished jobs):

- ``depth``: low-rank-plus-diagonal VI (the paper's BNN family, rank 4) on MLPs of growing depth. The
  paper's claim: standard deep MLPs train badly as Bayesian nets while W-Asym ones do not (depth 16 on
  CIFAR-10: 13.5% vs 55.2% test accuracy). We measure test accuracy, NLL, ECE and the ELBO trace.
- ``mcmc``: NUTS with several chains on a small MLP. Parameter-space R-hat is inflated by chains that
  sit in permuted copies of one mode; prediction-space R-hat and the between-chain disagreement of
  predictions show what the chains really explored.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import datasets
from ..fit import fit
from ..io import atomic_path, atomic_write_text
from ..metrics import classification_metrics
from ..nets import MLP
from ..posterior import class_probabilities
from ..progress import progress_bar
from .store import ResultsStore

SUITES = ("depth", "mcmc")
SYMMETRIES = ("standard", "sigma_asym", "w_asym")
JOB_VERSION = 1


@dataclass(frozen=True)
class BNNBenchConfig:
    suite: str = "depth"
    data: str = "mnist1d"
    seeds: int = 2
    width: int = 64
    depths: tuple = (4, 8, 16)  # weight layers (depth suite)
    vi_steps: int = 4000
    batch_size: int = 128
    nuts_warmup: int = 500
    nuts_samples: int = 500
    chains: int = 2
    n_samples: int | None = None

    def __post_init__(self):
        if self.suite not in SUITES:
            raise ValueError(f"suite={self.suite!r} is not valid; accepted: {', '.join(SUITES)}")
        if self.data not in datasets.NAMES:
            raise ValueError(f"data={self.data!r} is not valid; accepted: {', '.join(datasets.NAMES)}")
        for name in ("seeds", "width", "vi_steps", "batch_size", "nuts_samples", "chains"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not valid; accepted: an integer >= 1")
        object.__setattr__(self, "depths", tuple(self.depths))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["depths"] = list(self.depths)
        return d


def _settings(cfg: BNNBenchConfig) -> list:
    return list(cfg.depths) if cfg.suite == "depth" else [2]


def chain_disagreement(post, X) -> float:
    """Mean total-variation distance between the predictive distributions of two chains, over inputs and
    chain pairs: 0 when every chain predicts the same, whatever parameters it visited."""
    per_chain = class_probabilities(post.outputs(X).astype(np.float64), "categorical").mean(1)  # (chain, N, K)
    c = len(per_chain)
    if c < 2:
        return float("nan")
    tv = [0.5 * np.abs(per_chain[i] - per_chain[j]).sum(-1).mean() for i in range(c) for j in range(i + 1, c)]
    return float(np.mean(tv))


def _job(cfg: BNNBenchConfig, ds, symmetry: str, setting: int, seed: int) -> dict:
    if cfg.suite == "depth":
        net = MLP(ds.n_features, (cfg.width,) * (setting - 1), ds.n_classes, symmetry=symmetry, seed=seed)
        options = dict(engine="lowrank_vi", rank=4, num_steps=cfg.vi_steps, batch_size=cfg.batch_size, lr=3e-3)
    else:
        net = MLP(ds.n_features, (cfg.width, cfg.width), ds.n_classes, symmetry=symmetry, seed=seed)
        options = dict(engine="nuts", num_warmup=cfg.nuts_warmup, num_samples=cfg.nuts_samples,
                       num_chains=cfg.chains)
    start = time.perf_counter()
    post = fit(net, ds.X_train, ds.y_train, seed=seed, progress=False, **options)
    wall = time.perf_counter() - start
    result = {"wall_s": wall, "free_params": net.num_free_params, "depth": len(net.weight_layers()),
              "test": classification_metrics(post.predict(ds.X_test), ds.y_test),
              "train": classification_metrics(post.predict(ds.X_train), ds.y_train)}
    d = post.diagnostics()
    if "elbo" in d:
        elbo = np.asarray(d["elbo"])
        result["elbo_every_20"] = elbo[::20].tolist()
        result["final_elbo"] = d["final_elbo"]
    if "parameters" in d:
        result["rhat_params_max"] = d["parameters"]["max_rhat"]
        result["rhat_params_frac_above_1.01"] = d["parameters"]["frac_rhat_above_1.01"]
        result["rhat_pred_max"] = d["predictions"]["max_rhat"]
        result["ess_pred_min"] = d["predictions"]["min_ess_bulk"]
        result["ess_params_median"] = d["parameters"]["median_ess_bulk"]
        result["divergences"] = d.get("num_divergences", 0)
        result["chain_disagreement"] = chain_disagreement(post, ds.X_test)
        result["grad_evals"] = d["grad_evals"]
    return result


def run_bnn_bench(cfg: BNNBenchConfig, store: ResultsStore, progress: bool = True) -> dict:
    ds = datasets.load(cfg.data, seed=0, n_samples=cfg.n_samples)
    if ds.task != "classification":
        raise ValueError(f"the BNN benchmark suites need a classification data set; {cfg.data!r} is {ds.task}")
    jobs = [(sym, s, seed) for s in _settings(cfg) for seed in range(cfg.seeds) for sym in SYMMETRIES]
    rows, reused = [], 0
    for symmetry, setting, seed in progress_bar(jobs, desc=f"bnn {cfg.suite}", enabled=progress):
        key = {"kind": f"bnn_{cfg.suite}", "version": JOB_VERSION, "symmetry": symmetry, "setting": setting,
               "seed": seed, **cfg.to_dict()}
        result, cached = store.cached(key, lambda: _job(cfg, ds, symmetry, setting, seed))
        reused += cached
        rows.append({"symmetry": symmetry, "setting": setting, "seed": seed, **result})
    return {"experiment": f"bnn_{cfg.suite}", "config": cfg.to_dict(), "rows": rows, "jobs_reused": reused,
            "jobs": len(jobs)}


def _mean_std(values) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return "-"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def bnn_table(report: dict) -> str:
    cfg, rows = report["config"], report["rows"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["setting"], r["symmetry"]), []).append(r)
    if cfg["suite"] == "depth":
        head = (f"Low-rank VI (rank 4, {cfg['vi_steps']} steps, batch {cfg['batch_size']}) on {cfg['data']}, MLP width "
                f"{cfg['width']}; mean ± std over {cfg['seeds']} seeds")
        cols = ["depth", "symmetry", "test acc", "test NLL", "ECE", "train acc", "final ELBO", "fit s"]
        lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for (depth, sym), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], SYMMETRIES.index(kv[0][1]))):
            lines.append(f"| {depth} | {sym} | {_mean_std(r['test']['accuracy'] for r in rs)} | "
                         f"{_mean_std(r['test']['nll'] for r in rs)} | {_mean_std(r['test']['ece'] for r in rs)} | "
                         f"{_mean_std(r['train']['accuracy'] for r in rs)} | {_mean_std(r['final_elbo'] for r in rs)} | "
                         f"{_mean_std(r['wall_s'] for r in rs)} |")
    else:
        head = (f"NUTS ({cfg['chains']} chains, {cfg['nuts_warmup']} warmup + {cfg['nuts_samples']} draws) on "
                f"{cfg['data']}, MLP {cfg['width']}-{cfg['width']}; mean ± std over {cfg['seeds']} seeds")
        cols = ["symmetry", "test acc", "test NLL", "ECE", "max R-hat params", "share R-hat > 1.01", "max R-hat pred",
                "min ESS pred", "chain disagreement (TV)", "divergences", "fit s"]
        lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for (_, sym), rs in sorted(groups.items(), key=lambda kv: SYMMETRIES.index(kv[0][1])):
            lines.append(f"| {sym} | {_mean_std(r['test']['accuracy'] for r in rs)} | "
                         f"{_mean_std(r['test']['nll'] for r in rs)} | {_mean_std(r['test']['ece'] for r in rs)} | "
                         f"{_mean_std(r['rhat_params_max'] for r in rs)} | "
                         f"{_mean_std(r['rhat_params_frac_above_1.01'] for r in rs)} | "
                         f"{_mean_std(r['rhat_pred_max'] for r in rs)} | {_mean_std(r['ess_pred_min'] for r in rs)} | "
                         f"{_mean_std(r['chain_disagreement'] for r in rs)} | "
                         f"{_mean_std(r['divergences'] for r in rs)} | {_mean_std(r['wall_s'] for r in rs)} |")
    return "\n".join(lines) + "\n"


def plot_bnn(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, rows = report["config"], report["rows"]
    colors = {"standard": "C0", "sigma_asym": "C2", "w_asym": "C3"}
    if cfg["suite"] == "depth":
        depths = sorted({r["setting"] for r in rows})
        fig, axes = plt.subplots(1, len(depths) + 1, figsize=(4 * (len(depths) + 1), 3.6))
        for ax, depth in zip(axes[:-1], depths):
            for r in (r for r in rows if r["setting"] == depth):
                steps = np.arange(len(r["elbo_every_20"])) * 20
                ax.plot(steps, r["elbo_every_20"], color=colors[r["symmetry"]], alpha=0.7,
                        label=r["symmetry"] if r["seed"] == 0 else None)
            ax.set(title=f"depth {depth}: ELBO", xlabel="VI step", yscale="symlog")
            ax.legend(fontsize=8)
        ax = axes[-1]
        for sym in SYMMETRIES:
            acc = [np.mean([r["test"]["accuracy"] for r in rows if r["setting"] == d and r["symmetry"] == sym])
                   for d in depths]
            ax.plot(depths, acc, "o-", color=colors[sym], label=sym)
        ax.set(title="test accuracy vs depth", xlabel="weight layers", ylabel="accuracy")
        ax.legend(fontsize=8)
    else:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        for ax, key, title in zip(axes, ("rhat_params_max", "rhat_pred_max", "chain_disagreement"),
                                  ("max R-hat, parameters", "max R-hat, predictions", "chain disagreement (TV)")):
            for i, sym in enumerate(SYMMETRIES):
                vals = [r[key] for r in rows if r["symmetry"] == sym]
                ax.bar(i, np.mean(vals), color=colors[sym], yerr=np.std(vals) if len(vals) > 1 else None)
            ax.set_xticks(range(len(SYMMETRIES)), SYMMETRIES)
            ax.set_title(title)
    fig.suptitle(f"BNN benchmark '{cfg['suite']}' on {cfg['data']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_bnn_report(report: dict, out_dir, machine: str | None = None) -> list[Path]:
    out_dir = Path(out_dir)
    stem = f"{report['experiment']}_{report['config']['data']}"
    table = bnn_table(report) + (f"\nMachine: {machine}\n" if machine else "")
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.json", out_dir / f"{stem}.png"]
    atomic_write_text(paths[0], table)
    atomic_write_text(paths[1], json.dumps({**report, "machine": machine}, indent=1))
    plot_bnn(report, paths[2])
    return paths
