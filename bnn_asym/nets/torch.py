"""torch backend: a pure ``apply(spec, params, x)`` (works with ``torch.func``), an ``nn.Module`` view
for ordinary optimisers, and ``asymmetrize`` for a user's own torch modules.

>>> import torch, bnn_asym
>>> net = bnn_asym.MLP(4, (16,), 3, symmetry="w_asym")
>>> module = net.torch_module(seed=0)            # nn.Module whose parameters are the free entries
>>> module(torch.zeros(2, 4)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .constants import figlu_matrix, fixed_entries, free_index, gather_index
from .forward import forward, prepared_constants
from .graph import Act


class TorchOps:
    reshape = staticmethod(torch.reshape)
    relu = staticmethod(torch.relu)
    sigmoid = staticmethod(torch.sigmoid)
    rsqrt = staticmethod(torch.rsqrt)

    @staticmethod
    def cast_like(c, like):
        return c.to(dtype=like.dtype, device=like.device)

    @staticmethod
    def concat_last(a, b):
        return torch.cat([a, b], dim=-1)

    @staticmethod
    def take_last(a, idx):
        return torch.take_along_dim(a, idx.to(a.device), dim=-1)

    @staticmethod
    def mean_last(a):
        return a.mean(dim=-1, keepdim=True)

    @staticmethod
    def mean_axes(a, axes):
        return a.mean(dim=axes)

    @staticmethod
    def linear(h, w, b):
        return F.linear(h, w, b)

    @staticmethod
    def conv2d(h, w, b, stride, padding):
        return F.conv2d(h, w, b, stride=stride, padding=padding)

    @staticmethod
    def channel_mix(h, f):
        if h.ndim == 2:
            return h @ f.T
        return torch.einsum("dc,nchw->ndhw", f, h)


def _to_torch(consts: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    """Tensors that own their memory (the spec's cached constants are read-only numpy arrays)."""
    return {k: torch.tensor(v, device=device) for k, v in consts.items()}


def _constants(spec, device) -> dict[str, torch.Tensor]:
    cache = spec.__dict__.setdefault("_torch_constants", {})
    key = str(device)
    if key not in cache:
        cache[key] = _to_torch(prepared_constants(spec), device)
    return cache[key]


def apply(spec, params: dict, x):
    """Network output for inputs ``x`` ((N, *input_shape) or flat (N, D)); params: name -> tensor."""
    first = next(iter(params.values()))
    x = torch.as_tensor(x, device=first.device)
    if x.dtype != first.dtype:
        x = x.to(first.dtype)
    return forward(spec, params, _constants(spec, first.device), x, TorchOps)


def _safe(name: str) -> str:
    return name.replace(".", "__")


class TorchNet(nn.Module):
    """``nn.Module`` view of a spec: its parameters are exactly the free parameters of the layout.

    Fixed W-Asym entries and FiGLU matrices are buffers, outside ``parameters()``, so optimisers and
    weight decay can never change them.
    """

    def __init__(self, spec, seed: int = 0, dtype=None, params: dict | None = None):
        super().__init__()
        self.spec = spec
        dtype = dtype or torch.get_default_dtype()
        init = params if params is not None else spec.init(seed)
        spec.layout.check(init)
        self.free = nn.ParameterDict()
        for p in spec.layout:  # in layout order (a ParameterDict built from a dict sorts its keys)
            self.free[_safe(p.name)] = nn.Parameter(torch.tensor(np.array(init[p.name])).to(dtype))
        consts = _to_torch(prepared_constants(spec), "cpu")  # copies: load_state_dict writes into buffers
        self._constant_names = tuple(consts)
        for k, v in consts.items():
            self.register_buffer(_safe(k), v)

    def params(self) -> dict[str, torch.Tensor]:
        """Free parameters keyed by their layout names (``fc0.weight`` ...)."""
        return {p.name: self.free[_safe(p.name)] for p in self.spec.layout}

    def constants(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, _safe(k)) for k in self._constant_names}

    def forward(self, x):
        return forward(self.spec, self.params(), self.constants(), torch.as_tensor(x).to(self.free_dtype), TorchOps)

    @property
    def free_dtype(self):
        return next(iter(self.free.values())).dtype

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.params().items()}


# ---------------------------------------------------------------------------------------------------
# asymmetrize: W-Asym or FiGLU for a user's own torch module
class _AsymWeight(nn.Module):
    """A weight ``M * W + (1 - M) * F`` whose rows are flattened; only the free entries are parameters."""

    def __init__(self, weight: torch.Tensor, bias, n_fix: int, kappa: float, seed: int, index: int, block: int = 1):
        super().__init__()
        w = weight.detach()
        rows = w.shape[0]
        flat = w.reshape(rows, -1)
        fan_in = flat.shape[1]
        c = fixed_entries(seed, index, rows, fan_in, n_fix, kappa, block)
        free_positions = free_index(c["fixed_index"], fan_in)
        self.weight_free = nn.Parameter(torch.take_along_dim(flat, torch.as_tensor(free_positions), dim=1).clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.register_buffer("fixed_value", torch.as_tensor(c["fixed_value"]))
        self.register_buffer("gather", torch.as_tensor(gather_index(c["fixed_index"], fan_in)))
        self.weight_shape = tuple(w.shape)
        self.mask_rows_distinct = bool(c["mask_rows_distinct"])

    def effective_weight(self):
        full = TorchOps.take_last(
            TorchOps.concat_last(self.weight_free, TorchOps.cast_like(self.fixed_value, self.weight_free)), self.gather
        )
        return full.reshape(self.weight_shape)


class AsymLinear(_AsymWeight):
    """nn.Linear with W-Asym weights."""

    def __init__(self, layer: nn.Linear, n_fix: int, kappa: float, seed: int, index: int):
        super().__init__(layer.weight, layer.bias, n_fix, kappa, seed, index)

    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


class AsymConv2d(_AsymWeight):
    """nn.Conv2d with W-Asym weights (rows = output channels, flattened over in_channels x kh x kw)."""

    def __init__(self, layer: nn.Conv2d, n_fix: int, kappa: float, seed: int, index: int, block: int = 1):
        super().__init__(layer.weight, layer.bias, n_fix, kappa, seed, index, block)
        self.conv_args: dict[str, Any] = dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
        )

    def forward(self, x):
        return F.conv2d(x, self.effective_weight(), self.bias, **self.conv_args)


