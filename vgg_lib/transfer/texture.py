"""Style as feature statistics (Gatys, Ecker & Bethge, 2015): Gram matrices, and a texture
synthesised from noise by matching them.

The Gram matrix of a feature map ``F`` (``C`` channels x ``M`` positions) is ``G = F F^T / M``:
entry ``(i, j)`` is how strongly channels ``i`` and ``j`` fire *together*, averaged over all
positions. Every trace of *where* something was is summed away, which is what makes it a
description of texture (or "style") rather than of a scene. Gatys et al. start from white noise
and change the pixels with L-BFGS until the noise image's Gram matrices, at several layers of
VGG-19, match an exemplar's; they replace max pooling by average pooling, which they found gives
slightly better results. ``synthesise_texture`` does the same with any VGG of this book.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..architecture.naming import feature_names
from ..inspection.feature_maps import capture_activations

MAX_ITERATIONS = 200   # L-BFGS iterations of one synthesis


def gram_matrix(features):
    """``(N, C, H, W)`` feature maps -> ``(N, C, C)`` Gram matrices, averaged over the ``H x W``
    positions (so that images of different sizes are comparable)."""
    if features.dim() != 4:
        raise ValueError(f"gram_matrix takes feature maps (N, C, H, W), not shape "
                         f"{tuple(features.shape)}.")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def first_relu_of_each_block(model):
    """The names ``relu1_1``, ``relu2_1``, ...: the first ReLU of every block, the layers Gatys
    et al. (2016) read style from (``conv1_1`` ... ``conv5_1``, after their ReLU)."""
    return [name for name in feature_names(model).values()
            if name.startswith("relu") and name.endswith("_1")]


def with_average_pooling(model):
    """A copy of ``model`` in evaluation mode whose 2x2 max-poolings are 2x2 average poolings."""
    copied = copy.deepcopy(model).eval()
    for index, module in enumerate(copied.features):
        if isinstance(module, nn.MaxPool2d):
            copied.features[index] = nn.AvgPool2d(kernel_size=2, stride=2)
    for parameter in copied.parameters():
        parameter.requires_grad_(False)
    return copied


def texture_loss(model, x, targets):
    """Sum over the layers of ``targets`` (``{layer: (C, C) Gram matrix}``) of the mean squared
    difference between ``x``'s Gram matrix and the target, divided by 4 (Gatys et al.'s E_l)."""
    grams = capture_activations(model, x, list(targets), detach=False)
    return sum(((gram_matrix(grams[layer]) - target) ** 2).mean() / 4
               for layer, target in targets.items())


@dataclass
class Texture:
    image: torch.Tensor   # (3, H, W), 0..1: the synthesised texture, clipped to the pixel range
    losses: list          # texture loss of the noise, then after every ``chunk`` of iterations
    final_loss: float     # texture loss of ``image`` (after clipping)
    layers: list


def synthesise_texture(model, exemplar, mean, std, layers=None, size=None, seed=0,
                       iterations=MAX_ITERATIONS, chunk=10, average_pooling=True):
    """An image of ``size`` (``(H, W)``; default the exemplar's) whose Gram matrices at
    ``layers`` (default: ``first_relu_of_each_block``) match those of ``exemplar`` (one image,
    ``(3, h, w)``, uint8 or 0..1), found by L-BFGS on the pixels from uniform noise drawn with
    ``seed``; the loss is recorded every ``chunk`` iterations. The model sees
    ``(x - mean) / std``; ``average_pooling`` swaps its max-poolings for average poolings first,
    as Gatys et al. did."""
    if exemplar.dim() != 3:
        raise ValueError(f"synthesise_texture takes one exemplar image (3, H, W), not shape "
                         f"{tuple(exemplar.shape)}.")
    net = with_average_pooling(model) if average_pooling else copy.deepcopy(model).eval()
    layers = first_relu_of_each_block(net) if layers is None else list(layers)
    device = next(net.parameters()).device
    mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=device).view(1, -1, 1, 1)
    target = exemplar.float().div(255 if exemplar.dtype == torch.uint8 else 1).unsqueeze(0)
    with torch.no_grad():
        maps = capture_activations(net, (target.to(device) - mean) / std, layers)
        targets = {layer: gram_matrix(maps[layer])[0] for layer in layers}
    height, width = size or tuple(exemplar.shape[-2:])
    noise = torch.rand((1, 3, height, width), generator=torch.Generator().manual_seed(seed))
    x = ((noise.to(device) - mean) / std).requires_grad_(True)
    optimiser = torch.optim.LBFGS([x], lr=1, max_iter=chunk, history_size=20,
                                  tolerance_grad=1e-12, tolerance_change=1e-15,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = texture_loss(net, x, targets)
        loss.backward()
        return loss

    losses = []
    with torch.enable_grad():
        losses.append(texture_loss(net, x, targets).item())
        for _ in range(max(1, iterations // chunk)):
            optimiser.step(closure)   # L-BFGS keeps its history from one call to the next
            losses.append(texture_loss(net, x, targets).item())
    with torch.no_grad():
        image = (x * std + mean).clamp(0, 1)
        final = texture_loss(net, (image - mean) / std, targets).item()
    return Texture(image[0].cpu(), losses, final, layers)
