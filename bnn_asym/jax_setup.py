"""JAX set-up for bnn_asym: the persistent compilation cache (off unless you turn it on), and the memory maps
that compiled programs hold.

Compiling a NUTS or SVI loop takes seconds on a small CPU; with the cache a later process that fits the
same model skips it (a tiny NUTS fit in a new process: 5.9 s cold, 2.3 s warm; ``benchmarks/cold_start.py``).
It is opt-in because writing to it can kill a long-running process: with jaxlib 0.10.2 on CPU, after a
process has compiled and freed many programs, serialising a new executable for the cache can fail inside
XLA, and the C++ exception that reports the failure segfaulted in the unwinder (``_Unwind_Find_FDE``). The
full test suite hit it on both of its workers, twice in two runs; with the cache off it never did.

Turn it on:

- ``BNN_ASYM_JAX_CACHE=on`` (the default location) or ``BNN_ASYM_JAX_CACHE=/some/dir``, read by the first
  ``fit`` of a process; or ``bnn_asym.configure_compilation_cache(True | "/some/dir")`` at any time;
- default location: ``$XDG_CACHE_HOME/bnn_asym/jax``, else ``~/.cache/bnn_asym/jax``;
- size: when a process sets the cache up and finds it above ``$BNN_ASYM_JAX_CACHE_MAX_MB`` megabytes
  (default 512), it deletes the least recently used entries down to 80% of that. (JAX's own
  ``jax_compilation_cache_max_size`` rescans the whole directory on every write, which costs seconds per
  new model once the cache holds thousands of small entries.)

Every compilation is then cached (also the many small ones of a model's set-up), because the keys are stable
across processes: nothing bnn_asym compiles depends on Python's hash order. A cache you configured in JAX
yourself is left alone.

Memory maps. XLA's CPU backend links every kernel of a compiled program into memory of its own: three memory
maps a kernel, 800-1,600 for one tiny fit (measured with jaxlib 0.10.2). JAX keeps compiled programs for
reuse, so a process that fits hundreds of different models (a sweep, a benchmark worker, a test run) climbs
towards Linux's ``vm.max_map_count`` (65,530 by default); there the next compilation fails inside XLA, and the
C++ exception that reports it segfaulted in the unwinder (``_Unwind_Find_FDE``), killing the process. ``fit``
warns above ``MAP_WARN_SHARE`` of the limit; ``release_compiled_programs()`` frees them all (later fits
compile again), and the benchmark harness does so between cells when a worker nears the limit.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_MAX_MB = 512
MAP_WARN_SHARE = 0.75  # fit warns when the process holds this share of vm.max_map_count
ENV_ON = ("on", "1", "true", "yes")
ENV_OFF = ("", "off", "0", "false", "no")
_state: dict[str, Any] = {"configured": False, "path": None}


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bnn_asym", "jax")


def _from_environment() -> bool | str:
    """What ``$BNN_ASYM_JAX_CACHE`` asks for: False (unset or off), True (on, default location) or a path."""
    env = os.environ.get("BNN_ASYM_JAX_CACHE", "").strip()
    if env.lower() in ENV_OFF:
        return False
    return True if env.lower() in ENV_ON else env


def configure_compilation_cache(enabled: bool | str = True, max_mb: float | None = None) -> str | None:
    """Turn bnn_asym's persistent JAX compilation cache on (at its default location or a given path) or off.

    Returns the cache directory in use, or None when off. Leaves a cache the user configured in JAX alone.
    Off by default (see the module docstring for why); ``BNN_ASYM_JAX_CACHE`` does the same from the
    environment.

    >>> import bnn_asym
    >>> bnn_asym.configure_compilation_cache(False) is None
    True
    """
    import jax

    _state["configured"] = True
    current = jax.config.values.get("jax_compilation_cache_dir")
    if current and current != _state["path"]:
        _state["path"] = current  # the user's own cache: not ours to change
        return current
    if enabled is False:
        if _state["path"] is not None:
            jax.config.update("jax_compilation_cache_dir", None)
        _state["path"] = None
        return None
    path = enabled if isinstance(enabled, str) else default_cache_dir()
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
    """What ``fit`` calls: on first use, turn the cache on if ``$BNN_ASYM_JAX_CACHE`` asks for it (nothing
    happens otherwise), then never touch JAX's config again."""
    if not _state["configured"]:
        wanted = _from_environment()
        if wanted is False:
            _state["configured"] = True
            return None
        return configure_compilation_cache(wanted)
    return _state["path"]


def memory_map_count() -> int | None:
    """Memory maps this process holds (Linux; None elsewhere)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


def memory_map_limit() -> int | None:
    """Linux's per-process limit on memory maps, ``vm.max_map_count`` (None elsewhere)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def near_memory_map_limit(share: float = MAP_WARN_SHARE) -> bool:
    """Whether this process holds more than ``share`` of the memory maps Linux allows it (False off Linux)."""
    count, limit = memory_map_count(), memory_map_limit()
    return count is not None and limit is not None and count > share * limit


def release_compiled_programs() -> None:
    """Free every compiled program this process holds: bnn_asym's compiled runners and per-model functions, and
    JAX's caches (``jax.clear_caches``). Later fits compile again. For long-running processes that fit many
    different models (see the module docstring); bnn_asym never calls it from ``fit``.

    >>> import bnn_asym
    >>> bnn_asym.release_compiled_programs()
    """
    import jax

    from . import posterior, prior_selection, zoo
    from .inference import driver

    driver.forget_compiled_runners()
    posterior.forget_compiled_functions()
    prior_selection._ggn_program.cache_clear()
    zoo._training_program.cache_clear()
    jax.clear_caches()


def warn_if_near_memory_map_limit() -> None:
    """What ``fit`` calls before it compiles: a warning, naming the fix, when the process nears the limit."""
    if near_memory_map_limit():
        from .warn import warn_user

        warn_user(
            f"this process holds {memory_map_count():,} memory maps, {MAP_WARN_SHARE:.0%}+ of the "
            f"{memory_map_limit():,} Linux allows (vm.max_map_count); JAX's compiled programs hold them, and at "
            "the limit the next compilation can crash the process. Free them with "
            "bnn_asym.release_compiled_programs() (later fits compile again), or raise vm.max_map_count",
            ResourceWarning,
        )
