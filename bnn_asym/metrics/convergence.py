"""Convergence: R-hat and ESS summaries, and how fast an engine gets somewhere.

``rhat_summary`` reduces rank-normalised split R-hat and bulk/tail ESS (ArviZ) over many quantities;
``time_to_target`` reads a convergence curve (a metric at checkpoints, against wall time or gradient
evaluations) and returns where it first reaches a level; ``ess_rates`` turns ESS into ESS per second and
per gradient evaluation.
"""

from __future__ import annotations

import numpy as np


def _average_ranks(rows: np.ndarray) -> np.ndarray:
    """1-based ranks along each row, ties given their average rank (scipy's ``rankdata(method="average")``
    without its per-call overhead)."""
    k, n = rows.shape
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, axis=1)
    position = np.broadcast_to(np.arange(n), (k, n))
    starts = np.ones((k, n), bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones((k, n), bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((k, n))
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks


def split_rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat (Vehtari et al. 2021: the larger of the bulk and the folded-tail
    value) of every quantity of (chain, draw, K) values, in one vectorised pass -- the same numbers as
    ArviZ's ``rhat(method="rank")``, which loops over quantities in Python (about 100x slower on the
    thousands of quantities of a network's parameters or predictions)."""
    from scipy import special

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[1] < 4:
        raise ValueError(f"split_rhat needs (chain >= 2, draw >= 4, K) values; got shape {values.shape}")
    half = values.shape[1] // 2
    split = np.concatenate([values[:, :half], values[:, -half:]], axis=0)  # (2 * chain, half, K)

    def z_scaled(x):
        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)  # (K, n): sort along contiguous rows
        ranks = _average_ranks(flat)
        return special.ndtri((ranks - 3 / 8) / (flat.shape[1] + 1 / 4)).T.reshape(x.shape)

    def rhat(z):
        chain_mean = z.mean(axis=1)
        within = z.var(axis=1, ddof=1).mean(axis=0)
        between = half * chain_mean.var(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt((between / within + half - 1) / half)

    bulk = rhat(z_scaled(split))
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[-1]), axis=0))
    return np.maximum(bulk, rhat(z_scaled(folded)))


def rhat_summary(values: np.ndarray, ess: bool = True) -> dict:
    """R-hat (rank-normalised) and, unless ``ess=False``, bulk/tail ESS (ArviZ) over the last axis of
    (chain, draw, K) values; quantities that never change are left out."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[1] < 4:
        raise ValueError(f"rhat_summary needs (chain >= 2, draw >= 4, K) values; got shape {values.shape}")
    varying = values.reshape(-1, values.shape[-1]).std(0) > 0
    values = values[..., varying]
    nan = float("nan")
    if not values.shape[-1]:
        return {"max_rhat": nan, "median_rhat": nan, "frac_rhat_above_1.01": nan, "min_ess_bulk": nan,
                "median_ess_bulk": nan, "min_ess_tail": nan, "n": 0}
    rhat = split_rhat(values)
    out = {"max_rhat": float(np.nanmax(rhat)), "median_rhat": float(np.nanmedian(rhat)),
           "frac_rhat_above_1.01": float(np.mean(rhat > 1.01)), "min_ess_bulk": nan, "median_ess_bulk": nan,
           "min_ess_tail": nan, "n": int(values.shape[-1])}
    if ess:
        from arviz_stats.base import array_stats

        moved = np.moveaxis(values, -1, 0)
        bulk = np.asarray(array_stats.ess(moved, chain_axis=-2, draw_axis=-1, method="bulk"))
        tail = np.asarray(array_stats.ess(moved, chain_axis=-2, draw_axis=-1, method="tail", prob=(0.05, 0.95)))
        out.update({"min_ess_bulk": float(np.nanmin(bulk)), "median_ess_bulk": float(np.nanmedian(bulk)),
                    "min_ess_tail": float(np.nanmin(tail))})
    return out


def time_to_target(x, y, target: float, higher_is_better: bool = True) -> float | None:
    """The first x at which y reaches ``target`` (y >= target, or y <= target when lower is better);
    None if it never does. x: wall seconds or gradient evaluations at each checkpoint, increasing."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {x.shape} and {y.shape}")
    hit = y >= target if higher_is_better else y <= target
    idx = np.flatnonzero(hit)
    return float(x[idx[0]]) if len(idx) else None


def time_to_within(x, y, fraction: float = 0.05) -> float | None:
    """The first x from which y stays within ``fraction`` (relative) of its final value -- e.g. test NLL
    within 5% of where the run ended."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if not len(y):
        return None
    close = np.abs(y - y[-1]) <= fraction * max(abs(y[-1]), 1e-12)
    # the first index after which every later point is close
    stays = np.flatnonzero(~close)
    first = 0 if not len(stays) else stays[-1] + 1
    return float(x[first]) if first < len(x) else None


def ess_rates(ess: float, wall_s: float, grad_evals: float) -> dict[str, float]:
    return {"ess_per_s": ess / wall_s if wall_s > 0 else float("nan"),
            "ess_per_grad": ess / grad_evals if grad_evals > 0 else float("nan")}
