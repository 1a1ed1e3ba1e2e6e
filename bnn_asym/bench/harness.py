"""Run a benchmark suite: reference posteriors first, then every cell not yet in the store.

A cell loads its data, builds its network, fits its engine with checkpoints, and scores the posterior as
it converges (curves against wall time and gradient evaluations) and at the end (calibration, agreement
with the reference, multimodality) -- ``run_cell``, a plain function of the cell and its reference, so it
runs the same in this process, in joblib's local worker processes or on a dask.distributed cluster. The
parent process alone writes to the SQLite store, one transaction per finished cell: a killed run resumes
where it stopped. The same suite and seeds give the same numbers on every backend (timings aside):
cells run their chains sequentially unless the suite asks otherwise.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .store import BenchStore
from .suites import Cell, Suite

BACKENDS = ("inprocess", "joblib", "dask")
DEFAULT_CHECKPOINTS = 10  # curve points over a run when the suite gives no checkpoints


# ----- what a cell is made of -------------------------------------------------------------------------------
def load_data(cell: Cell):
    from .. import datasets

    d = cell.data
    return datasets.load(d.name, test_size=d.test_size, seed=d.seed, n_samples=d.n_samples)


def build_network(cell: Cell, ds):
    from ..nets import CNN, MLP

    n = cell.network
    n_out = ds.n_classes if ds.task == "classification" else 1
    common = dict(symmetry=cell.symmetry, norm=n.norm, seed=n.seed, init_scheme=n.init, figlu_init=n.figlu_init)
    if n.family == "mlp":
        return MLP(ds.n_features, n.hidden, n_out, **common)
    if len(ds.input_shape) != 3:
        raise ValueError(f"network family 'cnn' needs image data; {ds.name!r} has input shape {ds.input_shape}")
    return CNN(ds.input_shape, n.channels, n_out, hidden=n.hidden, **common)


def build_model(cell: Cell, ds):
    from ..models import BayesianModel, Likelihood, Prior

    lik = Likelihood("categorical") if ds.task == "classification" else Likelihood("gaussian")
    return BayesianModel(build_network(cell, ds), lik, Prior("fan_in", cell.network.prior_scale))


def predictive(post, X):
    """Classification: (N, K) probabilities. Regression: (mean, std)."""
    return post.predict(X)


# ----- reference posteriors -----------------------------------------------------------------------------------
def compute_reference(cell: Cell, reference) -> dict:
    """A long multi-chain NUTS run: its test-set predictive and convergence, flagged when its prediction
    R-hat exceeds the suite's threshold."""
    from ..fit import fit

    ds = load_data(cell)
    model = build_model(cell, ds)
    post = fit(model, ds.X_train, ds.y_train, engine=reference.engine, seed=reference.seed, progress=False,
               chain_method="sequential", **dict(reference.options))
    diag = post.diagnostics(n_pred=len(ds.X_test))
    pred = predictive(post, ds.X_test)
    out = {"rhat_pred_max": diag["predictions"]["max_rhat"], "rhat_params_max": diag["parameters"]["max_rhat"],
           "ess_pred_min": diag["predictions"]["min_ess_bulk"], "divergences": diag.get("num_divergences", 0),
           "wall_s": post.run_info.wall_time_s, "grad_evals": post.run_info.grad_evals,
           "threshold": reference.rhat_threshold}
    out["flagged"] = bool(out["rhat_pred_max"] > reference.rhat_threshold)
    if ds.task == "classification":
        out["probs"] = np.asarray(pred).tolist()
    else:
        out["mean"], out["std"] = (np.asarray(a).tolist() for a in pred)
    return out


