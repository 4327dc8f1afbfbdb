"""One builder from a Table 1 column to an ``nn.Module``.

Module names follow torchvision's ``models/vgg.py`` (``features``, ``avgpool``,
``classifier`` and the same indices inside them), so torchvision's state dicts,
pretrained ImageNet weights included, load into these models unchanged.
"""

import torch
from torch import nn

from .configs import LRN_SETTINGS, parse_config
from .residual import with_shortcuts
from .spec import HEADS, ModelSpec


class VGG(nn.Module):
    def __init__(self, features, avgpool, classifier, config, pool_count, spec=None,
                 shortcuts=None):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier
        if shortcuts is not None:  # a residual VGG's projections (residual.py); after the head
            self.shortcuts = shortcuts
        self.config = config
        self.spec = spec  # the ModelSpec it was built from (None for a hand-assembled VGG)
        self.min_input_size = 2 ** pool_count

    def forward(self, x):
        check_input(self, x)
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


def _first_parameter(model):
    return next(model.parameters(), None)


def check_input(model, x):
    """Raise a ``TypeError``/``ValueError`` that says what to do when ``x`` is not a batch this
    VGG can take: a float tensor of shape (N, C, H, W) on the model's device, in its dtype.
    Called by ``VGG.forward`` so that a student never meets a shape error from inside torch;
    skipped while ``torch.compile`` traces the model (the eager first call has checked)."""
    if torch.compiler.is_compiling():
        return
    if not isinstance(x, torch.Tensor):
        hint = ("convert it with torch.from_numpy(array) (and .permute(0, 3, 1, 2) for HWC images)"
                if type(x).__module__.startswith("numpy") else
                "stack the images into one tensor of shape (N, C, H, W), e.g. torch.stack(images)")
        raise TypeError(f"A VGG takes a tensor of images, not a {type(x).__name__}: {hint}.")
    channels = model.features[0].in_channels if isinstance(model.features[0], nn.Conv2d) else None
    shape = tuple(x.shape)
    if x.dim() != 4:
        if x.dim() == 3 and channels in (shape[0], shape[-1]):
            fix = (f"add the batch dimension with x.unsqueeze(0), giving {(1, *shape)}"
                   if shape[0] == channels else
                   f"this looks like one HWC image: use x.permute(2, 0, 1).unsqueeze(0)")
            raise ValueError(f"Got a single image of shape {shape}, but a VGG takes a batch of "
                             f"shape (N, C, H, W): {fix}.")
        raise ValueError(f"Got a {x.dim()}-dimensional tensor of shape {shape}, but a VGG takes "
                         "a batch of images of shape (N, C, H, W), e.g. (8, 3, 32, 32).")
    if channels is not None and shape[1] != channels:
        if shape[-1] == channels:
            fix = ("the channels are last (NHWC, as numpy and PIL store images): use "
                   "x.permute(0, 3, 1, 2)")
        elif shape[1] == 1 and channels == 3:
            fix = "grey images: repeat the channel with x.expand(-1, 3, -1, -1)"
        else:
            fix = f"build the model with in_channels={shape[1]} or give it {channels}-channel images"
        raise ValueError(f"Got a batch of shape {shape}: dimension 1 should hold the {channels} "
                         f"channels this VGG's first convolution takes, not {shape[1]}; {fix}.")
    parameter = _first_parameter(model)
    if not x.is_floating_point():
        fix = ("normalise the uint8 images first: data.normalize(images)" if x.dtype == torch.uint8
               else "convert it with x.float()")
        raise TypeError(f"Got a {x.dtype} tensor; a VGG computes on floating-point images: {fix}.")
    if parameter is not None:
        if parameter.device != x.device:
            raise ValueError(f"The images are on {x.device} but the model is on "
                             f"{parameter.device}: move one to the other, e.g. "
                             f"x.to({str(parameter.device)!r}) or model.to(x.device).")
        try:
            autocasting = torch.is_autocast_enabled(x.device.type)
        except RuntimeError:  # a device type without autocast
            autocasting = False
        if x.dtype != parameter.dtype and not autocasting:
            raise TypeError(f"The images are {x.dtype} but the model's weights are "
                            f"{parameter.dtype}: convert with x.to({parameter.dtype}) (numpy "
                            "arrays are float64 by default; torch uses float32).")


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


