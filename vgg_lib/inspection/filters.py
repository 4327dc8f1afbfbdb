"""First-layer filters as pictures: folding batch norm and input scaling in, scaling to [0, 1] for
display, tiling into one image, and splitting each filter's energy into colour and pattern parts.

Only the first convolution's filters are RGB images (3 input channels); deeper filters act on
feature maps, and ``filter_grid`` refuses to draw them.
"""

import torch
from torch import nn

SCALINGS = ("per_filter", "global")  # how filter weights become grey levels (filters_as_pictures)


def first_layer_filters(model, std=None):
    """The first convolution's weights ``(C_out, 3, k, k)`` as they act on the input.

    A batch norm right after the convolution multiplies each filter by ``gamma / sqrt(var + eps)``
    (possibly flipping its sign), so it is folded in; with ``std`` (the per-channel input
    normalisation) the filters are also expressed per unit of raw pixel value (``w / std``).
    """
    features = getattr(model, "features", model)
    layers = list(features)
    index = next((i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)), None)
    if index is None:
        raise ValueError("The model has no convolution in .features.")
    weight = layers[index].weight.detach().float().cpu().clone()
    following = layers[index + 1] if index + 1 < len(layers) else None
    if isinstance(following, nn.BatchNorm2d):
        scale = following.weight.detach().cpu() / torch.sqrt(following.running_var.cpu() + following.eps)
        weight = weight * scale.view(-1, 1, 1, 1)
    if std is not None:
        weight = weight / torch.as_tensor(std, dtype=weight.dtype).view(1, -1, 1, 1)
    return weight


def filters_as_pictures(weight, scaling="per_filter"):
    """Map filter weights to [0, 1] with zero at 0.5 (grey), keeping the sign visible.

    ``"per_filter"``: every filter is stretched so its own largest |weight| reaches 0 or 1 (shows
    each filter's pattern, hides how strong it is). ``"global"``: one scale for all filters (weak
    filters fade to grey, so relative strength is visible).
    """
    weight = torch.as_tensor(weight, dtype=torch.float32)
    if scaling == "per_filter":
        scale = weight.abs().flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    elif scaling == "global":
        scale = weight.abs().max().expand(len(weight)).view(-1, 1, 1, 1)
    else:
        raise ValueError(f"scaling={scaling!r}: use one of {SCALINGS}.")
    return 0.5 + weight / (2 * scale.clamp_min(1e-12))


def filter_grid(weight, scaling="per_filter", columns=8, padding=1, upscale=1):
    """One RGB image ``(H, W, 3)`` holding all 3-channel filters side by side on a white ground."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"Expected first-layer filters of shape (C_out, 3, k, k), got {tuple(weight.shape)}; "
                         "deeper filters have more than 3 input channels and are no RGB picture.")
    tiles = filters_as_pictures(weight, scaling)
    if upscale > 1:
        tiles = tiles.repeat_interleave(upscale, dim=2).repeat_interleave(upscale, dim=3)
    count, _, height, width = tiles.shape
    rows = -(-count // columns)
    grid = torch.ones(3, rows * (height + padding) + padding, columns * (width + padding) + padding)
    for i, tile in enumerate(tiles):
        top = padding + (i // columns) * (height + padding)
        left = padding + (i % columns) * (width + padding)
        grid[:, top:top + height, left:left + width] = tile
    return grid.permute(1, 2, 0).numpy()


def filter_energy_split(weight):
    """Split each filter's squared weights into three orthogonal parts; returns ``(C_out, 3)``.

    Columns: ``flat`` (each colour channel's spatial mean: responds to colour, not to layout),
    ``grey pattern`` (the spatial pattern shared by R, G and B: luminance edges and spots),
    ``colour pattern`` (what remains: colour edges). Each row sums to 1.
    """
    weight = torch.as_tensor(weight, dtype=torch.float64)
    flat = weight.mean(dim=(2, 3), keepdim=True).expand_as(weight)
    pattern = weight - flat
    grey = pattern.mean(dim=1, keepdim=True).expand_as(weight)
    colour = pattern - grey
    energies = torch.stack([(part ** 2).flatten(1).sum(1) for part in (flat, grey, colour)], dim=1)
    return energies / energies.sum(dim=1, keepdim=True)
