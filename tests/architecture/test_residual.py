"""Residual VGG (architecture/residual.py) and the deeper columns it is studied on
(configs.DEEPER), chapter 10."""

import pytest
import torch
import torchvision
from torch import nn

from vgg_lib import count_parameters, vgg
from vgg_lib.architecture import configs
from vgg_lib.architecture.configs import (CONFIGS, DEEPER, convolutions_per_block, get_config,
                                          repeat_3x3, weight_layer_count)
from vgg_lib.architecture.dense import same_scores, to_fully_convolutional
from vgg_lib.architecture.model import ModelSpec, make_layers
from vgg_lib.architecture.residual import ResidualFeatures, residual_units, with_shortcuts
from vgg_lib.measure.counting import config_costs, costs, layer_macs
from vgg_lib.measure.receptive_field import receptive_fields
from vgg_lib.measure.shape_trace import trace_shapes
from vgg_lib.training.checkpoint import load_model, save_checkpoint
from vgg_lib.training.diagnostics import probe_batch, weight_layers


def small(config="E", shortcuts="identity", batch_norm=True, **options):
    options = dict(dict(num_classes=10, head="compact", width=0.125), **options)
    return vgg(config, batch_norm=batch_norm, shortcuts=shortcuts, **options)


def on_meta(build, *args, **kwargs):
    with torch.device("meta"):
        return build(*args, **kwargs)


# --- the deeper columns --------------------------------------------------------------------

def test_deeper_columns_come_from_the_grammar():
    assert repeat_3x3(CONFIGS["E"], (2, 2, 4, 4, 4)) == CONFIGS["E"]
    assert repeat_3x3(CONFIGS["A"], (1, 1, 2, 2, 2)) == CONFIGS["A"]
    assert convolutions_per_block("E-6") == [2, 2, 6, 6, 6]
    assert convolutions_per_block("E-8") == [2, 2, 8, 8, 8]
    assert weight_layer_count("E-6") == 25 and weight_layer_count("E-8") == 31
    assert get_config("e-8") == DEEPER["E-8"] and ModelSpec("e-6").config == "E-6"
    assert len(CONFIGS) == 6 and not set(DEEPER) & set(CONFIGS)  # Table 1 stays Table 1
    # the counters and the receptive fields read them like any column
    assert config_costs("E-8", image_size=32, head="compact", num_classes=10).parameters > 0
    assert receptive_fields("E-8", 224)["pool5"].receptive_field > receptive_fields("E", 224)["pool5"].receptive_field


@pytest.mark.parametrize("bad", [[64, "LRN", "M"], [(64, 1), "M"]])
def test_repeat_3x3_reads_3x3_columns_only(bad):
    with pytest.raises(ValueError, match="3x3 convolutions"):
        repeat_3x3(bad, (1,))


def test_repeat_3x3_wants_one_count_per_block():
    with pytest.raises(ValueError, match="one count >= 1 for each of the 5 blocks"):
        repeat_3x3(CONFIGS["E"], (2, 2, 8))


# --- where the shortcuts go ----------------------------------------------------------------

def units_of(config):
    return [(u.first, u.second, u.projection) for u in residual_units(on_meta(vgg, config).features)]


def test_units_pair_3x3_convolutions_from_each_block_start_after_the_stem():
    assert units_of("A") == [("conv3_1", "conv3_2", True), ("conv4_1", "conv4_2", True),
                             ("conv5_1", "conv5_2", False)]
    # D: the third convolution of blocks 3-5 is left over; conv1_2 follows the stem alone
    assert units_of("D") == [("conv2_1", "conv2_2", True), ("conv3_1", "conv3_2", True),
                             ("conv4_1", "conv4_2", True), ("conv5_1", "conv5_2", False)]
    assert units_of("E") == [("conv2_1", "conv2_2", True), ("conv3_1", "conv3_2", True),
                             ("conv3_3", "conv3_4", False), ("conv4_1", "conv4_2", True),
                             ("conv4_3", "conv4_4", False), ("conv5_1", "conv5_2", False),
                             ("conv5_3", "conv5_4", False)]
    assert len(units_of("E-8")) == 1 + 3 * 4
    # C's 1x1 convolutions end a run and stay plain
    assert [u[:2] for u in units_of("C")] == [("conv2_1", "conv2_2"), ("conv3_1", "conv3_2"),
                                              ("conv4_1", "conv4_2"), ("conv5_1", "conv5_2")]


def test_a_column_without_a_pair_refuses_shortcuts():
    with pytest.raises(ValueError, match="nowhere to put a shortcut"):
        with_shortcuts(make_layers([64, "M", 128, "M", 256, "M"]), batch_norm=False)


def test_unknown_shortcuts_are_refused():
    with pytest.raises(ValueError, match="Unknown shortcuts 'zero-pad'"):
        ModelSpec("D", shortcuts="zero-pad")


# --- plain models stay torchvision's; residual ones add only their projections -----------------

@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn"])
def test_plain_state_dicts_stay_torchvision_compatible(name):
    ours = vgg("D", batch_norm=name.endswith("_bn"))
    theirs = getattr(torchvision.models, name)(weights=None)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())  # strict
    assert not hasattr(ours, "shortcuts") and type(ours.features) is nn.Sequential
    assert "shortcuts" not in ModelSpec("D").to_dict()  # fingerprints of plain runs unchanged


