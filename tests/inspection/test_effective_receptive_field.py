"""Effective receptive fields: which pixels move a unit."""

import pytest
import torch
from torch import nn

from vgg_lib.inspection.effective_receptive_field import (effective_receptive_field, mass_square_side,
                                               tile_images)
from vgg_lib.measure.receptive_field import receptive_field


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


