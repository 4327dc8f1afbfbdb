"""Two tasks from one data set that share no class: CIFAR-10's six animals (the source task a
network is pretrained on) and its four vehicles (the target task its features are tried on).

``class_split(data, classes)`` keeps the images of ``classes`` in every split (training,
validation, test) and numbers their labels 0..k-1 in the order given; ``labelled_subset`` draws a
label budget (``per_class`` training images of every class) from the target's training images.
"""

import numpy as np
import torch

from ..training.data import CIFAR10Data, balanced_subset, channel_stats

SOURCE_CLASSES = ("bird", "cat", "deer", "dog", "frog", "horse")   # the six animals
TARGET_CLASSES = ("airplane", "automobile", "ship", "truck")       # the four vehicles


def class_split(data, classes, mean=None, std=None):
    """``data`` (a ``CIFAR10Data``) restricted to the images of ``classes`` (names), in every
    split, with labels renumbered 0..len(classes)-1 in the order of ``classes``.

    ``mean``/``std``: the normalisation the result carries; by default the per-channel mean and
    standard deviation of its own training images (as ``load_cifar10`` computes them). A target
    task fed to a network pretrained on a source task takes the *source's* normalisation: that
    is the input the network's first layer was trained on."""
    classes = tuple(classes)
    known = list(data.classes)
    unknown = [c for c in classes if c not in known]
    if unknown or not classes:
        named = ", ".join(repr(c) for c in unknown) or "no class"
        raise ValueError(f"class_split: {named} {'are' if len(unknown) > 1 else 'is'} not among "
                         f"this data's classes ({', '.join(known)}); name at least one of them.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"class_split: {classes} names a class twice.")
    old = torch.tensor([known.index(c) for c in classes], device=data.y_train.device)
    tensors = {}
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        match = y[:, None] == old[None, :]          # (N, k): which kept class each image is
        keep = match.any(dim=1)
        tensors[f"x_{split}"] = x[keep]
        tensors[f"y_{split}"] = match[keep].int().argmax(dim=1).to(y.dtype)
    if mean is None or std is None:
        own_mean, own_std = channel_stats(tensors["x_train"].permute(0, 2, 3, 1).cpu().numpy())
        mean = own_mean if mean is None else mean
        std = own_std if std is None else std
    return CIFAR10Data(tensors["x_train"], tensors["y_train"], tensors["x_test"],
                       tensors["y_test"], list(classes), data.source, tuple(mean), tuple(std),
                       tensors["x_val"], tensors["y_val"])


def shared_classes(first, second):
    """The class names two tasks have in common (none, for the source and target split)."""
    return sorted(set(first) & set(second))


def labelled_indices(data, per_class, seed):
    """Indices (sorted) into ``data``'s training images of ``per_class`` images of every class,
    chosen at random with ``seed`` (None: all of them). For one seed the choices are nested: the
    10 images per class of a budget are among its 100."""
    if per_class is None:
        return torch.arange(len(data.y_train), device=data.y_train.device)
    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise ValueError(f"per_class={per_class!r}: a whole number of images per class >= 1, "
                         "or None for all of them.")
    counts = torch.bincount(data.y_train.cpu(), minlength=len(data.classes))
    if per_class > int(counts.min()):
        raise ValueError(f"per_class={per_class:,}, but the smallest class has only "
                         f"{int(counts.min()):,} training images; ask for fewer, or None for all.")
    keep = balanced_subset(data.y_train.cpu().numpy(), per_class * len(data.classes), seed)
    return torch.from_numpy(np.asarray(keep)).to(data.y_train.device)


def labelled_subset(data, per_class, seed):
    """``data`` with only the training images ``labelled_indices`` picks (None: ``data``
    itself). Validation and test images and the normalisation stay as they are."""
    if per_class is None:
        return data
    index = labelled_indices(data, per_class, seed)
    return CIFAR10Data(data.x_train[index], data.y_train[index], data.x_test, data.y_test,
                       list(data.classes), data.source, data.mean, data.std,
                       data.x_val, data.y_val)
