"""One way to build a network from a description that does not depend on the data: ``NetworkConfig`` (family,
widths or depth, norm, init scheme, ...) plus the data's input shape and output count.

The command line (``bnn-asym fit --model``), the benchmark suites (``[[networks]]``) and the LMC / MLI runners
all build their networks here, so a family means the same network everywhere and its defaults live in one
table (``FAMILY_DEFAULTS``):

    mlp     hidden (16, 16), no norm
    cnn     channels (16, 32), no dense hidden layer, flatten head, no norm
    resnet  depth 8 (6n + 2), width 0.5, GroupNorm

``preset`` builds one of the paper's networks instead: "paper_lmc" (its LMC MLP: 784-512-512-512-10 with
LayerNorm, n_fix 64/64/64/256, kappa 1/1/.5/.25), "paper_bnn" (its BNN MLP: ``depth`` weight layers of width
256, LayerNorm, 8 fixed per row at kappa 0.5) or "paper_resnet20" (ResNet-20 with its per-layer n_fix, kappa 2).

>>> config = NetworkConfig("mlp", hidden=(32, 32))
>>> build_network(config, (64,), 10, "w_asym").num_free_params > 0
True
>>> config.label()
'mlp-3x32'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..validate import check_fields, field, integer, number, one_of, optional, sequence_of
from .spec import CNN, FIGLU_INITS, INIT_SCHEMES, MLP, NORMS, SYMMETRIES, NetSpec, ResNet

FAMILIES = ("mlp", "cnn", "resnet")
PRESET_FAMILY = {"paper_lmc": "mlp", "paper_bnn": "mlp", "paper_resnet20": "resnet"}
PRESETS = tuple(PRESET_FAMILY)
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": (16, 16), "norm": "none"},
    "cnn": {"channels": (16, 32), "hidden": (), "norm": "none", "head": "flatten"},
    "resnet": {"depth": 8, "width": 0.5, "norm": "group"},
}
_WIDTHS = sequence_of(integer(1), "a list of integers >= 1")


@dataclass(frozen=True)
class NetworkConfig:
    """A network family and its shape; ``None`` fields take the family's default (``FAMILY_DEFAULTS``)."""

    family: str = field("mlp", one_of(*FAMILIES), "network family")
    hidden: tuple | None = field(None, optional(_WIDTHS), "mlp: hidden widths; cnn: dense widths after the convs")
    channels: tuple | None = field(None, optional(_WIDTHS), "cnn: conv widths")
    depth: int | None = field(None, optional(integer(2)), "resnet: 6n + 2; preset paper_bnn: weight layers")
    width: float | None = field(None, optional(number(0.0)), "resnet: width multiplier")
    norm: str | None = field(None, optional(one_of(*NORMS)), "normalisation layers")
    head: str | None = field(None, optional(one_of("flatten", "global_avg")), "cnn: flatten or global average pool")
    init: str = field("kaiming_normal", one_of(*INIT_SCHEMES), "init scheme of the free parameters")
    figlu_init: str = field("scaled", one_of(*FIGLU_INITS), "sigma-Asym: FiGLU matrix scaled by 1/sqrt(d) or not")
    seed: int = field(0, integer(0), "seed of the network's fixed constants (masks, fixed values, FiGLU)")
    n_fix: object = None  # W-Asym only: fixed entries per row (one value or one per weight layer; None: default)
    kappa: object = None  # W-Asym only: scale of the fixed values (None: default)
    preset: str | None = field(None, optional(one_of(*PRESETS)), "one of the paper's networks")

    def __post_init__(self):
        check_fields(self, "network")
        if self.preset is not None and PRESET_FAMILY[self.preset] != self.family:
            family = PRESET_FAMILY[self.preset]
            raise ValueError(f"network preset={self.preset!r} is a {family} network; accepted with family={family!r}")

    def resolved(self) -> NetworkConfig:
        """The config with the family's defaults filled in."""
        defaults = {k: v for k, v in FAMILY_DEFAULTS[self.family].items() if getattr(self, k) is None}
        return dataclasses.replace(self, **defaults)

    def label(self) -> str:
        """A short name for tables: ``mlp-3x16`` (3 weight layers of 16), ``mlp-64-32``, ``cnn-c16-32``,
        ``resnet-8x0.5``, with any non-default norm, init scheme and FiGLU init appended."""
        r = self.resolved()
        if r.preset:
            shape = r.preset.replace("_", "-")
        elif r.family == "mlp":
            hidden = tuple(r.hidden or ())
            shape = (
                f"{len(hidden) + 1}x{hidden[0]}" if len(set(hidden)) == 1 else "-".join(map(str, hidden)) or "linear"
            )
        elif r.family == "cnn":
            shape = "c" + "-".join(map(str, r.channels or ())) + "".join(f"-fc{h}" for h in r.hidden or ())
        else:
            shape = f"{r.depth}x{r.width:g}"
        default_norm = FAMILY_DEFAULTS[r.family].get("norm")
        extras = [
            r.norm if r.norm != default_norm else "",
            r.init if r.init != "kaiming_normal" else "",
            "figlu-unscaled" if r.figlu_init != "scaled" else "",
        ]
        name = r.family if not r.preset else ""
        return "-".join(x for x in [name + ("-" if name else "") + shape, *extras] if x)


