"""Posterior: the one result type of every engine.

Holds draws of the free parameters (and of likelihood latents such as a learned noise std) with
(chain, draw) leading axes, the engine's sampler statistics and run information, the BayesianModel,
and the training data. Predictions run the JAX network vmapped over all draws.

>>> post = bnn_asym.fit(net, X, y, engine="mfvi", num_steps=500)          # doctest: +SKIP
>>> probs = post.predict(X_test)                        # (N, K) posterior-mean class probabilities
>>> post.diagnostics()["wall_time_s"]                                    # doctest: +SKIP
>>> post.to_arviz()                                     # DataTree: posterior, sample_stats, log_likelihood, ...
>>> post.save("fit.nc"); bnn_asym.load("fit.nc")
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .io import atomic_path
from .models.bayesian import BayesianModel

FORMAT_VERSION = 1
PREDICT_METHODS = ("mc", "glm", "probit")


def jnp_stack_pair(pair):
    """(primal (S, N, out), tangent (S, N, out)) -> (S, N, 2, out), so one chunked map returns both."""
    import jax.numpy as jnp

    primal, tangent = pair
    return jnp.stack([primal, primal + tangent], axis=2)


@lru_cache(maxsize=32)
def _jax_functions(model: BayesianModel) -> dict:
    """Jitted per-draw functions of a model, shared by every Posterior of that model (models hash by
    content), so scoring a run's checkpoints or a benchmark's seeds compiles each program once."""
    import jax

    from .models.likelihoods import jax_backend

    net, lik, backend = model.net, model.likelihood, jax_backend()
    names = [p.name for p in net.layout]
    latent_names = list(lik.latent_sites())

    def outputs(params, x):
        return net.apply_jax({k: params[k] for k in names}, x)

    def loglik(params, x, y):
        return lik.distribution(backend, outputs(params, x), {k: params[k] for k in latent_names}).log_prob(y)

    def sample(params, x, key):
        return lik.distribution(backend, outputs(params, x), {k: params[k] for k in latent_names}).sample(key)

    def linearized(params, x, center):
        """Network outputs linearised around ``center``: f(center) + J (params - center)."""
        tangent = {k: params[k] - center[k] for k in names}
        return jax.jvp(lambda p: outputs(p, x), ({k: center[k] for k in names},), (tangent,))

    vm = jax.vmap
    return {
        "outputs": jax.jit(vm(outputs, (0, None))),
        "loglik": jax.jit(vm(loglik, (0, None, None))),
        "linearized": jax.jit(vm(linearized, (0, None, None))),
        "sample": jax.jit(vm(sample, (0, None, 0))),
    }


def forget_compiled_functions() -> None:
    """Drop the jitted per-draw functions of every model (``bnn_asym.release_compiled_programs``)."""
    _jax_functions.cache_clear()


def _draw_bucket(n: int, draw_chunk: int) -> int:
    """Draws a chunk of ``n`` is padded to: a power of two up to ``draw_chunk``, so any number of draws
    runs through a handful of compiled shapes (checkpoints hold a different number of draws each)."""
    return min(draw_chunk, 1 << max(0, int(n) - 1).bit_length())


class Posterior:
    def __init__(
        self,
        model: BayesianModel,
        draws: dict,
        sample_stats: dict | None = None,
        info=None,
        engine: str = "",
        options: dict | None = None,
        seed: int = 0,
        X_train=None,
        y_train=None,
    ):
        from .inference.driver import RunInfo

        self.model = model
        self.draws = {k: np.asarray(v) for k, v in draws.items()}
        self.sample_stats = {k: np.asarray(v) for k, v in (sample_stats or {}).items()}
        if info is None or isinstance(info, dict):
            info = RunInfo.from_dict({"engine": engine, **(info or {})})
        self.run_info = info  # typed: cost, device, how the run stopped, per-step traces
        self.info = info.to_dict()  # the same as a JSON-able dict (what save() writes)
        self.checkpoints: list = []  # Checkpoint records, when fit(checkpoints=...) had no callback
        self.engine = engine
        self.options = dict(options or {})
        self.seed = seed
        self.X_train = None if X_train is None else np.asarray(X_train)
        self.y_train = None if y_train is None else np.asarray(y_train)
        missing = set(model.latent_shapes()) - set(self.draws)
        if missing:
            raise ValueError(f"draws are missing variables {sorted(missing)}")
        first = next(iter(self.draws.values()))
        self.n_chains, self.n_draws = int(first.shape[0]), int(first.shape[1])

    def __repr__(self) -> str:
        return (
            f"Posterior(engine={self.engine!r}, {self.n_chains} chains x {self.n_draws} draws, "
            f"{self.model.net.family} {self.model.net.symmetry}, likelihood={self.model.likelihood.name!r})"
        )

    def thinned(self, max_draws: int) -> Posterior:
        """This posterior with at most ``max_draws`` evenly spaced draws per chain (the last draw kept): the
        draws, sample statistics, run info and training data are shared, not copied."""
        if isinstance(max_draws, bool) or not isinstance(max_draws, (int, np.integer)) or max_draws < 1:
            raise ValueError(f"max_draws must be an integer >= 1; got {max_draws!r}")
        if self.n_draws <= max_draws:
            return self
        keep = np.unique(np.linspace(self.n_draws - 1, 0, max_draws).round().astype(np.int64))
        return Posterior(
            self.model,
            {k: v[:, keep] for k, v in self.draws.items()},
            {k: v[:, keep] for k, v in self.sample_stats.items() if np.ndim(v) >= 2 and v.shape[1] == self.n_draws},
            self.run_info,
            self.engine,
            self.options,
            self.seed,
            self.X_train,
            self.y_train,
        )

    def followed_by(self, later: Posterior) -> Posterior:
        """These chains extended by ``later``'s draws: chain c is this posterior's chain c, then ``later``'s chain
        c -- for a run started from this one's last draws (``fit(init=this)``: each chain continues from its own
        last draw), whose warmup was not kept. Sample statistics both runs share are joined too; run info, engine
        and options are ``later``'s (what the newest draws came from)."""
        if not isinstance(later, Posterior) or later.model.latent_shapes() != self.model.latent_shapes():
            raise ValueError("followed_by needs a Posterior of a model with the same free parameters")
        if later.n_chains != self.n_chains:
            raise ValueError(f"followed_by needs as many chains: {self.n_chains} here, {later.n_chains} in later")

        def joined(a: dict, b: dict, n_a: int, n_b: int) -> dict:
            per_draw = {k for k, v in a.items() if np.ndim(v) >= 2 and v.shape[:2] == (self.n_chains, n_a)}
            return {
                k: np.concatenate([a[k], b[k]], axis=1)
                for k in sorted(per_draw)
                if k in b and np.ndim(b[k]) >= 2 and b[k].shape[:2] == (self.n_chains, n_b)
            }

        return Posterior(
            self.model,
            joined(self.draws, later.draws, self.n_draws, later.n_draws),
            joined(self.sample_stats, later.sample_stats, self.n_draws, later.n_draws),
            later.run_info,
            later.engine,
            later.options,
            later.seed,
            self.X_train,
            self.y_train,
        )

    # ----- network outputs ------------------------------------------------------------------------------
    def flat_draws(self) -> dict[str, np.ndarray]:
        """Draws with chain and draw axes merged: name -> (chain * draw, *shape)."""
        s = self.n_chains * self.n_draws
        return {k: v.reshape((s,) + v.shape[2:]) for k, v in self.draws.items()}

    @property
    def _jax_fns(self):
        return _jax_functions(self.model)

    def _map_draws(self, fn, X, *extra, draw_chunk: int = 256, row_chunk: int = 4096):
        """Apply a vmapped per-draw function over all draws (S) and rows; returns (S, N, ...)."""
        flat = self.flat_draws()
        X = self._check_X(X)
        s = self.n_chains * self.n_draws
        if len(X) == 0:  # shape of the per-draw output from one row, with no rows
            probe = self._map_draws(
                fn,
                np.zeros((1, X.shape[1]), np.float32),
                *[
                    None if e is None or not np.ndim(e) else np.zeros((1,) + np.shape(e)[1:], np.asarray(e).dtype)
                    for e in extra
                ],
                draw_chunk=draw_chunk,
            )
            return probe[:, :0]
        rows = []
        for r in range(0, len(X), row_chunk):
            xs = X[r : r + row_chunk]
            ex = [e[r : r + row_chunk] if e is not None and np.ndim(e) and len(e) == len(X) else e for e in extra]
            parts = [
                self._run_chunk(fn, {k: v[i : i + draw_chunk] for k, v in flat.items()}, xs, ex, draw_chunk)
                for i in range(0, s, draw_chunk)
            ]
            rows.append(np.concatenate(parts, axis=0))
        return np.concatenate(rows, axis=1)

    @staticmethod
    def _run_chunk(fn, params: dict, xs, extra, draw_chunk: int) -> np.ndarray:
        n = len(next(iter(params.values())))
        padded = _draw_bucket(n, draw_chunk)
        if padded > n:  # repeat the last draw; its outputs are dropped below
            params = {k: np.concatenate([v, np.repeat(v[-1:], padded - n, axis=0)]) for k, v in params.items()}
        return np.asarray(fn(params, xs, *extra))[:n]

    def _check_X(self, X) -> np.ndarray:
        return self.model.net.check_inputs(X)

    def outputs(self, X) -> np.ndarray:
        """Raw network outputs for every draw: (chain, draw, N, n_outputs)."""
        out = self._map_draws(self._jax_fns["outputs"], X)
        return out.reshape((self.n_chains, self.n_draws) + out.shape[1:])

    def predict(self, X, method: str = "mc"):
        """Classification: posterior-mean class probabilities (N, K) (bernoulli: (N, 2)).
        Regression: (mean, std) of the posterior predictive, noise included, each (N,).

        method: "mc" averages the network over the draws. "glm" averages the network *linearised* around
        the draws' mean (the predictive a Laplace or other Gaussian posterior is derived for, and usually
        far better calibrated for them). "probit" (classification) replaces that average by the probit
        approximation ``softmax(mu / sqrt(1 + pi/8 var))`` of the linearised logits' mean and variance.
        """
        if method not in PREDICT_METHODS:
            raise ValueError(f"method={method!r} is not valid; accepted: {', '.join(map(repr, PREDICT_METHODS))}")
        if method == "mc":
            return self.predictive_summary(self._map_draws(self._jax_fns["outputs"], X))
        if method == "probit" and self.model.task != "classification":
            raise ValueError("method='probit' is for classification; use 'glm' or 'mc' for regression")
        flat = self.flat_draws()
        center = {k: v.astype(np.float64).mean(0).astype(v.dtype) for k, v in flat.items()}
        primal, lin = self._linearized(X, center)
        if method == "glm":
            return self.predictive_summary(lin)
        mu, var = primal.astype(np.float64), lin.astype(np.float64).var(0)
        scaled = mu / np.sqrt(1 + np.pi / 8 * var)
        if self.model.likelihood.name == "bernoulli":
            p1 = class_probabilities(scaled[..., 0], "bernoulli")
            return np.stack([1 - p1, p1], axis=-1)
        return class_probabilities(scaled, "categorical")

    def _linearized(self, X, center: dict):
        """(f(center) (N, out), linearised outputs of every draw (S, N, out))."""
        fn = self._jax_fns["linearized"]
        out = self._map_draws(lambda params, x: jnp_stack_pair(fn(params, x, center)), X)
        return out[0, :, 0], out[:, :, 1]

    def predictive_summary(self, out: np.ndarray):
        """Posterior-mean predictive summary from outputs of shape (S, N, n_outputs)."""
        lik = self.model.likelihood
        out = out.astype(np.float64)
        if lik.task == "classification":
            return per_draw_class_probabilities(out, lik.name).mean(0)
        mean_s = lik.mean(out)
        if lik.name == "heteroscedastic":
            var_s = lik.predicted_std(lambda a: np.logaddexp(0, a), out) ** 2
        elif lik.learns_noise:
            var_s = self.flat_draws()["noise_std"].astype(np.float64)[:, None] ** 2 * np.ones_like(mean_s)
        else:
            var_s = np.full_like(mean_s, float(lik.noise_std or 0.0) ** 2)  # a fixed noise std is set
        mean = mean_s.mean(0)
        return mean, np.sqrt(var_s.mean(0) + mean_s.var(0))

    def draw_probabilities(self, X) -> np.ndarray:
        """Classification: every draw's class probabilities, (chain * draw, N, K) (bernoulli: K = 2)."""
        if self.model.task != "classification":
            raise ValueError("draw_probabilities is for classification; regression has predict(X) -> (mean, std)")
        out = self._map_draws(self._jax_fns["outputs"], X).astype(np.float64)
        return per_draw_class_probabilities(out, self.model.likelihood.name)

    def evaluate(self, X, y, ood=None) -> dict:
        """Predictive quality and uncertainty on a test set, and OOD detection against other inputs.

        Classification: ``metrics`` (accuracy, NLL, Brier, ECE of the posterior-mean prediction), ``uncertainty``
        (mean total entropy, expected entropy and mutual information over the rows, the risk-coverage AURC) and,
        for each OOD set, AUROC / AUPR / FPR95 of every ``metrics.uncertainty.CRITERIA`` score, the test rows
        in-distribution (0) and the OOD rows positive (1). Regression: ``metrics`` (RMSE, NLL, interval
        coverage) and OOD detection by the predictive standard deviation.

        ood: None, an array of inputs shaped like X, or a dict name -> such array (``bnn_asym.datasets``
        builds them: ``ood_inputs``, ``rotated``, ``heldout_classes``)."""
        from .metrics import classification_metrics, regression_metrics
        from .metrics.uncertainty import CRITERIA, ood_detection, risk_coverage, uncertainty_scores

        X = self._check_X(X)
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        sets = {} if ood is None else ({"ood": ood} if not isinstance(ood, dict) else dict(ood))
        for name, inputs in sets.items():
            try:
                sets[name] = self._check_X(inputs)
            except ValueError as e:
                raise ValueError(f"OOD set {name!r}: {e}") from None
            if len(sets[name]) == 0:
                raise ValueError(f"OOD set {name!r} has no rows; accepted: at least one input")
        if self.model.task != "classification":
            mean, std = self.predict(X)
            out: dict = {"metrics": regression_metrics(mean, std, y), "ood": {}}
            for name, inputs in sets.items():
                out["ood"][name] = {"predictive_std": ood_detection(std, self.predict(inputs)[1])}
            return out
        probs = self.draw_probabilities(X)
        scores = uncertainty_scores(probs)
        out = {
            "metrics": classification_metrics(probs.mean(0), y),
            "uncertainty": {
                "total_entropy": float(scores["total_entropy"].mean()),
                "expected_entropy": float(scores["expected_entropy"].mean()),
                "mutual_information": float(scores["mutual_information"].mean()),
                "aurc": risk_coverage(probs, y)["aurc"],
            },
            "ood": {},
        }
        for name, inputs in sets.items():
            ood_scores = uncertainty_scores(self.draw_probabilities(inputs))
            out["ood"][name] = {c: ood_detection(scores[c], ood_scores[c]) for c in CRITERIA}
        return out

    def sample_predictive(self, X, seed: int = 0) -> np.ndarray:
        """One draw of y per posterior draw: (chain, draw, N)."""
        import jax

        keys = jax.random.split(jax.random.PRNGKey(seed), self.n_chains * self.n_draws)
        flat = self.flat_draws()
        X = self._check_X(X)
        if len(X) == 0:
            dtype = np.int64 if self.model.task == "classification" else np.float32
            return np.zeros((self.n_chains, self.n_draws, 0), dtype)
        ys = np.asarray(self._jax_fns["sample"](flat, X, keys))
        return ys.reshape((self.n_chains, self.n_draws, len(X)))

    def log_likelihood(self, X, y) -> np.ndarray:
        """Pointwise log-likelihood log p(y_i | theta_s): (chain, draw, N)."""
        y = self.model.likelihood.check_targets(y, self.model.n_outputs)
        if self.model.likelihood.name == "bernoulli":
            y = y.astype(np.float32)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        ll = self._map_draws(self._jax_fns["loglik"], X, y)
        return ll.reshape((self.n_chains, self.n_draws, len(y)))

    # ----- diagnostics -------------------------------------------------------------------------------
    def diagnostics(self, n_pred: int = 100) -> dict:
        """Convergence and cost. MCMC: R-hat and bulk/tail ESS on the parameters and on predictions at
        up to ``n_pred`` training inputs (prediction space is untouched by parameter symmetries), plus
        divergences, step size and tree depth. VI: the ELBO trace. All: wall time, gradient evaluations."""
        from .metrics.convergence import rhat_summary

        d = {
            "engine": self.engine,
            "n_chains": self.n_chains,
            "n_draws": self.n_draws,
            "wall_time_s": self.info.get("wall_time_s"),
            "grad_evals": self.info.get("grad_evals"),
        }
        if "elbo" in self.info:
            d["elbo"] = self.info["elbo"]
            d["final_elbo"] = self.info.get("final_elbo")
        if self.sample_stats:
            stats = self.sample_stats
            if "diverging" in stats:
                d["num_divergences"] = int(stats["diverging"].sum())
            if "acceptance_rate" in stats:
                d["mean_acceptance_rate"] = float(stats["acceptance_rate"].mean())
            if "tree_depth" in stats:
                d["mean_tree_depth"] = float(stats["tree_depth"].mean())
                d["max_tree_depth"] = int(stats["tree_depth"].max())
            if "step_size" in stats:
                d["step_size"] = stats["step_size"][:, -1].tolist()
        if self.n_chains >= 2 and self.n_draws >= 4:
            flat_params = np.concatenate([v.reshape(self.n_chains, self.n_draws, -1) for v in self.draws.values()], -1)
            d["parameters"] = rhat_summary(flat_params)
            predictions = self.prediction_convergence(n_pred)
            if predictions is not None:
                d["predictions"] = predictions
            wall = self.info.get("wall_time_s")
            if wall:
                d["min_ess_bulk_per_s"] = d["parameters"]["min_ess_bulk"] / wall
        return d

    def prediction_convergence(
        self, n_pred: int = 100, superchains=None, X=None, summary_only: bool = False
    ) -> dict | None:
        """Convergence of the predictions at up to ``n_pred`` training inputs, or at the rows of ``X`` (all of
        them) where given (class probabilities; network
        outputs for regression) -- the summary that parameter symmetries cannot distort: rank-normalised split
        R-hat and bulk / tail ESS over all chains (``rhat_summary``), ``max_chainwise_rhat`` (every chain on its
        own, in 4 pieces: has each chain converged where it is?) and ``max_nested_rhat`` (superchains: chains
        started from one point, e.g. one ensemble member; default: every chain its own). None with fewer than 2
        chains or 4 draws, or without training data; a chainwise or nested value is NaN where too few draws or
        superchains make it undefined. ``summary_only``: R-hat and bulk ESS alone (what fit's mixing check reads;
        tail ESS, chainwise and nested R-hat NaN)."""
        from .metrics.convergence import CHAINWISE_SPLITS, chainwise_rhat, nested_rhat, rhat_summary

        inputs = X if X is not None else (None if self.X_train is None else self.X_train[:n_pred])
        if self.n_chains < 2 or self.n_draws < 4 or inputs is None:
            return None
        out = self.outputs(inputs)
        if self.model.task == "classification":
            out = class_probabilities(out, self.model.likelihood.name)
        values = out.reshape(self.n_chains, self.n_draws, -1)
        summary = rhat_summary(values, ess="bulk" if summary_only else True)
        nan = float("nan")
        if summary_only:
            return {**summary, "max_chainwise_rhat": nan, "max_nested_rhat": nan}
        varying = values.reshape(-1, values.shape[-1]).std(0) > 0
        summary["max_chainwise_rhat"] = (
            float(np.nanmax(chainwise_rhat(values[..., varying])))
            if varying.any() and self.n_draws >= 2 * CHAINWISE_SPLITS
            else nan
        )
        labels = np.arange(self.n_chains) if superchains is None else np.asarray(superchains)
        summary["max_nested_rhat"] = (
            float(np.nanmax(nested_rhat(values[..., varying], labels)))
            if varying.any() and len(np.unique(labels)) >= 2
            else nan
        )
        return summary

    # ----- ArviZ ---------------------------------------------------------------------------------------
    def to_arviz(self, X=None, y=None, predictive: bool = True):
        """An ArviZ DataTree with posterior, sample_stats, log_likelihood, posterior_predictive and
        observed_data groups (log-likelihood and predictive at the training data unless X, y given)."""
        import arviz_base

        X = self.X_train if X is None else X
        y = self.y_train if y is None else y
        groups = {"posterior": dict(self.draws)}
        if self.sample_stats:
            groups["sample_stats"] = dict(self.sample_stats)
        dims = {}
        if X is not None and y is not None:
            groups["log_likelihood"] = {"y": self.log_likelihood(X, y)}
            groups["observed_data"] = {"y": np.asarray(y)}
            if predictive:
                groups["posterior_predictive"] = {"y": self.sample_predictive(X, seed=self.seed)}
            dims["y"] = ["obs"]
        dt = arviz_base.from_dict(groups, dims=dims)
        dt.attrs.update(
            {
                "engine": self.engine,
                "likelihood": self.model.likelihood.name,
                "network": f"{self.model.net.family} {self.model.net.symmetry}",
            }
        )
        return dt

    # ----- save / load ---------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write draws, statistics, training data, spec (with constants) and run info to one NetCDF file.

        Atomic: the file appears complete or not at all, and an existing file is only replaced once the
        new one is fully written. No pickle: the model is JSON, arrays are NetCDF variables."""
        import xarray as xr

        path = Path(path)

        def group(arrays: dict, prefix: str) -> xr.Dataset:
            return xr.Dataset(
                {k: (tuple(f"{prefix}_{i}_{k}" for i in range(np.ndim(v))), np.asarray(v)) for k, v in arrays.items()}
            )

        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.model.to_dict(),
            "engine": self.engine,
            "options": self.options,
            "seed": self.seed,
            "info": self.info,
        }
        tree = {
            "/": xr.Dataset(attrs={"bnn_asym": json.dumps(meta)}),
            "/draws": group(self.draws, "d"),
            "/sample_stats": group(self.sample_stats, "s"),
        }
        if self.X_train is not None:
            tree["/data"] = group({"X": self.X_train, "y": self.y_train}, "x")
        with atomic_path(path) as tmp:
            xr.DataTree.from_dict(tree).to_netcdf(tmp, engine="netcdf4")
        return path


def class_probabilities(out: np.ndarray, likelihood: str) -> np.ndarray:
    """Network outputs -> probabilities: sigmoid of the logit (bernoulli), softmax over the last axis otherwise."""
    if likelihood == "bernoulli":
        return 1 / (1 + np.exp(-out))
    p = out - out.max(-1, keepdims=True)
    np.exp(p, out=p)  # in place: (draws, rows, classes) arrays of many-draw posteriors run to 100s of MB
    p /= p.sum(-1, keepdims=True)
    return p


def per_draw_class_probabilities(out: np.ndarray, likelihood: str) -> np.ndarray:
    """Outputs (S, N, n_outputs) of a classifier -> every draw's class probabilities (S, N, K); bernoulli's one
    logit becomes the two classes' probabilities."""
    if likelihood == "bernoulli":
        p1 = class_probabilities(out[..., 0], likelihood)
        return np.stack([1 - p1, p1], axis=-1)
    return class_probabilities(out, likelihood)


