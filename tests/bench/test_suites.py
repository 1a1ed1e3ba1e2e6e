"""Suites as data: the built-ins load, bad files are refused with the key path and the accepted values."""

import re

import pytest

from bnn_asym.bench.store import job_key
from bnn_asym.bench.suites import SuiteError, builtin_suites, load_suite, parse_suite

MINIMAL = {
    "name": "t",
    "data": [{"name": "moons"}],
    "networks": [{"depth": 2, "width": 4}],
    "engines": [{"name": "map"}],
    "metrics": ["calibration"],
    "symmetries": ["w_asym"],
}


def test_builtin_suites_load_and_expand():
    assert {"quick", "standard", "paper-bnn", "mcmc-symmetry", "depth"} <= set(builtin_suites())
    quick = load_suite("quick")
    cells = quick.cells()
    assert len(cells) == len(quick.engines) * len(quick.symmetries) * len(quick.seeds)
    assert len({c.key for c in cells}) == len(cells)  # every cell has its own key
    paper = load_suite("paper-bnn")
    assert {n.hidden for n in paper.networks} == {(256,) * 7, (256,) * 15}
    assert {n.init for n in paper.networks} == {"kaiming_normal", "torch_default"}


def test_standard_priors_is_the_standard_suite_under_a_wider_prior():
    """Its report is the standard report's prior-sensitivity section: only the prior scale (and the seeds) may differ,
    so the two files cannot drift apart."""
    import dataclasses

    standard, wider = load_suite("standard"), load_suite("standard-priors")
    assert [n.prior_scale for n in wider.networks] == [4.0] and wider.seeds == (0,)
    assert wider.networks == tuple(dataclasses.replace(n, prior_scale=4.0) for n in standard.networks)
    assert (wider.engines, wider.symmetries, wider.data, wider.metrics) == (
        standard.engines,
        standard.symmetries,
        standard.data,
        standard.metrics,
    )
    assert wider.reference == standard.reference


def test_mcmc_symmetry_shares_the_standard_suites_references():
    """One store serves both suites and computes each reference once: every mcmc-symmetry cell's reference config
    is a standard cell's."""
    standard, mcmc = load_suite("standard"), load_suite("mcmc-symmetry")
    assert mcmc.reference == standard.reference
    shared = {job_key(c.reference_config(standard.reference)) for c in standard.cells()}
    assert {job_key(c.reference_config(mcmc.reference)) for c in mcmc.cells()} == shared


def test_paper_bnn_prior10_is_paper_bnn_under_the_papers_prior():
    """The paper's prior precision 0.01 is prior_scale 10; nothing else may differ from paper-bnn."""
    import dataclasses

    paper, prior10 = load_suite("paper-bnn"), load_suite("paper-bnn-prior10")
    assert {n.prior_scale for n in paper.networks} == {1.0}
    assert prior10.networks == tuple(dataclasses.replace(n, prior_scale=10.0) for n in paper.networks)
    assert (prior10.engines, prior10.symmetries, prior10.data, prior10.metrics, prior10.seeds) == (
        paper.engines,
        paper.symmetries,
        paper.data,
        paper.metrics,
        paper.seeds,
    )
    assert {c.key for c in prior10.cells()}.isdisjoint(c.key for c in paper.cells())


def test_a_suite_built_on_a_base_replaces_only_what_it_names(tmp_path):
    import dataclasses

    (tmp_path / "base.toml").write_text(
        'name = "base"\nseeds = [0, 1]\nsymmetries = ["w_asym"]\nmetrics = ["calibration"]\n'
        '[[data]]\nname = "moons"\n[[networks]]\ndepth = 2\nwidth = 4\n[[networks]]\ndepth = 3\nwidth = 4\n'
        '[[engines]]\nname = "map"\n'
    )
    child = tmp_path / "sub" / "child.toml"
    child.parent.mkdir()
    child.write_text(
        'base = "../base.toml"\nname = "child"\nseeds = [5]\nevery_network = { prior_scale = 3.0, seed = 2 }\n'
    )
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("base: sub/child.toml\nname: grandchild\nsymmetries: [standard]\n")
    base, sub, leaf = load_suite(tmp_path / "base.toml"), load_suite(child), load_suite(grandchild)
    assert (sub.name, sub.seeds, sub.symmetries, sub.engines, sub.data) == (
        "child",
        (5,),
        base.symmetries,
        base.engines,
        base.data,
    )
    assert sub.networks == tuple(dataclasses.replace(n, prior_scale=3.0, seed=2) for n in base.networks)
    assert (leaf.name, leaf.symmetries, leaf.seeds, leaf.networks) == ("grandchild", ("standard",), (5,), sub.networks)
    # a built-in base by name, from a dict
    assert parse_suite({"base": "quick", "name": "q2"}).engines == load_suite("quick").engines


@pytest.mark.parametrize(
    "table, message",
    [
        ({"base": "quick"}, "a suite built on base 'quick' needs a name of its own"),
        ({"base": "no-such-suite", "name": "x"}, "no suite 'no-such-suite'"),
        ({"base": 3, "name": "x"}, "base: the name of a built-in suite or a suite file; got 3"),
        ({"base": "quick", "name": "x", "every_network": {"widht": 3}}, "widht"),
        ({"base": "quick", "name": "x", "every_network": 4}, "every_network: a table of network keys"),
    ],
)
def test_bad_bases_are_refused(table, message):
    with pytest.raises(SuiteError, match=re.escape(message)):
        parse_suite(table)