def build_network(config: NetworkConfig, input_shape: tuple, n_out: int, symmetry: str) -> NetSpec:
    """The network ``config`` describes, for inputs of ``input_shape`` and ``n_out`` outputs."""
    one_of(*SYMMETRIES).check(symmetry, "symmetry")
    c = config.resolved()
    inits: dict[str, Any] = dict(seed=c.seed, init_scheme=c.init, figlu_init=c.figlu_init)
    common: dict[str, Any] = dict(symmetry=symmetry, **inits)
    if symmetry == "w_asym":
        common.update(n_fix=c.n_fix, kappa=c.kappa)
    shape: dict[str, Any] = {k: getattr(c, k) for k in FAMILY_DEFAULTS[c.family]}  # the family's fields, resolved
    image = len(input_shape) == 3
    if c.family != "mlp" and not image:
        raise ValueError(
            f"network family {c.family!r} needs image inputs (channels, height, width); got input shape "
            f"{tuple(input_shape)}"
        )
    d_in = int(input_shape[0]) if not image else int(input_shape[0] * input_shape[1] * input_shape[2])
    if c.preset == "paper_lmc":
        lmc: dict[str, Any] = dict(n_fix=(64, 64, 64, 256), kappa=(1.0, 1.0, 0.5, 0.25)) if symmetry == "w_asym" else {}
        return MLP(d_in, (512, 512, 512), n_out, norm="layer", symmetry=symmetry, **inits, **lmc)
    if c.preset == "paper_bnn":  # the preset's own norm (LayerNorm) unless one is given
        return MLP.paper_bnn(d_in, n_out, depth=c.depth or 8, symmetry=symmetry, norm=config.norm or "layer", **inits)
    if c.preset == "paper_resnet20":
        return ResNet.paper_resnet20(symmetry, tuple(input_shape), n_out, norm=config.norm or "group", **inits)
    if c.family == "mlp":
        return MLP(d_in, out_features=n_out, **shape, **common)
    if c.family == "cnn":
        return CNN(tuple(input_shape), out_features=n_out, **shape, **common)
    return ResNet(tuple(input_shape), n_out, **shape, **common)


def network_for_data(config: NetworkConfig, ds, symmetry: str) -> NetSpec:
    """``build_network`` for a ``datasets.Dataset``: its input shape, and its classes (1 output for regression)."""
    n_out = ds.n_classes if ds.task == "classification" else 1
    shape = ds.input_shape if config.family != "mlp" else (ds.n_features,)
    return build_network(config, shape, n_out, symmetry)


__all__ = ["FAMILIES", "FAMILY_DEFAULTS", "PRESETS", "NetworkConfig", "build_network", "network_for_data"]
