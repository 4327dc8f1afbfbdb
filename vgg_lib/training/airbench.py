"""Five of airbench's training tricks (Keller Jordan's KellerJordan/cifar10-airbench, and
hlb-CIFAR10 before it) as recipe settings that ``fit`` applies to a plain VGG: the network, its
state-dict keys and its forward pass stay torchvision's; only how it is started and trained
changes. Each is a ``TrainConfig`` field, off by default:

* ``whiten_first_layer``: SGD on the first 3x3 convolution as if its weight were ``P @ Wh``,
  ``Wh`` the whitening of its input patches and ``P`` the trained matrix. Written out, SGD on
  ``P`` (with momentum, Nesterov's or not, and weight decay on ``P``) moves ``W = P @ Wh`` by
  the step SGD would take on ``W`` itself with the gradient ``g`` replaced by ``g @ M``,
  ``M = Wh^T Wh = (covariance + eps I)^-1``, and weight decay on ``W``. So the convolution
  stays an ``nn.Conv2d``: its weight starts at ``P @ Wh`` (``P`` random) and a gradient hook
  multiplies its gradient by ``M`` for the run (``precondition``).
* ``dirac_init``: identity ("dirac") initialisation of the first filters of every 3x3
  convolution (``initialise``).
* ``bn_scale``, ``bn_bias_lr``, ``bn_momentum``: batch-norm scales left out of the optimiser,
  a learning-rate multiplier of the batch-norm biases (``make_optimizer`` in ``loop.py``), the
  running statistics' momentum (``run_changes``).
* ``lookahead``: an exponential moving average of the weights that the network is reset to
  every few steps and takes at the end (``Lookahead``).
* ``alternating_flip``: every image mirrored in every other epoch (``augment.py``,
  ``data.py``).

What the recipe changes on the model only for the run (the gradient hook, frozen batch-norm
scales, the momentum) ``run_changes`` undoes when ``fit`` returns, so a second ``fit`` of the
same model starts from the model as it was.
"""

import math
from contextlib import contextmanager

import torch
from torch import nn

# --- the constants, in one place ----------------------------------------------------------
# The first layer's whitening (the tuning prototype's, issue #25; airbench uses 5,000 images too):
WHITENING_IMAGES = 5_000  # the first this many training images give the patch covariance
WHITENING_EPS = 5e-4      # added to its eigenvalues before dividing by their square roots
# Lookahead, the prototype's ema=(0.3, 0.95, 5) (airbench's values): from LOOKAHEAD_START of the
# run's steps on, every LOOKAHEAD_EVERY steps, the average moves towards the weights with
# rho = LOOKAHEAD_DECAY ** LOOKAHEAD_EVERY * (step / total) ** 3 and the weights are reset to it.
LOOKAHEAD_START = 0.3
LOOKAHEAD_DECAY = 0.95
LOOKAHEAD_EVERY = 5

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, BATCH_NORMS)]


# --- the first layer's whitening ------------------------------------------------------------

def first_layer(model):
    """The first module of ``model`` that holds parameters: the layer the images enter."""
    for module in model.modules():
        if next(module.parameters(recurse=False), None) is not None:
            return module
    return None


def check_recipe_fits(model, data, recipe):
    """A clear error, before anything is trained, when the model or the data cannot take the
    recipe's whitened first layer."""
    if not recipe.whiten_first_layer:
        return
    if not hasattr(data, "x_train"):
        raise ValueError(f"whiten_first_layer=True needs CIFAR's tensors (a CIFAR10Data, whose "
                         f"training images give the patch covariance), not a "
                         f"{type(data).__name__}: set whiten_first_layer=False for a folder of images.")
    layer, channels = first_layer(model), data.x_train.shape[1]
    if not (isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (3, 3)
            and layer.in_channels == channels and layer.groups == 1):
        found = (f"a {layer.kernel_size[0]}x{layer.kernel_size[1]} convolution of "
                 f"{layer.in_channels} channels in {layer.groups} group(s)"
                 if isinstance(layer, nn.Conv2d) else f"a {type(layer).__name__}")
        raise ValueError(f"whiten_first_layer=True whitens the 3x3 patches of the {channels}-channel "
                         f"images for a first layer that is a 3x3 convolution of them, but this "
                         f"model's first layer is {found}: use a VGG (its first layer is one), or "
                         "set whiten_first_layer=False.")


def patch_whitening(images, eps=WHITENING_EPS, size=3, chunk=500):
    """The (d, d) float64 matrix ``Wh``, d = channels x size^2, whose rows are the eigenvectors of
    the covariance of ``images``' size x size patches (every position, no padding), each divided
    by the square root of its eigenvalue + ``eps``, the largest eigenvalue first: the patches
    multiplied by ``Wh`` have (nearly) the identity as covariance. ``images``: normalised
    (N, C, H, W) floats; the sums run over ``chunk`` images at a time."""
    d = images.shape[1] * size * size
    total = torch.zeros(d, dtype=torch.float64)
    products = torch.zeros(d, d, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].cpu()
        patches = x.unfold(2, size, 1).unfold(3, size, 1)            # N, C, H', W', size, size
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, d).double()
        total += patches.sum(0)
        products += patches.T @ patches
        count += len(patches)
    mean = total / count
    covariance = products / count - torch.outer(mean, mean)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    return (eigenvectors / (eigenvalues + eps).sqrt()).T.flip(0)


