"""Run an Algorithm's steps in chunks, for every chain: jitted JAX loops, or a plain loop for torch.

A runner is the driver's only way to execute steps. ``run(states, keys, n)`` advances every chain by ``n``
steps and returns the per-step StepInfo (and, for trajectory engines, the position after each step). Each
chain carries its own random key through the steps, so results do not depend on how the steps are
chunked: a run cut at step k is exactly the first k steps of a longer run.

JAX: one compiled chunk of ``capacity`` steps serves every chunk length (the step count is a runtime
argument of a ``fori_loop``), so checkpoints and adaptive chunk sizes never trigger a recompilation.
Chains run in parallel over devices (``pmap``; with more chains than devices, in rounds of as many chains as
there are devices), vectorized (``vmap``) or one after another.
"""

from __future__ import annotations

import numpy as np

from .base import StepInfo

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")


def resolve_chain_method(method: str, num_chains: int, runtime: str, platform: str = "cpu") -> str:
    if runtime == "torch" or num_chains == 1:
        if method in ("parallel", "vectorized") and runtime == "torch":
            raise ValueError(
                f"chain_method={method!r} needs the JAX backend; backend='pyro' runs chains one after "
                "another (chain_method='sequential' or 'auto')"
            )
        return "sequential"
    import jax

    n_devices = len(jax.devices(platform))
    if method == "parallel" and n_devices < num_chains:
        raise ValueError(
            f"chain_method='parallel' needs {num_chains} JAX devices, found {n_devices}; call "
            "bnn_asym.set_cpu_devices(n) before JAX starts, or use chain_method='auto' (rounds of as many chains as "
            "devices), 'sequential' or 'vectorized'"
        )
    if method != "auto":
        return method
    return "parallel" if n_devices > 1 else "sequential"  # more chains than devices: rounds of n_devices


def _no_persistent_cache(active: bool):
    """Keep pmap programs out of JAX's persistent compilation cache (for this thread, while they compile).

    With JAX 0.10.2 on CPU, serialising or deserialising multi-device (pmap) executables for that cache
    aborted the whole process ("Fatal Python error: Aborted" in ``executable.serialize()`` and in
    ``deserialize``): twice in each of two fresh-clone CI runs, always while compiling a pmap chunk of chains.
    They now compile in every new process instead (seconds). ``jax_persistent_cache_min_compile_time_secs``
    is a thread-local JAX config state, so the user's own programs are unaffected."""
    import contextlib

    from jax._src import config as jax_config

    state = getattr(jax_config, "persistent_cache_min_compile_time_secs", None)
    return state(float("inf")) if active and state is not None else contextlib.nullcontext()


def first_rows(data: tuple, batch_size: int | None, n_total: int) -> tuple:
    """The batch an engine's ``init`` sees: the first ``batch_size`` rows (all rows without mini-batches)."""
    return data if batch_size is None or batch_size >= n_total else tuple(a[:batch_size] for a in data)


