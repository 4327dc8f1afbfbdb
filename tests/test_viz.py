"""Feature-map capture, filter pictures, activation maximisation and effective receptive fields."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vgg_lib import vgg
from vgg_lib.inspection.activation_maximisation import gaussian_blur, maximise_activation
from vgg_lib.inspection.effective_receptive_field import (effective_receptive_field, mass_square_side,
                                               tile_images)
from vgg_lib.architecture.naming import feature_names
from vgg_lib.inspection.feature_maps import (block_ends, capture_activations, max_activations,
                                             strongest_channels, top_k_images)
from vgg_lib.measure.receptive_field import receptive_field
from vgg_lib.inspection.filters import (filter_energy_split, filter_grid, first_layer_filters,
                             normalise_filters)


def small_model(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=10).eval()


def all_hooks(model):
    return [hook for module in model.modules() for hook in module._forward_hooks.values()]


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


def test_capture_equals_running_the_layers_by_hand():
    model = small_model(batch_norm=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    captured = capture_activations(model, x, ["relu2_1", 9, "relu5_2"])
    names = {name: index for index, name in feature_names(model).items()}
    with torch.no_grad():
        for key, index in [("relu2_1", names["relu2_1"]), (9, 9), ("relu5_2", names["relu5_2"])]:
            torch.testing.assert_close(captured[key], model.features[:index + 1](x))
    assert all_hooks(model) == []


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


def test_hooks_are_removed_even_when_the_forward_pass_fails():
    model = small_model()
    with pytest.raises(RuntimeError):
        capture_activations(model, torch.zeros(1, 5, 32, 32), "relu3_2")  # 5 input channels
    assert all_hooks(model) == []


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


def test_top_k_images_agree_with_brute_force():
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
    assert all_hooks(model) == []


# --- first-layer filters ----------------------------------------------------------------------

def test_per_filter_normalisation_stretches_each_filter_and_keeps_zero_grey():
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(4))
    weight[2] *= 10
    tiles = normalise_filters(weight, "per_filter")
    for tile, w in zip(tiles, weight):
        extreme = tile.flatten()[w.abs().flatten().argmax()]
        assert extreme.item() in (0.0, 1.0)
        assert 0 <= tile.min() and tile.max() <= 1
    torch.testing.assert_close(normalise_filters(torch.zeros(1, 3, 3, 3), "per_filter"),
                               torch.full((1, 3, 3, 3), 0.5))


def test_global_normalisation_uses_one_scale_for_all_filters():
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(5))
    weight[2] *= 10
    tiles = normalise_filters(weight, "global")
    deviation = (tiles - 0.5).abs().flatten(1).amax(dim=1)
    assert deviation[2].item() == pytest.approx(0.5)
    assert (deviation[[0, 1, 3, 4, 5]] < 0.5).all()
    torch.testing.assert_close(tiles - 0.5, weight / (2 * weight.abs().max()))
    with pytest.raises(ValueError, match="per_filter"):
        normalise_filters(weight, "minmax")


def test_filter_grid_places_every_filter_in_its_cell():
    weight = torch.randn(10, 3, 3, 3, generator=torch.Generator().manual_seed(6))
    grid = filter_grid(weight, columns=4, padding=1)
    assert grid.shape == (3 * 4 + 1, 4 * 4 + 1, 3)
    tiles = normalise_filters(weight).permute(0, 2, 3, 1).numpy()
    for i in range(10):
        top, left = 1 + (i // 4) * 4, 1 + (i % 4) * 4
        assert (grid[top:top + 3, left:left + 3] == tiles[i]).all()
    assert (grid[-4:, 9:] == 1).all()  # the two empty cells stay white
    with pytest.raises(ValueError, match="3 input channels"):
        filter_grid(torch.zeros(4, 16, 3, 3))


def test_first_layer_filters_fold_batch_norm_and_input_scaling():
    model = small_model(batch_norm=True)
    bn = model.features[1]
    generator = torch.Generator().manual_seed(7)
    bn.weight.data = torch.randn(bn.num_features, generator=generator)  # some negative: sign flips
    bn.running_var.data = torch.rand(bn.num_features, generator=generator) + 0.1
    bn.running_mean.data = torch.randn(bn.num_features, generator=generator)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    pixels = torch.rand(2, 3, 16, 16, generator=generator)
    first_two = lambda p: model.features[:2]((p - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    with torch.no_grad():
        linear_part = first_two(pixels) - first_two(torch.zeros_like(pixels))
    folded = first_layer_filters(model, std=std)
    torch.testing.assert_close(F.conv2d(pixels, folded, padding=1), linear_part, atol=1e-5, rtol=1e-4)


def test_filter_energy_split_separates_colour_grey_pattern_and_colour_pattern():
    pattern = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])  # Sobel: zero spatial mean
    flat = torch.ones(3, 3, 3) * torch.tensor([1.0, -0.5, 0.2]).view(3, 1, 1)
    grey = pattern.expand(3, 3, 3)
    colour = torch.stack([pattern, -pattern, torch.zeros(3, 3)])
    split = filter_energy_split(torch.stack([flat, grey, colour, flat + grey + colour]))
    torch.testing.assert_close(split[:3], torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(split.sum(dim=1), torch.ones(4, dtype=torch.float64))
    energies = torch.tensor([(flat ** 2).sum(), (grey ** 2).sum(), (colour ** 2).sum()], dtype=torch.float64)
    torch.testing.assert_close(split[3], energies / energies.sum())


# --- activation maximisation ------------------------------------------------------------------

def test_gaussian_blur_matches_torchvision():
    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(8))
    ours = gaussian_blur(images, sigma=1.0)
    theirs = torchvision.transforms.functional.gaussian_blur(images, kernel_size=5, sigma=1.0)
    torch.testing.assert_close(ours, theirs)


def test_activation_maximisation_finds_the_colour_a_unit_wants():
    # One 1x1 convolution: channel 0 likes red and dislikes blue, channel 1 the reverse.
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()).train()
    model[0].weight.data = torch.tensor([[1.0, 0, -1], [-1, 0, 1]]).view(2, 3, 1, 1)
    model[0].bias.data.zero_()
    result = maximise_activation(model, 1, [0, 1], size=8, steps=60, lr=0.05, seed=0)
    assert result.images.shape == (2, 3, 8, 8)
    assert 0 <= result.images.min() and result.images.max() <= 1
    red, blue = result.images[:, 0].mean(dim=(1, 2)), result.images[:, 2].mean(dim=(1, 2))
    assert red[0] > 0.9 and blue[0] < 0.1 and blue[1] > 0.9 and red[1] < 0.1
    assert (result.final_activation > result.start_activation + 1).all()
    assert model.training and all_hooks(model) == []


def test_a_unit_that_is_off_on_grey_still_gets_a_gradient_through_its_relu_input():
    model = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU())
    model[0].weight.data = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    model[0].bias.data = torch.tensor([-0.8])  # off until normalised red exceeds 0.8 (pixel 0.9)
    stuck = maximise_activation(model, 1, [0], size=8, steps=40, seed=0, pre_relu=False)
    assert stuck.final_activation.item() == 0 and torch.allclose(stuck.images, stuck.images.mean(), atol=0.05)
    rising = maximise_activation(model, 1, [0], size=8, steps=40, seed=0)
    # Grey (0.5) becomes 0 after the default normalisation, so the pre-ReLU value starts at the bias.
    assert rising.start_activation.item() == pytest.approx(-0.8, abs=0.02)
    assert rising.final_activation.item() > 0.1 and rising.images[0, 0].mean() > 0.9


def test_activation_maximisation_is_reproducible_and_raises_a_vgg_unit():
    model = small_model(batch_norm=True)
    one = maximise_activation(model, "relu3_2", [1, 2], steps=8, seed=3)
    two = maximise_activation(model, "relu3_2", [1, 2], steps=8, seed=3)
    torch.testing.assert_close(one.images, two.images)
    assert (one.final_activation > one.start_activation).all()
    with pytest.raises(ValueError, match="32 pixels"):
        maximise_activation(model, "relu3_2", [0], size=16)


# --- effective receptive field ----------------------------------------------------------------

def test_tile_images_puts_image_i_in_row_i_div_columns():
    images = torch.arange(6 * 3 * 2 * 2, dtype=torch.float32).view(6, 3, 2, 2)
    mosaic = tile_images(images, columns=3)
    assert mosaic.shape == (3, 4, 6)
    for i in range(6):
        r, c = divmod(i, 3)
        assert torch.equal(mosaic[:, 2 * r:2 * r + 2, 2 * c:2 * c + 2], images[i])
    with pytest.raises(ValueError, match="multiple of 4"):
        tile_images(images, columns=4)


def test_erf_of_one_convolution_is_its_absolute_weights():
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    model = nn.Sequential(conv)
    erf = effective_receptive_field(model, 0, torch.randn(3, 3, 9, 9, generator=torch.Generator().manual_seed(9)))
    expected = torch.zeros(9, 9)
    expected[3:6, 3:6] = conv.weight.detach().sum(dim=0).abs().sum(dim=0)
    torch.testing.assert_close(erf, expected)


@pytest.mark.parametrize("pool_every", [None, 2])
def test_erf_support_of_a_linear_stack_equals_the_theoretical_receptive_field(pool_every):
    # Without ReLUs and with positive weights nothing cancels, so the gradient is non-zero on
    # exactly the pixels the theory says the unit can see.
    layers = []
    for i in range(4):
        layers.append(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1))
        if pool_every and (i + 1) % pool_every == 0:
            layers.append(nn.AvgPool2d(2))
    model = nn.Sequential(*layers)
    for conv in model[::1]:
        if isinstance(conv, nn.Conv2d):
            conv.weight.data.uniform_(0.1, 1.0)
    erf = effective_receptive_field(model, len(model) - 1, torch.randn(1, 3, 40, 40))
    rows, columns = torch.nonzero(erf > 0, as_tuple=True)
    side = receptive_field(model, input_size=40)
    assert rows.max() - rows.min() + 1 == side and columns.max() - columns.min() + 1 == side


def test_mass_square_side():
    delta = torch.zeros(15, 15)
    delta[7, 7] = 1
    assert mass_square_side(delta) == 1
    block = torch.zeros(15, 15)
    block[5:10, 5:10] = 1
    assert mass_square_side(block, share=1.0) == 5
    assert mass_square_side(torch.ones(9, 9), share=0.5) == 7  # 6x6 holds 36/81 < 0.5, 7x7 49/81
    with pytest.raises(ValueError, match="non-negative"):
        mass_square_side(-block)


# --- figures ----------------------------------------------------------------------------------

def test_feature_map_figure_has_one_row_per_layer_labelled_with_its_shape():
    import matplotlib.pyplot as plt
    from vgg_lib.inspection.plots import show_feature_maps

    model = small_model()
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))
    maps = {name: a[0] for name, a in capture_activations(model, image[None].float() / 255,
                                                           list(block_ends(model))).items()}
    fig = show_feature_maps(image, maps, k=3)
    axes = fig.axes
    assert len(axes) == 5 * 4
    assert axes[0].get_ylabel() == "relu1_1\n32×32×8" and axes[4 * 4].get_ylabel() == "relu5_2\n2×2×64"
    top = strongest_channels(maps["relu3_2"], 3).tolist()
    assert [ax.get_title().split(",")[0] for ax in axes[2 * 4 + 1:3 * 4]] == [f"ch {c}" for c in top]
    plt.close(fig)


def test_receptive_field_figure_zooms_on_the_theoretical_square():
    import matplotlib.pyplot as plt
    from vgg_lib.inspection.plots import show_receptive_fields

    fig = show_receptive_fields([torch.rand(100, 100)], [20], [(50.0, 40.0)], ["x"], margin=0.5)
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((40 - 16, 40 + 16))
    assert ax.get_ylim() == pytest.approx((50 + 16, 50 - 16))
    square = ax.patches[0]
    assert (square.get_x(), square.get_y(), square.get_width()) == (30.0, 40.0, 20)
    plt.close(fig)


def test_unit_gallery_puts_the_synthesised_image_first_and_the_top_images_after_it():
    import matplotlib.pyplot as plt
    from vgg_lib.inspection.plots import show_unit_gallery

    synthesised = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(12))
    top = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(13))
    fig = show_unit_gallery(synthesised, top, ["a", "b"], [["x", "y", "z"], ["u", "v", "w"]])
    axes = fig.axes
    assert len(axes) == 2 * 4 and axes[4].get_ylabel() == "b" and axes[7].get_title() == "w"
    assert (axes[0].get_images()[0].get_array() == synthesised[0].permute(1, 2, 0).numpy()).all()
    assert np.allclose(axes[6].get_images()[0].get_array(), top[1, 1].permute(1, 2, 0).numpy() / 255)
    plt.close(fig)
