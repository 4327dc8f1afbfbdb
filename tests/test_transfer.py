"""Chapter 11's library (vgg_lib/transfer): the class split, pooled block features, linear
probes, a pretrained network with a new head, perceptual distances and Gram-matrix textures."""

import pytest
import torch
import torch.nn.functional as F

from vgg_lib import vgg
from vgg_lib.training.data import CLASSES, CIFAR10Data
from vgg_lib.transfer.features import (penultimate_features, pooled_block_features,
                                      pooled_dimensions)
from vgg_lib.transfer.fine_tuning import from_scratch, with_new_head
from vgg_lib.transfer.perceptual import (KINDS, SAME_PICTURE, across_networks, blurred,
                                         distance_study,
                                         feature_distance, partners, perturbations,
                                         pixel_distance, relative_medians, same_picture_rate,
                                         shifted, with_noise)
from vgg_lib.transfer.probes import L2_GRID, choose_probe, standardisation, train_probe
from vgg_lib.transfer.split import (SOURCE_CLASSES, TARGET_CLASSES, class_split,
                                    labelled_subset, shared_classes)
from vgg_lib.transfer.texture import (first_relu_of_each_block, gram_matrix, synthesise_texture,
                                      with_average_pooling)


def cifar_like(per_class=12, seed=0):
    """A CIFAR10Data with ``per_class`` training, 3 validation and 4 test images of every class;
    every image's pixels say which class it is (its value 20 * label + noise)."""
    generator = torch.Generator().manual_seed(seed)

    def split(count):
        labels = torch.arange(10).repeat_interleave(count)
        noise = torch.randint(0, 15, (len(labels), 3, 32, 32), generator=generator)
        return (20 * labels.view(-1, 1, 1, 1) + noise).to(torch.uint8), labels

    (x, y), (xv, yv), (xt, yt) = split(per_class), split(3), split(4)
    return CIFAR10Data(x, y, xt, yt, list(CLASSES), "test", (0.4, 0.4, 0.4), (0.25, 0.25, 0.25),
                       xv, yv)


def small_model(classes=6, seed=0, batch_norm=True):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=classes).eval()


# --- the class split ------------------------------------------------------------------------------

def test_source_and_target_share_no_class_and_cover_cifar10():
    assert shared_classes(SOURCE_CLASSES, TARGET_CLASSES) == []
    assert sorted(SOURCE_CLASSES + TARGET_CLASSES) == sorted(CLASSES)


