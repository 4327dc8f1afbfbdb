"""Checks for the exercises of chapter 4, "VGG layer by layer" (notebooks/04_layer_by_layer.ipynb)."""

import torch
from torch import nn

from .registry import Exercise, register
from ..measure.counting import layer_macs, meta_model, training_activation_bytes, training_state_bytes
from ..architecture.model import make_layers
from ..measure.shape_trace import trace_shapes


def _vgg16_trace():
    return trace_shapes(meta_model("D"), 224)


def fully_convolutional_vgg16():
    """VGG-16 with fc6/fc7/fc8 turned into 7x7, 1x1 and 1x1 convolutions (the paper's dense test)."""
    with torch.device("meta"):
        return nn.Sequential(
            make_layers("D"),
            nn.Conv2d(512, 4096, kernel_size=7), nn.ReLU(inplace=True),
            nn.Conv2d(4096, 4096, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(4096, 1000, kernel_size=1),
        )


def _cifar_training_megabytes(batch_size=128):
    model = meta_model("D", batch_norm=True, head="compact", num_classes=10)
    trace = trace_shapes(model, 32)
    return (training_state_bytes(model) + training_activation_bytes(trace, batch_size)) / 1e6


def _fc_mac_share():
    trace = _vgg16_trace()
    return sum(layer_macs(l) for l in trace.of_kind("fc")) / sum(layer_macs(l) for l in trace)


register(
    Exercise(
        id="layer_by_layer/conv3-2-parameters",
        expected=lambda: _vgg16_trace()["conv3_2"].parameters,
        kind="integer",
        hint="conv3_2 maps 256 channels to 256 channels with 3x3 kernels: k*k*C_in*C_out weights, "
             "plus one bias per output channel.",
    ),
    Exercise(
        id="layer_by_layer/fc-mac-share",
        expected=_fc_mac_share,
        kind="fraction",
        rel_tol=0.01,
        hint="A fully connected layer does in_features multiply-adds per output, once per image; "
             "add fc6, fc7 and fc8 and divide by the whole network's multiply-adds at 224x224.",
    ),
    Exercise(
        id="layer_by_layer/cifar-batch-memory",
        expected=_cifar_training_megabytes,
        kind="number",
        rel_tol=0.02,
        hint="Two parts: weights, gradients and momentum (3 x parameters x 4 bytes, independent of the "
             "batch), plus the saved activations per image times 128. Answer in MB (10^6 bytes).",
    ),
    Exercise(
        id="layer_by_layer/dense-384-macs",
        expected=lambda: sum(layer_macs(l) for l in trace_shapes(fully_convolutional_vgg16(), 384)),
        kind="number",
        rel_tol=0.01,
        hint="At 384x384 the last pooling gives 12x12x512; a 7x7 convolution then produces a 6x6 map, "
             "and every layer after it works at all 36 positions.",
    ),
)
