"""Convergence: R-hat and ESS summaries, and how fast an engine gets somewhere.

``rhat_summary`` reduces rank-normalised split R-hat and bulk/tail ESS (ArviZ) over many quantities;
``time_to_target`` reads a convergence curve (a metric at checkpoints, against wall time or gradient
evaluations) and returns where it first reaches a level; ``ess_rates`` turns ESS into ESS per second and
per gradient evaluation.
"""

from __future__ import annotations

import numpy as np


def rhat_summary(values: np.ndarray) -> dict:
    """R-hat (rank-normalised) and bulk/tail ESS over the last axis of (chain, draw, K) values; quantities
    that never change are left out."""
    from arviz_stats.base import array_stats

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[1] < 4:
        raise ValueError(f"rhat_summary needs (chain >= 2, draw >= 4, K) values; got shape {values.shape}")
    varying = values.reshape(-1, values.shape[-1]).std(0) > 0
    values = values[..., varying]
    if not values.shape[-1]:
        return {"max_rhat": float("nan"), "median_rhat": float("nan"), "frac_rhat_above_1.01": float("nan"),
                "min_ess_bulk": float("nan"), "median_ess_bulk": float("nan"), "min_ess_tail": float("nan"), "n": 0}
    moved = np.moveaxis(values, -1, 0)
    rhat = np.asarray(array_stats.rhat(moved, chain_axis=-2, draw_axis=-1))
    bulk = np.asarray(array_stats.ess(moved, chain_axis=-2, draw_axis=-1, method="bulk"))
    tail = np.asarray(array_stats.ess(moved, chain_axis=-2, draw_axis=-1, method="tail", prob=(0.05, 0.95)))
    return {"max_rhat": float(np.nanmax(rhat)), "median_rhat": float(np.nanmedian(rhat)),
            "frac_rhat_above_1.01": float(np.mean(rhat > 1.01)), "min_ess_bulk": float(np.nanmin(bulk)),
            "median_ess_bulk": float(np.nanmedian(bulk)), "min_ess_tail": float(np.nanmin(tail)),
            "n": int(values.shape[-1])}


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
