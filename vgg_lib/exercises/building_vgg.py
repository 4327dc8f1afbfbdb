"""Checks for the exercises of chapter 1, "Building VGG from its table" (notebooks/01_building_vgg.ipynb)."""

from .registry import Exercise, register
from ..measure.counting import count_parameters
from ..architecture.model import vgg

register(
    Exercise(
        id="building_vgg/vgg16-parameters",
        expected=lambda: count_parameters(vgg("D")),
        kind="integer",
        hint="Add weights and biases of all 13 convolutions and the 3 fully connected layers; "
             "a k x k convolution from C_in to C_out channels has k*k*C_in*C_out weights and C_out biases.",
    ),
    Exercise(
        id="building_vgg/bn-extra-parameters",
        expected=lambda: count_parameters(vgg("D", batch_norm=True)) - count_parameters(vgg("D")),
        kind="integer",
        hint="Each BatchNorm2d has a learnable scale and shift per channel (running statistics are buffers, "
             "not parameters). Sum the output channels of the 13 convolutions and double it.",
    ),
    Exercise(
        id="building_vgg/classifier-share",
        expected=lambda: count_parameters(vgg("D").classifier) / count_parameters(vgg("D")),
        kind="fraction",
        rel_tol=0.005,
        hint="Count the three Linear layers (25088->4096, 4096->4096, 4096->1000) with their biases "
             "and divide by the whole model's parameters.",
    ),
)
