"""The effective receptive field: which input pixels actually move a unit, measured by gradients.

Luo et al. (2016, "Understanding the effective receptive field in deep convolutional neural
networks") send a gradient of 1 back from the centre position of a feature map (all channels)
and look at how large the gradient is at every input pixel. The theoretical receptive field says
where it *can* be non-zero; the measured map shows where it is large in practice.
"""

import torch

from .feature_maps import capture_activations


def tile_images(images, columns):
    """Arrange ``(N, C, H, W)`` images into one ``(C, rows*H, columns*W)`` mosaic (row-major).

    ``N`` must be a multiple of ``columns``. Used to build large inputs with natural image
    statistics from small CIFAR images.
    """
    count, channels, height, width = images.shape
    if count % columns:
        raise ValueError(f"{count} images do not fill rows of {columns}; pass a multiple of {columns}.")
    rows = count // columns
    grid = images.reshape(rows, columns, channels, height, width)
    return grid.permute(2, 0, 3, 1, 4).reshape(channels, rows * height, columns * width)


def effective_receptive_field(model, layers, inputs, batch_size=4):
    """Mean over ``inputs`` of |d (sum over channels of ``layer`` at its centre) / d input|.

    ``inputs``: ``(N, 3, H, W)`` float tensor, already normalised as the model expects. The
    centre of an ``h x w`` map is unit ``(h // 2, w // 2)``. ``layers``: one layer, or a list
    (all measured from the same forward pass). Returns an ``(H, W)`` tensor (summed over the
    colour channels, on the CPU), or ``{layer: (H, W)}`` for a list.
    """
    single = not isinstance(layers, (list, tuple))
    layers = [layers] if single else list(layers)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = {layer: 0 for layer in layers}
    try:
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size].to(device).requires_grad_(True)
            with torch.enable_grad():
                captured = capture_activations(model, x, layers, detach=False)
                for i, layer in enumerate(layers):
                    activation = captured[layer]
                    row, column = activation.shape[2] // 2, activation.shape[3] // 2
                    (gradient,) = torch.autograd.grad(activation[:, :, row, column].sum(), x,
                                                      retain_graph=i < len(layers) - 1)
                    totals[layer] = totals[layer] + gradient.abs().sum(dim=(0, 1)).cpu()
    finally:
        model.train(was_training)
    maps = {layer: total / len(inputs) for layer, total in totals.items()}
    return maps[layers[0]] if single else maps


def centre_of_mass(weights):
    """``(row, column)`` of the weighted mean position of a non-negative ``(H, W)`` map."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    rows = torch.arange(weights.shape[0], dtype=torch.float64)
    columns = torch.arange(weights.shape[1], dtype=torch.float64)
    total = weights.sum()
    return float((weights.sum(1) * rows).sum() / total), float((weights.sum(0) * columns).sum() / total)


def mass_square_side(weights, share=0.9, centre=None):
    """Side (pixels) of the smallest square around ``centre`` that holds ``share`` of the map's total.

    ``centre`` defaults to the map's centre of mass; squares are clipped at the image border.
    This is the size quoted for an effective receptive field: its "90 % square" for ``share=0.9``.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share={share} must be in (0, 1].")
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if (weights < 0).any():
        raise ValueError("The map must be non-negative (use gradient magnitudes).")
    cy, cx = centre if centre is not None else centre_of_mass(weights)
    height, width = weights.shape
    total = weights.sum()
    for side in range(1, 2 * max(height, width) + 1):
        top, left = int(round(cy - (side - 1) / 2)), int(round(cx - (side - 1) / 2))
        window = weights[max(top, 0):max(top + side, 0), max(left, 0):max(left + side, 0)]
        if window.sum() >= share * total * (1 - 1e-12):
            return side
    return 2 * max(height, width)
