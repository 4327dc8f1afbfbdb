"""vgg_lib's models against torchvision and the paper's Table 2."""

import pytest
import torch
import torchvision

import vgg_lib
from vgg_lib import count_parameters, vgg
from vgg_lib.architecture import configs

TORCHVISION_BUILDERS = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


def on_meta(build, *args, **kwargs):
    """Build on the meta device: shapes and counts without allocating or initialising weights."""
    with torch.device("meta"):
        return build(*args, **kwargs)


@pytest.mark.parametrize("name", TORCHVISION_BUILDERS)
def test_state_dict_matches_torchvision(name):
    ours = on_meta(getattr(vgg_lib, name))
    theirs = on_meta(getattr(torchvision.models, name))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert count_parameters(ours) == count_parameters(theirs)


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_same_weights_same_outputs_as_torchvision(name):
    theirs = getattr(torchvision.models, name)().eval()
    ours = getattr(vgg_lib, name)().eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("config", list(configs.CONFIGS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameter_count_matches_paper_table_2(config, batch_norm):
    # Table 2 rounds to millions; batch norm adds ~10k parameters, far below the rounding.
    millions = count_parameters(on_meta(vgg, config, batch_norm=batch_norm)) / 1e6
    assert round(millions) == configs.PAPER_PARAMETERS_MILLIONS[config]


def brute_force_parameter_count(config, batch_norm):
    """Count from the paper's recipe, independent of the model code."""
    total, channels = 0, 3
    for out_channels, kernel in configs.conv_layers(config):
        total += kernel * kernel * channels * out_channels + out_channels
        total += 2 * out_channels if batch_norm else 0
        channels = out_channels
    for fan_in, fan_out in [(channels * 7 * 7, 4096), (4096, 4096), (4096, 1000)]:
        total += fan_in * fan_out + fan_out
    return total


@pytest.mark.parametrize("config", list(configs.CONFIGS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameter_count_matches_recipe(config, batch_norm):
    assert count_parameters(on_meta(vgg, config, batch_norm=batch_norm)) == brute_force_parameter_count(config, batch_norm)


def test_configuration_c_has_three_1x1_convolutions():
    kernels = [m.kernel_size for m in on_meta(vgg, "C").features if isinstance(m, torch.nn.Conv2d)]
    assert kernels.count((1, 1)) == 3 and len(kernels) == 13


def test_convolutions_per_block():
    assert configs.convolutions_per_block("A") == [1, 1, 2, 2, 2]
    assert configs.convolutions_per_block("A-LRN") == [1, 1, 2, 2, 2]
    assert configs.convolutions_per_block("B") == [2, 2, 2, 2, 2]
    assert configs.convolutions_per_block("C") == [2, 2, 3, 3, 3]  # the third is 1x1
    assert configs.convolutions_per_block("D") == [2, 2, 3, 3, 3]
    assert configs.convolutions_per_block("E") == [2, 2, 4, 4, 4]
    for name in configs.CONFIGS:
        assert sum(configs.convolutions_per_block(name)) == len(configs.conv_layers(name))
        assert len(configs.convolutions_per_block(name)) == configs.pooling_count(name)
    assert configs.convolutions_per_block([8, "M", 8, 8]) == [1, 2]


def test_lrn_follows_first_convolution_with_krizhevsky_settings():
    features = on_meta(vgg, "A-LRN").features
    assert isinstance(features[0], torch.nn.Conv2d)
    lrn = [m for m in features if isinstance(m, torch.nn.LocalResponseNorm)]
    assert len(lrn) == 1 and features[2] is lrn[0]
    # PyTorch divides alpha by size; alpha/size must equal the paper's 1e-4.
    assert lrn[0].size == 5 and lrn[0].alpha / lrn[0].size == pytest.approx(1e-4)
    assert lrn[0].beta == 0.75 and lrn[0].k == 2


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("head", ["imagenet", "compact"])
def test_forward_shapes(size, head):
    model = vgg("A", batch_norm=True, width=0.125, num_classes=10, head=head).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 10)


def test_weight_layers_match_names():
    assert [configs.weight_layer_count(c) for c in ["A", "B", "C", "D", "E"]] == [11, 13, 16, 16, 19]


def test_width_multiplier_scales_channels():
    model = on_meta(vgg, "D", width=0.25, head="compact", num_classes=10)
    widths = [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert widths[0] == 16 and widths[-1] == 128


def test_torchvision_initialisation():
    torch.manual_seed(0)
    model = vgg("A", width=0.25)
    linear = model.classifier[0]
    assert abs(linear.weight.std().item() - 0.01) < 0.001
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_unknown_configuration_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown VGG configuration 'F'.*A, A-LRN, B, C, D, E"):
        vgg("F")


def test_width_that_removes_a_layer_is_an_error():
    with pytest.raises(ValueError, match="0 channels"):
        vgg("A", width=0.001)


def test_input_too_small_for_five_poolings():
    model = vgg("A", width=0.125, head="compact")
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.zeros(1, 3, 31, 64))


def test_unknown_head():
    with pytest.raises(ValueError, match="imagenet, compact"):
        vgg("A", head="cifar")
