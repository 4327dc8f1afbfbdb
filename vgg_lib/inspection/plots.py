"""Pictures of a VGG: feature maps, unit galleries, effective receptive fields.

Computation lives in ``filters``, ``feature_maps``, ``activation_maximisation`` and
``effective_receptive_field``; this module turns their tensors into matplotlib figures.
"""

import matplotlib.pyplot as plt
import torch

from .feature_maps import strongest_channels


def to_displayable(images):
    """``(N, 3, H, W)`` uint8 (0..255) or float (0..1) images -> ``(N, H, W, 3)`` numpy in [0, 1]."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return images.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def show_feature_maps(image, activations, k=6, by="mean", size=1.0):
    """One row per layer: the input, then the ``k`` strongest channels of that layer.

    ``activations``: ``{layer name: (C, H, W) tensor}`` for one image, e.g. from
    ``capture_activations(model, x, block_ends(model))`` indexed at ``[0]``. Each map has its own
    colour scale (the channel number and its maximum are in the title); the row label gives
    the layer with its spatial size and channel count. Returns the figure.
    """
    picture = to_displayable(image.unsqueeze(0) if image.dim() == 3 else image)[0]
    fig, axes = plt.subplots(len(activations), k + 1, figsize=(size * (k + 1.6), size * len(activations)),
                             squeeze=False)
    for row, (name, activation) in zip(axes, activations.items()):
        channels = strongest_channels(activation, k, by=by)
        row[0].imshow(picture)
        row[0].set_ylabel(f"{name}\n{activation.shape[1]}×{activation.shape[2]}×{activation.shape[0]}",
                          rotation=0, ha="right", va="center", fontsize=8)
        for ax, channel in zip(row[1:], channels.tolist()):
            values = activation[channel].numpy()
            ax.imshow(values, cmap="viridis", vmin=0, vmax=max(values.max(), 1e-12), interpolation="nearest")
            ax.set_title(f"ch {channel}, max {values.max():.1f}", fontsize=6)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def show_unit_gallery(synthesised, top_images, labels, top_titles=None, size=0.75):
    """One row per unit: its synthesised image (activation maximisation), then the dataset images
    that excite it most. ``synthesised``: ``(U, 3, h, w)`` in [0, 1]; ``top_images``: ``(U, k, 3, H, W)``
    uint8 or [0, 1]; ``labels``: one row label per unit; ``top_titles``: ``U`` lists of ``k`` captions."""
    units, k = top_images.shape[:2]
    fig, axes = plt.subplots(units, k + 1, figsize=(size * (k + 1) + 0.9, size * units * 1.1), squeeze=False)
    for unit, row in enumerate(axes):
        pictures = [to_displayable(synthesised[unit:unit + 1])[0], *to_displayable(top_images[unit])]
        for column, (ax, picture) in enumerate(zip(row, pictures)):
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if column and top_titles is not None:
                ax.set_title(top_titles[unit][column - 1], fontsize=6, pad=1)
        row[0].set_ylabel(labels[unit], rotation=0, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title("synthesised", fontsize=6, pad=1)
    fig.tight_layout(pad=0.3, h_pad=0.3, w_pad=0.2)
    return fig


def show_receptive_fields(maps, theoretical, centres, titles, size=1.6, rows=1, margin=0.3):
    """Measured effective receptive fields (``(H, W)`` maps, each shown relative to its maximum)
    with the theoretical receptive field as a dashed square of side ``theoretical[i]`` centred on
    input pixel ``centres[i] = (row, column)``. Each panel is zoomed to the square plus ``margin``
    of its side; ``rows`` splits the panels into rows (row-major). Returns the figure."""
    columns = -(-len(maps) // rows)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * 1.12 * rows), squeeze=False)
    for ax, erf, side, (cy, cx), title in zip(axes.flat, maps, theoretical, centres, titles):
        erf = torch.as_tensor(erf).numpy()
        ax.imshow(erf / erf.max(), cmap="magma", interpolation="nearest")
        ax.add_patch(plt.Rectangle((cx - side / 2, cy - side / 2), side, side, fill=False,
                                   edgecolor="cyan", linewidth=1, linestyle="--"))
        half = side * (1 + margin) / 2 + 1
        ax.set_xlim(max(cx - half, -0.5), min(cx + half, erf.shape[1] - 0.5))
        ax.set_ylim(min(cy + half, erf.shape[0] - 0.5), max(cy - half, -0.5))
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(maps):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
