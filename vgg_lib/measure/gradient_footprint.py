"""Measuring a receptive field instead of computing it: back-propagate from one output unit and
see which input pixels receive a gradient.

The measurement is made on a *probe*, a copy of the layers that keeps their geometry (kernel,
stride, padding, dilation, pointwise layers) but makes cancellation impossible: every convolution
weight is the same positive number (``1 / fan_in``, which keeps activations near 1 however deep the
stack), biases are zero, batch norm is the identity, so every ReLU stays open. Max-poolings become
average-poolings over the same window: a max-pooling's gradient reaches only the winner of each
window, although every pixel of the window could have been the winner.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .receptive_field import LayerGeometry, layers_of, walk


@dataclass
class Footprint:
    """The input gradient of one output unit, summed over channels (absolute values)."""

    gradient: torch.Tensor  # (input_size, input_size), float64
    layer: str
    unit: tuple             # (row, column) of the unit in the layer's output

    @property
    def support(self):
        """Boolean map of the input pixels with a non-zero gradient."""
        return self.gradient > 0

    @property
    def pixel_count(self):
        return int(self.support.sum())

    @property
    def box(self):
        """((first_row, last_row), (first_column, last_column)) around the support."""
        rows = torch.nonzero(self.support.any(dim=1)).flatten()
        cols = torch.nonzero(self.support.any(dim=0)).flatten()
        if len(rows) == 0:
            raise ValueError(f"No input pixel reaches {self.layer} unit {self.unit}.")
        return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))

    @property
    def extent(self):
        """(height, width) of the box around the support: the measured receptive field."""
        (top, bottom), (left, right) = self.box
        return bottom - top + 1, right - left + 1


def as_module(layers, channels=1):
    """A real ``nn.Sequential`` (convolutions with a ReLU each, max-poolings) with the geometry of
    a list of ``LayerGeometry`` specs."""
    modules = []
    for layer in layers:
        if layer.kind == "conv":
            modules.append(nn.Conv2d(channels, channels, layer.kernel, layer.stride, layer.padding,
                                     layer.dilation))
            modules.append(nn.ReLU(inplace=True))
        elif layer.kind == "pool":
            modules.append(nn.MaxPool2d(layer.kernel, layer.stride, layer.padding, layer.dilation,
                                        ceil_mode=layer.ceil_mode))
        else:
            raise ValueError(f"{layer.name} is a {layer.kind!r} layer; as_module builds only "
                             f"'conv' and 'pool' layers.")
    return nn.Sequential(*modules)


def _probe_copy(module, dtype):
    if isinstance(module, nn.MaxPool2d):
        if module.dilation not in (1, (1, 1)):
            raise ValueError("A dilated max-pooling has no average-pooling twin; the probe cannot "
                             "replace it.")
        return nn.AvgPool2d(module.kernel_size, module.stride, module.padding,
                            ceil_mode=module.ceil_mode, count_include_pad=True)
    probe = copy.deepcopy(module)
    if any(p.is_meta for p in probe.parameters()) or any(b.is_meta for b in probe.buffers()):
        probe = probe.to_empty(device="cpu")  # every parameter is overwritten below
    probe = probe.to(device="cpu", dtype=dtype).eval()
    with torch.no_grad():
        if isinstance(probe, nn.Conv2d):
            probe.weight.fill_(1.0 / probe.weight[0].numel())
            if probe.bias is not None:
                probe.bias.zero_()
        elif isinstance(probe, nn.BatchNorm2d):
            probe.reset_parameters()  # weight 1, bias 0, running mean 0, running variance 1
        elif isinstance(probe, nn.PReLU):
            probe.weight.fill_(0.25)
    return probe


def gradient_footprint(source, input_size, layer=None, unit=None, dtype=torch.float64):
    """The input pixels that unit ``unit`` (default: the centre) of ``layer`` (default: the last)
    depends on, measured with autograd on a probe copy of ``source``.

    ``source``: a VGG model, an ``nn.Sequential`` or a list of ``LayerGeometry`` specs. The model itself is
    never modified. Returns a ``Footprint``; compare ``footprint.extent`` with
    ``receptive_fields(source, input_size)[layer].receptive_field``.
    """
    if isinstance(source, (list, tuple)):
        source = as_module(layers_of(source))
    pairs = list(walk(source))
    names = [spec.name for _, spec in pairs if spec is not None]
    if layer is None:
        if not names:
            raise ValueError("No convolution or pooling layer found.")
        layer = names[-1]
    if layer not in names:
        raise ValueError(f"No layer named {layer!r}. Layers: {', '.join(names)}.")
    cut = next(i for i, (_, spec) in enumerate(pairs) if spec is not None and spec.name == layer)
    # Keep the pointwise layers that directly follow (the ReLU of a convolution).
    while cut + 1 < len(pairs) and pairs[cut + 1][1] is None:
        cut += 1
    probe = nn.Sequential(*(_probe_copy(module, dtype) for module, _ in pairs[:cut + 1]))
    first_conv = next((m for m, spec in pairs if isinstance(spec, LayerGeometry) and spec.kind == "conv"), None)
    channels = first_conv.in_channels if first_conv is not None else 1
    image = torch.ones(1, channels, input_size, input_size, dtype=dtype, requires_grad=True)
    output = probe(image)
    height, width = output.shape[-2:]
    if unit is None:
        unit = ((height - 1) // 2, (width - 1) // 2)
    row, column = unit
    if not (0 <= row < height and 0 <= column < width):
        raise ValueError(f"{layer} has a {height}x{width} output; unit {unit} is outside it.")
    output[0, :, row, column].sum().backward()
    return Footprint(image.grad[0].abs().sum(dim=0), layer, (int(row), int(column)))
