"""Metanetworks: predict a classifier's test accuracy from its weights (the paper's weight-space task).

Inputs are the free parameters of a zoo's networks (``bnn_asym.zoo``): a W-Asym network's fixed entries are
constants shared by the whole zoo and carry no information, so they are left out -- its inputs are the free
entries, norms and biases, as in the paper. Metanets (``KINDS``):

- ``mlp``: an MLP on every free parameter, flattened (standardised per input).
- ``statnn``: an MLP on 7 statistics of every parameter tensor (mean, variance and the 0 / 25 / 50 / 75 / 100%
  quantiles; Unterthiner et al. 2020).
- ``deepsets``: per weight layer, each output unit's incoming weights (and bias) embedded by a layer-specific
  MLP and averaged over the units -- invariant to permuting that layer's units -- then an MLP on the layers'
  embeddings and the remaining tensors' statistics. A permutation-equivariant NFN (Zhou et al. 2023) is not
  included.

Each is trained with Adam on the mean squared error of the standardised target plus an L2 penalty, on 50% of
the networks; the penalty and epoch with the best validation loss (25%) are kept and scored on the remaining
25%: R^2 and Kendall's tau, over ``seeds`` (each a new split and init).
"""

from __future__ import annotations

import numpy as np

KINDS = ("mlp", "statnn", "deepsets")
STATISTICS = ("mean", "var", "q0", "q25", "q50", "q75", "q100")
SPLIT = (0.5, 0.25, 0.25)
HIDDEN = 128
L2_GRID = (1e-3, 1e-2, 1e-1)  # weight penalties tried; the validation split picks one


def _check_inputs(params: dict, target) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if not isinstance(params, dict) or not params:
        raise ValueError("params must be a non-empty dict: parameter name -> array with one row per network")
    arrays = {k: np.asarray(v, np.float64) for k, v in params.items()}
    n = {len(v) for v in arrays.values()}
    y = np.asarray(target, np.float64)
    if len(n) != 1 or y.shape != (n.pop(),):
        shapes = {k: v.shape for k, v in arrays.items()}
        raise ValueError(f"params {shapes} and target {y.shape} disagree; accepted: one row per network in each")
    if len(y) < 8:
        raise ValueError(f"{len(y)} networks are too few to split 50/25/25; accepted: at least 8")
    if not (np.all(np.isfinite(y)) and all(np.all(np.isfinite(v)) for v in arrays.values())):
        raise ValueError("params and target must be finite (drop diverged networks first)")
    return arrays, y


def statnn_features(params: dict) -> np.ndarray:
    """(networks, 7 x tensors): the ``STATISTICS`` of every tensor, in sorted name order."""
    arrays = {k: np.asarray(v, np.float64) for k, v in params.items()}
    cols = []
    for k in sorted(arrays):
        flat = arrays[k].reshape(len(arrays[k]), -1)
        q = np.quantile(flat, [0.0, 0.25, 0.5, 0.75, 1.0], axis=1).T
        cols.append(np.column_stack([flat.mean(1), flat.var(1), q]))
    return np.concatenate(cols, axis=1)


def flat_features(params: dict) -> np.ndarray:
    """(networks, free parameters): every tensor flattened, in sorted name order."""
    return np.concatenate([np.asarray(params[k], np.float64).reshape(len(params[k]), -1) for k in sorted(params)], 1)


def _unit_sets(params: dict) -> tuple[list[np.ndarray], dict]:
    """Per weight tensor (2-D dense or 4-D conv): (networks, units, incoming weights [+ bias]); and the rest."""
    sets, rest = [], {}
    for k in sorted(params):
        v = np.asarray(params[k], np.float64)
        if k.endswith(".weight") and v.ndim >= 3:
            rows = v.reshape(v.shape[0], v.shape[1], -1)
            bias = params.get(k[: -len(".weight")] + ".bias")
            if bias is not None:
                rows = np.concatenate([rows, np.asarray(bias, np.float64)[:, :, None]], axis=2)
            sets.append(rows)
        elif not (k.endswith(".bias") and k[: -len(".bias")] + ".weight" in params):
            rest[k] = v
    return sets, rest


INPUT_CLIP = 10.0  # standardised inputs beyond this many spreads are clipped


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centred on the training networks' median and scaled by their interquartile range (a zoo's weights are
    heavy-tailed: a few networks trained at lr 0.5 carry entries thousands of times the rest), then clipped to
    +-INPUT_CLIP, so one extreme network cannot dominate a metanet's inputs."""
    centre = np.median(train, axis=0)
    q25, q75 = np.percentile(train, [25, 75], axis=0)
    spread = (q75 - q25) / 1.349  # the IQR of a standard normal: a Gaussian input keeps unit scale
    spread = np.where(spread > 1e-12, spread, np.where(train.std(0) > 1e-12, train.std(0), 1.0))
    return [np.clip((a - centre) / spread, -INPUT_CLIP, INPUT_CLIP) for a in (train, *others)]


def split_indices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    a, b = round(SPLIT[0] * n), round((SPLIT[0] + SPLIT[1]) * n)
    return order[:a], order[a:b], order[b:]


