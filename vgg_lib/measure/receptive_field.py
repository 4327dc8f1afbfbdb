"""Receptive fields: how much of the image one unit of a layer can see.

One recurrence (Dumoulin & Visin, 2016; Araujo, Norris & Sim, 2019), applied layer by layer.
A layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` reads an input that is
``n`` units wide, whose units see ``r`` input pixels, sit ``j`` input pixels apart and whose first
unit is centred on input pixel ``start``::

    reach     = d * (k - 1) + 1                    pixels of its input one window spans
    n_out     = floor((n + 2p - reach) / s) + 1    output size
    r_out     = r + (reach - 1) * j                receptive field (pixels per side)
    j_out     = j * s                              jump: input pixels between neighbouring units
    start_out = start + ((reach - 1) / 2 - p) * j  centre of the first output unit

The image itself is the starting point: ``r = 1``, ``j = 1``, ``start = 0`` (the centre of pixel 0).
Unit ``u`` of a layer then sees input pixels ``start + u*j - (r-1)/2`` to ``start + u*j + (r-1)/2``
along each axis (indices below 0 or past the image are zero padding).

Square kernels and square inputs only, as in every VGG. Pointwise layers (ReLU, batch norm, LRN,
dropout) do not move across the image and leave all four quantities unchanged.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..architecture.configs import get_config
from ..architecture.naming import layer_order, paper_names
from ..tables import text_table
from ..architecture.model import make_layers

# Layers that act on each pixel separately: they never change what a unit sees.
POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid,
             nn.Tanh, nn.BatchNorm2d, nn.LocalResponseNorm, nn.Dropout, nn.Dropout2d,
             nn.Identity)


@dataclass(frozen=True)
class LayerGeometry:
    """How one layer slides over its input: ``kind`` is "conv", "pool" or "classifier"."""

    name: str
    kind: str
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    ceil_mode: bool = False

    @property
    def reach(self):
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class ReceptiveField:
    """One row of the table: a layer and what each of its units sees of the input image."""

    layer: LayerGeometry
    size: int              # output size (units per side)
    receptive_field: int   # pixels per side one unit sees
    jump: int              # input pixels between neighbouring units
    start: float           # input pixel on which the first unit is centred

    @property
    def name(self):
        return self.layer.name

    def box(self, unit, input_size=None):
        """First and last input pixel (along one axis) that unit ``unit`` sees.

        Unclipped by default (negative indices are padding); pass ``input_size`` to clip to the image.
        """
        if not 0 <= unit < self.size:
            raise ValueError(f"{self.name} has units 0..{self.size - 1}, not {unit}.")
        centre = self.start + unit * self.jump
        first = int(centre - (self.receptive_field - 1) / 2)
        last = first + self.receptive_field - 1
        if input_size is not None:
            first, last = max(first, 0), min(last, input_size - 1)
        return first, last


class ReceptiveFieldTable(tuple):
    """The rows of ``receptive_fields``, in forward order; ``table["pool5"]`` picks one by name."""

    def __getitem__(self, key):
        if isinstance(key, str):
            for row in self:
                if row.name == key:
                    return row
            raise ValueError(f"No layer named {key!r}. Layers: {', '.join(self.names)}.")
        return tuple.__getitem__(self, key)

    @property
    def names(self):
        return [row.name for row in self]

    def __str__(self):
        return format_receptive_fields(self)


def conv_specs(kernel=3, count=3, pool_every=None, dilations=None):
    """LayerGeometry specs for ``count`` k x k convolutions (stride 1, "same" padding), with a 2x2
    max-pooling (stride 2) after every ``pool_every``-th convolution if given, VGG style.
    ``dilations`` (one per convolution) spreads each kernel's taps ``d`` pixels apart."""
    for label, value in (("kernel", kernel), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}.")
    if pool_every is not None and (not isinstance(pool_every, int) or pool_every < 1):
        raise ValueError(f"pool_every must be None or a positive integer, got {pool_every!r}.")
    dilations = [1] * count if dilations is None else list(dilations)
    if len(dilations) != count:
        raise ValueError(f"Give one dilation per convolution: {count} convolutions, "
                         f"{len(dilations)} dilations.")
    layers, block, index = [], 1, 0
    for dilation in dilations:
        reach = dilation * (kernel - 1) + 1
        if reach % 2 == 0:
            raise ValueError(f"A {kernel}x{kernel} kernel with dilation {dilation} spans {reach} "
                             f"pixels, an even number: no symmetric padding keeps the size. "
                             f"Use an odd kernel.")
        index += 1
        layers.append(LayerGeometry(f"conv{block}_{index}", "conv", kernel, 1, reach // 2, dilation))
        if pool_every and index == pool_every:
            layers.append(LayerGeometry(f"pool{block}", "pool", 2, 2))
            block, index = block + 1, 0
    return layers


def _square(module, attribute):
    value = getattr(module, attribute)
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{type(module).__name__} has {attribute}={tuple(value)}: receptive "
                             f"fields are tracked for square windows only (as in VGG).")
        value = value[0]
    return value


def _conv_padding(module):
    padding = module.padding
    if padding == "valid":
        return 0
    if padding == "same":
        total = _square(module, "dilation") * (_square(module, "kernel_size") - 1)
        if total % 2:
            raise ValueError("padding='same' with an even window pads one side more than the other; "
                             "receptive fields are tracked for symmetric padding only.")
        return total // 2
    return _square(module, "padding")


def _layer_from_module(module, name):
    if isinstance(module, nn.Conv2d):
        return LayerGeometry(name, "conv", _square(module, "kernel_size"), _square(module, "stride"),
                     _conv_padding(module), _square(module, "dilation"))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _square(module, "kernel_size")
        stride = _square(module, "stride") or kernel
        dilation = _square(module, "dilation") if isinstance(module, nn.MaxPool2d) else 1
        return LayerGeometry(name, "pool", kernel, stride, _square(module, "padding"), dilation,
                     bool(module.ceil_mode))
    return None


def _leaves(module, prefix=""):
    """Leaf modules in registration order (the forward order of nested ``nn.Sequential``)."""
    children = list(module.named_children())
    if not children:
        yield prefix, module
    for child_name, child in children:
        yield from _leaves(child, f"{prefix}.{child_name}" if prefix else child_name)


def walk(module):
    """``(leaf_module, LayerGeometry or None)`` for every leaf of a VGG-like model's convolutional part.

    Names follow the paper's blocks: ``conv{block}_{i}`` and ``pool{block}``, a block ending at
    each pooling. Pointwise layers come with ``None``. Anything else raises a ``TypeError``.
    """
    features = getattr(module, "features", module)
    if not isinstance(features, nn.Module):
        raise TypeError(f"Expected a VGG model or an nn.Sequential of layers, got {type(module).__name__}.")
    leaves = list(_leaves(features))
    names = paper_names([leaf for _, leaf in leaves])
    for (path, leaf), name in zip(leaves, names):
        if isinstance(leaf, POINTWISE):
            yield leaf, None
            continue
        if isinstance(leaf, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            layer = _layer_from_module(leaf, name)
        else:
            raise TypeError(
                f"Cannot follow a receptive field through {type(leaf).__name__} (module "
                f"{path!r}): only Conv2d, MaxPool2d and AvgPool2d move across the image, and "
                f"pointwise layers ({', '.join(t.__name__ for t in POINTWISE)}) are skipped. "
                f"Pass the convolutional part only (model.features) and use head=True for the "
                f"classifier."
            )
        yield leaf, layer


def layers_of(source):
    """The sliding layers of ``source``: a configuration name ("A" ... "E"), a VGG model, an
    ``nn.Sequential`` of layers, or a list of ``LayerGeometry`` specs (returned as they are)."""
    if isinstance(source, str):
        get_config(source)  # a clear error for unknown names
        with torch.device("meta"):  # shapes only: no memory, no time
            source = make_layers(source)
    if isinstance(source, (list, tuple)):
        if not all(isinstance(layer, LayerGeometry) for layer in source):
            raise TypeError("A list passed as source must hold LayerGeometry specs (see conv_specs).")
        return list(source)
    if isinstance(source, nn.Module):
        return [layer for _, layer in walk(source) if layer is not None]
    raise TypeError(f"Cannot read layers from a {type(source).__name__}: pass a configuration "
                    f"name such as 'D', a VGG model, an nn.Sequential or a list of LayerGeometry specs.")


def _output_size(layer, size):
    span = size + 2 * layer.padding - layer.reach
    if span < 0:
        return 0
    if not layer.ceil_mode:
        return span // layer.stride + 1
    out = -(-span // layer.stride) + 1
    # PyTorch's rule: the last window must start inside the input or its left padding.
    if (out - 1) * layer.stride >= size + layer.padding:
        out -= 1
    return out


def _too_small(layers, input_size, layer, size):
    smallest = min_input_size(layers)
    return ValueError(
        f"An input of {input_size}x{input_size} pixels is too small: {layer.name} gets a "
        f"{size}x{size} map (padding {layer.padding}) but its window spans {layer.reach} units, "
        f"so it has no output. Use an input of at least {smallest}x{smallest} pixels."
    )


def min_input_size(source):
    """The smallest square input for which every layer of ``source`` still has an output."""
    layers = layers_of(source)
    size = 1
    while True:
        current = size
        for layer in layers:
            current = _output_size(layer, current)
            if current < 1:
                break
        else:
            return size
        size += 1


def receptive_fields(source, input_size=224, head=False):
    """The per-layer receptive-field table of ``source`` for a square input of ``input_size`` pixels.

    ``source``: a configuration name ("A", "A-LRN", "B", "C", "D", "E"), a VGG model, an
    ``nn.Sequential`` or a list of ``LayerGeometry`` specs. ``head=True`` appends a "classifier" row: the
    first fully connected layer reads every position of the last feature map, like the 7x7
    convolution the paper turns it into at test time (Section 3.2).
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size must be a positive integer (pixels per side), got {input_size!r}.")
    layers = layers_of(source)
    if not layers:
        raise ValueError("No convolution or pooling layer found: the receptive field is one pixel.")
    rows, size, field, jump, start = [], input_size, 1, 1, 0.0
    for layer in layers + [None] * bool(head):
        if layer is None:
            layer = LayerGeometry("classifier", "classifier", kernel=size)
        if layer.kernel < 1 or layer.stride < 1 or layer.dilation < 1 or layer.padding < 0:
            raise ValueError(f"{layer.name}: kernel, stride and dilation must be >= 1 and padding "
                             f">= 0, got {layer}.")
        out = _output_size(layer, size)
        if out < 1:
            raise _too_small(layers, input_size, layer, size)
        # The recurrence of the module docstring; start and field use the jump of the layer below.
        field += (layer.reach - 1) * jump
        start += ((layer.reach - 1) / 2 - layer.padding) * jump
        jump *= layer.stride
        size = out
        rows.append(ReceptiveField(layer, size, field, jump, start))
    return ReceptiveFieldTable(rows)


def receptive_field(source, layer=None, input_size=224):
    """Receptive field (pixels per side) of one unit of ``layer`` (default: the last layer)."""
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name such as 'pool5', got {layer!r} "
                        f"(for the input size, write input_size={layer!r}).")
    table = receptive_fields(source, input_size=input_size, head=layer == "classifier")
    return (table[-1] if layer is None else table[layer]).receptive_field


def format_receptive_fields(rows):
    """A plain-text table: layer, kernel, stride, padding, output size, receptive field, jump, start."""
    lines = []
    for row in rows:
        layer = row.layer
        kernel = f"{layer.kernel}" if layer.dilation == 1 else f"{layer.kernel}d{layer.dilation}"
        lines.append([row.name, kernel, layer.stride, layer.padding, f"{row.size}x{row.size}",
                      row.receptive_field, row.jump, f"{row.start:g}"])
    return text_table(["layer", "kernel", "stride", "pad", "output", "RF", "jump", "start"], lines)


def comparison_table(configs=("A", "B", "C", "D", "E"), input_size=224, head=True):
    """Receptive field of every layer name (rows) in every configuration (columns), as text.

    A dash means the configuration has no layer of that name.
    """
    tables = {name: receptive_fields(name, input_size, head=head) for name in configs}
    names = sorted({row.name for table in tables.values() for row in table}, key=layer_order)
    rows = [[layer] + [str(table[layer].receptive_field) if layer in table.names else "-"
                       for table in tables.values()] for layer in names]
    return text_table(["layer", *configs], rows)
