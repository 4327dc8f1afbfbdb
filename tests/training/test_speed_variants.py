"""The speed benchmarks' rewrites of a VGG-BN (vgg_lib/training/speed_variants.py): the one
that claims to compute the same function must give the same outputs and gradients, bit for bit;
both keep the state-dict keys of every layer they keep."""

import copy

import pytest
import torch

from vgg_lib.architecture.model import ModelSpec, build as build_model
from vgg_lib.training.speed_variants import VARIANTS, apply_variant


def small_vgg_bn():
    torch.manual_seed(0)
    return build_model(ModelSpec(config="A", batch_norm=True, width=0.125, head="compact",
                                 num_classes=10))


def outputs_and_gradients(model, x, labels):
    model.zero_grad(set_to_none=True)
    logits = model(x)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_pool_before_relu_is_the_same_network_bit_for_bit(mode):
    model = small_vgg_bn()
    swapped = apply_variant(copy.deepcopy(model), "pool-before-relu")
    kinds = [type(layer).__name__ for layer in swapped.features]
    assert "ReLU" in kinds and kinds[kinds.index("MaxPool2d") + 1] == "ReLU"
    assert list(swapped.state_dict()) == list(model.state_dict())
    getattr(model, mode)(), getattr(swapped, mode)()
    x = torch.randn(8, 3, 32, 32)
    labels = torch.randint(0, 10, (8,))
    logits, grads = outputs_and_gradients(model, x, labels)
    logits_swapped, grads_swapped = outputs_and_gradients(swapped, x, labels)
    assert torch.equal(logits, logits_swapped)
    assert grads.keys() == grads_swapped.keys()
    assert all(torch.equal(grads[name], grads_swapped[name]) for name in grads)


def test_no_first_batch_norm_drops_only_its_keys_and_still_trains():
    model = small_vgg_bn()
    keys = list(model.state_dict())
    apply_variant(model, "no-first-batch-norm")
    assert list(model.state_dict()) == [k for k in keys if not k.startswith("features.1.")]
    assert isinstance(model.features[1], torch.nn.Identity)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 7
    logits, grads = outputs_and_gradients(model, torch.randn(4, 3, 32, 32), torch.arange(4))
    assert logits.shape == (4, 10) and all(g.abs().sum() > 0 for g in grads.values())


def test_bad_variants_and_models_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="unknown variant 'fast'.*pool-before-relu"):
        apply_variant(small_vgg_bn(), "fast")
    plain = build_model(ModelSpec(config="A", width=0.125, head="compact", num_classes=10))
    with pytest.raises(ValueError, match="needs a VGG-BN.*Conv2d, ReLU"):
        apply_variant(plain, "both")
    assert VARIANTS[0] == "as-is"
    model = small_vgg_bn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_variant(model, "as-is")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
