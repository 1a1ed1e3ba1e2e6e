"""Benchmark suites as data: a TOML (or YAML) file describes a grid, validated before anything runs.

A suite crosses engines x symmetries x networks x data sets x seeds into *cells*; each cell fits one
engine to one BNN and scores it (metrics.py) against the reference posterior of its (data, network,
prior) -- a long run of an exact sampler, computed once and reused. Keys, with their defaults:

    name = "quick"                    # required
    description = "..."               # shown in reports
    symmetries = ["standard", "w_asym", "sigma_asym"]
    seeds = [0, 1]                    # inference seeds; the network's constants come from its own seed
    chain_method = "sequential"       # how a cell runs its chains (sequential: identical on every backend)
    metrics = ["calibration", "agreement", "convergence", "multimodality", "ood", "shift"]
    agreement_target = 0.95           # time-to-target: first checkpoint with this agreement
    base = "standard"                 # optional: start from another suite (a built-in name, or a file relative
                                      # to this one); every top-level key given here replaces the base's
    every_network = { prior_scale = 4.0 }  # optional: keys set on every network (after base)

    [[data]]                          # one or more: an offline data set
    name = "moons"; n_samples = 400; seed = 0; test_size = 0.25

    [[networks]]                      # one or more; built by bnn_asym.nets.builder (its defaults)
    family = "mlp"                    # "mlp" or "cnn"
    depth = 3; width = 16             # weight layers and hidden width -- or hidden = [16, 16]
    channels = [16, 32]               # cnn: conv widths (hidden: dense widths after them, default none)
    norm = "none"; init = "kaiming_normal"; figlu_init = "scaled"; seed = 0
    prior_scale = 1.4142              # Prior("fan_in", prior_scale); default sqrt(2), the Kaiming init's scale

    [reference]                       # optional: without it, agreement metrics are skipped
    engine = "nuts"                   # "nuts", "hmc" or "adjusted_mclmc" (exact samplers)
    seed = 1000; rhat_threshold = 1.01
    init = "ensemble"                 # chains start from ensemble members ("ensemble"), a MAP ("map") or the init
    max_rounds = 3                    # until max prediction R-hat (test set) <= rhat_threshold: go on from the
                                      # last draws (warmup again), doubling the kept draws, at most this many runs
    options = { num_warmup = 500, num_samples = 500, num_chains = 8 }

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
from typing import Any

from ..inference.runners import CHAIN_METHODS
from ..models.priors import DEFAULT_SCALE
from ..nets.builder import NetworkConfig
from ..validate import check_keys, check_nonempty_list, integer, number, one_of

BUILTIN_DIR = Path(__file__).parent / "suites"
METRIC_GROUPS = ("calibration", "agreement", "convergence", "multimodality", "ood", "shift")
FAMILIES = ("mlp", "cnn")
SUITE_VERSION = 3  # part of every cell's key: bump when a cell's computation changes (2: ELRG noise keys split;
# 3: reference rounds add up their draws; a cell's key holds its reference's settings)


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
class NetworkSpec(NetworkConfig):
    """A suite's network: a NetworkConfig (built by ``bnn_asym.nets.builder``) and the scale of its prior."""

    prior_scale: float = DEFAULT_SCALE

    def label(self) -> str:
        """The network's label, with its prior scale unless it is the default (``mlp-3x16-prior1``): the prior
        is part of the model, and two priors are two rows of every table."""
        base = super().label()
        return base if self.prior_scale == DEFAULT_SCALE else f"{base}-prior{self.prior_scale:g}"


def network_label(network: dict) -> str:
    """The label of a stored network config (``Cell.config()["network"]``), e.g. ``mlp-3x16``."""
    fields = {f.name for f in dataclasses.fields(NetworkSpec)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in network.items() if k in fields}
    try:
        return NetworkSpec(**values).label()
    except (TypeError, ValueError):  # a config written by another version: its family and widths
        return f"{network.get('family', '?')}-{'-'.join(map(str, network.get('hidden') or ()))}"


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
    """A reference posterior: ``engine`` (an exact sampler) with ``options``, its chains started by ``init``
    ("ensemble": one MAP member per chain, DEI-MCMC's start; "map"; "network": the network's init), and
    extended until it passes: while its max prediction R-hat exceeds ``rhat_threshold``, up to ``max_rounds``
    runs: each round goes on from the chains' last draws, warms up again (``num_warmup``) and keeps as many new draws
    as the rounds before it kept, all of which stay in the reference (the draws double each round)."""

    engine: str = "nuts"
    options: tuple = (("num_chains", 8), ("num_samples", 500), ("num_warmup", 500))
    seed: int = 1000
    rhat_threshold: float = 1.01
    init: str = "ensemble"
    max_rounds: int = 3

    def settings(self) -> dict:
        """What the reference's draws depend on (not max_rounds: more rounds estimate the same posterior, ``bnn-asym
        reference --extend``)."""
        return {"engine": self.engine, "options": dict(self.options), "seed": self.seed, "init": self.init}


