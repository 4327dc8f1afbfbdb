"""Gram matrices and texture synthesis (vgg_lib/transfer/texture.py)."""

import pytest
import torch

from vgg_lib.transfer.texture import (first_relu_of_each_block, gram_matrix, synthesise_texture,
                                      with_average_pooling)

from transfer_support import cifar_like, small_model


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
