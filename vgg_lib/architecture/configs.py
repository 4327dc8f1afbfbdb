"""The paper's Table 1 as data.

Each configuration is a list read left to right, like torchvision's ``cfgs``:

* an ``int`` ``n``      -- a 3x3 convolution (stride 1, padding 1) with ``n`` output channels
* a ``(n, k)`` tuple    -- a kxk convolution with ``n`` output channels (C's 1x1 layers: ``(n, 1)``)
* ``"LRN"``             -- local response normalisation (configuration A-LRN only)
* ``"M"``               -- 2x2 max-pooling with stride 2

Every convolution is followed by a ReLU (and by batch norm first, when asked). ``parse_config``
is the one place that reads this grammar.
"""

from dataclasses import dataclass

CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M",
          512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
          512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# The paper's Table 2: "Number of parameters (in millions)".
PAPER_PARAMETERS_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}

# Krizhevsky et al. (2012) LRN settings, which the paper reuses (Section 2.1):
# size n=5, alpha=1e-4, beta=0.75, k=2.
LRN_SETTINGS = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}

# torchvision's builder names for the configurations it ships.
TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def get_config(name):
    """Return the layer list of configuration ``name`` ("A", "A-LRN", "B", "C", "D" or "E")."""
    key = str(name).strip().upper()
    if key not in CONFIGS:
        raise ValueError(
            f"Unknown VGG configuration {name!r}. "
            f"Choose one of the paper's Table 1 columns: {', '.join(CONFIGS)}."
        )
    return list(CONFIGS[key])


@dataclass(frozen=True)
class ConfigItem:
    """One entry of a configuration, read: ``kind`` is "conv", "pool" or "lrn"; a convolution
    has ``channels`` and ``kernel_size`` (3 for an ``int`` entry, 1 for ``(n, 1)``)."""

    kind: str
    channels: int = 0
    kernel_size: int = 0


def parse_config(config):
    """The one reader of the config grammar: a configuration name or a layer list (ints,
    ``(channels, kernel)`` tuples, "M", "LRN") as a list of ``ConfigItem``."""
    layers = get_config(config) if isinstance(config, str) else list(config)
    items = []
    for item in layers:
        if item == "M":
            items.append(ConfigItem("pool"))
        elif item == "LRN":
            items.append(ConfigItem("lrn"))
        elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
            items.append(ConfigItem("conv", item, 3))
        elif (isinstance(item, tuple) and len(item) == 2
              and all(isinstance(v, int) and v > 0 for v in item)):
            items.append(ConfigItem("conv", item[0], item[1]))
        else:
            raise ValueError(f"Cannot read {item!r} in a VGG configuration: use an int (a 3x3 "
                             "convolution's channels), a (channels, kernel_size) pair, 'M' "
                             "(max-pooling) or 'LRN'.")
    return items


def conv_layers(name):
    """The convolutions of a configuration as ``(out_channels, kernel_size)`` pairs."""
    return [(item.channels, item.kernel_size) for item in parse_config(name) if item.kind == "conv"]


def weight_layer_count(name):
    """Weight layers as the paper counts them: convolutions plus the three fully connected layers."""
    return len(conv_layers(name)) + 3


def pooling_count(name):
    return sum(item.kind == "pool" for item in parse_config(name))


def convolutions_per_block(name):
    """How many convolutions (of any kernel size) each block holds, a block being everything up
    to and including a max-pooling: ``[2, 2, 3, 3, 3]`` for D (VGG-16). Convolutions after the
    last pooling, if a custom list has any, form one more block."""
    counts = [0]
    for item in parse_config(name):
        if item.kind == "pool":
            counts.append(0)
        elif item.kind == "conv":
            counts[-1] += 1
    return counts if counts[-1] else counts[:-1]


def layer_names(name):
    """The paper's notation for each entry: conv3-64, conv1-256, LRN, maxpool."""
    names = []
    for item in parse_config(name):
        if item.kind == "pool":
            names.append("maxpool")
        elif item.kind == "lrn":
            names.append("LRN")
        else:
            names.append(f"conv{item.kernel_size}-{item.channels}")
    return names


def table_1(names=None):
    """Table 1 of the paper as Markdown: one column per configuration, one row per block."""
    names = list(names or CONFIGS)
    blocks = {}
    for name in names:
        block, rows = 0, [[] for _ in range(pooling_count(name))]
        for layer in layer_names(name):
            if layer == "maxpool":
                block += 1
            else:
                rows[block].append(layer)
        blocks[name] = rows
    header = "| block | " + " | ".join(f"{n} ({weight_layer_count(n)} weight layers)" for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for block in range(max(len(rows) for rows in blocks.values())):
        cells = ["<br>".join(blocks[n][block]) + "<br>maxpool" for n in names]
        lines.append(f"| {block + 1} | " + " | ".join(cells) + " |")
    lines.append("| head | " + " | ".join(["FC-4096<br>FC-4096<br>FC-1000<br>soft-max"] * len(names)) + " |")
    return "\n".join(lines)
