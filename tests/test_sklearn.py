import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from bnn_asym.sklearn import BNNClassifier, BNNRegressor

FAST = dict(hidden=(16,), engine="ensemble", engine_options={"n_members": 2, "num_steps": 150, "lr": 0.01})


@parametrize_with_checks([BNNClassifier(**FAST), BNNRegressor(**FAST)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_classifier_learns_and_regressor_reports_std():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 2))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    clf = BNNClassifier(**FAST).fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.9 and set(clf.classes_) == {"no", "yes"}
    reg = BNNRegressor(**FAST).fit(X, 3 * X[:, 0] + 100)
    mean, std = reg.predict(X, return_std=True)
    assert np.abs(mean - (3 * X[:, 0] + 100)).mean() < 1.0 and np.all(std > 0)
