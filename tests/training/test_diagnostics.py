"""vgg_lib.training.diagnostics against statistics computed by hand, and hooks that never outlive their use."""

import json
import math

import pytest
import torch
from torch import nn

from vgg_lib import vgg
from vgg_lib.training.diagnostics import (ACTIVATION_FIELDS, FIELDS, GRADIENT_FIELDS, ActivationHooks,
                                 TrainingProbe, gradient_norms, probe_batch, weight_layers)


pytestmark = pytest.mark.usefixtures("one_thread")


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def tiny_vgg(batch_norm=False, head="compact", seed=0):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, num_classes=10, head=head, width=1 / 16)


def batch(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def by_hand(model, x, y):
    """Walk model.features by hand (out-of-place ReLU), returning the statistics and grads."""
    model.train()
    stats, h = [], x
    for module in model.features:
        if isinstance(module, nn.ReLU):
            pre = h
            h = torch.relu(pre)
            alive = (h > 0).any(dim=3).any(dim=2).any(dim=0)
            stats.append({
                "pre_mean": pre.mean().item(), "pre_std": pre.std(correction=0).item(),
                "post_mean": h.mean().item(), "post_std": h.std(correction=0).item(),
                "zero_fraction": (h == 0).sum().item() / h.numel(),
                "dead_fraction": 1 - alive.sum().item() / h.shape[1],
            })
        else:
            h = module(h)
    logits = model.classifier(torch.flatten(model.avgpool(h), 1))
    loss = nn.functional.cross_entropy(logits, y)
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = torch.autograd.grad(loss, weights)
    return stats, [g.norm().item() for g in grads], [w.norm().item() for w in weights]


def test_weight_layers_use_the_papers_names():
    names = list(weight_layers(tiny_vgg()))
    assert names == ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "conv4_1", "conv4_2",
                     "conv5_1", "conv5_2", "fc"]
    deep = vgg("E", num_classes=10, head="imagenet", width=1 / 16)
    names = list(weight_layers(deep))
    assert names[:4] == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    assert names[-4:] == ["conv5_4", "fc6", "fc7", "fc8"]
    assert len(names) == 19  # VGG-19: 16 convolutions and 3 fully connected layers


def test_every_conv_is_paired_with_the_relu_after_it():
    model = tiny_vgg(batch_norm=True)
    features = list(model.features)
    for name, (layer, relu) in weight_layers(model).items():
        if isinstance(layer, nn.Conv2d):
            index = features.index(layer)
            assert isinstance(features[index + 1], nn.BatchNorm2d)
            assert features[index + 2] is relu, name
    assert weight_layers(model)["fc"][1] is None  # the compact head ends without a ReLU


@pytest.mark.parametrize("batch_norm", [False, True])
def test_probe_batch_matches_hand_computation(batch_norm):
    model = tiny_vgg(batch_norm=batch_norm)
    x, y = batch()
    reference = tiny_vgg(batch_norm=batch_norm)  # same seed: same weights, fresh BN statistics
    stats, grad_norms, weight_norms = by_hand(reference, x, y)
    result = probe_batch(model, x, y)
    names = list(weight_layers(model))
    assert list(result) == names
    for name, expected in zip(names[:-1], stats):
        for field, value in expected.items():
            assert result[name][field] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, field)
    for name, g, w in zip(names, grad_norms, weight_norms):
        assert result[name]["grad_norm"] == pytest.approx(g, rel=1e-4)
        assert result[name]["weight_norm"] == pytest.approx(w, rel=1e-5)
    assert set(result["fc"]) == set(GRADIENT_FIELDS)
    assert set(result["conv1_1"]) == set(FIELDS)


def test_dead_units_are_counted_per_channel():
    conv = nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0, 2.0]).view(4, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 0.0, -1.0, 0.0]))
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 2 * 2, 2))
    x = torch.tensor([[[[1.0, -1.0], [2.0, -3.0]]]])  # channels 0, 1, 3 fire somewhere; 2 never
    result = probe_batch(model, x, torch.tensor([1]))
    assert list(result) == ["0", "3"]  # module paths for a model that is not a VGG
    assert result["0"]["dead_fraction"] == pytest.approx(1 / 4)
    assert result["0"]["zero_fraction"] == pytest.approx(10 / 16)  # 2 + 2 + 4 + 2 of 16 are zero
    assert result["0"]["post_mean"] == pytest.approx((1 + 2 + 1 + 3 + 2 + 4) / 16)


def test_probe_batch_leaves_no_hooks_and_restores_grads_and_mode():
    model = tiny_vgg()
    x, y = batch()
    model.eval()
    model.features[0].weight.grad = torch.full_like(model.features[0].weight, 7.0)
    before = hook_count(model)
    probe_batch(model, x, y)
    assert hook_count(model) == before == 0
    assert not model.training
    assert torch.all(model.features[0].weight.grad == 7.0)
    assert model.features[3].weight.grad is None


