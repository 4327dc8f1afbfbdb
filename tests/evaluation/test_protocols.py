"""The test-time protocols of Chapter 9 (the paper's Section 3.2) with their multiply-adds, and
the one engine that runs them on tensors and on images of any size; scale-jittered training
evaluated by it."""

import pytest
import torch
import torch.nn.functional as F

from support import randomise_batch_norm
from vgg_lib.architecture.dense import to_fully_convolutional
from vgg_lib.architecture.model import ModelSpec, vgg
from vgg_lib.evaluation.engine import (Networks, evaluate, evaluate_protocols,
                                       protocol_posteriors, worker_plan)
from vgg_lib.evaluation.protocols import (View, centre_crop, combine, crop_grid, dense,
                                          dense_and_multi_crop, flip_average, multi_crop,
                                          protocol_macs, protocol_suite, shifted_flips,
                                          single_crop)
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


def shifted_by_hand(x, shift):
    """The prototype's test-time translation: reflect-pad 1 pixel, cut at (0, 0) (``shift`` +1:
    down-right) or at (2, 2) (-1: up-left)."""
    start = 1 - shift
    return F.pad(x, (1, 1, 1, 1), mode="reflect")[:, :, start:start + 32, start:start + 32]


def test_a_shifted_view_is_the_model_as_built_on_the_reflect_padded_image():
    spec = ModelSpec("A", batch_norm=True, width=0.0625, head="fc-2x2", num_classes=10)
    torch.manual_seed(0)
    model = randomise_batch_norm(spec.build()).eval()
    data = tiny_data(test=8)
    images = data.x_test
    views = [View(None, flip, shift=(s, s)) for s in (1, -1) for flip in (False, True)]
    network = Networks(model)
    computed = network.log_posteriors(images, views, data.normalize, images.device, "fp32")
    assert network.converted is None  # the model as built, not its fully-convolutional version
    x = data.normalize(images)
    with torch.no_grad():
        for view in views:
            shifted = shifted_by_hand(x, view.shift[0])
            expected = model(shifted.flip(3) if view.flip else shifted).log_softmax(1)
            assert torch.equal(computed[view], expected), view
    assert not torch.equal(computed[views[0]], computed[views[2]])
    # reprs of the views without a shift are the dataclass's as before; a shift shows
    assert repr(View(32)) == "View(scale=32, flip=False, crop=None, top=None, left=None)"
    assert repr(View(32, shift=(1, -2))).endswith("left=None, shift=(1, -2))")
    assert View(32, shift=(0, 0)) == View(32) and View(32, shift=[1, 1]).shift == (1, 1)


def test_flip_and_shifts_weigh_the_plain_pair_one_half_and_each_shifted_pair_one_quarter():
    protocol = shifted_flips()
    assert protocol.name == "flip + 1-pixel shifts" and len(list(protocol.views())) == 6
    spec = ModelSpec("A", batch_norm=True, width=0.0625, head="fc-2x2", num_classes=10)
    torch.manual_seed(0)
    model = randomise_batch_norm(spec.build()).eval()
    data = tiny_data(test=16)
    (posteriors,) = protocol_posteriors(model, data.x_test, [protocol], data.normalize).values()
    x = data.normalize(data.x_test)
    with torch.no_grad():
        def pair(v):
            return (model(v).softmax(1) + model(v.flip(3)).softmax(1)) / 2
        expected = (0.5 * pair(x) + 0.25 * pair(shifted_by_hand(x, 1))
                    + 0.25 * pair(shifted_by_hand(x, -1)))
    assert torch.allclose(posteriors, expected, atol=1e-6)
    assert not torch.allclose(posteriors, pair(x), atol=1e-6)
    converted = to_fully_convolutional(model)
    assert protocol_macs(protocol, converted) == 6 * costs(converted, 32).macs
    # evaluate() takes it: its accuracy is that of the hand-made average
    loss, accuracy = evaluate(model, data, protocol=protocol, precision="fp32")
    assert accuracy == pytest.approx((expected.argmax(1) == data.y_test).float().mean().item())
    assert loss == pytest.approx(F.nll_loss(expected.log(), data.y_test).item(), rel=1e-5)
    # a crop at a scale, and the crops of a folder's images: the device mirrors and translates
    cropped = shifted_flips(2, crop=32, scale=36)
    assert cropped.name == "centre crop 32 at Q=36, flip + 2-pixel shifts"
    prepare, on_device = worker_plan(list(cropped.views()))
    assert prepare == (36, 32)
    assert set(on_device.values()) == {View(None, f, shift=s) for f in (False, True)
                                       for s in (None, (2, 2), (-2, -2))}
    (result,) = evaluate_protocols(model, data, [cropped], progress=False, precision="fp32").values()
    assert result.views == 6 and result.macs == 6 * costs(converted, 32).macs


@pytest.mark.parametrize("make, message", [
    (lambda: View(32, shift=1), r"shift=1: use None or \(dy, dx\)"),
    (lambda: View(32, shift=(1, 0.5)), r"shift=\(1, 0.5\)"),
    (lambda: View(32, shift=(True, 1)), r"shift=\(True, 1\)"),
    (lambda: View(None, shift=(4, 4)).window(4, 8), r"A shift of \(4, 4\) pixels does not fit a 4x8"),
    (lambda: shifted_flips(0), r"shift=0: use a whole number of pixels >= 1"),
    (lambda: shifted_flips(1.5), r"shift=1.5"),
])
def test_bad_shifts_are_refused_with_what_to_do(make, message):
    with pytest.raises(ValueError, match=message):
        make()
