"""Network specs: MLP, CNN and ResNet, each standard, W-Asym or sigma-Asym.

A spec is a frozen, JSON-serialisable description. Everything else derives from it:
``spec.graph()`` (the layer graph), ``spec.constants()`` (masks, fixed values, FiGLU matrices),
``spec.layout()`` (the free parameters), and the JAX / torch ``apply`` functions.

>>> import bnn_asym
>>> net = bnn_asym.MLP(in_features=4, hidden=(16, 16), out_features=3, symmetry="w_asym", seed=0)
>>> params = net.init(seed=1)
>>> net.apply_jax(params, np.zeros((2, 4), np.float32)).shape
(2, 3)
"""

from __future__ import annotations

import base64
import json
from dataclasses import KW_ONLY, dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..validate import Rule, check_fields, field, integer, invalid, number, one_of
from . import constants as C
from .graph import Act, AvgPool2, Conv, Dense, Flatten, GlobalAvgPool, Norm, Residual, weight_layers
from .layout import Layout

SYMMETRIES = ("standard", "w_asym", "sigma_asym")
NORMS = ("none", "layer", "group")
MASK_KINDS = ("entry", "filter")
INIT_SCHEMES = ("kaiming_normal", "torch_default")
FIGLU_INITS = ("scaled", "unscaled")
SPEC_FORMAT_VERSION = 1


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _as_tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _widths(v) -> tuple[int, ...]:
    return (int(v),) if _is_int(v) else tuple(int(x) for x in v)


def _is_widths(v) -> bool:
    return (_is_int(v) and v >= 1) or (isinstance(v, (list, tuple)) and all(_is_int(x) and x >= 1 for x in v))


# the rules of the spec fields (validate.Rule: what is accepted, a test, the canonical form)
HIDDEN = Rule(
    "an int (one hidden layer) or a list/tuple of widths, e.g. (64, 64); () for no hidden layer", _is_widths, _widths
)
CHANNELS = Rule(
    "a non-empty list/tuple of integers >= 1",
    lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and _is_widths(v),
    _widths,
)
IMAGE_SHAPE = Rule(
    "(channels, height, width), integers >= 1",
    lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and _is_widths(v),
    _widths,
)
ODD_INT = Rule("an odd integer >= 1", lambda v: _is_int(v) and v >= 1 and v % 2 == 1, int)
PER_LAYER = Rule("one value, or one per weight layer", lambda v: True, _as_tuple)  # resolved per layer in the graph
RESNET_DEPTH = Rule(
    "6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110)", lambda v: _is_int(v) and v >= 8 and (v - 2) % 6 == 0, int
)
RESNET_WIDTH = Rule(
    "a multiplier with round(16 * width) >= 1", lambda v: number().test(v) and round(16 * v) >= 1, float
)


def check_init_scheme(value):
    """A weight-init scheme: one of INIT_SCHEMES, or a callable ``f(param: ParamInfo, rng) -> array``."""
    if callable(value) or value in INIT_SCHEMES:
        return value
    raise invalid("init", value, f"{', '.join(map(repr, INIT_SCHEMES))} or a callable f(param_info, rng) -> array")


def _scheme_name(scheme) -> str:
    """JSON form of an init scheme; a callable is recorded as ``module:qualname`` (importable ones round-trip)."""
    if isinstance(scheme, str):
        return scheme
    return f"{scheme.__module__}:{scheme.__qualname__}"


def _resolve_scheme(value: str):
    if value in INIT_SCHEMES:
        return value
    import importlib

    module, _, qualname = value.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(
            f"the spec's init scheme {value!r} cannot be imported; accepted: "
            f"{', '.join(map(repr, INIT_SCHEMES))} or an importable function 'module:name'"
        ) from None
    return check_init_scheme(obj)


