"""The class split (vgg_lib/transfer/split.py): six animals and four vehicles, renumbered
labels, nested label budgets."""

import pytest
import torch

from vgg_lib.training.cifar10 import CLASSES
from vgg_lib.transfer.split import (SOURCE_CLASSES, TARGET_CLASSES, class_split, labelled_subset,
                                    shared_classes)

from transfer_support import cifar_like


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
