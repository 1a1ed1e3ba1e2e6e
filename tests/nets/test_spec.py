import json

import numpy as np
import pytest
from conftest import SYMMETRIES, small_specs

import bnn_asym
from bnn_asym.nets import spec_from_json


def test_paper_lmc_parameter_counts():
    assert bnn_asym.MLP.paper_lmc("standard").num_free_params == 935_434
    assert bnn_asym.MLP.paper_lmc("w_asym").num_free_params == 834_570
    assert bnn_asym.MLP.paper_lmc("sigma_asym").num_free_params == 935_434


def test_paper_resnet20_settings():
    net = bnn_asym.ResNet.paper_resnet20("w_asym")
    fixed = {layer.name: layer.fixed_per_row for layer in net.weight_layers()}
    assert fixed["stem"] == 12 and fixed["out"] == 8
    assert fixed["s1b2_conv2"] == 36 and fixed["s2b0_conv1"] == 54 and fixed["s3b1_conv1"] == 72
    assert fixed["s2b0_skip"] == 6 and fixed["s3b0_skip"] == 8
    assert all(layer.kappa == 2.0 for layer in net.weight_layers())
    standard = bnn_asym.ResNet.paper_resnet20("standard")
    removed = sum(layer.d_out * layer.fixed_per_row for layer in net.weight_layers())
    assert standard.num_free_params - net.num_free_params == removed


def test_paper_bnn_mlp_uses_8_fixed_entries_kappa_half():
    net = bnn_asym.MLP.paper_bnn(3072, 10, depth=8)
    assert len(net.weight_layers()) == 8
    assert {(l.n_fix, l.kappa) for l in net.weight_layers()} == {(8, 0.5)}


def test_default_rule_matches_paper_bnn_setting_at_width_256():
    net = bnn_asym.MLP(256, (256, 256), 10, symmetry="w_asym")
    assert [l.n_fix for l in net.weight_layers()] == [8, 8, 8]
    assert [l.kappa for l in net.weight_layers()] == [0.5, 0.5, 0.5]


def test_w_asym_free_count_is_rows_times_free_entries():
    net = bnn_asym.MLP(20, (30,), 4, symmetry="w_asym", n_fix=(5, 7))
    assert net.layout["fc0.weight"].shape == (30, 15)
    assert net.layout["out.weight"].shape == (4, 23)
    assert net.num_free_params == 30 * 15 + 30 + 4 * 23 + 4


def test_filter_masks_fix_whole_filters():
    net = bnn_asym.CNN((3, 8, 8), (4,), 2, symmetry="w_asym", mask_kind="filter", n_fix=(2, 1))
    conv = net.weight_layers()[0]
    assert conv.mask_kind == "filter" and conv.fixed_per_row == 2 * 9
    idx = net.constants()["conv0.fixed_index"]
    filters = idx.reshape(4, 2, 9) // 9
    assert (filters == filters[:, :, :1]).all()  # each block of 9 positions is one filter


def test_filter_mode_falls_back_to_entries_for_single_channel_input():
    net = bnn_asym.CNN((1, 8, 8), (4,), 2, symmetry="w_asym", mask_kind="filter")
    assert net.weight_layers()[0].mask_kind == "entry"


@pytest.mark.parametrize(
    "kwargs, param",
    [
        (dict(in_features=4, hidden=(8,), out_features=2, symmetry="w_asym", n_fix=4), "n_fix"),
        (dict(in_features=4, hidden=(8,), out_features=2, symmetry="w_asym", n_fix=(1, 8)), "n_fix"),
        (dict(in_features=4, hidden=(8,), out_features=2, symmetry="w_asym", n_fix=(1, 2, 3)), "n_fix"),
        (dict(in_features=4, hidden=(8,), out_features=2, symmetry="w_asym", kappa=-1.0), "kappa"),
        (dict(in_features=4, hidden=(8,), out_features=2, symmetry="mirror"), "symmetry"),
        (dict(in_features=4, hidden=(0,), out_features=2), "hidden"),
        (dict(in_features=0, hidden=(8,), out_features=2), "in_features"),
        (dict(in_features=4, hidden=(8,), out_features=-1), "out_features"),
        (dict(in_features=4, hidden=(8,), out_features=2, norm="batch"), "norm"),
        (dict(in_features=4, hidden=(8,), out_features=2, seed=-3), "seed"),
    ],
)
def test_invalid_mlp_settings_name_the_parameter(kwargs, param):
    with pytest.raises(ValueError, match=param):
        bnn_asym.MLP(**kwargs)


