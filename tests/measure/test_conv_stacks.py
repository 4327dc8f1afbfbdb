"""vgg_lib.measure.conv_stacks against real nn.Conv2d counts, torchinfo, torch's FLOP counter and brute force."""

import pytest
import sympy
import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vgg_lib import count_parameters, vgg
from vgg_lib.exercises import check, exercise_ids
from vgg_lib.measure.conv_stacks import conv_layer_costs, conv_sequence, conv_stack, stack_cost
from vgg_lib.measure.gradient_footprint import gradient_footprint

STACKS = [(7, 1), (3, 3), (5, 2), (1, 1), (3, 2), (11, 1)]


def hand_built(kernel_size, depth, channels, bias, in_channels):
    """The stack written out with plain nn.Conv2d, independent of conv_stack."""
    layers, c_in = [], in_channels
    for _ in range(depth):
        layers += [nn.Conv2d(c_in, channels, kernel_size, padding=kernel_size // 2, bias=bias), nn.ReLU()]
        c_in = channels
    return nn.Sequential(*layers)


@pytest.mark.parametrize("kernel_size, depth", STACKS)
@pytest.mark.parametrize("channels, in_channels", [(64, None), (128, 3), (5, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_parameters_match_real_conv2d(kernel_size, depth, channels, in_channels, bias):
    reference = hand_built(kernel_size, depth, channels, bias, in_channels or channels)
    cost = stack_cost(kernel_size, depth, channels, in_channels=in_channels, bias=bias)
    weights = sum(m.weight.numel() for m in reference if isinstance(m, nn.Conv2d))
    biases = sum(m.bias.numel() for m in reference if isinstance(m, nn.Conv2d) and m.bias is not None)
    assert (cost.weights, cost.biases) == (weights, biases)
    assert cost.parameters == sum(p.numel() for p in reference.parameters())
    assert count_parameters(conv_stack(kernel_size, depth, channels, bias, in_channels)) == cost.parameters


def test_symbolic_counts_are_the_papers_formulas():
    C = sympy.Symbol("C", positive=True)
    expected = {(7, 1): (49 * C**2, C), (3, 3): (27 * C**2, 3 * C), (5, 2): (50 * C**2, 2 * C)}
    for (kernel_size, depth), (weights, biases) in expected.items():
        cost = stack_cost(kernel_size, depth, C)
        assert sympy.simplify(cost.weights - weights) == 0
        assert sympy.simplify(cost.biases - biases) == 0
        assert cost.parameters.subs(C, 256) == stack_cost(kernel_size, depth, 256).parameters


@pytest.mark.parametrize("kernel_size, depth", STACKS)
def test_multiply_adds_match_torchinfo_and_flop_counter(kernel_size, depth):
    channels, height, width = 16, 12, 10
    stack = hand_built(kernel_size, depth, channels, True, channels)
    cost = stack_cost(kernel_size, depth, channels, height, width)
    summary = torchinfo.summary(stack, input_size=(1, channels, height, width), verbose=0)
    # torchinfo adds one operation per bias and output pixel; our count leaves biases out.
    assert summary.total_mult_adds == cost.multiply_adds + cost.biases * height * width
    with FlopCounterMode(display=False) as counter:
        stack(torch.zeros(1, channels, height, width))
    assert counter.get_total_flops() == 2 * cost.multiply_adds  # a multiply-add is 2 FLOPs
    assert cost.multiply_adds == cost.multiply_adds_per_pixel * height * width


def naive_conv2d(image, weight, bias):
    """Convolution written as loops over every output value and kernel tap, counting its own
    multiply-adds. Stride 1, same padding, one image of shape (C_in, H, W)."""
    c_out, c_in, k, _ = weight.shape
    pad = k // 2
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    _, height, width = image.shape
    output = torch.zeros(c_out, height, width)
    count = 0
    for o in range(c_out):
        for y in range(height):
            for x in range(width):
                total = bias[o].item()
                for i in range(c_in):
                    for dy in range(k):
                        for dx in range(k):
                            total += weight[o, i, dy, dx].item() * padded[i, y + dy, x + dx].item()
                            count += 1
                output[o, y, x] = total
    return output, count


@pytest.mark.parametrize("kernel_size, depth", [(7, 1), (3, 3), (5, 2), (1, 2)])
def test_multiply_adds_match_brute_force(kernel_size, depth):
    torch.manual_seed(0)
    channels, in_channels, height, width = 3, 2, 6, 5
    stack = conv_stack(kernel_size, depth, channels, in_channels=in_channels)
    image = torch.randn(in_channels, height, width)
    x, total = image, 0
    for layer in stack:
        if isinstance(layer, nn.Conv2d):
            x, count = naive_conv2d(x, layer.weight.detach(), layer.bias.detach())
            total += count
        else:
            x = torch.relu(x)
    with torch.no_grad():
        torch.testing.assert_close(x, stack(image[None])[0], rtol=1e-4, atol=1e-5)
    cost = stack_cost(kernel_size, depth, channels, height, width, in_channels=in_channels)
    assert total == cost.multiply_adds


@pytest.mark.parametrize("kernel_size, depth", STACKS)
def test_relus_counted_from_the_module(kernel_size, depth):
    channels, height, width = 4, 9, 8
    stack = conv_stack(kernel_size, depth, channels)
    evaluations = []
    hooks = [m.register_forward_hook(lambda m, i, o: evaluations.append(o.numel()))
             for m in stack if isinstance(m, nn.ReLU)]
    stack(torch.zeros(1, channels, height, width))
    for hook in hooks:
        hook.remove()
    cost = stack_cost(kernel_size, depth, channels, height, width)
    assert cost.relus == len(evaluations)
    assert cost.relu_evaluations == sum(evaluations)


@pytest.mark.parametrize("kernel_size, depth", STACKS)
def test_receptive_field_matches_gradient_footprint(kernel_size, depth):
    stack = conv_stack(kernel_size, depth, 3)
    field = stack_cost(kernel_size, depth, 3).receptive_field
    size = field + 8  # room around the field so zero padding does not cut it
    assert gradient_footprint(stack, size).extent == (field, field)


def test_one_by_one_layer_adds_a_relu_but_no_receptive_field():
    with_1x1 = conv_sequence([3, 3, 1], 4)
    without = conv_sequence([3, 3], 4)
    assert gradient_footprint(with_1x1, 15).extent == gradient_footprint(without, 15).extent == (5, 5)
    assert sum(isinstance(m, nn.ReLU) for m in with_1x1) == 3


def test_conv_layer_costs_match_torchinfo_per_layer():
    model = vgg("C", width=0.25, init_weights=False)
    ours = conv_layer_costs(model, (3, 64, 64))
    summary = torchinfo.summary(model, input_size=(1, 3, 64, 64), verbose=0, depth=5)
    theirs = [layer for layer in summary.summary_list if layer.class_name == "Conv2d"]
    assert len(ours) == len(theirs) == 13
    for layer, reference in zip(ours, theirs):
        bias_additions = layer.biases * layer.output_height * layer.output_width
        assert layer.multiply_adds + bias_additions == reference.macs
        assert layer.weights + layer.biases == reference.num_params


def test_conv_layer_costs_on_meta_equals_real_model():
    real = conv_layer_costs(vgg("C", width=0.25, init_weights=False), (3, 64, 64))
    with torch.device("meta"):
        meta_model = vgg("C", width=0.25, init_weights=False)
    assert conv_layer_costs(meta_model, (3, 64, 64)) == real


def test_c_and_d_differ_only_in_three_layers():
    with torch.device("meta"):
        c, d = vgg("C", init_weights=False), vgg("D", init_weights=False)
    costs_c, costs_d = conv_layer_costs(c), conv_layer_costs(d)
    differing = [(a, b) for a, b in zip(costs_c, costs_d) if a != b]
    assert [(a.kernel_size, b.kernel_size) for a, b in differing] == [(1, 3)] * 3
    assert [a.output_height for a, _ in differing] == [56, 28, 14]
    parameter_gap = sum(b.weights - a.weights for a, b in differing)
    assert parameter_gap == count_parameters(d) - count_parameters(c)
    for a, b in differing:
        assert b.multiply_adds == 9 * a.multiply_adds
        assert a.multiply_adds == a.output_height * a.output_width * a.in_channels * a.out_channels


@pytest.mark.parametrize("bad", [
    dict(kernel_size=4, depth=1, channels=8),
    dict(kernel_size=3, depth=0, channels=8),
    dict(kernel_size=3, depth=2, channels=0),
    dict(kernel_size=3, depth=True, channels=8),
    dict(kernel_size=3.0, depth=2, channels=8),
])
def test_bad_input_is_refused_with_a_reason(bad):
    with pytest.raises(ValueError, match="must be|even"):
        conv_stack(**bad)
    with pytest.raises(ValueError, match="must be|even"):
        stack_cost(**bad)


def test_other_bad_input():
    with pytest.raises(ValueError, match="empty"):
        conv_sequence([], 8)
    with pytest.raises(ValueError, match="channels, height, width"):
        conv_layer_costs(conv_stack(3, 1, 4), (1, 4, 8, 8))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        conv_layer_costs(nn.Sequential(nn.ReLU()), (1, 4, 4))


def test_exercise_checks_accept_their_answers_and_refuse_the_81_percent():
    ids = [i for i in exercise_ids() if i.startswith("small_filters/")]
    assert len(ids) >= 4
    assert check("small_filters/weight-saving", 0.449, quiet=True)
    assert check("small_filters/weight-saving", "44.9%", quiet=True)
    assert not check("small_filters/weight-saving", "81%", quiet=True)
    assert not check("small_filters/weight-saving", 1 - 9 / 49, quiet=True)
    assert check("small_filters/three-3x3-weights-256", 3 * 9 * 256 * 256, quiet=True)
    assert check("small_filters/first-layer-ratio", (3 * 9 * 64 + 64 + 2 * (9 * 64 * 64 + 64)) / (49 * 3 * 64 + 64),
                 quiet=True)
    assert check("small_filters/alexnet-saving", 1 - 45 / 121, quiet=True)
    d_minus_c = 8 * (56 * 56 * 256 * 256 + 28 * 28 * 512 * 512 + 14 * 14 * 512 * 512)
    assert check("small_filters/c-saves-multiply-adds", d_minus_c, quiet=True)
