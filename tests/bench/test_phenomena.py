import json

import pytest

from bnn_asym.bench.phenomena import MERGE_VARIANTS, PhenomenonConfig, run_lmc, run_merge, run_mli, write_report
from bnn_asym.bench.store import ResultsStore
from bnn_asym.cli import main
from bnn_asym.training import TrainConfig

TINY = dict(data="digits", model="mlp", runs=1, n_points=5, n_samples=300, train=TrainConfig(epochs=2, batch_size=64))


def test_lmc_runs_every_variant_and_resumes_from_the_store(tmp_path):
    store = ResultsStore(tmp_path / "store.sqlite")
    cfg = PhenomenonConfig(**TINY)
    report = run_lmc(cfg, store, progress=False)
    assert set(report["variants"]) == {"standard", "standard+align", "sigma_asym", "w_asym"}
    assert report["jobs_reused"] == 0
    again = run_lmc(cfg, store, progress=False)
    assert again["jobs_reused"] == again["jobs"] == 3  # nothing retrained
    assert len(store.all("lmc_pair")) == 3
    assert json.dumps(again["variants"], sort_keys=True) == json.dumps(report["variants"], sort_keys=True)
    paths = write_report(report, tmp_path / "out", machine="test machine")
    assert all(p.exists() for p in paths)
    assert "| w_asym |" in paths[0].read_text() and "test machine" in paths[0].read_text()


def test_mli_report(tmp_path):
    report = run_mli(PhenomenonConfig(**TINY), ResultsStore(tmp_path / "s.sqlite"), progress=False)
    row = report["variants"]["w_asym"]
    assert 0 <= row["monotonic_fraction"] <= 1 and len(row["train_loss_curves"]) == 1


def test_merge_report_has_every_variant_and_resumes(tmp_path):
    store = ResultsStore(tmp_path / "s.sqlite")
    cfg = PhenomenonConfig(**TINY)
    report = run_merge(cfg, store, progress=False)
    assert list(report["variants"]) == [f"{s} {m}" for s, m in MERGE_VARIANTS]
    for row in report["variants"].values():
        assert 0 <= row["merged_test_accuracy"]["mean"] <= 1 and 0 <= row["split_merged_accuracy"]["mean"] <= 1
        # the parents' ensemble is about as accurate as the average parent or better (margin 0.1: 2-epoch nets)
        assert row["ensemble_test_accuracy"]["mean"] >= row["parents_test_accuracy"]["mean"] - 0.1
    assert run_merge(cfg, store, progress=False)["jobs_reused"] == 3
    paths = write_report(report, tmp_path / "out", machine="test machine")
    md = paths[0].read_text()
    assert "| standard repair |" in md and "split task" in md and paths[2].stat().st_size > 1000


def test_bad_configs():
    with pytest.raises(ValueError, match="n_points"):
        PhenomenonConfig(n_points=24)
    with pytest.raises(ValueError, match="model"):
        PhenomenonConfig(model="vit")


def test_cli_lmc_writes_outputs_and_rejects_regression_data(tmp_path, capsys):
    args = [
        "lmc",
        "--data",
        "digits",
        "--model",
        "cnn",
        "--runs",
        "1",
        "--epochs",
        "1",
        "--n-points",
        "3",
        "--n-samples",
        "200",
        "--out",
        str(tmp_path),
        "--store",
        str(tmp_path / "s.sqlite"),
        "--no-progress",
    ]
    assert main(args) == 0
    assert (tmp_path / "lmc_digits_cnn.png").exists()
    assert main(args[:2] + ["gap"] + args[3:]) == 2
    assert "classification" in capsys.readouterr().err
