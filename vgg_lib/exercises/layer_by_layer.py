"""Checks for the exercises of chapter 4, "VGG layer by layer" (notebooks/04_layer_by_layer.ipynb)."""

from math import prod

import torch
from torch import nn

from .registry import Exercise, register
from ..measure.checkpointing import memory_rows, segment_starts
from ..measure.counting import (count_parameters, layer_macs, meta_model, training_activation_bytes,
                                training_state_bytes)
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


# --- memory you can buy back: gradient checkpointing and a slim head ----------------------------

def _boundary_megabytes(segments=8, batch_size=32):
    """MB the checkpoint keeps for the first boundary of VGG-16's features cut into ``segments``
    at 224x224: the input of the second segment, for ``batch_size`` float32 images."""
    model = meta_model("D")
    start = segment_starts(model.features, segments)[0]
    (layer,) = [l for l in _vgg16_trace() if l.module == f"features.{start}"]
    return batch_size * prod(layer.input_shape) * layer.element_size / 1e6


def _smallest_k_that_fits(budget_bytes=2e9, batch_size=32, candidates=(1, 2, 4, 8)):
    """The fewest segments among ``candidates`` whose peak (memory_rows) fits ``budget_bytes``
    for VGG-16 with batch norm at 224x224."""
    rows = memory_rows(meta_model("D", batch_norm=True), candidates, batch_size=batch_size)
    return min(row.segments for row in rows if row.peak_bytes <= budget_bytes)


def _slim_head_removed_parameters():
    return count_parameters(meta_model("D")) - count_parameters(meta_model("D", head="compact"))


register(
    Exercise(
        id="layer_by_layer/checkpoint-boundary-memory",
        expected=_boundary_megabytes,
        kind="number",
        rel_tol=0.01,
        hint="The checkpoint keeps a segment's input: the output of the layer just before the "
             "boundary. Its size per image is in the layer table (channels x height x width x 4 "
             "bytes); multiply by the 32 images of the batch. Answer in MB (10^6 bytes).",
    ),
    Exercise(
        id="layer_by_layer/smallest-k-for-budget",
        expected=_smallest_k_that_fits,
        kind="integer",
        hint="Run memory_rows(meta_model('D', batch_norm=True), (1, 2, 4, 8), batch_size=32) and "
             "compare each row's peak_bytes with 2 GB (2 x 10^9 bytes); fewer segments means less "
             "of the forward pass run again.",
    ),
    Exercise(
        id="layer_by_layer/slim-head-removed-parameters",
        expected=_slim_head_removed_parameters,
        kind="integer",
        hint="Add up fc6 (25,088 x 4,096 weights + 4,096 biases), fc7 and fc8, then take away "
             "the compact head's one layer: 512 inputs x 1,000 classes + 1,000 biases.",
    ),
)
