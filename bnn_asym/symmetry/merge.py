"""Model merging: one network from k >= 2 independently trained ones of the same spec.

Methods (``METHODS``):

- ``naive``: the average of the parents' free parameters. For W-Asym networks that share their fixed entries
  this is what the paper's LMC result predicts will work without alignment.
- ``weight_matching``: every parent after the first permuted onto the first by weight matching (Git Re-Basin,
  Ainsworth et al. 2023), then averaged. For a standard network alignment leaves each parent's function
  unchanged; an asymmetric network has no such symmetry (its result is reported, not prevented).
- ``repair``: weight matching, then REPAIR (Jordan et al. 2023): the merged network's preactivations have
  lost variance ("variance collapse"), so each hidden layer's rows are rescaled and its bias shifted, layer
  by layer from the input, until every unit's mean and standard deviation on ``X`` equal the average of the
  aligned parents' -- the renormalisation a BatchNorm reset would do. It rescales whole weight rows, which
  fixed W-Asym entries do not allow, and it needs networks without normalisation layers (a norm layer resets
  the statistics itself).

``merge_scores`` puts a merge in numbers: the merged network's loss and accuracy, the parents' mean loss and
accuracy, the barrier (merged loss minus the parents' mean loss; for two parents the midpoint barrier of LMC),
and the accuracy of the ensemble of the parents (their averaged probabilities), of which the merged network
keeps ``accuracy_share``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("naive", "weight_matching", "repair")


@dataclass
class MergeResult:
    method: str
    params: dict[str, np.ndarray]  # the merged network's free parameters
    parents: list[dict[str, np.ndarray]]  # the parents as averaged (aligned for weight_matching and repair)


def _check_parents(spec, parents) -> list[dict[str, np.ndarray]]:
    parents = list(parents)
    if len(parents) < 2:
        raise ValueError(f"merging needs at least 2 networks; got {len(parents)}")
    names = [p.name for p in spec.layout]
    out = []
    for i, params in enumerate(parents):
        if not isinstance(params, dict) or set(params) != set(names):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"network {i} does not have this spec's free parameters {names}; got {got}")
        arrays = {k: np.asarray(params[k], np.float64) for k in names}
        for p in spec.layout:
            if arrays[p.name].shape != tuple(p.shape):
                raise ValueError(
                    f"network {i}: {p.name} has shape {arrays[p.name].shape}; this spec's is {tuple(p.shape)}"
                )
        out.append(arrays)
    return out


def merge(spec, parents, method: str = "naive", X=None, seed: int = 0) -> MergeResult:
    """Merge ``parents`` (free-parameter dicts of networks of ``spec``) by ``method``; ``X``: the inputs whose
    preactivation statistics ``repair`` matches (training inputs). Returns the merged free parameters (float32)
    and the parents as they were averaged."""
    from .weight_matching import weight_matching

    if method not in METHODS:
        raise ValueError(f"merge method={method!r} is not valid; accepted: {', '.join(METHODS)}")
    parents = _check_parents(spec, parents)
    if method == "repair":
        _check_repairable(spec, X)
    if method != "naive":
        parents = [parents[0]] + [weight_matching(spec, parents[0], p, seed=seed).aligned for p in parents[1:]]
        parents = [{k: np.asarray(v, np.float64) for k, v in p.items()} for p in parents]
    merged = {k: np.mean([p[k] for p in parents], axis=0) for k in parents[0]}
    if method == "repair":
        merged = _repair(spec, merged, parents, np.asarray(X))
    return MergeResult(method, {k: v.astype(np.float32) for k, v in merged.items()}, parents)


# ----- REPAIR -------------------------------------------------------------------------------------------------
def _top_level(spec) -> tuple:
    return tuple(spec.graph())


def _check_repairable(spec, X) -> None:
    from ..nets.graph import Act, Dense, Flatten

    nodes = _top_level(spec)
    if not all(isinstance(n, (Dense, Act, Flatten)) for n in nodes):
        kinds = sorted({type(n).__name__ for n in nodes if not isinstance(n, (Dense, Act, Flatten))})
        raise ValueError(
            f"method='repair' supports networks of dense layers and activations (MLPs without normalisation); this "
            f"one has {', '.join(kinds)} layers -- a normalisation layer resets the statistics REPAIR corrects"
        )
    if any(isinstance(n, Dense) and n.n_fix > 0 for n in nodes):
        raise ValueError(
            "method='repair' rescales whole weight rows, which a W-Asym network's fixed entries do not allow; merge "
            "W-Asym networks with method='naive'"
        )
    if X is None or np.ndim(X) != 2 or len(X) < 2:
        raise ValueError("method='repair' needs X: at least 2 rows of inputs (N, features) to match statistics on")


def _preactivations(spec, params: dict, X: np.ndarray, upto: int):
    """The output of the top-level nodes ``[0, upto]`` (a Dense node's preactivation), float64 torch."""
    import torch

    from ..nets.forward import prepared_constants, run
    from ..nets.torch import TorchOps

    consts = {k: torch.tensor(v) for k, v in prepared_constants(spec).items()}
    tensors = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()}
    h = torch.as_tensor(X, dtype=torch.float64).reshape((len(X),) + tuple(spec.input_shape))
    with torch.no_grad():
        return run(_top_level(spec)[: upto + 1], tensors, consts, h, TorchOps).numpy()