def test_n_fix_error_states_accepted_range():
    with pytest.raises(ValueError, match=r"0 <= n_fix < 4"):
        bnn_asym.MLP(4, (8,), 2, symmetry="w_asym", n_fix=4)


@pytest.mark.parametrize(
    "kwargs, param",
    [
        (dict(depth=9), "depth"),
        (dict(width=0.01), "width"),
        (dict(norm="none"), "norm"),
        (dict(groups=3), "groups"),
        (dict(mask_kind="row"), "mask_kind"),
        (dict(input_shape=(3, 32)), "input_shape"),
    ],
)
def test_invalid_resnet_settings(kwargs, param):
    with pytest.raises(ValueError, match=param):
        bnn_asym.ResNet(**kwargs)


def test_invalid_cnn_settings():
    with pytest.raises(ValueError, match="kernel_size"):
        bnn_asym.CNN(kernel_size=2)
    with pytest.raises(ValueError, match="input_shape"):
        bnn_asym.CNN((1, 4, 4), channels=(4, 4, 4))
    with pytest.raises(ValueError, match="head"):
        bnn_asym.CNN(head="max")


@pytest.mark.parametrize("symmetry", SYMMETRIES)
@pytest.mark.parametrize("family", ["mlp", "cnn", "resnet"])
def test_json_round_trip(family, symmetry):
    spec = small_specs(symmetry)[family]
    for with_constants in (False, True):
        text = spec.to_json(with_constants=with_constants)
        back = spec_from_json(text)
        assert back == spec
        assert back.constants_digest() == spec.constants_digest()
        assert json.loads(back.to_json()) == json.loads(spec.to_json())


def test_saved_constants_are_used_when_regeneration_differs():
    spec = bnn_asym.MLP(6, (5,), 2, symmetry="w_asym", seed=1)
    d = json.loads(spec.to_json(with_constants=True))
    other = bnn_asym.MLP(6, (5,), 2, symmetry="w_asym", seed=2)
    d["seed"] = 2  # regenerating from seed 2 gives other constants: the saved ones must win
    back = bnn_asym.spec_from_dict(d)
    assert back.constants_digest() == spec.constants_digest() != other.constants_digest()
    d.pop("constants")
    with pytest.raises(ValueError, match="saved constants"):
        bnn_asym.spec_from_dict(d)


def test_from_dict_rejects_unknown_fields_and_families():
    d = json.loads(bnn_asym.MLP(3, (4,), 2).to_json())
    with pytest.raises(ValueError, match="family"):
        bnn_asym.spec_from_dict({**d, "family": "Transformer"})
    with pytest.raises(ValueError, match="unknown MLP fields"):
        bnn_asym.spec_from_dict({**d, "depth": 3})


def test_describe_lists_every_weight_layer():
    text = bnn_asym.MLP.paper_lmc("w_asym").describe()
    assert "834,570" in text and text.count("fixed/row=64") == 3 and "fixed/row=256" in text


def test_specs_are_hashable_and_equal_by_value():
    a = bnn_asym.MLP(3, [4, 4], 2, symmetry="w_asym", n_fix=[1, 1, 1])
    b = bnn_asym.MLP(3, (4, 4), 2, symmetry="w_asym", n_fix=(1, 1, 1))
    assert a == b and hash(a) == hash(b)
    assert np.array_equal(a.constants()["fc0.fixed_value"], b.constants()["fc0.fixed_value"])


def test_hidden_accepts_an_int_as_one_layer_and_names_hidden_otherwise():
    assert bnn_asym.MLP(2, 8, 2).hidden == (8,)
    assert bnn_asym.CNN((1, 8, 8), (4,), 3, hidden=5).hidden == (5,)
    with pytest.raises(ValueError, match="hidden='8' is not valid; accepted: an int"):
        bnn_asym.MLP(2, "8", 2)


@pytest.mark.parametrize("symmetry", ["standard", "sigma_asym"])
def test_w_asym_settings_on_other_networks_are_refused(symmetry):
    with pytest.raises(ValueError, match="n_fix applies only to symmetry='w_asym'"):
        bnn_asym.MLP(4, (8,), 2, symmetry=symmetry, n_fix=2)
    with pytest.raises(ValueError, match="n_fix and kappa apply only"):
        bnn_asym.CNN((1, 8, 8), (4,), 2, symmetry=symmetry, n_fix=2, kappa=1.0)


