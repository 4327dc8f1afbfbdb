"""The model: ``ModelSpec`` (what decides a VGG's architecture) and the one builder from a Table 1
column to an ``nn.Module``.

``ModelSpec`` flows from a profile into ``vgg()``, onto the built model (``model.spec``) and into
every checkpoint, so that ``vgg_lib.training.checkpoint.load_model(path)`` rebuilds the very same
network without anybody re-listing its settings (the way nanoGPT's ``GPTConfig`` travels).

Module names follow torchvision's ``models/vgg.py`` (``features``, ``avgpool``,
``classifier`` and the same indices inside them), so torchvision's state dicts,
pretrained ImageNet weights included, load into these models unchanged; a state dict of another
network is refused with an error that says what differs (``check_state_dict``).
"""

import math
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from torch import nn

from .configs import CONFIGS, CONTROLS, LRN_SETTINGS, canonical_name, parse_config, weight_layer_count
from .residual import SHORTCUTS, with_shortcuts

HEADS = ("imagenet", "compact", "fc-2x2")


def setting(default, help, **option):
    """A field of a settings dataclass (``ModelSpec`` here, ``TrainConfig`` in
    ``training/recipe.py``): its default, its ``help`` (the documentation, and the help of its
    option of ``python -m vgg_lib.train``) and any more of that option's arguments
    (``choices``, ``metavar``, ``aliases``, ``command_line=False``), kept in its metadata."""
    return field(default=default, metadata=dict(help=help, **option))


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides a VGG's architecture. Each field's ``help`` (its metadata) is the
    documentation, and the training command's option for it (``python -m vgg_lib.train``)."""

    config: str = setting(
        "D", "a Table 1 column: A (VGG-11), A-LRN, B, C, D (VGG-16), E (VGG-19); or the paper's "
             "shallow control B-5x5 (B with each pair of 3x3 convolutions merged into one 5x5, "
             "chapter 8)", choices=(*CONFIGS, *CONTROLS))
    batch_norm: bool = setting(False, "BatchNorm2d after every convolution (not in the paper)")
    width: float = setting(
        1.0, "channel multiplier: 1 is the paper's width, 0.25 a quarter (for CPUs)")
    head: str = setting(
        "imagenet", "imagenet: the paper's three FC layers over a 7x7 map; compact: global "
                    "average pooling and one linear layer; fc-2x2: the paper's three FC layers "
                    "over a 2x2 map, the last max-pool dropped (CIFAR's analogue of 7x7, "
                    "chapter 9)", choices=HEADS)
    num_classes: int = setting(
        1000, "outputs of the last layer (set from the data by the training command)",
        command_line=False)
    dropout: float = setting(0.5, "dropout of the FC heads (the paper's 0.5)")
    in_channels: int = setting(
        3, "channels of the input images (set from the data by the training command)",
        command_line=False)
    shortcuts: str = setting(
        "none", "identity: a residual VGG (architecture/residual.py: identity shortcuts over "
                "pairs of 3x3 convolutions, 1x1 projections where the width changes, chapter 10)",
        choices=SHORTCUTS)

    def __post_init__(self):
        # the name as configs.py spells it; a clear error for an unknown configuration
        object.__setattr__(self, "config", canonical_name(self.config))
        if self.head not in HEADS:
            raise ValueError(f"Unknown head {self.head!r}. Choose one of: {', '.join(HEADS)}.")
        if not isinstance(self.width, (int, float)) or not math.isfinite(self.width) or self.width <= 0:
            raise ValueError(f"width={self.width!r}: use a positive number (1.0 is the paper's width, "
                             "0.25 a quarter of its channels).")
        for name in ("num_classes", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}: use a positive whole number.")
        if self.shortcuts not in SHORTCUTS:
            raise ValueError(f"Unknown shortcuts {self.shortcuts!r}. Choose one of: "
                             f"{', '.join(SHORTCUTS)}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r}: use a probability in [0, 1).")

    def build(self, init_weights=True):
        """The network this spec describes (on the default device), initialised."""
        return build(self, init_weights=init_weights)

    def replace(self, **changes):
        return replace(self, **changes)

    def describe(self):
        """One line: "VGG-11-BN (configuration A, width 0.25, compact head)"."""
        width = f"width {self.width:g}" if self.width != 1 else "full width"
        residual = ", identity shortcuts" if self.shortcuts != "none" else ""
        return (f"VGG-{weight_layer_count(self.config)}{'-BN' if self.batch_norm else ''} "
                f"(configuration {self.config}, {width}, {self.head} head{residual})")

    def to_dict(self):
        values = asdict(self)
        if values["shortcuts"] == "none":  # a plain network's settings read as before shortcuts
            del values["shortcuts"]        # existed: stored checkpoints and runs still match
        return values

    @classmethod
    def from_dict(cls, values):
        """A spec from ``to_dict()``'s output; unknown keys are an error, not silently dropped."""
        if not isinstance(values, dict):
            raise TypeError(f"A model spec is a dict of settings, not a {type(values).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown model setting(s) {', '.join(unknown)}; a ModelSpec has "
                             f"{', '.join(sorted(known))}.")
        return cls(**values)


