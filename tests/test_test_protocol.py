"""Chapter 9's machinery: the fully-convolutional conversion (Section 3.2), the test-time
protocols with their multiply-adds, scale jittering in the recipe and the loop, and the dense
protocol of the ImageFolder path."""

import pytest
import torch
from torch import nn

from vgg_lib.architecture.dense import (FullyConvolutionalVGG, score_map_size,
                                        to_fully_convolutional)
from vgg_lib.architecture.model import vgg
from vgg_lib.architecture.spec import ModelSpec
from vgg_lib.measure.counting import costs
from vgg_lib.training.augment import (apply_scale_crop_flip, random_scale_crop_flip,
                                      resize_images)
from vgg_lib.training.protocols import (View, crop_grid, dense, dense_and_multi_crop,
                                        evaluate_protocols, flip_average, multi_crop,
                                        protocol_macs, protocol_suite, single_crop)
from vgg_lib.training.recipe import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_batch_norm(model):
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize("head, size", [("imagenet", 224), ("compact", 32), ("fc-2x2", 32)])
def test_converted_network_gives_the_same_scores_at_the_training_size(head, size):
    torch.manual_seed(0)
    model = _randomise_batch_norm(vgg("A", batch_norm=True, width=0.125, head=head,
                                      num_classes=10)).eval()
    converted = to_fully_convolutional(model).eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        expected, scores = model(x), converted(x)
    assert scores.shape == (3, 10, 1, 1)
    torch.testing.assert_close(scores.flatten(1), expected, atol=1e-5, rtol=1e-4)
    # the same keys, and shared (not copied) weights
    assert list(converted.state_dict()) == list(model.state_dict())
    first = converted.classifier[0]
    assert first.weight.data_ptr() == model.classifier[0].weight.data_ptr()


def test_imagenet_head_becomes_7x7_then_1x1_convolutions_and_320_gives_a_4x4_map():
    with torch.device("meta"):
        model = vgg("D", init_weights=False)
        converted = to_fully_convolutional(model)
    convs = [m for m in converted.classifier if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(7, 7), (1, 1), (1, 1)]
    assert [c.out_channels for c in convs] == [4096, 4096, 1000]
    with torch.device("meta"):
        assert converted(torch.zeros(1, 3, 320, 320)).shape == (1, 1000, 4, 4)
        assert converted(torch.zeros(1, 3, 224, 224)).shape == (1, 1000, 1, 1)
    assert [score_map_size(s) for s in (224, 256, 320, 384, 512)] == [1, 2, 4, 6, 10]
    assert score_map_size(64, pool_count=4, map_size=2) == 3
    with pytest.raises(ValueError, match="smaller than the 7x7 window"):
        score_map_size(200)


def test_torchvision_state_dict_loads_and_converts():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    reference = torchvision.models.vgg11(weights=None).eval()
    model = vgg("A").eval()
    model.load_state_dict(reference.state_dict())
    converted = to_fully_convolutional(model).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(converted.class_scores(x), reference(x), atol=1e-4, rtol=1e-4)
        assert converted(torch.randn(1, 3, 256, 288)).shape == (1, 1000, 2, 3)


def test_conversion_refuses_what_it_cannot_convert_and_small_inputs_clearly():
    with pytest.raises(TypeError, match="converts a VGG"):
        to_fully_convolutional(nn.Linear(3, 4))
    converted = to_fully_convolutional(vgg("A", width=0.125, head="fc-2x2", num_classes=10))
    assert to_fully_convolutional(converted) is converted
    with pytest.raises(ValueError, match="5x5 feature map|leaves a 1x1"):
        converted(torch.zeros(1, 3, 16 * 1 + 8, 16 * 1 + 8))