def test_bool_seed_is_refused():
    with pytest.raises(ValueError, match="seed=True is not valid"):
        bnn_asym.MLP(3, (4,), 2, seed=True)


def test_paper_bnn_mlp_has_layernorm_like_the_paper():
    net = bnn_asym.MLP.paper_bnn(784, 10, depth=16)
    assert net.norm == "layer" and net.hidden == (256,) * 15
    assert net.num_free_params == 1_101_498  # "1.1M free parameters"
    assert bnn_asym.MLP.paper_bnn(784, 10, depth=4, norm="none").norm == "none"
    assert bnn_asym.MLP.paper_bnn(784, 10, depth=4, symmetry="standard").n_fix is None


def test_init_schemes_are_recorded_and_round_trip():
    net = bnn_asym.MLP(100, (50,), 3, init_scheme="torch_default", seed=0)
    p = net.init(1)
    bound = 1 / np.sqrt(100)
    assert np.abs(p["fc0.weight"]).max() <= bound and np.abs(p["fc0.bias"]).max() <= bound
    assert p["fc0.weight"].std() == pytest.approx(bound / np.sqrt(3), rel=0.05)  # uniform's std
    assert np.any(p["fc0.bias"] != 0)
    kaiming = bnn_asym.MLP(100, (50,), 3, seed=0).init(1)
    assert kaiming["fc0.weight"].std() == pytest.approx(np.sqrt(2 / 100), rel=0.05) and not kaiming["fc0.bias"].any()
    assert json.loads(net.to_json())["init_scheme"] == "torch_default"
    assert spec_from_json(net.to_json()) == net
    assert net.constants_digest() == net.with_init("kaiming_normal").constants_digest()
    with pytest.raises(ValueError, match="init='xavier' is not valid; accepted: 'kaiming_normal', 'torch_default'"):
        bnn_asym.MLP(3, (4,), 2, init_scheme="xavier")


def constant_init(param, rng):
    return np.full(param.shape, 0.25)


def test_callable_init_scheme_round_trips_by_import_path():
    net = bnn_asym.MLP(3, (4,), 2, init_scheme=constant_init)
    assert np.all(net.init(0)["fc0.weight"] == 0.25) and np.all(net.init(0)["out.bias"] == 0.25)
    d = json.loads(net.to_json())
    assert d["init_scheme"].endswith(":constant_init")
    assert spec_from_json(net.to_json()).init(0)["fc0.weight"][0, 0] == 0.25
    d["init_scheme"] = "no_such_module:f"
    with pytest.raises(ValueError, match="cannot be imported"):
        bnn_asym.spec_from_dict(d)


def test_figlu_init_unscaled_matches_the_papers_code():
    scaled = bnn_asym.MLP(4, (400,), 2, symmetry="sigma_asym", seed=0)
    unscaled = bnn_asym.MLP(4, (400,), 2, symmetry="sigma_asym", seed=0, figlu_init="unscaled")
    assert scaled.constants()["fc0_act.figlu"].std() == pytest.approx(1 / 20, rel=0.02)
    assert unscaled.constants()["fc0_act.figlu"].std() == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="figlu_init"):
        bnn_asym.MLP(4, (4,), 2, symmetry="sigma_asym", figlu_init="paper")


def test_inputs_are_checked_against_the_network():
    mlp = bnn_asym.MLP(4, (3,), 2)
    X = np.ones((5, 4))
    assert mlp.check_inputs(X).dtype == np.float32 and mlp.check_inputs(X[:0]).shape == (0, 4)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 4\) for this MLP; got \(5, 2, 2\)"):
        mlp.check_inputs(X.reshape(5, 2, 2))
    with pytest.raises(ValueError, match="complex"):
        mlp.check_inputs(X.astype(complex))
    cnn = bnn_asym.CNN((1, 8, 8), (4,), 2)
    assert cnn.check_inputs(np.ones((2, 1, 8, 8))).shape == cnn.check_inputs(np.ones((2, 64))).shape == (2, 64)
    with pytest.raises(ValueError, match=r"\(N, 64\) or \(N, 1, 8, 8\)"):
        cnn.check_inputs(np.ones((2, 8, 8)))
