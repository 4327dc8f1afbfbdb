"""Activation maximisation: what a unit wants."""

import pytest
import torch
import torchvision
from torch import nn

from vgg_lib import vgg
from vgg_lib.inspection.activation_maximisation import gaussian_blur, maximise_activation


def small_model(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=10).eval()


# --- activation maximisation ------------------------------------------------------------------

def test_gaussian_blur_matches_torchvision():
    images = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(8))
    ours = gaussian_blur(images, sigma=1.0)
    theirs = torchvision.transforms.functional.gaussian_blur(images, kernel_size=5, sigma=1.0)
    torch.testing.assert_close(ours, theirs)


def test_activation_maximisation_finds_the_colour_a_unit_wants(no_hooks_left):
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
    assert model.training and no_hooks_left(model)


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


