"""Receptive fields: the recurrence against brute force, against published formulas and against
torchvision; the gradient footprint; error messages; the explorer's static twin."""

import random
import re

import pytest
import torch
import torchvision
from nbval.plugin import get_sanitize_patterns
from torch import nn

from vgg_lib import vgg
from vgg_lib.architecture.configs import CONFIGS
from vgg_lib.measure.gradient_footprint import as_module, gradient_footprint
from vgg_lib.measure.receptive_field import (LayerGeometry, comparison_table, conv_specs, layers_of,
                                              min_input_size, receptive_field, receptive_fields)
from vgg_lib.measure.explorers import receptive_field_animation, receptive_field_explorer
from support import ROOT

SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


# ---------------------------------------------------------------- brute force, independent of autograd

def perturbation_support(module, input_size, unit):
    """Input pixels whose change changes output ``unit``: one forward pass per pixel, each with that
    pixel raised by a huge amount. Weights are in [0.5, 1.5] (see random_stack), so a raised pixel
    makes every unit that reads it huge, and it wins every max-pooling window it is in."""
    height = width = input_size
    base = torch.ones(1, 1, height, width, dtype=torch.float64)
    batch = base.repeat(height * width, 1, 1, 1)
    batch.view(height * width, -1)[torch.arange(height * width), torch.arange(height * width)] += 1e6
    with torch.no_grad():
        reference = module(base)[0, :, unit[0], unit[1]]
        changed = module(batch)[:, :, unit[0], unit[1]]
    # Unaffected outputs may differ by rounding (batched convolutions take other code paths);
    # an affected one moves by far more than 1.
    return ((changed - reference).abs() > 1.0).any(dim=1).view(height, width)


