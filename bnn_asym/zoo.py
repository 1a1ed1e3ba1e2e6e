"""Model zoos: many small classifiers of one architecture per symmetry kind, trained with sampled
hyper-parameters, for weight-space learning (metanetworks, MLI at scale).

Following the paper's zoo (Lim et al. 2024, after Unterthiner et al. 2020): each network gets its own
learning rate ``0.5 * 10^-U(0, 2)`` scaled by ``lr_scale``, weight decay ``10^-U(1, 5)``, label smoothing
``U(0, 0.2)`` and epochs ``randint(epochs_low, epochs_high + 1)``, its own init and data order; all networks of
one symmetry kind share the spec (masks, fixed values, FiGLU matrices), so their free parameters line up. SGD
with momentum 0.9 and a constant learning rate.

Training is one jitted program per chunk of ``chunk_size`` networks, vmapped over the networks (each with its
own hyper-parameters as data; a network past its epochs, or one whose step would produce non-finite values, keeps
its parameters and is marked ``diverged`` in the latter case). A chunk is written as one NetCDF file of init
and final free parameters (atomically) and then indexed in SQLite in one transaction, so a killed build leaves
only whole chunks and a rerun trains only the missing ones.

Layout of a zoo directory: ``index.sqlite`` (tables ``zoo``: the config; ``networks``: one row per network
with its hyper-parameters and train / test loss and accuracy) and ``<symmetry>/chunk_<k>.nc``.

>>> from bnn_asym import zoo
>>> cfg = zoo.ZooConfig(data="digits", family="mlp", n_networks=8, chunk_size=8, epochs_low=1, epochs_high=2)
>>> z = zoo.build(cfg, "runs/zoo", progress=False)                        # doctest: +SKIP
>>> z.table().head()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .validate import check_keys, integer, number, one_of

FAMILIES = ("cnn", "mlp", "resnet")
DATA = ("digits", "mnist")
SYMMETRIES = ("standard", "w_asym", "sigma_asym")
INDEX_COLUMNS = (
    "symmetry",
    "network",
    "chunk",
    "slot",
    "lr",
    "weight_decay",
    "label_smoothing",
    "epochs",
    "diverged",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
)
MOMENTUM = 0.9
ZOO_VERSION = 1


@dataclass(frozen=True)
class ZooConfig:
    data: str = "digits"
    family: str = "cnn"
    symmetries: tuple = SYMMETRIES
    n_networks: int = 1000  # per symmetry kind
    chunk_size: int = 50  # networks trained together by one vmapped program
    epochs_low: int = 10
    epochs_high: int = 40
    lr_scale: float = 1.0  # multiplies the sampled 0.5 * 10^-U(0, 2)
    batch_size: int = 64
    n_samples: int | None = None  # rows of the data set (default: all)
    seed: int = 0

    def __post_init__(self):
        one_of(*DATA).check(self.data, "data")
        one_of(*FAMILIES).check(self.family, "family")
        object.__setattr__(self, "symmetries", tuple(self.symmetries))
        if not self.symmetries or any(s not in SYMMETRIES for s in self.symmetries):
            raise ValueError(f"symmetries={self.symmetries!r} is not valid; accepted: some of {', '.join(SYMMETRIES)}")
        for name in ("n_networks", "chunk_size", "epochs_low", "batch_size"):
            integer(1).check(getattr(self, name), name)
        integer(self.epochs_low).check(self.epochs_high, "epochs_high (>= epochs_low)")
        integer(0).check(self.seed, "seed")
        number(0.0).check(self.lr_scale, "lr_scale")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "symmetries": list(self.symmetries), "version": ZOO_VERSION}

    @classmethod
    def from_dict(cls, d: dict) -> ZooConfig:
        d = {k: v for k, v in d.items() if k != "version"}
        check_keys(d, "zoo config", [f.name for f in dataclasses.fields(cls)])
        return cls(**d)


def load_data(cfg: ZooConfig):
    from . import datasets

    return datasets.load(cfg.data, seed=cfg.seed, n_samples=cfg.n_samples)


RESNET_DEPTH, RESNET_WIDTH = 8, 0.25  # the paper's ResNet8, at a quarter of its width


def zoo_spec(cfg: ZooConfig, ds, symmetry: str):
    """The zoo's network: a small CNN with a global-average-pool head (convs of 8 and 16 channels on digits, 16
    and 32 on MNIST), a small ResNet (``RESNET_DEPTH``, ``RESNET_WIDTH``), or an MLP (32, 32); one spec per
    symmetry kind."""
    from .nets.builder import NetworkConfig, network_for_data

    small = ds.input_shape[-1] <= 8
    if cfg.family == "cnn":
        config = NetworkConfig("cnn", channels=(8, 16) if small else (16, 32), head="global_avg", seed=cfg.seed)
    elif cfg.family == "resnet":
        config = NetworkConfig("resnet", depth=RESNET_DEPTH, width=RESNET_WIDTH, seed=cfg.seed)
    else:
        config = NetworkConfig("mlp", hidden=(32, 32), norm="none", seed=cfg.seed)
    return network_for_data(config, ds, symmetry)


def sample_hyperparameters(cfg: ZooConfig, symmetry: str, networks: np.ndarray) -> dict[str, np.ndarray]:
    """Each network's hyper-parameters, from a generator seeded by (zoo seed, symmetry, network index): the
    same network gets the same ones in any chunk layout."""
    out: dict[str, list] = {"lr": [], "weight_decay": [], "label_smoothing": [], "epochs": []}
    for n in networks:
        rng = np.random.default_rng([cfg.seed, SYMMETRIES.index(symmetry), int(n)])
        out["lr"].append(cfg.lr_scale * 0.5 * 10 ** -rng.uniform(0, 2))
        out["weight_decay"].append(10 ** -rng.uniform(1, 5))
        out["label_smoothing"].append(rng.uniform(0, 0.2))
        out["epochs"].append(int(rng.integers(cfg.epochs_low, cfg.epochs_high + 1)))
    return {k: np.asarray(v, np.int32 if k == "epochs" else np.float32) for k, v in out.items()}


def init_seed(cfg: ZooConfig, symmetry: str, network: int) -> int:
    return int(np.random.default_rng([cfg.seed, SYMMETRIES.index(symmetry), int(network), 1]).integers(2**31))


# ----- training ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _training_program(spec, batch_size: int, steps_per_epoch: int):
    """One epoch for a stack of networks: jitted, vmapped over the leading axis of params / hyper-parameters;
    one per spec and shape, so every chunk of a zoo reuses it."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params, xb, yb, smoothing):
        logits = spec.apply_jax(params, xb)
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, yb[:, None], axis=-1)[:, 0]
        return jnp.mean((1 - smoothing) * nll - smoothing * logp.mean(-1))

    def epoch_fn(params, velocity, diverged, keys, hp, epoch, X, y):
        def per_network(params, velocity, diverged, key, hp):
            active = epoch < hp["epochs"]  # a network past its own epochs stays as it is
            order = jax.random.permutation(jax.random.fold_in(key, epoch), X.shape[0])

            def step(carry, s):
                params, velocity, diverged = carry
                idx = jax.lax.dynamic_slice(order, (s * batch_size,), (batch_size,))
                grads = jax.grad(loss_fn)(params, X[idx], y[idx], hp["label_smoothing"])
                new_v = jax.tree.map(lambda v, g, p: MOMENTUM * v + g + hp["weight_decay"] * p, velocity, grads, params)
                new_p = jax.tree.map(lambda p, v: p - hp["lr"] * v, params, new_v)
                finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(new_p)]))
                keep = active & finite & ~diverged  # a step to inf or NaN is not taken; the network stops there
                params = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_p, params)
                velocity = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_v, velocity)
                return (params, velocity, diverged | (active & ~finite)), None

            carry, _ = jax.lax.scan(step, (params, velocity, diverged), jnp.arange(steps_per_epoch))
            return carry

        return jax.vmap(per_network)(params, velocity, diverged, keys, hp)

    return jax.jit(epoch_fn)