# ----- one cell -----------------------------------------------------------------------------------------------
def _checkpoint_plan(cell: Cell, model, data) -> dict | None:
    if cell.engine.checkpoints:
        return dict(cell.engine.checkpoints)
    if "convergence" not in cell.metrics:
        return None  # no curves asked for: no intermediate draws to pay for
    from ..inference import get_engine

    engine = get_engine(cell.engine.name)()
    algo = engine.build(model, data, engine.make_options(cell.engine.options_dict()), "numpyro")
    total = algo.num_steps if not dict(cell.engine.budget).get("steps") else min(algo.num_steps,
                                                                                 dict(cell.engine.budget)["steps"])
    step = max(1, total // DEFAULT_CHECKPOINTS)
    return {"steps": sorted({min(total, step * i) for i in range(1, DEFAULT_CHECKPOINTS + 1)})}


def _score(post, ds, reference: dict | None) -> dict:
    """Test-set metrics of a posterior: calibration (and agreement with the reference if there is one)."""
    from ..metrics import classification_agreement, classification_metrics, regression_agreement, regression_metrics

    pred = predictive(post, ds.X_test)
    if ds.task == "classification":
        out = classification_metrics(pred, ds.y_test)
        if reference is not None:
            out.update(classification_agreement(np.asarray(reference["probs"]), pred))
    else:
        out = regression_metrics(*pred, ds.y_test)
        if reference is not None:
            out.update(regression_agreement((np.asarray(reference["mean"]), np.asarray(reference["std"])), pred))
    return out


def _chain_predictives(post, X) -> np.ndarray:
    from ..posterior import class_probabilities

    out = post.outputs(X).astype(np.float64)  # (chain, draw, N, K)
    return class_probabilities(out, post.model.likelihood.name).mean(1)


def run_cell(cell: Cell, reference: dict | None = None, posterior_path: str | None = None) -> dict:
    """Fit one cell and score it: {"metrics", "curves", "artifacts", "info"}."""
    import torch

    from ..fit import fit
    from ..inference.base import FitData
    from ..metrics import (aligned_rhat, chain_barriers, coupon_collector, ess_rates, mode_count, reliability,
                           rhat_summary, time_to_target, time_to_within)

    torch.set_num_threads(1)
    ds = load_data(cell)
    model = build_model(cell, ds)
    classification = ds.task == "classification"
    plan = _checkpoint_plan(cell, model, FitData(ds.X_train, ds.y_train))
    curves = []
    want_curves = "convergence" in cell.metrics

    def on_checkpoint(cp):
        if cp.posterior is None or not want_curves:
            return None
        scores = _score(cp.posterior, ds, reference if "agreement" in cell.metrics else None)
        if cp.posterior.n_chains >= 2 and cp.posterior.n_draws >= 4 and classification:
            p = cp.posterior.outputs(ds.X_test[:200]).astype(np.float64)
            scores["rhat_pred"] = rhat_summary(p.reshape(p.shape[0], p.shape[1], -1), ess=False)["max_rhat"]
        for name, value in scores.items():
            curves.append({"curve": name, "step": cp.step, "wall_s": cp.wall_time_s, "grad_evals": cp.grad_evals,
                           "value": value})
        return None

    start = time.perf_counter()
    post = fit(model, ds.X_train, ds.y_train, engine=cell.engine.name, seed=cell.seed, progress=False,
               chain_method=cell.chain_method, init=cell.engine.init, checkpoints=plan, callback=on_checkpoint,
               budget=dict(cell.engine.budget) or None, **cell.engine.options_dict())
    fit_seconds = time.perf_counter() - start
    info = post.run_info
    metrics = {"wall_s": info.wall_time_s, "grad_evals": info.grad_evals, "data_passes": info.data_passes,
               "fit_s": fit_seconds, "free_params": model.net.num_free_params,
               "init_wall_s": info.extra.get("init_wall_time_s", 0.0)}
    artifacts: dict = {}
    final = _score(post, ds, reference if "agreement" in cell.metrics else None)
    metrics.update(final)
    if classification and "calibration" in cell.metrics:
        artifacts["reliability"] = reliability(predictive(post, ds.X_test), ds.y_test)
    if reference is not None:
        metrics["reference_rhat_pred"] = reference["rhat_pred_max"]
        metrics["reference_flagged"] = float(reference["flagged"])
    if "convergence" in cell.metrics and curves:
        by = {}
        for c in curves:
            by.setdefault(c["curve"], []).append(c)
        if "agreement" in by:
            seq = by["agreement"]
            metrics["time_to_agreement_s"] = _none_to_nan(time_to_target([c["wall_s"] for c in seq],
                                                                         [c["value"] for c in seq], cell.agreement_target))
            metrics["grads_to_agreement"] = _none_to_nan(time_to_target([c["grad_evals"] for c in seq],
                                                                        [c["value"] for c in seq], cell.agreement_target))
        nll = by.get("nll")
        if nll:
            metrics["time_to_nll_5pct_s"] = _none_to_nan(time_to_within([c["wall_s"] for c in nll],
                                                                        [c["value"] for c in nll], 0.05))
            metrics["grads_to_nll_5pct"] = _none_to_nan(time_to_within([c["grad_evals"] for c in nll],
                                                                       [c["value"] for c in nll], 0.05))
    chains_with_draws = post.n_chains >= 2 and post.n_draws >= 4
    if chains_with_draws and classification:
        diag = post.diagnostics(n_pred=min(200, len(ds.X_train)))
        metrics["rhat_pred_max"] = diag["predictions"]["max_rhat"]
        metrics["ess_pred_min"] = diag["predictions"]["min_ess_bulk"]
        metrics.update({f"pred_{k}": v for k, v in ess_rates(diag["predictions"]["min_ess_bulk"], info.wall_time_s,
                                                             info.grad_evals).items()})
        metrics["rhat_params_max"] = diag["parameters"]["max_rhat"]
        metrics["divergences"] = diag.get("num_divergences", 0) or 0
    if "multimodality" in cell.metrics and post.n_chains >= 2 and classification:
        modes = mode_count(_chain_predictives(post, ds.X_test))
        metrics["modes"] = modes["modes"]
        metrics["chains_to_visit_modes"] = coupon_collector(modes["sizes"])
        artifacts["modes"] = modes
        means = [{k: v[c].mean(0) for k, v in post.draws.items()} for c in range(post.n_chains)]
        barriers = chain_barriers(model.net, means, ds.X_test, ds.y_test)
        metrics["barrier_mean"], metrics["barrier_max"] = barriers["mean"], barriers["max"]
        artifacts["barriers"] = barriers
        if chains_with_draws and post.run_info.engine in ("nuts", "hmc", "sgld", "sghmc"):
            aligned = aligned_rhat(model.net, {p.name: post.draws[p.name] for p in model.net.layout})
            metrics["rhat_params_aligned_max"] = aligned["after"]["max_rhat"]
            metrics["rhat_params_unaligned_max"] = aligned["before"]["max_rhat"]
            metrics["rhat_params_aligned_median"] = aligned["after"]["median_rhat"]
            metrics["rhat_params_unaligned_median"] = aligned["before"]["median_rhat"]
            metrics["chains_permuted"] = aligned["chains_permuted"]
    if posterior_path:
        post.save(posterior_path)
    return {"metrics": metrics, "curves": curves, "artifacts": artifacts,
            "info": {"stopped_by": info.stopped_by, "steps": info.steps, "device": info.device,
                     "chain_method": info.chain_method, "network": model.net.family}}


def _none_to_nan(v):
    return float("nan") if v is None else v


# ----- the suite ---------------------------------------------------------------------------------------------------
def _executor(backend: str, jobs: int, scheduler: str | None):
    """``map(fn, args_list) -> iterator of (index, result)`` as results arrive."""
    if backend == "inprocess":
        return lambda fn, items: ((i, fn(*args)) for i, args in enumerate(items))
    if backend == "joblib":
        from joblib import Parallel, delayed

        def run(fn, items):
            indexed = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_indexed)(fn, i, args) for i, args in enumerate(items))
            return iter(indexed)

        return run
    if backend == "dask":
        from distributed import Client, as_completed

        def run(fn, items):
            client = Client(scheduler) if scheduler else Client(processes=True, n_workers=jobs, threads_per_worker=1,
                                                                 host="127.0.0.1", dashboard_address=None)
            try:
                futures = [client.submit(_indexed, fn, i, args, pure=False) for i, args in enumerate(items)]
                for future in as_completed(futures):
                    yield future.result()
            finally:
                client.close()

        return run
    raise ValueError(f"backend={backend!r} is not valid; accepted: {', '.join(BACKENDS)}")


