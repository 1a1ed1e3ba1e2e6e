"""A benchmark store as a report: Markdown tables and PNG figures, mean and spread over seeds everywhere.

Figures: every engine's distance to the reference posterior and its test NLL per symmetry, convergence
curves (agreement with the reference and test NLL against wall time, one panel per data set, network and
engine, standard vs W-Asym vs sigma-Asym), reliability diagrams, parameter R-hat before and after
alignment next to prediction R-hat, ESS per second, and a table of functional modes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io import atomic_path, atomic_write_text
from .store import BenchStore
from .suites import network_label

SYMMETRY_ORDER = ("standard", "sigma_asym", "w_asym")
COLORS = {"standard": "C0", "sigma_asym": "C2", "w_asym": "C3"}
HEADLINE = [
    ("accuracy", "acc", 3),
    ("nll", "NLL", 3),
    ("ece", "ECE", 3),
    ("agreement", "agree", 3),
    ("total_variation", "TV", 3),
    ("rmse", "RMSE", 3),
    ("coverage_90", "cov90", 2),
    ("w1", "W1", 3),
    ("time_to_agreement_s", "s to agree", 1),
    ("pred_ess_per_s", "ESS/s", 1),
    ("modes", "modes", 1),
    ("wall_s", "fit s", 1),
]


def _group(cells: list[dict]) -> dict:
    """(data, network, engine, symmetry) -> cells (one per seed)."""
    groups: dict = {}
    for c in cells:
        cfg = c["config"]
        key = (cfg["data"]["name"], cfg.get("network_label", ""), cfg["engine"]["label"], cfg["symmetry"])
        groups.setdefault(key, []).append(c)
    return groups


def _mean_std(values) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return "-"
    digits = 3 if np.abs(v).max() < 100 else 0
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


NOT_MIXED = "not mixed"


def _figure(rs: list[dict], key: str) -> str:
    """mean ± std over seeds of one metric; "not mixed" for an ESS figure of any seed whose chains had not mixed."""
    from .harness import ESS_DERIVED

    if key in ESS_DERIVED and any(r["metrics"].get("mixed") == 0 for r in rs):
        return NOT_MIXED
    return _mean_std(r["metrics"].get(key) for r in rs)


def headline_table(cells: list[dict]) -> str:
    groups = _group(cells)
    present = [(k, label) for k, label, _ in HEADLINE if any(k in c["metrics"] for c in cells)]
    lines = [
        "| data | network | engine | symmetry | seeds | " + " | ".join(label for _, label in present) + " |",
        "|" + "---|" * (5 + len(present)),
    ]
    order = sorted(
        groups, key=lambda k: (k[0], k[1], k[2], SYMMETRY_ORDER.index(k[3]) if k[3] in SYMMETRY_ORDER else 9)
    )
    for key in order:
        rs = groups[key]
        cols = [_figure(rs, k) for k, _ in present]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(rs)} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


TIME_TO_TARGET = [
    ("time_to_agreement_s", "s to 95% agreement"),
    ("grads_to_agreement", "gradients to 95% agreement"),
    ("time_to_ref_nll_5pct_s", "s to NLL within 5% of the reference"),
    ("grads_to_ref_nll_5pct", "gradients to NLL within 5%"),
]


def _target_figure(rs: list[dict], key: str) -> str:
    """mean ± std over the seeds that reached a target; "never" where every seed that was scored for it did not."""
    values = [r["metrics"].get(key) for r in rs if key in r["metrics"]]
    if values and not any(v is not None and np.isfinite(v) for v in values):
        return "never"
    return _mean_std(values)


def time_to_target_table(cells: list[dict]) -> str:
    """Seconds and gradient evaluations (warm starts included) to agreement with the reference and to its NLL;
    "never" where no seed got there within its run."""
    rows = [c for c in cells if any(k in c["metrics"] for k, _ in TIME_TO_TARGET)]
    if not rows:
        return ""
    groups = _group(rows)
    lines = [
        "| data | network | engine | symmetry | " + " | ".join(label for _, label in TIME_TO_TARGET) + " |",
        "|" + "---|" * (4 + len(TIME_TO_TARGET)),
    ]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[3], k[2])):
        rs = groups[key]
        cols = [_target_figure(rs, k) for k, _ in TIME_TO_TARGET]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def symmetry_table(cells: list[dict]) -> str:
    """MCMC and multimodality: parameter R-hat before/after alignment, prediction R-hat, modes, barriers."""
    rows = [c for c in cells if "rhat_params_unaligned_max" in c["metrics"] or "modes" in c["metrics"]]
    if not rows:
        return ""
    groups = _group(rows)
    cols = [
        ("rhat_params_unaligned_median", "median R-hat params"),
        ("rhat_params_aligned_median", "median R-hat params, aligned"),
        ("rhat_params_unaligned_max", "max R-hat params"),
        ("rhat_params_aligned_max", "max, aligned"),
        ("rhat_pred_max", "max R-hat predictions"),
        ("modes", "modes"),
        ("chains_to_visit_modes", "chains to visit all"),
        ("barrier_mean", "barrier between chain means"),
        ("divergences", "divergences"),
    ]
    lines = [
        "| data | network | engine | symmetry | " + " | ".join(label for _, label in cols) + " |",
        "|" + "---|" * (4 + len(cols)),
    ]
    for key in sorted(
        groups, key=lambda k: (k[0], k[1], k[2], SYMMETRY_ORDER.index(k[3]) if k[3] in SYMMETRY_ORDER else 9)
    ):
        rs = groups[key]
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | "
            + " | ".join(_mean_std(r["metrics"].get(k) for r in rs) for k, _ in cols)
            + " |"
        )
    return "\n".join(lines)


def references_table(store: BenchStore) -> str:
    refs = store.references()
    if not refs:
        return ""
    lines = [
        "Pass rule: max rank-normalised R-hat over the test-set predictive probabilities <= the threshold (1.01 unless "
        "the suite says otherwise); chainwise (every chain in 4 pieces) and nested R-hat (every chain its own "
        "superchain) are reported beside it. A reference that has not passed after its rounds is flagged.",
        "",
        "| data | network | symmetry | engine, init | chains x draws | rounds | max R-hat (test predictions) | "
        "chainwise | nested | passed | min ESS | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cfg, r in refs:
        spec = cfg["reference"]
        o = r.get("final_options", spec["options"])
        draws = r.get("draws_per_chain", o.get("num_samples"))  # references before rounds added up: the last one's
        lines.append(
            f"| {cfg['data']['name']} | {network_label(cfg['network'])} | {cfg['symmetry']} | {spec['engine']}, "
            f"{spec.get('init', 'network')} | {o.get('num_chains')} x {draws} | {r.get('rounds', 1)} | "
            f"{r['rhat_pred_max']:.3f} | {_maybe(r.get('rhat_pred_chainwise_max'))} | "
            f"{_maybe(r.get('rhat_pred_nested_max'))} | {'no' if r['flagged'] else 'yes'} | {_reference_ess(r)} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def _maybe(value, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _reference_ess(r: dict) -> str:
    from ..fit import MIXING_RHAT

    return NOT_MIXED if r["rhat_pred_max"] > MIXING_RHAT else f"{r['ess_pred_min']:.0f}"


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def _values(cells: list[dict], metric: str, **config) -> np.ndarray:
    """The finite values of ``metric`` over the cells whose config matches (data, network, engine, symmetry)."""
    keys = {
        "data": lambda c: c["config"]["data"]["name"],
        "network": lambda c: c["config"].get("network_label", ""),
        "engine": lambda c: c["config"]["engine"]["label"],
        "symmetry": lambda c: c["config"]["symmetry"],
    }
    vals = [c["metrics"].get(metric) for c in cells if all(keys[k](c) == v for k, v in config.items())]
    return np.asarray([v for v in vals if v is not None and np.isfinite(v)], np.float64)


def _bar_panel(ax, cells, data: str, network: str, metric: str, engines: list, symmetries: list) -> None:
    """One bar per engine and symmetry: mean over seeds, min-max whiskers."""
    height = 0.8 / max(1, len(symmetries))
    for i, sym in enumerate(symmetries):
        ys, means, lows, highs = [], [], [], []
        for j, engine in enumerate(engines):
            vals = _values(cells, metric, data=data, network=network, engine=engine, symmetry=sym)
            if len(vals):
                ys.append(j + (i - (len(symmetries) - 1) / 2) * height)
                means.append(vals.mean())
                lows.append(vals.mean() - vals.min())
                highs.append(vals.max() - vals.mean())
        ax.barh(
            ys,
            means,
            height,
            xerr=[lows, highs],
            color=COLORS.get(sym),
            label=sym,
            error_kw={"lw": 0.8, "capsize": 1.5},
        )
    ax.set_yticks(range(len(engines)), engines, fontsize=8)
    ax.invert_yaxis()


def _log_axis(ax, which: str) -> None:
    """A log axis labelled at 1-2-5 steps only (matplotlib's minor-tick labels overlapped on short ranges)."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=8))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def reference_name(cells: list[dict]) -> str:
    """What the figures call the reference: "the adjusted_mclmc reference" where every cell names the same sampler,
    "the reference" where they differ or a cell does not say (stores from before cells held their reference's
    settings)."""
    samplers = {(c["config"].get("reference") or {}).get("engine") for c in cells}
    return f"the {samplers.pop()} reference" if len(samplers) == 1 and None not in samplers else "the reference"


def plot_reference_distance(cells: list[dict], path) -> Path | None:
    """Per data set and network: every engine's distance to the reference posterior's predictive (total
    variation; Wasserstein-1 for regression) and its test NLL, one bar per symmetry, mean over seeds with
    min-max whiskers -- the benchmark's answer in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    distance = "total_variation" if any("total_variation" in c["metrics"] for c in cells) else "w1"
    if not any(distance in c["metrics"] for c in cells):
        return None
    problems = sorted({(c["config"]["data"]["name"], c["config"].get("network_label", "")) for c in cells})
    engines = list(dict.fromkeys(c["config"]["engine"]["label"] for c in cells))  # suite order
    symmetries = [s for s in SYMMETRY_ORDER if any(c["config"]["symmetry"] == s for c in cells)]
    distance_label = "total variation" if distance == "total_variation" else "W1"
    panels = ((distance, f"{distance_label} to {reference_name(cells)}"), ("nll", "test NLL"))
    fig, axes = plt.subplots(len(problems), 2, figsize=(9, 0.45 * len(engines) * len(problems) + 1.2), squeeze=False)
    for row, (data, network) in enumerate(problems):
        for col, (metric, label) in enumerate(panels):
            ax = axes[row, col]
            _bar_panel(ax, cells, data, network, metric, engines, symmetries)
            if col == 0:
                _log_axis(ax, "x")
            ax.set_xlabel(label, fontsize=8)
            ax.set_title(f"{data}, {network}", fontsize=9)
            ax.grid(axis="x", which="both", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_convergence(store: BenchStore, cells: list[dict], path, x: str = "wall_s") -> Path | None:
    """Agreement (or accuracy) and NLL against wall time per data set, network and engine; a line per symmetry,
    mean over seeds (band: min to max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one column per (data, network, engine): runs of different networks are never averaged together
    panels = sorted(
        {
            (c["config"]["data"]["name"], c["config"].get("network_label", ""), c["config"]["engine"]["label"])
            for c in cells
        }
    )
    several_problems = len({p[:2] for p in panels}) > 1
    curves = {c["key"]: store.curves(c["key"]) for c in cells}
    top = "agreement" if any("agreement" in v for v in curves.values()) else "accuracy"
    if not any(top in v for v in curves.values()):
        return None
    fig, axes = plt.subplots(2, len(panels), figsize=(3.4 * len(panels), 6.4 if several_problems else 6), squeeze=False)
    for j, (data, network, engine) in enumerate(panels):
        for row, metric in enumerate((top, "nll")):
            ax = axes[row, j]
            for sym in SYMMETRY_ORDER:
                runs = [
                    curves[c["key"]].get(metric)
                    for c in cells
                    if (
                        c["config"]["data"]["name"],
                        c["config"].get("network_label", ""),
                        c["config"]["engine"]["label"],
                    )
                    == (data, network, engine)
                    and c["config"]["symmetry"] == sym
                ]
                found = [r for r in runs if r is not None and r]
                if not found:
                    continue
                n = min(len(r) for r in found)
                xs = np.mean([[p[1 if x == "wall_s" else 2] for p in r[:n]] for r in found], axis=0)
                ys = np.asarray([[p[3] for p in r[:n]] for r in found])
                ax.plot(xs, ys.mean(0), color=COLORS.get(sym), marker=".", label=sym)
                if len(found) > 1:
                    ax.fill_between(xs, ys.min(0), ys.max(0), color=COLORS.get(sym), alpha=0.15)
            title = f"{engine}: {metric}"
            ax.set_title(f"{data}, {network}\n{title}" if several_problems else title, fontsize=9)
            ax.set_xlabel("wall time (s)" if x == "wall_s" else "gradient evaluations", fontsize=8)
            if metric == "nll":
                _log_axis(ax, "y")
            if j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(store: BenchStore, cells: list[dict], path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = sorted({c["config"]["engine"]["label"] for c in cells})
    fig, axes = plt.subplots(1, len(engines), figsize=(3.2 * len(engines), 3.3), squeeze=False)
    drawn = False
    for ax, engine in zip(axes[0], engines):
        for sym in SYMMETRY_ORDER:
            diagrams = [
                store.artifacts(c["key"]).get("reliability")
                for c in cells
                if c["config"]["engine"]["label"] == engine and c["config"]["symmetry"] == sym
            ]
            stored = [d for d in diagrams if d is not None and d]
            if not stored:
                continue
            count = np.sum([d["count"] for d in stored], axis=0)
            conf = np.nansum([np.nan_to_num(d["confidence"]) * np.asarray(d["count"]) for d in stored], axis=0)
            acc = np.nansum([np.nan_to_num(d["accuracy"]) * np.asarray(d["count"]) for d in stored], axis=0)
            keep = count > 0
            ax.plot(conf[keep] / count[keep], acc[keep] / count[keep], "o-", color=COLORS.get(sym), label=sym, ms=3)
            drawn = True
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(title=engine, xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    problems = sorted({f"{c['config']['data']['name']}, {c['config'].get('network_label', '')}" for c in cells})
    fig.suptitle(
        f"Reliability of the test-set predictive (15 bins, pooled over seeds): {'; '.join(problems)}", fontsize=9
    )
    fig.tight_layout()
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    return _save(fig, path)


def plot_symmetry(cells: list[dict], path) -> Path | None:
    """Median parameter R-hat before/after alignment next to max prediction R-hat, and ESS per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in cells if "rhat_params_unaligned_median" in c["metrics"]]
    if not rows:
        return None
    groups = _group(rows)
    keys = sorted(groups, key=lambda k: (k[2], SYMMETRY_ORDER.index(k[3]) if k[3] in SYMMETRY_ORDER else 9))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(keys) + 4), 3.8))
    xs = np.arange(len(keys))
    width = 0.27
    for offset, metric, label in (
        (-width, "rhat_params_unaligned_median", "params"),
        (0, "rhat_params_aligned_median", "params, aligned"),
        (width, "rhat_pred_max", "predictions (max)"),
    ):
        vals = [np.nanmean([r["metrics"].get(metric, np.nan) for r in groups[k]]) for k in keys]
        ax1.bar(xs + offset, np.asarray(vals) - 1, width, bottom=1, label=label)
    ax1.axhline(1.01, color="k", ls=":", lw=1)
    ax1.set_xticks(xs, [f"{k[2]}\n{k[3]}" for k in keys], fontsize=7)
    ax1.set(ylabel="R-hat (median over parameters)", title="R-hat before and after aligning chains")
    ax1.legend(fontsize=7)
    unmixed = [_figure(groups[k], "pred_ess_per_s") == NOT_MIXED for k in keys]
    ess = [
        np.nan if u else np.nanmean([r["metrics"].get("pred_ess_per_s", np.nan) for r in groups[k]])
        for k, u in zip(keys, unmixed)
    ]
    ax2.bar(xs, ess, color=[COLORS.get(k[3], "C7") for k in keys])
    for x, u in zip(xs, unmixed):
        if u:  # no bar: the chains had not mixed, so their ESS measures nothing
            ax2.text(x, 0, NOT_MIXED, rotation=90, ha="center", va="bottom", fontsize=7)
    ax2.set_xticks(xs, [f"{k[2]}\n{k[3]}" for k in keys], fontsize=7)
    ax2.set(ylabel="min ESS (predictions) per second", title="sampling efficiency")
    fig.tight_layout()
    return _save(fig, path)


PRIOR_SENSITIVITY = (("nll", "NLL"), ("accuracy", "acc"), ("ece", "ECE"), ("total_variation", "TV"))


def prior_sensitivity_table(cells: list[dict]) -> str:
    """Every engine under each prior scale its network was run with (cells whose networks differ only in
    ``prior_scale``): test NLL, accuracy, ECE and distance to that prior's reference, side by side; empty when
    every network has one prior."""
    from ..models.priors import DEFAULT_SCALE
    from .suites import network_label

    groups: dict = {}
    for c in cells:
        cfg = c["config"]
        network = dict(cfg["network"])
        scale = network.pop("prior_scale", None)
        if scale is None:
            continue
        base = network_label({**network, "prior_scale": DEFAULT_SCALE})  # the label without its prior
        key = (cfg["data"]["name"], base, cfg["engine"]["label"], cfg["symmetry"])
        groups.setdefault(key, {}).setdefault(float(scale), []).append(c)
    scales = sorted({s for by_scale in groups.values() for s in by_scale})
    if len(scales) < 2:
        return ""
    header = [f"{label} (prior {s:g})" for key, label in PRIOR_SENSITIVITY for s in scales]
    lines = ["| data | network | engine | symmetry | " + " | ".join(header) + " |", "|" + "---|" * (4 + len(header))]
    order = sorted(
        groups, key=lambda k: (k[0], k[1], k[2], SYMMETRY_ORDER.index(k[3]) if k[3] in SYMMETRY_ORDER else 9)
    )
    for key in order:
        by_scale = groups[key]
        cols = [
            _mean_std(r["metrics"].get(m) for r in by_scale.get(s, [])) for m, _ in PRIOR_SENSITIVITY for s in scales
        ]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


DEPTH_METRICS = (
    ("grads_to_agreement", "gradients to 95% agreement"),
    ("time_to_agreement_s", "s to 95% agreement"),
    ("rhat_pred_max", "max R-hat predictions"),
    ("rhat_params_unaligned_median", "median R-hat params"),
    ("rhat_params_aligned_median", "median R-hat params, aligned"),
    ("modes", "modes"),
    ("nll", "test NLL"),
)


def _depth_groups(cells: list[dict]) -> dict:
    """(data, network without its depth) -> {hidden layers: cells}, for MLPs of one width that a suite runs at
    two or more depths (everything else about the network equal)."""
    groups: dict = {}
    for c in cells:
        network = dict(c["config"]["network"])
        hidden = network.pop("hidden", None)
        if network.get("family") != "mlp" or not hidden or len(set(hidden)) != 1:
            continue
        base = (c["config"]["data"]["name"], json.dumps({**network, "width": hidden[0]}, sort_keys=True))
        groups.setdefault(base, {}).setdefault(len(hidden), []).append(c)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def _depth_value(rs: list[dict], metric: str) -> str:
    return (
        _target_figure(rs, metric) if metric in ("grads_to_agreement", "time_to_agreement_s") else _figure(rs, metric)
    )


def _of(cells: list[dict], engine: str, symmetry: str) -> list[dict]:
    return [c for c in cells if c["config"]["engine"]["label"] == engine and c["config"]["symmetry"] == symmetry]


def depth_table(cells: list[dict]) -> str:
    """The same engines on MLPs that differ only in depth: each measure of sampling (cost to agree with the
    reference, prediction and parameter R-hat before / after alignment, modes, NLL) with one column per
    number of hidden layers, so that a trend with depth reads along a row; empty without such networks."""
    blocks = []
    for (data, base), by_depth in sorted(_depth_groups(cells).items()):
        depths = sorted(by_depth)
        width = json.loads(base)["width"]
        engines = list(dict.fromkeys(c["config"]["engine"]["label"] for d in depths for c in by_depth[d]))
        symmetries = [
            s for s in SYMMETRY_ORDER if any(c["config"]["symmetry"] == s for d in depths for c in by_depth[d])
        ]
        lines = [
            f"{data}, MLP of width {width}: columns are hidden layers",
            "",
            "| measure | engine | symmetry | " + " | ".join(f"{d} hidden" for d in depths) + " |",
            "|" + "---|" * (3 + len(depths)),
        ]
        for metric, label in DEPTH_METRICS:
            for engine in engines:
                for sym in symmetries:
                    cols = []
                    for d in depths:
                        rs = _of(by_depth[d], engine, sym)
                        cols.append(_depth_value(rs, metric) if rs else "-")
                    if any(col != "-" for col in cols):
                        lines.append(f"| {label} | {engine} | {sym} | " + " | ".join(cols) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _depth_series(by_depth: dict, engine: str, symmetry: str, metric: str):
    """(depths, means over seeds, [below, above] min-max spread, depths where a seed never agreed) of one line."""
    xs, means, lows, highs, never = [], [], [], [], []
    for d in sorted(by_depth):
        rs = _of(by_depth[d], engine, symmetry)
        vals = np.asarray([r["metrics"][metric] for r in rs if metric in r["metrics"]], np.float64)
        if metric == "grads_to_agreement" and np.isnan(vals).any():
            never.append(d)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            xs.append(d)
            means.append(vals.mean())
            lows.append(vals.mean() - vals.min())
            highs.append(vals.max() - vals.mean())
    return xs, means, [lows, highs], never


def plot_depth(cells: list[dict], path) -> Path | None:
    """Sampling against depth: gradients to 95% agreement with the reference (an open marker at the top where
    a seed never got there), max prediction R-hat, median parameter R-hat after alignment, test NLL; a line per
    engine (line style) and symmetry (colour), mean over seeds, min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _depth_groups(cells)
    if not groups:
        return None
    panels = (
        ("grads_to_agreement", "gradients to 95% agreement", True),
        ("rhat_pred_max", "max R-hat (test predictions)", True),
        ("rhat_params_aligned_median", "median R-hat (params, aligned)", True),
        ("nll", "test NLL", False),
    )
    styles = ("-", "--", ":", "-.")
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(3.3 * len(panels), 3.0 * len(groups)), squeeze=False)
    for row, by_depth in enumerate(groups[k] for k in sorted(groups)):
        depths = sorted(by_depth)
        every = [c for d in depths for c in by_depth[d]]
        engines = list(dict.fromkeys(c["config"]["engine"]["label"] for c in every))
        symmetries = [s for s in SYMMETRY_ORDER if any(c["config"]["symmetry"] == s for c in every)]
        for col, (metric, label, log) in enumerate(panels):
            ax = axes[row, col]
            for i, engine in enumerate(engines):
                for sym in symmetries:
                    xs, means, spread, never = _depth_series(by_depth, engine, sym, metric)
                    line = ax.errorbar(
                        xs, means, yerr=spread, color=COLORS.get(sym), ls=styles[i % len(styles)],
                        marker="o", ms=3, lw=1.2, capsize=2, label=f"{engine}, {sym}",
                    )  # fmt: skip
                    if never:
                        top = ax.get_ylim()[1]
                        ax.plot(never, [top] * len(never), ls="none", marker="^", mfc="none", color=line[0].get_color())
            if log:
                _log_axis(ax, "y")
            ax.set_xticks(depths)
            ax.set_xlabel("hidden layers", fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=6)
    fig.suptitle("Sampling at depth (open triangles: a seed never reached 95% agreement)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _ood_sets(cells: list[dict]) -> list[str]:
    """The OOD sets scored in these cells, in the harness's order (from metric names ood_<set>_<criterion>_...)."""
    from ..metrics.uncertainty import CRITERIA

    found: dict[str, None] = {}
    for c in cells:
        for name in c["metrics"]:
            if name.startswith("ood_") and name.endswith("_auroc"):
                inner = name[len("ood_") : -len("_auroc")]
                for criterion in CRITERIA + ("predictive_std",):
                    if inner.endswith(f"_{criterion}"):
                        found[inner[: -len(criterion) - 1]] = None
    return list(found)


def ood_table(cells: list[dict]) -> str:
    """OOD detection: AUROC of the total predictive entropy and of the mutual information for each OOD set,
    and selective prediction's AURC on the test set (mean ± std over seeds)."""
    sets = _ood_sets(cells)
    rows = [c for c in cells if any(k.startswith("ood_") for k in c["metrics"])]
    if not sets or not rows:
        return ""
    regression = all("test_aurc" not in c["metrics"] for c in rows)
    criteria = (
        [("predictive_std", "std")] if regression else [("total_entropy", "entropy"), ("mutual_information", "MI")]
    )
    header = [f"AUROC {label} ({s})" for s in sets for _, label in criteria] + ([] if regression else ["test AURC"])
    lines = ["| data | network | engine | symmetry | " + " | ".join(header) + " |", "|" + "---|" * (4 + len(header))]
    groups = _group(rows)
    for key in sorted(
        groups, key=lambda k: (k[0], k[1], k[2], SYMMETRY_ORDER.index(k[3]) if k[3] in SYMMETRY_ORDER else 9)
    ):
        rs = groups[key]
        cols = [_mean_std(r["metrics"].get(f"ood_{s}_{c}_auroc") for r in rs) for s in sets for c, _ in criteria]
        if not regression:
            cols.append(_mean_std(r["metrics"].get("test_aurc") for r in rs))
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def _shift_angles(cells: list[dict]) -> list[int]:
    angles = {
        int(k.split("_")[1]) for c in cells for k in c["metrics"] if k.startswith("shift_") and k.endswith("_accuracy")
    }
    return sorted(angles)


def shift_table(cells: list[dict]) -> str:
    """Accuracy under rotation (a covariate shift), at each angle scored (mean ± std over seeds)."""
    angles = _shift_angles(cells)
    if not angles:
        return ""
    rows = [c for c in cells if "shift_0_accuracy" in c["metrics"] or f"shift_{angles[0]}_accuracy" in c["metrics"]]
    lines = [
        "| data | network | engine | symmetry | " + " | ".join(f"acc {a}°" for a in angles) + " | ECE 45° | MI 45° |",
        "|" + "---|" * (6 + len(angles)),
    ]
    groups = _group(rows)
    for key in sorted(
        groups, key=lambda k: (k[0], k[1], k[2], SYMMETRY_ORDER.index(k[3]) if k[3] in SYMMETRY_ORDER else 9)
    ):
        rs = groups[key]
        cols = [_mean_std(r["metrics"].get(f"shift_{a}_accuracy") for r in rs) for a in angles]
        cols += [_mean_std(r["metrics"].get(f"shift_45_{m}") for r in rs) for m in ("ece", "mutual_information")]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


AUROC_FLOOR = 1e-4  # 1 - AUROC is drawn on a log axis, from here


def plot_ood(cells: list[dict], path) -> Path | None:
    """1 - AUROC of the mutual information and of the total entropy for each OOD set on a log axis (far-OOD
    detection is often near perfect, and the differences are in the last digits), one bar per engine and
    symmetry (mean over seeds, min-max whiskers); 0.5 is chance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = _ood_sets(cells)
    if not sets:
        return None
    regression = all("test_aurc" not in c["metrics"] for c in cells)
    criteria = ["predictive_std"] if regression else ["total_entropy", "mutual_information"]
    problems = sorted({(c["config"]["data"]["name"], c["config"].get("network_label", "")) for c in cells})
    engines = list(dict.fromkeys(c["config"]["engine"]["label"] for c in cells))
    symmetries = [s for s in SYMMETRY_ORDER if any(c["config"]["symmetry"] == s for c in cells)]
    panels = [(s, c) for s in sets for c in criteria]
    fig, axes = plt.subplots(
        len(problems), len(panels), figsize=(3.0 * len(panels), 0.4 * len(engines) * len(problems) + 1.4), squeeze=False
    )
    misses = [
        {
            "config": c["config"],
            "metrics": {k: max(AUROC_FLOOR, 1 - v) for k, v in c["metrics"].items() if k.endswith("_auroc") and v == v},
        }
        for c in cells
    ]
    for row, (data, network) in enumerate(problems):
        for col, (ood_set, criterion) in enumerate(panels):
            ax = axes[row, col]
            _bar_panel(ax, misses, data, network, f"ood_{ood_set}_{criterion}_auroc", engines, symmetries)
            ax.axvline(0.5, color="k", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_xlim(AUROC_FLOOR / 2, 1)  # a perfect detector keeps a visible stub
            ax.set_title(f"{data}: {ood_set}, {criterion.replace('_', ' ')}", fontsize=8)
            ax.set_xlabel("1 - AUROC (lower is better; 0.5 = chance)", fontsize=8)
            if col:
                ax.set_yticklabels([])
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_shift(cells: list[dict], path) -> Path | None:
    """Accuracy, ECE and total entropy against the rotation angle: a panel row per symmetry, a line per engine
    (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    angles = _shift_angles(cells)
    if not angles:
        return None
    engines = list(dict.fromkeys(c["config"]["engine"]["label"] for c in cells))
    symmetries = [s for s in SYMMETRY_ORDER if any(c["config"]["symmetry"] == s for c in cells)]
    measures = (("accuracy", "accuracy"), ("ece", "ECE"), ("total_entropy", "total entropy (nats)"))
    fig, axes = plt.subplots(len(symmetries), 3, figsize=(11, 2.6 * len(symmetries) + 0.6), squeeze=False)
    colors = plt.get_cmap("tab20")
    for row, sym in enumerate(symmetries):
        for col, (metric, label) in enumerate(measures):
            ax = axes[row, col]
            for j, engine in enumerate(engines):
                ys = [_values(cells, f"shift_{a}_{metric}", engine=engine, symmetry=sym) for a in angles]
                if all(len(v) for v in ys):
                    ax.plot(angles, [v.mean() for v in ys], "o-", ms=2, lw=1, color=colors(j % 20), label=engine)
            ax.set(xlabel="rotation (degrees)", ylabel=label, title=f"{sym}: {label}")
            ax.grid(alpha=0.3)
            if row == 0 and col == 2:
                ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def plot_risk_coverage(store: BenchStore, cells: list[dict], path) -> Path | None:
    """Selective prediction: error rate among the most confident rows against the share kept, a panel per
    symmetry, a line per engine (the first seed's curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for c in cells:
        key = (c["config"]["symmetry"], c["config"]["engine"]["label"])
        if key not in curves and "test_aurc" in c["metrics"]:
            stored = store.artifacts(c["key"]).get("risk_coverage")
            if stored:
                curves[key] = stored
    if not curves:
        return None
    symmetries = [s for s in SYMMETRY_ORDER if any(k[0] == s for k in curves)]
    engines = list(dict.fromkeys(c["config"]["engine"]["label"] for c in cells))
    fig, axes = plt.subplots(1, len(symmetries), figsize=(3.8 * len(symmetries), 3.4), squeeze=False)
    colors = plt.get_cmap("tab20")
    for ax, sym in zip(axes[0], symmetries):
        for j, engine in enumerate(engines):
            if (sym, engine) in curves:
                rc = curves[(sym, engine)]
                ax.plot(rc["coverage"], rc["risk"], lw=1, color=colors(j % 20), label=engine)
        ax.set(xlabel="coverage (most confident first)", ylabel="error rate", title=sym)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def _sections(store: BenchStore, cells: list[dict]) -> list[tuple[str, str]]:
    """(heading, table) of every report section after the headline that has something to show."""
    sections = [
        ("Time to target (warm starts included)", time_to_target_table(cells)),
        ("Symmetry and multimodality", symmetry_table(cells)),
        ("Sampling at depth", depth_table(cells)),
        ("Prior sensitivity (the same networks under each prior scale)", prior_sensitivity_table(cells)),
        ("Uncertainty: OOD detection (AUROC, 0.5 = chance) and selective prediction", ood_table(cells)),
        ("Accuracy under rotation (covariate shift)", shift_table(cells)),
        ("Reference posteriors", references_table(store)),
    ]
    return [(heading, table) for heading, table in sections if table]


def write_report(
    store: BenchStore,
    out_dir,
    suite: str | Sequence[str] | None = None,
    machine: str | None = None,
    title: str | None = None,
) -> list[Path]:
    """Markdown (+ JSON of every cell) and PNGs for the cells of ``suite`` -- one name, several (one report, named
    after the first: a suite and its companions, e.g. ``standard`` and ``standard-priors``), or all cells when
    None."""
    names = [suite] if isinstance(suite, str) else list(suite or ())
    cells = store.cells(names)
    if not cells:
        raise ValueError(f"store {store.path} holds no cells{f' of suite {names}' if names else ''}")
    out_dir = Path(out_dir)
    stem = f"bench_{names[0] if names else 'all'}"
    drawn = [
        plot_reference_distance(cells, out_dir / f"{stem}_reference.png"),
        plot_convergence(store, cells, out_dir / f"{stem}_convergence.png"),
        plot_convergence(store, cells, out_dir / f"{stem}_convergence_grads.png", x="grad_evals"),
        plot_reliability(store, cells, out_dir / f"{stem}_reliability.png"),
        plot_symmetry(cells, out_dir / f"{stem}_symmetry.png"),
        plot_depth(cells, out_dir / f"{stem}_depth.png"),
        plot_ood(cells, out_dir / f"{stem}_ood.png"),
        plot_shift(cells, out_dir / f"{stem}_shift.png"),
        plot_risk_coverage(store, cells, out_dir / f"{stem}_risk_coverage.png"),
    ]
    figures = [f for f in drawn if f is not None]
    suites = ", ".join(sorted({c["suite"] for c in cells}))
    parts = [
        f"# {title or f'Benchmark: {suites}'}",
        "",
        f"{len(cells)} cells; mean ± std over seeds. Wall times are the engines' own steps (compilation in the "
        "first chunk included, scoring at checkpoints excluded).",
        "",
        "## Headline",
        "",
        headline_table(cells),
    ]
    for heading, table in _sections(store, cells):
        parts += ["", f"## {heading}", "", table]
    parts += ["", "## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures]
    if machine:
        parts += ["", f"Machine: {machine}"]
    md = out_dir / f"{stem}.md"
    atomic_write_text(md, "\n".join(parts) + "\n")
    js = out_dir / f"{stem}.json"
    atomic_write_text(
        js,
        json.dumps(
            {"machine": machine, "cells": cells, "curves": {c["key"]: store.curves(c["key"]) for c in cells}}, indent=1
        ),
    )
    return [md, js] + figures
