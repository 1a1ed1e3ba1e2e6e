"""The benchmark harness end to end on a trimmed quick suite: store, report, export, resume after a kill,
and the same numbers from every backend."""

import csv
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from bnn_asym.bench.harness import run_suite
from bnn_asym.bench.report import write_report
from bnn_asym.bench.store import BenchStore
from bnn_asym.bench.suites import parse_suite

TRIMMED = {
    "name": "quick-trimmed",
    "symmetries": ["standard", "w_asym"],
    "seeds": [0],
    "data": [{"name": "moons", "n_samples": 160}],
    "networks": [{"family": "mlp", "depth": 2, "width": 8}],
    "reference": {
        "engine": "nuts",
        "max_rounds": 1,
        "options": {"num_warmup": 150, "num_samples": 150, "num_chains": 2},
    },
    "engines": [
        {"name": "nuts", "options": {"num_warmup": 60, "num_samples": 60, "num_chains": 2}},
        {"name": "mfvi", "options": {"num_steps": 300, "lr": 0.02}},
        {"name": "ensemble", "options": {"n_members": 2, "num_steps": 200, "lr": 0.02}},
    ],
}
TIMING = ("wall_s", "fit_s", "init_wall_s", "time_to", "_per_s")


def test_trimmed_quick_suite_end_to_end(tmp_path):
    suite = parse_suite(TRIMMED)
    store = BenchStore(tmp_path / "b.sqlite")
    summary = run_suite(suite, store, progress=False)
    assert summary == {"cells": 6, "computed": 6, "reused": 0, "references": 2}
    cells = store.cells()
    assert len(cells) == 6
    for c in cells:
        m = c["metrics"]
        assert 0 <= m["agreement"] <= 1 and 0 <= m["total_variation"] <= 1 and 0 <= m["accuracy"] <= 1
        assert m["grad_evals"] > 0 and m["wall_s"] > 0
        curves = store.curves(c["key"])
        assert len(curves["agreement"]) >= 5 and curves["nll"][-1][0] >= curves["nll"][0][0]
    for c in cells:  # moons is tabular: the ood group scores extrapolated inputs; no images, no shift group
        m = c["metrics"]
        assert 0 <= m["ood_extrapolation_mutual_information_auroc"] <= 1 and m["test_aurc"] >= 0
        assert not any(k.startswith("shift_") for k in m)
    nuts = [c for c in cells if c["config"]["engine"]["name"] == "nuts"]
    assert all({"rhat_pred_max", "modes", "rhat_params_aligned_max", "barrier_mean"} <= set(c["metrics"]) for c in nuts)
    assert all(
        {"grads_to_agreement", "grads_to_ref_nll_5pct", "time_to_ref_nll_5pct_s"} <= set(c["metrics"]) for c in cells
    )
    assert run_suite(suite, store, progress=False)["computed"] == 0  # everything comes from the store now
    paths = write_report(store, tmp_path / "report", machine="test machine")
    md = paths[0].read_text()
    assert "| moons | mlp-2x8 | nuts | w_asym |" in md and "test machine" in md and "Reference posteriors" in md
    assert "## Time to target (warm starts included)" in md
    assert any(p.suffix == ".png" and p.stat().st_size > 1000 for p in paths)
    names = {p.name for p in paths}
    assert {"bench_all_reference.png", "bench_all_convergence.png", "bench_all_reliability.png"} <= names
    assert "![bench_all_reference](bench_all_reference.png)" in md
    assert "## Uncertainty: OOD detection" in md and "AUROC MI (extrapolation)" in md
    assert {"bench_all_ood.png", "bench_all_risk_coverage.png"} <= names and "bench_all_shift.png" not in names
    rows = list(csv.DictReader(open(store.export_csv(tmp_path / "rows.csv"))))
    assert len(rows) == sum(len(c["metrics"]) for c in cells)
    assert {"suite", "cell", "data", "network", "symmetry", "engine", "seed", "metric", "value"} == set(rows[0])


def _comparable(store):
    out = {}
    for c in store.cells():
        for k, v in c["metrics"].items():
            if not any(t in k for t in TIMING):
                out[(c["key"], k)] = v
    return out


