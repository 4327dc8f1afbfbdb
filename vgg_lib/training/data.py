"""``CIFAR10Data``: images as uint8 tensors on the training device, and what every data object
offers the training loop and the evaluation engine.

``fit`` and ``evaluate`` take any object with this interface (``FolderData``, in
``vgg_lib.training.folders``, has it for folders of images): ``device``, ``classes``, ``source``,
``mean`` and ``std``; ``image_size`` (None when the images differ in size);
``train_images`` and ``split_size(name)``; ``normalize(images)``; ``fingerprint()`` (what the
data is, by content); ``check(model, recipe)`` (refuse, before training, what cannot work);
``training_batches(recipe, generator, ...)`` (one epoch's augmented batches at a time); and
``evaluation_batches(split, ...)``. ``vgg_lib.training.cifar10`` loads CIFAR-10 into one.
"""

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .augment import (alternating_flip_sides, alternating_flips, apply_colour_shift,
                      apply_crop_flip, apply_scale_crop_flip, colour_shift_params, crop_flip_params,
                      normalize as normalize_images, scale_crop_flip_params)

ENV_NPZ = "VGG_CIFAR10_NPZ"
ENV_DATA_DIR = "VGG_DATA_DIR"
SPLITS = ("train", "val", "test")


class DataError(RuntimeError):
    """The data could not be found, downloaded or read; the message says what to do."""


def data_dir():
    """Where the downloaded dataset and its cache live: ``VGG_DATA_DIR``, else ``~/.cache/vgg_book``."""
    return Path(os.environ.get(ENV_DATA_DIR) or Path.home() / ".cache" / "vgg_book").expanduser()


