"""Variational inference: mean-field Gaussian ("mfvi") and low-rank-plus-diagonal Gaussian ("lowrank_vi",
the family the paper used, rank 4), with NumPyro SVI (default) or Pyro SVI (backend="pyro").

Full-batch or mini-batch (``batch_size``: the model's data plate subsamples and rescales). The NumPyro
loop runs ``log_every`` SVI steps per jitted ``lax.scan`` call and checks the ELBO between calls, so a
NaN stops the run early with the step it happened at. Draws from the fitted guide are stored as one
pseudo-chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..progress import progress_bar
from .base import (Engine, EngineResult, FitData, check_choice, check_positive_float, check_positive_int,
                   init_values, jax_float_dtype)


@dataclass
class VIOptions:
    num_steps: int = 2000
    lr: float = 1e-2
    batch_size: int | None = None  # None: full batch
    num_particles: int = 1
    num_draws: int = 200
    init_scale: float = 0.01  # initial posterior std of every parameter
    log_every: int = 100  # steps per jitted chunk (NaN checks and progress updates in between)
    backend: str = "numpyro"

    def __post_init__(self):
        owner = "vi"
        for name in ("num_steps", "num_particles", "num_draws", "log_every"):
            check_positive_int(owner, name, getattr(self, name))
        if self.batch_size is not None:
            check_positive_int(owner, "batch_size", self.batch_size)
        check_positive_float(owner, "lr", self.lr)
        check_positive_float(owner, "init_scale", self.init_scale)
        check_choice(owner, "backend", self.backend, ("numpyro", "pyro"))


@dataclass
class LowRankVIOptions(VIOptions):
    rank: int = 4

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("lowrank_vi", "rank", self.rank)


def _nan_error(step: int, lr: float) -> FloatingPointError:
    return FloatingPointError(f"the ELBO became NaN at step {step}; try a smaller learning rate (lr={lr} now, "
                              f"e.g. lr={lr / 10:g})")


class MFVIEngine(Engine):
    name = "mfvi"
    Options = VIOptions
    description = "mean-field Gaussian variational inference (NumPyro SVI + AutoNormal, or Pyro)"

    def _guide(self, autoguide, model_fn, init_loc_fn, options):
        """``autoguide``: numpyro.infer.autoguide or pyro.infer.autoguide (same class names)."""
        return autoguide.AutoNormal(model_fn, init_loc_fn=init_loc_fn, init_scale=options.init_scale)

    def run(self, model, data: FitData, options, seed: int, progress: bool, device: str) -> EngineResult:
        if options.batch_size is not None and options.batch_size > data.n:
            raise ValueError(f"{self.name} option batch_size={options.batch_size} exceeds the {data.n} training rows")
        if options.backend == "pyro":
            return self._run_pyro(model, data, options, seed, progress)
        return self._run_numpyro(model, data, options, seed, progress)

    def _run_numpyro(self, model, data, options, seed, progress):
        import jax
        import jax.numpy as jnp
        import numpyro.infer.autoguide as autoguide
        from numpyro.infer import SVI, Trace_ELBO, init_to_value
        from numpyro.optim import Adam

        model_fn = model.numpyro_model()
        init = {k: jnp.asarray(v) for k, v in init_values(model, seed, jax_float_dtype()).items()}
        guide = self._guide(autoguide, model_fn, init_to_value(values=init), options)
        svi = SVI(model_fn, guide, Adam(options.lr), Trace_ELBO(num_particles=options.num_particles))
        X, y = jnp.asarray(data.X), jnp.asarray(data.y)
        batch = options.batch_size
        start = time.perf_counter()
        state = svi.init(jax.random.PRNGKey(seed), X, y, batch)

        @jax.jit
        def run_chunk(state, X, y):
            return jax.lax.scan(lambda s, _: svi.update(s, X, y, batch), state, None, length=options.log_every)

        losses = []
        bar = progress_bar(total=options.num_steps, desc=self.name, enabled=progress)
        done = 0
        while done < options.num_steps:
            state, chunk = run_chunk(state, X, y)
            chunk = np.asarray(chunk)[: options.num_steps - done]
            losses.append(chunk)
            if not np.all(np.isfinite(chunk)):
                bar.close()
                raise _nan_error(done + int(np.flatnonzero(~np.isfinite(chunk))[0]), options.lr)
            done += len(chunk)
            bar.update(len(chunk))
            bar.set_postfix(elbo=f"{-chunk[-1]:.4g}")
        bar.close()
        params = svi.get_params(state)
        samples = guide.sample_posterior(jax.random.PRNGKey(seed + 1), params, sample_shape=(options.num_draws,))
        draws = {k: np.asarray(v)[None] for k, v in samples.items() if k in model.latent_shapes()}
        wall = time.perf_counter() - start
        elbo = -np.concatenate(losses)
        return EngineResult(draws, {}, self._info(elbo, wall, options, "numpyro"))

    def _run_pyro(self, model, data, options, seed, progress):
        import pyro
        import pyro.infer.autoguide as autoguide
        import torch
        from pyro.infer import SVI, Trace_ELBO

        pyro.set_rng_seed(seed)
        pyro.clear_param_store()
        model_fn = model.pyro_model()
        init = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in init_values(model, seed).items()}
        guide = self._guide(autoguide, model_fn, autoguide.init_to_value(values=init), options)
        svi = SVI(model_fn, guide, pyro.optim.Adam({"lr": options.lr}), Trace_ELBO(num_particles=options.num_particles))
        X, y = torch.as_tensor(data.X, dtype=torch.float32), torch.as_tensor(data.y)
        start = time.perf_counter()
        losses = np.empty(options.num_steps)
        bar = progress_bar(range(options.num_steps), desc=self.name, enabled=progress)
        for step in bar:
            losses[step] = svi.step(X, y, options.batch_size)
            if not np.isfinite(losses[step]):
                bar.close()
                raise _nan_error(step, options.lr)
            if step % options.log_every == 0:
                bar.set_postfix(elbo=f"{-losses[step]:.4g}")
        with torch.no_grad():
            samples = [{k: v.detach().numpy() for k, v in guide(X, None, options.batch_size).items()}
                       for _ in range(options.num_draws)]
        draws = {k: np.stack([s[k] for s in samples])[None] for k in model.latent_shapes()}
        wall = time.perf_counter() - start
        return EngineResult(draws, {}, self._info(-losses, wall, options, "pyro"))

    @staticmethod
    def _info(elbo: np.ndarray, wall: float, options, backend: str) -> dict:
        return {
            "wall_time_s": wall,
            "grad_evals": int(options.num_steps * options.num_particles),
            "elbo": elbo.astype(float).tolist(),
            "final_elbo": float(np.mean(elbo[-max(1, len(elbo) // 20):])),
            "backend": backend,
        }


class LowRankVIEngine(MFVIEngine):
    name = "lowrank_vi"
    Options = LowRankVIOptions
    description = "low-rank-plus-diagonal Gaussian variational inference (the paper's BNN family)"

    def _guide(self, autoguide, model_fn, init_loc_fn, options):
        return autoguide.AutoLowRankMultivariateNormal(model_fn, init_loc_fn=init_loc_fn,
                                                       init_scale=options.init_scale, rank=options.rank)
