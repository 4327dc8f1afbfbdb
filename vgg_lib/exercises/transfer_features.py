"""Exercises of chapter 11, "VGG's features beyond the task they were trained on"
(notebooks/11_transfer_features.ipynb). Every expected value is computed by vgg_lib."""

import torch

from .registry import Exercise, register
from ..architecture.model import vgg
from ..architecture.naming import feature_names
from ..experiments.transfer_features import NETWORK
from ..inspection.feature_maps import block_ends
from ..measure.receptive_field import receptive_fields
from ..transfer.features import pooled_dimensions
from ..transfer.perceptual import pixel_distance, shifted

CALTECH_101_CLASSES = 102   # 101 object categories and a background class (the paper, App. B)


def _chapter_network():
    with torch.device("meta"):
        return NETWORK.build(init_weights=False)


def pooled_length(block=4):
    """Length of the pooled feature vector of ``block`` of the chapter's network."""
    return list(pooled_dimensions(_chapter_network()).values())[block - 1]


def all_blocks_pooled_length():
    """Length of the five blocks' pooled feature vectors put end to end."""
    return sum(pooled_dimensions(_chapter_network()).values())


def flat_length(block=4, image_size=32):
    """How many numbers the feature map of ``block`` holds for one ``image_size`` image."""
    model = _chapter_network()
    name = list(block_ends(model))[block - 1]
    size = receptive_fields(model, input_size=image_size)[name.replace("relu", "conv")].size
    return size * size * pooled_length(block)


def gram_entries(layer="conv3_1", config="D"):
    """Entries of the Gram matrix of ``layer``'s feature map in a full-width VGG."""
    with torch.device("meta"):
        model = vgg(config, init_weights=False)
    index = {name: i for i, name in feature_names(model).items()}[layer]
    channels = model.features[index].out_channels
    return channels * channels


def stripes_shift_distance(size=32):
    """RMS pixel distance between one-pixel black-and-white stripes and the chapter's one-pixel
    shift of them (``shifted``: the edge column is repeated)."""
    stripes = torch.zeros(1, 3, size, size)
    stripes[..., 1::2] = 1.0
    return pixel_distance(stripes, shifted(stripes, 1)).item()


def caltech_svm_weights(config="D"):
    """Weights (with biases) of one-vs-rest linear SVMs on the paper's penultimate features
    (fc7 of ``config``) for Caltech-101's classes."""
    with torch.device("meta"):
        model = vgg(config, init_weights=False)
    features = model.classifier[3].out_features   # fc7: the last layer before the classifier
    return (features + 1) * CALTECH_101_CLASSES


register(
    Exercise(
        id="transfer_features/all-blocks-pooled-length",
        expected=all_blocks_pooled_length,
        kind="integer",
        hint="Global average pooling leaves one number per channel. At the paper's width the "
             "blocks of configuration A end with 64, 128, 256, 512 and 512 channels; the "
             "full profile's network has a quarter of each. Add the five.",
    ),
    Exercise(
        id="transfer_features/flat-block4-length",
        expected=flat_length,
        kind="integer",
        hint="Three 2x2 poolings come before block 4: 32 -> 16 -> 8 -> 4. Multiply height, width "
             "and channels.",
    ),
    Exercise(
        id="transfer_features/gram-conv3-1-entries",
        expected=gram_entries,
        kind="integer",
        hint="A Gram matrix has one row and one column per channel; conv3_1 of VGG-16 has 256.",
    ),
    Exercise(
        id="transfer_features/stripes-shift-distance",
        expected=stripes_shift_distance,
        kind="number",
        rel_tol=0.002,
        hint="After the shift, which columns still hold what they held? shifted() repeats the "
             "edge column; every other column swaps black and white (a difference of 1).",
    ),
    Exercise(
        id="transfer_features/caltech101-svm-weights",
        expected=caltech_svm_weights,
        kind="integer",
        hint="One linear classifier per class, each with one weight per feature (fc7 has 4,096 "
             "outputs) and a bias; Caltech-101 has 102 classes counting the background.",
    ),
)