def first_layer_whitening(data):
    """``patch_whitening`` of the first ``WHITENING_IMAGES`` normalised training images of
    ``data`` (a ``CIFAR10Data``)."""
    return patch_whitening(data.normalize(data.x_train[:WHITENING_IMAGES].cpu()))


def preconditioner(whitening):
    """``M = Wh^T Wh = (covariance + eps I)^-1``: SGD on ``P`` of ``W = P @ Wh`` moves ``W`` as
    SGD on ``W`` with its gradient ``g`` replaced by ``g @ M``."""
    return whitening.T @ whitening


def precondition(conv, whitening):
    """Register on ``conv.weight`` the hook that multiplies its gradient by ``preconditioner
    (whitening)``; returns the hook's handle (``handle.remove()`` takes it off)."""
    weight = conv.weight
    matrix = preconditioner(whitening).to(device=weight.device, dtype=weight.dtype)
    return weight.register_hook(lambda grad: (grad.flatten(1) @ matrix).reshape(grad.shape))


# --- the start of a run ---------------------------------------------------------------------

@torch.no_grad()
def initialise(model, recipe, whitening=None):
    """What the recipe changes in the model's initialisation at the start of a fresh run, after
    the model's own (and after ``seed_everything(recipe.seed)``: the random draws are the
    seed's): ``dirac_init`` sets the first min(out, in) filters of every 3x3 convolution to the
    identity (``nn.init.dirac_``), the first layer excepted when it is whitened;
    ``whiten_first_layer`` (``whitening`` = ``first_layer_whitening(data)``) sets the first
    layer's weight to ``P @ Wh`` with ``P ~ N(0, 2 / d)`` (Kaiming's scale for its d inputs).
    Its bias stays as it is."""
    first = first_layer(model)
    if recipe.dirac_init:
        for module in model.modules():
            if (isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (3, 3)
                    and not (recipe.whiten_first_layer and module is first)):
                weight = module.weight
                nn.init.dirac_(weight[:min(weight.shape[0], weight.shape[1])])
    if recipe.whiten_first_layer:
        d = whitening.shape[0]
        p = torch.randn(first.out_channels, d, dtype=torch.float64) * math.sqrt(2 / d)
        first.weight.copy_((p @ whitening).reshape(first.weight.shape))


@contextmanager
def run_changes(model, recipe, whitening=None):
    """For the duration of the ``with`` block (``fit``'s run): the first layer's gradient
    preconditioned (``whiten_first_layer``), the batch-norm scales frozen (``bn_scale=False``:
    no gradient, so no optimiser and no data-parallel reduction touches them), every batch
    norm's momentum set (``bn_momentum``). All undone at the end, however the block ends."""
    undo = []
    try:
        if recipe.whiten_first_layer:
            undo.append(precondition(first_layer(model), whitening).remove)
        for module in batch_norms(model):
            weight = module.weight
            if not recipe.bn_scale and weight is not None and weight.requires_grad:
                weight.requires_grad_(False)
                undo.append(lambda weight=weight: weight.requires_grad_(True))
            if recipe.bn_momentum is not None:
                undo.append(lambda module=module, momentum=module.momentum:
                            setattr(module, "momentum", momentum))
                module.momentum = recipe.bn_momentum
        yield
    finally:
        for step in reversed(undo):
            step()


# --- lookahead ------------------------------------------------------------------------------

class Lookahead:
    """airbench's lookahead over a run of ``total_steps`` optimiser steps: ``update(step)``
    after each step (counted from 1), ``finish()`` at the end of the run. The average covers
    every floating-point tensor of the state dict (the weights and the batch-norm running
    statistics); ``average`` (None until the first update) is what a checkpoint keeps so that
    a resumed run continues it exactly."""

    def __init__(self, model, total_steps, average=None):
        self.model, self.total_steps, self.average = model, total_steps, average

    def _state(self):
        return {name: value for name, value in self.model.state_dict().items()
                if value.is_floating_point()}

    @torch.no_grad()
    def update(self, step):
        if step < LOOKAHEAD_START * self.total_steps or step % LOOKAHEAD_EVERY:
            return
        state = self._state()
        if self.average is None:
            self.average = {name: value.clone() for name, value in state.items()}
            return
        rho = LOOKAHEAD_DECAY ** LOOKAHEAD_EVERY * (step / self.total_steps) ** 3
        for name, value in state.items():
            average = self.average[name]
            average.lerp_(value, 1 - rho)
            value.copy_(average)

    @torch.no_grad()
    def finish(self):
        """The network takes the average (none yet: it keeps its weights)."""
        if self.average is not None:
            for name, value in self._state().items():
                value.copy_(self.average[name])
