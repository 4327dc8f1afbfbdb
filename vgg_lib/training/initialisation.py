"""Where training starts: the paper's Gaussian, Glorot's and Kaiming's scalings, and the paper's
trick of starting a deep network from a trained shallower one.

Section 3.1 of the paper: weights drawn from a zero-mean normal distribution with "10^-2 variance"
(implemented here with a standard deviation ``std``, 0.01 by default, the reading most
reimplementations use), biases zero; deep configurations started from net A: "the first four
convolutional layers and the last three fully-connected layers", the layers in between random.
"""

import math

import torch
from torch import nn

from .diagnostics import weight_layers
from ..architecture.naming import feature_names
from ..architecture.model import initialise_weights

SCHEMES = ("paper", "glorot", "kaiming")


def initialise(model, scheme, std=0.01):
    """Re-initialise every convolution and linear layer of ``model`` in place; returns ``model``.

    * ``"paper"``:   weights ~ N(0, std^2), biases 0 (Section 3.1 of the paper)
    * ``"glorot"``:  Glorot & Bengio (2010) uniform, variance 2 / (fan_in + fan_out), biases 0
    * ``"kaiming"``: what ``vgg()`` does by default (torchvision's): Kaiming-normal convolutions
      (fan_out, ReLU gain), linear layers N(0, 0.01^2)

    Batch-norm layers are reset to scale 1, shift 0 and fresh running statistics. Draws from
    torch's global generator, so seed it first for a reproducible start.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown initialisation {scheme!r}. Choose one of: {', '.join(SCHEMES)}.")
    if scheme == "paper" and not (std > 0 and math.isfinite(std)):
        raise ValueError(f"std={std!r}: the paper's Gaussian needs a positive, finite standard deviation.")
    if scheme == "kaiming":
        initialise_weights(model)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and scheme != "kaiming":
            if scheme == "paper":
                nn.init.normal_(module.weight, 0.0, std)
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()
    return model


def width_matched_std(width, std=0.01):
    """The std that gives a ``width``-scaled VGG the per-layer signal gain of the full-width one.

    A layer multiplies the size of its input by about ``std * sqrt(fan_in)``; scaling every layer's
    channels by ``width`` scales ``fan_in`` by ``width``, so ``std / sqrt(width)`` keeps the gain.
    """
    if not width > 0:
        raise ValueError(f"width={width!r}: use the positive channel multiplier the model was built with.")
    return std / math.sqrt(width)


def _batch_norm_after(model, conv):
    """The BatchNorm2d directly after ``conv`` in ``model.features``, if there is one."""
    modules = list(model.features)
    for index, module in enumerate(modules[:-1]):
        if module is conv and isinstance(modules[index + 1], nn.BatchNorm2d):
            return modules[index + 1]
    return None


def _copy(target, source, what):
    target_state, source_state = target.state_dict(), source.state_dict()
    for key, value in source_state.items():
        if target_state[key].shape != value.shape:
            raise ValueError(
                f"Cannot copy {what}: {key} has shape {tuple(value.shape)} in the shallow net but "
                f"{tuple(target_state[key].shape)} in the deep one. Build both with the same "
                f"width, head and num_classes."
            )
    target.load_state_dict(source_state)


@torch.no_grad()
def initialise_from_shallower(deep, shallow, conv_layers=4, fc_layers=3):
    """Copy a trained shallower VGG's layers into a deeper one, as the paper did with net A.

    The first ``conv_layers`` convolutions of ``shallow`` go to the convolutions of ``deep``
    with the same paper name (net A's conv1_1, conv2_1, conv3_1, conv3_2 land on the deep net's
    conv1_1, conv2_1, conv3_1, conv3_2, which have the same shapes); the last ``fc_layers``
    linear layers (all that exist, for a one-layer head) go to the deep net's last linear layers.
    Batch-norm layers that follow a copied convolution in both nets are copied with it.
    Everything else in ``deep`` keeps its (random) initialisation.

    Returns the names of the copied layers, in order.
    """
    if shallow is deep:
        raise ValueError("deep and shallow are the same model; pass the trained shallower net as `shallow`.")
    deep_layers, shallow_layers = weight_layers(deep), weight_layers(shallow)
    shallow_convs = [n for n, (m, _) in shallow_layers.items() if isinstance(m, nn.Conv2d)]
    if not 0 <= conv_layers <= len(shallow_convs):
        raise ValueError(f"conv_layers={conv_layers}: the shallow net has {len(shallow_convs)} convolutions.")
    deep_convs = sum(isinstance(m, nn.Conv2d) for m, _ in deep_layers.values())
    if deep_convs < len(shallow_convs):
        raise ValueError(f"`deep` has {deep_convs} convolutions, fewer than `shallow`'s "
                         f"{len(shallow_convs)}: pass the deeper network first.")
    copied = []
    for name in shallow_convs[:conv_layers]:
        if name not in deep_layers:
            raise ValueError(f"The deep net has no layer {name!r} to receive the shallow net's {name}.")
        _copy(deep_layers[name][0], shallow_layers[name][0], name)
        deep_bn = _batch_norm_after(deep, deep_layers[name][0])
        shallow_bn = _batch_norm_after(shallow, shallow_layers[name][0])
        if deep_bn is not None and shallow_bn is not None:
            _copy(deep_bn, shallow_bn, f"the batch norm after {name}")
        copied.append(name)
    shallow_fcs = [n for n, (m, _) in shallow_layers.items() if isinstance(m, nn.Linear)]
    deep_fcs = [n for n, (m, _) in deep_layers.items() if isinstance(m, nn.Linear)]
    count = min(fc_layers, len(shallow_fcs))
    if count > len(deep_fcs):
        raise ValueError(f"The deep net has {len(deep_fcs)} linear layers, the shallow one "
                         f"{len(shallow_fcs)}: build both with the same head.")
    for source, target in zip(shallow_fcs[len(shallow_fcs) - count:], deep_fcs[len(deep_fcs) - count:]):
        _copy(deep_layers[target][0], shallow_layers[source][0], source)
        copied.append(target)
    return copied


@torch.no_grad()
def predicted_pre_activation_std(model, input_std=1.0):
    """``{name: std}`` for the ReLUs of ``model.features``: how large each ReLU's input should be
    at initialisation by the signal-propagation argument of Glorot & Bengio (2010) and He et al.
    (2015), for a network without batch norm.

    A convolution with ``fan_in`` inputs per output (``in_channels * kh * kw``) and zero-mean
    weights of mean square ``w2`` turns inputs of mean square ``x2`` into outputs of variance
    ``fan_in * w2 * x2``; a ReLU passes on half of a symmetric input's mean square. So each layer
    multiplies the standard deviation by ``sqrt(fan_in * w2 / 2)``. Ignored: biases (zero at
    initialisation), zero padding (at the border fewer inputs are real, pushing the measured values
    down, most on the 2x2 maps of the last block) and max-pooling (it keeps the largest of four
    values, pushing them up). Uses the model's actual weights, so it works for any initialisation.
    """
    names = feature_names(model)
    predicted, mean_square = {}, input_std ** 2
    for index, module in enumerate(model.features):
        if isinstance(module, nn.Conv2d):
            weight = module.weight.detach().float()
            variance = weight[0].numel() * weight.pow(2).mean().item() * mean_square
            predicted[names[index]] = math.sqrt(variance)
            mean_square = variance / 2
    return predicted
