"""Checks for chapter 3, "Parameters and nonlinearity" (notebooks/03_small_filters.ipynb)."""
import torch

from .registry import Exercise, register
from ..measure.conv_stacks import conv_layer_costs, conv_stack
from ..measure.counting import count_parameters
from ..architecture.model import vgg


def _weights(kernel_size, depth, channels, in_channels=None):
    return count_parameters(conv_stack(kernel_size, depth, channels, bias=False, in_channels=in_channels))


def _parameters(kernel_size, depth, channels, in_channels=None):
    return count_parameters(conv_stack(kernel_size, depth, channels, bias=True, in_channels=in_channels))


def _conv_multiply_adds(config):
    with torch.device("meta"):  # shapes only: no memory, no weights to initialise
        model = vgg(config, init_weights=False)
    return sum(layer.multiply_adds for layer in conv_layer_costs(model, (3, 224, 224)))


register(
    Exercise(
        id="small_filters/three-3x3-weights-256",
        expected=lambda: _weights(3, 3, 256),
        kind="integer",
        hint="One 3x3 layer from C to C channels has 3*3*C*C weights; there are three of them. "
             "Leave the biases out.",
    ),
    Exercise(
        id="small_filters/weight-saving",
        expected=lambda: 1 - _weights(3, 3, 64) / _weights(7, 1, 64),
        kind="fraction",
        rel_tol=0.005,
        hint="Compare the weights of three 3x3 layers with those of one 7x7 layer, all C to C channels "
             "(the C^2 cancels), and give the share of the 7x7's weights saved. "
             "Comparing a single 3x3 layer with the 7x7 answers a different question.",
    ),
    Exercise(
        id="small_filters/first-layer-ratio",
        expected=lambda: _parameters(3, 3, 64, in_channels=3) / _parameters(7, 1, 64, in_channels=3),
        kind="number",
        rel_tol=0.005,
        hint="Only the first layer of each stack reads the 3 RGB channels; the second and third 3x3 "
             "layers read 64. Count weights and biases of every layer.",
    ),
    Exercise(
        id="small_filters/alexnet-saving",
        expected=lambda: 1 - _weights(3, 5, 256) / _weights(11, 1, 256),
        kind="fraction",
        rel_tol=0.005,
        hint="Each stride-1 3x3 layer widens the receptive field by 2 pixels: first find how many layers "
             "reach 11x11, then compare their weights with one 11x11 layer's, as the chapter did for 7x7.",
    ),
    Exercise(
        id="small_filters/c-saves-multiply-adds",
        expected=lambda: _conv_multiply_adds("D") - _conv_multiply_adds("C"),
        kind="integer",
        hint="Only the three layers where C has 1x1 and D has 3x3 differ. Each costs H*W*C*C*k*k "
             "multiply-adds at its own resolution (56, 28 and 14 pixels for a 224x224 image).",
    ),
)
