"""Checks for the exercises of the chapter "Testing like the paper"."""

import torch

from .registry import Exercise, register
from ..architecture.dense import score_map_size, to_fully_convolutional
from ..architecture.model import vgg
from ..measure.counting import costs
from ..measure.receptive_field import receptive_field
from ..experiments.test_protocol import CHAPTER_SPEC


def _vgg16_macs(size):
    with torch.device("meta"):
        converted = to_fully_convolutional(vgg("D", init_weights=False))
    return costs(converted, size).macs


def crops_over_dense_one_scale(scale=384, crop=224, grid=5):
    """Multiply-adds of the paper's 5x5 grid of 224 crops and their mirrors (50 views) at one
    scale Q, over dense evaluation of the Q x Q image and its mirror."""
    return grid * grid * 2 * _vgg16_macs(crop) / (2 * _vgg16_macs(scale))


def paper_multi_crop_over_dense(scales=(256, 384, 512), crop=224):
    """Table 5's cost: 150 crops (50 per scale) over dense evaluation at the three scales, both
    with mirror images, for VGG-16 on square images."""
    return 150 * _vgg16_macs(crop) / sum(2 * _vgg16_macs(q) for q in scales)


def chapter_score_receptive_field():
    with torch.device("meta"):
        model = CHAPTER_SPEC.build(init_weights=False)
    return receptive_field(model, layer="classifier", input_size=32)


register(
    Exercise(
        id="test_protocol/score-map-side",
        expected=lambda: score_map_size(384, pool_count=5, map_size=7),
        kind="integer",
        hint="Five 2x2 poolings divide 384 by 32; the 7x7 convolution that replaced the first FC "
             "layer then slides over that map with stride 1: side - 7 + 1 positions.",
    ),
    Exercise(
        id="test_protocol/crops-vs-dense",
        expected=crops_over_dense_one_scale,
        kind="number",
        rel_tol=0.02,
        hint="Count the multiply-adds of VGG-16 on one 224x224 crop and on the whole 384x384 "
             "image (the converted network: counting.costs on to_fully_convolutional of a meta "
             "VGG-16). The crops cost 50 times the first; dense costs twice the second.",
    ),
    Exercise(
        id="test_protocol/score-receptive-field",
        expected=chapter_score_receptive_field,
        kind="integer",
        hint="Follow the receptive field through configuration A with its last max-pool dropped: "
             "each 3x3 convolution adds 2 x jump, each pooling adds jump and doubles it; the "
             "2x2 convolution that replaced the first FC layer adds (2 - 1) x 16.",
        same_number_elsewhere=("150 crops", "150 over three scales"),  # the paper's multi-crop count
    ),
    Exercise(
        id="test_protocol/paper-multi-crop-cost",
        expected=paper_multi_crop_over_dense,
        kind="number",
        rel_tol=0.02,
        hint="150 crops of 224x224 against two passes (image and mirror) over each of the 256, "
             "384 and 512 images; the multiply-adds of a convolutional network grow with the "
             "number of output positions of each layer.",
    ),
)
