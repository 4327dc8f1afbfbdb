"""Perceptual distances (vgg_lib/transfer/perceptual.py)."""

import pytest
import torch

from vgg_lib.transfer.perceptual import (KINDS, SAME_PICTURE, across_networks, blurred,
                                         distance_study, feature_distance, partners, pixel_distance,
                                         relative_medians, same_picture_rate, shifted, with_noise)

from transfer_support import cifar_like, small_model


def test_the_changes_do_what_they_say():
    images = torch.rand(4, 3, 8, 8)
    one = shifted(images, 1)
    assert torch.equal(one[..., 1:], images[..., :-1]) and torch.equal(one[..., 0], images[..., 0])
    assert torch.equal(shifted(images, 2)[..., 2:], images[..., :-2])
    flat = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(blurred(flat), flat)            # a blur keeps a flat image
    assert blurred(images).std() < images.std()                # ... and smooths a noisy one
    noisy = with_noise(images, std=0.05, seed=0)
    assert torch.equal(noisy, with_noise(images, std=0.05, seed=0)) and noisy.min() >= 0
    assert 0.03 < (noisy - images).std() < 0.06                # clipping shrinks it a little

def test_partners_are_other_images_of_the_same_or_another_class():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    same, other = partners(labels, True, seed=0), partners(labels, False, seed=0)
    assert (same != torch.arange(7)).all() and torch.equal(labels[same], labels)
    assert (labels[other] != labels).all()
    with pytest.raises(ValueError, match="no partner"):
        partners(torch.tensor([0, 1, 1]), True)

def test_distances_are_zero_for_the_same_image_and_pixels_are_rms():
    images = torch.rand(3, 3, 8, 8)
    assert torch.equal(pixel_distance(images, images), torch.zeros(3))
    assert pixel_distance(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)).item() == 0.5
    maps = torch.rand(2, 5, 4, 4)
    assert feature_distance(maps, maps).abs().max() < 1e-12
    assert feature_distance(maps, 3 * maps).abs().max() < 1e-10   # only directions count
    one_hot = torch.zeros(1, 2, 1, 1)
    other = one_hot.clone()
    one_hot[0, 0], other[0, 1] = 1, 1
    assert feature_distance(one_hot, other).item() == pytest.approx(2.0)

def test_the_distance_study_measures_every_change_in_pixels_and_blocks(one_thread):
    model, data = small_model(classes=10), cifar_like(per_class=2)
    study = distance_study(model, data.x_train, data.y_train, data.mean, data.std)
    assert list(study) == list(KINDS)
    metrics = ["pixels", "relu1_1", "relu2_1", "relu3_2", "relu4_2", "relu5_2"]
    assert all(list(found) == metrics and all(len(v) == 20 for v in found.values())
               for found in study.values())
    relative = relative_medians(study)
    assert all(relative[m]["other class"] == 1 for m in metrics)
    rates = same_picture_rate(study)
    assert set(rates["pixels"]) == set(SAME_PICTURE)
    assert all(0 <= r <= 1 for per in rates.values() for r in per.values())

def test_one_pixel_stripes_shifted_by_one_pixel_are_as_far_as_pixels_can_be():
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., 1::2] = 1.0
    # every column but the repeated edge one flips between black and white
    assert pixel_distance(stripes, shifted(stripes, 1)).item() == pytest.approx((31 / 32) ** 0.5)
    assert pixel_distance(stripes, torch.full_like(stripes, 0.5)).item() == pytest.approx(0.5)

def test_tables_of_several_networks_are_averaged_with_their_spread():
    tables = [{"pixels": {"blur": 0.2, "flip": 0.6}}, {"pixels": {"blur": 0.4, "flip": 0.6}}]
    summary = across_networks(tables)
    assert summary["pixels"]["flip"] == (pytest.approx(0.6), 0.0)
    mean, spread = summary["pixels"]["blur"]
    assert mean == pytest.approx(0.3) and spread == pytest.approx(2 ** 0.5 * 0.1)
    with pytest.raises(ValueError, match="at least one"):
        across_networks([])
