"""Benchmark suites as data: a TOML (or YAML) file describes a grid, validated before anything runs.

A suite crosses engines x symmetries x networks x data sets x seeds into *cells*; each cell fits one
engine to one BNN and scores it (metrics.py) against the reference posterior of its (data, network,
prior) -- a long NUTS run computed once and reused (reference.py). Keys, with their defaults:

    name = "quick"                    # required
    description = "..."               # shown in reports
    symmetries = ["standard", "w_asym", "sigma_asym"]
    seeds = [0, 1]                    # inference seeds; the network's constants come from its own seed
    chain_method = "sequential"       # how a cell runs its chains (sequential: identical on every backend)
    metrics = ["calibration", "agreement", "convergence", "multimodality"]
    agreement_target = 0.95           # time-to-target: first checkpoint with this agreement

    [[data]]                          # one or more: an offline data set
    name = "moons"; n_samples = 400; seed = 0; test_size = 0.25

    [[networks]]                      # one or more
    family = "mlp"                    # "mlp" or "cnn"
    depth = 3; width = 16             # weight layers and hidden width (mlp) -- or hidden = [16, 16]
    norm = "none"; init = "kaiming_normal"; figlu_init = "scaled"; seed = 0
    prior_scale = 1.0                 # Prior("fan_in", prior_scale)

    [reference]                       # optional: without it, agreement metrics are skipped
    engine = "nuts"; seed = 1000; rhat_threshold = 1.01
    options = { num_warmup = 500, num_samples = 1000, num_chains = 4 }

    [[engines]]                       # one or more
    name = "mfvi"                     # a bnn_asym engine
    label = "mfvi"                    # unique within the suite (default: the engine name)
    options = { num_steps = 2000 }    # that engine's options
    init = "ensemble"                 # optional warm start / init scheme (fit's init)
    budget = { seconds = 60 }         # optional: fit's budget (steps, grad_evals, seconds)
    checkpoints = { every_steps = 200 }   # convergence curves (default: 10 points over the run)

Every key and value is checked up front; an error names the file, the key path and what is accepted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "suites"
METRIC_GROUPS = ("calibration", "agreement", "convergence", "multimodality")
FAMILIES = ("mlp", "cnn")
CHAIN_METHODS = ("sequential", "parallel", "vectorized", "auto")
SUITE_VERSION = 1  # part of every cell's key: bump when a cell's computation changes


class SuiteError(ValueError):
    """A suite file that cannot be run: the message names the key and what is accepted."""


def builtin_suites() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


@dataclass(frozen=True)
class DataSpec:
    name: str
    n_samples: int | None = None
    seed: int = 0
    test_size: float = 0.25


@dataclass(frozen=True)
class NetworkSpec:
    family: str = "mlp"
    hidden: tuple = (16, 16)
    channels: tuple = (8, 16)  # cnn
    norm: str = "none"
    init: str = "kaiming_normal"
    figlu_init: str = "scaled"
    seed: int = 0
    prior_scale: float = 1.0

    def label(self) -> str:
        if self.family == "mlp":
            widths = set(self.hidden)
            shape = (f"{len(self.hidden) + 1}x{self.hidden[0]}" if len(widths) == 1 and self.hidden
                     else "-".join(map(str, self.hidden)) or "linear")
        else:
            shape = "c" + "-".join(map(str, self.channels))
        extras = [x for x in (self.norm if self.norm != "none" else "", self.init if self.init != "kaiming_normal" else "",
                              "figlu-unscaled" if self.figlu_init != "scaled" else "") if x]
        return f"{self.family}-{shape}" + "".join(f"-{x}" for x in extras)


@dataclass(frozen=True)
class EngineSpec:
    name: str
    label: str
    options: tuple = ()  # sorted (key, value) pairs
    init: str | None = None
    budget: tuple = ()
    checkpoints: tuple = ()

    def options_dict(self) -> dict:
        return dict(self.options)


@dataclass(frozen=True)
class ReferenceSpec:
    engine: str = "nuts"
    options: tuple = (("num_chains", 4), ("num_samples", 1000), ("num_warmup", 500))
    seed: int = 1000
    rhat_threshold: float = 1.01


@dataclass(frozen=True)
class Cell:
    """One fit of the grid: everything that determines its numbers is in ``config()``."""

    suite: str
    data: DataSpec
    network: NetworkSpec
    symmetry: str
    engine: EngineSpec
    seed: int
    chain_method: str
    metrics: tuple
    agreement_target: float

    def config(self) -> dict:
        return {"version": SUITE_VERSION, "data": dataclasses.asdict(self.data),
                "network": dataclasses.asdict(self.network), "symmetry": self.symmetry,
                "engine": {"name": self.engine.name, "label": self.engine.label, "options": dict(self.engine.options),
                           "init": self.engine.init, "budget": dict(self.engine.budget),
                           "checkpoints": dict(self.engine.checkpoints)},
                "seed": self.seed, "chain_method": self.chain_method, "metrics": list(self.metrics),
                "agreement_target": self.agreement_target}

    @property
    def key(self) -> str:
        from .. import __version__

        text = json.dumps({**self.config(), "package": __version__}, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def reference_config(self, reference: ReferenceSpec) -> dict:
        """What the reference posterior of this cell depends on: data, network, symmetry, prior, settings."""
        return {"version": SUITE_VERSION, "data": dataclasses.asdict(self.data),
                "network": dataclasses.asdict(self.network), "symmetry": self.symmetry,
                "reference": {"engine": reference.engine, "options": dict(reference.options), "seed": reference.seed}}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str = ""
    data: tuple = ()
    networks: tuple = ()
    symmetries: tuple = ("standard", "w_asym", "sigma_asym")
    engines: tuple = ()
    seeds: tuple = (0,)
    reference: ReferenceSpec | None = None
    chain_method: str = "sequential"
    metrics: tuple = METRIC_GROUPS
    agreement_target: float = 0.95
    source: str = field(default="", compare=False)

    def cells(self) -> list[Cell]:
        return [Cell(self.name, d, n, s, e, seed, self.chain_method, self.metrics, self.agreement_target)
                for d in self.data for n in self.networks for s in self.symmetries for e in self.engines
                for seed in self.seeds]

    def with_overrides(self, **changes) -> "Suite":
        return dataclasses.replace(self, **changes)


# ----- loading and validation -----------------------------------------------------------------------
def _fail(source: str, path: str, problem: str) -> SuiteError:
    return SuiteError(f"suite {source}: {path}: {problem}")


def _keys(source: str, path: str, table: dict, accepted: tuple, required: tuple = ()) -> None:
    if not isinstance(table, dict):
        raise _fail(source, path, f"expected a table; got {type(table).__name__}")
    unknown = sorted(set(table) - set(accepted))
    if unknown:
        raise _fail(source, path, f"unknown key(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise _fail(source, path, f"missing key(s) {', '.join(missing)}")


def _int(source, path, value, minimum=0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(source, path, f"{value!r} is not valid; accepted: an integer >= {minimum}")
    return value


def _number(source, path, value, low=0.0, high=None, inclusive_low=False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (value <= low if not inclusive_low else value < low) or (high is not None and value > high):
        bound = f"{'>=' if inclusive_low else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise _fail(source, path, f"{value!r} is not valid; accepted: a number {bound}")
    return float(value)


def _choice(source, path, value, choices) -> str:
    if value not in choices:
        raise _fail(source, path, f"{value!r} is not valid; accepted: {', '.join(map(repr, choices))}")
    return value


def _list(source, path, value) -> list:
    if not isinstance(value, list) or not value:
        raise _fail(source, path, f"expected a non-empty list; got {value!r}")
    return value


def _data(source: str, path: str, t: dict) -> DataSpec:
    from .. import datasets

    _keys(source, path, t, ("name", "n_samples", "seed", "test_size"), ("name",))
    spec = DataSpec(_choice(source, f"{path}.name", t["name"], datasets.NAMES),
                    None if t.get("n_samples") is None else _int(source, f"{path}.n_samples", t["n_samples"], 10),
                    _int(source, f"{path}.seed", t.get("seed", 0)),
                    _number(source, f"{path}.test_size", t.get("test_size", 0.25), 0.0, 0.9))
    return spec


def _network(source: str, path: str, t: dict) -> NetworkSpec:
    from ..nets.spec import FIGLU_INITS, INIT_SCHEMES, NORMS

    _keys(source, path, t, ("family", "depth", "width", "hidden", "channels", "norm", "init", "figlu_init", "seed",
                            "prior_scale"))
    family = _choice(source, f"{path}.family", t.get("family", "mlp"), FAMILIES)
    if "hidden" in t and ("depth" in t or "width" in t):
        raise _fail(source, path, "give either hidden = [...] or depth and width, not both")
    if "hidden" in t:
        hidden = tuple(_int(source, f"{path}.hidden[{i}]", h, 1) for i, h in enumerate(_list(source, f"{path}.hidden",
                                                                                             t["hidden"])))
    else:
        depth = _int(source, f"{path}.depth", t.get("depth", 3), 1)
        width = _int(source, f"{path}.width", t.get("width", 16), 1)
        hidden = (width,) * (depth - 1)
    channels = tuple(_int(source, f"{path}.channels[{i}]", c, 1)
                     for i, c in enumerate(_list(source, f"{path}.channels", t.get("channels", [8, 16]))))
    return NetworkSpec(family, hidden, channels, _choice(source, f"{path}.norm", t.get("norm", "none"), NORMS[:2]),
                       _choice(source, f"{path}.init", t.get("init", "kaiming_normal"), INIT_SCHEMES),
                       _choice(source, f"{path}.figlu_init", t.get("figlu_init", "scaled"), FIGLU_INITS),
                       _int(source, f"{path}.seed", t.get("seed", 0)),
                       _number(source, f"{path}.prior_scale", t.get("prior_scale", 1.0)))


def _sorted_items(source, path, value) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _fail(source, path, f"expected a table; got {value!r}")
    return tuple(sorted(value.items()))


def _engine(source: str, path: str, t: dict) -> EngineSpec:
    from ..inference import ENGINES, get_engine
    from ..inference.driver import Budget, CheckpointPlan

    _keys(source, path, t, ("name", "label", "options", "init", "budget", "checkpoints"), ("name",))
    name = _choice(source, f"{path}.name", t["name"], tuple(ENGINES))
    options = _sorted_items(source, f"{path}.options", t.get("options", {}))
    try:
        get_engine(name).make_options(dict(options))
        Budget.parse(t.get("budget"))
        CheckpointPlan.parse(t.get("checkpoints"))
    except (TypeError, ValueError) as e:
        raise _fail(source, path, str(e)) from None
    init = t.get("init")
    if init is not None:
        from ..fit import WARM_STARTS
        from ..nets.spec import INIT_SCHEMES

        _choice(source, f"{path}.init", init, INIT_SCHEMES + WARM_STARTS)
    return EngineSpec(name, str(t.get("label", name)), options, init, _sorted_items(source, f"{path}.budget", t.get("budget")),
                      _sorted_items(source, f"{path}.checkpoints", t.get("checkpoints")))


def _reference(source: str, path: str, t: dict) -> ReferenceSpec:
    from ..inference import get_engine

    _keys(source, path, t, ("engine", "options", "seed", "rhat_threshold"))
    engine = _choice(source, f"{path}.engine", t.get("engine", "nuts"), ("nuts", "hmc"))
    options = _sorted_items(source, f"{path}.options", t.get("options", dict(ReferenceSpec.options)))
    try:
        opts = get_engine(engine).make_options(dict(options))
    except (TypeError, ValueError) as e:
        raise _fail(source, path, str(e)) from None
    if opts.num_chains < 2:
        raise _fail(source, f"{path}.options.num_chains", "a reference needs at least 2 chains (for its R-hat)")
    return ReferenceSpec(engine, options, _int(source, f"{path}.seed", t.get("seed", 1000)),
                         _number(source, f"{path}.rhat_threshold", t.get("rhat_threshold", 1.01), 1.0))


def parse_suite(table: dict, source: str = "<dict>") -> Suite:
    """A validated Suite from a parsed TOML/YAML table."""
    from ..nets.spec import SYMMETRIES

    _keys(source, "(top level)", table, ("name", "description", "data", "networks", "symmetries", "engines", "seeds",
                                         "reference", "chain_method", "metrics", "agreement_target"),
          ("name", "data", "networks", "engines"))
    data = tuple(_data(source, f"data[{i}]", t) for i, t in enumerate(_list(source, "data", table["data"])))
    networks = tuple(_network(source, f"networks[{i}]", t) for i, t in enumerate(_list(source, "networks",
                                                                                        table["networks"])))
    symmetries = tuple(_choice(source, f"symmetries[{i}]", s, SYMMETRIES)
                       for i, s in enumerate(_list(source, "symmetries", table.get("symmetries", list(SYMMETRIES)))))
    engines = tuple(_engine(source, f"engines[{i}]", t) for i, t in enumerate(_list(source, "engines", table["engines"])))
    labels = [e.label for e in engines]
    if len(set(labels)) != len(labels):
        raise _fail(source, "engines", f"labels must be unique; got {labels} (give each a label = ...)")
    seeds = tuple(_int(source, f"seeds[{i}]", s) for i, s in enumerate(_list(source, "seeds", table.get("seeds", [0]))))
    metrics = tuple(_choice(source, f"metrics[{i}]", m, METRIC_GROUPS)
                    for i, m in enumerate(_list(source, "metrics", table.get("metrics", list(METRIC_GROUPS)))))
    reference = _reference(source, "reference", table["reference"]) if "reference" in table else None
    if "agreement" in metrics and reference is None:
        raise _fail(source, "metrics", "'agreement' needs a [reference] table (the posterior to agree with)")
    return Suite(str(table["name"]), str(table.get("description", "")), data, networks, symmetries, engines, seeds,
                 reference, _choice(source, "chain_method", table.get("chain_method", "sequential"), CHAIN_METHODS),
                 metrics, _number(source, "agreement_target", table.get("agreement_target", 0.95), 0.0, 1.0),
                 source)


def load_suite(name_or_path) -> Suite:
    """A built-in suite by name (``builtin_suites()``) or a TOML / YAML file."""
    path = Path(name_or_path)
    if not path.suffix and (BUILTIN_DIR / f"{name_or_path}.toml").exists():
        path = BUILTIN_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise SuiteError(f"no suite {str(name_or_path)!r}: neither a built-in ({', '.join(builtin_suites())}) nor a file")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            table = yaml.safe_load(text)
        else:
            import tomllib

            table = tomllib.loads(text)
    except Exception as e:  # a syntax error: name the file and the parser's message
        raise SuiteError(f"suite {path}: cannot be parsed ({type(e).__name__}: {e})") from None
    return parse_suite(table, str(path))
