"""Pictures of receptive fields: a side view of a stack (which units feed one output unit) and the
gradient footprint of that unit on the input image. Used by the chapter and by ``widgets``."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from .gradient_footprint import gradient_footprint
from .receptive_field import conv_specs, min_input_size, receptive_fields

CONE = "tab:orange"
TOP = "tab:red"


def explorer_stack(kernel, layers, pooling):
    """The explorer's stack: ``layers`` k x k convolutions, a 2x2 max-pool after every second one
    when ``pooling`` is on (as in VGG's first two blocks)."""
    return conv_specs(kernel, layers, pool_every=2 if pooling else None)


def _centre_box(layers, input_size):
    top = receptive_fields(layers, input_size)[-1]
    return top.box((top.size - 1) // 2)


def fitting_input_size(stacks, margin=1):
    """The smallest square input on which the centre unit of every stack in ``stacks`` (lists of
    ``LayerGeometry`` specs) sees only real pixels, with ``margin`` pixels to spare on each side."""
    size = max(min_input_size(layers) for layers in stacks)
    while True:
        boxes = [_centre_box(layers, size) for layers in stacks]
        if all(first >= margin and last <= size - 1 - margin for first, last in boxes):
            return size
        size += 1


def cone(layers, input_size):
    """Which units feed the centre unit of the last layer: one sorted index list per level,
    from the input (level 0) to the last layer. Plain index arithmetic, one axis."""
    table = receptive_fields(layers, input_size)
    sizes = [input_size] + [row.size for row in table]
    levels = [[(table[-1].size - 1) // 2]]
    for layer, size in zip(reversed(layers), reversed(sizes[:-1])):
        below = {unit * layer.stride - layer.padding + layer.dilation * tap
                 for unit in levels[0] for tap in range(layer.kernel)}
        levels.insert(0, sorted(i for i in below if 0 <= i < size))
    return levels


def draw_side_view(ax, layers, input_size):
    """Units as dots at the centre of what they see (one row of the image), the cone of the
    centre output unit in colour, the input pixels it reaches shaded."""
    table = receptive_fields(layers, input_size)
    geometry = [(input_size, 1, 0.0)] + [(row.size, row.jump, row.start) for row in table]
    levels = cone(layers, input_size)
    segments = []
    for level, layer in enumerate(layers, start=1):
        _, jump, start = geometry[level]
        _, below_jump, below_start = geometry[level - 1]
        for unit in levels[level]:
            for tap in range(layer.kernel):
                i = unit * layer.stride - layer.padding + layer.dilation * tap
                if 0 <= i < geometry[level - 1][0]:
                    segments.append([(start + unit * jump, level), (below_start + i * below_jump, level - 1)])
    ax.add_collection(LineCollection(segments, colors=CONE, linewidths=0.6, alpha=0.5))
    for level, (size, jump, start) in enumerate(geometry):
        x = start + jump * np.arange(size)
        ax.scatter(x, np.full(size, level), s=6, color="0.75", zorder=2)
        chosen = np.asarray(levels[level])
        colour = TOP if level == len(geometry) - 1 else CONE
        ax.scatter(start + jump * chosen, np.full(len(chosen), level), s=14 if level else 10,
                   color=colour, zorder=3)
    first, last = _centre_box(layers, input_size)
    ax.add_patch(Rectangle((first - 0.5, -0.4), last - first + 1, 0.8, color=CONE, alpha=0.25, lw=0))
    ax.set_yticks(range(len(geometry)), ["input"] + [layer.name for layer in layers])
    ax.set_xlim(-1, input_size)
    ax.set_ylim(-0.6, len(geometry) - 0.4)
    ax.set_xlabel("input pixel (one row)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def draw_footprint(ax, footprint, box=None, log=True):
    """The input gradient of one unit as a heat map (light grey: exactly zero); ``box`` = ((top,
    bottom), (left, right)) outlines the receptive field the recurrence predicts."""
    gradient = footprint.gradient.numpy()
    shown = np.ma.masked_equal(gradient, 0.0)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.92")
    norm = LogNorm(vmin=shown.min(), vmax=shown.max()) if log and shown.min() < shown.max() else None
    size = gradient.shape[0]
    ax.imshow(shown, cmap=cmap, norm=norm, extent=(-0.5, size - 0.5, size - 0.5, -0.5),
              interpolation="nearest")
    if box is not None:
        (top, bottom), (left, right) = box
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                               fill=False, edgecolor=TOP, linewidth=1.2, linestyle="--"))
    ax.set_xticks([])
    ax.set_yticks([])


def draw_stack(fig, layers, input_size=None):
    """Draw ``layers`` (``LayerGeometry`` specs) on ``fig``: side view on the left, the autograd footprint
    of the centre output unit on the right. Returns (receptive field, pixels with gradient)."""
    input_size = input_size or fitting_input_size([layers])
    fig.clear()
    side, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.7, 1]})
    draw_side_view(side, layers, input_size)
    top = receptive_fields(layers, input_size)[-1]
    first, last = _centre_box(layers, input_size)
    footprint = gradient_footprint(layers, input_size)
    draw_footprint(heat, footprint, box=((first, last), (first, last)))
    convs = [layer for layer in layers if layer.kind == "conv"]
    pools = len(layers) - len(convs)
    kernel = convs[0].kernel
    stack = f"{len(convs)} × conv {kernel}×{kernel}" + (f" + {pools} × pool 2×2" if pools else "")
    side.set_title(f"{stack}: receptive field {top.receptive_field}×{top.receptive_field}", fontsize=10)
    heat.set_title(f"autograd: {footprint.pixel_count} pixels ≠ 0", fontsize=10)
    fig.tight_layout()
    return top.receptive_field, footprint.pixel_count
