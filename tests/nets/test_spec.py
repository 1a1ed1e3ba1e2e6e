import json

import numpy as np
import pytest

import bnn_asym
from bnn_asym.nets import spec_from_json
from conftest import SYMMETRIES, small_specs


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


@pytest.mark.parametrize("kwargs, param", [
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
])
def test_invalid_mlp_settings_name_the_parameter(kwargs, param):
    with pytest.raises(ValueError, match=param):
        bnn_asym.MLP(**kwargs)


def test_n_fix_error_states_accepted_range():
    with pytest.raises(ValueError, match=r"0 <= n_fix < 4"):
        bnn_asym.MLP(4, (8,), 2, symmetry="w_asym", n_fix=4)


@pytest.mark.parametrize("kwargs, param", [
    (dict(depth=9), "depth"), (dict(width=0.01), "width"), (dict(norm="none"), "norm"),
    (dict(groups=3), "groups"), (dict(mask_kind="row"), "mask_kind"), (dict(input_shape=(3, 32)), "input_shape"),
])
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
