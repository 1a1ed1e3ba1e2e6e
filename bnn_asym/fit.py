"""``fit``: any network or BayesianModel, any engine, one Posterior.

>>> import bnn_asym
>>> from bnn_asym import datasets
>>> ds = datasets.load("moons", n_samples=200)
>>> net = bnn_asym.MLP(2, (16, 16), 2, symmetry="w_asym")
>>> post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="mfvi", num_steps=300, progress=False)
>>> post.predict(ds.X_test).shape
(50, 2)
"""

from __future__ import annotations

import numpy as np

from .inference import ENGINES, get_engine
from .inference.base import BACKENDS, FitData, jax_float_dtype, start_values
from .models import BayesianModel, Likelihood, Prior
from .models.likelihoods import as_likelihood, weighted_mean_std
from .nets.spec import INIT_SCHEMES, NetSpec
from .posterior import Posterior
from .validate import integer, one_of
from .warn import ConvergenceWarning, warn_user

DEVICES = ("auto", "cpu", "gpu")
# fit() warns at the end of a multi-chain run when its predictions say the chains have not mixed: R-hat above
# MIXING_RHAT (Gelman and Rubin's classic bound; reference posteriors aim for 1.01), or for Markov chains a
# bulk ESS below MIXING_MIN_ESS (a Monte Carlo error of 10% of a prediction's posterior sd), over the
# predictions at MIXING_ROWS training inputs.
MIXING_RHAT, MIXING_MIN_ESS, MIXING_ROWS = 1.1, 100, 100
# The check reads at most MIXING_DRAWS evenly spaced draws per chain: its cost (ranking every prediction's draws)
# grew with the run -- 40% of a 5,000-step MCLMC fit with every draw kept. Thinned draws estimate the same
# R-hat, and their ESS is about the full run's or less (a check that errs towards warning).
MIXING_DRAWS = 1000
WARM_STARTS = ("map", "ensemble")
# device="auto" uses a GPU only from this much work per step (free parameters x rows): a 2,000-parameter
# BNN on 1,347 rows (2.7e6) ran NUTS 7x slower on an H100 than on 2 CPU cores; the paper's BNN MLP
# (1.1e6 parameters x batch 250 = 2.8e8) is where a GPU pays off.
AUTO_GPU_MIN_WORK = 1e7
# Warm starts ("map", "ensemble") are fits of the "map" engine with its defaults (full-batch L-BFGS for small
# problems) but for a looser stopping rule: a sampler needs a start in the mode's basin, not the mode's last 1e-7
# nats (a start at the mode is atypical anyway: a d-dimensional Gaussian's draws lie ~d/2 nats below it). On
# the standard suite's digits MLP (1,482 parameters, 1,347 rows, 8 members) the map defaults took 43 s
# (standard) and 60 s (sigma-Asym: 10,000 steps, not converged); these tolerances 6.7 s and 9.6 s, 9-12 nats
# above the defaults' end in log density. Pass a Posterior as init for other settings.
WARM_START_GTOL, WARM_START_FTOL = 1e-3, 1e-5
WARM_START_JITTER = 0.01  # init="map": chains after the first start at MAP + N(0, (0.01 * prior std)^2)


def _default_likelihood(net: NetSpec, y: np.ndarray) -> Likelihood:
    n_out = net.weight_layers()[-1].d_out
    integral = np.issubdtype(y.dtype, np.integer) or bool(np.all(np.equal(np.mod(y, 1), 0)))
    if n_out >= 2 and integral:
        return Likelihood("categorical")
    if n_out == 2:
        return Likelihood("heteroscedastic")
    if integral and set(np.unique(y).tolist()) <= {0, 1}:
        return Likelihood("bernoulli")
    return Likelihood("gaussian", noise_std=None)


