"""Run an Algorithm's steps in chunks, for every chain: jitted JAX loops, or a plain loop for torch.

A runner is the driver's only way to execute steps. ``run(states, n)`` advances every chain by ``n`` steps
and returns the per-step info (and, for trajectory engines, the position after each step). Each chain
carries its own random key through the steps, so results do not depend on how the steps are chunked:
a run cut at step k is exactly the first k steps of a longer run.

JAX: one compiled chunk of ``capacity`` steps serves every chunk length (the step count is a runtime
argument of a ``fori_loop``), so checkpoints and adaptive chunk sizes never trigger a recompilation.
Chains run in parallel over devices (``pmap``), vectorized (``vmap``) or one after another.
"""

from __future__ import annotations

import numpy as np

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")


def resolve_chain_method(method: str, num_chains: int, runtime: str, platform: str = "cpu") -> str:
    if runtime == "torch" or num_chains == 1:
        if method in ("parallel", "vectorized") and runtime == "torch":
            raise ValueError(f"chain_method={method!r} needs the JAX backend; backend='pyro' runs chains one after "
                             "another (chain_method='sequential' or 'auto')")
        return "sequential"
    import jax

    n_devices = len(jax.devices(platform))
    if method == "parallel" and n_devices < num_chains:
        raise ValueError(
            f"chain_method='parallel' needs {num_chains} JAX devices, found {n_devices}; call "
            "bnn_asym.set_cpu_devices(n) before JAX starts, or use chain_method='sequential'/'vectorized'"
        )
    if method != "auto":
        return method
    return "parallel" if n_devices >= num_chains else "sequential"


class JaxRunner:
    def __init__(self, algo, data, num_chains: int, chain_method: str, device, capacity: int):
        import jax
        import jax.numpy as jnp

        self.algo = algo
        self.num_chains = num_chains
        self.method = chain_method
        self.device = device
        self.capacity = capacity
        self.n_total = data.n
        self.set_data(data)
        n_total, batch_size = data.n, algo.batch_size
        keep_positions = algo.position is not None

        def select(key, data):
            if batch_size is None or batch_size >= n_total:
                return data
            idx = jax.random.choice(key, n_total, (batch_size,), replace=False)
            return tuple(a[idx] for a in data)

        def one_step(state, key, data):
            key, k_batch, k_step = jax.random.split(key, 3)
            state, info = algo.step(state, select(k_batch, data), k_step)
            return state, key, info

        self._one_step = one_step
        self._init = jax.jit(algo.init)  # one compiled program instead of many eager set-up operations

        def record(state, info):
            out = {"info": info}
            if keep_positions:
                out["position"] = algo.position(state)
            return out

        def chunk(state, key, data, n_active):
            # Output buffers of a fixed size are created on the device: one compiled program for any n_active.
            def first_record(s, k):
                s, _, info = one_step(s, k, data)
                return record(s, info)

            spec = jax.eval_shape(first_record, state, key)
            buffers = jax.tree.map(lambda a: jnp.zeros((capacity,) + a.shape, a.dtype), spec)

            def body(i, carry):
                state, key, buffers = carry
                state, key, info = one_step(state, key, data)
                buffers = jax.tree.map(lambda b, v: b.at[i].set(v), buffers, record(state, info))
                return state, key, buffers

            return jax.lax.fori_loop(0, n_active, body, (state, key, buffers))

        if chain_method == "parallel":
            devices = jax.devices(getattr(device, "platform", "cpu"))[:num_chains]
            self._chunk = jax.pmap(chunk, in_axes=(0, 0, None, None), devices=devices)
        elif chain_method == "vectorized":
            self._chunk = jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None)))
        else:
            self._chunk = jax.jit(chunk)

    def set_data(self, data) -> None:
        """New rows of the same shapes (a cached runner reused by another fit)."""
        import jax
        import jax.numpy as jnp

        self.data = tuple(jax.device_put(jnp.asarray(a), self.device) for a in (data.X, data.y, data.w))

    def first_batch(self):
        b = self.algo.batch_size
        return self.data if b is None or b >= self.n_total else tuple(a[:b] for a in self.data)

    def init(self, keys, starts):
        """Initial state of every chain; keys and starts are per-chain lists."""
        import jax

        states = [self._init(k, s, self.first_batch()) for k, s in zip(keys, starts)]
        if self.method == "sequential":
            return states, list(keys)
        return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *states), np.stack(keys)

    def run(self, states, keys, n: int):
        """Advance every chain ``n`` (<= capacity) steps: (states, keys, info, positions) with info and
        positions as numpy name -> (chain, n, ...)."""
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
            states, keys, buf = self._chunk(states, keys, self.data, n)
            out = jax.device_get(buf)
        out = jax.tree.map(lambda a: np.asarray(a)[:, :n], out)
        return states, keys, out["info"], out.get("position")

    def chain_state(self, states, c: int):
        import jax

        if self.method == "sequential":
            return states[c]
        return jax.tree.map(lambda a: a[c], states)


class TorchRunner:
    """Chains one after another, one Python call per step (Pyro's kernels and SVI are not jit-able here)."""

    method = "sequential"

    def __init__(self, algo, data, num_chains: int, batch_rngs):
        self.algo = algo
        self.num_chains = num_chains
        self.data = (data.X, data.y, data.w)
        self.n_total = data.n
        self.rngs = batch_rngs  # one numpy Generator per chain: which rows each step sees

    def first_batch(self):
        b = self.algo.batch_size
        return self.data if b is None or b >= self.n_total else tuple(a[:b] for a in self.data)

    def init(self, keys, starts):
        return [self.algo.init(k, s, self.first_batch()) for k, s in zip(keys, starts)], list(keys)

    def run(self, states, keys, n: int):
        b = self.algo.batch_size
        infos, positions = [], []
        for c in range(self.num_chains):
            chain_infos, chain_pos = [], []
            for _ in range(n):
                if b is None or b >= self.n_total:
                    batch = self.data
                else:
                    idx = self.rngs[c].choice(self.n_total, b, replace=False)
                    batch = tuple(a[idx] for a in self.data)
                states[c], info = self.algo.step(states[c], batch, None)
                chain_infos.append(info)
                if self.algo.position is not None:
                    chain_pos.append(self.algo.position(states[c]))
            infos.append({k: np.asarray([i[k] for i in chain_infos]) for k in chain_infos[0]})
            if chain_pos:
                positions.append({k: np.stack([p[k] for p in chain_pos]) for k in chain_pos[0]})
        info = {k: np.stack([i[k] for i in infos]) for k in infos[0]}
        pos = {k: np.stack([p[k] for p in positions]) for k in positions[0]} if positions else None
        return states, keys, info, pos

    def chain_state(self, states, c: int):
        return states[c]
