"""vgg_lib.training.initialisation: the three schemes against their formulas, and the paper's transfer from
net A against Section 3.1 and Table 1 of the paper."""

import math

import pytest
import torch
from torch import nn

from vgg_lib import vgg
from vgg_lib.architecture.configs import conv_layers
from vgg_lib.training.initialisation import initialise, initialise_from_shallower, width_matched_std


def convs(model):
    return [m for m in model.features if isinstance(m, nn.Conv2d)]


def linears(model):
    return [m for m in model.classifier if isinstance(m, nn.Linear)]


def test_paper_scheme_draws_the_given_std_and_zero_biases():
    torch.manual_seed(0)
    model = initialise(vgg("A", num_classes=10, head="compact", width=0.25), "paper", std=0.03)
    weights = torch.cat([m.weight.flatten() for m in model.modules()
                         if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert weights.numel() > 500_000
    assert weights.mean().item() == pytest.approx(0.0, abs=1e-3 * 0.03 * 10)
    assert weights.std().item() == pytest.approx(0.03, rel=0.01)
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_glorot_scheme_matches_glorot_and_bengio():
    torch.manual_seed(0)
    model = initialise(vgg("A", num_classes=10, head="compact", width=0.5), "glorot")
    for conv in convs(model):
        out_c, in_c, kh, kw = conv.weight.shape
        fan_in, fan_out = in_c * kh * kw, out_c * kh * kw
        bound = math.sqrt(6 / (fan_in + fan_out))  # uniform(-b, b) has variance b^2 / 3
        assert conv.weight.abs().max().item() <= bound
        if conv.weight.numel() > 10_000:
            assert conv.weight.var().item() == pytest.approx(2 / (fan_in + fan_out), rel=0.05)
        assert torch.all(conv.bias == 0)


def test_kaiming_scheme_is_torchvisions():
    torch.manual_seed(0)
    model = vgg("A", num_classes=10, head="compact", width=0.5, init_weights=False)
    initialise(model, "kaiming")
    for conv in convs(model):
        if conv.weight.numel() > 10_000:
            fan_out = conv.weight.shape[0] * 9
            assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert linears(model)[0].weight.std().item() == pytest.approx(0.01, rel=0.15)


def test_batch_norm_is_reset_and_bad_schemes_are_refused():
    model = vgg("A", batch_norm=True, num_classes=10, head="compact", width=1 / 16)
    bn = model.features[1]
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.running_mean.fill_(2.0)
    initialise(model, "paper")
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)
    with pytest.raises(ValueError, match="Unknown initialisation"):
        initialise(model, "xavier")
    with pytest.raises(ValueError, match="positive"):
        initialise(model, "paper", std=0.0)


def test_width_matched_std_keeps_the_per_layer_gain():
    # gain of a layer ~ std * sqrt(fan_in); fan_in scales with the width
    full_fan_in, width = 9 * 512, 0.125
    std = width_matched_std(width)
    assert std * math.sqrt(full_fan_in * width) == pytest.approx(0.01 * math.sqrt(full_fan_in))
    with pytest.raises(ValueError, match="width"):
        width_matched_std(0)


def paper_first_four_a_layers():
    """(in, out) channels of net A's first four convolutions, read off Table 1."""
    channels = [3] + [c for c, _ in conv_layers("A")]
    return [(channels[i], channels[i + 1]) for i in range(4)]


@pytest.mark.parametrize("deep_config", ["B", "D", "E"])
@pytest.mark.parametrize("head", ["compact", "imagenet"])
def test_transfer_copies_the_first_four_convs_and_the_head(deep_config, head):
    torch.manual_seed(0)
    shallow = vgg("A", num_classes=10, head=head, width=1 / 16)
    deep = vgg(deep_config, num_classes=10, head=head, width=1 / 16)
    before = {k: v.clone() for k, v in deep.state_dict().items()}
    copied = initialise_from_shallower(deep, shallow)
    fc_names = ["fc"] if head == "compact" else ["fc6", "fc7", "fc8"]
    assert copied == ["conv1_1", "conv2_1", "conv3_1", "conv3_2"] + fc_names
    deep_convs = {name: m for name, m in zip(deep_names(deep), convs(deep))}
    for (in_c, out_c), name, source in zip(paper_first_four_a_layers(), copied, convs(shallow)):
        target = deep_convs[name]
        # Table 1's shapes at width 1/16 (the image's 3 channels are not scaled)
        assert (target.in_channels, target.out_channels) == (in_c if in_c == 3 else in_c // 16, out_c // 16)
        assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)
    for target, source in zip(linears(deep)[-len(fc_names):], linears(shallow)):
        assert torch.equal(target.weight, source.weight)
    changed = {k for k, v in deep.state_dict().items() if not torch.equal(v, before[k])}
    copied_ids = {id(deep_convs[n].weight) for n in copied[:4]}
    untouched = [m for m in convs(deep) if id(m.weight) not in copied_ids]
    assert len(untouched) == len(convs(deep)) - 4
    for index, module in enumerate(deep.features):
        if module in untouched:
            assert f"features.{index}.weight" not in changed


def deep_names(model):
    names, block, index = [], 1, 0
    for module in model.features:
        if isinstance(module, nn.MaxPool2d):
            block, index = block + 1, 0
        elif isinstance(module, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
    return names


def test_a_deep_net_started_from_a_computes_as_a_in_its_first_layer():
    torch.manual_seed(1)
    shallow = vgg("A", num_classes=10, head="compact", width=1 / 8).eval()
    deep = vgg("E", num_classes=10, head="compact", width=1 / 8).eval()
    initialise_from_shallower(deep, shallow)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(deep.features[:2](x), shallow.features[:2](x))  # conv1_1 + ReLU


def test_transfer_copies_batch_norm_with_its_convolution():
    torch.manual_seed(0)
    shallow = vgg("A", batch_norm=True, num_classes=10, head="compact", width=1 / 16)
    with torch.no_grad():
        shallow.features[1].running_mean.uniform_()
        shallow.features[1].weight.uniform_()
    deep = vgg("D", batch_norm=True, num_classes=10, head="compact", width=1 / 16)
    initialise_from_shallower(deep, shallow)
    assert torch.equal(deep.features[1].running_mean, shallow.features[1].running_mean)
    assert torch.equal(deep.features[1].weight, shallow.features[1].weight)


def test_transfer_explains_what_does_not_fit():
    shallow = vgg("A", num_classes=10, head="compact", width=1 / 16)
    deep = vgg("E", num_classes=10, head="compact", width=1 / 8)
    with pytest.raises(ValueError, match="same width"):
        initialise_from_shallower(deep, shallow)
    same_width = vgg("E", num_classes=10, head="compact", width=1 / 16)
    with pytest.raises(ValueError, match="deeper network first"):
        initialise_from_shallower(shallow, same_width)
    with pytest.raises(ValueError, match="same model"):
        initialise_from_shallower(shallow, shallow)
    with pytest.raises(ValueError, match="conv_layers"):
        initialise_from_shallower(same_width, shallow, conv_layers=9)
    imagenet = vgg("E", num_classes=10, head="imagenet", width=1 / 16)
    with pytest.raises(ValueError, match="same head|same width"):
        initialise_from_shallower(imagenet, shallow)
