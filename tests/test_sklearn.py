"""The scikit-learn estimators pass scikit-learn's estimator checks with every engine they offer (trimmed
settings), learn, and report predictive uncertainty."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

import bnn_asym
from bnn_asym.sklearn import BNNClassifier, BNNRegressor

TRIMMED = {
    "ensemble": {"n_members": 2, "num_steps": 150, "lr": 0.01},
    "map": {"num_steps": 150, "lr": 0.01},
    "mfvi": {"num_steps": 150, "num_draws": 20},
    "lowrank_vi": {"num_steps": 150, "num_draws": 20},
    "nuts": {"num_warmup": 30, "num_samples": 20, "num_chains": 1, "max_tree_depth": 4},
    "hmc": {"num_warmup": 30, "num_samples": 20, "num_chains": 1, "num_leapfrog": 8},
    "sgld": {"num_warmup": 300, "num_samples": 20, "num_chains": 1},
    "sghmc": {"num_warmup": 300, "num_samples": 20, "num_chains": 1, "num_integration_steps": 3},
    "swag": {"pretrain_steps": 100, "swag_steps": 100, "collect_every": 10, "num_draws": 20, "lr": 0.01},
    "multiswag": {
        "pretrain_steps": 100,
        "swag_steps": 100,
        "collect_every": 10,
        "num_draws": 10,
        "n_runs": 2,
        "lr": 0.01,
    },
    "laplace": {"num_steps": 150, "num_draws": 20, "lr": 0.01},
}


def test_every_engine_is_checked():
    assert set(TRIMMED) == set(bnn_asym.ENGINES)


def checks():
    """Every scikit-learn check for both estimators and every engine, grouped by engine so one xdist worker
    runs an engine's checks and compiles each data shape once (``--dist loadgroup``)."""
    for engine, options in TRIMMED.items():
        for cls in (BNNClassifier, BNNRegressor):
            for item in estimator_checks_generator(
                cls(hidden=(8,), engine=engine, engine_options=options), mark="xfail"
            ):
                estimator, check = item.values if hasattr(item, "values") else item
                marks = list(getattr(item, "marks", ())) + [pytest.mark.xdist_group(engine)]
                name = getattr(check, "func", check).__name__
                kwargs = getattr(check, "keywords", {})
                label = name + (f"({','.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else "")
                yield pytest.param(estimator, check, marks=marks, id=f"{cls.__name__}-{engine}-{label}")


@pytest.mark.parametrize("estimator, check", list(checks()))
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_classifier_learns_and_regressor_reports_std():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 2))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    clf = BNNClassifier(hidden=(16,), engine="ensemble", engine_options=TRIMMED["ensemble"]).fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.9 and set(clf.classes_) == {"no", "yes"}
    reg = BNNRegressor(hidden=(16,), engine="ensemble", engine_options=TRIMMED["ensemble"]).fit(X, 3 * X[:, 0] + 100)
    mean, std = reg.predict(X, return_std=True)
    assert np.abs(mean - (3 * X[:, 0] + 100)).mean() < 1.0 and np.all(std > 0)


@pytest.mark.parametrize("engine", ["swag", "ensemble"])
def test_uncentred_inputs_and_noise_free_targets_do_not_diverge(engine):
    rng = np.random.default_rng(0)
    X = rng.normal(100, 1, (60, 3))  # far from zero, as in scikit-learn's check_fit_idempotent
    y = X @ np.array([1.0, -2.0, 0.5])  # no noise: a learned noise std heads towards 0
    reg = BNNRegressor(hidden=(8,), engine=engine, engine_options=TRIMMED[engine]).fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    assert np.abs(mean - y).mean() < 0.5 * y.std()
