"""What a unit wants: gradient ascent on the input image, kept natural-looking by simple priors.

Three regularisers, each optional (Yosinski et al., 2015, "Understanding neural networks through
deep visualization"; Olah et al., 2017, "Feature visualization"):

* L2 decay pulls pixels towards mid-grey, so only pixels that help the unit move away from it;
* jitter shifts the image by a few random pixels every step, so the picture cannot exploit one
  exact alignment with the pooling grid (the cause of high-frequency "checkerboard" noise);
* blur smooths the image every few steps, suppressing frequencies the unit barely uses.

When the layer asked for is a ReLU, the objective reads the ReLU's *input* (``pre_relu=True``):
a unit that is off everywhere on the grey starting image would otherwise get no gradient at all
and stay grey forever.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from torch import nn

from ..architecture.naming import features_of
from .feature_maps import capture_activations, resolve_layer


@dataclass
class MaximisedImages:
    images: torch.Tensor        # (channels, 3, size, size) RGB in [0, 1]
    layers: list                # the layer each image maximises
    channels: torch.Tensor      # the channel each image maximises
    start_activation: torch.Tensor  # objective on the grey starting images
    final_activation: torch.Tensor  # objective on the returned images (no jitter)


def gaussian_blur(images, sigma):
    """Blur ``(N, C, H, W)`` images with a Gaussian of standard deviation ``sigma`` pixels."""
    if sigma <= 0:
        return images
    radius = max(1, int(round(2 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)


def channel_objective(activation, channels, where="mean"):
    """One number per image: channel ``channels[i]`` of image ``i``, averaged over positions
    (``where="mean"``) or read at the centre of the map (``where="centre"``)."""
    picked = activation[torch.arange(len(channels), device=activation.device), channels.to(activation.device)]
    if where == "mean":
        return picked.flatten(1).mean(dim=1)
    if where == "centre":
        height, width = picked.shape[-2:]
        return picked[:, height // 2, width // 2]
    raise ValueError(f"where={where!r}: use 'mean' or 'centre'.")


def maximise_activation(model, layer, channels, size=32, steps=128, lr=0.05, l2=1e-3, jitter=2,
                        blur_every=4, blur_sigma=0.5, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                        where="mean", seed=0, pre_relu=True):
    """Images of ``size``x``size`` pixels that make each of ``channels`` at ``layer`` fire strongly.

    One image per channel, all optimised together with Adam on the pixels (kept in [0, 1]);
    ``layer`` is one layer for all channels or a list with one layer per channel (so units of
    several blocks share one forward pass). ``mean``/``std`` are the model's input normalisation. Set ``l2=0``, ``jitter=0`` and
    ``blur_every=0`` to see the unregularised result. ``pre_relu``: for a ReLU layer, maximise
    its input instead (see the module docstring); the returned activations are then pre-ReLU
    values. Returns a :class:`MaximisedImages`.
    """
    if size < getattr(model, "min_input_size", 1):
        raise ValueError(f"size={size} is smaller than the {model.min_input_size} pixels this model needs.")
    device = next(model.parameters()).device
    channels = torch.as_tensor(channels, device=device).reshape(-1)
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer] * len(channels)
    if len(layers) != len(channels):
        raise ValueError(f"Give one layer per channel: {len(layers)} layers, {len(channels)} channels.")
    features = features_of(model)
    groups = {}
    for i, name in enumerate(layers):
        index = resolve_layer(model, name)
        if pre_relu and isinstance(features[index], nn.ReLU) and index > 0:
            index -= 1
        groups.setdefault(index, []).append(i)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    start = 0.5 + 0.01 * torch.randn(len(channels), 3, size, size, generator=generator)
    pixels = start.to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([pixels], lr=lr)

    def objective(images):
        captured = capture_activations(model, (images - mean) / std, list(groups), detach=False)
        values = torch.zeros(len(channels), device=device)
        for name, rows in groups.items():
            rows = torch.tensor(rows, device=device)
            values = values.index_put((rows,), channel_objective(captured[name][rows], channels[rows], where))
        return values

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            start_activation = objective(pixels).cpu()
        for step in range(steps):
            shifted = pixels
            if jitter:
                dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
                shifted = torch.roll(pixels, shifts=(dy, dx), dims=(2, 3))
            loss = -objective(shifted).sum() + l2 * ((pixels - 0.5) ** 2).sum()
            optimiser.zero_grad(set_to_none=True)
            (gradient,) = torch.autograd.grad(loss, pixels)
            pixels.grad = gradient
            optimiser.step()
            with torch.no_grad():
                if blur_every and (step + 1) % blur_every == 0:
                    pixels.copy_(gaussian_blur(pixels, blur_sigma))
                pixels.clamp_(0, 1)
        with torch.no_grad():
            final_activation = objective(pixels).cpu()
    finally:
        model.train(was_training)
    return MaximisedImages(pixels.detach().cpu(), layers, channels.cpu(), start_activation, final_activation)
