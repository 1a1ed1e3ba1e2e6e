import subprocess
import sys

import bnn_asym
from bnn_asym.cli import main


def test_demo_shows_symmetry_check(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("standard", "w_asym", "sigma_asym")
    }
    assert lines["standard"].endswith("yes") and lines["w_asym"].endswith("no") and lines["sigma_asym"].endswith("no")


def test_console_script_reports_bad_input_without_traceback():
    r = subprocess.run([sys.executable, "-m", "bnn_asym.cli", "demo", "--seed", "-1"], capture_output=True, text=True)
    assert r.returncode == 2 and "seed" in r.stderr and "Traceback" not in r.stderr


def test_engines_and_their_options_can_be_listed(capsys):
    assert main(["engines"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in bnn_asym.ENGINES) and "bnn-asym engines NAME" in out
    assert main(["engines", "sgld"]) == 0
    out = capsys.readouterr().out
    assert "step_size" in out and "default None" in out and "when to use it:" in out
    assert [o.name for o in bnn_asym.engine_options("sgld")][:2] == ["num_warmup", "num_samples"]


def test_help_shows_defaults_and_what_n_rows_means():
    r = subprocess.run([sys.executable, "-m", "bnn_asym.cli", "fit", "--help"], capture_output=True, text=True)
    assert "(default: moons)" in r.stdout and "(default: nuts)" in r.stdout
    assert "not posterior draws" in " ".join(r.stdout.split())


def test_a_report_without_out_goes_beside_its_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in ./benchmarks/results
    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "s"\nsymmetries = ["w_asym"]\nmetrics = ["calibration"]\n[[data]]\nname = "moons"\n'
        'n_samples = 80\n[[networks]]\ndepth = 2\nwidth = 4\n[[engines]]\nname = "map"\n'
        "options = { num_steps = 20 }\n"
    )
    assert main(["bench", str(suite), "--store", "runs/s.sqlite", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "s_report" / "bench_s.md").exists() and not (tmp_path / "benchmarks").exists()


def test_reference_command_computes_checks_and_extends(tmp_path, capsys):
    """``bnn-asym reference``: --check lists a missing reference (exit 1); a run computes it (10 + 10 NUTS steps:
    flagged, exit 1); --extend 1 recomputes it with one more round in place of the stored one."""
    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "s"\nsymmetries = ["w_asym"]\n[[data]]\nname = "moons"\nn_samples = 80\n[[networks]]\ndepth = 2\n'
        'width = 4\n[[engines]]\nname = "map"\noptions = { num_steps = 20 }\n[reference]\nengine = "nuts"\n'
        "max_rounds = 1\noptions = { num_warmup = 10, num_samples = 10, num_chains = 2 }\n"
    )
    store = str(tmp_path / "s.sqlite")
    assert main(["reference", str(suite), "--store", store, "--check"]) == 1
    assert "moons mlp-2x4 w_asym: missing" in capsys.readouterr().out
    assert main(["reference", str(suite), "--store", store, "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "w_asym: flagged, max prediction R-hat" in out and "1 round(s)" in out
    assert main(["reference", str(suite), "--store", store, "--extend", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 round(s)" in out and out.count("moons mlp-2x4 w_asym") == 1
    assert main(["reference", str(suite), "--store", store, "--extend", "-1"]) == 2


def test_fit_standardises_regression_targets(capsys):
    """bnn-asym fit on diabetes (targets 25-346) reports the NLL of a fit on standardised targets (converted to
    the targets' units), within 10%: measured equal to 1e-3 with mfvi."""
    import re

    from bnn_asym import datasets
    from bnn_asym.metrics import gaussian_nll
    from bnn_asym.models import Likelihood

    assert main(["fit", "--data", "diabetes", "--engine", "mfvi", "--symmetry", "standard", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s*\|\s*", next(line for line in lines if line.startswith("| symmetry |")))
    row = re.split(r"\s*\|\s*", next(line for line in lines if line.startswith("| standard |")))
    nll_cli = float(row[header.index("test NLL")])
    ds = datasets.load("diabetes", seed=0)
    m, s = ds.y_train.mean(), ds.y_train.std()
    net = bnn_asym.MLP(ds.n_features, (16, 16), 1, seed=0)
    post = bnn_asym.fit(
        net, ds.X_train, (ds.y_train - m) / s, likelihood=Likelihood("gaussian"), engine="mfvi", progress=False
    )
    mean, std = post.predict(ds.X_test)
    nll_standardised = gaussian_nll(mean * s + m, std * s, ds.y_test)
    assert abs(nll_cli - nll_standardised) < 0.1 * abs(nll_standardised), (nll_cli, nll_standardised)


def test_evaluate_scores_a_saved_posterior_on_ood_sets_and_rotations(tmp_path, capsys):
    import json

    import numpy as np

    from bnn_asym import datasets

    ds = datasets.load("digits", seed=0)
    inside, _ = datasets.heldout_classes(ds, (0, 1, 2, 3, 4))
    for name, data in (("all", ds), ("low", inside)):
        net = bnn_asym.MLP(ds.n_features, (16,), data.n_classes, symmetry="w_asym", seed=0)
        post = bnn_asym.fit(net, data.X_train, data.y_train, engine="ensemble", n_members=2, progress=False)
        post.save(tmp_path / f"{name}.nc")
    out_json = tmp_path / "all.json"
    argv = ["evaluate", str(tmp_path / "all.nc"), "--data", "digits", "--ood", "noise", "permuted", "rotated"]
    assert main(argv + ["--angles", "0", "90", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "| noise | mutual_information |" in printed and "| rotation (degrees) |" in printed
    got = json.loads(out_json.read_text())
    assert set(got["ood"]) == {"noise", "permuted"} and [r["angle"] for r in got["shift"]] == [0.0, 90.0]
    assert got["shift"][0]["accuracy"] == got["metrics"]["accuracy"]  # 0 degrees is the clean test set
    assert got["shift"][1]["accuracy"] < got["metrics"]["accuracy"] - 0.3  # digits on their side
    assert all(0 <= m["auroc"] <= 1 for by in got["ood"].values() for m in by.values())

    low_json = tmp_path / "low.json"
    assert (
        main(
            ["evaluate", str(tmp_path / "low.nc"), "--data", "digits", "--ood", "heldout-classes"]
            + ["--json", str(low_json)]
        )
        == 0
    )
    low = json.loads(low_json.read_text())
    assert low["ood"]["heldout-classes"]["total_entropy"]["n_ood"] == int(np.sum(ds.y_test >= 5))
    assert main(["evaluate", str(tmp_path / "low.nc"), "--data", "digits"]) == 2  # 5 classes, digits has 10
    assert "--ood heldout-classes --in-classes" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "all.nc"), "--data", "wine"]) == 2  # 13 features, not 64
    assert "takes 64 inputs but 'wine' has 13 features" in capsys.readouterr().err
