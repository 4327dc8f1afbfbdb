"""CIFAR10Data's training batches: the random numbers of the whole global batch are drawn as one
process draws them, so the shares of N data-parallel processes together are one process's batch,
for every augmentation of the recipe (pad-and-crop, scale jittering, colour shift)."""

import matplotlib
import pytest
import torch

from support import colour_data, tiny_model
from vgg_lib import TrainConfig, fit, plot_augmented_copies, random_crop_flip
from vgg_lib.training.augment import PCA_EIGENVALUES, PCA_EIGENVECTORS
from vgg_lib.training.data import training_subset

matplotlib.use("Agg")


def shares(world_size, rank):
    def share(*tensors):
        size = len(tensors[0]) // world_size
        return tuple(t[rank * size:(rank + 1) * size] for t in tensors)
    return share


@pytest.mark.parametrize("changes", [dict(), dict(scale_jitter=(32, 40), crop_padding=0),
                                     dict(colour_shift=0.1), dict(augment=False),
                                     dict(scale_jitter=(28, 36), crop=24, crop_padding=0, colour_shift=0.2)])
def test_the_shares_of_two_processes_are_one_process_s_batch(changes):
    data, recipe = colour_data(), TrainConfig(batch_size=32, **changes)
    index = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(1))[:32]
    one = data.training_batch(index, recipe, torch.Generator().manual_seed(7))
    parts = [data.training_batch(index, recipe, torch.Generator().manual_seed(7), share=shares(2, r))
             for r in (0, 1)]
    assert torch.equal(torch.cat([x for x, _ in parts]), one[0])
    assert torch.equal(torch.cat([y for _, y in parts]), one[1])
    generators = [torch.Generator().manual_seed(7) for _ in range(2)]
    for rank, generator in enumerate(generators):  # every rank's generator stays in step
        data.training_batch(index, recipe, generator, share=shares(2, rank))
    reference = torch.Generator().manual_seed(7)
    data.training_batch(index, recipe, reference)
    assert all(torch.equal(g.get_state(), reference.get_state()) for g in generators)


def test_the_colour_shift_moves_every_pixel_of_an_image_along_the_principal_components():
    data = colour_data()
    index = torch.arange(8)
    plain = TrainConfig(augment=False)
    generator = torch.Generator().manual_seed(3)
    shifted, _ = data.training_batch(index, plain.replace(colour_shift=0.1), generator)
    unshifted, _ = data.training_batch(index, plain, torch.Generator())
    alpha = torch.randn(8, 3, generator=torch.Generator().manual_seed(3)) * 0.1
    shift = (alpha * torch.tensor(PCA_EIGENVALUES)) @ torch.tensor(PCA_EIGENVECTORS).T
    expected = shift / torch.tensor(data.std)
    difference = shifted - unshifted
    torch.testing.assert_close(difference, expected.view(8, 3, 1, 1).expand_as(difference))


def test_a_fit_with_scale_jitter_and_colour_shift_learns():
    history = fit(tiny_model(), colour_data(), epochs=3, lr=0.1, batch_size=16, progress=False,
                  precision="fp32", scale_jitter=(32, 40), crop_padding=0, colour_shift=0.1)
    assert history.final_test_accuracy > 0.3  # chance is 1/9


def test_training_subsets_are_nested_and_keep_the_normalisation():
    data = colour_data()
    small, large = training_subset(data, 30), training_subset(data, 60)
    assert len(small.x_train) == 30 and small.mean == data.mean and small.x_val is data.x_val
    rows = {bytes(x.numpy()) for x in large.x_train}
    assert all(bytes(x.numpy()) in rows for x in small.x_train)
    with pytest.raises(ValueError, match="has 96"):
        training_subset(data, 200)


def test_the_augmented_copies_figure_shows_the_original_first():
    image = colour_data().x_train[0]
    copies = random_crop_flip(image.expand(3, -1, -1, -1), generator=torch.Generator().manual_seed(0))
    figure = plot_augmented_copies(image, copies)
    assert [ax.get_title() for ax in figure.axes] == ["original", "copy 1", "copy 2", "copy 3"]
