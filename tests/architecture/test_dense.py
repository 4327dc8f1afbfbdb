"""Dense evaluation's conversion (the paper's Section 3.2): fully connected layers as
convolutions, the same scores at the training size, class-score maps on larger images."""

import pytest
import torch
from torch import nn

from support import randomise_batch_norm
from vgg_lib.architecture.dense import score_map_size, to_fully_convolutional
from vgg_lib.architecture.model import ModelSpec, vgg

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("head, size", [("imagenet", 224), ("compact", 32), ("fc-2x2", 32)])
def test_converted_network_gives_the_same_scores_at_the_training_size(head, size):
    torch.manual_seed(0)
    model = randomise_batch_norm(vgg("A", batch_norm=True, width=0.125, head=head,
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
