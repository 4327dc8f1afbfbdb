"""Residual VGG: the same columns with shortcut connections (He et al., 2016), as a documented
transform of any configuration of the grammar, not a network of its own.

``ModelSpec(config, shortcuts="identity")`` builds a plain column and then adds shortcuts by one
rule, read from the built layers:

* the network's first convolution reads the image and stays plain (the *stem*: He et al.'s
  networks also begin with one plain convolution);
* after it, every maximal run of consecutive 3x3 convolutions (a max-pooling, an LRN or a
  convolution of another size ends a run) is cut into pairs from its start; each pair becomes a
  *residual unit*: ``y = relu(F(x) + s(x))``, where ``F`` is the pair (convolution, batch norm,
  ReLU, convolution, batch norm) and the shortcut ``s(x)`` is added just before the second ReLU;
* ``s`` is the identity where the pair keeps the width, and a 1x1 convolution (followed by batch
  norm when the network has it; without a bias then, which batch norm would cancel) where the
  pair changes it: He et al.'s option B. In a VGG the width changes only at the first pair of a
  block (64 -> 128 -> 256 -> 512), so D gets three projections, E three, A two;
* a convolution left over (a block with an odd number) stays plain.

Why option B and not A (zero-padding the extra channels, no parameters)? He et al.'s Table 3 found
B slightly better than A on ImageNet, and attributed it to A's padded channels having no residual
learning; a projection costs a few per cent of a VGG's convolution weights (an exercise of
chapter 10 counts them). Pooling stays where it is, so no shortcut has a stride.

The plain layers keep their order, their indices in ``model.features`` and their state-dict keys
(a residual VGG's ``features.3.weight`` is the plain one's), so the paper's layer names,
receptive fields, shape traces and the training diagnostics read a residual VGG like a plain
one. The projections live in ``model.shortcuts``, a ``ModuleDict`` keyed by the name of the
unit's first convolution (``"conv3_1"``), registered after the head: for the same seed a
residual VGG starts from the plain one's weights plus its projections. ``model.features`` is a
``ResidualFeatures`` that adds the shortcuts when it runs, so whoever runs ``model.features``
(dense evaluation, feature-map capture) gets the residual network.
"""

from dataclasses import dataclass

import torch
from torch import nn

from .naming import paper_names

SHORTCUTS = ("none", "identity")  # "identity": identity shortcuts, projections where the width changes


@dataclass(frozen=True)
class ResidualUnit:
    """One residual unit: the pair of convolutions ``first`` and ``second`` (paper names), their
    input and output channels, and where in ``model.features`` the unit starts (its first
    convolution) and where the shortcut is added (just before the ReLU after ``second``)."""

    first: str
    second: str
    in_channels: int
    out_channels: int
    start: int
    add_before: int

    @property
    def projection(self):
        """True when the shortcut is a 1x1 projection (the unit changes the width)."""
        return self.in_channels != self.out_channels


def residual_units(features):
    """The residual units the rule of the module docstring makes of the plain layers
    ``features`` (an ``nn.Sequential`` as ``make_layers`` builds it), in forward order."""
    layers = list(features)
    names = paper_names(layers)
    runs, run, stem_seen = [], [], False
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d) and not stem_seen:  # the stem stays plain
            stem_seen = True
        elif (isinstance(layer, nn.Conv2d) and layer.kernel_size == (3, 3)
              and layer.stride == (1, 1) and layer.padding == (1, 1)):
            run.append(index)
        elif not isinstance(layer, (nn.BatchNorm2d, nn.ReLU)):  # pooling, LRN, another kernel
            runs.append(run)
            run = []
    runs.append(run)
    units = []
    for run in runs:
        for first, second in zip(run[0::2], run[1::2]):
            relu = next((i for i in range(second + 1, len(layers)) if isinstance(layers[i], nn.ReLU)),
                        None)
            if relu is None:
                raise ValueError(f"The convolution {names[second]} has no ReLU after it: a residual "
                                 "unit adds its shortcut before that ReLU.")
            units.append(ResidualUnit(names[first], names[second], layers[first].in_channels,
                                      layers[second].out_channels, first, relu))
    return units


def projection(in_channels, out_channels, batch_norm):
    """He et al.'s option B: a 1x1 convolution to the new width (batch norm after it, and then
    no bias, when the network has batch norm)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=not batch_norm)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if batch_norm else nn.Sequential(conv)


class ResidualFeatures(nn.Sequential):
    """``model.features`` of a residual VGG: the plain layers, in their plain order and with
    their plain indices, run with the shortcuts of ``units`` added. The projections are
    registered on the model (``model.shortcuts``), not here, so that iterating over these
    features gives the plain layers only."""

    def __init__(self, layers, units, shortcuts):
        super().__init__(*layers)
        self.units = tuple(units)
        # not registered as a child (see the class docstring): the model registers it
        object.__setattr__(self, "_shortcuts", shortcuts)
        self._starts = {unit.start for unit in self.units}
        self._adds = {unit.add_before: unit for unit in self.units}

    def forward(self, x):
        saved = None
        for index, layer in enumerate(self):
            if index in self._starts:
                saved = x
            elif index in self._adds:
                unit = self._adds[index]
                shortcut = self._shortcuts[unit.first](saved) if unit.projection else saved
                x = x + shortcut
            x = layer(x)
        return x

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise TypeError("A slice of a residual VGG's features would lose its shortcuts. Run "
                            "the whole model.features with forward hooks instead (e.g. "
                            "vgg_lib.inspection.feature_maps.capture_activations).")
        return super().__getitem__(index)


def with_shortcuts(features, batch_norm):
    """``(ResidualFeatures, shortcuts)`` for the plain layers ``features``: the rule of the
    module docstring, with a projection (``ModuleDict`` entry named after the unit's first
    convolution) for every unit that changes the width. A network without any unit is an
    error: shortcuts would change nothing."""
    units = residual_units(features)
    if not units:
        raise ValueError("This configuration has no pair of consecutive 3x3 convolutions after "
                         "its first one, so there is nowhere to put a shortcut: use "
                         "shortcuts='none'.")
    # Built without touching the global random numbers, so that the rest of the model is
    # initialised as the plain one is: for the same seed, the same starting weights.
    with torch.random.fork_rng(devices=[]):
        shortcuts = nn.ModuleDict({unit.first: projection(unit.in_channels, unit.out_channels,
                                                          batch_norm)
                                   for unit in units if unit.projection})
    return ResidualFeatures(list(features), units, shortcuts), shortcuts
