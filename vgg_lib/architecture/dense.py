"""Dense evaluation (Section 3.2 of the paper): the fully connected layers rewritten as
convolutions, so that the whole network slides over an image of any size.

"The fully-connected layers are first converted to convolutional layers (the first FC layer to a
7x7 conv. layer, the last two FC layers to 1x1 conv. layers). The resulting fully-convolutional
net is then applied to the whole (uncropped) image. The result is a class score map [...]"

``to_fully_convolutional(model)`` does exactly that, without retraining: the first linear layer,
which reads a k x k x C map flattened channel-first, becomes a k x k convolution with the same
numbers (``weight.view(out, C, k, k)``); every later linear layer becomes a 1 x 1 convolution.
On the image size the network was trained at the score map is 1 x 1 and equals the original
network's scores; on a larger image it has one position per k x k window of the feature map.
The adaptive average pooling in front of the head is dropped: it is what lets the original
network take any size by squeezing the map to k x k, which dense evaluation replaces by sliding.
"""

import torch
from torch import nn

from .model import VGG, check_input


class FullyConvolutionalVGG(nn.Module):
    """A VGG whose head is convolutional: ``forward`` returns the class-score map
    (N, classes, h, w); ``class_scores`` averages it over its positions (the paper's
    sum-pooling), giving (N, classes)."""

    def __init__(self, features, classifier, map_size, config=None, spec=None):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.map_size = map_size  # the k x k window the first converted layer reads
        self.config, self.spec = config, spec

    def forward(self, x):
        check_input(self, x)
        maps = self.features(x)
        if min(maps.shape[-2:]) < self.map_size:
            height, width = x.shape[-2:]
            raise ValueError(
                f"A {height}x{width} input leaves a {maps.shape[-2]}x{maps.shape[-1]} feature map, "
                f"but the converted head's first layer is a {self.map_size}x{self.map_size} "
                f"convolution: give images at least as large as the ones the network was built "
                f"for (a {self.map_size}x{self.map_size} map).")
        return self.classifier(maps)

    def class_scores(self, x):
        """The score map averaged over its spatial positions: (N, classes)."""
        return self(x).mean(dim=(2, 3))


def _as_conv(linear, in_channels, kernel_size):
    """A convolution computing ``linear`` on every k x k window; it shares ``linear``'s
    weights (a view: no copy, and the same device and dtype, the meta device included)."""
    conv = nn.Conv2d(in_channels, linear.out_features, kernel_size, bias=linear.bias is not None,
                     device="meta")
    conv.weight = nn.Parameter(linear.weight.view(linear.out_features, in_channels,
                                                  kernel_size, kernel_size),
                               requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        conv.bias = linear.bias
    return conv


def to_fully_convolutional(model):
    """The fully-convolutional version of ``model`` (a VGG built by ``vgg()`` or
    ``ModelSpec.build()``, any head, e.g. with torchvision's weights loaded), for dense
    evaluation. It shares ``model``'s parameters (nothing is copied, so it costs no memory and
    follows later changes to ``model``) and keeps the head's layer indices: its state dict has
    the same keys, the classifier's weights reshaped. Call ``.eval()`` on it before evaluating
    (dropout)."""
    if isinstance(model, FullyConvolutionalVGG):
        return model
    if not isinstance(model, VGG):
        raise TypeError(f"to_fully_convolutional converts a VGG built by vgg() or "
                        f"ModelSpec.build(), not a {type(model).__name__}.")
    pool = model.avgpool
    if not isinstance(pool, nn.AdaptiveAvgPool2d):
        raise ValueError(f"The model's avgpool is a {type(pool).__name__}; the conversion needs "
                         "the adaptive average pooling vgg() builds in front of the head.")
    size = pool.output_size
    height, width = (size, size) if isinstance(size, int) else size
    if height is None or height != width:
        raise ValueError(f"The head reads a {size} map; only square maps convert.")
    size = height
    channels = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
    layers, first = [], True
    for module in model.classifier:
        if isinstance(module, nn.Linear):
            if first:
                if module.in_features != channels * size * size:
                    raise ValueError(
                        f"The head's first linear layer takes {module.in_features} numbers, not "
                        f"the {channels}x{size}x{size} = {channels * size * size} of the feature "
                        "map: this is not a head vgg() built.")
                layers.append(_as_conv(module, channels, size))
                first = False
            else:
                layers.append(_as_conv(module, module.in_features, 1))
        elif isinstance(module, (nn.ReLU, nn.Dropout)):
            layers.append(type(module)(**({"inplace": module.inplace} if isinstance(module, nn.ReLU)
                                          else {"p": module.p})))
        else:
            raise ValueError(f"Cannot convert a {type(module).__name__} in the head: only Linear, "
                             "ReLU and Dropout layers have a convolutional equivalent here.")
    converted = FullyConvolutionalVGG(model.features, nn.Sequential(*layers), size,
                                      config=model.config, spec=model.spec)
    converted.train(model.training)
    return converted


def score_map_size(image_size, pool_count=5, map_size=7):
    """Side of the class-score map dense evaluation gives for a square ``image_size`` input:
    ``pool_count`` 2x2 poolings (each rounding down), then a ``map_size`` x ``map_size``
    window sliding with stride 1. 224 -> 1, 256 -> 2, 320 -> 4, 384 -> 6 for VGG-16."""
    side = int(image_size)
    for _ in range(pool_count):
        side //= 2
    if side < map_size:
        raise ValueError(f"A {image_size}-pixel image leaves a {side}x{side} map after "
                         f"{pool_count} poolings, smaller than the {map_size}x{map_size} window "
                         "of the first converted layer.")
    return side - map_size + 1


@torch.no_grad()
def same_scores(model, converted, x, atol=1e-4):
    """Whether ``converted`` (at the size ``model`` was built for) gives ``model``'s scores."""
    return torch.allclose(model(x), converted.class_scores(x), atol=atol, rtol=1e-4)