def _model(net_or_model, likelihood, prior, y: np.ndarray, w: np.ndarray | None) -> BayesianModel:
    """The BayesianModel fit works with. A likelihood fit builds (``likelihood=None`` or a name) standardises
    regression targets; a given Likelihood or BayesianModel is taken as it is, with a warning when the
    targets are far from the scale it models them on."""
    if isinstance(net_or_model, BayesianModel):
        if likelihood is not None or prior is not None:
            raise ValueError("pass likelihood and prior inside the BayesianModel, not to fit() as well")
        _warn_if_unscaled(net_or_model.likelihood, y, w)
        return net_or_model
    if isinstance(likelihood, Likelihood):
        _warn_if_unscaled(likelihood, y, w)
        lik = likelihood
    else:
        lik = _default_likelihood(net_or_model, y) if likelihood is None else as_likelihood(likelihood)
        if likelihood is None and lik.name == "heteroscedastic":
            warn_user(
                "y is not integral, so fit models a heteroscedastic regression (the network's 2 outputs: the "
                "mean and the noise std); for classification pass integer labels 0..K-1, for a plain "
                "regression a network with 1 output",
                UserWarning,
            )
        lik = Likelihood.for_targets(
            lik.name, y, w, noise_std=lik.noise_std, noise_prior_scale=lik.noise_prior_scale, min_std=lik.min_std
        )
    return BayesianModel(net_or_model, lik, prior if prior is not None else Prior())


TARGET_SCALE_WARNING = 10.0  # a given regression likelihood warns when y's std is this far from its scale


def _warn_if_unscaled(lik: Likelihood, y: np.ndarray, w: np.ndarray | None) -> None:
    if lik.task != "regression":
        return
    mean, std = map(float, weighted_mean_std(y, w))
    ratio = max(std, abs(mean - lik.target_loc)) / lik.target_scale
    if ratio > TARGET_SCALE_WARNING or (std > 0 and std / lik.target_scale < 1 / TARGET_SCALE_WARNING):
        warn_user(
            f"y has mean {mean:.3g} and std {std:.3g}, while this likelihood models targets on the scale "
            f"of {lik.target_scale:g} around {lik.target_loc:g} (noise prior HalfNormal("
            f"{lik.noise_prior_scale * lik.target_scale:g})): pass likelihood={lik.name!r} to fit, which "
            f"standardises y, or Likelihood({lik.name!r}, target_loc={mean:.3g}, target_scale={std:.3g})",
            UserWarning,
        )