class _GraphBuilder:
    """Creates graph nodes, numbering them and resolving each W-Asym layer's n_fix and kappa."""

    def __init__(self, spec: NetSpec, resolve: bool = True):
        self.spec = spec
        self.asym_w = resolve and spec.symmetry == "w_asym"
        self.sigma = spec.symmetry == "sigma_asym"
        self.n_weight_layers = 0
        self.next_index = 0

    def _index(self) -> int:
        self.next_index += 1
        return self.next_index - 1

    @staticmethod
    def _per_layer(value, layer_i: int):
        return value[layer_i] if isinstance(value, tuple) else value

    def _resolve_fix(self, name: str, units: int, rows: int, unit_word: str) -> tuple[int, float]:
        i = self.n_weight_layers
        self.n_weight_layers += 1
        if not self.asym_w:
            return 0, 0.0
        n_fix = self._per_layer(self.spec.n_fix, i)
        kappa = self._per_layer(self.spec.kappa, i)
        if n_fix is None:
            n_fix = C.default_n_fix(units, rows)
        if not isinstance(n_fix, (int, np.integer)) or isinstance(n_fix, bool) or not 0 <= n_fix < units:
            raise ValueError(
                f"n_fix={n_fix!r} for layer {name!r} (layer {i}) is out of range: it has {units} {unit_word} per row; "
                f"accepted: 0 <= n_fix < {units}"
            )
        kappa = C.DEFAULT_KAPPA if kappa is None else kappa
        if not isinstance(kappa, (int, float, np.floating)) or not np.isfinite(kappa) or kappa < 0:
            raise ValueError(f"kappa={kappa!r} for layer {name!r} is not valid; accepted: a finite number >= 0")
        return int(n_fix), float(kappa)

    def dense(self, name: str, d_in: int, d_out: int) -> Dense:
        n_fix, kappa = self._resolve_fix(name, d_in, d_out, "inputs")
        return Dense(name, d_in, d_out, n_fix, kappa, self._index())

    def conv(self, name: str, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> Conv:
        filter_mode = getattr(self.spec, "mask_kind", "entry") == "filter" and c_in > 1  # MLPs have no convs
        units = c_in if filter_mode else c_in * kernel * kernel
        n_fix, kappa = self._resolve_fix(name, units, c_out, "filters" if filter_mode else "entries")
        mask_kind = "filter" if filter_mode else "entry"
        return Conv(name, c_in, c_out, kernel, stride, padding, n_fix, kappa, mask_kind, self._index())

    def norm(self, name: str, features: int) -> list:
        kind = self.spec.norm
        if kind == "none":
            return []
        groups = getattr(self.spec, "groups", 1) if kind == "group" else 1
        if features % groups:
            raise ValueError(
                f"groups={groups} does not divide the {features} channels of layer {name!r}; "
                "accepted: a divisor of every layer's channel count"
            )
        return [Norm(name, "group" if kind == "group" else "layer", features, groups)]

    def act(self, name: str, features: int) -> Act:
        if self.sigma:
            return Act(
                name, "figlu", features, self._index(), float(self.spec.figlu_scale), self.spec.figlu_init == "scaled"
            )
        return Act(name, "relu", features)


@dataclass(frozen=True)
class NetSpec:
    """Shared behaviour of all network specs (not instantiated directly).

    Every spec is a frozen dataclass whose fields carry their rules (``validate.field``): building one checks
    each field and stores its canonical form (a list as a tuple, an int ``hidden`` as one layer), then the
    rules that tie fields together. The fields every family shares are keyword-only and come last.
    """

    family: ClassVar[str] = ""

    _: KW_ONLY
    symmetry: str = field("standard", one_of(*SYMMETRIES), "standard, w_asym or sigma_asym")
    norm: str = field("none", one_of(*NORMS), "normalisation after each hidden layer")
    n_fix: object = field(None, PER_LAYER, "W-Asym: fixed entries per row; None: about 1/32 of each row")
    kappa: object = field(None, PER_LAYER, "W-Asym: scale of the fixed values; None: 0.5")
    figlu_scale: float = field(1.0, number(0.0), "sigma-Asym: scale of the FiGLU matrix")
    seed: int = field(0, integer(0), "seed of the constants (masks, fixed values, FiGLU)")
    init_scheme: object = field("kaiming_normal", None, "init scheme of the free parameters")
    figlu_init: str = field("scaled", one_of(*FIGLU_INITS), "FiGLU matrix N(0, s^2 / d) or N(0, s^2)")

    def __post_init__(self):
        check_fields(self, self.family)
        check_init_scheme(self.init_scheme)
        self._check_shape()
        if self.symmetry != "w_asym":
            given = [p for p in ("n_fix", "kappa") if getattr(self, p) is not None]
            if given:
                verb = "apply" if len(given) > 1 else "applies"
                raise ValueError(
                    f"{' and '.join(given)} {verb} only to symmetry='w_asym' (fixed entries per row); "
                    f"this network is symmetry={self.symmetry!r}: leave {' and '.join(given)} unset"
                )
        for param in ("n_fix", "kappa"):
            value = getattr(self, param)
            if isinstance(value, tuple) and len(value) != self.num_weight_layers():
                raise ValueError(
                    f"{param} has {len(value)} entries; accepted: one value, or exactly one per weight layer "
                    f"({self.num_weight_layers()} for this {self.family})"
                )
        self.graph()  # resolves and validates every per-layer setting now, not at first use

    def _check_shape(self) -> None:
        """Family-specific rules that tie fields together (each field's own rule is already checked)."""

    # ----- derived structure -------------------------------------------------------------------
    def num_weight_layers(self) -> int:
        """Number of Dense/Conv layers: the length a per-layer n_fix or kappa tuple must have."""
        return len(weight_layers(self._build(_GraphBuilder(self, resolve=False))))

    def graph(self) -> tuple:
        cached = self.__dict__.get("_graph")
        if cached is None:
            cached = tuple(self._build(_GraphBuilder(self)))
            object.__setattr__(self, "_graph", cached)
        return cached

    def _build(self, b: _GraphBuilder) -> list:
        raise NotImplementedError

    def weight_layers(self) -> list:
        return weight_layers(self.graph())

    def constants(self) -> dict[str, np.ndarray]:
        """Masks (as fixed positions), fixed values and FiGLU matrices, keyed ``"<layer>.<what>"``."""
        cached = self.__dict__.get("_constants")
        if cached is None:
            cached = C.build_constants(self.seed, self.graph())
            object.__setattr__(self, "_constants", cached)
        return cached

    def constants_digest(self) -> str:
        return C.digest(self.constants())

    @cached_property
    def layout(self) -> Layout:
        return Layout.from_graph(self.graph())

    @property
    def num_free_params(self) -> int:
        return self.layout.size

    def check_inputs(self, X, name: str = "X", dtype=np.float32) -> np.ndarray:
        """``X`` as a (N, prod(input_shape)) array of ``dtype``; refuses what this network cannot take.

        Accepted: real numbers of shape (N, prod(input_shape)) or (N, *input_shape) (for an MLP these are
        the same: (N, in_features)); N may be 0. Complex, non-numeric and non-finite inputs are refused.
        """
        X = np.asarray(X)
        shape: tuple[int, ...] = tuple(self.input_shape)  # type: ignore[attr-defined]  # every family has one
        d = int(np.prod(shape))
        accepted = f"(N, {d})" if len(shape) == 1 else f"(N, {d}) or (N, {', '.join(map(str, shape))})"
        if np.iscomplexobj(X):
            raise ValueError(f"{name} is complex ({X.dtype}); this network takes real inputs of shape {accepted}")
        if not (np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)):
            raise ValueError(f"{name} must be numeric; got dtype {X.dtype}")
        if X.ndim < 2 or tuple(X.shape[1:]) not in ((d,), shape):
            raise ValueError(f"{name} must have shape {accepted} for this {self.family}; got {X.shape}")
        X = X.reshape(len(X), d)
        big = np.finfo(dtype).max if np.issubdtype(np.dtype(dtype), np.floating) else np.inf
        finite = np.isfinite(X)
        if finite.all() and len(X) and np.abs(X).max() > big:
            raise ValueError(
                f"{name} has values up to {np.abs(X).max():.3g}, beyond the range of {np.dtype(dtype)} "
                f"(+-{big:.3g}) that networks compute in; rescale {name} (e.g. standardise it)"
            )
        X = X.astype(dtype)
        if not np.isfinite(X).all():
            raise ValueError(
                f"{name} contains NaN or inf ({int((~np.isfinite(X)).sum())} entries); clean or impute them first"
            )
        return X

    def init(self, seed: int = 0, dtype="float32", scheme=None) -> dict[str, np.ndarray]:
        """Initial free parameters by the spec's ``init_scheme`` (or ``scheme``): "kaiming_normal" (std
        sqrt(2 / full fan-in), zero biases) or "torch_default" (PyTorch's uniform(+-1/sqrt(fan_in)) for
        weights and biases); unit norm scales and zero shifts either way."""
        return self.layout.init(seed, dtype, self.init_scheme if scheme is None else check_init_scheme(scheme))

    def with_init(self, scheme) -> NetSpec:
        """The same network (same constants) with another init scheme."""
        import dataclasses

        return dataclasses.replace(self, init_scheme=check_init_scheme(scheme))

    # ----- backends --------------------------------------------------------------------------------
    def apply_jax(self, params, x):
        from .jax import apply

        return apply(self, params, x)

    def apply_torch(self, params, x):
        from .torch import apply

        return apply(self, params, x)

    def torch_module(self, seed: int = 0, dtype=None):
        from .torch import TorchNet

        return TorchNet(self, seed=seed, dtype=dtype)

    # ----- serialisation ---------------------------------------------------------------------------
    def to_dict(self, with_constants: bool = False) -> dict:
        d = {"family": self.family, "format_version": SPEC_FORMAT_VERSION}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        d["init_scheme"] = _scheme_name(self.init_scheme)
        d["constants_digest"] = self.constants_digest()
        if with_constants:
            d["constants"] = {k: _encode_array(v) for k, v in self.constants().items()}
        return d

    def to_json(self, with_constants: bool = False) -> str:
        return json.dumps(self.to_dict(with_constants), indent=1)

    def describe(self) -> str:
        """One line per weight layer: shape, fixed entries per row, kappa, free parameters."""
        lines = [f"{self.family} ({self.symmetry}), {self.num_free_params:,} free parameters"]
        for layer in self.weight_layers():
            free = self.layout[f"{layer.name}.weight"].size
            fixed = (
                f"fixed/row={layer.fixed_per_row:<5} kappa={layer.kappa:<5g}" if layer.n_fix else "standard" + " " * 19
            )
            lines.append(f"  {layer.name:<14} {layer.weight_shape!s:<18} {fixed} free={free:,}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        ordered = sorted(fields(self), key=lambda f: bool(f.kw_only))  # the family's own fields first
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in ordered)
        return f"{type(self).__name__}({args})"


