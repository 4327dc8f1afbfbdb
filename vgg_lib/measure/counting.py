"""Counting what a model costs: parameters, multiply-adds and memory, from a shape trace.

Definitions used throughout the book (all per forward pass of ``batch_size`` images):

* **multiply-adds (MACs)**: one multiplication of a weight by an input plus its accumulation.
  A convolution costs ``C_in/groups * k * k`` per output element, a fully connected layer
  ``in_features`` per output. Bias additions, ReLU, pooling, batch norm and LRN are *not*
  multiply-adds; ``bias_adds`` counts the bias additions separately. FLOPs = 2 x MACs.
* **activation sum**: the size of every distinct activation tensor of the pass, input included
  (an in-place ReLU or a view adds nothing). What "total activations" usually means.
* **inference peak**: the most activation memory alive at one time in an eval-mode pass, when
  each tensor is freed right after its last consumer, except that a tensor handed to a
  container (the model, a Sequential) lives until the container returns (its caller holds it).
  For VGG that is the image plus the largest "layer input + layer output" pair.
* **training activations**: the tensors autograd saves for the backward pass, each block of
  memory counted once (``saved_for_backward``); measured independently by
  ``vgg_lib.measure.saved_tensors.measure_saved_activations``.
* **training state**: weights + their gradients (+ one momentum buffer for SGD with momentum).
"""

from dataclasses import dataclass
from math import prod

import torch

from ..architecture.model import vgg
from ..tables import text_table
from .shape_trace import format_shape, trace_shapes


