"""Run a benchmark suite: reference posteriors first, then every cell not yet in the store.

A cell is fitted (``fit_cell``: load its data, build its network, fit its engine with checkpoints whose
posteriors are scored as the run converges) and then scored (``score_cell``: every scorer of
``ALWAYS_SCORED`` and of the cell's metric groups in ``SCORERS``, each a plain function of the fitted
cell). ``run_cell`` does both; it is a plain function of the cell and its reference, so it runs the same
in this process, in joblib's local worker processes or on a dask.distributed cluster. The parent process
alone writes to the SQLite store, one transaction per finished cell: a killed run resumes where it
stopped. The same suite and seeds give the same numbers on every backend (timings aside): cells run their
chains sequentially unless the suite asks otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .store import BenchStore
from .suites import Cell, Suite

BACKENDS = ("inprocess", "joblib", "dask")
DEFAULT_CHECKPOINTS = 10  # curve points over a run when the suite gives no checkpoints
CURVE_RHAT_ROWS = 200  # test rows whose predictions give the prediction R-hat of a curve point


# ----- what a cell is made of -------------------------------------------------------------------------------
def load_data(cell: Cell):
    from .. import datasets

    d = cell.data
    return datasets.load(d.name, test_size=d.test_size, seed=d.seed, n_samples=d.n_samples)


def build_model(cell: Cell, ds):
    from ..models import BayesianModel, Likelihood, Prior
    from ..nets.builder import network_for_data

    # regression targets standardised by the training set's statistics, as fit() does
    lik = Likelihood("categorical") if ds.task == "classification" else Likelihood.for_targets("gaussian", ds.y_train)
    return BayesianModel(
        network_for_data(cell.network, ds, cell.symmetry), lik, Prior("fan_in", cell.network.prior_scale)
    )


def predictive(post, X):
    """Classification: (N, K) probabilities. Regression: (mean, std)."""
    return post.predict(X)


# ----- reference posteriors -----------------------------------------------------------------------------------
def compute_reference(cell: Cell, reference, log: Callable[[str], None] | None = None) -> dict:
    """A long multi-chain run of an exact sampler, extended until it passes (``ReferenceSpec``): its test-set
    predictive and convergence on test-set predictive probabilities (rank-normalised R-hat over all chains, the
    pass rule; chainwise and nested R-hat, every chain its own superchain), flagged when it has not passed.
    ``log`` hears where every round left it (draws, R-hat, ESS, seconds so far)."""
    from ..fit import fit

    ds = load_data(cell)
    model = build_model(cell, ds)
    options = dict(reference.options)
    init = None if reference.init == "network" else reference.init
    wall = grads = 0.0
    post = None
    for round_ in range(1, reference.max_rounds + 1):
        # "auto": chains in parallel where the process has several devices (the CLI gives it 2), the same draws as
        # one after the other
        settings = dict(engine=reference.engine, seed=reference.seed + round_ - 1, chain_method="auto")
        run = fit(model, ds.X_train, ds.y_train, progress=False, init=init, **settings, **options)
        info = run.run_info
        wall += info.wall_time_s + info.extra.get("init_wall_time_s", 0.0)
        grads += info.grad_evals + info.extra.get("init_grad_evals", 0)
        post = run if post is None else post.followed_by(run)
        test = _test_convergence(post, ds)
        if log is not None:
            log(
                f"reference for {cell.symmetry} / {cell.network.label()}, round {round_}: {post.n_chains} chains x "
                f"{post.n_draws} draws, max prediction R-hat {test['rhat_pred_max']:.4f}, min ESS "
                f"{test['ess_pred_min']:.0f}, {wall:.0f} s"
            )
        if test["rhat_pred_max"] <= reference.rhat_threshold:
            break
        if round_ < reference.max_rounds:
            # every chain goes on from its last draw, re-adapts for the same warmup and doubles its kept draws: three
            # rounds keep 4x the first round's draws for 3.5x its steps (rerunning from scratch twice as long: 7x)
            init = run
            options = {**options, "num_samples": post.n_draws}
    assert post is not None  # max_rounds >= 1 (the suite checks it)
    from ..metrics import rhat_summary

    params = np.concatenate([v.reshape(post.n_chains, post.n_draws, -1) for v in post.draws.values()], -1)
    diverging = post.sample_stats.get("diverging")
    out = {
        **test,
        "rhat_params_max": rhat_summary(params, ess=False)["max_rhat"],  # what diagnostics() reports, alone
        "divergences": 0 if diverging is None else int(diverging.sum()),
        "wall_s": wall,
        "grad_evals": grads,
        "threshold": reference.rhat_threshold,
        "rounds": round_,
        "final_options": options,
        "draws_per_chain": post.n_draws,
    }
    out["flagged"] = bool(out["rhat_pred_max"] > reference.rhat_threshold)
    pred = predictive(post, ds.X_test)
    if ds.task == "classification":
        out["probs"] = np.asarray(pred).tolist()
    else:
        out["mean"], out["std"] = (np.asarray(a).tolist() for a in pred)
    return out


def ess_needed_text(result: dict, reference) -> str:
    """How far a flagged reference is from passing, in effective draws. Even a stationary chain set's split
    R-hat averages about 1 + K / ESS (K chains, each split in two: the within-chain variance falls short by
    about one effective draw per half; tests/metrics), so R-hat <= threshold asks each quantity for at least
    K / (threshold - 1) effective draws, and the max over many quantities for more."""
    chains = dict(result.get("final_options") or reference.options).get("num_chains", 1)
    needed = chains / (reference.rhat_threshold - 1.0)
    return (
        f"its worst quantity has ESS {result.get('ess_pred_min', float('nan')):.0f}, where R-hat <= "
        f"{reference.rhat_threshold} with {chains} chains needs at least {needed:.0f} (a stationary chain set's "
        f"R-hat averages 1 + {chains} / ESS; the max over many quantities runs higher): extend it with "
        "bnn-asym reference SUITE --extend 1"
    )


def _test_convergence(post, ds) -> dict:
    """R-hat (all chains, chainwise, nested) and min bulk ESS of the test-set predictions."""
    pred = post.prediction_convergence(X=ds.X_test)
    return {
        "rhat_pred_max": pred["max_rhat"],
        "rhat_pred_chainwise_max": pred["max_chainwise_rhat"],
        "rhat_pred_nested_max": pred["max_nested_rhat"],
        "ess_pred_min": pred["min_ess_bulk"],
    }


# ----- fitting a cell -------------------------------------------------------------------------------------------
class FittedCell(NamedTuple):
    """What the scorers read: the cell, its data, model and posterior, its reference and its curve points."""

    cell: Cell
    ds: Any
    model: Any
    post: Any
    reference: dict | None  # the reference posterior's summary, when the cell is scored for agreement
    curves: list  # {"curve", "step", "wall_s", "grad_evals", "value"} per checkpoint and curve
    fit_seconds: float

    @property
    def classification(self) -> bool:
        return self.ds.task == "classification"

    @property
    def chains_with_draws(self) -> bool:
        return self.post.n_chains >= 2 and self.post.n_draws >= 4


def checkpoint_plan(cell: Cell, n_rows: int, n_params: int | None = None) -> dict | None:
    """The suite's checkpoints, or DEFAULT_CHECKPOINTS evenly over the run when convergence curves are asked
    for (from the engine's Plan: nothing is built); None when no curves are asked for."""
    if cell.engine.checkpoints:
        return dict(cell.engine.checkpoints)
    if "convergence" not in cell.metrics:
        return None  # no curves asked for: no intermediate draws to pay for
    from ..inference import get_engine

    engine = get_engine(cell.engine.name)()
    plan = engine.plan(engine.make_options(cell.engine.options_dict()), n_rows, n_params)
    budget_steps = dict(cell.engine.budget).get("steps")
    total = plan.num_steps if not budget_steps else min(plan.num_steps, budget_steps)
    step = max(1, total // DEFAULT_CHECKPOINTS)
    return {"steps": sorted({min(total, step * i) for i in range(1, DEFAULT_CHECKPOINTS + 1)})}


def score_test(post, ds, reference: dict | None) -> dict:
    """Test-set metrics of a posterior: calibration (and agreement with the reference if there is one)."""
    from ..metrics import classification_agreement, classification_metrics, regression_agreement, regression_metrics

    pred = predictive(post, ds.X_test)
    if ds.task == "classification":
        out = classification_metrics(pred, ds.y_test)
        if reference is not None:
            out.update(classification_agreement(np.asarray(reference["probs"]), pred))
    else:
        mean, std = pred
        out = regression_metrics(mean, std, ds.y_test)
        if reference is not None:
            out.update(regression_agreement((np.asarray(reference["mean"]), np.asarray(reference["std"])), pred))
    return out


def _curve_points(checkpoint, ds, reference: dict | None) -> list[dict]:
    """A checkpoint's posterior scored on the test set (and its prediction R-hat), as curve points."""
    from ..metrics import rhat_summary

    post = checkpoint.posterior
    scores = score_test(post, ds, reference)
    if post.n_chains >= 2 and post.n_draws >= 4 and ds.task == "classification":
        p = post.outputs(ds.X_test[:CURVE_RHAT_ROWS]).astype(np.float64)
        scores["rhat_pred"] = rhat_summary(p.reshape(p.shape[0], p.shape[1], -1), ess=False)["max_rhat"]
    return [
        {
            "curve": name,
            "step": checkpoint.step,
            "wall_s": checkpoint.wall_time_s,
            "grad_evals": checkpoint.grad_evals,
            "value": value,
        }
        for name, value in scores.items()
    ]


def fit_cell(cell: Cell, reference: dict | None = None) -> FittedCell:
    """Fit one cell's engine, scoring its checkpoints into curve points when convergence curves are asked for."""
    from ..fit import fit

    ds = load_data(cell)
    model = build_model(cell, ds)
    curves: list[dict] = []
    scored_reference = reference if "agreement" in cell.metrics else None

    def on_checkpoint(checkpoint):
        if checkpoint.posterior is not None and "convergence" in cell.metrics:
            curves.extend(_curve_points(checkpoint, ds, scored_reference))

    start = time.perf_counter()
    post = fit(
        model,
        ds.X_train,
        ds.y_train,
        engine=cell.engine.name,
        seed=cell.seed,
        progress=False,
        chain_method=cell.chain_method,
        init=cell.engine.init,
        checkpoints=checkpoint_plan(cell, len(ds.X_train), model.net.num_free_params),
        callback=on_checkpoint,
        budget=dict(cell.engine.budget) or None,
        **cell.engine.options_dict(),
    )
    return FittedCell(cell, ds, model, post, reference, curves, time.perf_counter() - start)


# ----- scoring a cell: one function per metric group ------------------------------------------------------------
Scores = tuple[dict, dict]  # (metrics, artifacts)


def score_cost(f: FittedCell) -> Scores:
    info = f.post.run_info
    return {
        "wall_s": info.wall_time_s,
        "grad_evals": info.grad_evals,
        "data_passes": info.data_passes,
        "fit_s": f.fit_seconds,
        "free_params": f.model.net.num_free_params,
        "init_wall_s": info.extra.get("init_wall_time_s", 0.0),
    }, {}


def score_final(f: FittedCell) -> Scores:
    """Calibration on the test set, and agreement with the reference when the cell is scored for it."""
    return score_test(f.post, f.ds, f.reference if "agreement" in f.cell.metrics else None), {}


ESS_DERIVED = ("ess_pred_min", "pred_ess_per_s", "pred_ess_per_grad")  # "not mixed" when the chains are not


def mixing_metrics(pred: dict, wall_s: float, grad_evals: float) -> dict:
    """Prediction R-hat (all chains, chainwise, nested) and the ESS figures -- NaN, with ``mixed`` 0, where the
    chains have not mixed (prediction R-hat above fit's MIXING_RHAT): an ESS of chains in different modes
    measures nothing."""
    from ..fit import MIXING_RHAT
    from ..metrics import ess_rates

    mixed = bool(pred["max_rhat"] <= MIXING_RHAT)
    metrics = {
        "rhat_pred_max": pred["max_rhat"],
        "rhat_pred_chainwise_max": pred.get("max_chainwise_rhat", float("nan")),
        "rhat_pred_nested_max": pred.get("max_nested_rhat", float("nan")),
        "mixed": int(mixed),
        "ess_pred_min": pred["min_ess_bulk"],
        **{f"pred_{k}": v for k, v in ess_rates(pred["min_ess_bulk"], wall_s, grad_evals).items()},
    }
    if not mixed:
        metrics.update({k: float("nan") for k in ESS_DERIVED})
    return metrics


def score_mixing(f: FittedCell) -> Scores:
    """R-hat and ESS of parameters and predictions, wherever there are chains to compare."""
    if not (f.chains_with_draws and f.classification):
        return {}, {}
    info = f.post.run_info
    diag = f.post.diagnostics(n_pred=min(CURVE_RHAT_ROWS, len(f.ds.X_train)))
    metrics = {
        **mixing_metrics(diag["predictions"], info.wall_time_s, info.grad_evals),
        "rhat_params_max": diag["parameters"]["max_rhat"],
        "divergences": diag.get("num_divergences", 0) or 0,
    }
    return metrics, {}


def score_calibration(f: FittedCell) -> Scores:
    from ..metrics import reliability

    if not f.classification:
        return {}, {}
    return {}, {"reliability": reliability(predictive(f.post, f.ds.X_test), f.ds.y_test)}


def score_agreement(f: FittedCell) -> Scores:
    """How trustworthy the reference is (its own prediction R-hat and flag)."""
    if f.reference is None:
        return {}, {}
    return {"reference_rhat_pred": f.reference["rhat_pred_max"], "reference_flagged": float(f.reference["flagged"])}, {}


def score_convergence(f: FittedCell) -> Scores:
    """Wall time and gradient evaluations until the agreement target, until test NLL is within 5% of the
    reference's (classification), and until NLL stays within 5% of its end. Warm starts count: their wall time
    and gradients (a MILE or DEI-MCMC ensemble) are added to every checkpoint's."""
    from ..metrics import nll, time_to_target, time_to_within

    by: dict[str, list] = {}
    for c in f.curves:
        by.setdefault(c["curve"], []).append(c)
    extra = f.post.run_info.extra
    offset = {"wall_s": extra.get("init_wall_time_s", 0.0), "grad_evals": extra.get("init_grad_evals", 0)}

    def axis_of(curve, axis):
        return [c[axis] + offset[axis] for c in by[curve]]

    metrics = {}
    targets = []
    if "agreement" in by:
        targets += [("agreement", f.cell.agreement_target, True, ("time_to_agreement_s", "grads_to_agreement"))]
    if by.get("nll") and f.reference is not None and "probs" in f.reference:
        level = 1.05 * nll(np.asarray(f.reference["probs"]), f.ds.y_test)
        targets += [("nll", level, False, ("time_to_ref_nll_5pct_s", "grads_to_ref_nll_5pct"))]
    for curve, level, higher, names in targets:
        values = [c["value"] for c in by[curve]]
        for name, axis in zip(names, ("wall_s", "grad_evals")):
            metrics[name] = _none_to_nan(time_to_target(axis_of(curve, axis), values, level, higher))
    if by.get("nll"):
        values = [c["value"] for c in by["nll"]]
        for name, axis in (("time_to_nll_5pct_s", "wall_s"), ("grads_to_nll_5pct", "grad_evals")):
            metrics[name] = _none_to_nan(time_to_within(axis_of("nll", axis), values, 0.05))
    return metrics, {}


def score_multimodality(f: FittedCell) -> Scores:
    """Functional modes among chains, barriers between chain means and (trajectories) R-hat after aligning
    chains by weight matching."""
    from ..inference import TRAJECTORY, get_engine
    from ..metrics import aligned_rhat, chain_barriers, coupon_collector, mode_count
    from ..posterior import class_probabilities

    post, net = f.post, f.model.net
    if post.n_chains < 2 or not f.classification:
        return {}, {}
    chain_predictives = class_probabilities(post.outputs(f.ds.X_test).astype(np.float64), f.model.likelihood.name).mean(
        1
    )
    modes = mode_count(chain_predictives)
    means = [{k: v[c].mean(0) for k, v in post.draws.items()} for c in range(post.n_chains)]
    barriers = chain_barriers(net, means, f.ds.X_test, f.ds.y_test)
    metrics = {
        "modes": modes["modes"],
        "chains_to_visit_modes": coupon_collector(modes["sizes"]),
        "barrier_mean": barriers["mean"],
        "barrier_max": barriers["max"],
    }
    if f.chains_with_draws and get_engine(post.run_info.engine).kind == TRAJECTORY:
        aligned = aligned_rhat(net, {p.name: post.draws[p.name] for p in net.layout})
        metrics.update(
            rhat_params_aligned_max=aligned["after"]["max_rhat"],
            rhat_params_unaligned_max=aligned["before"]["max_rhat"],
            rhat_params_aligned_median=aligned["after"]["median_rhat"],
            rhat_params_unaligned_median=aligned["before"]["median_rhat"],
            chains_permuted=aligned["chains_permuted"],
        )
    return metrics, {"modes": modes, "barriers": barriers}


def ood_kinds(ds) -> tuple[str, ...]:
    """The far-OOD sets a data set gets in the ``ood`` group: noise, permuted and inverted inputs for images and
    sequences, inputs pushed outside the training range for tabular sets."""
    from ..datasets import IMAGE_LIKE

    return ("noise", "permuted", "inverted") if ds.name in IMAGE_LIKE else ("extrapolation",)


def score_ood(f: FittedCell) -> Scores:
    """The entropy decomposition on the test set, selective prediction (AURC), and how well each uncertainty
    criterion tells the test rows from each OOD set (``ood_<set>_<criterion>_<auroc|aupr|fpr95>``; regression:
    the predictive standard deviation against extrapolated inputs); the risk-coverage curve as an artifact."""
    from ..datasets import ood_inputs
    from ..metrics.uncertainty import risk_coverage

    sets = {kind: ood_inputs(f.ds, kind, seed=f.cell.seed) for kind in ood_kinds(f.ds)}
    result = f.post.evaluate(f.ds.X_test, f.ds.y_test, ood=sets)
    metrics = {f"test_{k}": v for k, v in result.get("uncertainty", {}).items()}
    for kind, by_criterion in result["ood"].items():
        for criterion, m in by_criterion.items():
            metrics.update({f"ood_{kind}_{criterion}_{k}": m[k] for k in ("auroc", "aupr", "fpr95")})
    artifacts = {}
    if f.classification:
        curve = risk_coverage(f.post.draw_probabilities(f.ds.X_test), f.ds.y_test)
        coverage, risk = np.asarray(curve["coverage"]), np.asarray(curve["risk"])
        points = np.unique(np.linspace(0, len(risk) - 1, min(50, len(risk))).astype(int))  # 50 points are enough
        artifacts["risk_coverage"] = {"coverage": coverage[points].tolist(), "risk": risk[points].tolist()}
    return metrics, artifacts


def score_shift(f: FittedCell) -> Scores:
    """Accuracy, NLL, ECE, total entropy and mutual information on the test images rotated by each of
    ``datasets.ROTATION_ANGLES`` (``shift_<angle>_<metric>``; a covariate shift: labels kept). Images only."""
    from ..datasets import ROTATION_ANGLES, rotated

    if not f.classification or len(f.ds.input_shape) != 3:
        return {}, {}
    metrics = {}
    for angle in ROTATION_ANGLES:
        got = f.post.evaluate(rotated(f.ds, angle), f.ds.y_test)
        values = {**got["metrics"], **got["uncertainty"]}
        for k in ("accuracy", "nll", "ece", "total_entropy", "mutual_information"):
            metrics[f"shift_{angle}_{k}"] = values[k]
    return metrics, {}


ALWAYS_SCORED: tuple[Callable[[FittedCell], Scores], ...] = (score_cost, score_final, score_mixing)
SCORERS: dict[str, Callable[[FittedCell], Scores]] = {
    "calibration": score_calibration,
    "agreement": score_agreement,
    "convergence": score_convergence,
    "multimodality": score_multimodality,
    "ood": score_ood,
    "shift": score_shift,
}


def cell_scorers(cell: Cell) -> tuple[Callable[[FittedCell], Scores], ...]:
    """The scorers a cell gets: those every cell gets, then those of its metric groups."""
    return ALWAYS_SCORED + tuple(SCORERS[g] for g in cell.metrics if g in SCORERS)


def score_cell(f: FittedCell) -> tuple[dict, dict]:
    """(metrics, artifacts) of a fitted cell: the scorers every cell gets, then those of its metric groups."""
    metrics: dict = {}
    artifacts: dict = {}
    for scorer in cell_scorers(f.cell):
        m, a = scorer(f)
        metrics.update(m)
        artifacts.update(a)
    return metrics, artifacts


def run_cell(cell: Cell, reference: dict | None = None, posterior_path: str | None = None) -> dict:
    """Fit one cell and score it: {"metrics", "curves", "artifacts", "info"}."""
    import torch

    torch.set_num_threads(1)
    fitted = fit_cell(cell, reference)
    metrics, artifacts = score_cell(fitted)
    if posterior_path:
        fitted.post.save(posterior_path)
    info = fitted.post.run_info
    _release_programs_near_the_map_limit()
    return {
        "metrics": metrics,
        "curves": fitted.curves,
        "artifacts": artifacts,
        "info": {
            "stopped_by": info.stopped_by,
            "steps": info.steps,
            "device": info.device,
            "chain_method": info.chain_method,
            "network": fitted.model.net.family,
        },
    }


def _release_programs_near_the_map_limit() -> None:
    """A worker that fits many cells accumulates compiled programs, whose kernels hold memory maps; past half of
    Linux's limit they are freed (the next cells compile again) before a compilation can crash the worker."""
    from ..jax_setup import near_memory_map_limit, release_compiled_programs

    if near_memory_map_limit(0.5):
        release_compiled_programs()


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
                delayed(_indexed)(fn, i, args) for i, args in enumerate(items)
            )
            return iter(indexed)

        return run
    if backend == "dask":
        from distributed import Client, as_completed

        def run(fn, items):
            client = (
                Client(scheduler)
                if scheduler
                else Client(
                    processes=True, n_workers=jobs, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
                )
            )
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


def suite_references(
    suite: Suite, store: BenchStore, extend: int = 0, check: bool = False, progress: bool = True, log=None
) -> list[tuple[dict, dict | None]]:
    """The references of ``suite`` as (reference config, stored result or None): computed where the store lacks
    them (unless ``check``), and with ``extend`` > 0 the flagged ones recomputed with that many more rounds
    than they ran (replacing them in the store: the same posterior, estimated longer)."""
    import dataclasses

    from .store import job_key

    if suite.reference is None:
        raise ValueError(f"suite {suite.name!r} has no reference")
    log = log or (lambda message: None)
    cells = {job_key(c.reference_config(suite.reference)): c for c in suite.cells()}
    if not check:
        _references(suite, list(cells.values()), store, _executor("inprocess", 1, None), progress, log)
    for cell in cells.values():
        cfg = cell.reference_config(suite.reference)
        found = store.get_reference(cfg)
        if extend and found is not None and found["flagged"] and not check:
            longer = dataclasses.replace(suite.reference, max_rounds=found.get("rounds", 1) + extend)
            result = compute_reference(cell, longer, _to_stderr if progress else None)
            store.put_reference(cfg, result, result["wall_s"])
            log(f"reference for {cfg['symmetry']}: {found['rhat_pred_max']:.3f} -> {result['rhat_pred_max']:.3f}")
    return [(c.reference_config(suite.reference), store.get_reference(c.reference_config(suite.reference)))
            for c in cells.values()]  # fmt: skip


def run_suite(
    suite: Suite,
    store: BenchStore,
    backend: str = "inprocess",
    jobs: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    posterior_dir=None,
    log: Callable[[str], None] | None = None,
) -> dict:
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
    # References run here, one after another, each with its chains in parallel over this process's devices: spread
    # over local workers, the slowest reference (sigma-Asym's, 35 of 49 minutes) ran on one core while the other
    # idled. Only a dask cluster's own workers (a scheduler address) take them.
    reference_executor = executor if scheduler is not None else _executor("inprocess", 1, None)
    references = _references(suite, cells, store, reference_executor, progress, log)
    args = []
    for c in todo:
        ref = references.get(job_key(c.reference_config(suite.reference))) if suite.reference else None
        path = None if posterior_dir is None else str(Path(posterior_dir) / f"{c.key}.nc")
        args.append((c, ref, path))
    bar = progress_bar(total=len(todo), desc=f"bench {suite.name}", enabled=progress)
    for i, (result, seconds) in executor(_timed_cell, args):
        c = todo[i]
        store.put_cell(c.key, suite.name, _stored_config(c), result, seconds)
        bar.update(1)
    bar.close()
    return {"cells": len(cells), "computed": len(todo), "reused": len(cells) - len(todo), "references": len(references)}


def _references(suite: Suite, cells: list[Cell], store: BenchStore, executor, progress: bool, log) -> dict[str, dict]:
    """The reference of every cell (by the key of its reference config): from the store, or computed."""
    from ..progress import progress_bar
    from .store import job_key
    from .suites import network_label

    if suite.reference is None or "agreement" not in suite.metrics:
        return {}
    needed: dict[str, tuple] = {}
    for c in cells:
        cfg = c.reference_config(suite.reference)
        needed.setdefault(job_key(cfg), (c, cfg))
    references, missing = {}, []
    for key, (c, cfg) in needed.items():
        found = store.get_reference(cfg)
        if found is None:
            missing.append((key, c, cfg))
        else:
            references[key] = found
    bar = progress_bar(total=len(missing), desc="references", enabled=progress)
    for i, result in executor(_timed_reference, [(c, suite.reference, progress) for _, c, _ in missing]):
        key, c, cfg = missing[i]
        store.put_reference(cfg, result, result["wall_s"])
        references[key] = result
        bar.update(1)
        if result["flagged"]:
            log(
                f"reference for {cfg['symmetry']} / {network_label(cfg['network'])} is flagged: prediction R-hat "
                f"{result['rhat_pred_max']:.3f} > {suite.reference.rhat_threshold}; "
                + ess_needed_text(result, suite.reference)
            )
    bar.close()
    return references


def _timed_cell(cell, reference, path):
    start = time.perf_counter()
    result = run_cell(cell, reference, path)
    return result, time.perf_counter() - start


def _timed_reference(cell, reference, progress: bool):
    return compute_reference(cell, reference, _to_stderr if progress else None)


def _to_stderr(message: str) -> None:  # a module-level function: executors pickle what they run
    import sys

    print(message, file=sys.stderr, flush=True)


def _stored_config(cell: Cell) -> dict:
    return {**cell.config(), "network_label": cell.network.label(), "suite": cell.suite}