def _encode_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def _decode_array(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), dtype=d["dtype"]).reshape(d["shape"]).copy()


def spec_from_dict(d: dict, constants: dict | None = None) -> NetSpec:
    """Rebuild a spec from ``to_dict`` output; verifies (or restores) its constants.

    Constants are regenerated from the seed and compared with the saved digest. If they differ (a
    different numpy RNG, say), saved constants -- embedded in ``d`` or passed in -- are used instead;
    with none available a ValueError says so rather than silently changing the network.
    """
    if not isinstance(d, dict) or d.get("family") not in FAMILIES:
        raise ValueError(
            f"not a bnn_asym network spec (family={d.get('family') if isinstance(d, dict) else d!r}); "
            f"accepted families: {', '.join(FAMILIES)}"
        )
    cls = FAMILIES[d["family"]]
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names - {"family", "format_version", "constants_digest", "constants"}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; accepted: {sorted(names)}")
    kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    if "init_scheme" in kwargs:
        kwargs["init_scheme"] = _resolve_scheme(kwargs["init_scheme"])
    spec = cls(**kwargs)
    if constants is None and "constants" in d:
        constants = {k: _decode_array(v) for k, v in d["constants"].items()}
    saved_digest = d.get("constants_digest")
    if saved_digest is not None and spec.constants_digest() != saved_digest:
        if constants is None or C.digest(constants) != saved_digest:
            raise ValueError(
                "the constants regenerated from this spec's seed differ from the ones it was saved with "
                "(numpy's random generator changed?); load it together with its saved constants"
            )
        object.__setattr__(spec, "_constants", C.read_only(constants))
    return spec