def test_the_split_keeps_only_its_classes_in_every_split_and_renumbers_them():
    data = cifar_like()
    target = class_split(data, TARGET_CLASSES)
    assert target.classes == list(TARGET_CLASSES)
    for split, per_class in (("train", 12), ("val", 3), ("test", 4)):
        x, y = target.split(split)
        assert torch.bincount(y).tolist() == [per_class] * 4
        # the pixels still say which CIFAR-10 class each image was: airplane 0, automobile 1, ...
        original = (x.float().mean(dim=(1, 2, 3)) // 20).long()
        assert original.tolist() == [CLASSES.index(TARGET_CLASSES[k]) for k in y.tolist()]


def test_the_split_normalises_with_its_own_images_or_the_ones_it_is_given():
    data = cifar_like()
    source = class_split(data, SOURCE_CLASSES)
    pixels = source.x_train.double() / 255
    assert source.mean == pytest.approx(tuple(pixels.mean(dim=(0, 2, 3)).tolist()))
    target = class_split(data, TARGET_CLASSES, source.mean, source.std)
    assert target.mean == source.mean and target.std == source.std


def test_bad_class_lists_get_clear_errors():
    data = cifar_like()
    with pytest.raises(ValueError, match="'lorry' is not among"):
        class_split(data, ["truck", "lorry"])
    with pytest.raises(ValueError, match="twice"):
        class_split(data, ["truck", "truck"])


def test_label_budgets_are_balanced_nested_and_keep_validation_and_test():
    target = class_split(cifar_like(), TARGET_CLASSES)
    small, large = labelled_subset(target, 2, seed=3), labelled_subset(target, 5, seed=3)
    assert torch.bincount(small.y_train).tolist() == [2] * 4
    assert torch.bincount(large.y_train).tolist() == [5] * 4
    rows = {bytes(image.numpy()) for image in large.x_train}
    assert all(bytes(image.numpy()) in rows for image in small.x_train)
    other_seed = labelled_subset(target, 2, seed=4)
    assert not torch.equal(other_seed.x_train, small.x_train)
    assert torch.equal(small.x_val, target.x_val) and torch.equal(small.x_test, target.x_test)
    assert labelled_subset(target, None, seed=0) is target
    with pytest.raises(ValueError, match="only 12"):
        labelled_subset(target, 13, seed=0)
    with pytest.raises(ValueError, match="per_class=0"):
        labelled_subset(target, 0, seed=0)


# --- pooled block features -------------------------------------------------------------------------

def test_pooled_features_are_the_channel_means_of_every_block_output(one_thread):
    model, data = small_model(), cifar_like(per_class=2)
    features = pooled_block_features(model, data.x_train, data.normalize, batch_size=7)
    assert list(features) == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert {k: v.shape[1] for k, v in features.items()} == pooled_dimensions(model)
    assert pooled_dimensions(model) == {"pool1": 8, "pool2": 16, "pool3": 32, "pool4": 64,
                                        "pool5": 64}
    with torch.no_grad():
        x = data.normalize(data.x_train)
        head_input = model.avgpool(model.features(x)).flatten(1)   # what the classifier reads
        block3 = model.features[:15](x)                             # conv1_1 ... pool3
    torch.testing.assert_close(features["pool5"], head_input)
    torch.testing.assert_close(features["pool3"], block3.mean(dim=(2, 3)))
    assert not any(module._forward_hooks for module in model.modules())
    with pytest.raises(ValueError, match="uint8"):
        pooled_block_features(model, x, data.normalize)


# --- linear probes ----------------------------------------------------------------------------------

def separable(n=200, dims=6, classes=3, noise=0.3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, dims, generator=generator)
    labels = torch.arange(n) % classes
    return centres[labels] + noise * torch.randn(n, dims, generator=generator), labels


def test_a_probe_learns_a_separable_problem_and_is_deterministic():
    x, y = separable()
    probe = train_probe(x, y, 3, l2=1e-3)
    assert probe.accuracy(x, y) == 1.0
    again = train_probe(x, y, 3, l2=1e-3)
    assert torch.equal(probe.weight, again.weight) and torch.equal(probe.bias, again.bias)


def test_the_probe_minimises_the_penalised_squared_error():
    x, y = separable(noise=3.0)
    probe = train_probe(x, y, 3, l2=0.1)
    standard = (x.double() - probe.mean) / probe.std
    targets = F.one_hot(y, 3).double()

    def objective(weight, bias):
        return ((standard @ weight.T + bias - targets) ** 2).sum(dim=1).mean() \
            + 0.1 * weight.pow(2).sum()

    best = objective(probe.weight, probe.bias)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):  # every nudge of the solution makes the objective worse
        nudge = 1e-3 * torch.randn(probe.weight.shape, generator=generator, dtype=torch.float64)
        assert objective(probe.weight + nudge, probe.bias) > best
        assert objective(probe.weight, probe.bias + nudge[:, 0]) > best
    # the bias is free: the scores' mean over the training set equals the class frequencies
    torch.testing.assert_close(probe.scores(x).mean(dim=0), targets.mean(dim=0))


def test_a_constant_feature_is_left_at_zero_and_does_not_divide_by_zero():
    x, y = separable()
    x = torch.cat([x, torch.full((len(x), 1), 7.0)], dim=1)
    mean, std = standardisation(x)
    assert std[-1] == 1 and mean[-1] == 7
    probe = train_probe(x, y, 3, l2=1e-2)
    assert torch.isfinite(probe.weight).all() and probe.weight[:, -1].abs().max() < 1e-12


def test_the_penalty_is_chosen_on_validation_and_every_score_is_kept():
    x, y = separable(n=300, noise=4.0, seed=2)
    probe = choose_probe(x[:30], y[:30], x[30:], y[30:], 3)
    assert set(probe.validation) == set(L2_GRID)
    best = max(probe.validation.values())
    assert probe.validation[probe.l2] == best
    # a tie goes to the strongest penalty
    assert probe.l2 == max(l2 for l2, score in probe.validation.items() if score == best)
    assert probe.accuracy(x[30:], y[30:]) == best


def test_fewer_examples_than_features_still_have_a_probe():
    x, y = separable(n=6, dims=50)
    probe = train_probe(x, y, 3, l2=1e-2)
    assert probe.accuracy(x, y) == 1.0


