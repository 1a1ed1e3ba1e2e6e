"""The scikit-learn estimators pass scikit-learn's estimator checks with every engine they offer (trimmed
settings), learn, and report predictive uncertainty."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

import bnn_asym
from bnn_asym.sklearn import BNNClassifier, BNNRegressor

# The MAP-based engines run Adam here: these checks test the estimators' API on dozens of data shapes, and
# L-BFGS (their default) compiles 3-4x longer per shape (9 s vs 2.5 s). tests/inference/test_defaults.py runs
# the defaults.
TRIMMED = {
    "ensemble": {"n_members": 2, "num_steps": 150, "optimizer": "adam", "lr": 0.01},
    "mfvi": {"num_steps": 150, "num_draws": 20},
    "nuts": {"num_warmup": 30, "num_samples": 20, "num_chains": 1, "max_tree_depth": 4},
    "sgld": {"num_warmup": 300, "num_samples": 20, "num_chains": 1},
    "swag": {"pretrain_steps": 100, "swag_steps": 100, "collect_every": 10, "num_draws": 20, "lr": 0.01},
    "laplace": {"num_steps": 150, "num_draws": 20, "optimizer": "adam", "lr": 0.01},
}


# The estimators never branch on the engine: what differs between engines is the posterior that predict reads
# (Markov chains, VI draws, ensemble members, SWAG draws, Laplace's GLM predictive) and how rows reach the
# engine (full batch or mini-batches). scikit-learn's full check list runs for one engine of each kind (TRIMMED);
# every other engine (COVERED_BY: the engine whose checks cover it) fits and predicts through both estimators,
# and runs the checks whose outcome depends on the posterior's draws (ENGINE_SENSITIVE_CHECKS). The full list for
# all 16 engines took ~22 min of CI worker time (~3 s of compilation per data shape and engine), half of CI.
COVERED_BY = {
    "hmc": "nuts",
    "mclmc": "nuts",
    "adjusted_mclmc": "nuts",
    "mile": "nuts",
    "sghmc": "sgld",
    "psgld": "sgld",
    "lowrank_vi": "mfvi",
    "map": "ensemble",
    "multiswag": "swag",
}
COVERED_OPTIONS = {
    "hmc": {"num_warmup": 30, "num_samples": 20, "num_chains": 2, "num_leapfrog": 8},
    "sghmc": {"num_warmup": 300, "num_samples": 20, "num_chains": 2, "num_integration_steps": 3},
    "lowrank_vi": {"num_steps": 150, "num_draws": 20},
    "map": {"num_steps": 150, "optimizer": "adam", "lr": 0.01},
    "multiswag": {
        "pretrain_steps": 100,
        "swag_steps": 100,
        "collect_every": 10,
        "num_draws": 10,
        "n_runs": 2,
        "lr": 0.01,
    },
}  # the MCLMC family and pSGLD: MCMC_COVERED_OPTIONS
MCMC_COVERED_OPTIONS = {"num_chains": 2, "num_warmup": 100, "num_samples": 20, "thinning": 1}
ENGINE_SENSITIVE_CHECKS = (
    "check_fit_idempotent",
    "check_methods_subset_invariance",
    "check_methods_sample_order_invariance",
)


def covered_options(engine: str) -> dict:
    return COVERED_OPTIONS.get(engine, MCMC_COVERED_OPTIONS)


def test_every_engine_is_checked():
    assert set(TRIMMED) | set(COVERED_BY) == set(bnn_asym.ENGINES) and set(COVERED_BY.values()) <= set(TRIMMED)
    assert not set(TRIMMED) & set(COVERED_BY)


@pytest.mark.parametrize("engine", list(COVERED_BY))
def test_covered_engines_fit_and_predict(engine):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 2))
    options = covered_options(engine)
    clf = BNNClassifier(hidden=(8,), engine=engine, engine_options=options).fit(X, X[:, 0] > 0)
    assert (clf.predict(X) == (X[:, 0] > 0)).mean() > 0.9 and clf.predict_proba(X).shape == (80, 2)
    reg = BNNRegressor(hidden=(8,), engine=engine, engine_options=options).fit(X, 2 * X[:, 1])
    mean, std = reg.predict(X, return_std=True)
    assert np.abs(mean - 2 * X[:, 1]).mean() < 0.5 and np.all(std > 0)


# Weighting a row by 2 and repeating it give the same objective, but every fit here is iterative in float32 and
# sums the rows in another order, so the two fits agree to the optimiser's tolerance, not to scikit-learn's 1e-7
# (test_sample_weight_weights_rows_as_fit_weights_do checks what sample_weight means).
EXPECTED_FAILURES = {
    name: "weighted and repeated rows: the same objective, different float32 rounding in an iterative fit"
    for name in ("check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data")
}

# laplace takes row weights of 0 or 1 only (a row is in the curvature or not) and says so; scikit-learn's
# sample-weight checks pass other weights.
LAPLACE_WEIGHTS = "laplace accepts sample weights of 0 or 1 only, with a ValueError naming that"

# sample_weight reaches every engine the same way (fit's weights=); its checks run for one engine of each kind
# (VI, NUTS, SG-MCMC, optimiser, Laplace's 0-or-1 rule), which saves ~200 fits in CI.
SAMPLE_WEIGHT_ENGINES = ("mfvi", "nuts", "sgld", "ensemble", "laplace")


def checks():
    """scikit-learn's checks for both estimators: all of them for every engine in TRIMMED, the engine-sensitive
    ones for the engines they cover; grouped by engine so one xdist worker runs an engine's checks and compiles
    each data shape once (``--dist loadgroup``)."""
    engines = [(e, TRIMMED[e], None) for e in TRIMMED] + [
        (e, covered_options(e), ENGINE_SENSITIVE_CHECKS) for e in COVERED_BY
    ]
    for engine, options, only in engines:
        for cls in (BNNClassifier, BNNRegressor):
            for item in estimator_checks_generator(
                cls(hidden=(8,), engine=engine, engine_options=options),
                expected_failed_checks=EXPECTED_FAILURES,
                mark="xfail",
            ):
                estimator, check = item.values if hasattr(item, "values") else item
                marks = list(getattr(item, "marks", ())) + [pytest.mark.xdist_group(COVERED_BY.get(engine, engine))]
                name = getattr(check, "func", check).__name__
                if only is not None and name not in only:
                    continue
                if "sample_weight" in name and engine not in SAMPLE_WEIGHT_ENGINES:
                    continue
                if engine == "laplace" and "sample_weight" in name and name not in EXPECTED_FAILURES:
                    marks.append(pytest.mark.xfail(raises=ValueError, reason=LAPLACE_WEIGHTS, strict=False))
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


def test_sample_weight_weights_rows_as_fit_weights_do():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 2))
    y = (X[:, 0] > 0).astype(int)
    flipped = np.r_[y[:60], 1 - y[60:]]  # the second half contradicts the first; weight 0 drops it
    weights = np.r_[np.ones(60), np.zeros(60)]
    clf = BNNClassifier(hidden=(16,), engine="ensemble", engine_options=TRIMMED["ensemble"])
    clf.fit(X, flipped, sample_weight=weights)
    assert (clf.predict(X) == y).mean() > 0.9
    reg = BNNRegressor(hidden=(16,), engine="ensemble", engine_options=TRIMMED["ensemble"])
    reg.fit(X, np.where(weights > 0, X[:, 0], 100.0), sample_weight=weights)
    assert np.abs(reg.predict(X) - X[:, 0]).mean() < 0.5


def test_the_default_classifier_matches_scikit_learn_on_moons():
    """BNNClassifier() (an ensemble of 5 MAP networks 2-32-32-2, W-Asym) against MLPClassifier((32, 32)) on 500
    test moons. Measured on data seeds 0-3: scikit-learn (mean of 5 seeds) 0.967 / 0.970 / 0.971 / 0.975,
    BNNClassifier() 0.964 / 0.950 / 0.968 / 0.976. Asserted on seed 0: within 2 points of scikit-learn's mean
    (seed 1 sits exactly on that line)."""
    from sklearn.neural_network import MLPClassifier

    from bnn_asym import datasets

    ds = datasets.load("moons", seed=0, n_samples=1000, test_size=0.5)
    reference = np.mean(
        [
            MLPClassifier((32, 32), random_state=s, max_iter=2000)
            .fit(ds.X_train, ds.y_train)
            .score(ds.X_test, ds.y_test)
            for s in range(5)
        ]
    )
    assert BNNClassifier().fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test) >= reference - 0.02