def spec_from_json(text: str, constants: dict | None = None) -> NetSpec:
    return spec_from_dict(json.loads(text), constants)


# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class MLP(NetSpec):
    """Fully connected network: ``[Linear -> Norm? -> activation] x len(hidden) -> Linear``.

    symmetry: "standard" (ReLU), "w_asym" (fixed random entries in every weight, ReLU) or
    "sigma_asym" (FiGLU activation). n_fix / kappa: one value or one per weight layer (None: the
    default rule, ~1/32 of each row fixed at kappa 0.5). Layers with fan-in 1 cannot be W-Asym and
    stay standard under the default rule.
    """

    in_features: int = field(rule=integer(1), doc="input features")
    hidden: tuple = field((64, 64), HIDDEN, "hidden widths")
    out_features: int = field(1, integer(1), "outputs")

    family: ClassVar[str] = "MLP"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    def _build(self, b):
        nodes, d = [], self.in_features
        for i, width in enumerate(self.hidden):
            nodes.append(b.dense(f"fc{i}", d, width))
            nodes += b.norm(f"fc{i}_norm", width)
            nodes.append(b.act(f"fc{i}_act", width))
            d = width
        nodes.append(b.dense("out", d, self.out_features))
        return nodes

    @classmethod
    def paper_lmc(cls, symmetry: str = "w_asym", seed: int = 0) -> MLP:
        """The paper's LMC MLP: 784-512-512-512-10 with LayerNorm, n_fix 64/64/64/256, kappa 1/1/0.5/0.25."""
        asym: dict[str, Any] = (
            dict(n_fix=(64, 64, 64, 256), kappa=(1.0, 1.0, 0.5, 0.25)) if symmetry == "w_asym" else {}
        )
        return cls(784, (512, 512, 512), 10, symmetry=symmetry, norm="layer", seed=seed, **asym)

    @classmethod
    def paper_bnn(
        cls,
        in_features: int,
        out_features: int,
        depth: int = 8,
        symmetry: str = "w_asym",
        seed: int = 0,
        norm: str = "layer",
        width: int = 256,
        **kwargs,
    ) -> MLP:
        """The paper's BNN MLP: ``depth`` weight layers of width 256, each hidden layer LayerNorm + ReLU
        (``norm="none"`` drops the norm); W-Asym: 8 fixed entries per row, kappa 0.5. ``kwargs`` go to MLP
        (``init_scheme="torch_default"`` is what the paper's scripts used)."""
        if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 2:
            raise ValueError(f"depth={depth!r} is not valid; accepted: an integer >= 2 (weight layers)")
        asym: dict[str, Any] = dict(n_fix=8, kappa=0.5) if symmetry == "w_asym" else {}
        return cls(
            in_features, (width,) * (depth - 1), out_features, symmetry=symmetry, norm=norm, seed=seed, **asym, **kwargs
        )


