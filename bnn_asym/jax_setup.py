"""JAX's persistent compilation cache, set up once for bnn_asym.

Compiling a NUTS or SVI loop takes seconds on a small CPU; with the cache a later process that fits the
same model skips it. The first ``fit`` turns the cache on -- once per process, and only if the user has
not configured JAX's cache themselves:

- location: ``$BNN_ASYM_JAX_CACHE``, else ``$XDG_CACHE_HOME/bnn_asym/jax``, else ``~/.cache/bnn_asym/jax``;
- size: when a process sets the cache up and finds it above ``$BNN_ASYM_JAX_CACHE_MAX_MB`` megabytes
  (default 512), it deletes the least recently used entries down to 80% of that. (JAX's own
  ``jax_compilation_cache_max_size`` rescans the whole directory on every write, which costs seconds per
  new model once the cache holds thousands of small entries.)
- off: ``BNN_ASYM_JAX_CACHE=off``, or ``bnn_asym.configure_compilation_cache(False)`` before the first fit.

Every compilation is cached (also the many small ones of a model's set-up), because the keys are stable
across processes: nothing bnn_asym compiles depends on Python's hash order.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_MAX_MB = 512
_state: dict[str, Any] = {"configured": False, "path": None}


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bnn_asym", "jax")


def configure_compilation_cache(enabled: bool | str = True, max_mb: float | None = None) -> str | None:
    """Turn bnn_asym's persistent JAX compilation cache on (at its default or a given path) or off.

    Returns the cache directory in use, or None when off. Leaves a cache the user configured in JAX alone.
    """
    import jax

    _state["configured"] = True
    current = jax.config.values.get("jax_compilation_cache_dir")
    if current and current != _state["path"]:
        _state["path"] = current  # the user's own cache: not ours to change
        return current
    env = os.environ.get("BNN_ASYM_JAX_CACHE", "")
    if enabled is False or (enabled is True and env.lower() == "off"):
        if _state["path"] is not None:
            jax.config.update("jax_compilation_cache_dir", None)
        _state["path"] = None
        return None
    path = enabled if isinstance(enabled, str) else (env or default_cache_dir())
    if max_mb is None:
        max_mb = float(os.environ.get("BNN_ASYM_JAX_CACHE_MAX_MB", DEFAULT_MAX_MB))
    prune_cache(path, int(max_mb * 2**20))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _state["path"] = path
    return path


def prune_cache(path: str, max_bytes: int, keep_fraction: float = 0.8) -> int:
    """Delete the least recently used JAX cache entries in ``path`` when it holds more than ``max_bytes``,
    down to ``keep_fraction * max_bytes``. Returns the bytes freed. Only JAX's own entry files are touched."""
    try:
        entries = [e for e in os.scandir(path) if e.is_file() and e.name.endswith(("-cache", "-atime"))]
    except FileNotFoundError:
        return 0
    stats = [(max(st.st_atime, st.st_mtime), st.st_size, e.path) for e in entries for st in (e.stat(),)]
    total = sum(size for _, size, _ in stats)
    if total <= max_bytes:
        return 0
    freed = 0
    for _, size, file in sorted(stats):
        if total - freed <= keep_fraction * max_bytes:
            break
        try:
            os.remove(file)
            freed += size
        except FileNotFoundError:
            pass
    return freed


def ensure_compilation_cache() -> str | None:
    """What ``fit`` calls: configure the cache on first use, then never touch JAX's config again."""
    if not _state["configured"]:
        return configure_compilation_cache(True)
    return _state["path"]
