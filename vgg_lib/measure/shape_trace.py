"""A shape trace: run one forward pass with hooks and record what every layer produced.

``trace_shapes(model, image_size=224)`` calls each leaf module's forward hook, notes the
input and output shapes (one image, batch dimension dropped), the parameters, and *which
tensor* each layer read and wrote, so that in-place layers (``ReLU(inplace=True)``) and views
(``torch.flatten``) can be told apart from layers that allocate new memory. Counting
(``vgg_lib.measure.counting``) turns a trace into multiply-adds and memory.

The model may live on the ``meta`` device: PyTorch then runs every layer's shape logic without
computing any numbers, so even VGG-19 at 224x224 traces instantly.
"""

from dataclasses import dataclass, field
from math import prod

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from ..architecture.naming import kind_of, paper_names

@dataclass(frozen=True)
class TracedLayer:
    """One row of a trace. Shapes are for one image; ``*_id`` name tensors (same id = same memory)."""

    name: str                 # conv1_1, relu1_1, pool1, avgpool, flatten, fc6, ...
    kind: str                 # conv, bn, relu, lrn, maxpool, avgpool, flatten, fc, dropout, or the class name
    module: str               # path inside the model, e.g. "features.0"; "" for the functional flatten
    input_shape: tuple
    output_shape: tuple
    input_id: int
    output_id: int
    element_size: int         # bytes per output element (4 for float32)
    parameters: int = 0
    weight_shape: tuple = ()  # conv: (C_out, C_in, k, k); fc: (out, in)
    has_bias: bool = False
    options: dict = field(default_factory=dict, compare=False)  # e.g. {"size": 5} for LRN

    @property
    def output_elements(self):
        return prod(self.output_shape)

    @property
    def output_bytes(self):
        return self.output_elements * self.element_size

    @property
    def in_place(self):
        """True when the output *is* the input's memory (in-place ReLU, a view, eval-mode dropout)."""
        return self.output_id == self.input_id


@dataclass
class ShapeTrace:
    """The layers of one forward pass, in the order they ran."""

    layers: list
    input_shape: tuple        # one image, e.g. (3, 224, 224)
    input_element_size: int
    model_name: str = ""
    # (tensor id, last layer index): a container (the model, a Sequential) received this tensor
    # and its caller keeps it until the container returns, e.g. the image during the whole pass.
    holds: list = field(default_factory=list)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, key):
        if isinstance(key, str):
            for layer in self.layers:
                if layer.name == key:
                    return layer
            raise KeyError(f"No layer named {key!r}. Layers: {', '.join(l.name for l in self.layers)}.")
        return self.layers[key]

    def of_kind(self, *kinds):
        return [layer for layer in self.layers if layer.kind in kinds]

    @property
    def input_bytes(self):
        return prod(self.input_shape) * self.input_element_size


def _image_size(image_size):
    if isinstance(image_size, int):
        return image_size, image_size
    try:
        height, width = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size={image_size!r} is not a size: pass an int (224) or a pair (height, width)."
        ) from None
    return height, width