def random_stack(rng):
    """A small random stack of convolutions and poolings (kernel, stride, padding, dilation vary)."""
    modules = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.3:
            kernel = rng.choice([2, 3])
            pool = rng.choice([nn.MaxPool2d, nn.AvgPool2d])
            modules.append(pool(kernel, stride=rng.choice([1, 2, kernel]),
                                padding=rng.randint(0, kernel // 2), ceil_mode=rng.random() < 0.3))
        else:
            kernel = rng.choice([1, 2, 3, 5])
            dilation = rng.choice([1, 1, 2])
            modules.append(nn.Conv2d(1, 1, kernel, stride=rng.choice([1, 1, 2, 3]),
                                     padding=rng.randint(0, kernel // 2 + 1), dilation=dilation,
                                     bias=False))
            modules.append(nn.ReLU())
    stack = nn.Sequential(*modules).double()
    with torch.no_grad():
        for module in stack:
            if isinstance(module, nn.Conv2d):
                module.weight.uniform_(0.5, 1.5)
    return stack


def interval(support_1d):
    index = torch.nonzero(support_1d).flatten()
    return int(index[0]), int(index[-1])


@pytest.mark.parametrize("seed", range(20))
def test_recurrence_matches_brute_force_on_random_stacks(seed):
    rng = random.Random(seed)
    stack = random_stack(rng)
    input_size = max(min_input_size(stack), rng.randint(8, 16))
    while True:  # grow the input until the centre unit sees only real pixels
        last = receptive_fields(stack, input_size)[-1]
        first, end = last.box(last.size // 2)
        if first >= 0 and end < input_size:
            break
        input_size += 1
    with torch.no_grad():
        shape = stack(torch.ones(1, 1, input_size, input_size, dtype=torch.float64)).shape
    assert shape[-1] == shape[-2] == last.size  # output size formula, ceil_mode included
    for unit in {0, last.size // 2, last.size - 1}:
        support = perturbation_support(stack, input_size, (unit, unit))
        first, end = last.box(unit)
        if first >= 0 and end < input_size:
            rows, cols = interval(support.any(dim=1)), interval(support.any(dim=0))
            assert rows == cols == (first, end), stack
        elif support.any():  # part of the field is padding; dilation holes may end the support early
            rows, cols = interval(support.any(dim=1)), interval(support.any(dim=0))
            assert max(first, 0) <= rows[0] <= rows[1] <= min(end, input_size - 1), stack
            assert cols == rows
        # The autograd probe finds exactly the same pixels.
        footprint = gradient_footprint(stack, input_size, unit=(unit, unit))
        assert torch.equal(footprint.support, support), stack


def test_unclipped_box_is_the_receptive_field_when_the_unit_sees_only_real_pixels():
    layers = conv_specs(3, 5, pool_every=2)
    table = receptive_fields(layers, 64)
    for row in table:
        footprint = gradient_footprint(layers, 64, layer=row.name)
        first, last = row.box(footprint.unit[0])
        assert first >= 0 and last <= 63
        assert footprint.extent == (row.receptive_field, row.receptive_field)
        assert footprint.pixel_count == row.receptive_field ** 2  # no holes without dilation


# ---------------------------------------------------------------- published formulas and references

@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("count", range(1, 7))
def test_stacks_of_equal_convolutions(kernel, count):
    # Simonyan & Zisserman, Sec. 2.3: two 3x3 see 5x5, three see 7x7; in general 1 + n(k - 1).
    assert receptive_field(conv_specs(kernel, count), input_size=64) == 1 + count * (kernel - 1)
    footprint = gradient_footprint(as_module(conv_specs(kernel, count)), 64)
    assert footprint.pixel_count == (1 + count * (kernel - 1)) ** 2


def test_dilated_stack_of_yu_and_koltun():
    # Yu & Koltun (2016): 3x3 convolutions dilated 1, 2, 4, ... see (2^(i+2) - 1) pixels after i + 1 layers.
    for depth in range(1, 5):
        layers = conv_specs(3, depth, dilations=[2 ** i for i in range(depth)])
        assert receptive_field(layers, input_size=128) == 2 ** (depth + 1) - 1
    holes = gradient_footprint(conv_specs(3, 1, dilations=[2]), 16)
    assert holes.extent == (5, 5) and holes.pixel_count == 9


def closed_form(config):
    """Araujo et al. (2019), eq. 2: r = 1 + sum_l (k_l - 1) * prod_{i<l} s_i, read from Table 1."""
    field, jump = 1, 1
    for item in CONFIGS[config]:
        if item == "M":
            kernel, stride = 2, 2
        elif item == "LRN":
            continue
        else:
            kernel, stride = (item[1] if isinstance(item, tuple) else 3), 1
        field += (kernel - 1) * jump
        jump *= stride
    return field, jump


@pytest.mark.parametrize("config", list(CONFIGS))
def test_configurations_against_closed_form_and_real_shapes(config):
    table = receptive_fields(config, 224)
    assert (table[-1].receptive_field, table[-1].jump) == closed_form(config)
    assert table["pool5"].size == 7  # 224 / 2^5, the paper's 7x7x512
    # Output sizes agree with a real forward pass, layer by layer.
    with torch.device("meta"):
        features = vgg(config, init_weights=False).features
    sizes, x = [], torch.empty(1, 3, 224, 224, device="meta")
    for module in features:
        x = module(x)
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            sizes.append(x.shape[-1])
    assert sizes == [row.size for row in table]


@pytest.mark.parametrize("builder, config", [("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"),
                                             ("vgg19", "E"), ("vgg16_bn", "D")])
def test_torchvision_models_read_like_the_configurations(builder, config):
    with torch.device("meta"):
        model = getattr(torchvision.models, builder)()
    assert layers_of(model) == layers_of(config)
    assert receptive_fields(model, 224, head=True)[-1] == receptive_fields(config, 224, head=True)[-1]


def test_vgg16_gradient_footprint_of_every_block():
    model = vgg("D", width=1 / 16)
    table = receptive_fields(model, 224)
    for name in ["pool1", "pool2", "pool3", "pool4", "pool5"]:
        footprint = gradient_footprint(model, 224, layer=name)
        row = table[name]
        first, last = row.box(footprint.unit[0], 224)
        assert footprint.box == ((first, last), (first, last))
        assert footprint.pixel_count == row.receptive_field ** 2


def test_classifier_sees_every_position_of_the_last_map():
    table = receptive_fields("D", 224, head=True)
    pool5, classifier = table["pool5"], table["classifier"]
    assert classifier.layer.kernel == pool5.size and classifier.size == 1
    first_unit, last_unit = pool5.box(0), pool5.box(pool5.size - 1)
    assert classifier.box(0) == (first_unit[0], last_unit[1])
    assert classifier.start == (224 - 1) / 2  # centred on the image


def test_padding_moves_units_but_does_not_change_the_field():
    padded = conv_specs(3, 4, pool_every=2)
    unpadded = [LayerGeometry(l.name, l.kind, l.kernel, l.stride, 0, l.dilation) for l in padded]
    a, b = receptive_fields(padded, 40), receptive_fields(unpadded, 40)
    assert [r.receptive_field for r in a] == [r.receptive_field for r in b]
    assert [r.size for r in a] != [r.size for r in b]


def test_comparison_table_lists_every_configuration():
    text = comparison_table(("A", "E"))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "A", "E"]
    pool5 = next(line for line in lines if line.startswith("pool5")).split()
    assert pool5[1:] == [str(closed_form("A")[0]), str(closed_form("E")[0])]
    assert next(line for line in lines if line.startswith("conv3_4")).split()[1] == "-"


# ---------------------------------------------------------------- errors say what to do

def test_unknown_configuration():
    with pytest.raises(ValueError, match="Unknown VGG configuration 'F'.*A, A-LRN, B, C, D, E"):
        receptive_fields("F")


def test_unknown_layer_lists_the_layers():
    with pytest.raises(ValueError, match="No layer named 'conv6_1'.*pool5"):
        receptive_field("D", "conv6_1")
    with pytest.raises(ValueError, match="No layer named 'pool9'"):
        gradient_footprint(conv_specs(3, 2), 16, layer="pool9")


def test_layer_must_be_a_name():
    with pytest.raises(TypeError, match="input_size=40"):
        receptive_field(conv_specs(3, 3), 40)


def test_layers_that_do_not_slide_are_refused_clearly():
    with pytest.raises(TypeError, match="Upsample.*model.features"):
        receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)))
    with pytest.raises(TypeError, match="through Flatten"):
        receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(TypeError, match="configuration name"):
        receptive_fields(42)


def test_rectangular_kernels_are_refused():
    with pytest.raises(ValueError, match=r"kernel_size=\(3, 5\).*square"):
        receptive_fields(nn.Sequential(nn.Conv2d(1, 1, (3, 5))))


def test_too_small_input_names_the_smallest_that_works():
    with pytest.raises(ValueError, match="at least 32x32"):
        receptive_fields("D", input_size=16)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            receptive_fields("D", input_size=bad)


def test_unit_outside_the_output():
    with pytest.raises(ValueError, match="outside"):
        gradient_footprint(conv_specs(3, 1), 8, unit=(8, 0))
    with pytest.raises(ValueError, match="units 0..7"):
        receptive_fields(conv_specs(3, 1), 8)[0].box(8)


def test_conv_stack_refuses_even_spans():
    with pytest.raises(ValueError, match="odd kernel"):
        conv_specs(4, 2)
    with pytest.raises(ValueError, match="one dilation per convolution"):
        conv_specs(3, 2, dilations=[1])


def test_the_model_is_not_modified_by_measuring():
    model = vgg("A", width=1 / 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradient_footprint(model, 64)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, nn.MaxPool2d) for m in model.features)


# ---------------------------------------------------------------- the explorer

def sanitize(text):
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_static_twin_is_a_player_with_one_frame_per_depth():
    html = receptive_field_animation(kernel=3, max_layers=3, dpi=30)
    assert "<script" in html and "new Animation(frames" in html
    assert html.count("data:image/png;base64,") == 3
    # The caption states each frame's numbers as text: formula and autograd agree.
    assert re.findall(r"<td>(\d+)×\1</td><td>(\d+)</td>", html) == [("3", "9"), ("5", "25"), ("7", "49")]


def test_sanitizer_removes_every_random_id_of_the_player():
    first = receptive_field_animation(kernel=3, max_layers=2, pooling=True, dpi=30)
    second = receptive_field_animation(kernel=3, max_layers=2, pooling=True, dpi=30)
    assert first != second  # matplotlib draws a fresh random id each time
    assert sanitize(first) == sanitize(second)
    assert not re.search(r"[0-9a-f]{32}", sanitize(first))


def test_live_explorer_redraws_and_has_a_plain_text_face():
    explorer = receptive_field_explorer(kernel=3, layers=2, dpi=30)
    controls, picture = explorer.children
    kernel, depth, pooling = controls.children
    first = bytes(picture.value)
    assert first.startswith(b"\x89PNG")
    depth.value = 4
    assert bytes(picture.value) != first
    assert repr(explorer) == "Receptive-field explorer (kernel 3x3, 4 layers, pooling off)"
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)


def test_explorer_refuses_settings_it_does_not_offer():
    with pytest.raises(ValueError, match="kernels"):
        receptive_field_explorer(kernel=4)
    with pytest.raises(ValueError, match="1 to 6 layers"):
        receptive_field_explorer(layers=9)