def test_suites_that_are_each_others_base_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\nname = "a"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\nname = "b"\n')
    with pytest.raises(SuiteError, match="suites that are each other's base"):
        load_suite(tmp_path / "a.toml")


def test_keys_depend_on_everything_that_changes_the_numbers():
    suite = parse_suite(MINIMAL)
    (a,) = suite.cells()
    (b,) = parse_suite({**MINIMAL, "engines": [{"name": "map", "options": {"num_steps": 10}}]}).cells()
    (c,) = parse_suite({**MINIMAL, "seeds": [1]}).cells()
    assert len({a.key, b.key, c.key}) == 3
    assert a.key == parse_suite(MINIMAL).cells()[0].key


@pytest.mark.parametrize(
    "change, message",
    [
        ({"engines": [{"name": "vae"}]}, r"engines\[0\]\.name: 'vae' is not valid; accepted: 'mfvi', 'lowrank_vi'"),
        ({"engines": [{"name": "map", "options": {"num_step": 5}}]}, r"engines\[0\]: engine 'map' got unknown option"),
        (
            {"engines": [{"name": "map", "optoins": {}}]},
            r"engines\[0\]: unknown key\(s\) optoins; accepted: name, label",
        ),
        ({"data": [{"name": "cifar10"}]}, r"data\[0\]\.name: 'cifar10' is not valid; accepted: 'digits'"),
        ({"networks": [{"depth": 0}]}, r"networks\[0\]\.depth: 0 is not valid; accepted: an integer >= 1"),
        ({"networks": [{"hidden": [8], "depth": 3}]}, r"networks\[0\]: give either hidden"),
        ({"symmetries": ["mirror"]}, r"symmetries\[0\]: 'mirror' is not valid"),
        ({"seeds": []}, r"seeds: expected a non-empty list"),
        ({"metrics": ["agreement"]}, r"metrics: 'agreement' needs a \[reference\]"),
        (
            {"reference": {"options": {"num_chains": 1}}},
            r"reference\.options\.num_chains: a reference needs at least 2",
        ),
        ({"engines": [{"name": "map"}, {"name": "map"}]}, r"engines: labels must be unique"),
        ({"colour": "red"}, r"\(top level\): unknown key\(s\) colour"),
    ],
)
def test_bad_suites_name_the_key_and_the_accepted_values(change, message):
    with pytest.raises(SuiteError, match=message):
        parse_suite({**MINIMAL, **change}, "bad.toml")


def test_files_toml_and_yaml_and_errors(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "t"\n[[data]]\nname = "moons"\n[[networks]]\ndepth = 2\n[[engines]]\nname = "map"\n'
        'metrics = ["calibration"]\n'
    )
    with pytest.raises(SuiteError, match=r"s.toml: engines\[0\]: unknown key\(s\) metrics"):
        load_suite(toml)  # the metrics line landed inside the engine table
    toml.write_text(
        'name = "t"\nmetrics = ["calibration"]\n[[data]]\nname = "moons"\n[[networks]]\ndepth = 2\n'
        '[[engines]]\nname = "map"\n'
    )
    assert load_suite(toml).name == "t"
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text(
        "name: y\nmetrics: [calibration]\ndata: [{name: moons}]\nnetworks: [{depth: 2}]\nengines: [{name: map}]\n"
    )
    assert load_suite(yaml_file).name == "y"
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(SuiteError, match="broken.toml: cannot be parsed"):
        load_suite(tmp_path / "broken.toml")
    with pytest.raises(SuiteError, match="neither a built-in"):
        load_suite("no-such-suite")


def test_a_cells_key_holds_the_reference_it_is_scored_against():
    """Agreement numbers depend on the reference: a changed reference sampler, its options or seed gives new cell
    keys (a store does not reuse cells scored against another reference); max_rounds does not (more rounds estimate
    the same posterior), nor does a reference in a suite that scores no agreement."""
    import dataclasses

    base = parse_suite({**MINIMAL, "metrics": ["agreement"], "reference": {"options": {"num_chains": 2}}}, "t")
    keys = {c.key for c in base.cells()}

    def keys_with(**changes):
        return {c.key for c in base.with_overrides(reference=dataclasses.replace(base.reference, **changes)).cells()}

    assert keys_with(engine="adjusted_mclmc").isdisjoint(keys)
    assert keys_with(seed=7).isdisjoint(keys)
    assert keys_with(options=(("num_chains", 4),)).isdisjoint(keys)
    assert keys_with(max_rounds=5) == keys
    unscored = parse_suite({**MINIMAL, "reference": {"options": {"num_chains": 2}}}, "t")
    assert all(c.config()["reference"] is None for c in unscored.cells())
    assert base.cells()[0].config()["reference"]["engine"] == base.reference.engine


def test_the_report_names_the_reference_sampler_its_cells_share():
    from bnn_asym.bench.report import reference_name

    def cell(reference):
        return {"config": {"reference": reference}}

    amclmc, nuts = {"engine": "adjusted_mclmc"}, {"engine": "nuts"}
    assert reference_name([cell(amclmc), cell(amclmc)]) == "the adjusted_mclmc reference"
    assert reference_name([cell(amclmc), cell(nuts)]) == "the reference"
    assert reference_name([cell(amclmc), {"config": {}}]) == "the reference"  # a store from before cells said