class JaxRunner:
    def __init__(self, algo, plan, data, num_chains: int, chain_method: str, device, capacity: int):
        import jax

        self.algo = algo
        self.batch_size = plan.batch_size
        self.num_chains = num_chains
        self.method = chain_method
        self.device = device
        self.capacity = capacity
        self.n_total = data.n
        self.set_data(data)
        self._init = jax.jit(algo.init)  # one compiled program instead of many eager set-up operations
        chunk = self._chunk_fn()
        self.groups = [range(num_chains)]  # chains advanced by one call of the chunk (stacked states)
        if chain_method == "parallel":
            devices = jax.devices(getattr(device, "platform", "cpu"))
            size = min(len(devices), num_chains)
            self.groups = [range(c, min(c + size, num_chains)) for c in range(0, num_chains, size)]
            # one pmap per group size, each over exactly as many devices as it has chains (a last, smaller
            # round must not run a program built for more devices than it maps over)
            self._rounds = {
                len(g): jax.pmap(chunk, in_axes=(0, 0, None, None), devices=devices[: len(g)]) for g in self.groups
            }
        elif chain_method == "vectorized":
            self._chunk = jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None)))
        else:
            self._chunk = jax.jit(chunk)

    def _chunk_fn(self):
        """``chunk(state, key, data, n_active)``: n_active steps of one chain, recorded into buffers of
        ``capacity`` steps (created on the device: one compiled program for any n_active)."""
        import jax
        import jax.numpy as jnp

        algo, capacity, n_total, batch_size = self.algo, self.capacity, self.n_total, self.batch_size

        def one_step(state, key, data):
            key, k_batch, k_step = jax.random.split(key, 3)
            if batch_size is not None and batch_size < n_total:
                idx = jax.random.choice(k_batch, n_total, (batch_size,), replace=False)
                data = tuple(a[idx] for a in data)
            state, info = algo.step(k_step, state, data)
            return state, key, info

        def record(state, info):
            return {"info": info, "position": None if algo.position is None else algo.position(state)}

        def chunk(state, key, data, n_active):
            spec = jax.eval_shape(lambda s, k: record(*one_step(s, k, data)[::2]), state, key)
            buffers = jax.tree.map(lambda a: jnp.zeros((capacity,) + a.shape, a.dtype), spec)

            def body(i, carry):
                state, key, buffers = carry
                state, key, info = one_step(state, key, data)
                buffers = jax.tree.map(lambda b, v: b.at[i].set(v), buffers, record(state, info))
                return state, key, buffers

            return jax.lax.fori_loop(0, n_active, body, (state, key, buffers))

        return chunk

    def set_data(self, data) -> None:
        """New rows of the same shapes (a cached runner reused by another fit)."""
        import jax
        import jax.numpy as jnp

        self.data = tuple(jax.device_put(jnp.asarray(a), self.device) for a in (data.X, data.y, data.w))

    def init(self, keys, starts):
        """Initial state of every chain; keys and starts are per-chain lists."""
        import jax

        batch = first_rows(self.data, self.batch_size, self.n_total)
        states = [self._init(k, s, batch) for k, s in zip(keys, starts)]
        if self.method == "sequential":
            return states, list(keys)

        def stacked(group):
            return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[states[c] for c in group])

        out = [(stacked(g), np.stack([keys[c] for c in g])) for g in self.groups]
        if self.method == "parallel":
            # placed on the devices as pmap places its outputs, so the chunk sees the same input placement on
            # its first call as on every later one, and compiles once instead of twice
            devices = jax.devices(getattr(self.device, "platform", "cpu"))
            with _no_persistent_cache(True):
                out = [jax.pmap(lambda s, k: (s, k), devices=devices[: len(g)])(*o) for g, o in zip(self.groups, out)]
        return [o[0] for o in out], [o[1] for o in out]

    def run(self, states, keys, n: int):
        """Advance every chain ``n`` (<= capacity) steps: (states, keys, info, positions) with info a StepInfo
        of numpy (chain, n) arrays and positions numpy name -> (chain, n, ...) arrays (None: no trajectory)."""
        import jax

        if not 0 < n <= self.capacity:
            raise ValueError(f"chunk of {n} steps; capacity is {self.capacity}")
        if self.method == "sequential":
            outs = []
            for c in range(self.num_chains):
                states[c], keys[c], buf = self._chunk(states[c], keys[c], self.data, n)
                outs.append(jax.device_get(buf))
            out = jax.tree.map(lambda *xs: np.stack(xs), *outs)
        else:
            outs = []
            for g, group in enumerate(self.groups):
                step = self._chunk if self.method == "vectorized" else self._rounds[len(group)]
                with _no_persistent_cache(self.method == "parallel"):
                    states[g], keys[g], buf = step(states[g], keys[g], self.data, n)
                outs.append(jax.device_get(buf))
            out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
        out = jax.tree.map(lambda a: np.asarray(a)[:, :n], out)
        return states, keys, out["info"], out["position"]

    def host_state(self, states, c: int):
        """Chain ``c``'s state as numpy arrays (what ``draws`` reads)."""
        import jax

        if self.method == "sequential":
            return jax.device_get(states[c])
        g = next(i for i, group in enumerate(self.groups) if c in group)
        # copied to the host first, then indexed there: indexing the stacked states on the devices compiles a
        # gather over every device the pmap spread them on, for each chain (such an eager multi-device
        # compilation aborted a CI worker with jaxlib 0.10.2)
        return jax.tree.map(lambda a: np.asarray(a)[c - self.groups[g].start], jax.device_get(states[g]))


class TorchRunner:
    """Chains one after another, one Python call per step (Pyro's kernels and SVI are not jit-able here)."""

    method = "sequential"

    def __init__(self, algo, plan, data, num_chains: int, capacity: int):
        self.algo = algo
        self.batch_size = plan.batch_size
        self.num_chains = num_chains
        self.capacity = capacity
        self.data = (data.X, data.y, data.w)
        self.n_total = data.n
        self.rngs: list = []  # one numpy Generator per chain: which rows each step sees (seeded in init)

    def init(self, keys, starts):
        self.rngs = [np.random.default_rng(int(k)) for k in keys]
        batch = first_rows(self.data, self.batch_size, self.n_total)
        return [self.algo.init(k, s, batch) for k, s in zip(keys, starts)], list(keys)

    def _batch(self, c: int):
        b = self.batch_size
        if b is None or b >= self.n_total:
            return self.data
        idx = self.rngs[c].choice(self.n_total, b, replace=False)
        return tuple(a[idx] for a in self.data)

    def run(self, states, keys, n: int):
        infos, positions = [], []
        for c in range(self.num_chains):
            chain_infos, chain_pos = [], []
            for _ in range(n):
                states[c], info = self.algo.step(None, states[c], self._batch(c))
                chain_infos.append(info)
                if self.algo.position is not None:
                    chain_pos.append(self.algo.position(states[c]))
            infos.append(_stacked_info(chain_infos))
            if chain_pos:
                positions.append({k: np.stack([p[k] for p in chain_pos]) for k in chain_pos[0]})
        info = _stacked_info(infos)
        pos = {k: np.stack([p[k] for p in positions]) for k in positions[0]} if positions else None
        return states, keys, info, pos

    def host_state(self, states, c: int):
        return states[c]


def _stacked_info(infos: list[StepInfo]) -> StepInfo:
    """One StepInfo of stacked values (a new leading axis) from several; None fields stay None."""
    return StepInfo(
        *(None if values[0] is None else np.stack([np.asarray(v) for v in values]) for values in zip(*infos))
    )
