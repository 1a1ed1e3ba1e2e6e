"""Convergence: R-hat and ESS summaries, and how fast an engine gets somewhere.

``rhat_summary`` reduces rank-normalised split R-hat and bulk/tail ESS over many quantities (the numbers
ArviZ computes, vectorised over quantities: ArviZ loops over them in Python, which took half a minute on
a network's parameters and predictions);
``chainwise_rhat`` asks whether each chain has converged on its own (DEI-MCMC: R-hat over a chain's pieces,
blind to chains that sit in different modes), ``nested_rhat`` whether superchains of many short chains agree
(Margossian et al. 2023); ``time_to_target`` reads a convergence curve (a metric at checkpoints, against wall
time or gradient evaluations) and returns where it first reaches a level; ``ess_rates`` turns ESS into ESS per
second and per gradient evaluation.
"""

from __future__ import annotations

import numpy as np


def _average_ranks(rows: np.ndarray) -> np.ndarray:
    """1-based ranks along each row, ties given their average rank (scipy's ``rankdata(method="average")``
    without its per-call overhead)."""
    k, n = rows.shape
    order = np.argsort(rows, axis=1)
    ordered = np.take_along_axis(rows, order, axis=1)
    position = np.broadcast_to(np.arange(n, dtype=np.float64), (k, n))
    tied = ordered[:, 1:] == ordered[:, :-1]
    ranks = np.empty((k, n))
    if not tied.any():
        np.put_along_axis(ranks, order, position + 1, axis=1)
        return ranks
    starts = np.ones((k, n), bool)
    starts[:, 1:] = ~tied
    ends = np.ones((k, n), bool)
    ends[:, :-1] = ~tied
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks


def split_rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat (Vehtari et al. 2021: the larger of the bulk and the folded-tail
    value) of every quantity of (chain, draw, K) values, in one vectorised pass -- the same numbers as
    ArviZ's ``rhat(method="rank")``."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[1] < 4:
        raise ValueError(f"split_rhat needs (chain >= 2, draw >= 4, K) values; got shape {values.shape}")
    split = _split(values)  # (2 * chain, half, K)
    return _rank_rhat(split, _z_scaled(split))