@dataclass(frozen=True)
class Cell:
    """One fit of the grid: everything that determines its numbers is in ``config()`` -- the reference it is
    scored against included, where it has one."""

    suite: str
    data: DataSpec
    network: NetworkSpec
    symmetry: str
    engine: EngineSpec
    seed: int
    chain_method: str
    metrics: tuple
    agreement_target: float
    reference: ReferenceSpec | None = None

    def config(self) -> dict:
        return {
            "version": SUITE_VERSION,
            "data": dataclasses.asdict(self.data),
            "network": dataclasses.asdict(self.network),
            "symmetry": self.symmetry,
            "engine": {
                "name": self.engine.name,
                "label": self.engine.label,
                "options": dict(self.engine.options),
                "init": self.engine.init,
                "budget": dict(self.engine.budget),
                "checkpoints": dict(self.engine.checkpoints),
            },
            "seed": self.seed,
            "chain_method": self.chain_method,
            "metrics": list(self.metrics),
            "agreement_target": self.agreement_target,
            "reference": None if self.reference is None else self.reference.settings(),
        }

    @property
    def key(self) -> str:
        from .. import __version__

        text = json.dumps({**self.config(), "package": __version__}, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def reference_config(self, reference: ReferenceSpec) -> dict:
        """What the reference posterior of this cell depends on: data, network, symmetry, prior, settings."""
        return {
            "version": SUITE_VERSION,
            "data": dataclasses.asdict(self.data),
            "network": dataclasses.asdict(self.network),
            "symmetry": self.symmetry,
            "reference": reference.settings(),
        }


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
        scored_against = self.reference if "agreement" in self.metrics else None
        return [
            Cell(self.name, d, n, s, e, seed, self.chain_method, self.metrics, self.agreement_target, scored_against)
            for d in self.data
            for n in self.networks
            for s in self.symmetries
            for e in self.engines
            for seed in self.seeds
        ]

    def with_overrides(self, **changes) -> Suite:
        return dataclasses.replace(self, **changes)


# ----- loading and validation: every error reads "suite <file>: <key path>: <problem>" ---------------------------
class _Where:
    """Key paths of one suite file, as the validators' ``where``."""

    def __init__(self, source: str):
        self.source = source

    def __call__(self, path: str) -> str:
        return f"suite {self.source}: {path}:"

    def fail(self, path: str, problem: str) -> SuiteError:
        return SuiteError(f"{self(path)} {problem}")


def _checked(fn, *args):
    """``fn(*args)``, its ValueError or TypeError as a SuiteError of the suite file."""
    try:
        return fn(*args)
    except SuiteError:
        raise
    except (TypeError, ValueError) as e:
        raise SuiteError(str(e)) from None


def _list(where: _Where, path: str, value) -> list:
    return _checked(check_nonempty_list, value, where(path))


def _data(where: _Where, path: str, t: dict) -> DataSpec:
    from .. import datasets

    _checked(check_keys, t, where(path), ("name", "n_samples", "seed", "test_size"), ("name",))
    rules = {"name": one_of(*datasets.NAMES), "seed": integer(0), "test_size": number(0.0, 0.9)}
    values = {k: _checked(rules[k].check, v, where(f"{path}.{k}")) for k, v in t.items() if k in rules}
    if t.get("n_samples") is not None:
        values["n_samples"] = _checked(integer(10).check, t["n_samples"], where(f"{path}.n_samples"))
    return DataSpec(**values)


NETWORK_KEYS = ("family", "depth", "width", "hidden", "channels", "norm", "init", "figlu_init", "seed", "prior_scale")


def _network(where: _Where, path: str, t: dict) -> NetworkSpec:
    from ..nets.spec import NORMS

    _checked(check_keys, t, where(path), NETWORK_KEYS)
    if "hidden" in t and ("depth" in t or "width" in t):
        raise where.fail(path, "give either hidden = [...] or depth and width, not both")
    rules = {f.name: f.metadata["rule"] for f in dataclasses.fields(NetworkSpec) if f.metadata.get("rule")}
    rules.update(
        family=one_of(*FAMILIES), norm=one_of(*NORMS[:2]), prior_scale=number(0.0), depth=integer(1), width=integer(1)
    )
    values: dict[str, Any] = {k: _checked(rules[k].check, v, where(f"{path}.{k}")) for k, v in t.items()}
    if "hidden" not in values and (values.get("family", "mlp") == "mlp" or "depth" in values or "width" in values):
        values["hidden"] = (values.get("width", 16),) * (values.get("depth", 3) - 1)
    values.pop("depth", None)
    values.pop("width", None)
    return NetworkSpec(**values)


def _sorted_items(where: _Where, path: str, value) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise where.fail(path, f"expected a table; got {value!r}")
    return tuple(sorted(value.items()))


def _engine(where: _Where, path: str, t: dict) -> EngineSpec:
    from ..fit import WARM_STARTS
    from ..inference import ENGINES, get_engine
    from ..inference.driver import Budget, CheckpointPlan
    from ..nets.spec import INIT_SCHEMES

    _checked(check_keys, t, where(path), ("name", "label", "options", "init", "budget", "checkpoints"), ("name",))
    name = _checked(one_of(*ENGINES).check, t["name"], where(f"{path}.name"))
    options = _sorted_items(where, f"{path}.options", t.get("options", {}))
    try:
        get_engine(name).make_options(dict(options))
        Budget.parse(t.get("budget"))
        CheckpointPlan.parse(t.get("checkpoints"))
    except (TypeError, ValueError) as e:
        raise where.fail(path, str(e)) from None
    init = t.get("init")
    if init is not None:
        _checked(one_of(*INIT_SCHEMES, *WARM_STARTS).check, init, where(f"{path}.init"))
    return EngineSpec(
        name,
        str(t.get("label", name)),
        options,
        init,
        _sorted_items(where, f"{path}.budget", t.get("budget")),
        _sorted_items(where, f"{path}.checkpoints", t.get("checkpoints")),
    )


REFERENCE_ENGINES = ("nuts", "hmc", "adjusted_mclmc")  # exact samplers
REFERENCE_INITS = ("ensemble", "map", "network")


def _reference(where: _Where, path: str, t: dict) -> ReferenceSpec:
    from ..inference import get_engine

    _checked(check_keys, t, where(path), ("engine", "options", "seed", "rhat_threshold", "init", "max_rounds"))
    engine = _checked(one_of(*REFERENCE_ENGINES).check, t.get("engine", "nuts"), where(f"{path}.engine"))
    options = _sorted_items(where, f"{path}.options", t.get("options", dict(ReferenceSpec.options)))
    try:
        opts = get_engine(engine).make_options(dict(options))
    except (TypeError, ValueError) as e:
        raise where.fail(path, str(e)) from None
    if opts.num_chains < 2:
        raise where.fail(f"{path}.options.num_chains", "a reference needs at least 2 chains (for its R-hat)")
    return ReferenceSpec(
        engine,
        options,
        _checked(integer(0).check, t.get("seed", 1000), where(f"{path}.seed")),
        _checked(number(1.0).check, t.get("rhat_threshold", 1.01), where(f"{path}.rhat_threshold")),
        _checked(one_of(*REFERENCE_INITS).check, t.get("init", ReferenceSpec.init), where(f"{path}.init")),
        _checked(integer(1).check, t.get("max_rounds", ReferenceSpec.max_rounds), where(f"{path}.max_rounds")),
    )


TOP_LEVEL_KEYS = (
    "name",
    "description",
    "data",
    "networks",
    "symmetries",
    "engines",
    "seeds",
    "reference",
    "chain_method",
    "metrics",
    "agreement_target",
    "base",
    "every_network",
)


def _each(where: _Where, path: str, values: list, parse) -> tuple:
    return tuple(parse(where, f"{path}[{i}]", t) for i, t in enumerate(_list(where, path, values)))


def _each_of(where: _Where, path: str, values: list, rule) -> tuple:
    return tuple(_checked(rule.check, v, where(f"{path}[{i}]")) for i, v in enumerate(_list(where, path, values)))


def parse_suite(table: dict, source: str = "<dict>") -> Suite:
    """A validated Suite from a parsed TOML/YAML table."""
    from ..nets.spec import SYMMETRIES

    where = _Where(source)
    file = Path(source) if Path(source).suffix else None
    table = _with_base(table, where, file.parent if file else Path.cwd(), (str(file.resolve()),) if file else ())
    _checked(check_keys, table, where("(top level)"), TOP_LEVEL_KEYS, ("name", "data", "networks", "engines"))
    data = _each(where, "data", table["data"], _data)
    networks = _each(where, "networks", table["networks"], _network)
    symmetries = _each_of(where, "symmetries", table.get("symmetries", list(SYMMETRIES)), one_of(*SYMMETRIES))
    engines = _each(where, "engines", table["engines"], _engine)
    labels = [e.label for e in engines]
    if len(set(labels)) != len(labels):
        raise where.fail("engines", f"labels must be unique; got {labels} (give each a label = ...)")
    seeds = _each_of(where, "seeds", table.get("seeds", [0]), integer(0))
    metrics = _each_of(where, "metrics", table.get("metrics", list(METRIC_GROUPS)), one_of(*METRIC_GROUPS))
    reference = _reference(where, "reference", table["reference"]) if "reference" in table else None
    if "agreement" in metrics and reference is None:
        raise where.fail("metrics", "'agreement' needs a [reference] table (the posterior to agree with)")
    chain_method = _checked(
        one_of(*CHAIN_METHODS).check, table.get("chain_method", "sequential"), where("chain_method")
    )
    target = _checked(number(0.0, 1.0).check, table.get("agreement_target", 0.95), where("agreement_target"))
    return Suite(
        str(table["name"]),
        str(table.get("description", "")),
        data,
        networks,
        symmetries,
        engines,
        seeds,
        reference,
        chain_method,
        metrics,
        target,
        source,
    )


def _with_base(table: dict, where: _Where, relative_to: Path, chain: tuple) -> dict:
    """``table`` on top of its ``base`` suite (resolved recursively): its top-level keys replace the base's,
    then ``every_network`` is set on every network. Neither key is left in the result."""
    if not isinstance(table, dict):
        raise SuiteError(f"{where('(top level)')} a suite is a table of keys; got {type(table).__name__}")
    table = dict(table)
    base_name = table.pop("base", None)
    every_network = table.pop("every_network", None)
    if base_name is not None:
        if not isinstance(base_name, str):
            raise where.fail("base", f"the name of a built-in suite or a suite file; got {base_name!r}")
        if "name" not in table:
            raise where.fail("name", f"a suite built on base {base_name!r} needs a name of its own")
        base_path = _suite_path(base_name, relative_to)
        if str(base_path.resolve()) in chain:
            raise where.fail("base", f"suites that are each other's base: {' -> '.join(chain + (str(base_path),))}")
        base_table = _with_base(
            _read_table(base_path), _Where(str(base_path)), base_path.parent, chain + (str(base_path.resolve()),)
        )
        table = {**base_table, **table}
    if every_network is not None:
        if not isinstance(every_network, dict):
            raise where.fail(
                "every_network", f"a table of network keys ({', '.join(NETWORK_KEYS)}); got {every_network!r}"
            )
        _checked(check_keys, every_network, where("every_network"), NETWORK_KEYS)
        networks = _list(where, "networks", table.get("networks"))
        table["networks"] = [{**_checked(_as_table, n, where("networks")), **every_network} for n in networks]
    return table


def _as_table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} each network is a table of keys; got {value!r}")
    return value


def _suite_path(name_or_path, relative_to: Path | None = None) -> Path:
    path = Path(name_or_path)
    if not path.suffix and (BUILTIN_DIR / f"{name_or_path}.toml").exists():
        return BUILTIN_DIR / f"{name_or_path}.toml"
    if relative_to is not None and not path.is_absolute() and (relative_to / path).exists():
        return relative_to / path
    if not path.exists():
        raise SuiteError(
            f"no suite {str(name_or_path)!r}: neither a built-in ({', '.join(builtin_suites())}) nor a file"
        )
    return path


def load_suite(name_or_path) -> Suite:
    """A built-in suite by name (``builtin_suites()``) or a TOML / YAML file."""
    path = _suite_path(name_or_path)
    return parse_suite(_read_table(path), str(path))


def _read_table(path: Path) -> dict:
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
    return table
