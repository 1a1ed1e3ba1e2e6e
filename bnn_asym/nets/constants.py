"""Seeded constants of asymmetric networks: W-Asym masks and fixed values, FiGLU matrices.

Every constant comes from ``numpy.random.SeedSequence([seed, node.index, stream])``: the spec's seed
and the node's index alone, never Python's ``hash()``, so two processes, two machines and the torch
and JAX backends all see the same numbers. Masks are drawn so that the rows of each layer's mask are
distinct whenever the layer has enough possible patterns (``comb(units, n_fix) >= rows``), which is the
condition of the paper's no-automorphism theorem; ``mask_rows_distinct`` reports it per layer.
"""

from __future__ import annotations

import hashlib
from itertools import combinations
from math import comb

import numpy as np

from .graph import Act, Conv, Dense, walk

# Separate random streams per node, so adding a constant kind never shifts another's numbers.
STREAM_MASK = 0
STREAM_FIXED_VALUES = 1
STREAM_FIGLU = 2
STREAM_INIT = 3
STREAM_INIT_BIAS = 4

DEFAULT_KAPPA = 0.5
DEFAULT_FIX_FRACTION = 1 / 32
# Patterns are enumerated exactly below this count; above it, rejection sampling is fast.
_ENUMERATE_LIMIT = 200_000


def node_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index), int(stream)])))


def default_n_fix(units: int, rows: int) -> int:
    """The default number of fixed units (entries, or filters) per row.

    About 1/32 of the row, at least 1, raised until ``rows`` distinct masks exist (while that is
    possible); a row of one unit cannot fix anything and keep a free entry, so it gets 0.
    With ``units=256`` this gives the paper's BNN setting (8 fixed entries per row, kappa 0.5).
    """
    if units < 2:
        return 0
    n = min(max(1, round(units * DEFAULT_FIX_FRACTION)), units - 1)
    while comb(units, n) < rows and n < units // 2:
        n += 1
    return n


def sample_fixed_patterns(rng: np.random.Generator, rows: int, units: int, n_fix: int) -> tuple[np.ndarray, bool]:
    """``rows`` sorted index sets of size ``n_fix`` out of ``range(units)``; distinct when possible.

    Returns the (rows, n_fix) int array and whether all rows are distinct. When fewer than ``rows``
    patterns exist, every pattern is used as evenly as possible (rows then differ only in fixed values).
    """
    n_patterns = comb(units, n_fix)
    if n_patterns <= _ENUMERATE_LIMIT:
        patterns = np.array(list(combinations(range(units), n_fix)), dtype=np.int64).reshape(n_patterns, n_fix)
        if n_patterns >= rows:
            chosen = rng.choice(n_patterns, size=rows, replace=False)
        else:
            full_rounds = np.tile(np.arange(n_patterns), rows // n_patterns)
            rest = rng.choice(n_patterns, size=rows % n_patterns, replace=False)
            chosen = rng.permutation(np.concatenate([full_rounds, rest]))
        return patterns[chosen], n_patterns >= rows
    seen: set[tuple[int, ...]] = set()
    out = np.empty((rows, n_fix), dtype=np.int64)
    i = 0
    while i < rows:
        row = tuple(sorted(rng.choice(units, size=n_fix, replace=False).tolist()))
        if row in seen:
            continue
        seen.add(row)
        out[i] = row
        i += 1
    return out, True


def fixed_entries(
    seed: int, index: int, rows: int, fan_in: int, n_fix: int, kappa: float, block: int = 1
) -> dict[str, np.ndarray]:
    """Fixed positions and values of one W-Asym weight whose rows are flattened to ``fan_in`` entries.

    ``block > 1`` fixes whole consecutive blocks (conv filters of ``block = k*k`` entries): ``n_fix``
    then counts blocks. Returns fixed_index (rows, n_fix * block), fixed_value (same shape, ~ kappa *
    N(0, 1)) and mask_rows_distinct.
    """
    units = fan_in // block
    patterns, distinct = sample_fixed_patterns(node_rng(seed, index, STREAM_MASK), rows, units, n_fix)
    # A chosen block c covers the flattened positions c*block ... c*block + block - 1.
    fixed_index = (patterns[:, :, None] * block + np.arange(block)[None, None, :]).reshape(rows, -1)
    values = kappa * node_rng(seed, index, STREAM_FIXED_VALUES).standard_normal(fixed_index.shape)
    return {"fixed_index": fixed_index, "fixed_value": values, "mask_rows_distinct": np.array(distinct)}


def weight_constants(seed: int, layer: Dense | Conv) -> dict[str, np.ndarray]:
    """Fixed positions (in the row flattened as ``in x k x k``) and fixed values of one W-Asym layer."""
    block = layer.kernel * layer.kernel if isinstance(layer, Conv) and layer.mask_kind == "filter" else 1
    return fixed_entries(seed, layer.index, layer.d_out, layer.fan_in, layer.n_fix, layer.kappa, block)


def figlu_matrix(seed: int, act: Act) -> np.ndarray:
    """FiGLU's fixed F: Gaussian with std ``scale / sqrt(d)``, or ``scale`` when ``act.fan_scaled`` is False
    (the paper's reference code draws F ~ N(0, 1), which gives near-hard gates at large d)."""
    d = act.features
    std = act.scale / np.sqrt(d) if act.fan_scaled else act.scale
    return node_rng(seed, act.index, STREAM_FIGLU).standard_normal((d, d)) * std


def free_index(fixed_index: np.ndarray, fan_in: int) -> np.ndarray:
    """Positions of the free entries of each row, increasing; shape (rows, fan_in - n_fixed)."""
    rows = fixed_index.shape[0]
    is_fixed = np.zeros((rows, fan_in), dtype=bool)
    np.put_along_axis(is_fixed, fixed_index, True, axis=1)
    return np.nonzero(~is_fixed)[1].reshape(rows, -1)


def gather_index(fixed_index: np.ndarray, fan_in: int) -> np.ndarray:
    """Index that rebuilds a full row from ``concat(free_entries, fixed_values)``.

    Free entries sit at the positions not in ``fixed_index``, in increasing order. Returns the
    (rows, fan_in) array ``g`` with ``row[j] = concat(free, fixed)[g[j]]``.
    """
    order = np.concatenate([free_index(fixed_index, fan_in), fixed_index], axis=1)
    return np.argsort(order, axis=1, kind="stable")


def build_constants(seed: int, nodes) -> dict[str, np.ndarray]:
    """All constants of a graph, keyed ``"<node>.<what>"`` (what: fixed_index, fixed_value, figlu, ...).

    The arrays are read-only: a spec caches them, and every backend copies what it keeps."""
    out: dict[str, np.ndarray] = {}
    for node in walk(nodes):
        if isinstance(node, (Dense, Conv)) and node.n_fix > 0:
            for key, value in weight_constants(seed, node).items():
                out[f"{node.name}.{key}"] = value
        elif isinstance(node, Act) and node.kind == "figlu":
            out[f"{node.name}.figlu"] = figlu_matrix(seed, node)
    return read_only(out)


def read_only(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Copies of ``arrays`` that refuse in-place writes (cached constants must never change)."""
    out = {}
    for k, v in arrays.items():
        a = np.array(v, copy=True)
        a.flags.writeable = False
        out[k] = a
    return out


def digest(constants: dict[str, np.ndarray]) -> str:
    """A sha256 over names, dtypes, shapes and bytes: equal digests mean identical constants."""
    h = hashlib.sha256()
    for name in sorted(constants):
        a = np.ascontiguousarray(constants[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
