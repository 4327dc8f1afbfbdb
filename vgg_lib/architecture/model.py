"""One builder from a Table 1 column to an ``nn.Module``.

Module names follow torchvision's ``models/vgg.py`` (``features``, ``avgpool``,
``classifier`` and the same indices inside them), so torchvision's state dicts,
pretrained ImageNet weights included, load into these models unchanged.
"""

import torch
from torch import nn

from .configs import LRN_SETTINGS, parse_config
from .spec import HEADS, ModelSpec


class VGG(nn.Module):
    def __init__(self, features, avgpool, classifier, config, pool_count, spec=None):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier
        self.config = config
        self.spec = spec  # the ModelSpec it was built from (None for a hand-assembled VGG)
        self.min_input_size = 2 ** pool_count

    def forward(self, x):
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f"Input of {height}x{width} pixels is too small for VGG configuration "
                f"{self.config}: its {self.min_input_size.bit_length() - 1} 2x2 max-poolings "
                f"halve the image each time, so it needs at least "
                f"{self.min_input_size}x{self.min_input_size}. Resize or pad the images "
                f"(CIFAR-10's 32x32 is the smallest that works)."
            )
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def scaled_channels(channels, width):
    scaled = int(round(channels * width))
    if scaled < 1:
        raise ValueError(
            f"width={width} turns a {channels}-channel layer into {scaled} channels. "
            f"Use width >= {1 / channels:.4g} so every layer keeps at least one channel."
        )
    return scaled


def make_layers(config, batch_norm=False, width=1.0, in_channels=3):
    """The convolutional part of a configuration as one ``nn.Sequential``."""
    layers = []
    for item in parse_config(config):
        if item.kind == "pool":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif item.kind == "lrn":
            # PyTorch divides alpha by the window size; Krizhevsky's formula does not.
            settings = dict(LRN_SETTINGS)
            settings["alpha"] *= settings["size"]
            layers.append(nn.LocalResponseNorm(**settings))
        else:
            kernel_size = item.kernel_size
            channels = scaled_channels(item.channels, width)
            layers.append(nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
    return nn.Sequential(*layers)


def make_head(head, feature_channels, num_classes, width=1.0, dropout=0.5):
    """The classifier: the paper's 7x7x512 -> 4096 -> 4096 -> classes, or a compact one for CIFAR."""
    if head == "imagenet":
        hidden = scaled_channels(4096, width)
        avgpool = nn.AdaptiveAvgPool2d((7, 7))
        classifier = nn.Sequential(
            nn.Linear(feature_channels * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
    elif head == "compact":
        avgpool = nn.AdaptiveAvgPool2d((1, 1))
        classifier = nn.Sequential(nn.Linear(feature_channels, num_classes))
    else:
        raise ValueError(f"Unknown head {head!r}. Choose one of: {', '.join(HEADS)}.")
    return avgpool, classifier


def initialise_weights(model):
    """torchvision's initialisation: Kaiming-normal convolutions, N(0, 0.01) linear layers."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


def build(spec, init_weights=True):
    """The network a ``ModelSpec`` describes; ``model.spec`` keeps the spec."""
    features = make_layers(spec.config, batch_norm=spec.batch_norm, width=spec.width,
                           in_channels=spec.in_channels)
    feature_channels = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
    avgpool, classifier = make_head(spec.head, feature_channels, spec.num_classes, spec.width,
                                    spec.dropout)
    model = VGG(features, avgpool, classifier, config=spec.config, pool_count=spec.pool_count,
                spec=spec)
    if init_weights:
        initialise_weights(model)
    return model


def vgg(config="D", batch_norm=False, num_classes=1000, head="imagenet", width=1.0,
        dropout=0.5, in_channels=3, init_weights=True):
    """Build configuration ``config`` ("A", "A-LRN", "B", "C", "D" or "E") of the paper.

    ``head="imagenet"`` is the paper's classifier (use it with 224x224 inputs);
    ``head="compact"`` is global average pooling and one linear layer, for CIFAR-10.
    ``width`` scales every layer's channels (0.25 gives a quarter-width model for CPU runs).
    Any input of at least 32x32 pixels works: the pooling before the head is adaptive.
    ``config`` may also be a ``ModelSpec`` (then the other settings must stay at their defaults).
    """
    if isinstance(config, ModelSpec):
        return build(config, init_weights=init_weights)
    spec = ModelSpec(config=config, batch_norm=batch_norm, width=width, head=head,
                     num_classes=num_classes, dropout=dropout, in_channels=in_channels)
    return build(spec, init_weights=init_weights)


def vgg11(**options):
    return vgg("A", batch_norm=False, **options)


def vgg11_bn(**options):
    return vgg("A", batch_norm=True, **options)


def vgg13(**options):
    return vgg("B", batch_norm=False, **options)


def vgg13_bn(**options):
    return vgg("B", batch_norm=True, **options)


def vgg16(**options):
    return vgg("D", batch_norm=False, **options)


def vgg16_bn(**options):
    return vgg("D", batch_norm=True, **options)


def vgg19(**options):
    return vgg("E", batch_norm=False, **options)


def vgg19_bn(**options):
    return vgg("E", batch_norm=True, **options)
