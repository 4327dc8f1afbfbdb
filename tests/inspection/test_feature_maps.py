"""Feature maps: layer names, capture by hooks, strongest channels and top images."""

import pytest
import torch
import torchvision
from torch import nn

from vgg_lib import vgg
from vgg_lib.architecture.naming import feature_names
from vgg_lib.inspection.feature_maps import (block_ends, capture_activations, max_activations, model_input,
                                             strongest_channels, top_k_images)


def small_model(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=10).eval()


# --- layer names and capture -------------------------------------------------------------------

def test_block_ends_match_the_perceptual_loss_layers_of_torchvision_vgg16():
    # Johnson et al. (2016) and most perceptual-loss code read torchvision's vgg16().features at
    # indices 3, 8, 15, 22 and 29 and call them relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
    ends = block_ends(torchvision.models.vgg16())
    assert ends == {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}


def test_layer_names_count_convolutions_per_block_with_batch_norm():
    names = feature_names(vgg("B", batch_norm=True))
    assert [names[i] for i in range(8)] == ["conv1_1", "bn1_1", "relu1_1", "conv1_2", "bn1_2",
                                            "relu1_2", "pool1", "conv2_1"]


@pytest.mark.parametrize("config, batch_norm", [("A-LRN", False), ("C", True), ("E", False)])
def test_layer_names_are_those_of_the_shape_trace(config, batch_norm):
    from vgg_lib.measure.shape_trace import trace_shapes

    model = vgg(config, batch_norm=batch_norm)
    features = list(feature_names(model).values())
    traced = [layer.name for layer in trace_shapes(model, image_size=32).layers]
    assert traced[:len(features)] == features


def test_capture_equals_running_the_layers_by_hand(no_hooks_left):
    model = small_model(batch_norm=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    captured = capture_activations(model, x, ["relu2_1", 9, "relu5_2"])
    names = {name: index for index, name in feature_names(model).items()}
    with torch.no_grad():
        for key, index in [("relu2_1", names["relu2_1"]), (9, 9), ("relu5_2", names["relu5_2"])]:
            torch.testing.assert_close(captured[key], model.features[:index + 1](x))
    assert no_hooks_left(model)


@pytest.mark.parametrize("detach", [True, False])
def test_capture_keeps_a_convolution_output_from_the_in_place_relu_after_it(detach):
    model = small_model()  # conv1_1 is followed by ReLU(inplace=True)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    captured = capture_activations(model, x, ["conv1_1", "relu1_1"], detach=detach)
    with torch.no_grad():
        torch.testing.assert_close(captured["conv1_1"], model.features[0](x))
    assert captured["conv1_1"].min() < 0 and captured["relu1_1"].min() == 0


def test_capture_stops_after_the_deepest_layer_asked_for():
    calls = []
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    model[2].register_forward_pre_hook(lambda module, inputs: calls.append("ran"))
    activation = capture_activations(model, torch.zeros(1, 3, 8, 8), 1)
    assert activation.shape == (1, 4, 8, 8) and calls == []


def test_hooks_are_removed_even_when_the_forward_pass_fails(no_hooks_left):
    model = small_model()
    with pytest.raises(RuntimeError):
        capture_activations(model, torch.zeros(1, 5, 32, 32), "relu3_2")  # 5 input channels
    assert no_hooks_left(model)


def test_unknown_layer_name_is_a_clear_error():
    with pytest.raises(ValueError, match="relu1_1"):
        capture_activations(small_model(), torch.zeros(1, 3, 32, 32), "relu9_9")


def test_capture_without_detach_gives_input_gradients_like_plain_autograd():
    model = small_model()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2), requires_grad=True)
    (ours,) = torch.autograd.grad(capture_activations(model, x, "relu3_2", detach=False).sum(), x)
    names = {name: index for index, name in feature_names(model).items()}
    (reference,) = torch.autograd.grad(model.features[:names["relu3_2"] + 1](x).sum(), x)
    torch.testing.assert_close(ours, reference)



# --- strongest channels and top-k images ------------------------------------------------------

def test_strongest_channels_rank_by_mean_or_by_max():
    activation = torch.zeros(4, 2, 2)
    activation[0] = 1.0                   # mean 1, max 1
    activation[1, 0, 0] = 3.0             # mean 0.75, max 3
    activation[2] = 0.5                   # mean 0.5, max 0.5
    assert strongest_channels(activation, k=3, by="mean").tolist() == [0, 1, 2]
    assert strongest_channels(activation, k=3, by="max").tolist() == [1, 0, 2]
    # A batch ranks by the mean over images: (1 + 0) / 2, (0.75 + 0.5) / 2, (0.5 + 0.75) / 2, (0 + 1) / 2.
    batch = torch.stack([activation, activation.flip(0)])
    assert strongest_channels(batch, k=4).tolist() == [1, 2, 0, 3]  # ties keep the lower index


def test_top_k_images_agree_with_brute_force(no_hooks_left):
    model = small_model(batch_norm=True)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(3))
    normalize = lambda batch: batch.float() / 255 - 0.5
    scores = max_activations(model, ["relu3_2", "relu1_1"], images, normalize=normalize, batch_size=7)
    assert scores["relu1_1"].shape == (20, 8) and scores["relu3_2"].shape == (20, 32)
    indices, scores = top_k_images(scores["relu3_2"], [0, 5], k=4)
    names = {name: index for index, name in feature_names(model).items()}
    with torch.no_grad():
        all_scores = model.features[:names["relu3_2"] + 1](normalize(images))[:, [0, 5]].amax(dim=(2, 3))
    for row, channel_scores in enumerate(all_scores.T):
        expected = sorted(range(20), key=lambda i: -channel_scores[i].item())[:4]
        assert indices[row].tolist() == expected
        torch.testing.assert_close(scores[row], channel_scores[expected])
    assert no_hooks_left(model)




def test_model_input_normalises_and_enlarges_small_images_for_a_larger_network():
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    same = model_input(mean, std, "cpu")(images)
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(same, expected)
    enlarged = model_input(mean, std, "cpu", small_size=64)(images)
    assert enlarged.shape == (2, 3, 64, 64)
    assert model_input(mean, std, "cpu", small_size=64)(torch.zeros(1, 3, 40, 40, dtype=torch.uint8)).shape[-1] == 40