# The spatial map each head's first layer reads (the paper's 7x7; 2x2 for CIFAR's analogue).
HEAD_MAP_SIZE = {"imagenet": 7, "compact": 1, "fc-2x2": 2}
# Heads that drop the configuration's last max-pool, so a 32x32 image leaves a 2x2 map.
HEADS_WITHOUT_LAST_POOL = ("fc-2x2",)


def make_head(head, feature_channels, num_classes, width=1.0, dropout=0.5):
    """The classifier: the paper's 7x7x512 -> 4096 -> 4096 -> classes, a compact one for CIFAR
    (global average pooling, one linear layer), or ``"fc-2x2"``: the paper's three layers over
    a 2x2 map (CIFAR's analogue, used with the last max-pool dropped)."""
    if head in ("imagenet", "fc-2x2"):
        hidden = scaled_channels(4096, width)
        size = HEAD_MAP_SIZE[head]
        avgpool = nn.AdaptiveAvgPool2d((size, size))
        classifier = nn.Sequential(
            nn.Linear(feature_channels * size * size, hidden),
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
    if spec.head in HEADS_WITHOUT_LAST_POOL and isinstance(features[-1], nn.MaxPool2d):
        # the last pooling has no parameters: every other layer keeps its index (and key)
        features = nn.Sequential(*list(features)[:-1])
    feature_channels = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
    avgpool, classifier = make_head(spec.head, feature_channels, spec.num_classes, spec.width,
                                    spec.dropout)
    shortcuts = None
    if spec.shortcuts != "none":
        features, shortcuts = with_shortcuts(features, batch_norm=spec.batch_norm)
    model = VGG(features, avgpool, classifier, config=spec.config, pool_count=spec.pool_count,
                spec=spec, shortcuts=shortcuts)
    if init_weights:
        initialise_weights(model)
    return model


def vgg(config="D", batch_norm=False, num_classes=1000, head="imagenet", width=1.0,
        dropout=0.5, in_channels=3, init_weights=True, shortcuts="none"):
    """Build configuration ``config`` ("A", "A-LRN", "B", "C", "D" or "E") of the paper.

    ``head="imagenet"`` is the paper's classifier (use it with 224x224 inputs);
    ``head="compact"`` is global average pooling and one linear layer, for CIFAR-10;
    ``head="fc-2x2"`` drops the last max-pool and puts the paper's three FC layers on the 2x2
    map a 32x32 image leaves (the CIFAR analogue of the 7x7 map, for dense evaluation).
    ``width`` scales every layer's channels (0.25 gives a quarter-width model for CPU runs).
    ``shortcuts="identity"`` builds the residual version (``architecture/residual.py``).
    Any input of at least 32x32 pixels works: the pooling before the head is adaptive.
    ``config`` may also be a ``ModelSpec`` (then the other settings must stay at their defaults).
    """
    if isinstance(config, ModelSpec):
        given = dict(batch_norm=batch_norm, num_classes=num_classes, head=head, width=width,
                     dropout=dropout, in_channels=in_channels, shortcuts=shortcuts)
        defaults = dict(batch_norm=False, num_classes=1000, head="imagenet", width=1.0,
                        dropout=0.5, in_channels=3, shortcuts="none")
        changed = {k: v for k, v in given.items() if v != defaults[k]}
        if changed:
            settings = ", ".join(f"{k}={v!r}" for k, v in changed.items())
            raise TypeError(f"vgg(spec, {settings}): a ModelSpec already holds every setting, so "
                            f"these would be ignored. Use vgg(spec.replace({settings})).")
        return build(config, init_weights=init_weights)
    spec = ModelSpec(config=config, batch_norm=batch_norm, width=width, head=head,
                     num_classes=num_classes, dropout=dropout, in_channels=in_channels,
                     shortcuts=shortcuts)
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