def load(path) -> Posterior:
    """Read a Posterior written by ``Posterior.save``.

    A missing file raises FileNotFoundError; anything that is not a complete bnn_asym posterior file
    (empty, truncated, another program's NetCDF, random bytes) raises a ValueError naming the file."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved posterior at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a bnn_asym posterior file")

    def unreadable(reason) -> ValueError:
        return ValueError(
            f"{path} is not a readable bnn_asym posterior file ({reason}); it should be a NetCDF file "
            "written by Posterior.save"
        )

    try:
        with xr.open_datatree(path, engine="netcdf4") as tree:
            if "bnn_asym" not in tree.attrs:
                raise ValueError(f"{path} is not a bnn_asym posterior file (no 'bnn_asym' metadata)")
            meta = json.loads(tree.attrs["bnn_asym"])
            if meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{path} has format version {meta.get('format_version')}; this bnn_asym reads {FORMAT_VERSION}"
                )
            draws = {k: v.values for k, v in tree["draws"].data_vars.items()}
            stats = {k: v.values for k, v in tree["sample_stats"].data_vars.items()}
            data = {k: v.values for k, v in tree["data"].data_vars.items()} if "data" in tree.children else {}
        model = BayesianModel.from_dict(meta["model"])
        return Posterior(
            model,
            draws,
            stats,
            meta["info"],
            meta["engine"],
            meta["options"],
            meta["seed"],
            data.get("X"),
            data.get("y"),
        )
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise unreadable(e) from e
    except (OSError, KeyError, TypeError, json.JSONDecodeError, RuntimeError) as e:
        raise unreadable(f"{type(e).__name__}: {e}") from e
