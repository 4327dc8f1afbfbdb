"""Block features as the paper aggregates them: one vector per image and block.

Appendix B of the paper applies the network densely over an image and averages the penultimate
layer's activations over all locations (global average pooling), so that an image of any size
gives one descriptor. Here the same aggregation is applied to the output of every block (the
last ReLU before its pooling, ``block_ends``): the feature map of block ``b``, ``(C_b, H_b, W_b)``,
becomes its ``C_b`` channel means. With the book's compact head, block 5's pooled vector is
exactly what the classifier reads: the paper's "penultimate layer".
"""

import torch

from ..inspection.feature_maps import block_ends, capture_activations


@torch.no_grad()
def pooled_block_features(model, images, normalize, layers=None, batch_size=500):
    """``{block end name: (N, C) float32 tensor on the CPU}``: the global average over positions
    of every block's output for each of ``images`` (uint8 ``(N, 3, H, W)``).

    ``normalize`` turns a uint8 batch into the model's input (``data.normalize`` of the data
    the model was trained on); ``layers``: names of layers to pool (default: every block end).
    One forward pass per batch, in fp32, the model in evaluation mode (batch norm uses its
    running statistics, so an image's features do not depend on its batch)."""
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"pooled_block_features takes uint8 images (N, 3, H, W), not a "
                         f"{images.dtype} tensor of shape {tuple(images.shape)}.")
    layers = list(block_ends(model)) if layers is None else list(layers)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pooled = {layer: [] for layer in layers}
    try:
        for start in range(0, len(images), batch_size):
            batch = normalize(images[start:start + batch_size].to(device))
            for layer, activation in capture_activations(model, batch, layers).items():
                pooled[layer].append(activation.float().mean(dim=(2, 3)).cpu())
    finally:
        model.train(was_training)
    return {layer: torch.cat(parts) for layer, parts in pooled.items()}


def pooled_dimensions(model):
    """``{block end name: length of its pooled feature vector}`` (its channel count)."""
    dimensions = {}
    for name, index in block_ends(model).items():
        convolutions = [m for m in model.features[:index + 1] if isinstance(m, torch.nn.Conv2d)]
        dimensions[name] = convolutions[-1].out_channels
    return dimensions
