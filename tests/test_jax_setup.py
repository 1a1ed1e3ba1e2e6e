"""The opt-in persistent compilation cache, and the memory maps that compiled programs hold."""

import warnings

import jax
import numpy as np
import pytest

import bnn_asym
from bnn_asym import jax_setup

needs_proc = pytest.mark.skipif(jax_setup.memory_map_count() is None, reason="reads /proc/self/maps (Linux)")


@pytest.fixture
def fresh_setup(monkeypatch):
    """bnn_asym's cache state as in a new process; JAX's cache settings restored afterwards."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {k: jax.config.values[k] for k in keys}
    monkeypatch.setattr(jax_setup, "_state", {"configured": False, "path": None})
    yield
    for k, v in before.items():
        jax.config.update(k, v)


@pytest.mark.parametrize(
    "value, wanted",
    [(None, False), ("", False), ("off", False), ("0", False), ("on", True), ("1", True), ("/tmp/c", "/tmp/c")],
)
def test_the_environment_variable_turns_the_cache_on_only_when_asked(monkeypatch, value, wanted):
    if value is None:
        monkeypatch.delenv("BNN_ASYM_JAX_CACHE", raising=False)
    else:
        monkeypatch.setenv("BNN_ASYM_JAX_CACHE", value)
    assert jax_setup._from_environment() == wanted


def test_fit_leaves_the_cache_off_by_default(fresh_setup, monkeypatch, tiny_task):
    monkeypatch.delenv("BNN_ASYM_JAX_CACHE", raising=False)
    before = jax.config.values["jax_compilation_cache_dir"]
    net, X, y = tiny_task
    bnn_asym.fit(net, X, y, engine="map", num_steps=5, progress=False)
    assert jax.config.values["jax_compilation_cache_dir"] == before and jax_setup._state["path"] is None


def test_the_cache_goes_where_it_is_asked_to_and_off_again(fresh_setup, monkeypatch, tmp_path):
    monkeypatch.delenv("BNN_ASYM_JAX_CACHE", raising=False)
    if jax.config.values["jax_compilation_cache_dir"]:
        pytest.skip("a JAX cache configured outside bnn_asym is left alone")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bnn_asym.configure_compilation_cache(True) == str(tmp_path / "bnn_asym" / "jax")
    assert jax.config.values["jax_compilation_cache_dir"] == str(tmp_path / "bnn_asym" / "jax")
    assert bnn_asym.configure_compilation_cache(str(tmp_path / "mine")) == str(tmp_path / "mine")
    assert bnn_asym.configure_compilation_cache(False) is None
    assert not jax.config.values["jax_compilation_cache_dir"]


@needs_proc
def test_releasing_compiled_programs_frees_their_memory_maps():
    """A fit of a network of new shapes compiles programs whose kernels hold memory maps (hundreds); releasing
    them returns the process to about where it was (within 100 maps: allocator arenas come and go)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 7)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    bnn_asym.release_compiled_programs()
    before = jax_setup.memory_map_count()
    bnn_asym.fit(bnn_asym.MLP(7, (11,), 2, seed=0), X, y, engine="mfvi", num_steps=5, num_draws=3, progress=False)
    grown = jax_setup.memory_map_count()
    bnn_asym.release_compiled_programs()
    after = jax_setup.memory_map_count()
    assert grown - before > 100, (before, grown)
    assert after < before + 100, (before, grown, after)


@needs_proc
def test_fit_warns_near_the_memory_map_limit_and_names_the_fix(monkeypatch, tiny_task):
    monkeypatch.setattr(jax_setup, "memory_map_limit", lambda: jax_setup.memory_map_count() + 10)
    net, X, y = tiny_task
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        bnn_asym.fit(net, X, y, engine="map", num_steps=5, progress=False)
    messages = [str(w.message) for w in record if issubclass(w.category, ResourceWarning)]
    assert len(messages) == 1 and "release_compiled_programs" in messages[0] and "vm.max_map_count" in messages[0]