def test_residual_keys_are_the_plain_ones_plus_projections():
    plain, residual = small("D", "none"), small("D")
    extra = [k for k in residual.state_dict() if k not in plain.state_dict()]
    assert all(k.startswith("shortcuts.") for k in extra) and extra
    assert [k for k in residual.state_dict() if not k.startswith("shortcuts.")] == list(plain.state_dict())
    # D at width 1/8: projections 8->16, 16->32, 32->64, each a 1x1 conv without bias plus batch norm
    assert count_parameters(residual) - count_parameters(plain) == sum(
        c_in * c_out + 2 * c_out for c_in, c_out in ((8, 16), (16, 32), (32, 64)))


def test_same_seed_same_starting_weights_as_the_plain_network():
    torch.manual_seed(3)
    plain = small("E", "none")
    torch.manual_seed(3)
    residual = small("E")
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(residual.state_dict()[key], value, rtol=0, atol=0)


def test_a_residual_unit_with_a_silent_branch_passes_its_input_on():
    """With the second batch norm of every unit scaled to zero, each unit computes
    relu(0 + s(x)): the identity units pass x on, the projections apply their 1x1 convolution.
    Residual A then is: stem, conv2_1, and the two projections (hand-built below)."""
    torch.manual_seed(0)
    model = small("A").eval()
    layers = list(model.features)
    with torch.no_grad():
        for unit in model.features.units:
            bn = layers[unit.add_before - 1]
            assert isinstance(bn, nn.BatchNorm2d)
            bn.weight.zero_()
            bn.bias.zero_()
        x = torch.randn(2, 3, 32, 32)
        f = model.features
        relu, pool = nn.functional.relu, nn.functional.max_pool2d
        h = pool(relu(f[1](f[0](x))), 2)                       # stem, block 1
        h = pool(relu(f[5](f[4](h))), 2)                       # conv2_1, block 2 (plain)
        h = pool(relu(model.shortcuts["conv3_1"](h)), 2)       # unit 3: projection only
        h = pool(relu(model.shortcuts["conv4_1"](h)), 2)       # unit 4: projection only
        h = pool(relu(h), 2)                                   # unit 5: identity
        expected = model.classifier(torch.flatten(model.avgpool(h), 1))
        torch.testing.assert_close(model(x), expected)


def test_shortcuts_carry_gradient_past_a_dead_branch():
    """Zero weights in every unit's second convolution: a plain network passes no gradient
    below the first unit, a residual one does (through its shortcuts)."""
    grads = {}
    for shortcuts in ("none", "identity"):
        torch.manual_seed(0)
        model = small("E", shortcuts, batch_norm=False)
        with torch.no_grad():
            for unit in residual_units(small("E", "none", batch_norm=False).features):
                model.features[unit.add_before - 1].weight.zero_()
        x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
        nn.functional.cross_entropy(model(x), y).backward()
        grads[shortcuts] = model.features[0].weight.grad.norm().item()
    assert grads["none"] == 0 and grads["identity"] > 0


def test_residual_models_round_trip_through_checkpoints(tmp_path):
    model = small("E-6")
    spec = ModelSpec.from_dict(model.spec.to_dict())
    assert spec == model.spec and spec.shortcuts == "identity"
    assert "identity shortcuts" in spec.describe()
    path = save_checkpoint(tmp_path / "residual.pt", model)
    restored = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    model.eval(), restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x))


def test_whoever_runs_the_features_gets_the_residual_network():
    torch.manual_seed(0)
    model = small("D", head="fc-2x2").eval()
    assert isinstance(model.features, ResidualFeatures)
    converted = to_fully_convolutional(model).eval()
    assert same_scores(model, converted, torch.randn(2, 3, 32, 32))
    with pytest.raises(TypeError, match="lose its shortcuts"):
        model.features[:4]
    assert isinstance(model.features[0], nn.Conv2d)


# --- the book's measuring tools read a residual VGG like a plain one ------------------------

def test_trace_names_and_costs_of_a_residual_vgg():
    plain, residual = on_meta(vgg, "D", batch_norm=True), on_meta(vgg, "D", batch_norm=True,
                                                                  shortcuts="identity")
    plain_trace, residual_trace = trace_shapes(plain, 224), trace_shapes(residual, 224)
    paper = [l.name for l in residual_trace if not l.name.startswith("shortcuts.")]
    assert paper == [l.name for l in plain_trace]
    projections = [l for l in residual_trace if l.name.startswith("shortcuts.") and l.kind == "conv"]
    assert [l.name for l in projections] == ["shortcuts.conv2_1.0", "shortcuts.conv3_1.0",
                                             "shortcuts.conv4_1.0"]
    # each projection: C_in * C_out multiply-adds at every position of the block's map
    extra = 64 * 128 * 112 ** 2 + 128 * 256 * 56 ** 2 + 256 * 512 * 28 ** 2
    assert costs(residual, 224).macs - costs(plain, 224).macs == extra
    assert sum(layer_macs(l) for l in projections) == extra
    # receptive fields follow the longest path, the plain one
    assert [r.receptive_field for r in receptive_fields(residual, 224)] == \
           [r.receptive_field for r in receptive_fields("D", 224)]


def test_diagnostics_name_a_residual_vgg_like_the_plain_one():
    plain, residual = small("E", "none"), small("E")
    assert list(weight_layers(residual)) == list(weight_layers(plain))
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    stats = probe_batch(residual, x, y)
    assert set(stats) == set(weight_layers(plain)) and stats["conv1_1"]["grad_norm"] > 0
