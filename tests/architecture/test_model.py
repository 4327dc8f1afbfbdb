"""vgg_lib's models against torchvision and the paper's Table 2."""

import re

import numpy as np
import pytest
import torch
import torchvision

import vgg_lib
from vgg_lib import count_parameters, vgg
from vgg_lib.architecture import configs
from vgg_lib.architecture.model import ModelSpec

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


# --- what a student gets for a wrong input: an error that says what to do ------------------

@pytest.fixture(scope="module")
def small():
    return vgg("A", head="compact", width=0.125, num_classes=10)


@pytest.mark.parametrize("x, error, expected", [
    (torch.randn(3, 32, 32), ValueError, r"single image of shape \(3, 32, 32\).*x\.unsqueeze\(0\)"),
    (torch.randn(32, 32, 3), ValueError, r"single image.*x\.permute\(2, 0, 1\)\.unsqueeze\(0\)"),
    (torch.randn(2, 32, 32, 3), ValueError, r"channels are last.*x\.permute\(0, 3, 1, 2\)"),
    (torch.randn(2, 1, 32, 32), ValueError, r"grey images.*expand"),
    (torch.randn(2, 5, 32, 32), ValueError, r"in_channels=5"),
    (torch.randn(32, 32), ValueError, r"2-dimensional tensor.*\(N, C, H, W\)"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, r"uint8.*data\.normalize"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.float64), TypeError, r"float64.*x\.to\(torch\.float32\)"),
    (np.zeros((2, 3, 32, 32), np.float32), TypeError, r"not a ndarray.*torch\.from_numpy"),
    ([torch.randn(3, 32, 32)], TypeError, r"not a list.*torch\.stack"),
])
def test_a_bad_input_is_explained_before_torch_sees_it(small, x, error, expected):
    with pytest.raises(error, match=expected):
        small(x)


def test_images_and_model_on_different_devices(small):
    on_meta = vgg("A", head="compact", width=0.125, num_classes=10, init_weights=False).to("meta")
    with pytest.raises(ValueError, match=r"images are on cpu but the model is on meta.*model\.to"):
        on_meta(torch.randn(1, 3, 32, 32))
    assert on_meta(torch.randn(1, 3, 32, 32, device="meta")).shape == (1, 10)


def test_autocast_and_a_good_batch_still_run(small):
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert small(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)).shape == (1, 10)


def test_settings_beside_a_spec_are_refused_not_ignored():
    spec = ModelSpec("A", head="compact", width=0.125, num_classes=10)
    with pytest.raises(TypeError, match=r"spec\.replace\(num_classes=100\)"):
        vgg(spec, num_classes=100)
    assert vgg(spec).spec == spec


@pytest.mark.parametrize("settings, expected", [
    (dict(width=float("nan")), "width=nan"), (dict(width=0), "width=0"), (dict(width=-1), "width=-1"),
    (dict(num_classes=10.0), "num_classes=10.0"), (dict(num_classes=0), "num_classes=0"),
    (dict(dropout=1.0), "dropout=1.0"), (dict(dropout=float("nan")), "dropout=nan"),
    (dict(head="tiny"), "Unknown head 'tiny'"), (dict(config="F"), "Unknown VGG configuration 'F'"),
])
def test_bad_model_settings_are_refused_up_front(settings, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        ModelSpec(**settings)


def test_a_vgg_works_out_its_minimum_input_size_from_its_poolings():
    assert vgg("A", head="compact", num_classes=10).min_input_size == 32  # five poolings
    small = vgg("A", head="fc-2x2", width=0.0625, num_classes=10)          # the last one dropped
    assert small.min_input_size == 16 and small(torch.zeros(1, 3, 16, 16)).shape == (1, 10)
    hand_made = vgg_lib.VGG(vgg_lib.make_layers([8, "M", 8, "M"]), *vgg_lib.make_head("compact", 8, 3))
    assert hand_made.min_input_size == 4 and hand_made.config is None