def train_networks(spec, ds, hyper: dict[str, np.ndarray], inits: dict[str, np.ndarray], keys, batch_size: int):
    """Train a stack of networks (leading axis) of ``spec`` on the data set's training rows; returns the final
    free parameters (numpy, stacked) and a diverged flag per network."""
    import jax
    import jax.numpy as jnp

    batch = min(batch_size, len(ds.X_train))
    steps = len(ds.X_train) // batch
    program = _training_program(spec, batch, steps)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in inits.items()}
    velocity = jax.tree.map(jnp.zeros_like, params)
    diverged = jnp.zeros(len(hyper["lr"]), bool)
    hp = {k: jnp.asarray(v) for k, v in hyper.items()}
    X, y = jnp.asarray(ds.X_train, jnp.float32), jnp.asarray(ds.y_train, jnp.int32)
    for epoch in range(int(np.max(hyper["epochs"]))):
        params, velocity, diverged = program(params, velocity, diverged, keys, hp, jnp.int32(epoch), X, y)
    return {k: np.asarray(v) for k, v in params.items()}, np.asarray(diverged)


# ----- the zoo on disk ---------------------------------------------------------------------------------------
class Zoo:
    """A zoo directory: its config, index and chunks."""

    def __init__(self, path):
        self.path = Path(path)
        index = self.path / "index.sqlite"
        if not index.exists():
            raise FileNotFoundError(f"no zoo at {self.path} (no index.sqlite); build one with bnn_asym.zoo.build")
        try:
            with sqlite3.connect(index) as db:
                row = db.execute("SELECT config FROM zoo").fetchone()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{index} is not a bnn_asym zoo index ({e})") from None
        self.config = ZooConfig.from_dict(json.loads(row[0]))

    def kinds(self, symmetries=None) -> tuple[str, ...]:
        """The zoo's symmetry kinds, or the requested ones (each checked to be in the zoo)."""
        if symmetries is None:
            return self.config.symmetries
        for s in symmetries:
            if s not in self.config.symmetries:
                raise ValueError(f"the zoo at {self.path} has no {s!r} networks; it has {self.config.symmetries}")
        return tuple(symmetries)

    def rows(self, symmetry: str | None = None) -> list[dict]:
        q = f"SELECT {', '.join(INDEX_COLUMNS)} FROM networks"
        q += " WHERE symmetry = ? ORDER BY network" if symmetry else " ORDER BY symmetry, network"
        with sqlite3.connect(self.path / "index.sqlite") as db:
            return [dict(zip(INDEX_COLUMNS, r)) for r in db.execute(q, (symmetry,) if symmetry else ())]

    def training_seconds(self) -> dict[str, dict]:
        """Per symmetry kind: the networks whose chunk times were recorded, their training seconds summed, and
        chunks recorded (zoos built before chunk times were kept record none)."""
        with sqlite3.connect(self.path / "index.sqlite") as db:
            has_chunks = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").fetchone()
            rows = (
                db.execute(
                    "SELECT symmetry, SUM(networks), SUM(seconds), COUNT(*) FROM chunks GROUP BY symmetry"
                ).fetchall()
                if has_chunks
                else []
            )
        return {s: {"networks": int(n), "seconds": float(t), "chunks": int(c)} for s, n, t, c in rows}

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def spec(self, symmetry: str):
        return zoo_spec(self.config, load_data(self.config), symmetry)

    def parameters(self, symmetry: str, which: str = "final") -> tuple[dict[str, np.ndarray], list[dict]]:
        """Every network of one symmetry kind: free parameters stacked in network order (``which``: "final"
        or "init") and their index rows."""
        import xarray as xr

        one_of("final", "init").check(which, "which")
        rows = self.rows(symmetry)
        if not rows:
            raise ValueError(f"the zoo at {self.path} has no {symmetry!r} networks; it has {self.config.symmetries}")
        parts: dict[int, dict] = {}
        for chunk in sorted({r["chunk"] for r in rows}):
            with xr.open_dataset(self.path / symmetry / f"chunk_{chunk:05d}.nc") as f:
                parts[chunk] = {
                    str(k)[len(which) + 2 :]: f[k].values for k in f.data_vars if str(k).startswith(f"{which}__")
                }
        names = list(parts[rows[0]["chunk"]])
        stacked = {k: np.stack([parts[r["chunk"]][k][r["slot"]] for r in rows]) for k in names}
        return stacked, rows


