"""The paper's Table 1 as data.

Each configuration is a list read left to right, like torchvision's ``cfgs``:

* an ``int`` ``n``      -- a 3x3 convolution (stride 1, padding 1) with ``n`` output channels
* a ``(n, k)`` tuple    -- a kxk convolution with ``n`` output channels (C's 1x1 layers: ``(n, 1)``)
* ``"LRN"``             -- local response normalisation (configuration A-LRN only)
* ``"M"``               -- 2x2 max-pooling with stride 2

Every convolution is followed by a ReLU (and by batch norm first, when asked). ``parse_config``
is the one place that reads this grammar.

``CONFIGS`` holds the six Table 1 columns and nothing else: code that loops over "the paper's
configurations" loops over it. ``CONTROLS`` holds networks the paper trains as controls but does
not list in Table 1, built from the same grammar: "B-5x5", the shallow net of Section 4.1, is B
with each pair of 3x3 convolutions replaced by one 5x5 convolution (``merge_3x3_pairs``).
``DEEPER`` holds columns deeper than E, made by the same grammar (``repeat_3x3``) for the chapter
on residual networks. ``get_config`` and everything built on it (``ModelSpec``, the counters,
the receptive fields) accept all three.
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



def merge_3x3_pairs(config, kernel_size=5):
    """``config`` with each pair of consecutive 3x3 convolutions of a block replaced by one
    ``kernel_size`` x ``kernel_size`` convolution with the second one's channels: the same
    receptive field (a 5x5 sees what two stacked 3x3 see), one nonlinearity instead of two.
    The paper's shallow control (Section 4.1) is ``merge_3x3_pairs(CONFIGS["B"])``. A block
    with an odd number of 3x3 convolutions, or with anything else than 3x3 convolutions between
    its poolings, is an error: it has no pairing that keeps the receptive field."""
    merged, run = [], []

    def flush():
        if len(run) % 2:
            raise ValueError(f"Cannot merge the 3x3 convolutions {run} of {config!r} in pairs: a "
                             "block has an odd number of them. merge_3x3_pairs needs blocks of "
                             "2, 4, ... 3x3 convolutions (configurations A-LRN aside: B or E).")
        merged.extend((run[i + 1], kernel_size) for i in range(0, len(run), 2))
        run.clear()

    for item in config:
        if isinstance(item, int) and not isinstance(item, bool):
            run.append(item)
        elif item == "M":
            flush()
            merged.append(item)
        else:
            raise ValueError(f"merge_3x3_pairs reads 3x3 convolutions (ints) and 'M' only, not "
                             f"{item!r}: give it a configuration such as B or E.")
    flush()
    return merged


# Networks the paper trains outside Table 1 (see the module docstring); not in CONFIGS on purpose.
CONTROLS = {
    "B-5x5": merge_3x3_pairs(CONFIGS["B"]),  # Section 4.1: "7% higher" top-1 error than B
}


def repeat_3x3(config, per_block):
    """``config`` with block ``b`` (everything up to its ``b``-th max-pooling) holding
    ``per_block[b]`` 3x3 convolutions, all with the block's last width: the paper's way of going
    deeper (A to E adds 3x3 layers inside blocks 3 to 5), carried further.
    ``repeat_3x3(CONFIGS["E"], (2, 2, 8, 8, 8))`` is E with 8 convolutions in each of blocks 3-5.
    Only blocks of 3x3 convolutions (ints) and "M" are read: A-LRN and C are errors."""
    blocks, current = [], []
    for item in config:
        if item == "M":
            blocks.append(current)
            current = []
        elif isinstance(item, int) and not isinstance(item, bool):
            current.append(item)
        else:
            raise ValueError(f"repeat_3x3 reads 3x3 convolutions (ints) and 'M' only, not "
                             f"{item!r}: give it a configuration such as A, B, D or E.")
    if current:
        blocks.append(current)
    counts = list(per_block)
    if len(counts) != len(blocks) or not all(isinstance(n, int) and n >= 1 for n in counts):
        raise ValueError(f"per_block={per_block!r}: give one count >= 1 for each of the "
                         f"{len(blocks)} blocks of {config!r}.")
    deeper = []
    for width, count in zip((block[-1] for block in blocks), counts):
        deeper.extend([width] * count)
        deeper.append("M")
    return deeper if config[-1] == "M" else deeper[:-1]


# Deeper columns than E from the same grammar (chapter 10, notebooks/10_residual_networks.ipynb):
# E with 6 and 8 3x3 convolutions in each of blocks 3-5 (25 and 31 weight layers as the paper
# counts, three fully connected layers included). Not in CONFIGS: Table 1 stops at E.
DEEPER = {
    "E-6": repeat_3x3(CONFIGS["E"], (2, 2, 6, 6, 6)),
    "E-8": repeat_3x3(CONFIGS["E"], (2, 2, 8, 8, 8)),
}

# Every named configuration: Table 1's columns, the controls, the deeper columns.
NAMED = {**CONFIGS, **CONTROLS, **DEEPER}

# The paper's Table 2: "Number of parameters (in millions)".
PAPER_PARAMETERS_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}

# Krizhevsky et al. (2012) LRN settings, which the paper reuses (Section 2.1):
# size n=5, alpha=1e-4, beta=0.75, k=2.
LRN_SETTINGS = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}

# torchvision's builder names for the configurations it ships.
TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def canonical_name(name):
    """The name as ``CONFIGS`` or ``CONTROLS`` spells it ("d" -> "D", "b-5X5" -> "B-5x5")."""
    key = str(name).strip().upper()
    for known in NAMED:
        if known.upper() == key:
            return known
    raise ValueError(
        f"Unknown VGG configuration {name!r}. Choose one of the paper's Table 1 columns: "
        f"{', '.join(CONFIGS)} (or a control: {', '.join(CONTROLS)}; or a deeper column: "
        f"{', '.join(DEEPER)})."
    )


def get_config(name):
    """Return the layer list of configuration ``name`` ("A", "A-LRN", "B", "C", "D" or "E", a
    control such as "B-5x5", or a deeper column such as "E-8")."""
    return list(NAMED[canonical_name(name)])


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


def layer_notation(name):
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
        for layer in layer_notation(name):
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