@pytest.mark.parametrize("backend", ["joblib", "dask"])
def test_backends_give_the_same_rows_as_in_process(tmp_path, backend):
    small = {**TRIMMED, "metrics": ["calibration", "convergence", "multimodality"], "engines": TRIMMED["engines"][1:]}
    small.pop("reference")
    suite = parse_suite(small)
    here = BenchStore(tmp_path / "here.sqlite")
    there = BenchStore(tmp_path / "there.sqlite")
    run_suite(suite, here, progress=False)
    run_suite(suite, there, backend=backend, jobs=2, progress=False)
    a, b = _comparable(here), _comparable(there)
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9, nan_ok=True), k


def test_references_run_in_this_process_whatever_the_local_backend(tmp_path, monkeypatch):
    """Spread over local workers, the slowest reference held one core while the other idled; here each runs in
    turn with its chains over this process's devices."""
    import os

    from bnn_asym.bench import harness

    ran_in = []

    def fake_reference(cell, reference, log=None):
        ran_in.append((os.getpid(), cell.symmetry))
        return {"flagged": False, "rhat_pred_max": 1.0, "threshold": 1.01, "wall_s": 0.0}

    monkeypatch.setattr(harness, "compute_reference", fake_reference)
    suite = parse_suite(TRIMMED)
    store = BenchStore(tmp_path / "r.sqlite")
    monkeypatch.setattr(store, "done", lambda: {c.key for c in suite.cells()})  # no cells to run: references only
    summary = run_suite(suite, store, backend="joblib", jobs=2, progress=False)
    assert summary["references"] == 2 and summary["computed"] == 0
    assert sorted(ran_in) == [(os.getpid(), "standard"), (os.getpid(), "w_asym")]
    assert len(store.references()) == 2


def test_a_killed_run_resumes_without_duplicate_rows(tmp_path):
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(
        'name = "kill"\nsymmetries = ["standard", "w_asym", "sigma_asym"]\nseeds = [0, 1]\n'
        'metrics = ["calibration"]\n[[data]]\nname = "moons"\nn_samples = 120\n'
        '[[networks]]\ndepth = 2\nwidth = 8\n[[engines]]\nname = "map"\noptions = { num_steps = 50 }\n'
    )
    store = tmp_path / "k.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "bnn_asym.cli",
        "bench",
        str(suite_file),
        "--store",
        str(store),
        "--no-progress",
        "--out",
        str(tmp_path / "out"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    if db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] >= 2:
                        break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(BenchStore(store).done())
    assert 2 <= partial <= 6
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 6
        per_cell = db.execute("SELECT cell, COUNT(*) FROM metrics GROUP BY cell").fetchall()
    assert len(per_cell) == 6 and len({n for _, n in per_cell}) == 1  # every cell once, with the same metrics