def _open_index(path: Path, cfg: ZooConfig) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path / "index.sqlite", timeout=60) as db:
        db.execute("CREATE TABLE IF NOT EXISTS zoo (config TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS networks (symmetry TEXT, network INTEGER, chunk INTEGER, slot INTEGER, "
            "lr REAL, weight_decay REAL, label_smoothing REAL, epochs INTEGER, diverged INTEGER, train_loss REAL, "
            "train_accuracy REAL, test_loss REAL, test_accuracy REAL, PRIMARY KEY (symmetry, network))"
        )
        # training seconds of each chunk (compilation included in a process's first chunk of a kind)
        db.execute(
            "CREATE TABLE IF NOT EXISTS chunks (symmetry TEXT, chunk INTEGER, networks INTEGER, seconds REAL, "
            "PRIMARY KEY (symmetry, chunk))"
        )
        row = db.execute("SELECT config FROM zoo").fetchone()
        if row is None:
            db.execute("INSERT INTO zoo VALUES (?)", (json.dumps(cfg.to_dict(), sort_keys=True),))
        elif json.loads(row[0]) != json.loads(json.dumps(cfg.to_dict(), sort_keys=True)):
            raise ValueError(
                f"the zoo at {path} was built with another config ({row[0]}); pass a new folder or the same config"
            )