def test_hooks_are_removed_when_the_forward_pass_raises():
    model = tiny_vgg()
    with pytest.raises(ValueError, match="too small"):
        probe_batch(model, torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    assert hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with ActivationHooks(model):
            assert hook_count(model) > 0
            raise RuntimeError("boom")
    assert hook_count(model) == 0


def test_eval_passes_do_not_overwrite_training_statistics():
    model = tiny_vgg()
    x, y = batch()
    with ActivationHooks(model) as hooks:
        model.train()
        model(x)
        recorded = {n: s["post_std"].item() for n, s in hooks.latest.items()}
        model.eval()
        with torch.no_grad():
            model(x * 10)
        assert {n: s["post_std"].item() for n, s in hooks.latest.items()} == recorded
    assert hook_count(model) == 0


def test_training_probe_records_the_steps_asked_for_and_matches_a_manual_step():
    model = tiny_vgg()
    reference = tiny_vgg()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ref_optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    probe = TrainingProbe(model, steps=range(1, 4), every=2)
    with probe:
        for step in range(5):
            x, y = batch(seed=step)
            if step == 2:
                expected = probe_batch(reference, x, y)  # the same weights as `model` right now
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            probe(step, model, loss.item())
            optimizer.step()
            ref_loss = nn.functional.cross_entropy(reference(x), y)
            ref_optimizer.zero_grad()
            ref_loss.backward()
            ref_optimizer.step()
    assert hook_count(model) == 0
    assert [r["step"] for r in probe.records] == [2]
    record = probe.records[0]["layers"]
    for name, stats in expected.items():
        for field, value in stats.items():
            assert record[name][field] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, field)
    steps, names, values = probe.series("dead_fraction")
    assert steps == [2] and names == list(weight_layers(model))[:-1]
    assert len(values) == 1 and len(values[0]) == len(names)
    steps, names, values = probe.series("grad_norm")
    assert names[-1] == "fc"


def test_gradient_norms_before_backward_are_nan_and_bad_input_is_explained():
    model = tiny_vgg()
    assert all(math.isnan(v["grad_norm"].item()) for v in gradient_norms(model).values())
    probe = TrainingProbe(model)
    with pytest.raises(RuntimeError, match="Attach the probe first"):
        probe(0, model, 1.0)
    with pytest.raises(ValueError, match="Nothing recorded"):
        probe.series("grad_norm")
    with pytest.raises(ValueError, match="Unknown field"):
        probe.series("gradient")
    with pytest.raises(ValueError, match="every"):
        TrainingProbe(model, every=0)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        weight_layers(nn.Sequential(nn.ReLU()))
    assert set(ACTIVATION_FIELDS) | set(GRADIENT_FIELDS) == set(FIELDS)


def test_a_probe_reads_back_from_its_dict_bit_for_bit():
    model = tiny_vgg(batch_norm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    probe = TrainingProbe(model, steps=(1, 3, 4))
    with probe:
        for step in range(1, 6):
            x, y = batch(seed=step)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            probe(step, model, loss.item())
            optimizer.step()
    stored = probe.to_dict()
    assert set(stored) == {"steps", "loss", *GRADIENT_FIELDS} and stored["steps"] == [1, 3, 4]
    # float32 numbers as their shortest decimals: a double's 17 digits are not needed
    assert all(len(repr(v)) <= 16 for row in stored["grad_norm"]["values"] for v in row)
    again = TrainingProbe.from_dict(json.loads(json.dumps(stored)))
    for field in GRADIENT_FIELDS:
        assert again.series(field) == probe.series(field)   # the same floats, exactly
    assert [r["loss"] for r in again.records] == [r["loss"] for r in probe.records]
    assert again.to_dict() == stored
    with pytest.raises(ValueError, match="holds grad_norm, weight_norm only, not 'pre_std'"):
        again.series("pre_std")
    with pytest.raises(RuntimeError, match="read from a run record"):
        with again:
            pass
    everything = TrainingProbe.from_dict(probe.to_dict(FIELDS))
    assert everything.series("dead_fraction") == probe.series("dead_fraction")
    broken = dict(stored, grad_norm={"layers": stored["grad_norm"]["layers"], "values": [[1.0]]})
    with pytest.raises(ValueError, match="'grad_norm' is not one value per layer"):
        TrainingProbe.from_dict(broken)
    with pytest.raises(ValueError, match="a list of 'steps'"):
        TrainingProbe.from_dict({"loss": []})
    # a probe of steps the run never reached: an empty one, that says so when read
    empty = TrainingProbe.from_dict(TrainingProbe(model, steps=(99,)).to_dict())
    with pytest.raises(ValueError, match="Nothing recorded"):
        empty.series("grad_norm")