@dataclass
class CIFAR10Data:
    """Images as uint8 (N, 3, 32, 32) tensors and labels as int64 (N,) tensors, all on one device.

    Three splits: ``train`` (what the network learns from), ``val`` (a validation split carved
    from CIFAR-10's training images: every choice of hyperparameter, schedule or checkpoint is
    made on it) and ``test`` (CIFAR-10's test images: evaluated once per reported run, at the
    end). ``x_val`` is empty when no validation split was asked for."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list
    source: str
    mean: tuple = field(default=(0.0, 0.0, 0.0))
    std: tuple = field(default=(1.0, 1.0, 1.0))
    x_val: torch.Tensor = None
    y_val: torch.Tensor = None

    def __post_init__(self):
        if self.x_val is None:
            self.x_val = self.x_train[:0]
            self.y_val = self.y_train[:0]

    def split(self, name):
        """(images, labels) of the split ``name``: "train", "val" or "test"."""
        if name not in SPLITS:
            raise ValueError(f"split={name!r}; choose 'train', 'val' or 'test'.")
        if name == "val" and not len(self.x_val):
            raise ValueError("This data has no validation split: load it with "
                             "load_cifar10(..., validation=5000), for example.")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    @property
    def device(self):
        return self.x_train.device

    @property
    def image_size(self):
        """The side of the (square) images: 32 for CIFAR-10."""
        return self.x_train.shape[-1]

    @property
    def train_images(self):
        return len(self.x_train)

    def split_size(self, name):
        return len(getattr(self, f"x_{name}"))

    def normalize(self, images, channels_last=False, dtype=torch.float32):
        """uint8 images -> float tensor with this dataset's per-channel mean 0 and std 1."""
        return normalize_images(images, self.mean, self.std, channels_last=channels_last, dtype=dtype)

    def to(self, device):
        return CIFAR10Data(self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                           self.y_test.to(device), list(self.classes), self.source, self.mean,
                           self.std, self.x_val.to(device), self.y_val.to(device))

    def __repr__(self):
        # The folders are left out (``source`` keeps them): they differ from machine to machine,
        # and a stored notebook output that prints this must read the same on every one.
        return (f"CIFAR10Data({len(self.x_train):,} train / {len(self.x_val):,} validation / "
                f"{len(self.x_test):,} test images, {tuple(self.x_train.shape[1:])} uint8 on "
                f"{self.device}, source: {without_folders(self.source)})")

    def fingerprint(self):
        """What the data is, by content and never by where it was read from: the number and a
        sha256 of the images and labels of every split, and the normalisation."""
        splits = {}
        for name in SPLITS:
            images, labels = getattr(self, f"x_{name}"), getattr(self, f"y_{name}")
            splits[name] = (len(images), tensor_digest(images, labels.to(torch.int64)))
        return data_fingerprint(splits, self.mean, self.std)

    # --- what fit needs ---------------------------------------------------------------
    def check(self, model, recipe):
        """A clear error, before anything is trained, for what ``fit`` cannot use."""
        check_normalisation(self.mean, self.std, "this data (its mean and std)")
        images, labels = self.x_train, self.y_train
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(f"data.x_train is a {images.dtype} tensor of shape {tuple(images.shape)}; "
                             "fit expects uint8 images of shape (N, C, H, W), as load_cifar10 gives.")
        if len(labels) != len(images) or len(labels) == 0:
            raise ValueError(f"data has {len(images)} training images and {len(labels)} labels; "
                             "fit needs one label per image, and at least one image.")
        check_labels(model, int(labels.max()), self.classes, images.shape[1])
        side = images.shape[-1]
        if recipe.crop is not None and recipe.crop != side and recipe.scale_jitter is None:
            raise ValueError(f"crop={recipe.crop} on {side}-pixel images: pad-and-crop keeps the "
                             f"images' size; a smaller crop needs scale jittering "
                             f"(scale_jitter=(S_min, S_max) with S_min >= {recipe.crop}).")
        padding = recipe.crop_padding
        if recipe.augment and recipe.scale_jitter is None and padding * 2 >= side:
            raise ValueError(f"crop_padding={padding} on {side}-pixel images: a random crop could "
                             f"then hold as little as {max(0, side - padding)} of the {side} rows "
                             "and of the columns, the rest zero padding: half of the image or less "
                             "along each axis, nothing at all from a padding of the whole side on. "
                             f"Use a padding below half the images' side (at most "
                             f"{(side - 1) // 2}; CIFAR's usual 4).")
        crop = recipe.crop or side
        if recipe.scale_jitter is not None and recipe.scale_jitter[0] < crop:
            raise ValueError(f"scale_jitter={recipe.scale_jitter}: the smallest scale must be at "
                             f"least the {crop}-pixel crop (the crops keep that size), e.g. "
                             f"scale_jitter=({crop}, {crop * 3 // 2}).")

    def training_batch(self, index, recipe, generator, channels_last=False, share=None, flips=None):
        """(normalised images, labels) of one training batch: the training images at ``index``
        (the whole global batch), augmented as ``recipe`` says with random numbers from
        ``generator``; with ``recipe.alternating_flip`` the flip flags are not drawn but
        ``flips`` (``training_batches`` gives them). The random numbers are drawn for the whole
        global batch, as one process draws them; ``share`` (data parallelism) then keeps this
        process's share of the indices and of the numbers (and flips), so N processes together
        see what one would. This is the
        whole data path of ``fit`` (``benchmarks/training_speed.py`` times it).
        ``index_select`` rather than ``x_train[index]``: the same images, but on the book's
        2-core test machine 0.015 ms instead of 0.28 ms for a batch of 128."""
        share = share or (lambda *tensors: tensors)
        crop = recipe.crop or self.image_size
        alternating = recipe.augment and recipe.alternating_flip
        if alternating and (flips is None or len(flips) != len(index)):
            raise ValueError("alternating_flip=True: give the batch's flip flags (flips=, one per "
                             "image; training_batches computes them from each image's side).")
        if recipe.augment and recipe.scale_jitter is not None:
            drawn = scale_crop_flip_params(len(index), *recipe.scale_jitter, crop,
                                           flip=not alternating, generator=generator)
        elif recipe.augment:
            drawn = crop_flip_params(len(index), padding=recipe.crop_padding, flip=not alternating,
                                     generator=generator)
        else:
            drawn = ()
        if alternating:
            drawn = (*drawn[:-1], flips)
        alpha = (colour_shift_params(len(index), recipe.colour_shift, generator),) if recipe.colour_shift else ()
        index, *drawn = share(index, *drawn, *alpha)
        alpha = drawn.pop() if alpha else None
        images, labels = self.x_train.index_select(0, index), self.y_train.index_select(0, index)
        if recipe.augment and recipe.scale_jitter is not None:
            images = apply_scale_crop_flip(images, *drawn, crop)
        elif recipe.augment:
            images = apply_crop_flip(images, *drawn, padding=recipe.crop_padding,
                                     channels_last=channels_last)
        x = self.normalize(images, channels_last=channels_last)
        return apply_colour_shift(x, alpha, self.std), labels

    def training_batches(self, recipe, generator, *, channels_last=False, share=None, workers=None):
        """``epoch -> iterator`` over the batches of one epoch: a new order of the training
        images from ``generator``, then ``training_batch`` for each whole batch (an incomplete
        last batch is dropped). ``workers`` is for folders of images; tensors need none.
        With ``recipe.alternating_flip`` the side each image starts on is drawn here, once for
        the whole run, from ``generator`` (before any epoch's draws)."""
        batch_size = recipe.batch_size
        steps = self.train_images // batch_size
        sides = (alternating_flip_sides(self.train_images, generator).to(self.device)
                 if recipe.augment and recipe.alternating_flip else None)

        def epoch_batches(epoch):
            order = torch.randperm(self.train_images, generator=generator).to(self.device)
            for i in range(steps):
                index = order[i * batch_size:(i + 1) * batch_size]
                flips = None if sides is None else alternating_flips(sides, index, epoch)
                yield self.training_batch(index, recipe, generator, channels_last, share, flips)

        return epoch_batches

    def evaluation_batches(self, split, batch_size, prepare=None, workers=None, shard=None,
                           limit=None):
        """(uint8 images, labels) of the split ``split``, in batches, on the device: its first
        ``limit`` images (None: all), and of those every ``world_size``-th from ``rank`` when
        ``shard=(rank, world_size)``. ``prepare`` and ``workers`` are for folders of images."""
        if prepare is not None:
            raise ValueError("CIFAR's images all have one size; the protocol runs on the device.")
        images, labels = self.split(split)
        images, labels = images[:limit], labels[:limit]
        if shard is not None:
            images, labels = images[shard[0]::shard[1]], labels[shard[0]::shard[1]]
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size], labels[start:start + batch_size]