def test_probes_refuse_bad_input():
    x, y = separable()
    with pytest.raises(ValueError, match="NaN"):
        train_probe(torch.full_like(x, float("nan")), y, 3, l2=1.0)
    with pytest.raises(ValueError, match="outside 0..1"):
        train_probe(x, y, 2, l2=1.0)
    with pytest.raises(ValueError, match="l2="):
        train_probe(x, y, 3, l2=0.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        train_probe(x[:, 0], y, 3, l2=1.0)
    with pytest.raises(ValueError, match="empty"):
        choose_probe(x, y, x, y, 3, l2_grid=())


# --- a pretrained network with a new head -------------------------------------------------------------

def test_a_new_head_keeps_every_feature_weight_and_leaves_the_original_alone():
    pretrained = small_model(classes=6)
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    model = with_new_head(pretrained, num_classes=4, seed=1)
    assert model.spec.num_classes == 4 and model.classifier[0].out_features == 4
    for key, value in pretrained.state_dict().items():
        assert torch.equal(value, before[key])
        if key.startswith("features."):
            assert torch.equal(model.state_dict()[key], value)
    scratch = from_scratch(pretrained.spec, num_classes=4, seed=1)
    # everything equal but the starting features: the same new head
    assert torch.equal(scratch.classifier[0].weight, model.classifier[0].weight)
    assert not torch.equal(scratch.features[0].weight, model.features[0].weight)
    with pytest.raises(TypeError, match="ModelSpec"):
        with_new_head(torch.nn.Linear(2, 2), 4)


# --- perceptual distances ---------------------------------------------------------------------------

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


# --- Gram matrices and textures ---------------------------------------------------------------------

def test_a_gram_matrix_forgets_where_things_were():
    maps = torch.rand(2, 4, 5, 6)
    gram = gram_matrix(maps)
    assert gram.shape == (2, 4, 4) and torch.allclose(gram, gram.transpose(1, 2))
    shuffled = maps.flatten(2)[:, :, torch.randperm(30)].view(2, 4, 5, 6)
    torch.testing.assert_close(gram_matrix(shuffled), gram)   # positions permuted: same Gram
    torch.testing.assert_close(gram[0, 1, 2], (maps[0, 1] * maps[0, 2]).mean())
    with pytest.raises(ValueError, match="N, C, H, W"):
        gram_matrix(maps[0])


def test_average_pooling_replaces_max_pooling_in_a_copy():
    model = small_model()
    copied = with_average_pooling(model)
    kinds = [type(m).__name__ for m in copied.features]
    assert "MaxPool2d" not in kinds and kinds.count("AvgPool2d") == 5
    assert any(type(m).__name__ == "MaxPool2d" for m in model.features)
    assert first_relu_of_each_block(model) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def test_texture_synthesis_lowers_the_texture_loss_and_is_seeded(one_thread):
    model, exemplar = small_model(), cifar_like(per_class=1).x_train[3]
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    texture = synthesise_texture(model, exemplar, (0.4,) * 3, (0.25,) * 3, layers=layers,
                                 size=(24, 40), iterations=20, chunk=10)
    assert texture.image.shape == (3, 24, 40)
    assert 0 <= texture.image.min() and texture.image.max() <= 1
    assert len(texture.losses) == 3 and texture.losses[-1] < 0.1 * texture.losses[0]
    again = synthesise_texture(model, exemplar, (0.4,) * 3, (0.25,) * 3, layers=layers,
                               size=(24, 40), iterations=20, chunk=10)
    assert torch.equal(texture.image, again.image)
    with pytest.raises(ValueError, match="one exemplar"):
        synthesise_texture(model, exemplar[None], (0.4,) * 3, (0.25,) * 3)


def test_the_penultimate_features_are_what_the_last_layer_reads(one_thread):
    data = cifar_like(per_class=1)
    compact = small_model()
    pooled = pooled_block_features(compact, data.x_train, data.normalize)["pool5"]
    torch.testing.assert_close(penultimate_features(compact, data.x_train, data.normalize), pooled)
    torch.manual_seed(0)
    paper = vgg("A", width=0.0625, head="imagenet", num_classes=6).eval()  # fc6, fc7 of 256
    found = penultimate_features(paper, data.x_train, data.normalize, batch_size=3)
    with torch.no_grad():
        x = torch.flatten(paper.avgpool(paper.features(data.normalize(data.x_train))), 1)
        fc7 = paper.classifier[:5](x)   # fc6, ReLU, dropout (off), fc7, ReLU
    assert found.shape == (10, 256)
    torch.testing.assert_close(found, fc7)
    assert not any(module._forward_hooks for module in paper.modules())


def test_tables_of_several_networks_are_averaged_with_their_spread():
    tables = [{"pixels": {"blur": 0.2, "flip": 0.6}}, {"pixels": {"blur": 0.4, "flip": 0.6}}]
    summary = across_networks(tables)
    assert summary["pixels"]["flip"] == (pytest.approx(0.6), 0.0)
    mean, spread = summary["pixels"]["blur"]
    assert mean == pytest.approx(0.3) and spread == pytest.approx(2 ** 0.5 * 0.1)
    with pytest.raises(ValueError, match="at least one"):
        across_networks([])
