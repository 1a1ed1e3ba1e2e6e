import numpy as np
import pytest
from conftest import perturbed_params

from bnn_asym.symmetry.interpolation import Curve, interpolate, max_barrier, midpoint_barrier, mli_stats
from bnn_asym.training import evaluate


def test_endpoints_equal_the_two_models(tiny_task):
    spec, X, y = tiny_task
    a, b = perturbed_params(spec, 1, "float32"), perturbed_params(spec, 2, "float32")
    curve = interpolate(spec, a, b, X, y, n_points=5)
    for t_index, params in ((0, a), (-1, b)):
        ref = evaluate(spec, params, X, y, "classification")
        assert curve.loss[t_index] == pytest.approx(ref["loss"], rel=1e-5)
        assert curve.accuracy[t_index] == pytest.approx(ref["accuracy"])


def test_barrier_of_identical_networks_is_zero(tiny_task):
    spec, X, y = tiny_task
    a = perturbed_params(spec, 1, "float32")
    curve = interpolate(spec, a, a, X, y, n_points=25)
    assert midpoint_barrier(curve) == pytest.approx(0, abs=1e-6)
    assert max_barrier(curve) == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(curve.loss, curve.loss[0], rtol=1e-6)


def test_barriers_on_a_hand_made_curve():
    t = np.linspace(0, 1, 5)
    curve = Curve(t, np.array([1.0, 2.0, 3.0, 2.5, 2.0]))
    assert midpoint_barrier(curve) == pytest.approx(3.0 - 1.5)
    assert max_barrier(curve) == pytest.approx(max(2 - 1.25, 3 - 1.5, 2.5 - 1.75))
    with pytest.raises(ValueError, match="odd"):
        midpoint_barrier(Curve(np.linspace(0, 1, 4), np.zeros(4)))


@pytest.mark.parametrize(
    "loss, monotonic, delta, convex, local",
    [
        ([3.0, 2.0, 1.5, 1.2, 1.0], True, 0.0, True, 1.0),  # decreasing and convex
        ([3.0, 2.9, 2.0, 1.1, 1.0], True, 0.0, False, 2 / 3),  # decreasing, above the chord early on
        ([3.0, 2.0, 2.5, 1.5, 1.0], False, 0.5, False, 2 / 3),  # one bump of 0.5, above the chord
        ([3.0, 1.0, 2.0, 0.5, 1.0], False, 1.0, True, 2 / 3),  # largest rise: from the running minimum 1.0 to 2.0
    ],
)
def test_mli_statistics_on_hand_made_curves(loss, monotonic, delta, convex, local):
    s = mli_stats(np.array(loss))
    assert s.monotonic == monotonic
    assert s.max_increase == pytest.approx(delta)
    assert s.globally_convex == convex
    assert s.local_convexity == pytest.approx(local)


def test_global_convexity_uses_the_true_end_points():
    # Reference-code pitfall: a chord through the wrong end point. This curve lies below the chord from
    # L(0)=4 to L(1)=0 everywhere, but above a chord from L(0) to the minimum elsewhere.
    s = mli_stats(np.array([4.0, 1.5, 0.5, 0.2, 0.0]))
    assert s.globally_convex
