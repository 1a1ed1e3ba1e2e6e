import json

import arviz_stats
import numpy as np
import pytest

import bnn_asym
from bnn_asym import datasets


@pytest.fixture(scope="module")
def fitted():
    ds = datasets.load("wine", seed=0)
    net = bnn_asym.MLP(ds.n_features, (8,), ds.n_classes, symmetry="w_asym", seed=0)
    post = bnn_asym.fit(
        net,
        ds.X_train,
        ds.y_train,
        engine="nuts",
        num_warmup=100,
        num_samples=100,
        num_chains=2,
        seed=0,
        progress=False,
    )
    return ds, post


def test_save_load_predict_identical(fitted, tmp_path):
    ds, post = fitted
    path = post.save(tmp_path / "post.nc")
    back = bnn_asym.load(path)
    np.testing.assert_array_equal(back.predict(ds.X_test), post.predict(ds.X_test))
    assert back.model == post.model and back.engine == "nuts" and back.options == post.options
    for k in post.sample_stats:
        np.testing.assert_array_equal(back.sample_stats[k], post.sample_stats[k])
    assert back.sample_stats["diverging"].dtype == bool
    assert back.model.net.constants_digest() == post.model.net.constants_digest()


def test_save_is_atomic_and_never_pickles(fitted, tmp_path, monkeypatch):
    ds, post = fitted
    path = post.save(tmp_path / "post.nc")
    before = path.read_bytes()
    assert b"pickle" not in before.lower()
    import xarray as xr

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    with pytest.raises(OSError):
        post.save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["post.nc"]  # no temporary left behind


def test_load_rejects_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        bnn_asym.load(tmp_path / "missing.nc")
    import xarray as xr

    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(ValueError, match="not a bnn_asym posterior"):
        bnn_asym.load(tmp_path / "other.nc")


def test_arviz_datatree_has_all_groups_and_works_with_arviz_stats(fitted):
    ds, post = fitted
    dt = post.to_arviz()
    assert {"posterior", "sample_stats", "log_likelihood", "posterior_predictive", "observed_data"} <= set(dt.children)
    assert dt["posterior"]["fc0.weight"].shape == (2, 100) + post.model.net.layout["fc0.weight"].shape
    summary = arviz_stats.summary(dt, var_names=["out.bias"])
    assert len(summary) == post.model.n_outputs and "r_hat" in summary.columns
    loo = arviz_stats.loo(dt)
    assert np.isfinite(loo.elpd)
    assert dt["log_likelihood"]["y"].shape == (2, 100, len(ds.y_train))


def test_pointwise_log_likelihood_matches_predictive_probabilities(fitted):
    ds, post = fitted
    ll = post.log_likelihood(ds.X_test, ds.y_test)
    assert ll.shape == (2, 100, len(ds.y_test)) and np.all(ll <= 0)
    # log of the posterior-mean probability of the true class == log-mean-exp of the pointwise log-lik
    probs = post.predict(ds.X_test)[np.arange(len(ds.y_test)), ds.y_test]
    lme = np.log(np.exp(ll.reshape(-1, len(ds.y_test)).astype(np.float64)).mean(0))
    np.testing.assert_allclose(lme, np.log(probs), rtol=1e-4, atol=1e-5)


def test_sample_predictive_shapes_and_labels(fitted):
    ds, post = fitted
    ys = post.sample_predictive(ds.X_test, seed=1)
    assert ys.shape == (2, 100, len(ds.X_test)) and set(np.unique(ys)) <= set(range(ds.n_classes))
    np.testing.assert_array_equal(ys, post.sample_predictive(ds.X_test, seed=1))


def test_diagnostics_report_parameters_and_predictions(fitted):
    _, post = fitted
    d = post.diagnostics()
    for key in ("max_rhat", "min_ess_bulk", "min_ess_tail"):
        assert np.isfinite(d["parameters"][key]) and np.isfinite(d["predictions"][key])
    assert d["grad_evals"] > int(post.sample_stats["n_steps"].sum())  # warmup's gradients count too
    json.dumps(d)  # JSON-able