def trace_shapes(model, image_size=224, batch_size=1, in_channels=None):
    """Run one forward pass of ``model`` (in eval mode, without gradients) and record every layer.

    The input is a zero tensor of ``batch_size`` images of ``image_size`` (an int or
    (height, width)) on the model's device and dtype; use a model built under
    ``torch.device("meta")`` for a free trace of a full-size network. The hooks are removed
    and the model's train/eval mode restored afterwards, even if the forward pass fails.
    """
    height, width = _image_size(image_size)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: a trace needs at least one image.")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    if in_channels is None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        in_channels = convs[0].in_channels if convs else 3
    minimum = getattr(model, "min_input_size", 1)
    if min(height, width) < minimum:
        raise ValueError(
            f"A {height}x{width} input is too small for this model: its max-poolings need at least "
            f"{minimum}x{minimum} pixels. Use image_size >= {minimum} (32 for CIFAR-10, 224 for ImageNet)."
        )

    paths, containers = {}, set()
    for path, module in model.named_modules():
        if next(module.children(), None) is None and module is not model:
            paths.setdefault(module, path)
        else:
            containers.add(module)
    calls = []  # (module, input, output); holding the tensors keeps their memory ids unique
    spans = []  # (input, first call, end call) of every container call
    open_spans = []
    handles = []

    def record(module, args, output):
        if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
            calls.append((module, args[0], output))

    def enter(module, args):
        open_spans.append((args[0] if args else None, len(calls)))

    def leave(module, args, output):
        tensor, start = open_spans.pop()
        if isinstance(tensor, torch.Tensor) and len(calls) > start:
            spans.append((tensor, start, len(calls)))

    was_training = model.training
    try:
        for module in paths:
            handles.append(module.register_forward_hook(record))
        for module in containers:
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
        model.eval()
        x = torch.zeros(batch_size, in_channels, height, width, device=device, dtype=dtype)
        with torch.no_grad():
            try:
                model(x)
            except RuntimeError as error:
                raise ValueError(
                    f"The forward pass failed on a {batch_size}x{in_channels}x{height}x{width} input: "
                    f"{error}. Check image_size (too small for the poolings?) and in_channels."
                ) from error
        return _build_trace(model, x, calls, spans, paths)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def _build_trace(model, x, calls, spans, paths):
    ids = {}

    def tensor_id(tensor):
        return ids.setdefault(StorageWeakRef(tensor.untyped_storage()), len(ids))

    tensor_id(x)
    names = layer_names(model, [module for module, _, _ in calls], paths)
    layers, row_of_call = [], []
    previous_shape, previous_id = tuple(x.shape[1:]), tensor_id(x)
    for name, (module, inp, out) in zip(names, calls):
        in_shape, in_id = tuple(inp.shape[1:]), tensor_id(inp)
        if in_shape != previous_shape and prod(in_shape) == prod(previous_shape):
            # A reshape between modules (VGG.forward's torch.flatten) has no hook; show it as a row.
            layers.append(TracedLayer("flatten", "flatten", "", previous_shape, in_shape, previous_id, in_id,
                                inp.element_size()))
        weight = getattr(module, "weight", None)
        options = {"size": module.size} if isinstance(module, nn.LocalResponseNorm) else {}
        layers.append(TracedLayer(
            name=name,
            kind=kind_of(module),
            module=paths[module],
            input_shape=in_shape,
            output_shape=tuple(out.shape[1:]),
            input_id=in_id,
            output_id=tensor_id(out),
            element_size=out.element_size(),
            parameters=sum(p.numel() for p in module.parameters(recurse=False)),
            weight_shape=tuple(weight.shape) if isinstance(weight, torch.Tensor) else (),
            has_bias=isinstance(getattr(module, "bias", None), torch.Tensor),
            options=options,
        ))
        row_of_call.append(len(layers) - 1)
        previous_shape, previous_id = layers[-1].output_shape, layers[-1].output_id
    holds = [(tensor_id(tensor), row_of_call[end - 1]) for tensor, start, end in spans]
    return ShapeTrace(layers, tuple(x.shape[1:]), x.element_size(),
                      model_name=getattr(model, "config", type(model).__name__), holds=holds)


def _flat(module):
    return isinstance(module, nn.Sequential) and all(next(m.children(), None) is None
                                                     for m in module)


def layer_names(model, modules, paths):
    """The name of each traced call: the paper's (``conv3_2``, ``fc7``) for the layers of a VGG
    (a model whose ``features`` is a flat ``nn.Sequential``, as ``vgg()`` and torchvision build
    it) or of a flat ``nn.Sequential``; the module path for a residual VGG's shortcut
    projections (``shortcuts.conv3_1.0``) and for every layer of any other network
    (``layer1.0.conv1`` in a torchvision ResNet)."""
    if not (_flat(getattr(model, "features", None)) or _flat(model)):
        return [paths[module] for module in modules]
    own = [module for module in modules if not paths[module].startswith("shortcuts.")]
    linear_count = sum(isinstance(m, nn.Linear) for m in paths)
    paper = dict(zip(map(id, own), paper_names(own, linear_count)))
    return [paper.get(id(module), paths[module]) for module in modules]


def format_shape(shape):
    """(512, 7, 7) -> '512x7x7'; (4096,) -> '4096'."""
    return "x".join(str(s) for s in shape)


def shape_walk(trace, kinds=("conv", "maxpool", "flatten", "fc")):
    """One line from input to output: '3x224x224 -> 64x224x224 -> ... -> 1000'.

    Consecutive layers with the same output shape are written once."""
    steps = [format_shape(trace.input_shape)]
    for layer in trace.of_kind(*kinds):
        step = format_shape(layer.output_shape)
        if step != steps[-1]:
            steps.append(step)
    return " -> ".join(steps)
