"""Batched crop-and-flip against a per-image NumPy reference, and normalisation."""

import numpy as np
import pytest
import torch

from vgg_lib.evaluation.protocols import resize_images
from vgg_lib.training.augment import (apply_crop_flip, apply_scale_crop_flip, crop_flip_params, normalize,
                                      random_crop_flip, random_scale_crop_flip)


def reference_crop_flip(images, top, left, flips, padding):
    """One image at a time, the textbook way: pad, slice, mirror."""
    out = []
    for image, t, l, f in zip(images.numpy(), top.tolist(), left.tolist(), flips.tolist()):
        padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
        crop = padded[:, t:t + image.shape[1], l:l + image.shape[2]]
        out.append(crop[:, :, ::-1] if f else crop)
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_batched_crop_flip_matches_per_image_reference(padding):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=generator)
    top, left, flips = crop_flip_params(len(images), padding, generator=generator)
    ours = apply_crop_flip(images, top, left, flips, padding)
    assert ours.shape == images.shape and ours.dtype == torch.uint8
    assert torch.equal(ours, reference_crop_flip(images, top, left, flips, padding))


def test_every_offset_and_both_flips_occur():
    top, left, flips = crop_flip_params(4000, padding=4, generator=torch.Generator().manual_seed(1))
    assert sorted(set(top.tolist())) == list(range(9))
    assert sorted(set(left.tolist())) == list(range(9))
    assert 0.45 < flips.float().mean().item() < 0.55


def test_flip_and_crop_really_change_images():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).reshape(2, 3, 32, 32).to(torch.uint8)
    zero, four = torch.tensor([0, 4]), torch.tensor([4, 4])
    # no shift, no flip: the identity
    identity = apply_crop_flip(images, torch.tensor([4, 4]), four, torch.tensor([False, False]))
    assert torch.equal(identity, images)
    # flip only: the mirror image
    mirrored = apply_crop_flip(images, four, four, torch.tensor([True, True]))
    assert torch.equal(mirrored, images.flip(3))
    # top=0 shifts the content 4 rows down and fills the first 4 rows with zeros
    shifted = apply_crop_flip(images, zero, four, torch.tensor([False, False]))
    assert torch.equal(shifted[0, :, :4], torch.zeros_like(shifted[0, :, :4]))
    assert torch.equal(shifted[0, :, 4:], images[0, :, :28])
    assert torch.equal(shifted[1], images[1])


def test_labels_stay_with_their_images():
    # image i is filled with the value 10 * i: after cropping (at most 4 px off) the centre
    # pixel must still carry that value, so no image moved to another slot of the batch
    values = torch.arange(20, dtype=torch.uint8) * 10
    images = values.view(-1, 1, 1, 1).expand(-1, 3, 32, 32).contiguous()
    out = random_crop_flip(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, 16, 16], values.view(-1, 1).expand(-1, 3))


def test_same_generator_state_same_augmentation():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    a = random_crop_flip(images, generator=torch.Generator().manual_seed(5))
    b = random_crop_flip(images, generator=torch.Generator().manual_seed(5))
    c = random_crop_flip(images, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_normalize_matches_formula_and_layout():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    expected = (images.double() / 255 - torch.tensor(mean).double().view(1, 3, 1, 1)) \
        / torch.tensor(std).double().view(1, 3, 1, 1)
    ours = normalize(images, mean, std)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), expected, rtol=1e-5, atol=1e-5)
    nhwc = normalize(images, mean, std, channels_last=True)
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc, ours)


def test_normalize_rejects_float_input():
    with pytest.raises(TypeError, match="uint8"):
        normalize(torch.rand(1, 3, 4, 4), (0, 0, 0), (1, 1, 1))


def test_channels_last_crops_are_the_same_pixels_in_the_layout_the_network_takes():
    images = torch.randint(0, 256, (6, 3, 10, 12), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    top, left, flips = crop_flip_params(len(images), padding=2, generator=generator)
    plain = apply_crop_flip(images, top, left, flips, padding=2)
    fast = apply_crop_flip(images, top, left, flips, padding=2, channels_last=True)
    assert torch.equal(fast, plain) and fast.shape == plain.shape
    assert fast.is_contiguous(memory_format=torch.channels_last) and plain.is_contiguous()
    # a channels_last input is read correctly too
    again = apply_crop_flip(images.contiguous(memory_format=torch.channels_last), top, left, flips,
                            padding=2)
    assert torch.equal(again, plain)


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