def _rank_rhat(split: np.ndarray, z_bulk: np.ndarray) -> np.ndarray:
    """Split R-hat of split chains given their rank-normalised values (which bulk ESS reuses)."""
    half = split.shape[1]

    def rhat(z):
        chain_mean = z.mean(axis=1)
        within = z.var(axis=1, ddof=1).mean(axis=0)
        between = half * chain_mean.var(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt((between / within + half - 1) / half)

    folded = np.abs(split - np.median(split.reshape(-1, split.shape[-1]), axis=0))
    return np.maximum(rhat(z_bulk), rhat(_z_scaled(folded)))


def _split(values: np.ndarray) -> np.ndarray:
    """(chain, draw, K) -> (2 * chain, draw // 2, K): first and last halves of every chain."""
    half = values.shape[1] // 2
    return np.concatenate([values[:, :half], values[:, -half:]], axis=0)


def _z_scaled(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each quantity of (chain, draw, K) values over all its chains and draws."""
    from scipy import special

    flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)  # (K, n): sort along contiguous rows
    ranks = _average_ranks(flat)
    return special.ndtri((ranks - 3 / 8) / (flat.shape[1] + 1 / 4)).T.reshape(x.shape)


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of every quantity of (chain, draw, K) values: autocovariances by FFT, Geyer's
    initial positive and initial monotone sequences (Vehtari et al. 2021) -- ArviZ's ``_ess`` for all K at once."""
    from scipy.fft import irfft, next_fast_len, rfft

    x = np.asarray(x, np.float64)
    n_chain, n, k = x.shape
    size = n_chain * n
    constant = (x.max(axis=(0, 1)) - x.min(axis=(0, 1))) < np.finfo(float).resolution
    m = next_fast_len(2 * n)
    centred = x - x.mean(axis=1, keepdims=True)
    spectrum = rfft(centred, n=m, axis=1)
    acov = irfft(spectrum * np.conjugate(spectrum), n=m, axis=1)[:, :n] / n  # (chain, lag, K)
    mean_acov = acov.mean(axis=0)  # (lag, K)
    mean_var = mean_acov[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if n_chain > 1:
        var_plus = var_plus + x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - mean_acov) / var_plus  # (lag, K)
    rho[0] = 1.0
    # pairs P_j = rho[2j] + rho[2j+1]; Geyer's loop runs pair j >= 1 while 2j - 1 < n - 3 and every earlier
    # pair sum is positive, so it stops at J = the first non-positive pair (at most j_max)
    j_max = max(0, (n - 3) // 2)
    pairs = rho[0 : 2 * j_max + 2 : 2] + rho[1 : 2 * j_max + 2 : 2]  # (j_max + 1, K)
    stop = np.full(k, j_max)  # J per quantity
    if j_max:
        nonpositive = pairs[:j_max] <= 0
        stop = np.where(nonpositive.any(axis=0), nonpositive.argmax(axis=0), j_max)
    monotone = np.minimum.accumulate(pairs, axis=0)  # Geyer's initial monotone sequence
    counted = np.arange(j_max + 1)[:, None] < stop[None, :]
    last_even = np.take_along_axis(rho[0 : 2 * j_max + 2 : 2], stop[None, :], axis=0)[0]
    last_pair = np.take_along_axis(pairs, stop[None, :], axis=0)[0]
    last = np.where((last_pair >= 0) | (last_even > 0), last_even, 0.0)
    tau = -1.0 + 2.0 * np.where(counted, monotone, 0.0).sum(axis=0) + last
    ess = size / np.maximum(tau, 1 / np.log10(size))
    ess = np.where(np.isnan(rho).any(axis=0), np.nan, ess)
    return np.where(constant, float(size), ess)


def ess_bulk(values: np.ndarray) -> np.ndarray:
    """Bulk ESS (rank-normalised split chains) of every quantity of (chain, draw, K) values."""
    return _ess(_z_scaled(_split(np.asarray(values, np.float64))))


def ess_tail(values: np.ndarray, prob: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators of the ``prob`` quantiles, per quantity."""
    values = np.asarray(values, np.float64)
    out = []
    for p in prob:
        q = np.quantile(values.reshape(-1, values.shape[-1]), p, axis=0)
        out.append(_ess(_split((values <= q).astype(np.float64))))
    return np.minimum(*out)


def rhat_summary(values: np.ndarray, ess: bool | str = True) -> dict:
    """R-hat (rank-normalised) and, unless ``ess=False``, bulk/tail ESS over the last axis of (chain, draw, K)
    values (``ess="bulk"``: bulk ESS only, tail ESS NaN); quantities that never change are left out."""
    if ess not in (True, False, "bulk"):
        raise ValueError(f"ess must be True, False or 'bulk'; got {ess!r}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[1] < 4:
        raise ValueError(f"rhat_summary needs (chain >= 2, draw >= 4, K) values; got shape {values.shape}")
    varying = values.reshape(-1, values.shape[-1]).std(0) > 0
    values = values[..., varying]
    nan = float("nan")
    if not values.shape[-1]:
        return {
            "max_rhat": nan,
            "median_rhat": nan,
            "frac_rhat_above_1.01": nan,
            "min_ess_bulk": nan,
            "median_ess_bulk": nan,
            "min_ess_tail": nan,
            "n": 0,
        }
    split = _split(values)
    z_bulk = _z_scaled(split)  # shared by R-hat and bulk ESS: ranking is the expensive part
    rhat = _rank_rhat(split, z_bulk)
    out = {
        "max_rhat": float(np.nanmax(rhat)),
        "median_rhat": float(np.nanmedian(rhat)),
        "frac_rhat_above_1.01": float(np.mean(rhat > 1.01)),
        "min_ess_bulk": nan,
        "median_ess_bulk": nan,
        "min_ess_tail": nan,
        "n": int(values.shape[-1]),
    }
    if ess:
        bulk = _ess(z_bulk)
        out.update({"min_ess_bulk": float(np.nanmin(bulk)), "median_ess_bulk": float(np.nanmedian(bulk))})
    if ess is True:
        out["min_ess_tail"] = float(np.nanmin(ess_tail(values)))
    return out


CHAINWISE_SPLITS = 4  # DEI-MCMC's chainwise split R-hat cuts every chain into 4 pieces


def chainwise_rhat(values: np.ndarray, splits: int = CHAINWISE_SPLITS) -> np.ndarray:
    """Rank-normalised R-hat of each chain on its own, its draws cut into ``splits`` consecutive pieces that
    act as the chains (Sommer et al. 2024): (chain, K) values for (chain, draw, K) input. Near 1 when every chain
    is stationary where it is, even if chains sit in different modes; compare with ``split_rhat`` over all
    chains, which is large then."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or splits < 2 or values.shape[1] < 2 * splits:
        raise ValueError(
            f"chainwise_rhat needs (chain, draw >= {2 * max(splits, 2)}, K) values and splits >= 2; got shape "
            f"{values.shape}, splits={splits}"
        )
    length = values.shape[1] // splits
    out = []
    for chain in values:
        pieces = chain[-splits * length :].reshape(splits, length, -1)  # drop the first draws, not the last
        out.append(_rank_rhat(pieces, _z_scaled(pieces)))
    return np.stack(out)


def nested_rhat(values: np.ndarray, superchains) -> np.ndarray:
    """Nested R-hat (Margossian et al. 2023) of every quantity of (chain, draw, K) values; ``superchains`` gives
    each chain's superchain (e.g. the ensemble member it started from), at least 2 superchains of equal size.

    nR-hat = sqrt(1 + B / W): B the variance between superchain means, W the mean over superchains of the
    variance between their chains' means plus their chains' mean within-chain variance. Near 1 when the
    superchains agree, however short each chain is."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(superchains)
    if values.ndim != 3 or labels.shape != (values.shape[0],):
        raise ValueError(f"nested_rhat needs (chain, draw, K) values and one superchain per chain; got "
                         f"{values.shape} and {labels.shape}")  # fmt: skip
    groups = [values[labels == g] for g in np.unique(labels)]
    if len(groups) < 2 or len({len(g) for g in groups}) != 1:
        raise ValueError(f"nested_rhat needs >= 2 superchains of equal size; got sizes {[len(g) for g in groups]}")
    chains, draws = len(groups[0]), values.shape[1]
    chain_means = np.stack([g.mean(axis=1) for g in groups])  # (superchain, chain, K)
    super_means = chain_means.mean(axis=1)
    between = super_means.var(axis=0, ddof=1)
    between_chains = chain_means.var(axis=1, ddof=1) if chains > 1 else np.zeros_like(super_means)
    within_chains = (
        np.stack([g.var(axis=1, ddof=1).mean(axis=0) for g in groups]) if draws > 1 else np.zeros_like(super_means)
    )
    within = (between_chains + within_chains).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(1 + between / within)


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
    return {
        "ess_per_s": ess / wall_s if wall_s > 0 else float("nan"),
        "ess_per_grad": ess / grad_evals if grad_evals > 0 else float("nan"),
    }
