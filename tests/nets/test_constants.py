import os
import subprocess
import sys
from math import comb

import numpy as np
import pytest
from conftest import small_specs

import bnn_asym
from bnn_asym.nets.constants import default_n_fix, sample_fixed_patterns

DIGEST_SCRIPT = """
import bnn_asym
specs = [bnn_asym.MLP.paper_lmc("w_asym", seed=7), bnn_asym.MLP(10, (32, 32), 3, symmetry="sigma_asym", seed=7),
         bnn_asym.ResNet((3, 16, 16), 10, depth=8, width=0.5, symmetry="w_asym", mask_kind="filter", seed=7)]
print(",".join(s.constants_digest() for s in specs))
"""


def test_constants_identical_across_processes():
    # Separate interpreters get different hash() salts: constants must not depend on them.
    outs = {
        subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(salt)},
        ).stdout.strip()
        for salt in (1, 2)
    }
    assert len(outs) == 1


def test_constants_depend_on_seed_and_layer():
    a = bnn_asym.MLP(16, (16, 16), 2, symmetry="w_asym", seed=0).constants()
    b = bnn_asym.MLP(16, (16, 16), 2, symmetry="w_asym", seed=1).constants()
    assert not np.array_equal(a["fc0.fixed_value"], b["fc0.fixed_value"])
    assert not np.array_equal(a["fc0.fixed_index"], a["fc1.fixed_index"])


def test_changing_one_layer_keeps_other_layers_constants():
    a = bnn_asym.MLP(16, (16, 16), 2, symmetry="w_asym", n_fix=(2, 2, 2), seed=0).constants()
    b = bnn_asym.MLP(16, (16, 16), 2, symmetry="w_asym", n_fix=(2, 3, 2), seed=0).constants()
    assert np.array_equal(a["fc0.fixed_index"], b["fc0.fixed_index"])
    assert np.array_equal(a["out.fixed_value"], b["out.fixed_value"])


@pytest.mark.parametrize("family", ["mlp", "cnn", "resnet"])
def test_every_row_has_exactly_its_fixed_entries_and_rows_are_distinct(family):
    spec = small_specs("w_asym")[family]
    consts = spec.constants()
    for layer in spec.weight_layers():
        if layer.n_fix == 0:
            continue
        idx = consts[f"{layer.name}.fixed_index"]
        assert idx.shape == (layer.d_out, layer.fixed_per_row)
        assert all(len(set(row)) == layer.fixed_per_row for row in idx.tolist())
        assert idx.min() >= 0 and idx.max() < layer.fan_in
        patterns = {tuple(sorted(r)) for r in idx.tolist()}
        possible = comb(layer.fan_in // (layer.fixed_per_row // layer.n_fix), layer.n_fix)
        if possible >= layer.d_out:
            assert len(patterns) == layer.d_out and bool(consts[f"{layer.name}.mask_rows_distinct"])


def test_distinct_rows_even_when_patterns_are_scarce():
    # comb(6, 3) = 20 patterns for 20 rows: every single pattern must be used exactly once.
    patterns, distinct = sample_fixed_patterns(np.random.default_rng(0), 20, 6, 3)
    assert distinct and len({tuple(r) for r in patterns.tolist()}) == 20
    patterns, distinct = sample_fixed_patterns(np.random.default_rng(0), 30, 4, 1)
    assert not distinct
    counts = np.bincount(patterns.ravel(), minlength=4)
    assert counts.max() - counts.min() <= 1  # used as evenly as possible


def test_distinct_rows_large_layer_by_rejection():
    patterns, distinct = sample_fixed_patterns(np.random.default_rng(0), 512, 784, 64)
    assert distinct and len({tuple(r) for r in patterns.tolist()}) == 512


def test_default_rule():
    assert default_n_fix(256, 256) == 8
    assert default_n_fix(1, 50) == 0  # fan-in 1 cannot fix an entry and keep a free one
    assert comb(9, default_n_fix(9, 16)) >= 16  # raised until rows can be distinct
    assert default_n_fix(2, 50) == 1  # only 2 patterns exist: the best possible


def test_fixed_values_scale_with_kappa_and_figlu_scale():
    w = bnn_asym.MLP(400, (400,), 2, symmetry="w_asym", n_fix=(100, 100), kappa=(2.0, 0.5), seed=0).constants()
    assert w["fc0.fixed_value"].std() == pytest.approx(2.0, rel=0.03)
    assert w["out.fixed_value"].std() == pytest.approx(0.5, rel=0.2)
    s = bnn_asym.MLP(4, (400,), 2, symmetry="sigma_asym", figlu_scale=1.0).constants()
    assert s["fc0_act.figlu"].std() == pytest.approx(1 / np.sqrt(400), rel=0.03)


def test_standard_networks_have_no_constants():
    assert small_specs("standard")["resnet"].constants() == {}
