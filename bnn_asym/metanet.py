"""Metanetworks: predict a classifier's test accuracy from its weights (the paper's weight-space task).

Inputs are the free parameters of a zoo's networks (``bnn_asym.zoo``): a W-Asym network's fixed entries are
constants shared by the whole zoo and carry no information, so they are left out -- its inputs are the free
entries, norms and biases, as in the paper. Metanets (``KINDS``):

- ``mlp``: an MLP on every free parameter, flattened (standardised per input).
- ``statnn``: an MLP on 7 statistics of every parameter tensor (mean, variance and the 0 / 25 / 50 / 75 / 100%
  quantiles; Unterthiner et al. 2020).
- ``deepsets``: per weight layer, each output unit's incoming weights (and bias) embedded by a layer-specific
  MLP and averaged over the units -- invariant to permuting that layer's units -- then an MLP on the layers'
  embeddings and the remaining tensors' statistics.
- ``nfn``: a neural functional (Zhou et al. 2023) built on the ``nfn`` package's layers (torch): two
  hidden-neuron-permutation-equivariant ``HNPLinear`` layers, ``HNPPool`` and an MLP head -- invariant to
  permuting any hidden layer's units, the symmetry of a standard network. It takes networks whose free
  parameters are whole dense / conv weight matrices and biases that chain layer to layer (MLPs and CNNs with a
  pooled head); a W-Asym network's free layout leaves fixed entries out, so ``nfn_layers`` refuses it, and a
  sigma-Asym network has whole matrices but no permutation symmetry for the layers to exploit (it is
  scored anyway, as a comparison).

Each is trained with Adam on the mean squared error of the standardised target plus an L2 penalty, on 50% of
the networks; the penalty and epoch with the best validation loss (25%) are kept and scored on the remaining
25%: R^2 and Kendall's tau, over ``seeds`` (each a new split and init).
"""

from __future__ import annotations

import numpy as np

KINDS = ("mlp", "statnn", "deepsets", "nfn")
# what a zoo is scored with unless asked: the NFN trains per weight entry, minutes per fit on a 2-core CPU
DEFAULT_KINDS = ("mlp", "statnn", "deepsets")
STATISTICS = ("mean", "var", "q0", "q25", "q50", "q75", "q100")
SPLIT = (0.5, 0.25, 0.25)
HIDDEN = 128
NFN_CHANNELS = 8  # channels of the NFN layers (its cost grows with their square)
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
    scale = [_layer_scale(s[parts[0]]) for s in sets]
    return [([_scaled(s[i], c) for s, c in zip(sets, scale)], r.astype(np.float32)) for i, r in zip(parts, rest_parts)]


def _layer_scale(train_values: np.ndarray) -> float:
    """One robust scale for a whole tensor (unit order stays free): the 75th percentile of its magnitude over the
    training networks."""
    return max(float(np.percentile(np.abs(train_values), 75)), 1e-12)


def _scaled(values: np.ndarray, scale: float) -> np.ndarray:
    """Values over their layer's scale, clipped like every other metanet input, as float32."""
    return np.clip(values / scale, -INPUT_CLIP, INPUT_CLIP).astype(np.float32)


def fit_metanet(kind: str, params: dict, target, seed: int = 0, epochs: int = 1000, lr: float = 1e-3) -> dict:
    """Train one metanet on a 50/25/25 split (seeded) and score it on the test networks: R^2, Kendall's tau,
    and its predictions (``predicted``, for the networks at ``test_networks``).

    Full-batch Adam on the mean squared error of the standardised target plus an L2 penalty on the weights;
    the penalty (``L2_GRID``) and the epoch are the ones with the lowest validation loss -- a zoo's training
    half is small enough for an unpenalised metanet to interpolate it."""
    from scipy.stats import kendalltau
    from sklearn.metrics import r2_score

    if kind not in KINDS:
        raise ValueError(f"metanet kind={kind!r} is not valid; accepted: {', '.join(KINDS)}")
    arrays, y = _check_inputs(params, target)
    parts = split_indices(len(y), seed)
    y_mean, y_std = y[parts[0]].mean(), max(float(y[parts[0]].std()), 1e-12)
    y_train, y_val = ((y[p] - y_mean) / y_std for p in parts[:2])
    train = _train_nfn if kind == "nfn" else _train_jax
    predicted, best = train(kind, arrays, parts, y_train, y_val, seed, epochs, lr)
    predicted = np.asarray(predicted, np.float64) * y_std + y_mean
    predicted = np.clip(predicted, y[parts[0]].min(), y[parts[0]].max())  # within what the metanet was shown
    truth = y[parts[2]]
    return {
        "kind": kind,
        "seed": seed,
        "epochs": epochs,
        "r2": float(r2_score(truth, predicted)),
        "kendall_tau": float(kendalltau(truth, predicted).statistic),
        "validation_mse": best,
        "n_train": len(parts[0]),
        "n_test": len(parts[2]),
        "test_networks": parts[2].tolist(),  # positions in ``params`` of the scored networks
        "predicted": predicted.tolist(),
    }


def _train_jax(kind, arrays, parts, y_train, y_val, seed, epochs, lr) -> tuple[np.ndarray, float]:
    """(standardised predictions for the test networks, best validation MSE) of an mlp / statnn / deepsets
    metanet."""
    import jax
    import jax.numpy as jnp
    import optax

    as_f32 = lambda x: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), x)  # noqa: E731
    train_x, val_x, test_x = (as_f32(x) for x in _prepare(kind, arrays, parts))
    y_train, y_val = as_f32(y_train), as_f32(y_val)
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
    return np.asarray(apply(best_w, test_x)), best