def _done_chunks(path: Path, symmetry: str) -> set[int]:
    with sqlite3.connect(path / "index.sqlite", timeout=60) as db:
        return {r[0] for r in db.execute("SELECT DISTINCT chunk FROM networks WHERE symmetry = ?", (symmetry,))}


def _write_chunk(
    path: Path, symmetry: str, chunk: int, networks, hyper, inits, finals, diverged, scores, seconds: float
) -> None:
    import xarray as xr

    from .io import atomic_path

    data = {}
    for which, arrays in (("init", inits), ("final", finals)):
        for k, v in arrays.items():
            dims = ["network"] + [f"{k}_{i}" for i in range(v.ndim - 1)]
            data[f"{which}__{k}"] = (dims, np.asarray(v, np.float32))
    target = path / symmetry / f"chunk_{chunk:05d}.nc"
    with atomic_path(target) as tmp:
        xr.Dataset(data, coords={"network": np.asarray(networks)}).to_netcdf(tmp)
    rows = [
        (
            symmetry,
            int(n),
            chunk,
            slot,
            float(hyper["lr"][slot]),
            float(hyper["weight_decay"][slot]),
            float(hyper["label_smoothing"][slot]),
            int(hyper["epochs"][slot]),
            int(diverged[slot]),
            float(scores["train"]["loss"][slot]),
            float(scores["train"]["accuracy"][slot]),
            float(scores["test"]["loss"][slot]),
            float(scores["test"]["accuracy"][slot]),
        )
        for slot, n in enumerate(networks)
    ]
    with sqlite3.connect(path / "index.sqlite", timeout=60) as db:  # one transaction: a chunk is indexed whole
        db.executemany(f"INSERT OR REPLACE INTO networks VALUES ({', '.join('?' * len(INDEX_COLUMNS))})", rows)
        db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", (symmetry, chunk, len(networks), seconds))


def train_chunk(cfg: ZooConfig, ds, symmetry: str, networks: np.ndarray):
    """(hyper-parameters, inits, finals, diverged, scores) of the given networks, trained together."""
    import jax

    from .symmetry.interpolation import _losses

    spec = zoo_spec(cfg, ds, symmetry)
    hyper = sample_hyperparameters(cfg, symmetry, networks)
    inits_list = [spec.init(init_seed(cfg, symmetry, n)) for n in networks]
    inits = {k: np.stack([p[k] for p in inits_list]).astype(np.float32) for k in inits_list[0]}
    keys = jax.numpy.stack([jax.random.PRNGKey(init_seed(cfg, symmetry, n) + 1) for n in networks])
    finals, diverged = train_networks(spec, ds, hyper, inits, keys, cfg.batch_size)
    scores = {}
    for split, X, y in (("train", ds.X_train, ds.y_train), ("test", ds.X_test, ds.y_test)):
        loss, accuracy = _losses(spec, finals, X, y, "classification")  # every network of the stack at once
        scores[split] = {"loss": loss, "accuracy": accuracy}
    return hyper, inits, finals, diverged, scores


