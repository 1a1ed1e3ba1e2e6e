"""Loss along straight lines in parameter space: linear mode connectivity (LMC) and monotonic linear
interpolation (MLI).

Interpolation acts on the free parameters: ``(1 - t) a + t b``. Two networks of one spec share their
fixed entries, so this equals interpolating the full weights. None of the specs here has BatchNorm
(LayerNorm/GroupNorm compute their statistics per sample), so no statistics need recomputing along
the path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass
class Curve:
    """Loss (and accuracy) at each interpolation coefficient t."""

    t: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None = None

    def to_dict(self) -> dict:
        d = {"t": self.t.tolist(), "loss": self.loss.tolist()}
        if self.accuracy is not None:
            d["accuracy"] = self.accuracy.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Curve:
        acc = d.get("accuracy")
        return cls(np.asarray(d["t"]), np.asarray(d["loss"]), None if acc is None else np.asarray(acc))


def interpolation_points(n_points: int = 25) -> np.ndarray:
    if n_points < 3:
        raise ValueError(f"n_points={n_points} is not valid; accepted: an integer >= 3")
    return np.linspace(0.0, 1.0, n_points)


def _batch_stats_fn(spec, task: str):
    """Jitted summed loss and correct count of every parameter set (leading axis) on one batch.

    Cached on the spec instance (like its backend constants): an LMC pair interpolates train and test,
    unaligned and aligned, and would otherwise trace and compile the same function each time.
    """
    cache = spec.__dict__.setdefault("_interpolation_fns", {})
    if task in cache:
        return cache[task]

    @jax.jit
    def batch_stats(p, xb, yb):
        def one(q):
            out = spec.apply_jax(q, xb)
            if task == "classification":
                logp = jax.nn.log_softmax(out, axis=-1)
                nll = -jnp.take_along_axis(logp, yb[:, None], axis=-1)[:, 0]
                return nll.sum(), (out.argmax(-1) == yb).sum()
            return ((out.reshape(yb.shape) - yb) ** 2).sum(), jnp.zeros((), jnp.int32)

        return jax.vmap(one)(p)

    cache[task] = batch_stats
    return batch_stats


def _losses(spec, stacked: dict, X, y, task: str, batch_size: int = 2048):
    """Mean loss and accuracy of every parameter set in ``stacked`` (leading axis), vmapped in JAX."""
    batch_stats = _batch_stats_fn(spec, task)
    n = len(X)
    k = len(next(iter(stacked.values())))
    loss_sum, correct = np.zeros(k), np.zeros(k)
    y = np.asarray(y)
    for i in range(0, n, batch_size):
        ls, c = batch_stats(stacked, np.asarray(X[i : i + batch_size], np.float32), y[i : i + batch_size])
        loss_sum += np.asarray(ls, np.float64)
        correct += np.asarray(c)
    return loss_sum / n, (correct / n if task == "classification" else None)


def interpolate(spec, a: dict, b: dict, X, y, task: str = "classification", n_points: int = 25) -> Curve:
    """Loss and accuracy of ``(1 - t) a + t b`` at ``n_points`` evenly spaced t in [0, 1]."""
    t = interpolation_points(n_points)
    stacked = {
        k: np.stack([(1 - ti) * np.asarray(a[k], np.float32) + ti * np.asarray(b[k], np.float32) for ti in t])
        for k in a
    }
    loss, acc = _losses(spec, stacked, X, y, task)
    return Curve(t, loss, acc)


def midpoint_barrier(curve: Curve) -> float:
    """``L((a + b) / 2) - (L(a) + L(b)) / 2`` (needs t = 0.5 on the grid: an odd number of points)."""
    mid = np.flatnonzero(np.isclose(curve.t, 0.5))
    if not len(mid):
        raise ValueError("the curve has no point at t = 0.5; use an odd n_points")
    return float(curve.loss[mid[0]] - 0.5 * (curve.loss[0] + curve.loss[-1]))


def max_barrier(curve: Curve) -> float:
    """``max_t L(t) - ((1 - t) L(a) + t L(b))``: the largest rise above the straight line between the ends."""
    chord = (1 - curve.t) * curve.loss[0] + curve.t * curve.loss[-1]
    return float(np.max(curve.loss - chord))


@dataclass
class MLIStats:
    """Monotonic linear interpolation statistics of one init -> trained curve (Lucas et al. 2021).

    max_increase: Delta = max over t < t' of L(t') - L(t), 0 when the loss never rises.
    monotonic: Delta <= tol. local_convexity: fraction of interior points with a non-negative second
    difference. globally_convex: the curve never rises above the chord between the two true end points.
    """

    max_increase: float
    monotonic: bool
    local_convexity: float
    globally_convex: bool

    def to_dict(self) -> dict:
        return asdict(self)


def mli_stats(curve: Curve | np.ndarray, tol: float = 1e-7) -> MLIStats:
    """MLI statistics of a loss curve from init (t=0) to trained (t=1) on evenly spaced points."""
    loss = np.asarray(curve.loss if isinstance(curve, Curve) else curve, dtype=np.float64)
    if loss.ndim != 1 or len(loss) < 3:
        raise ValueError("an MLI curve needs at least 3 loss values")
    running_min = np.minimum.accumulate(loss)
    delta = float(max(0.0, np.max(loss - running_min)))
    second = loss[:-2] - 2 * loss[1:-1] + loss[2:]
    t = np.linspace(0.0, 1.0, len(loss))
    chord = (1 - t) * loss[0] + t * loss[-1]  # through the two true end points
    scale = max(1.0, np.abs(loss).max())
    return MLIStats(
        max_increase=delta,
        monotonic=bool(delta <= tol * scale),
        local_convexity=float(np.mean(second >= -tol * scale)),
        globally_convex=bool(np.all(loss <= chord + tol * scale)),
    )