def test_a_thinned_posterior_keeps_evenly_spaced_draws_and_the_last(fitted):
    ds, post = fitted
    thin = post.thinned(30)
    assert (thin.n_chains, thin.n_draws) == (2, 30) and post.thinned(100) is post and post.thinned(500) is post
    keep = np.unique(np.linspace(99, 0, 30).round().astype(int))
    assert keep[-1] == 99 and len(keep) == 30
    for k, v in post.draws.items():
        np.testing.assert_array_equal(thin.draws[k], v[:, keep])
    np.testing.assert_array_equal(thin.sample_stats["diverging"], post.sample_stats["diverging"][:, keep])
    np.testing.assert_array_equal(thin.outputs(ds.X_test[:5]), post.outputs(ds.X_test[:5])[:, keep])
    # the mixing check's summary: R-hat and bulk ESS as the full summary computes them on the same draws
    quick, full = thin.prediction_convergence(summary_only=True), thin.prediction_convergence()
    assert (quick["max_rhat"], quick["min_ess_bulk"]) == (full["max_rhat"], full["min_ess_bulk"])
    assert np.isnan(quick["max_chainwise_rhat"]) and np.isfinite(full["max_chainwise_rhat"])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_draws must be an integer >= 1"):
            post.thinned(bad)


def test_a_posterior_followed_by_a_run_from_its_last_draws_joins_their_chains(fitted):
    """What a reference round does: go on from the last draws and keep both runs' draws, chain by chain."""
    ds, post = fitted
    later = bnn_asym.fit(
        post.model, ds.X_train, ds.y_train, init=post, num_warmup=20, num_samples=30, num_chains=2, seed=1,
        progress=False,
    )  # fmt: skip
    joined = post.followed_by(later)
    assert (joined.n_chains, joined.n_draws) == (2, 130) and joined.run_info is later.run_info
    for k, v in post.draws.items():
        np.testing.assert_array_equal(joined.draws[k], np.concatenate([v, later.draws[k]], axis=1))
    np.testing.assert_array_equal(joined.sample_stats["diverging"][:, 100:], later.sample_stats["diverging"])
    out = joined.outputs(ds.X_test[:5])
    np.testing.assert_allclose(out[:, :100], post.outputs(ds.X_test[:5]), rtol=1e-6)
    np.testing.assert_allclose(out[:, 100:], later.outputs(ds.X_test[:5]), rtol=1e-6)
    one_chain = bnn_asym.Posterior(post.model, {k: v[:1] for k, v in later.draws.items()})
    with pytest.raises(ValueError, match="as many chains: 2 here, 1 in later"):
        post.followed_by(one_chain)
    other = bnn_asym.MLP(ds.n_features, (4,), ds.n_classes, seed=0)
    with pytest.raises(ValueError, match="same free parameters"):
        post.followed_by(bnn_asym.fit(other, ds.X_train, ds.y_train, engine="map", num_steps=5, progress=False))


def test_predict_rejects_bad_inputs(fitted):
    ds, post = fitted
    with pytest.raises(ValueError, match="shape"):
        post.predict(ds.X_test[:, :3])
    bad = ds.X_test.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        post.predict(bad)


def test_save_cleans_temporaries_of_killed_writers_and_fsyncs(fitted, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    _, post = fitted
    target = tmp_path / "post.nc"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".post.nc.{dead}-0badc0de.tmp"  # what a SIGKILLed save leaves behind
    stale.write_bytes(b"partial")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    post.save(target)
    assert not stale.exists() and [p.name for p in tmp_path.iterdir()] == ["post.nc"]
    assert synced  # the file is on disk before the rename makes it visible


def test_saved_files_follow_the_umask(fitted, tmp_path):
    import os
    import stat

    _, post = fitted
    old = os.umask(0o022)
    try:
        path = post.save(tmp_path / "post.nc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "content", [b"", b"\x89HDF\r\n\x1a\n" + b"\0" * 40, bytes(range(256)) * 8], ids=["empty", "hdf-header", "random"]
)
def test_load_of_damaged_files_names_the_file(tmp_path, content):
    path = tmp_path / "bad.nc"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad.nc is not a readable bnn_asym posterior file"):
        bnn_asym.load(path)


def test_load_of_a_truncated_posterior(fitted, tmp_path):
    _, post = fitted
    full = post.save(tmp_path / "post.nc").read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"cut.nc is not a readable bnn_asym posterior file"):
        bnn_asym.load(cut)


def test_predict_on_no_rows_returns_empty_results(fitted):
    ds, post = fitted
    empty = ds.X_test[:0]
    assert post.predict(empty).shape == (0, ds.n_classes)
    assert post.log_likelihood(empty, ds.y_test[:0]).shape == (2, 100, 0)
    assert post.sample_predictive(empty).shape == (2, 100, 0)