class FiGLU(nn.Module):
    """``sigmoid(F x) * x`` with a fixed Gaussian F (std scale / sqrt(d)); over channels for (N, C, H, W)."""

    def __init__(self, features: int, seed: int, index: int, scale: float = 1.0):
        super().__init__()
        f = figlu_matrix(seed, Act("figlu", "figlu", features, index, scale))
        self.register_buffer("matrix", torch.as_tensor(f))  # float64: cast at use, never rounded early

    def forward(self, x):
        f = self.matrix.to(x.dtype)
        return torch.sigmoid(TorchOps.channel_mix(x, f)) * x


_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Softplus, nn.Mish)


def asymmetrize(
    module: nn.Module,
    kind: str = "w",
    n_fix=None,
    kappa: float | None = None,
    seed: int = 0,
    mask_kind: str = "entry",
    figlu_scale: float = 1.0,
) -> nn.Module:
    """Make a user's torch module asymmetric, in place, and return it.

    kind="w": every nn.Linear / nn.Conv2d becomes W-Asym (free entries keep their current values).
    kind="sigma": every activation module (ReLU, GELU, SiLU, Tanh, ...) becomes FiGLU over the
    features of the preceding Linear/Conv2d. n_fix: None (the default rule), an int, or a list with one
    value per Linear/Conv2d. Constants are keyed by (seed, position among the replaced layers in module
    order), the same rule as the specs: an ``nn.Sequential(Linear, ReLU, Linear)`` asymmetrized here
    computes what ``MLP(..., symmetry="w_asym", seed=seed)`` computes with the same free weights.
    Activations called functionally (``F.relu``) cannot be replaced: use activation modules.

    >>> m = asymmetrize(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), kind="w", seed=0)
    >>> sum(p.numel() for p in m.parameters()) < 4 * 8 + 8 + 8 * 2 + 2
    True
    """
    from .constants import DEFAULT_KAPPA, default_n_fix

    if kind not in ("w", "sigma"):
        raise ValueError(f"kind={kind!r} is not valid; accepted: 'w' (W-Asym weights), 'sigma' (FiGLU)")
    if mask_kind not in ("entry", "filter"):
        raise ValueError(f"mask_kind={mask_kind!r} is not valid; accepted: 'entry', 'filter'")
    named = [(name, m) for name, m in module.named_modules() if name]
    layers = [(n, m) for n, m in named if isinstance(m, (nn.Linear, nn.Conv2d))]
    if kind == "w" and not layers:
        raise ValueError("the module has no nn.Linear or nn.Conv2d layers to make W-Asym")
    if isinstance(n_fix, (list, tuple)) and len(n_fix) != len(layers):
        raise ValueError(f"n_fix has {len(n_fix)} entries; accepted: one int, or one per Linear/Conv2d ({len(layers)})")
    replacements: dict[str, nn.Module] = {}
    index, features, layer_i = 0, None, 0
    for name, m in named:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            features = m.out_features if isinstance(m, nn.Linear) else m.out_channels
            if kind == "w":
                fan_in = m.weight[0].numel()
                block = (
                    m.weight[0, 0].numel()
                    if isinstance(m, nn.Conv2d) and mask_kind == "filter" and m.weight.shape[1] > 1
                    else 1
                )
                units = fan_in // block
                n = n_fix[layer_i] if isinstance(n_fix, (list, tuple)) else n_fix
                n = default_n_fix(units, m.weight.shape[0]) if n is None else n
                if not 0 <= n < units:
                    raise ValueError(f"n_fix={n} for layer {name!r} is out of range; accepted: 0 <= n_fix < {units}")
                k = DEFAULT_KAPPA if kappa is None else kappa
                if n > 0:
                    replacements[name] = (
                        AsymLinear(m, n, k, seed, index)
                        if isinstance(m, nn.Linear)
                        else AsymConv2d(m, n, k, seed, index, block)
                    )
            layer_i += 1
            index += 1
        elif kind == "sigma" and isinstance(m, _ACTIVATIONS):
            if features is None:
                raise ValueError(f"activation {name!r} comes before any Linear/Conv2d: its width is unknown")
            replacements[name] = FiGLU(features, seed, index, figlu_scale)
            index += 1
    if kind == "sigma" and not replacements:
        raise ValueError(
            "the module has no activation modules to replace by FiGLU (functional activations such as "
            "F.relu cannot be replaced; use nn.ReLU and friends)"
        )
    for name, new in replacements.items():
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, new)
    return module
