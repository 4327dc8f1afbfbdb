"""``ModelSpec``: everything that decides a VGG's architecture, as one small typed object.

It flows from a profile into ``vgg()``, onto the built model (``model.spec``) and into every
checkpoint, so that ``vgg_lib.training.checkpoint.load_model(path)`` rebuilds the very same
network without anybody re-listing its settings (the way nanoGPT's ``GPTConfig`` travels).
"""

import math
from dataclasses import asdict, dataclass, fields, replace

from .configs import canonical_name, parse_config, weight_layer_count
from .residual import SHORTCUTS

HEADS = ("imagenet", "compact", "fc-2x2")


@dataclass(frozen=True)
class ModelSpec:
    config: str = "D"            # a Table 1 column: "A", "A-LRN", "B", "C", "D" or "E" (or "B-5x5")
    batch_norm: bool = False     # BatchNorm2d after every convolution (not in the paper)
    width: float = 1.0           # channel multiplier: 0.25 is a quarter-width net for CPUs
    head: str = "imagenet"       # "imagenet": the paper's 3 FC layers; "compact": GAP + 1 linear;
                                 # "fc-2x2": the paper's 3 FC layers over a 2x2 map, the last
                                 # max-pool dropped (CIFAR's analogue of 7x7, chapter 9)
    num_classes: int = 1000
    dropout: float = 0.5         # dropout of the imagenet head (the paper's 0.5)
    in_channels: int = 3
    shortcuts: str = "none"      # "identity": a residual VGG (residual.py: identity shortcuts over
                                 # pairs of 3x3 convolutions, 1x1 projections where the width changes)

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
        from .model import build  # model.py imports this module: the builder lives there

        return build(self, init_weights=init_weights)

    def replace(self, **changes):
        return replace(self, **changes)

    @property
    def pool_count(self):
        return sum(item.kind == "pool" for item in parse_config(self.config))

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
