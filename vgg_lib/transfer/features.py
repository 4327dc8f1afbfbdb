"""Block features as the paper aggregates them: one vector per image and block.

Appendix B of the paper applies the network densely over an image and averages the penultimate
layer's activations over all locations (global average pooling), so that an image of any size
gives one descriptor. Here the same aggregation is applied to the output of every block, what
the block hands on after its max-pooling (``pool1`` ... ``pool5``): the map of block ``b``,
``(C_b, H_b, W_b)``, becomes its ``C_b`` channel means. For a 32 x 32 image ``pool5`` is a single
position, and its vector is exactly what the compact head's linear layer reads: the paper's
"penultimate layer" (``penultimate_features`` reads it for any head).
"""

import torch

from ..architecture.naming import feature_names
from ..inspection.feature_maps import summarise_layers


def block_outputs(model):
    """The names of the poolings that end the blocks, in order: ``pool1``, ``pool2``, ..."""
    return [name for name in feature_names(model).values() if name.startswith("pool")]


@torch.no_grad()
def pooled_block_features(model, images, normalize, layers=None, batch_size=500):
    """``{block end name: (N, C) float32 tensor on the CPU}``: the global average over positions
    of every block's output for each of ``images`` (uint8 ``(N, 3, H, W)``).

    ``normalize`` turns a uint8 batch into the model's input (``data.normalize`` of the data
    the model was trained on); ``layers``: names of layers to pool (default: every block's
    output, ``block_outputs``).
    One forward pass per batch, in fp32, the model in evaluation mode (batch norm uses its
    running statistics, so an image's features do not depend on its batch)."""
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"pooled_block_features takes uint8 images (N, 3, H, W), not a "
                         f"{images.dtype} tensor of shape {tuple(images.shape)}.")
    layers = block_outputs(model) if layers is None else list(layers)
    return summarise_layers(model, images, layers, lambda a: a.float().mean(dim=(2, 3)),
                            normalize, batch_size)


def pooled_dimensions(model):
    """``{block output name: length of its pooled feature vector}`` (its channel count)."""
    by_name = {name: index for index, name in feature_names(model).items()}
    dimensions = {}
    for name in block_outputs(model):
        convolutions = [m for m in model.features[:by_name[name]] if isinstance(m, torch.nn.Conv2d)]
        dimensions[name] = convolutions[-1].out_channels
    return dimensions


@torch.no_grad()
def penultimate_features(model, images, normalize, batch_size=500):
    """``(N, D)`` float32 on the CPU: what the classifier's last linear layer reads for each of
    ``images`` (uint8), the paper's "penultimate layer" (Appendix B). For the paper's head that
    is fc7 after its ReLU (4,096 numbers at full width); for the compact head it is ``pool5``,
    globally average-pooled."""
    last = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)][-1]
    device = next(model.parameters()).device
    captured, found = [], []
    handle = last.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(normalize(images[start:start + batch_size].to(device)))
            found.append(captured.pop().float().cpu())
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(found)