def _indexed(fn, i, args):
    return i, fn(*args)


def run_suite(suite: Suite, store: BenchStore, backend: str = "inprocess", jobs: int = 2, scheduler: str | None = None,
              progress: bool = True, posterior_dir=None, log: Callable[[str], None] | None = None) -> dict:
    """Compute what the store lacks: references, then cells. Returns counts of what was done and reused."""
    from ..progress import progress_bar
    from .store import job_key

    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; accepted: {', '.join(BACKENDS)}")
    if scheduler is not None and backend != "dask":
        raise ValueError("a scheduler address needs backend='dask'")
    log = log or (lambda message: None)
    executor = _executor(backend, jobs, scheduler)
    cells = suite.cells()
    done = store.done()
    todo = [c for c in cells if c.key not in done]
    log(f"suite {suite.name!r}: {len(cells)} cells, {len(cells) - len(todo)} already in {store.path}")
    references: dict[str, dict] = {}
    if suite.reference is not None and "agreement" in suite.metrics:
        needed = {}
        for c in cells:
            cfg = c.reference_config(suite.reference)
            needed.setdefault(job_key(cfg), (c, cfg))
        missing = []
        for key, (c, cfg) in needed.items():
            found = store.get_reference(cfg)
            if found is None:
                missing.append((key, c, cfg))
            else:
                references[key] = found
        bar = progress_bar(total=len(missing), desc="references", enabled=progress)
        for i, result in executor(_timed_reference, [(c, suite.reference) for _, c, _ in missing]):
            key, _, cfg = missing[i]
            store.put_reference(cfg, result, result["wall_s"])
            references[key] = result
            bar.update(1)
            if result["flagged"]:
                log(f"reference for {cfg['symmetry']} / {cfg['network']} is flagged: prediction R-hat "
                    f"{result['rhat_pred_max']:.3f} > {suite.reference.rhat_threshold}")
        bar.close()
    args = []
    for c in todo:
        ref = references.get(job_key(c.reference_config(suite.reference))) if references else None
        path = None
        if posterior_dir is not None:
            from pathlib import Path

            path = str(Path(posterior_dir) / f"{c.key}.nc")
        args.append((c, ref, path))
    bar = progress_bar(total=len(todo), desc=f"bench {suite.name}", enabled=progress)
    for i, (result, seconds) in executor(_timed_cell, args):
        c = todo[i]
        store.put_cell(c.key, suite.name, _stored_config(c), result, seconds)
        bar.update(1)
    bar.close()
    return {"cells": len(cells), "computed": len(todo), "reused": len(cells) - len(todo),
            "references": len(references)}


def _timed_cell(cell, reference, path):
    start = time.perf_counter()
    result = run_cell(cell, reference, path)
    return result, time.perf_counter() - start


def _timed_reference(cell, reference):
    return compute_reference(cell, reference)


def _stored_config(cell: Cell) -> dict:
    return {**cell.config(), "network_label": cell.network.label(), "suite": cell.suite}
