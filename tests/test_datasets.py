import numpy as np
import pytest

from bnn_asym import datasets


@pytest.mark.parametrize("name", datasets.NAMES)
def test_every_dataset_loads_offline_with_metadata(name):
    ds = datasets.load(name, seed=0, n_samples=400 if name in ("mnist", "mnist1d") else None)
    assert ds.task in ("classification", "regression")
    assert ds.X_train.shape[1] == int(np.prod(ds.input_shape))
    assert len(ds.X_train) == len(ds.y_train) and len(ds.X_test) == len(ds.y_test)
    assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_test).all()
    if ds.task == "classification":
        assert set(np.unique(ds.y_train)) == set(range(ds.n_classes))
    if name != "gap":
        axis = 0 if len(ds.input_shape) == 1 else None
        np.testing.assert_allclose(ds.X_train.mean(axis), 0, atol=1e-4)


def test_splits_are_seeded_and_stratified():
    a, b, c = (datasets.load("wine", seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)
    train_frac = np.bincount(a.y_train) / len(a.y_train)
    test_frac = np.bincount(a.y_test) / len(a.y_test)
    np.testing.assert_allclose(train_frac, test_frac, atol=0.05)


def test_mnist_is_real_and_images_are_scaled_globally():
    ds = datasets.load("mnist", seed=0)
    assert ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    assert len(ds.X_train) + len(ds.X_test) == 5000
    assert np.ndim(ds.x_scale) == 0


def test_gap_test_grid_covers_the_gap():
    ds = datasets.load("gap")
    lo, hi = ds.info["gap"]
    assert not ((ds.X_train * ds.x_scale + ds.x_mean > lo) & (ds.X_train * ds.x_scale + ds.x_mean < hi)).any()
    x_test = ds.X_test * ds.x_scale + ds.x_mean
    assert ((x_test > lo) & (x_test < hi)).sum() > 10


def test_bad_arguments():
    with pytest.raises(ValueError, match="accepted: digits"):
        datasets.load("cifar10")
    with pytest.raises(ValueError, match="test_size"):
        datasets.load("iris", test_size=1.5)
    with pytest.raises(ValueError, match="n_samples"):
        datasets.load("iris", n_samples=3)
    with pytest.raises(ValueError, match="seed"):
        datasets.load("iris", seed=-1)


@pytest.mark.parametrize("kind", datasets.OOD_KINDS)
@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_ood_inputs_are_seeded_shaped_like_the_test_set_and_in_the_training_pixel_range(name, kind):
    ds = datasets.load(name, seed=0, n_samples=400)
    X = datasets.ood_inputs(ds, kind, seed=1)
    assert X.shape == ds.X_test.shape and X.dtype == ds.X_test.dtype and np.isfinite(X).all()
    np.testing.assert_array_equal(X, datasets.ood_inputs(ds, kind, seed=1))
    assert datasets.ood_inputs(ds, kind, n=7).shape == (7, ds.n_features)
    if kind != "extrapolation":
        raw, train = (x * ds.x_scale + ds.x_mean for x in (X, ds.X_train))  # mnist1d: standardised per position
        assert raw.min() >= train.min() - 1e-4 and raw.max() <= train.max() + 1e-4
    else:
        assert np.abs(X).mean() > 2.5 * np.abs(ds.X_test).mean()


def test_permuted_and_inverted_inputs_are_the_test_set_transformed():
    ds = datasets.load("digits", seed=0)
    permuted = datasets.ood_inputs(ds, "permuted", seed=0)
    rows = np.random.default_rng(0).choice(len(ds.X_test), len(ds.X_test), replace=False)
    np.testing.assert_allclose(np.sort(permuted, 1), np.sort(ds.X_test[rows], 1), atol=1e-5)  # pixels kept
    assert not np.allclose(permuted, ds.X_test[rows])
    inverted = datasets.ood_inputs(ds, "inverted", seed=0)
    raw, raw_inv = (x * ds.x_scale + ds.x_mean for x in (ds.X_test[rows], inverted))
    np.testing.assert_allclose(raw + raw_inv, 16.0, atol=1e-4)  # digits' pixels span 0..16


def test_rotation_by_zero_is_the_clean_set_and_by_360_too_and_by_90_a_transpose():
    ds = datasets.load("digits", seed=0)
    np.testing.assert_array_equal(datasets.rotated(ds, 0), ds.X_test)
    np.testing.assert_array_equal(datasets.rotated(ds, 360), ds.X_test)
    quarter = datasets.rotated(ds, 90).reshape(-1, 8, 8)
    np.testing.assert_allclose(quarter, np.rot90(ds.X_test.reshape(-1, 8, 8), 1, axes=(1, 2)), atol=1e-5)
    half = datasets.rotated(ds, 45)
    assert half.shape == ds.X_test.shape and not np.allclose(half, ds.X_test)


def test_heldout_classes_split_relabels_the_kept_classes_and_returns_the_rest_as_ood():
    ds = datasets.load("digits", seed=0)
    inside, ood = datasets.heldout_classes(ds, (5, 6, 7, 8, 9))
    assert inside.n_classes == 5 and set(np.unique(inside.y_train)) == set(range(5))
    np.testing.assert_array_equal(inside.X_test, ds.X_test[ds.y_test >= 5])
    np.testing.assert_array_equal(inside.y_test, ds.y_test[ds.y_test >= 5] - 5)
    np.testing.assert_array_equal(ood, ds.X_test[ds.y_test < 5])


def test_bad_ood_requests_get_clear_errors():
    digits, wine, gap = datasets.load("digits"), datasets.load("wine"), datasets.load("gap")
    with pytest.raises(ValueError, match="OOD kind 'static' is not available for 'digits'; accepted: noise"):
        datasets.ood_inputs(digits, "static")
    with pytest.raises(ValueError, match="accepted: extrapolation"):
        datasets.ood_inputs(gap, "noise")
    with pytest.raises(ValueError, match="for the image and sequence sets"):
        datasets.ood_inputs(wine, "permuted")
    with pytest.raises(ValueError, match="n=0 is not valid"):
        datasets.ood_inputs(digits, "noise", n=0)
    with pytest.raises(ValueError, match="rotation needs images"):
        datasets.rotated(wine, 30)
    with pytest.raises(ValueError, match="in_classes"):
        datasets.heldout_classes(digits, (0, 0, 1))
    with pytest.raises(ValueError, match="in_classes"):
        datasets.heldout_classes(digits, range(10))
    with pytest.raises(ValueError, match="classification"):
        datasets.heldout_classes(gap)
