"""First-layer filters as pictures."""

import pytest
import torch
import torch.nn.functional as F

from vgg_lib import vgg
from vgg_lib.inspection.filters import (filter_energy_split, filter_grid, first_layer_filters,
                             filters_as_pictures)


def small_model(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=10).eval()


# --- first-layer filters ----------------------------------------------------------------------

def test_per_filter_normalisation_stretches_each_filter_and_keeps_zero_grey():
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(4))
    weight[2] *= 10
    tiles = filters_as_pictures(weight, "per_filter")
    for tile, w in zip(tiles, weight):
        extreme = tile.flatten()[w.abs().flatten().argmax()]
        assert extreme.item() in (0.0, 1.0)
        assert 0 <= tile.min() and tile.max() <= 1
    torch.testing.assert_close(filters_as_pictures(torch.zeros(1, 3, 3, 3), "per_filter"),
                               torch.full((1, 3, 3, 3), 0.5))


def test_global_normalisation_uses_one_scale_for_all_filters():
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(5))
    weight[2] *= 10
    tiles = filters_as_pictures(weight, "global")
    deviation = (tiles - 0.5).abs().flatten(1).amax(dim=1)
    assert deviation[2].item() == pytest.approx(0.5)
    assert (deviation[[0, 1, 3, 4, 5]] < 0.5).all()
    torch.testing.assert_close(tiles - 0.5, weight / (2 * weight.abs().max()))
    with pytest.raises(ValueError, match="per_filter"):
        filters_as_pictures(weight, "minmax")


def test_filter_grid_places_every_filter_in_its_cell():
    weight = torch.randn(10, 3, 3, 3, generator=torch.Generator().manual_seed(6))
    grid = filter_grid(weight, columns=4, padding=1)
    assert grid.shape == (3 * 4 + 1, 4 * 4 + 1, 3)
    tiles = filters_as_pictures(weight).permute(0, 2, 3, 1).numpy()
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


