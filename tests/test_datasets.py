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
