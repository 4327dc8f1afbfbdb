"""Checks for chapter 10, "Where depth stopped paying" (notebooks/10_residual_networks.ipynb).
Every expected value is computed by vgg_lib's own builders and counters."""

import torch

from .registry import Exercise, register
from ..architecture.model import vgg
from ..architecture.residual import residual_units
from ..measure.counting import count_parameters
from ..measure.receptive_field import LayerGeometry, receptive_fields
from ..measure.torchvision_costs import torchvision_costs


def _meta(config, **options):
    with torch.device("meta"):
        return vgg(config, init_weights=False, **options)


def _projection_parameters(config="D"):
    """Parameters a residual D (full width, batch norm, the paper's head) has beyond plain D."""
    return (count_parameters(_meta(config, batch_norm=True, shortcuts="identity"))
            - count_parameters(_meta(config, batch_norm=True)))


def _shortcut_path_receptive_field(config="D", image_size=224):
    """Receptive field at pool5 of the path through residual ``config`` that takes every
    shortcut: the plain convolutions outside the units, the 1x1 projections, the poolings."""
    features = _meta(config, shortcuts="identity").features
    skipped = {index for unit in residual_units(features) for index in range(unit.start,
                                                                             unit.add_before)}
    layers = []
    for index, module in enumerate(features):
        if index in skipped:
            continue
        if isinstance(module, torch.nn.Conv2d):
            layers.append(LayerGeometry(f"conv{index}", "conv", module.kernel_size[0], 1,
                                module.padding[0]))
        elif isinstance(module, torch.nn.MaxPool2d):
            layers.append(LayerGeometry(f"pool{index}", "pool", 2, 2))
    return receptive_fields(layers, image_size)[-1].receptive_field


def _paths(config="E-8"):
    """Paths from the image to the head through residual ``config``: each unit is passed either
    through its pair of convolutions or along its shortcut."""
    return 2 ** len(residual_units(_meta(config).features))


def _macs_share(numerator="resnet34", denominator="vgg19"):
    return torchvision_costs(numerator).macs / torchvision_costs(denominator).macs


register(
    Exercise(
        id="residual_networks/projection-parameters",
        expected=_projection_parameters,
        kind="integer",
        hint="In D the width changes at the first pair of blocks 2, 3 and 4 (64 -> 128, 128 -> "
             "256, 256 -> 512). Each projection is a 1x1 convolution without bias (batch norm "
             "follows it) plus that batch norm's scale and shift: C_in * C_out + 2 * C_out.",
    ),
    Exercise(
        id="residual_networks/shortcut-path-receptive-field",
        expected=_shortcut_path_receptive_field,
        kind="integer",
        hint="Along that path only the convolutions outside every unit remain (the stem conv1_1, "
             "conv1_2, and the third convolution of blocks 3, 4 and 5), with the five 2x2 "
             "poolings and the 1x1 projections (which add nothing). Use r_out = r_in + (k - 1) * "
             "j_in and j_out = j_in * s from the image (r = 1, j = 1).",
    ),
    Exercise(
        id="residual_networks/paths-through-e-8",
        expected=_paths,
        kind="integer",
        hint="Count the residual units of E-8 (one pair in block 2, four pairs in each of "
             "blocks 3, 4 and 5): each doubles the number of paths.",
    ),
    Exercise(
        id="residual_networks/resnet34-share-of-vgg19",
        expected=_macs_share,
        kind="fraction",
        rel_tol=0.005,
        hint="torchvision_costs('resnet34').macs / torchvision_costs('vgg19').macs, both at "
             "224x224: multiply-adds, which is what He et al. call FLOPs there.",
    ),
)
