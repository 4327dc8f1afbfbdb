"""Checks for the exercises of chapter 2, "Receptive fields: why stacks of 3x3 see far"."""
from dataclasses import replace

from .registry import Exercise, register
from ..measure.receptive_field import conv_specs, layers_of, receptive_field


def unpadded(config):
    """The layers of ``config`` with every convolution's padding removed."""
    return [replace(layer, padding=0) for layer in layers_of(config)]


register(
    Exercise(
        id="receptive_fields/three-3x3",
        expected=lambda: receptive_field(conv_specs(3, 3), input_size=32),
        kind="integer",
        hint="Start from one pixel. A 3x3 convolution with stride 1 widens what a unit sees by "
             "kernel - 1 = 2 pixels; do that three times.",
    ),
    Exercise(
        id="receptive_fields/vgg16-conv4_3",
        expected=lambda: receptive_field("D", "conv4_3"),
        kind="integer",
        hint="Start from pool3's receptive field and jump (the table of VGG-16); each 3x3 "
             "convolution of block 4 adds (3 - 1) x jump pixels.",
    ),
    Exercise(
        id="receptive_fields/unpadded-pool5",
        expected=lambda: receptive_field(unpadded("D"), "pool5"),
        kind="integer",
        hint="Padding adds zeros around a map; it moves where the first unit sits and changes the "
             "output size, but does it change the recurrence for the receptive field?",
        # The exercise compares with pool5's receptive field with padding, in the chapter's tables:
        # the same number, which is its point.
        read_off=True,
    ),
    Exercise(
        id="receptive_fields/dilated-1-2-4",
        expected=lambda: receptive_field(conv_specs(3, 3, dilations=[1, 2, 4]), input_size=64),
        kind="integer",
        hint="A 3x3 kernel with dilation d spans d*(3-1)+1 pixels, so it adds 2d to the receptive "
             "field when the jump is 1.",
    ),
)
