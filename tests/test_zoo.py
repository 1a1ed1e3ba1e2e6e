"""Model zoos: vmapped training equals one network at a time, a zoo reloads what it trained, a killed build
resumes without duplicates, and bad configs are refused."""

import sqlite3

import numpy as np
import pytest

from bnn_asym import zoo

TINY = dict(data="digits", family="mlp", n_networks=6, chunk_size=3, epochs_low=1, epochs_high=2, n_samples=300)


def test_vmapped_training_equals_training_each_network_alone():
    """Networks 0-2 trained together (one vmapped program) and network 1 trained alone reach the same weights:
    each network's hyper-parameters, init and data order depend on its index only (float32; measured max
    difference ~1e-7, asserted 1e-5)."""
    cfg = zoo.ZooConfig(**TINY)
    ds = zoo.load_data(cfg)
    together = zoo.train_chunk(cfg, ds, "w_asym", np.arange(3))
    alone = zoo.train_chunk(cfg, ds, "w_asym", np.array([1]))
    for k in together[2]:
        np.testing.assert_allclose(together[2][k][1], alone[2][k][0], atol=1e-5, err_msg=k)
    np.testing.assert_allclose(together[4]["test"]["accuracy"][1], alone[4]["test"]["accuracy"][0])
    hyper = together[0]
    assert np.all((hyper["lr"] >= 0.005) & (hyper["lr"] <= 0.5)) and np.all(hyper["label_smoothing"] <= 0.2)
    assert not np.allclose(together[2]["fc0.weight"][0], together[1]["fc0.weight"][0])  # it trained


def test_a_zoo_reloads_with_identical_parameters_and_resumes_a_killed_build(tmp_path, monkeypatch):
    cfg = zoo.ZooConfig(**TINY, symmetries=("standard", "w_asym"))
    original = zoo._write_chunk
    written = []

    def killed_after_two(*args):
        if len(written) == 2:
            raise KeyboardInterrupt  # what a kill between chunks leaves: two whole chunks
        written.append(args[2])
        original(*args)

    monkeypatch.setattr(zoo, "_write_chunk", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        zoo.build(cfg, tmp_path, progress=False)
    monkeypatch.setattr(zoo, "_write_chunk", original)
    trained = []
    monkeypatch.setattr(zoo, "train_chunk", lambda *a, _real=zoo.train_chunk: trained.append(a[2:]) or _real(*a))
    z = zoo.build(cfg, tmp_path, progress=False)
    assert len(trained) == 2  # only the two missing chunks
    recorded = z.training_seconds()  # every chunk's time, those of the killed run included
    assert {s: (r["networks"], r["chunks"]) for s, r in recorded.items()} == {"standard": (6, 2), "w_asym": (6, 2)}
    assert all(r["seconds"] > 0 for r in recorded.values())
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT symmetry || network) FROM networks").fetchone() == (12, 12)
    finals, rows = z.parameters("w_asym")
    assert [r["network"] for r in rows] == list(range(6)) and finals["fc0.weight"].shape[0] == 6
    again = zoo.train_chunk(cfg, zoo.load_data(cfg), "w_asym", np.arange(3, 6))
    for k in finals:
        np.testing.assert_array_equal(finals[k][3:], again[2][k])  # stored float32 = trained float32
    inits, _ = z.parameters("w_asym", "init")
    np.testing.assert_array_equal(inits["fc0.weight"][3:], again[1]["fc0.weight"])
    accuracy = np.array([r["test_accuracy"] for r in rows])
    assert np.all((accuracy >= 0) & (accuracy <= 1)) and accuracy.std() > 0  # sampled settings differ


def test_bad_zoo_inputs_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="data"):
        zoo.ZooConfig(data="cifar10")
    with pytest.raises(ValueError, match="symmetries"):
        zoo.ZooConfig(symmetries=("standard", "rotated"))
    with pytest.raises(ValueError, match="epochs_high"):
        zoo.ZooConfig(epochs_low=10, epochs_high=5)
    with pytest.raises(FileNotFoundError, match="no zoo at"):
        zoo.Zoo(tmp_path / "missing")
    zoo._open_index(tmp_path, zoo.ZooConfig(**TINY))
    with pytest.raises(ValueError, match="was built with another config"):
        zoo._open_index(tmp_path, zoo.ZooConfig(**{**TINY, "n_networks": 7}))


def test_cli_builds_a_zoo_and_scores_metanets_and_mli(tmp_path, capsys):
    import json

    from bnn_asym.cli import main

    out = tmp_path / "zoo"
    argv = ["zoo", "--family", "mlp", "--symmetry", "standard", "w_asym", "--n-networks", "8", "--chunk-size", "8"]
    assert main(argv + ["--epochs", "1", "2", "--n-rows", "300", "--out", str(out), "--no-progress"]) == 0
    assert "| w_asym | 8 |" in capsys.readouterr().out
    report = tmp_path / "m.json"
    argv = ["metanet", str(out), "--kinds", "statnn", "nfn", "--seeds", "2", "--epochs", "20", "--mli"]
    assert main(argv + ["--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "| w_asym | statnn |" in printed and "| standard | 8 |" in printed
    assert "| w_asym | nfn | not applicable |" in printed  # W-Asym's free layout is not whole matrices
    got = json.loads(report.read_text())
    assert len(got["metanets"]["standard"]["statnn"]["runs"]) == 2
    assert len(got["metanets"]["standard"]["nfn"]["runs"]) == 2
    assert 0 <= got["mli"]["w_asym"]["monotonic"] <= 1 and got["mli"]["w_asym"]["networks"] <= 8
    argv = ["metanet", str(out), "--kinds", "statnn", "--seeds", "2", "--epochs", "5", "--mli", "--json", str(report)]
    assert main(argv + ["--symmetry", "w_asym"]) == 0  # one kind of the zoo: its tables only
    got = json.loads(report.read_text())
    assert list(got["metanets"]) == ["w_asym"] and list(got["mli"]) == ["w_asym"]
    assert main(argv + ["--symmetry", "sigma_asym"]) == 2  # a kind this zoo does not have: a message
    assert "has no 'sigma_asym' networks" in capsys.readouterr().err
    assert main(["metanet", str(tmp_path / "nowhere")]) == 2  # no zoo there: a message, no traceback
