import numpy as np
import pytest

from bnn_asym.bench.bnn import BNNBenchConfig, chain_disagreement, run_bnn_bench, write_bnn_report
from bnn_asym.bench.store import ResultsStore


@pytest.mark.filterwarnings("ignore:nuts. .* divergent")
@pytest.mark.parametrize("suite", ["depth", "mcmc"])
def test_bnn_suites_run_report_and_resume(suite, tmp_path):
    cfg = BNNBenchConfig(suite=suite, data="digits", seeds=1, width=8, depths=(2,), vi_steps=60, nuts_warmup=20,
                         nuts_samples=20, chains=2, n_samples=300)
    store = ResultsStore(tmp_path / "s.sqlite")
    report = run_bnn_bench(cfg, store, progress=False)
    assert {r["symmetry"] for r in report["rows"]} == {"standard", "sigma_asym", "w_asym"}
    assert all(0 <= r["test"]["accuracy"] <= 1 for r in report["rows"])
    if suite == "mcmc":
        assert all(0 <= r["chain_disagreement"] <= 1 and r["rhat_pred_max"] >= 0.99 for r in report["rows"])
    else:
        assert all(len(r["elbo_every_20"]) == 3 for r in report["rows"])
    assert run_bnn_bench(cfg, store, progress=False)["jobs_reused"] == 3
    paths = write_bnn_report(report, tmp_path, machine="m")
    assert "| w_asym |" in paths[0].read_text() and paths[2].stat().st_size > 0


def test_chain_disagreement_is_zero_for_identical_chains():
    class FakePosterior:
        def outputs(self, X):
            one = np.random.default_rng(0).standard_normal((1, 5, len(X), 3))
            return np.concatenate([one, one])

    assert chain_disagreement(FakePosterior(), np.zeros((4, 2))) == pytest.approx(0.0)


def test_bad_bench_configs():
    with pytest.raises(ValueError, match="suite"):
        BNNBenchConfig(suite="speed")
    with pytest.raises(ValueError, match="seeds"):
        BNNBenchConfig(seeds=0)