def check_labels(model, highest, classes, channels):
    """The checks every data object makes of a model: enough outputs for the labels, the right
    number of input channels, a name for every label."""
    spec = getattr(model, "spec", None)
    if spec is not None and highest >= spec.num_classes:
        raise ValueError(f"The labels go up to {highest}, but the model has {spec.num_classes} "
                         f"outputs (num_classes={spec.num_classes}); build it with "
                         f"num_classes={max(highest + 1, len(classes or ()))}.")
    if spec is not None and channels != spec.in_channels:
        raise ValueError(f"The images have {channels} channels but the model takes "
                         f"{spec.in_channels} (in_channels={spec.in_channels}).")
    if classes is not None and len(classes) <= highest:
        raise ValueError(f"data.classes names {len(classes)} classes but the labels go up to "
                         f"{highest}; give one name per label.")


def tensor_digest(*tensors):
    """sha256 (hex) of the bytes of ``tensors``, one after the other."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def data_fingerprint(splits, mean, std):
    """The one fingerprint format of the package: ``{split: {"images": n, "sha256": ...}}`` for
    train, val and test, and the normalisation ``mean`` and ``std``. Checkpoints and run
    records store it; resuming and reading a record compare it."""
    return {**{name: {"images": int(count), "sha256": digest} for name, (count, digest) in splits.items()},
            "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def without_folders(text):
    """``text`` with each absolute path shortened to ".../" and its last part:
    "offline file /work/shared/data/cifar10-full.npz" -> "offline file .../cifar10-full.npz"."""
    return re.sub(r"(?:[A-Za-z]:)?[\\/][^\s()]*[\\/]", ".../", text)


def balanced_subset(labels, size, seed):
    """Indices of ``size`` examples, classes taking turns, chosen at random with ``seed``."""
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < 1:
        raise ValueError(f"A subset needs at least one image, not {size}.")
    order = np.random.default_rng(seed).permutation(len(labels))
    shuffled = labels[order]
    rank = np.empty(len(labels), dtype=np.int64)  # position of each example within its class
    for c in np.unique(shuffled):
        members = np.flatnonzero(shuffled == c)
        rank[members] = np.arange(len(members))
    chosen = order[np.lexsort((shuffled, rank))[:size]]
    return np.sort(chosen)


def training_subset(data, images, seed=0):
    """``data`` with only the first ``images`` training images of a class-balanced order fixed
    by ``seed`` (nested: a smaller subset is part of a larger one). Validation and test images
    and the normalisation (mean, std of all of ``data``'s training images) stay as they are, so
    that only the number of training images changes. ``None``: ``data`` itself."""
    if images is None or images == len(data.x_train):
        return data
    if images > len(data.x_train):
        raise ValueError(f"A run asks for {images:,} training images but the data has "
                         f"{len(data.x_train):,}: load more (load_cifar10(train_images=...)) or "
                         "ask for fewer.")
    keep = balanced_subset(data.y_train.cpu().numpy(), images, seed)
    index = torch.from_numpy(keep).to(data.x_train.device)
    return CIFAR10Data(data.x_train[index], data.y_train[index], data.x_test, data.y_test,
                       list(data.classes), data.source, data.mean, data.std, data.x_val, data.y_val)


def channel_stats(x_hwc):
    """Per-channel mean and standard deviation of uint8 HWC images, scaled to 0..1; a
    ``DataError`` when a channel is constant (normalising would divide by zero)."""
    pixels = x_hwc.reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = tuple(float(v) for v in pixels.mean(0)), tuple(float(v) for v in pixels.std(0))
    check_normalisation(mean, std, f"the {len(x_hwc):,} training images")
    return mean, std


MIN_STD = 1e-4  # a 40th of one grey level (0..1 scale): below it a channel is constant


def check_normalisation(mean, std, where):
    """``DataError`` unless every channel's mean is finite and its std finite and positive."""
    bad = [f"{name} (mean {m:.3g}, std {s:.3g})" for name, m, s in zip("RGB", mean, std)
           if not (math.isfinite(m) and math.isfinite(s) and s >= MIN_STD)]
    if bad:
        raise DataError(
            f"Cannot normalise {where}: channel(s) {', '.join(bad)} do not vary, so dividing by "
            "their standard deviation gives NaN and training would 'diverge' at once. Every "
            "image has the same value there: the file holds blank or constant images. Check "
            "how it was made, or use more images (a larger train_images).")
