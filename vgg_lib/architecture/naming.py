"""The paper's layer names, worked out in one place: ``conv3_2``, ``relu3_2``, ``pool4``, ``fc7``.

Block ``b`` is everything up to and including its pooling ``pool{b}``; inside a block the
convolutions count 1, 2, ... and the batch norm and ReLU after a convolution share its number
(``conv3_2``, ``bn3_2``, ``relu3_2``), as in Caffe's model files, which the paper's authors
released. Fully connected layers are ``fc6``, ``fc7``, ``fc8`` (``fc`` for a one-layer head).
Every part of the book that names layers (shape traces, receptive fields, feature maps, training
diagnostics) calls these functions.
"""

import math
import re

from torch import nn

# What a module is called in a trace, by type (other modules: their class name in lower case).
LAYER_KINDS = {
    nn.Conv2d: "conv",
    nn.Linear: "fc",
    nn.ReLU: "relu",
    nn.BatchNorm2d: "bn",
    nn.LocalResponseNorm: "lrn",
    nn.MaxPool2d: "maxpool",
    nn.AdaptiveAvgPool2d: "avgpool",
    nn.Dropout: "dropout",
}
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)  # each ends a block


def kind_of(module):
    return LAYER_KINDS.get(type(module), type(module).__name__.lower())


def paper_names(modules, linear_count=0):
    """The paper-style name of each module in ``modules`` (in forward order)."""
    names = []
    block, index = 1, 0
    for module in modules:
        kind = kind_of(module)
        if isinstance(module, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
        elif isinstance(module, _POOLS):
            names.append(f"pool{block}")
            block, index = block + 1, 0
        elif kind == "fc":
            index = 0
            names.append("fc" if linear_count == 1 else f"fc{block}")
            block += 1
        elif kind in ("relu", "bn"):
            names.append(f"{kind}{block}_{index}" if index else f"{kind}{block - 1}")
        elif kind == "dropout":
            names.append(f"drop{block - 1}")
        elif kind == "lrn":
            names.append(f"lrn{block}")
        else:
            names.append(kind)
    return names


def features_of(model):
    """``model.features`` for a VGG (this book's or torchvision's), the model itself for an
    ``nn.Sequential`` of layers."""
    features = getattr(model, "features", model)
    if not isinstance(features, nn.Sequential):
        raise TypeError(f"Expected a VGG model (with .features) or an nn.Sequential, got "
                        f"{type(model).__name__}.")
    return features


def feature_names(model):
    """``{index: name}`` for every layer of ``model.features``."""
    return dict(enumerate(paper_names(list(features_of(model)))))


def classifier_names(count):
    """Names of a head's ``count`` linear layers: fc6..fc8, or ``fc`` for a one-layer head."""
    return ["fc"] if count == 1 else [f"fc{6 + i}" for i in range(count)]


def sliding_layer(model, name):
    """The convolution or pooling whose output the layer ``name`` carries on: ``relu3_2`` and
    ``bn3_2`` belong to ``conv3_2``, ``lrn1`` to the convolution before it. Receptive fields
    are tabulated under these names."""
    names = feature_names(model)
    by_name = {layer: index for index, layer in names.items()}
    if name not in by_name:
        raise ValueError(f"No layer named {name!r}. This model has: {', '.join(by_name)}.")
    for index in range(by_name[name], -1, -1):
        if names[index].startswith(("conv", "pool")):
            return names[index]
    raise ValueError(f"{name!r} comes before any convolution; it has the input's receptive field.")


_NAME = re.compile(r"(?P<kind>[a-z]+)(?P<block>\d+)(?:_(?P<index>\d+))?")
_RANK = {"conv": 0, "bn": 0, "relu": 0, "lrn": 1, "pool": 2, "fc": 0, "drop": 1}


def layer_order(name):
    """A sort key that puts names in forward order: conv3_1 < conv3_2 < pool3 < conv4_1 < fc6;
    names without a block number (``classifier``) come last."""
    match = _NAME.fullmatch(name)
    if match is None or match["kind"] not in _RANK:
        return (math.inf, 0, 0, name)
    return (int(match["block"]), _RANK[match["kind"]], int(match["index"] or 0), name)