def _check_inputs(model_or_net, X, y) -> tuple[np.ndarray, np.ndarray]:
    net = model_or_net.net if isinstance(model_or_net, BayesianModel) else model_or_net
    X = net.check_inputs(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths: {len(X)} rows vs {len(y)} targets")
    if len(X) == 0:
        raise ValueError("X is empty; fit needs at least one training row")
    if y.dtype.kind in "USO":  # strings, or objects (a pandas category Series): labels unless they are numbers
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            examples = ", ".join(map(repr, list(dict.fromkeys(y.tolist()))[:3]))
            raise ValueError(
                f"y holds labels that are not numbers ({examples}, ...); fit takes integer class labels 0..K-1 or "
                "real regression targets: encode them first, e.g. classes, y = np.unique(y, return_inverse=True), "
                "or use bnn_asym.sklearn.BNNClassifier, which does"
            ) from None
    if np.iscomplexobj(y) or not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise ValueError(f"y must be real numbers or booleans; got dtype {y.dtype}")
    if not np.isfinite(y.astype(np.float64)).all():
        raise ValueError("y contains NaN or inf")
    return X, y


def _check_weights(weights, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.shape != (n,) or not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise ValueError(f"weights must be {n} real numbers, one per row of X; got shape {w.shape}, dtype {w.dtype}")
    w = w.astype(np.float32)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("weights must be finite, >= 0 and not all 0")
    return w


def _warn_single_class(model: BayesianModel, y: np.ndarray) -> None:
    if model.task == "classification" and len(np.unique(y)) == 1:
        k = 2 if model.likelihood.name == "bernoulli" else model.n_outputs
        warn_user(
            f"y holds a single class ({int(y[0])}) for a network with {k} classes: the posterior can only "
            "learn that every input belongs to it; check the labels",
            UserWarning,
        )


def resolve_device(device: str, work: float):
    """(JAX device, name) for ``device``: "cpu", "gpu" (an error if JAX sees none) or "auto"."""
    one_of(*DEVICES).check(device, "device")
    import jax

    gpus = []
    if device != "cpu":
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
    if device == "gpu" and not gpus:
        raise ValueError("device='gpu' but JAX sees no GPU; install a CUDA build of jax/torch or use device='cpu'")
    if gpus and (device == "gpu" or work >= AUTO_GPU_MIN_WORK):
        return gpus[0], "gpu"
    return jax.devices("cpu")[0], "cpu"


def _parse_init(init):
    """(init scheme or None, warm start or None) from fit's ``init``."""
    if init is None:
        return None, None
    if isinstance(init, Posterior):
        return None, init
    if isinstance(init, str) and init in WARM_STARTS:
        return None, init
    if callable(init) or (isinstance(init, str) and init in INIT_SCHEMES):
        return init, None
    raise ValueError(
        f"init={init!r} is not valid; accepted: an init scheme ({', '.join(map(repr, INIT_SCHEMES))} or "
        f"a callable), a warm start ({', '.join(map(repr, WARM_STARTS))}), or a Posterior to start from"
    )


def fit(
    net_or_model,
    X,
    y,
    engine: str = "nuts",
    likelihood=None,
    prior: Prior | str | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str = "auto",
    backend: str = "numpyro",
    init=None,
    chain_method: str = "auto",
    checkpoints=None,
    callback=None,
    budget=None,
    weights=None,
    **options,
) -> Posterior:
    """Fit a Bayesian neural network and return its Posterior.

    net_or_model: a network spec (MLP, CNN, ResNet) or a BayesianModel. likelihood: "categorical",
    "bernoulli", "gaussian" (learned noise) or "heteroscedastic", or a Likelihood; None picks from the
    network's outputs and y. prior: a Prior (default ``Prior()``: ``N(0, 2 / fan_in)`` weights), or
    "evidence" / "validation" to pick its weight scale from the data first (empirical Bayes,
    ``bnn_asym.select_prior_scale``; the choice is in ``posterior.info["prior_selection"]``). engine: one of
    ``bnn_asym.ENGINES``; options: that engine's options (an unknown one raises TypeError listing the valid
    ones). backend: "numpyro" (JAX) or "pyro" (torch; mfvi, lowrank_vi, nuts, hmc).
    init: how chains, guides and members start -- an init scheme ("kaiming_normal", "torch_default", a
    callable; default: the spec's own), "map" (a MAP estimate), "ensemble" (one MAP estimate per chain:
    deep-ensemble-initialised MCMC), or a Posterior whose draws to start from.
    device: "cpu", "gpu", or "auto" (a GPU only for big enough models: ``AUTO_GPU_MIN_WORK``).
    chain_method: "auto", "parallel" (over devices; see ``bnn_asym.set_cpu_devices``), "vectorized" or
    "sequential" -- for every engine with several chains, members or runs.
    checkpoints: when to take intermediate posteriors -- a list of steps, or a dict with ``steps``,
    ``every_steps`` and/or ``every_seconds``; each is passed to ``callback(checkpoint)`` (return True to
    stop the run) or, without a callback, kept in ``posterior.checkpoints``.
    budget: stop early -- a dict with any of ``steps`` (per chain), ``grad_evals``, ``seconds``.
    weights: per-row likelihood weights (sample weights, >= 0; 0 drops a row); laplace takes 0 or 1 only.
    The same seed gives the same draws. fit leaves numpy's, Python's and torch's global random state, the
    Pyro parameter store and JAX's configuration as it found them (bar the opt-in compilation cache, set up
    once when ``$BNN_ASYM_JAX_CACHE`` asks for it: see ``bnn_asym.jax_setup``).
    """
    from .inference.driver import Budget, CheckpointPlan
    from .jax_setup import ensure_compilation_cache, warn_if_near_memory_map_limit

    engine_cls = get_engine(engine)
    if not isinstance(net_or_model, (BayesianModel, NetSpec)):
        raise ValueError(
            f"fit needs a network spec (MLP, CNN, ResNet) or a BayesianModel; got {type(net_or_model).__name__}"
        )
    seed = integer(0).check(seed, "seed")
    one_of(*BACKENDS).check(backend, "backend")
    if backend not in engine_cls.backends:
        raise ValueError(
            f"engine {engine!r} runs on backend {' or '.join(map(repr, engine_cls.backends))}; got backend={backend!r}"
        )
    from .inference.runners import CHAIN_METHODS

    one_of(*CHAIN_METHODS).check(chain_method, "chain_method")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback={callback!r} is not valid; accepted: a function of one Checkpoint")
    plan, limits = CheckpointPlan.parse(checkpoints), Budget.parse(budget)
    scheme, warm = _parse_init(init)
    if warm is not None and not engine_cls.warm_start:
        raise ValueError(f"engine {engine!r} cannot start from init={init!r}")
    X_arr, y_arr = _check_inputs(net_or_model, X, y)
    w_arr = _check_weights(weights, len(X_arr))
    selection = _select_prior(prior, net_or_model, X_arr, y_arr, likelihood, w_arr, seed)
    model = _model(net_or_model, likelihood, prior if selection is None else selection.prior, y_arr, w_arr)
    if scheme is not None:
        model = BayesianModel(model.net.with_init(scheme), model.likelihood, model.prior)
    y_typed = model.likelihood.check_targets(y_arr, model.n_outputs)
    _warn_single_class(model, y_typed if w_arr is None else y_typed[w_arr > 0])
    if model.likelihood.name == "bernoulli":
        y_typed = y_typed.astype(np.float32)
    opts = engine_cls.make_options(options)
    if warm is None:  # no warm start given (an init scheme may be): the engine's own, e.g. SWAG's MAP
        warm = engine_cls().default_warm_start(opts)
    data = FitData(X_arr, y_typed, w_arr)
    eng = engine_cls()
    eng.check(model, data, opts)
    batch = eng.plan(opts, data.n, model.net.num_free_params).batch_size or data.n
    jax_device, device_name = resolve_device(device, model.net.num_free_params * min(batch, data.n))
    if device_name == "gpu" and backend == "pyro":
        raise ValueError("backend='pyro' runs on the CPU in bnn_asym; use backend='numpyro' for device='gpu'")
    ensure_compilation_cache()
    warn_if_near_memory_map_limit()
    import jax

    with jax.default_device(jax_device):
        starts, init_label, init_info = _starting_points(eng, model, data, opts, seed, warm, device, chain_method)

        def make_posterior(draws, stats, info):
            return Posterior(model, draws, stats, info, engine, _jsonable(vars(opts)), int(seed), X_arr, y_typed)

        from .inference.driver import run

        result = run(
            eng,
            model,
            data,
            opts,
            backend=backend,
            seed=int(seed),
            starts=starts,
            device=jax_device,
            device_name=device_name,
            chain_method=chain_method,
            progress=progress,
            checkpoints=plan,
            callback=callback,
            budget=limits,
            make_posterior=make_posterior,
            init_label=init_label,
        )
    result.info.extra.update(init_info)
    if selection is not None:
        result.info.extra["prior_selection"] = selection.to_dict()
    post = make_posterior(result.draws, result.sample_stats, result.info)
    post.checkpoints = result.checkpoints
    _warn_if_not_mixed(post, engine_cls)
    return post


def _select_prior(prior, net_or_model, X, y, likelihood, weights, seed: int):
    """The PriorSelection fit's ``prior="evidence" | "validation"`` asks for; None for a Prior or None."""
    if prior is None or isinstance(prior, Prior):
        return None
    from .prior_selection import METHODS, select_prior_scale

    if not isinstance(prior, str) or prior not in METHODS:
        raise ValueError(
            f"prior={prior!r} is not valid; accepted: a bnn_asym.Prior, None (the default Prior()), or "
            f"{' / '.join(map(repr, METHODS))} to pick its scale from the data"
        )
    if isinstance(net_or_model, BayesianModel):
        raise ValueError("prior selection needs a network spec: a BayesianModel brings its own prior")
    return select_prior_scale(net_or_model, X, y, method=prior, likelihood=likelihood, weights=weights, seed=seed)


def _warn_if_not_mixed(post: Posterior, engine_cls) -> None:
    """Chains (or runs) whose predictions disagree say so: prediction R-hat above MIXING_RHAT, or, for Markov
    chains, a prediction's bulk ESS below MIXING_MIN_ESS (thresholds and figures in the message)."""
    from .inference import TRAJECTORY

    checked = post.thinned(MIXING_DRAWS)
    report = checked.prediction_convergence(MIXING_ROWS, summary_only=True)
    if report is None or post.X_train is None:
        return
    rhat, ess = report["max_rhat"], report["min_ess_bulk"]
    chains = engine_cls.kind == TRAJECTORY
    if rhat <= MIXING_RHAT and (not chains or ess >= MIXING_MIN_ESS):
        return
    where = f"over the predictions at {min(MIXING_ROWS, len(post.X_train))} training inputs"
    if checked.n_draws < post.n_draws:
        where += f" ({checked.n_draws} evenly spaced draws of each chain's {post.n_draws})"
    if not chains:
        warn_user(
            f"{post.engine}: its {post.n_chains} runs disagree: prediction R-hat up to {rhat:.2f} (above "
            f"{MIXING_RHAT}) {where} -- they found different modes, so each run alone understates the "
            "uncertainty",
            UserWarning,
        )
        return
    figures = f"prediction R-hat up to {rhat:.2f} (threshold {MIXING_RHAT}), bulk ESS down to {ess:.0f} (threshold "
    warn_user(
        f"{post.engine}: the {post.n_chains} chains have not mixed: {figures}{MIXING_MIN_ESS}) {where}; run "
        "longer chains (num_warmup, num_samples), or see post.diagnostics()",
        ConvergenceWarning,
    )


def _starting_points(engine, model, data, options, seed, warm, device, chain_method):
    """Per-chain starting values (constrained), a label for RunInfo, and the warm start's cost."""
    from .inference.driver import chain_seeds

    n_chains = engine.num_chains(options)
    seeds = chain_seeds(seed, n_chains)
    dtype = jax_float_dtype()
    if warm is None:
        return [start_values(model, s.start, dtype) for s in seeds], "network", {}
    if isinstance(warm, Posterior):
        if warm.model.latent_shapes() != model.latent_shapes():
            raise ValueError("init=<Posterior> must come from a model with the same free parameters as this one")
        flat = warm.draws
        c_src, d_src = warm.n_chains, warm.n_draws
        starts = []
        for c in range(n_chains):  # chain c: the last draws of source chain c mod C, going back in draws
            chain, back = c % c_src, c // c_src
            if back >= d_src:
                raise ValueError(f"init=<Posterior> has {c_src * d_src} draws; {n_chains} chains need as many")
            starts.append({k: np.asarray(v[chain, d_src - 1 - back], dtype) for k, v in flat.items()})
        return starts, f"posterior:{warm.engine}", {}
    members = n_chains if warm == "ensemble" else 1
    warm_post = fit(
        model,
        data.X,
        data.y,
        engine="map",
        seed=seed,
        progress=False,
        device=device,
        chain_method=chain_method,
        num_chains=members,
        weights=data.w,
        gtol=WARM_START_GTOL,
        ftol=WARM_START_FTOL,
    )
    points = [{k: np.asarray(v[c, 0], dtype) for k, v in warm_post.draws.items()} for c in range(members)]
    if warm == "map":
        prior = model.prior_loc_scale()
        rng = np.random.default_rng(seeds[0].start)
        starts = [points[0]] + [
            {
                k: (v + WARM_START_JITTER * prior[k][1] * rng.standard_normal(np.shape(v))).astype(dtype)
                if k in prior
                else v
                for k, v in points[0].items()
            }
            for _ in range(n_chains - 1)
        ]
    else:
        starts = points
    cost = {"init_wall_time_s": warm_post.run_info.wall_time_s, "init_grad_evals": warm_post.run_info.grad_evals}
    return starts, warm, cost


def _jsonable(d: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


__all__ = ["DEVICES", "ENGINES", "fit"]