def test_cli_bench_rejects_bad_suites_and_backends(tmp_path, capsys):
    from bnn_asym.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "b"\n[[data]]\nname = "moons"\n[[networks]]\ndepth = 2\n[[engines]]\nname = "vae"\n')
    assert main(["bench", str(bad), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "engines[0].name: 'vae' is not valid" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.sqlite")]) == 2


def test_unmixed_chains_report_no_ess_figure():
    """Prediction R-hat above 1.1: the ESS figures are stored as NaN with mixed = 0, and the report reads "not mixed"
    for that engine (a seed that did not mix makes the group's figure "not mixed", not a mean over the others)."""
    from bnn_asym.bench.harness import mixing_metrics
    from bnn_asym.bench.report import headline_table

    pred = {"max_rhat": 1.4, "min_ess_bulk": 12.0, "max_chainwise_rhat": 1.01, "max_nested_rhat": 1.5}
    unmixed = mixing_metrics(pred, wall_s=2.0, grad_evals=1000)
    assert unmixed["mixed"] == 0 and np.isnan(unmixed["pred_ess_per_s"]) and np.isnan(unmixed["ess_pred_min"])
    assert unmixed["rhat_pred_chainwise_max"] == 1.01 and unmixed["rhat_pred_nested_max"] == 1.5
    mixed = mixing_metrics(dict(pred, max_rhat=1.05), wall_s=2.0, grad_evals=1000)
    assert mixed["mixed"] == 1 and mixed["pred_ess_per_s"] == 6.0

    def cell(engine, seed, metrics):
        config = {"data": {"name": "moons"}, "network_label": "mlp-2x8", "seed": seed, "symmetry": "standard"}
        return {"config": {**config, "engine": {"name": engine, "label": engine}}, "metrics": metrics}

    table = headline_table(
        [cell("sgld", 0, unmixed), cell("sgld", 1, mixed), cell("nuts", 0, mixed), cell("nuts", 1, mixed)]
    )
    sgld = next(line for line in table.splitlines() if "| sgld |" in line)
    nuts = next(line for line in table.splitlines() if "| nuts |" in line)
    assert "not mixed" in sgld and "not mixed" not in nuts and "6.000" in nuts


@pytest.mark.parametrize("threshold, rounds", [(1.001, 2), (100.0, 1)])
def test_a_reference_is_extended_until_it_passes_or_its_rounds_end(tmp_path, threshold, rounds):
    """10 + 10 NUTS steps cannot reach R-hat 1.001: the reference runs a second round from the first one's last
    draws (warmup again, 10 new draws) and keeps both rounds' draws, and stays flagged; a threshold of 100 passes
    after one round."""
    suite = parse_suite(
        {
            **TRIMMED,
            "symmetries": ["w_asym"],
            "engines": [{"name": "map", "options": {"num_steps": 50}}],
            "reference": {
                "engine": "nuts",
                "init": "ensemble",
                "max_rounds": 2,
                "rhat_threshold": threshold,
                "options": {"num_warmup": 10, "num_samples": 10, "num_chains": 2},
            },
        }
    )
    store = BenchStore(tmp_path / "b.sqlite")
    run_suite(suite, store, progress=False)
    ((cfg, ref),) = store.references()
    assert cfg["reference"]["init"] == "ensemble" and ref["rounds"] == rounds
    assert ref["draws_per_chain"] == 10 * 2 ** (rounds - 1) and ref["grad_evals"] > 0
    assert ref["final_options"]["num_warmup"] == 10 and ref["final_options"]["num_samples"] == 10
    assert ref["flagged"] == (ref["rhat_pred_max"] > threshold) and ref["flagged"] == (rounds == 2)
    assert ref["rhat_pred_nested_max"] >= 1 and np.isfinite(ref["rhat_pred_chainwise_max"])  # nested: sqrt(1 + B / W)
    md = write_report(store, tmp_path / "report")[0].read_text()
    assert f"| nuts, ensemble | 2 x {ref['draws_per_chain']} | {rounds} |" in md and "Pass rule" in md


def test_every_reference_round_is_logged_with_the_draws_it_has_added_up():
    from bnn_asym.bench.harness import compute_reference

    options = {"num_warmup": 10, "num_samples": 10, "num_chains": 2}  # far too short for R-hat 1.0001
    spec = {"engine": "nuts", "max_rounds": 2, "rhat_threshold": 1.0001, "options": options}
    suite = parse_suite({**TRIMMED, "symmetries": ["w_asym"], "reference": spec})
    messages: list[str] = []
    result = compute_reference(suite.cells()[0], suite.reference, messages.append)
    assert [m.split(": ")[1].split(",")[0] for m in messages] == ["2 chains x 10 draws", "2 chains x 20 draws"]
    assert messages[1].startswith("reference for w_asym / mlp-2x8, round 2") and result["draws_per_chain"] == 20


def test_time_to_target_table_says_never_where_no_seed_got_there():
    from bnn_asym.bench.report import time_to_target_table

    def cell(engine, seed, seconds):
        config = {"data": {"name": "moons"}, "network_label": "mlp-2x8", "seed": seed, "symmetry": "w_asym"}
        metrics = {"time_to_agreement_s": seconds, "grads_to_agreement": 10 * seconds}
        return {"config": {**config, "engine": {"name": engine, "label": engine}}, "metrics": metrics}

    nan = float("nan")
    table = time_to_target_table(
        [cell("sgld", 0, nan), cell("sgld", 1, nan), cell("nuts", 0, 2.0), cell("nuts", 1, 4.0)]
    )
    assert "| moons | mlp-2x8 | sgld | w_asym | never | never |" in table
    assert "| moons | mlp-2x8 | nuts | w_asym | 3.000 ± 1.414 | 30.000 ± 14.142 |" in table


def test_ood_and_shift_groups_score_a_digits_posterior():
    """The ood group's far-OOD sets for images and the shift group's rotations, on a 2-member ensemble: at 0
    degrees the shift metrics are the test set's own, and digits on their side (90 degrees) lose > 30 points of
    accuracy (measured: 0.95 -> 0.2-0.3)."""
    from types import SimpleNamespace

    import bnn_asym
    from bnn_asym import datasets
    from bnn_asym.bench.harness import FittedCell, score_ood, score_shift, score_test
    from bnn_asym.datasets import ROTATION_ANGLES

    ds = datasets.load("digits", seed=0)
    net = bnn_asym.MLP(ds.n_features, (16,), ds.n_classes, seed=0)
    post = bnn_asym.fit(net, ds.X_train, ds.y_train, engine="ensemble", n_members=2, progress=False)
    f = FittedCell(SimpleNamespace(seed=0), ds, post.model, post, None, [], 0.0)
    ood, artifacts = score_ood(f)
    for kind in ("noise", "permuted", "inverted"):
        for criterion in ("total_entropy", "expected_entropy", "mutual_information", "max_probability"):
            assert 0 <= ood[f"ood_{kind}_{criterion}_auroc"] <= 1 and 0 <= ood[f"ood_{kind}_{criterion}_fpr95"] <= 1
    assert ood["test_total_entropy"] == pytest.approx(ood["test_expected_entropy"] + ood["test_mutual_information"])
    curve = artifacts["risk_coverage"]
    assert len(curve["coverage"]) == len(curve["risk"]) <= 50 and curve["coverage"][-1] == 1.0
    shift, _ = score_shift(f)
    assert len(shift) == 5 * len(ROTATION_ANGLES)
    test = score_test(post, ds, None)
    assert shift["shift_0_accuracy"] == test["accuracy"] and shift["shift_0_nll"] == pytest.approx(test["nll"])
    assert shift["shift_90_accuracy"] < test["accuracy"] - 0.3


def test_report_tables_and_figures_of_the_shift_group(tmp_path):
    """Hand-made cells: the shift table lists every angle scored, mean ± std over seeds, and its figure draws."""
    from bnn_asym.bench.report import plot_shift, shift_table

    def cell(engine, symmetry, seed, acc0):
        metrics = {}
        for angle in (0, 45, 90):
            metrics.update(
                {
                    f"shift_{angle}_accuracy": acc0 - angle / 200 + 0.01 * seed,
                    f"shift_{angle}_ece": angle / 900,
                    f"shift_{angle}_nll": 0.1 + angle / 100,
                    f"shift_{angle}_total_entropy": angle / 90,
                    f"shift_{angle}_mutual_information": angle / 300,
                }
            )
        config = {"data": {"name": "digits"}, "network_label": "mlp", "engine": {"label": engine}, "symmetry": symmetry}
        return {"config": config, "metrics": metrics}

    cells = [cell(e, s, seed, 0.95) for e in ("nuts", "mfvi") for s in ("standard", "w_asym") for seed in (0, 1)]
    table = shift_table(cells)
    assert "| acc 0° | acc 45° | acc 90° | ECE 45° | MI 45° |" in table
    assert "| digits | mlp | nuts | standard | 0.955 ± 0.007 | 0.730 ± 0.007 | 0.505 ± 0.007 | 0.050 ± 0.000 |" in table
    assert plot_shift(cells, tmp_path / "shift.png").stat().st_size > 1000


def test_prior_sensitivity_table_puts_each_prior_side_by_side():
    from bnn_asym.bench.report import prior_sensitivity_table
    from bnn_asym.bench.suites import network_label

    def cell(engine, scale, seed, nll):
        network = {"family": "mlp", "hidden": [16, 16], "prior_scale": scale}
        config = {"data": {"name": "digits"}, "network": network, "engine": {"label": engine}, "symmetry": "standard"}
        return {"config": config, "metrics": {"nll": nll + 0.01 * seed, "accuracy": 0.97}}

    assert network_label({"family": "mlp", "hidden": [16, 16], "prior_scale": 1.0}) == "mlp-3x16-prior1"
    cells = [
        cell(e, s, seed, 0.18 if s == 1.0 else 0.09)
        for e in ("nuts", "ensemble")
        for s in (1.0, 4.0)
        for seed in (0, 1)
    ]
    table = prior_sensitivity_table(cells)
    assert "| NLL (prior 1) | NLL (prior 4) |" in table
    assert (
        "| digits | mlp-3x16 | nuts | standard | 0.185 ± 0.007 | 0.095 ± 0.007 | 0.970 ± 0.000 | 0.970 ± 0.000 |"
        in table
    )
    assert prior_sensitivity_table([c for c in cells if c["config"]["network"]["prior_scale"] == 1.0]) == ""


def test_depth_table_and_figure_read_a_trend_along_a_row(tmp_path):
    """MLPs that differ only in depth get one column per number of hidden layers; a seed that never agreed reads
    "never" only when no seed got there; networks of one depth (or several widths) give no section."""
    from bnn_asym.bench.report import depth_table, plot_depth

    def cell(engine, symmetry, layers, seed, grads):
        network = {"family": "mlp", "hidden": [16] * layers, "prior_scale": 1.0}
        config = {"data": {"name": "digits"}, "network": network, "engine": {"label": engine}, "symmetry": symmetry}
        metrics = {"grads_to_agreement": grads, "rhat_pred_max": 1.0 + 0.01 * layers + 0.002 * seed, "nll": 0.1}
        return {"config": config, "metrics": metrics}

    cells = [
        cell("nuts", s, layers, seed, float("nan") if layers == 8 or (layers == 4 and seed == 1) else 1000.0 * layers)
        for s in ("standard", "w_asym")
        for layers in (2, 4, 8)
        for seed in (0, 1)
    ]
    table = depth_table(cells)
    assert "| measure | engine | symmetry | 2 hidden | 4 hidden | 8 hidden |" in table
    # depth 4: one seed of two got there (the mean is over it); depth 8: none did
    assert "| gradients to 95% agreement | nuts | standard | 2000 ± 0 | 4000 | never |" in table
    assert "| max R-hat predictions | nuts | w_asym | 1.021 ± 0.001 | 1.041 ± 0.001 | 1.081 ± 0.001 |" in table
    assert plot_depth(cells, tmp_path / "depth.png").stat().st_size > 1000
    assert depth_table([c for c in cells if len(c["config"]["network"]["hidden"]) == 2]) == ""
    assert plot_depth([c for c in cells if len(c["config"]["network"]["hidden"]) == 2], tmp_path / "x.png") is None


def test_one_report_of_a_suite_and_its_companion_suite(tmp_path, capsys):
    """`bnn-asym report --suite standard --suite standard-priors`: one report, named after the first suite, over
    both suites' cells, so the prior-sensitivity section compares the two priors; one suite alone has no such
    section."""
    from bnn_asym.cli import main

    store = BenchStore(tmp_path / "b.sqlite")
    for suite, scale, nll in (("standard", 1.0, 0.18), ("standard-priors", 4.0, 0.09), ("other", 9.0, 0.5)):
        network = {"family": "mlp", "hidden": [16, 16], "prior_scale": scale}
        config = {
            "data": {"name": "digits"},
            "network": network,
            "network_label": f"mlp-3x16-prior{scale:g}",
            "engine": {"name": "nuts", "label": "nuts"},
            "symmetry": "w_asym",
            "seed": 0,
        }
        store.put_cell(f"key-{suite}", suite, config, {"metrics": {"nll": nll, "accuracy": 0.97}}, 1.0)
    out = tmp_path / "report"
    assert (
        main(["report", str(store.path), "--suite", "standard", "--suite", "standard-priors", "--out", str(out)]) == 0
    )
    md = (out / "bench_standard.md").read_text()
    assert "Benchmark: standard, standard-priors" in md and "## Prior sensitivity" in md
    assert "| digits | mlp-3x16 | nuts | w_asym | 0.180 | 0.090 |" in md and "prior 9" not in md
    assert main(["report", str(store.path), "--suite", "standard", "--out", str(tmp_path / "alone")]) == 0
    assert "## Prior sensitivity" not in (tmp_path / "alone" / "bench_standard.md").read_text()
    capsys.readouterr()


def test_a_flagged_reference_says_how_many_effective_draws_it_needs():
    from bnn_asym.bench.harness import ess_needed_text
    from bnn_asym.bench.suites import ReferenceSpec

    spec = ReferenceSpec(engine="nuts", options=(("num_chains", 8), ("num_samples", 400)))
    text = ess_needed_text({"ess_pred_min": 450.0, "final_options": {"num_chains": 8, "num_samples": 1600}}, spec)
    assert "ESS 450" in text and "at least 800" in text and "--extend" in text
