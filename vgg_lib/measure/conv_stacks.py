"""Stacks of convolutions (one 7x7, three 3x3, two 5x5, ...) and what they cost, by formula
(``stack_cost``) and measured on any model (``conv_layer_costs``).

Everything here follows Section 2.3 of the paper: ``depth`` convolutions of size
``kernel_size``, stride 1, "same" padding, each followed by a ReLU, from ``channels``
to ``channels`` (or from ``in_channels`` for the first layer).

Multiply-adds are counted the way torchinfo and ``torch.utils.flop_counter`` count them:
``k*k*C_in`` per output value, padded zeros included, biases not included (a bias is one
addition per output value; ``StackCost.biases * height * width`` of them).
"""

import numbers
from dataclasses import dataclass

import torch
from torch import nn


def _check_size(name, value, symbolic_ok=False):
    if symbolic_ok and hasattr(value, "free_symbols"):  # a sympy expression such as Symbol("C")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "a positive integer (or a sympy symbol)" if symbolic_ok else "a positive integer"
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")
    return int(value)


def _check_kernel(kernel_size):
    kernel_size = _check_size("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size={kernel_size} is even: 'same' padding (kernel_size // 2 on every side) "
            f"only keeps the image size for odd kernels. Use 1, 3, 5, 7, ..."
        )
    return kernel_size


def conv_sequence(kernel_sizes, channels, bias=True, in_channels=None):
    """One convolution per entry of ``kernel_sizes`` (stride 1, same padding), each followed by a
    ReLU, as one ``nn.Sequential``; e.g. ``[3, 3, 1]`` is a block of configuration C. All layers
    output ``channels`` channels; the first reads ``in_channels`` (default: ``channels``)."""
    kernel_sizes = [_check_kernel(k) for k in kernel_sizes]
    if not kernel_sizes:
        raise ValueError("kernel_sizes is empty: give at least one kernel size, e.g. [3, 3, 3].")
    channels = _check_size("channels", channels)
    in_channels = channels if in_channels is None else _check_size("in_channels", in_channels)
    layers = []
    for kernel_size in kernel_sizes:
        layers.append(nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2, bias=bias))
        layers.append(nn.ReLU(inplace=True))
        in_channels = channels
    return nn.Sequential(*layers)


def conv_stack(kernel_size, depth, channels, bias=True, in_channels=None):
    """``depth`` equal convolutions of ``kernel_size`` x ``kernel_size`` (stride 1, same padding),
    each followed by a ReLU: ``conv_stack(3, 3, C)`` is the paper's three 3x3 layers."""
    kernel_size = _check_kernel(kernel_size)
    depth = _check_size("depth", depth)
    return conv_sequence([kernel_size] * depth, channels, bias=bias, in_channels=in_channels)


@dataclass(frozen=True)
class StackCost:
    """What one stack costs. ``relus`` counts ReLU layers (the nonlinearities a signal passes);
    ``relu_evaluations`` counts single max(0, x) operations over the whole output."""

    kernel_size: int
    depth: int
    weights: int
    biases: int
    multiply_adds_per_pixel: int
    multiply_adds: int
    relus: int
    relu_evaluations: int
    receptive_field: int

    @property
    def parameters(self):
        return self.weights + self.biases


def stack_cost(kernel_size, depth, channels, height=1, width=1, in_channels=None, bias=True):
    """Weights, biases, multiply-adds, ReLUs and receptive field of ``conv_stack(...)`` applied to a
    ``height`` x ``width`` image, by formula. Any size but ``kernel_size`` and ``depth`` may be a
    sympy symbol, which turns every count into a formula in it."""
    kernel_size = _check_kernel(kernel_size)
    depth = _check_size("depth", depth)
    channels = _check_size("channels", channels, symbolic_ok=True)
    in_channels = channels if in_channels is None else _check_size("in_channels", in_channels, symbolic_ok=True)
    height = _check_size("height", height, symbolic_ok=True)
    width = _check_size("width", width, symbolic_ok=True)
    taps = kernel_size * kernel_size
    # First layer reads in_channels; the depth - 1 others read channels.
    weights = taps * in_channels * channels + (depth - 1) * taps * channels * channels
    per_pixel = weights  # each weight is used once per output pixel
    return StackCost(
        kernel_size=kernel_size,
        depth=depth,
        weights=weights,
        biases=depth * channels if bias else 0,
        multiply_adds_per_pixel=per_pixel,
        multiply_adds=per_pixel * height * width,
        relus=depth,
        relu_evaluations=depth * channels * height * width,
        # Stride 1: each layer widens the field by kernel_size - 1 pixels.
        receptive_field=1 + depth * (kernel_size - 1),
    )


@dataclass(frozen=True)
class ConvLayerCost:
    """One ``nn.Conv2d`` of a model, with the shape it produced for a given input."""

    name: str
    kernel_size: int
    in_channels: int
    out_channels: int
    output_height: int
    output_width: int
    weights: int
    biases: int
    multiply_adds: int


def conv_layer_costs(model, input_size=(3, 224, 224)):
    """Every ``nn.Conv2d`` in ``model`` with its parameters and multiply-adds for one image of
    ``input_size`` = (channels, height, width), in forward order.

    Runs one forward pass (with hooks) on the model's device. For big models, build them on the
    ``meta`` device (``with torch.device("meta"): model = vgg("D")``): shapes, no memory, no time.
    """
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width) for one image, got {input_size!r}.")
    records = []

    def hook(module, inputs, output):
        height, width = output.shape[-2:]
        groups_in = module.in_channels // module.groups
        weights = module.weight.numel()
        records.append(ConvLayerCost(
            name=names[module],
            kernel_size=module.kernel_size[0],
            in_channels=module.in_channels,
            out_channels=module.out_channels,
            output_height=int(height),
            output_width=int(width),
            weights=weights,
            biases=0 if module.bias is None else module.bias.numel(),
            multiply_adds=int(height * width) * module.out_channels * groups_in
            * module.kernel_size[0] * module.kernel_size[1],
        ))

    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if not names:
        raise ValueError("The model has no nn.Conv2d layers to count.")
    handles = [m.register_forward_hook(hook) for m in names]
    parameter = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=parameter.device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return records
