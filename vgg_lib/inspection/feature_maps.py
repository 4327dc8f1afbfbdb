"""Reading a VGG's intermediate activations: layer names, block ends, hooks, strongest channels.

Every capture goes through forward hooks that are removed again before the function returns,
also when the forward pass raises, so a model never keeps a stale hook (or the memory it holds).
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..architecture.naming import feature_names, features_of


def model_input(mean, std, device, small_size=32):
    """A function: uint8 images (N, 3, H, W) -> the model's normalised float input on
    ``device``, with the per-channel ``mean`` and ``std`` the model was trained with (0..1
    pixel units). CIFAR-10's 32x32 images are enlarged to ``small_size`` first (bilinear), for a
    network trained on larger images."""
    mean = torch.tensor(list(mean), device=device).view(1, 3, 1, 1)
    std = torch.tensor(list(std), device=device).view(1, 3, 1, 1)

    def to_input(images):
        x = images.to(device).float() / 255
        if x.shape[-1] == 32 and small_size != 32:
            x = F.interpolate(x, size=small_size, mode="bilinear", align_corners=False)
        return (x - mean) / std

    return to_input


def block_ends(model):
    """``{name: index}`` of the last layer of every block before its pooling (e.g. ``relu3_3``).

    These are the feature maps a block hands on: full resolution of the block, all its channels.
    """
    features = features_of(model)
    names = feature_names(model)
    ends = {}
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d) and index > 0:
            ends[names[index - 1]] = index - 1
    return ends


def resolve_layer(model, layer):
    """The ``model.features`` index of ``layer``: an index, a name such as ``"relu3_3"``, or a module."""
    features = features_of(model)
    if isinstance(layer, nn.Module):
        for index, module in enumerate(features):
            if module is layer:
                return index
        raise ValueError("That module is not inside model.features; pass one of its layers.")
    if isinstance(layer, str):
        by_name = {name: index for index, name in feature_names(model).items()}
        if layer not in by_name:
            raise ValueError(f"No layer named {layer!r}. This model has: {', '.join(by_name)}.")
        return by_name[layer]
    if isinstance(layer, int) and -len(features) <= layer < len(features):
        return layer % len(features)
    raise ValueError(f"Layer {layer!r} is neither an index into model.features "
                     f"(0..{len(features) - 1}) nor a layer name such as 'relu3_3'.")


class _StopForward(Exception):
    """Raised by the last hook so that layers after the ones asked for never run."""


@contextmanager
def hooks_removed_afterwards(handles):
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def capture_activations(model, x, layers, detach=True):
    """Run ``x`` through ``model`` and return ``{layer: activation}`` for each of ``layers``.

    ``layers``: indices into ``model.features``, names (``"relu2_2"``) or modules; the keys of the
    result are the same objects. The forward pass stops after the deepest layer asked for, so
    asking for early layers is cheap. The activations are copies (safe from the in-place ReLU
    that follows a convolution); with ``detach=True`` they are detached and computed without
    autograd, with ``detach=False`` they stay in the graph, for gradients with respect to the input.
    """
    single = not isinstance(layers, (list, tuple))
    layers = [layers] if single else list(layers)
    if not layers:
        raise ValueError("Ask for at least one layer, e.g. capture_activations(model, x, ['relu1_2']).")
    indices = [resolve_layer(model, layer) for layer in layers]
    features = features_of(model)
    last = max(indices)
    captured = {}

    def make_hook(index):
        def hook(module, inputs, output):
            # A copy: an in-place ReLU after this layer would otherwise overwrite what we keep.
            captured[index] = output.detach().clone() if detach else output.clone()
            if index == last:
                raise _StopForward
        return hook

    with hooks_removed_afterwards([]) as handles:
        for index in sorted(set(indices)):
            handles.append(features[index].register_forward_hook(make_hook(index)))
        try:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not detach):
                features(x)
        except _StopForward:
            pass
    result = {layer: captured[index] for layer, index in zip(layers, indices)}
    return result[layers[0]] if single else result


def strongest_channels(activation, k=8, by="mean"):
    """Indices of the ``k`` channels with the largest activation, strongest first.

    ``activation``: ``(C, H, W)`` for one image, ``(N, C, H, W)`` for a batch (channels are then
    ranked by their average over the batch), or ``(N, C)`` scores such as those of
    :func:`max_activations`. ``by="mean"`` ranks by the spatial mean (how much of the image
    excites the channel), ``by="max"`` by the single strongest position.
    """
    if activation.dim() == 3:
        activation = activation.unsqueeze(0)
    elif activation.dim() == 2:
        activation = activation[:, :, None, None]
    if activation.dim() != 4:
        raise ValueError(f"Expected (C, H, W) or (N, C, H, W) activations, got shape {tuple(activation.shape)}.")
    flat = activation.flatten(2)
    if by == "mean":
        score = flat.mean(dim=2)
    elif by == "max":
        score = flat.amax(dim=2)
    else:
        raise ValueError(f"by={by!r}: use 'mean' or 'max'.")
    score = score.mean(dim=0)
    k = min(k, score.numel())
    return torch.argsort(score, descending=True, stable=True)[:k]


@torch.no_grad()
def max_activations(model, layers, images, normalize=None, batch_size=256):
    """Each channel's strongest response (maximum over positions) to every image.

    ``images``: ``(N, 3, H, W)``, uint8 or float; ``normalize`` turns a batch into the model's
    input (e.g. ``data.normalize``; default ``images.float()``). Returns ``{layer: (N, C)}`` on
    the CPU, all layers from one forward pass per batch.
    """
    single = not isinstance(layers, (list, tuple))
    layers = [layers] if single else list(layers)
    scores = summarise_layers(model, images, layers, lambda a: a.flatten(2).amax(dim=2),
                              normalize, batch_size)
    return scores[layers[0]] if single else scores


@torch.no_grad()
def summarise_layers(model, images, layers, summary, normalize=None, batch_size=256):
    """``{layer: tensor on the CPU}``: ``summary(activation)`` of each of ``layers`` for every
    image (``summary`` keeps the batch dimension first), all layers from one forward pass per
    batch of ``images``, the model in evaluation mode (its mode restored afterwards).
    ``normalize`` turns a batch into the model's input (default ``batch.float()``)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    found = {layer: [] for layer in layers}
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            batch = normalize(batch) if normalize is not None else batch.float()
            for layer, activation in capture_activations(model, batch, layers).items():
                found[layer].append(summary(activation).cpu())
    finally:
        model.train(was_training)
    return {layer: torch.cat(parts) for layer, parts in found.items()}


def top_k_images(scores, channels, k=9):
    """The ``k`` images that excite each of ``channels`` most, from ``scores`` of shape ``(N, C)``
    (see :func:`max_activations`). Returns ``(indices, values)``, both ``(len(channels), k)``, best first."""
    channels = torch.as_tensor(channels).reshape(-1)
    if k > scores.shape[0]:
        raise ValueError(f"k={k} but scores cover only {scores.shape[0]} images.")
    best = torch.sort(scores[:, channels].T, dim=1, descending=True, stable=True)
    return best.indices[:, :k], best.values[:, :k]