@dataclass(frozen=True, repr=False)
class CNN(NetSpec):
    """Small conv net for 8x8 or 28x28 images.

    ``[Conv k x k -> Norm? -> activation -> 2x2 avg pool] per entry of channels``, then flatten (or
    global average pool with ``head="global_avg"``), ``hidden`` dense layers, and a linear output.
    mask_kind: "entry" fixes n_fix entries of each output channel's c_in x k x k weights; "filter"
    (the paper's preferred conv variant) fixes n_fix whole k x k filters (layers with a single input
    channel have one filter per row and fall back to entries).
    """

    input_shape: tuple = field((1, 8, 8), IMAGE_SHAPE, "(channels, height, width) of an input")
    channels: tuple = field((16, 32), CHANNELS, "conv widths, one 2x2-pooled block each")
    out_features: int = field(10, integer(1), "outputs")
    hidden: tuple = field((), HIDDEN, "dense widths after the conv trunk")
    kernel_size: int = field(3, ODD_INT, "conv kernel size")
    head: str = field("flatten", one_of("flatten", "global_avg"), "flatten or global average pool")
    _: KW_ONLY
    groups: int = field(1, integer(1), "GroupNorm groups (norm='group')")
    mask_kind: str = field("entry", one_of(*MASK_KINDS), "W-Asym: fix entries, or whole k x k filters")

    family: ClassVar[str] = "CNN"

    def _check_shape(self) -> None:
        h, w = self.input_shape[1:]
        for _ in self.channels:
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(
                f"input_shape={self.input_shape} is too small for {len(self.channels)} conv blocks (each halves "
                "height and width); accepted: fewer channels entries or larger images"
            )

    def _build(self, b):
        nodes = []
        c, h, w = self.input_shape
        k = self.kernel_size
        for i, width in enumerate(self.channels):
            nodes.append(b.conv(f"conv{i}", c, width, k, 1, k // 2))
            nodes += b.norm(f"conv{i}_norm", width)
            nodes.append(b.act(f"conv{i}_act", width))
            nodes.append(AvgPool2())
            c, h, w = width, h // 2, w // 2
        if self.head == "flatten":
            nodes.append(Flatten(c, h * w))
            d = c * h * w
        else:
            nodes.append(GlobalAvgPool())
            d = c
        for j, width in enumerate(self.hidden):
            nodes.append(b.dense(f"fc{j}", d, width))
            # Dense layers after the conv trunk use LayerNorm whenever the trunk is normalised.
            nodes += [Norm(f"fc{j}_norm", "layer", width)] if self.norm != "none" else []
            nodes.append(b.act(f"fc{j}_act", width))
            d = width
        nodes.append(b.dense("out", d, self.out_features))
        return nodes


@dataclass(frozen=True, repr=False)
class ResNet(NetSpec):
    """ResNet-20 style network (depth = 6n + 2): a 3x3 stem, three stages of n basic blocks with
    16w / 32w / 64w channels (stride 2 at the start of stages 2 and 3, with a 1x1 conv + norm
    shortcut), global average pooling and a linear head. ``width`` is the multiplier w;
    norm="group" (GroupNorm with ``groups`` groups) or "layer" (one group: LayerNorm over C, H, W).
    """

    input_shape: tuple = field((3, 32, 32), IMAGE_SHAPE, "(channels, height, width) of an input")
    out_features: int = field(10, integer(1), "outputs")
    depth: int = field(20, RESNET_DEPTH, "layers: 6n + 2")
    width: float = field(1.0, RESNET_WIDTH, "width multiplier: stages of 16w, 32w, 64w channels")
    _: KW_ONLY
    norm: str = field("group", one_of("group", "layer"), "GroupNorm or LayerNorm over (C, H, W)")
    groups: int = field(4, integer(1), "GroupNorm groups")
    mask_kind: str = field("entry", one_of(*MASK_KINDS), "W-Asym: fix entries, or whole k x k filters")

    family: ClassVar[str] = "ResNet"

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(max(1, round(c * self.width)) for c in (16, 32, 64))

    def _build(self, b):
        n_blocks = (self.depth - 2) // 6
        chans = self.stage_channels
        c_in = self.input_shape[0]
        nodes = [b.conv("stem", c_in, chans[0], 3, 1, 1), *b.norm("stem_norm", chans[0]), b.act("stem_act", chans[0])]
        c = chans[0]
        for s, c_out in enumerate(chans, start=1):
            for i in range(n_blocks):
                stride = 2 if (s > 1 and i == 0) else 1
                p = f"s{s}b{i}"
                main = (
                    b.conv(f"{p}_conv1", c, c_out, 3, stride, 1),
                    *b.norm(f"{p}_norm1", c_out),
                    b.act(f"{p}_act1", c_out),
                    b.conv(f"{p}_conv2", c_out, c_out, 3, 1, 1),
                    *b.norm(f"{p}_norm2", c_out),
                )
                shortcut = ()
                if stride != 1 or c != c_out:
                    shortcut = (b.conv(f"{p}_skip", c, c_out, 1, stride, 0), *b.norm(f"{p}_skip_norm", c_out))
                nodes.append(Residual(p, main, shortcut))
                nodes.append(b.act(f"{p}_act2", c_out))
                c = c_out
        nodes += [GlobalAvgPool(), b.dense("out", c, self.out_features)]
        return nodes

    @classmethod
    def paper_resnet20(
        cls, symmetry: str = "w_asym", input_shape=(3, 32, 32), out_features: int = 10, seed: int = 0, **kwargs
    ) -> ResNet:
        """ResNet-20 (width 1) with the paper's W-Asym settings: fixed entries per row stem 12, stage
        convs 36/54/72, 1x1 skips 4/6/8, head 8, kappa 2."""
        base = cls(input_shape, out_features, 20, 1.0, symmetry="standard", seed=seed, **kwargs)
        stage_conv, stage_skip = (36, 54, 72), (4, 6, 8)
        n_fix = []
        for layer in base.weight_layers():
            if layer.name == "stem":  # 12 of 27 entries for RGB; the same share for other channel counts
                n_fix.append(min(12, round(12 / 27 * layer.fan_in)))
            elif layer.name == "out":
                n_fix.append(8)
            else:
                stage = int(layer.name[1]) - 1
                n_fix.append(stage_skip[stage] if layer.name.endswith("_skip") else stage_conv[stage])
        asym: dict[str, Any] = dict(n_fix=tuple(n_fix), kappa=2.0) if symmetry == "w_asym" else {}
        return cls(
            input_shape, out_features, 20, 1.0, symmetry=symmetry, mask_kind="entry", seed=seed, **asym, **kwargs
        )


FAMILIES = {"MLP": MLP, "CNN": CNN, "ResNet": ResNet}