def build(cfg: ZooConfig, path, progress: bool = True) -> Zoo:
    """Train every network of the zoo that ``path`` lacks, chunk by chunk; returns the zoo."""
    from .progress import progress_bar

    path = Path(path)
    _open_index(path, cfg)
    ds = load_data(cfg)
    chunks = [
        (s, c, np.arange(c * cfg.chunk_size, min(cfg.n_networks, (c + 1) * cfg.chunk_size)))
        for s in cfg.symmetries
        for c in range(-(-cfg.n_networks // cfg.chunk_size))
    ]
    done = {s: _done_chunks(path, s) for s in cfg.symmetries}
    todo = [(s, c, n) for s, c, n in chunks if c not in done[s]]
    for symmetry, chunk, networks in progress_bar(todo, desc="zoo", enabled=progress):
        start = time.perf_counter()
        hyper, inits, finals, diverged, scores = train_chunk(cfg, ds, symmetry, networks)
        seconds = time.perf_counter() - start
        _write_chunk(path, symmetry, chunk, networks, hyper, inits, finals, diverged, scores, seconds)
    return Zoo(path)


# ----- analyses over a zoo -----------------------------------------------------------------------------------
def mli_table(z: Zoo, n_points: int = 25, subset: int = 1000, symmetries=None) -> dict[str, dict]:
    """Monotonic linear interpolation from init to trained weights for every zoo network, per symmetry kind:
    share monotonic, mean max increase (Delta), local convexity, share globally convex (the paper's Table 5
    statistics), on a fixed subset of the training rows; diverged networks are left out. ``symmetries``: some of
    the zoo's kinds (default: all)."""
    from .symmetry.interpolation import interpolate, mli_stats

    ds = load_data(z.config)
    n = min(subset, len(ds.X_train))
    out = {}
    for symmetry in z.kinds(symmetries):
        finals, rows = z.parameters(symmetry, "final")
        inits, _ = z.parameters(symmetry, "init")
        spec = z.spec(symmetry)
        stats = [
            mli_stats(
                interpolate(
                    spec,
                    {k: v[i] for k, v in inits.items()},
                    {k: v[i] for k, v in finals.items()},
                    ds.X_train[:n],
                    ds.y_train[:n],
                    n_points=n_points,
                )
            )
            for i, r in enumerate(rows)
            if not r["diverged"]
        ]
        out[symmetry] = {
            "networks": len(stats),
            "monotonic": float(np.mean([s.monotonic for s in stats])),
            "max_increase": float(np.mean([s.max_increase for s in stats])),
            "local_convexity": float(np.mean([s.local_convexity for s in stats])),
            "globally_convex": float(np.mean([s.globally_convex for s in stats])),
        }
    return out


def metanet_table(z: Zoo, kinds=None, seeds=range(5), epochs: int = 1000, symmetries=None) -> dict[str, dict]:
    """Every metanet kind (``bnn_asym.metanet``; default ``DEFAULT_KINDS``, ``nfn`` on request) predicting test
    accuracy from the final free parameters, per symmetry kind: mean and std of test R^2 and Kendall tau over
    ``seeds``; diverged networks are left out. ``symmetries``: some of the zoo's kinds (default: all)."""
    from . import metanet

    out = {}
    for symmetry in z.kinds(symmetries):
        finals, rows = z.parameters(symmetry, "final")
        keep = np.array([not r["diverged"] for r in rows])
        target = np.array([r["test_accuracy"] for r in rows])[keep]
        params = {k: v[keep] for k, v in finals.items()}
        out[symmetry] = metanet.evaluate_metanets(params, target, kinds or metanet.DEFAULT_KINDS, seeds, epochs)
    return out