def _mlp_init(key, sizes):
    import jax

    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": np.zeros(b, np.float32)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def _mlp(layers, x):
    import jax

    for layer in layers[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def _model(kind: str, inputs, key):
    """(init params, apply(params, inputs) -> predictions) of a metanet on prepared inputs."""
    import jax
    import jax.numpy as jnp

    if kind in ("mlp", "statnn"):
        d = inputs.shape[1]
        return _mlp_init(key, [d, HIDDEN, HIDDEN, 1]), lambda p, x: _mlp(p, x)[:, 0]
    sets, rest = inputs
    keys = jax.random.split(key, len(sets) + 1)
    phis = [_mlp_init(k, [s.shape[2], HIDDEN, HIDDEN]) for k, s in zip(keys, sets)]
    rho = _mlp_init(keys[-1], [HIDDEN * len(sets) + rest.shape[1], HIDDEN, 1])

    def apply(p, x):
        sets, rest = x
        pooled = [jnp.mean(_mlp(phi, s), axis=1) for phi, s in zip(p["phi"], sets)]  # mean over units
        return _mlp(p["rho"], jnp.concatenate(pooled + [rest], axis=1))[:, 0]

    return {"phi": phis, "rho": rho}, apply


def _prepare(kind: str, params: dict, parts) -> list:
    """The metanet's inputs for the train / validation / test networks, standardised on the training ones."""
    if kind == "mlp":
        return _standardise(*[flat_features({k: v[i] for k, v in params.items()}) for i in parts])
    if kind == "statnn":
        return _standardise(*[statnn_features({k: v[i] for k, v in params.items()}) for i in parts])
    sets, rest = _unit_sets(params)
    n = len(next(iter(params.values())))
    rest_parts = _standardise(*[(statnn_features(rest) if rest else np.zeros((n, 0)))[i] for i in parts])
    # one robust scale per layer (unit order stays free), entries clipped like every other input
    scale = [max(float(np.percentile(np.abs(s[parts[0]]), 75)), 1e-12) for s in sets]
    return [
        (
            [np.clip(s[i] / c, -INPUT_CLIP, INPUT_CLIP).astype(np.float32) for s, c in zip(sets, scale)],
            r.astype(np.float32),
        )
        for i, r in zip(parts, rest_parts)
    ]


def fit_metanet(kind: str, params: dict, target, seed: int = 0, epochs: int = 1000, lr: float = 1e-3) -> dict:
    """Train one metanet on a 50/25/25 split (seeded) and score it on the test networks: R^2, Kendall's tau,
    and its predictions (``predicted``, for the networks at ``test_networks``).

    Full-batch Adam on the mean squared error of the standardised target plus an L2 penalty on the weights;
    the penalty (``L2_GRID``) and the epoch are the ones with the lowest validation loss -- a zoo's training
    half is small enough for an unpenalised metanet to interpolate it."""
    import jax
    import jax.numpy as jnp
    import optax
    from scipy.stats import kendalltau
    from sklearn.metrics import r2_score

    if kind not in KINDS:
        raise ValueError(f"metanet kind={kind!r} is not valid; accepted: {', '.join(KINDS)}")
    arrays, y = _check_inputs(params, target)
    parts = split_indices(len(y), seed)
    as_f32 = lambda x: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), x)  # noqa: E731
    train_x, val_x, test_x = (as_f32(x) for x in _prepare(kind, arrays, parts))
    y_mean, y_std = y[parts[0]].mean(), max(float(y[parts[0]].std()), 1e-12)
    y_train, y_val = (as_f32((y[p] - y_mean) / y_std) for p in parts[:2])
    start, apply = _model(kind, train_x, jax.random.PRNGKey(seed))
    opt = optax.adam(lr)

    def mse(w, x, t):
        return jnp.mean((apply(w, x) - t) ** 2)

    def objective(w, l2):
        penalty = sum(jnp.sum(leaf**2) for path, leaf in jax.tree_util.tree_leaves_with_path(w) if "w" in str(path[-1]))
        return mse(w, train_x, y_train) + l2 * penalty

    @jax.jit
    def step(w, state, l2):
        updates, state = opt.update(jax.grad(objective)(w, l2), state, w)
        w = optax.apply_updates(w, updates)
        return w, state, mse(w, val_x, y_val)

    best, best_w = np.inf, None
    for l2 in L2_GRID:
        w = as_f32(start)
        state = opt.init(w)
        for _ in range(epochs):
            w, state, val = step(w, state, jnp.float32(l2))
            if float(val) < best:
                best, best_w = float(val), w
    predicted = np.asarray(apply(best_w, test_x), np.float64) * y_std + y_mean
    predicted = np.clip(predicted, y[parts[0]].min(), y[parts[0]].max())  # within what the metanet was shown
    truth = y[parts[2]]
    return {
        "kind": kind,
        "seed": seed,
        "r2": float(r2_score(truth, predicted)),
        "kendall_tau": float(kendalltau(truth, predicted).statistic),
        "validation_mse": best,
        "n_train": len(parts[0]),
        "n_test": len(parts[2]),
        "test_networks": parts[2].tolist(),  # positions in ``params`` of the scored networks
        "predicted": predicted.tolist(),
    }


def evaluate_metanets(params: dict, target, kinds=KINDS, seeds=range(5), epochs: int = 1000) -> dict[str, dict]:
    """Every metanet kind over ``seeds``: mean and std of test R^2 and Kendall's tau, and the runs."""
    out = {}
    for kind in kinds:
        runs = [fit_metanet(kind, params, target, seed=s, epochs=epochs) for s in seeds]
        r2, tau = np.array([r["r2"] for r in runs]), np.array([r["kendall_tau"] for r in runs])
        out[kind] = {
            "r2_mean": float(r2.mean()),
            "r2_std": float(r2.std(ddof=1)) if len(runs) > 1 else 0.0,
            "tau_mean": float(tau.mean()),
            "tau_std": float(tau.std(ddof=1)) if len(runs) > 1 else 0.0,
            "runs": runs,
        }
    return out
