"""A pretrained network with a new head (vgg_lib/transfer/fine_tuning.py)."""

import pytest
import torch

from vgg_lib.transfer.fine_tuning import from_scratch, with_new_head

from transfer_support import small_model


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