def count_parameters(model, trainable_only=False):
    """Number of learnable parameters (``sum(p.numel())``); buffers such as BN running stats excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --- compute --------------------------------------------------------------------------------

def layer_macs(layer):
    """Multiply-adds for one image through ``layer`` (a row of a shape trace)."""
    if layer.kind == "conv":
        return layer.output_elements * prod(layer.weight_shape[1:])
    if layer.kind == "fc":
        return layer.output_elements * layer.weight_shape[1]
    return 0


def layer_bias_adds(layer):
    """Bias additions for one image (one per output element of a conv or fc layer with a bias)."""
    return layer.output_elements if layer.kind in ("conv", "fc") and layer.has_bias else 0


# --- memory ---------------------------------------------------------------------------------

def _tensor_sizes(trace):
    """Per-image bytes of every distinct activation tensor, by id (the input included)."""
    sizes = {trace.layers[0].input_id: trace.input_bytes} if trace.layers else {}
    for layer in trace:
        sizes.setdefault(layer.output_id, layer.output_bytes)
    return sizes


def activation_sum_bytes(trace, batch_size=1):
    """Bytes of all distinct activation tensors of an eval-mode pass (input and output included)."""
    return sum(_tensor_sizes(trace).values()) * batch_size


def live_bytes_per_layer(trace, batch_size=1):
    """Activation bytes alive while each layer runs, when every tensor is freed after its last use.

    A tensor passed to a container (the model, a Sequential) lives until that container returns,
    because the caller still holds it: the image during the whole pass, and in VGG the flattened
    features while the classifier runs. The final output lives to the end."""
    sizes = _tensor_sizes(trace)
    end = len(trace)
    born, last_use = {trace.layers[0].input_id: -1}, {}
    for i, layer in enumerate(trace):
        born.setdefault(layer.output_id, i)
        last_use[layer.input_id] = max(last_use.get(layer.input_id, i), i)
        last_use[layer.output_id] = max(last_use.get(layer.output_id, i), i)
    for key, last in trace.holds:
        last_use[key] = max(last_use.get(key, last), last)
    last_use[trace.layers[-1].output_id] = end
    return [sum(size for key, size in sizes.items() if born[key] <= i <= last_use[key]) * batch_size
            for i in range(len(trace))]


def inference_peak_bytes(trace, batch_size=1):
    """Most activation memory alive at once in an eval-mode forward pass (see module docstring)."""
    return max(live_bytes_per_layer(trace, batch_size))


def _saved_items(layer, inp, out):
    """What one layer saves for backward: (tensor key, per-image bytes, scales with batch?)."""
    size = layer.element_size
    if layer.kind in ("conv", "fc"):
        return [(inp, prod(layer.input_shape) * size, True)]
    if layer.kind == "relu":
        return [(out, layer.output_bytes, True)]
    if layer.kind == "bn":  # input, plus the batch mean and inverse std per channel
        return [(inp, prod(layer.input_shape) * size, True),
                ((layer.name, "mean"), layer.output_shape[0] * size, False),
                ((layer.name, "invstd"), layer.output_shape[0] * size, False)]
    if layer.kind == "maxpool":  # input, plus the argmax of every window as int64
        return [(inp, prod(layer.input_shape) * size, True),
                ((layer.name, "indices"), layer.output_elements * 8, True)]
    if layer.kind == "avgpool":  # a global (1x1) adaptive pool is a mean: nothing to keep
        if layer.output_shape[1:] == (1, 1):
            return []
        return [(inp, prod(layer.input_shape) * size, True)]
    if layer.kind == "dropout":  # the scaled keep-mask (a float tensor on CPU; bool on CUDA)
        return [((layer.name, "mask"), layer.output_bytes, True)]
    if layer.kind == "lrn":  # F.local_response_norm: padded squares, then (k + a*avg)^b and its base
        channels, *spatial = layer.input_shape
        padded = (channels + layer.options["size"] - 1) * prod(spatial) * size
        return [(inp, prod(layer.input_shape) * size, True),
                ((layer.name, "squares"), padded, True),
                ((layer.name, "base"), layer.output_bytes, True),
                ((layer.name, "denominator"), layer.output_bytes, True)]
    if layer.kind == "flatten":
        return []
    raise ValueError(
        f"No saved-tensor rule for layer {layer.name!r} of kind {layer.kind!r}. Measure it instead "
        f"with vgg_lib.measure.saved_tensors.measure_saved_activations(model, image_size)."
    )


def saved_for_backward(trace, batch_size=1):
    """Bytes each layer adds to what a training forward pass keeps for backward: {module path: bytes}.

    Worked out from the trace by the rules in ``_saved_items`` (the rules of PyTorch's backward
    formulas). A block of memory saved by two layers counts once, for the first. In training,
    dropout writes a new tensor (in eval mode it passes its input through)."""
    renamed = {}
    seen = set()
    saved = {}
    for layer in trace:
        inp = renamed.get(layer.input_id, layer.input_id)
        out = renamed.get(layer.output_id, layer.output_id)
        if layer.kind == "dropout":
            out = ("dropout", layer.name)
            renamed[layer.output_id] = out
        total = 0
        for key, nbytes, per_image in _saved_items(layer, inp, out):
            if key not in seen:
                seen.add(key)
                total += nbytes * (batch_size if per_image else 1)
        if layer.module:
            saved[layer.module] = saved.get(layer.module, 0) + total
    return saved


def training_activation_bytes(trace, batch_size=1):
    """Bytes of activations a training forward pass keeps for backward (see ``saved_for_backward``)."""
    return sum(saved_for_backward(trace, batch_size).values())


def training_state_bytes(model, momentum=True):
    """Weights + gradients (+ SGD momentum buffers): memory that does not depend on the batch."""
    copies = 3 if momentum else 2
    return copies * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


# --- everything at once ---------------------------------------------------------------------

@dataclass(frozen=True)
class Costs:
    """What one model costs at one input size, per image (batch size 1)."""

    parameters: int
    conv_parameters: int
    fc_parameters: int
    bn_parameters: int
    macs: int
    conv_macs: int
    fc_macs: int
    bias_adds: int
    activation_sum_bytes: int
    inference_peak_bytes: int
    training_activation_bytes: int
    training_state_bytes: int

    @property
    def fc_parameter_share(self):
        return self.fc_parameters / self.parameters

    @property
    def fc_mac_share(self):
        return self.fc_macs / self.macs


def costs(model, image_size=224):
    """Parameters, multiply-adds and memory of ``model`` for one image of ``image_size``."""
    trace = trace_shapes(model, image_size)
    return costs_from_trace(model, trace)


def costs_from_trace(model, trace):
    def total(kind, fn):
        return sum(fn(layer) for layer in trace.of_kind(kind))

    return Costs(
        parameters=count_parameters(model),
        conv_parameters=total("conv", lambda l: l.parameters),
        fc_parameters=total("fc", lambda l: l.parameters),
        bn_parameters=total("bn", lambda l: l.parameters),
        macs=sum(layer_macs(l) for l in trace),
        conv_macs=total("conv", layer_macs),
        fc_macs=total("fc", layer_macs),
        bias_adds=sum(layer_bias_adds(l) for l in trace),
        activation_sum_bytes=activation_sum_bytes(trace),
        inference_peak_bytes=inference_peak_bytes(trace),
        training_activation_bytes=training_activation_bytes(trace),
        training_state_bytes=training_state_bytes(model),
    )


def meta_model(config, **options):
    """A VGG built on the meta device: real shapes and parameter counts, no memory, no init time.
    ``config``: a configuration name (with ``vgg()``'s keyword arguments) or a ``ModelSpec``."""
    with torch.device("meta"):
        return vgg(config, init_weights=False, **options)


def config_costs(config, batch_norm=False, image_size=224, head="imagenet", num_classes=1000, **options):
    """``costs`` of one of the paper's configurations, built on the meta device (instant).
    ``config``: a configuration name with the other settings as keywords, or a ``ModelSpec``
    (which holds them all: ``config_costs(spec, image_size=32)``)."""
    model = meta_model(config, batch_norm=batch_norm, head=head, num_classes=num_classes, **options)
    return costs(model, image_size)


# --- tables ---------------------------------------------------------------------------------

def megabytes(nbytes):
    """Bytes -> MB (10^6 bytes, as torchinfo prints them)."""
    return nbytes / 1e6


def layer_table(trace, kinds=None, batch_size=1):
    """Per-layer rows: name, output shape, parameters, multiply-adds, output size, saved for training."""
    saved = saved_for_backward(trace, batch_size)
    rows = []
    for layer in trace:
        if kinds and layer.kind not in kinds:
            continue
        rows.append([
            layer.name,
            format_shape(layer.output_shape),
            f"{layer.parameters:,}",
            f"{layer_macs(layer):,}",
            f"{megabytes(layer.output_bytes * batch_size):.2f}" + ("*" if layer.in_place else ""),
            f"{megabytes(saved.get(layer.module, 0)):.2f}",
        ])
    header = ["layer", "output", "parameters", "multiply-adds", "output MB", "saved MB"]
    return text_table(header, rows)