def _repair(spec, merged: dict, parents: list[dict], X: np.ndarray) -> dict:
    from ..nets.graph import Dense

    nodes = _top_level(spec)
    hidden = [i for i, n in enumerate(nodes) if isinstance(n, Dense)][:-1]  # the output layer is left alone
    merged = {k: v.copy() for k, v in merged.items()}
    for i in hidden:
        name = nodes[i].name
        stats = [_preactivations(spec, p, X, i) for p in parents]
        target_mean = np.mean([s.mean(0) for s in stats], axis=0)
        target_std = np.mean([s.std(0) for s in stats], axis=0)
        current = _preactivations(spec, merged, X, i)
        mean, std = current.mean(0), current.std(0)
        gain = np.where(std > 1e-12, target_std / np.maximum(std, 1e-12), 1.0)  # a dead unit stays as it is
        merged[f"{name}.weight"] = merged[f"{name}.weight"] * gain[:, None]
        if f"{name}.bias" in merged:  # without a bias only the spread can be matched
            shifted = (merged[f"{name}.bias"] - mean) * gain
            merged[f"{name}.bias"] = shifted + np.where(std > 1e-12, target_mean, mean)
    return merged


# ----- scoring ------------------------------------------------------------------------------------------------
def merge_scores(spec, result: MergeResult, X, y) -> dict[str, float]:
    """The merged network against its parents on (X, y) (classification): losses, accuracies, barrier, and the
    accuracy of the ensemble of the parents."""
    from .interpolation import _losses

    stacked = {
        k: np.stack([result.params[k]] + [p[k] for p in result.parents]).astype(np.float32) for k in result.params
    }
    loss, acc = _losses(spec, stacked, X, y, "classification")
    probs = [_probabilities(spec, p, X) for p in result.parents]
    ensemble_acc = float(np.mean(np.mean(probs, axis=0).argmax(-1) == np.asarray(y)))
    return {
        "merged_loss": float(loss[0]),
        "merged_accuracy": float(acc[0]),
        "parents_loss": float(loss[1:].mean()),
        "parents_accuracy": float(acc[1:].mean()),
        "barrier": float(loss[0] - loss[1:].mean()),
        "ensemble_accuracy": ensemble_acc,
        "accuracy_share": float(acc[0] / ensemble_acc) if ensemble_acc > 0 else float("nan"),
    }


def _probabilities(spec, params: dict, X) -> np.ndarray:
    from ..posterior import class_probabilities

    params32 = {k: np.asarray(v, np.float32) for k, v in params.items()}
    return class_probabilities(np.asarray(spec.apply_jax(params32, np.asarray(X, np.float32))), "categorical")
