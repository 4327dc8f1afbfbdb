"""The test-time protocols of Chapter 9 (the paper's Section 3.2) with their multiply-adds, and
the one engine that runs them on tensors and on images of any size; scale-jittered training
evaluated by it."""

import pytest
import torch

from support import randomise_batch_norm
from vgg_lib.architecture.dense import to_fully_convolutional
from vgg_lib.architecture.model import ModelSpec, vgg
from vgg_lib.evaluation.engine import evaluate_protocols, worker_plan
from vgg_lib.evaluation.protocols import (View, centre_crop, combine, crop_grid, dense,
                                          dense_and_multi_crop, flip_average, multi_crop,
                                          protocol_macs, protocol_suite, single_crop)
from vgg_lib.measure.counting import costs
from vgg_lib.training.data import CIFAR10Data
from vgg_lib.training.folders import evaluation_transform
from vgg_lib.training.loop import fit
from vgg_lib.training.recipe import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_data(train=64, test=40):
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (train + test, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (train + test,), generator=generator)
    x[y % 2 == 0, 0] = 250  # something learnable
    return CIFAR10Data(x[:train], y[:train], x[train:], y[train:], [str(i) for i in range(10)],
                       "synthetic")


def test_fit_trains_with_scale_jitter_and_refuses_a_scale_below_the_image():
    data = tiny_data()
    spec = ModelSpec("A", batch_norm=True, width=0.0625, head="fc-2x2", num_classes=10)
    torch.manual_seed(0)
    history = fit(spec.build(), data, TrainConfig(epochs=1, batch_size=32, crop_padding=0,
                                                 scale_jitter=(32, 40)), progress=False)
    assert history.finished and history.test is not None
    with pytest.raises(ValueError, match="at least the 32-pixel crop"):
        fit(spec.build(), data, TrainConfig(epochs=1, batch_size=32, crop_padding=0,
                                           scale_jitter=(24, 40)), progress=False)


def test_protocols_views_costs_and_shared_evaluation():
    assert single_crop().parts == (View(32),)
    assert len(list(flip_average().views())) == 2
    assert crop_grid(48, 32, 3) == [(t, l) for t in (0, 8, 16) for l in (0, 8, 16)]
    assert crop_grid(32, 32, 3) == [(0, 0)]
    crops = multi_crop((32, 48))
    assert len(list(crops.views())) == 2 + 18
    combined = dense_and_multi_crop((32, 48))
    assert len(list(combined.views())) == 4 + 20
    spec = ModelSpec("A", batch_norm=True, width=0.0625, head="fc-2x2", num_classes=10)
    torch.manual_seed(0)
    model = randomise_batch_norm(spec.build()).eval()
    converted = to_fully_convolutional(model)
    one = costs(converted, 32).macs
    assert protocol_macs(single_crop(), converted) == one
    assert protocol_macs(flip_average(), converted) == 2 * one
    assert protocol_macs(dense(48), converted) == 2 * costs(converted, 48).macs
    assert protocol_macs(crops, converted) == 20 * one
    data = tiny_data()
    suite = protocol_suite((32, 48), 48)
    results = evaluate_protocols(model, data, suite, progress=False)
    assert [r.name for r in results.values()] == [p.name for p in suite]
    assert all(r.images == 40 and 0 <= r.accuracy <= 1 for r in results.values())
    # single crop == the model's own argmax; dense at Q=32 == flip average
    with torch.no_grad():
        plain = model(data.normalize(data.x_test)).argmax(1)
    assert results["single crop"].accuracy == pytest.approx((plain == data.y_test).float().mean().item())
    alone = evaluate_protocols(model, data, [dense(32)], progress=False)
    assert alone["dense Q=32"].accuracy == results["flip"].accuracy
    # the same protocol evaluated on its own gives what it gave among others
    again = evaluate_protocols(model, data, [suite[4]], progress=False, limit=40)
    assert again[suite[4].name].accuracy == results[suite[4].name].accuracy
    with pytest.raises(ValueError, match="share a name"):
        evaluate_protocols(model, data, [single_crop(), single_crop()], progress=False)
    with pytest.raises(ValueError, match="Test scale Q=16"):
        dense(16)


def test_dense_evaluation_of_images_of_any_size():
    """Images of a folder differ in size: the workers rescale each one's shorter side to the
    largest Q (dense) or cut the centre crop (then batches are equal crops), the device the rest."""
    protocol = dense((32, 48))
    prepare, on_device = worker_plan(list(protocol.views()))
    assert prepare == (48, None) and on_device == {}
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    assert evaluation_transform(image, *prepare).shape == (3, 48, 72)
    assert [v.window(48, 72).size for v in protocol.views()] == [(32, 48), (32, 48), (48, 72), (48, 72)]
    crop = centre_crop(36, 32, flip=True)
    prepare, on_device = worker_plan(list(crop.views()))
    assert prepare == (36, 32) and set(on_device.values()) == {View(None), View(None, True)}
    model = vgg("A", width=0.0625, head="compact", num_classes=3).eval()
    converted = to_fully_convolutional(model).eval()
    batch = torch.randint(0, 256, (1, 3, 48, 72), dtype=torch.uint8)
    with torch.no_grad():
        computed = {v: converted.class_scores(v.window(48, 72).cut(batch).float()).log_softmax(1)
                    for v in protocol.views()}
    log_posteriors = combine(protocol, computed)
    assert log_posteriors.shape == (1, 3) and torch.allclose(log_posteriors.exp().sum(1), torch.ones(1))
    with pytest.raises(ValueError, match="test scale"):
        dense(())