def test_fc_2x2_head_drops_the_last_pool_and_keeps_default_keys():
    model = ModelSpec("A", batch_norm=True, width=0.25, head="fc-2x2", num_classes=10).build()
    assert not isinstance(model.features[-1], nn.MaxPool2d)
    assert model.classifier[0].in_features == 128 * 2 * 2
    compact = ModelSpec("A", batch_norm=True, width=0.25, head="compact", num_classes=10).build()
    features = [k for k in compact.state_dict() if k.startswith("features.")]
    assert features == [k for k in model.state_dict() if k.startswith("features.")]
    # the default (ImageNet) spec is untouched: torchvision's keys
    assert isinstance(vgg("A", init_weights=False).features[-1], nn.MaxPool2d)


def test_scale_jitter_crop_is_a_resize_then_a_crop_and_stays_in_range():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    scales, top, left = torch.tensor([32, 40, 48, 64]), torch.tensor([0, 3, 16, 5]), torch.tensor([0, 8, 2, 30])
    flips = torch.tensor([False, True, False, True])
    out = apply_scale_crop_flip(images, scales, top, left, flips, 32)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out[0], images[0])
    for i in range(4):
        expected = resize_images(images[i:i + 1], int(scales[i]))[0, :, top[i]:top[i] + 32,
                                                                  left[i]:left[i] + 32]
        expected = expected.flip(2) if flips[i] else expected
        assert (expected.int() - out[i].int()).abs().max() <= 1  # float rounding of coordinates
    generator = torch.Generator().manual_seed(0)
    crops = random_scale_crop_flip(images, 32, 48, generator=generator)
    assert crops.shape == images.shape
    with pytest.raises(ValueError, match="at least the 32-pixel crop"):
        random_scale_crop_flip(images, 24, 48)


def test_recipe_scale_jitter_is_checked_and_round_trips():
    recipe = TrainConfig(scale_jitter=(32, 48), crop_padding=0)
    assert TrainConfig.from_dict(recipe.to_dict()) == recipe
    assert TrainConfig.from_dict({**recipe.to_dict(), "scale_jitter": [32, 48]}) == recipe
    with pytest.raises(ValueError, match=r"scale_jitter=\(48, 32\)"):
        TrainConfig(scale_jitter=(48, 32), crop_padding=0)
    with pytest.raises(ValueError, match="set crop_padding=0"):
        TrainConfig(scale_jitter=(32, 48))


def tiny_data(train=64, test=40):
    from vgg_lib.training.data import CIFAR10Data

    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (train + test, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (train + test,), generator=generator)
    x[y % 2 == 0, 0] = 250  # something learnable
    return CIFAR10Data(x[:train], y[:train], x[train:], y[train:], [str(i) for i in range(10)],
                       "synthetic")


def test_fit_trains_with_scale_jitter_and_refuses_a_scale_below_the_image():
    from vgg_lib.training.loop import fit

    data = tiny_data()
    spec = ModelSpec("A", batch_norm=True, width=0.0625, head="fc-2x2", num_classes=10)
    torch.manual_seed(0)
    history = fit(spec.build(), data, TrainConfig(epochs=1, batch_size=32, crop_padding=0,
                                                 scale_jitter=(32, 40)), progress=False)
    assert history.finished and history.test is not None
    with pytest.raises(ValueError, match="at least the images' 32 pixels"):
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
    model = _randomise_batch_norm(spec.build()).eval()
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


def test_dense_multi_scale_protocol_of_the_image_folder_path():
    from vgg_lib.training.imagefolder import DenseMultiScale

    protocol = DenseMultiScale((32, 48))
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    assert protocol.transform(image).shape == (3, 48, 72)
    model = vgg("A", width=0.0625, head="compact", num_classes=3).eval()
    with torch.no_grad():
        logits = protocol.logits(model, torch.randn(1, 3, 48, 72))
    assert logits.shape == (1, 3) and torch.allclose(logits.exp().sum(1), torch.ones(1))
    with pytest.raises(ValueError, match="test scales"):
        DenseMultiScale(())
