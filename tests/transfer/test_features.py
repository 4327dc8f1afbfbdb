"""Pooled block features and the penultimate layer (vgg_lib/transfer/features.py)."""

import pytest
import torch

from vgg_lib import vgg
from vgg_lib.transfer.features import penultimate_features, pooled_block_features, pooled_dimensions

from transfer_support import cifar_like, small_model


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