# ----- NFN (torch, on the nfn package's layers) ----------------------------------------------------------------
def _layer_order(name: str) -> tuple:
    """Forward order of a layer prefix: numbered layers (``fc2`` < ``fc10``) first, ``out`` last."""
    digits = "".join(c for c in name if c.isdigit())
    return (name == "out", int(digits) if digits else 0, name)


def nfn_layers(params: dict) -> list[tuple[str, str]]:
    """(weight, bias) names of the layers an NFN reads, in forward order; a ValueError saying why when the
    networks are not chains of whole dense / conv layers (leading axis: networks)."""
    layer_keys = [k for k in params if k.endswith((".weight", ".bias"))]
    names = sorted({k.rsplit(".", 1)[0] for k in layer_keys}, key=_layer_order)
    layers = [(f"{n}.weight", f"{n}.bias") for n in names]
    missing = [k for pair in layers for k in pair if k not in params]
    others = sorted(set(params) - set(layer_keys))
    if missing or others or len(layers) < 2:
        problems = [f"{len(layers)} layers"] + [f"no {missing}"] * bool(missing) + [f"also {others}"] * bool(others)
        raise ValueError(
            "the nfn metanet takes networks whose free parameters are only layer weights and biases, >= 2 layers "
            f"(MLPs, CNNs with a pooled head; norm layers and skip connections are outside its weight space); got "
            f"{', '.join(problems)}: use the mlp, statnn or deepsets metanets"
        )
    shapes = [np.shape(params[w])[1:] for w, _ in layers]
    for (w, b), shape, following in zip(layers, shapes, shapes[1:] + [None]):
        if len(shape) not in (2, 4) or np.shape(params[b])[1:] != shape[:1]:
            raise ValueError(f"the nfn metanet takes dense or 2-D conv layers with one bias per unit; {w} is {shape}")
        if following is not None and following[1] != shape[0]:
            raise ValueError(
                f"the nfn metanet takes whole weight matrices that chain layer to layer; {w} has {shape[0]} units "
                f"but the next layer takes {following[1]} inputs (a W-Asym network's free layout leaves its fixed "
                "entries out: use the mlp, statnn or deepsets metanets)"
            )
    return layers


def _nfn_inputs(arrays: dict, layers, parts) -> list:
    """Per split: (weights, biases) with a channel axis, each layer scaled by one robust scale from the training
    networks (unit order stays free) and clipped like every other metanet input."""
    scales = {k: _layer_scale(arrays[k][parts[0]]) for pair in layers for k in pair}
    weights, biases = [w for w, _ in layers], [b for _, b in layers]
    return [
        tuple([_scaled(arrays[k][i], scales[k])[:, None] for k in names] for names in (weights, biases)) for i in parts
    ]


def _train_nfn(kind, arrays, parts, y_train, y_val, seed, epochs, lr) -> tuple[np.ndarray, float]:
    """(standardised predictions for the test networks, best validation MSE) of the NFN metanet."""
    import torch
    from nfn.common import NetworkSpec, WeightSpaceFeatures, network_spec_from_wsfeat
    from nfn.layers import HNPLinear, HNPPool, TupleOp

    layers = nfn_layers(arrays)
    train_x, val_x, test_x = (
        WeightSpaceFeatures([torch.from_numpy(w) for w in ws], [torch.from_numpy(b) for b in bs])
        for ws, bs in _nfn_inputs(arrays, layers, parts)
    )
    spec: NetworkSpec = network_spec_from_wsfeat(train_x)
    y_train_t, y_val_t = (torch.as_tensor(t, dtype=torch.float32) for t in (y_train, y_val))

    def build():
        c = NFN_CHANNELS
        return torch.nn.Sequential(
            HNPLinear(spec, 1, c),
            TupleOp(torch.nn.ReLU()),
            HNPLinear(spec, c, c),
            TupleOp(torch.nn.ReLU()),
            HNPPool(spec),
            torch.nn.Flatten(),
            torch.nn.Linear(c * HNPPool.get_num_outs(spec), HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, 1),
        )

    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's torch RNG
        torch.manual_seed(seed)
        start = build()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: one thread is several times faster on a loaded CPU; restored below
    try:
        return _nfn_adam(start, train_x, val_x, test_x, y_train_t, y_val_t, epochs, lr)
    finally:
        torch.set_num_threads(threads)


def _nfn_adam(start, train_x, val_x, test_x, y_train_t, y_val_t, epochs, lr) -> tuple[np.ndarray, float]:
    import copy

    import torch

    best, best_model = np.inf, start
    for l2 in L2_GRID:
        model = copy.deepcopy(start)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.mean((model(train_x)[:, 0] - y_train_t) ** 2) + l2 * sum((w**2).sum() for w in weights)
            loss.backward()
            opt.step()
            with torch.no_grad():
                val = float(torch.mean((model(val_x)[:, 0] - y_val_t) ** 2))
            if val < best:
                best, best_model = val, copy.deepcopy(model)
    with torch.no_grad():
        return best_model(test_x)[:, 0].numpy(), best


def evaluate_metanets(params: dict, target, kinds=DEFAULT_KINDS, seeds=range(5), epochs: int = 1000) -> dict[str, dict]:
    """Every metanet kind over ``seeds``: mean and std of test R^2 and Kendall's tau, and the runs. A kind that
    cannot read these networks (``nfn`` on a W-Asym layout) gets ``{"not_applicable": why}`` instead."""
    out: dict[str, dict] = {}
    for kind in kinds:
        if kind == "nfn":
            try:
                nfn_layers(params)
            except ValueError as e:
                out[kind] = {"not_applicable": str(e)}
                continue
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
