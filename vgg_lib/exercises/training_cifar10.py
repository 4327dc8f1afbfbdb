"""Checks for the exercises of the chapter "Training VGG on CIFAR-10"."""

import torch
import torch.nn.functional as F

from .registry import Exercise, register
from ..training.profiles import QUICK, train_flop_per_image


def smoothed_loss_floor(smoothing=0.1, classes=10):
    """The smallest cross-entropy torch's label-smoothed loss can reach: at the logits whose
    softmax equals the smoothed target distribution."""
    target = torch.full((1, classes), smoothing / classes, dtype=torch.float64)
    target[0, 0] += 1 - smoothing
    return F.cross_entropy(target.log(), torch.tensor([0]), label_smoothing=smoothing).item()


def quick_smoothing_floor():
    """The floor at the quick profile's label smoothing (the exercise's 0.2)."""
    return smoothed_loss_floor(QUICK["recipe"].label_smoothing)


def quick_epoch_flop():
    return QUICK["train_images"] * train_flop_per_image(QUICK["model"])


register(
    Exercise(
        id="training_cifar10/smoothing-floor",
        expected=quick_smoothing_floor,
        kind="number",
        rel_tol=0.005,
        hint="With smoothing 0.2 and 10 classes the target puts 0.82 on the true class and 0.02 on "
             "each other class. The loss is smallest when the model predicts exactly that "
             "distribution, and then it equals the distribution's entropy, -sum q log q.",
    ),
    Exercise(
        id="training_cifar10/epoch-flop",
        expected=quick_epoch_flop,
        kind="number",
        rel_tol=0.02,
        hint="Take the multiply-adds of one forward pass of the quick profile's model on a 32x32 "
             "image, count 2 FLOPs per multiply-add and 3 passes' worth for forward + backward, "
             "then multiply by the profile's number of training images.",
    ),
)