def test_posteriors_of_one_model_share_compiled_programs_and_any_draw_count_predicts_exactly(fitted):
    from bnn_asym.posterior import Posterior

    ds, post = fitted
    # a checkpoint-like posterior: same model, an odd number of draws (padded to a bucket internally)
    few = Posterior(post.model, {k: v[:, :37] for k, v in post.draws.items()}, engine="nuts")
    assert few._jax_fns is post._jax_fns
    out = few.outputs(ds.X_test)
    one_by_one = np.stack(
        [
            np.stack(
                [
                    post.model.net.apply_jax({k: v[c, d] for k, v in post.draws.items()}, ds.X_test.astype(np.float32))
                    for d in range(37)
                ]
            )
            for c in range(2)
        ]
    )
    np.testing.assert_allclose(out, one_by_one, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        few.outputs(ds.X_test),
        few._map_draws(few._jax_fns["outputs"], ds.X_test, draw_chunk=8).reshape(out.shape),
        rtol=1e-6,
        atol=1e-6,
    )


def test_evaluate_scores_the_prediction_and_decomposes_its_uncertainty(fitted):
    from bnn_asym.metrics import classification_metrics, entropy_decomposition

    ds, post = fitted
    probs = post.draw_probabilities(ds.X_test)
    assert probs.shape == (200, len(ds.X_test), ds.n_classes)
    np.testing.assert_allclose(probs.mean(0), post.predict(ds.X_test), rtol=1e-6, atol=1e-9)
    got = post.evaluate(ds.X_test, ds.y_test)
    assert got["metrics"] == pytest.approx(classification_metrics(post.predict(ds.X_test), ds.y_test), rel=1e-6)
    u, parts = got["uncertainty"], entropy_decomposition(probs)
    assert u["total_entropy"] == pytest.approx(u["expected_entropy"] + u["mutual_information"])
    assert u["mutual_information"] == pytest.approx(parts["mutual_information"].mean()) and u["mutual_information"] > 0
    assert 0 <= u["aurc"] <= 1 - got["metrics"]["accuracy"] + 1e-12  # the risk at full coverage bounds the mean
    assert got["ood"] == {}
    json.dumps(got)


def test_evaluate_detects_ood_rows_and_scores_the_test_set_against_itself_at_one_half(fitted):
    """Wine's test rows against themselves: identical scores, AUROC 0.5 for every criterion. Against uniform
    noise over +-10 standardised units, the mutual information of a 2-chain NUTS posterior separates them
    (measured AUROC 0.96; asserted > 0.75, 3.5 null standard deviations (0.06 for 45 + 45 rows) above chance)
    and the expected entropy, which is aleatoric, much less (measured 0.49)."""
    from bnn_asym.metrics.uncertainty import CRITERIA

    ds, post = fitted
    rng = np.random.default_rng(0)
    noise = rng.uniform(-10, 10, ds.X_test.shape).astype(np.float32)
    got = post.evaluate(ds.X_test, ds.y_test, ood={"itself": ds.X_test, "noise": noise})["ood"]
    assert set(got) == {"itself", "noise"} and set(got["itself"]) == set(CRITERIA)
    for criterion in CRITERIA:
        assert got["itself"][criterion]["auroc"] == pytest.approx(0.5, abs=1e-12)
    noise_auroc = {c: got["noise"][c]["auroc"] for c in CRITERIA}
    # epistemic uncertainty flags the noise, aleatoric much less (measured MI 0.96, expected entropy 0.49)
    assert noise_auroc["mutual_information"] > 0.75, noise_auroc
    assert noise_auroc["mutual_information"] > noise_auroc["expected_entropy"] + 0.2, noise_auroc
    assert got["noise"]["mutual_information"]["n_ood"] == len(noise)
    assert post.evaluate(ds.X_test, ds.y_test, ood=noise)["ood"].keys() == {"ood"}


def test_evaluate_rejects_ood_sets_of_the_wrong_shape_and_empty_ones(fitted):
    ds, post = fitted
    with pytest.raises(ValueError, match="OOD set 'noise': .*shape"):
        post.evaluate(ds.X_test, ds.y_test, ood={"noise": np.zeros((5, 3), np.float32)})
    with pytest.raises(ValueError, match="OOD set 'ood' has no rows"):
        post.evaluate(ds.X_test, ds.y_test, ood=np.zeros((0, ds.n_features), np.float32))
    with pytest.raises(ValueError, match="rows but y has"):
        post.evaluate(ds.X_test, ds.y_test[:-1])