class VGG(nn.Module):
    def __init__(self, features, avgpool, classifier, config=None, spec=None, shortcuts=None):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier
        if shortcuts is not None:  # a residual VGG's projections (residual.py); after the head
            self.shortcuts = shortcuts
        self.config = config
        self.spec = spec  # the ModelSpec it was built from (None for a hand-assembled VGG)
        # each 2x2 max-pooling halves the image: the smallest input leaves a 1x1 map
        self.min_input_size = 2 ** sum(isinstance(m, nn.MaxPool2d) for m in features)

    def forward(self, x):
        check_input(self, x)
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f"Input of {height}x{width} pixels is too small for VGG configuration "
                f"{self.config}: its {self.min_input_size.bit_length() - 1} 2x2 max-poolings "
                f"halve the image each time, so it needs at least "
                f"{self.min_input_size}x{self.min_input_size}. Resize or pad the images "
                f"(CIFAR-10's 32x32 images fit every configuration)."
            )
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """``nn.Module.load_state_dict``; with ``strict=True`` (the default) a state dict of
        another network is refused first, with ``check_state_dict``'s message."""
        if strict:
            check_state_dict(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


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
                   "this looks like one HWC image: use x.permute(2, 0, 1).unsqueeze(0)")
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


def describe_state_dict(state_dict):
    """Guess which configuration a VGG state dict came from: (conv layers, batch norm?)."""
    conv_weights = [k for k, v in state_dict.items()
                    if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4]
    batch_norm = any(k.endswith("running_mean") for k in state_dict)
    return len(conv_weights), batch_norm


def check_state_dict(model, state_dict):
    """Refuse, with an error a student can act on, a state dict that does not fit ``model``
    (another configuration, batch norm, width, head or class count; a whole checkpoint; not a
    state dict at all). ``VGG.load_state_dict`` calls it."""
    if isinstance(state_dict, dict) and "model" in state_dict and "format" in state_dict:
        raise TypeError("This is a whole checkpoint (weights, recipe, history...), not a state "
                        "dict: use load_checkpoint(path, model) or load_model(path), or pass "
                        "checkpoint['model'].")
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError(f"Expected a state dict (parameter names -> tensors, as "
                        f"model.state_dict() gives), not a {type(state_dict).__name__}"
                        + (" holding non-tensor values" if isinstance(state_dict, dict) else "")
                        + ".")
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or mismatched:
        theirs, their_bn = describe_state_dict(state_dict)
        ours, our_bn = describe_state_dict(own)
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[:3]}")
        raise ValueError(
            f"This state dict does not fit the model (configuration {getattr(model, 'config', '?')}, "
            f"{ours} convolutions, batch_norm={our_bn}); the state dict has {theirs} convolutions "
            f"and batch_norm={their_bn}. " + "; ".join(problems) + ". "
            "Build the model with the same configuration, batch_norm, width, head and "
            "num_classes as the one that was saved."
        )


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
    model = VGG(features, avgpool, classifier, config=spec.config, spec=spec, shortcuts=shortcuts)
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
