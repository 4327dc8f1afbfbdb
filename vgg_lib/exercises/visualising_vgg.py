"""Exercises of the chapter "Seeing what VGG learned" (notebooks/07_visualising_vgg.ipynb)."""
import torch

from .registry import Exercise, register
from ..inspection.feature_maps import block_ends
from ..architecture.model import vgg
from ..measure.receptive_field import receptive_fields
from ..inspection.filters import filter_energy_split


def random_filter_flat_share():
    # Averaging the split over an orthonormal basis of all 3x3x3 filters gives the share an
    # i.i.d. random filter puts in each part on average: the dimension of that part over 27.
    basis = torch.eye(27, dtype=torch.float64).view(27, 3, 3, 3)
    return filter_energy_split(basis).mean(dim=0)[0].item()


def first_block_covering(config="D", image=32):
    """Number (1-5) of the first block whose output units can see a whole ``image`` x ``image`` input."""
    with torch.device("meta"):
        model = vgg(config)
    table = receptive_fields(model, input_size=224)
    for block, name in enumerate(block_ends(model), start=1):
        if table[name.replace("relu", "conv")].receptive_field >= image:
            return block
    raise ValueError(f"No block of configuration {config} sees {image} pixels.")


def block_end_values(config="D", block=4, input_size=224):
    """How many numbers the feature map at the end of ``block`` holds for one image."""
    with torch.device("meta"):
        model = vgg(config)
    name = list(block_ends(model))[block - 1]
    row = receptive_fields(model, input_size=input_size)[name.replace("relu", "conv")]
    convolutions = [m for m in model.features[:block_ends(model)[name]] if isinstance(m, torch.nn.Conv2d)]
    channels = convolutions[-1].out_channels
    return row.size * row.size * channels


register(
    Exercise(
        id="visualising_vgg/random-flat-share",
        expected=random_filter_flat_share,
        kind="fraction",
        rel_tol=0.01,
        hint="The flat part of a 3x3x3 filter is fixed by 3 numbers (one mean per colour channel) "
             "out of 27; an i.i.d. random filter spreads its energy evenly over all 27 directions.",
    ),
    Exercise(
        id="visualising_vgg/first-block-covering-cifar",
        expected=first_block_covering,
        kind="integer",
        hint="Use receptive_fields('D') and read the receptive field of the last convolution of each "
             "block (conv1_2, conv2_2, conv3_3, ...): which block is the first to reach 32 pixels?",
    ),
    Exercise(
        id="visualising_vgg/relu4-3-values",
        expected=block_end_values,
        kind="integer",
        hint="relu4_3 comes after three 2x2 poolings (224 -> 112 -> 56 -> 28) and has 512 channels; "
             "multiply height, width and channels.",
    ),
)
