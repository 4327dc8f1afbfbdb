"""CIFAR-10 as uint8 tensors on the training device.

Where the images come from, in this order:

1. the file named by the environment variable ``VGG_CIFAR10_NPZ``: offline copies of CIFAR-10,
   all of it (``cifar10-full.npz``, 50,000 training and 10,000 test images, what CI uses) or a
   sample (``cifar10-mini.npz``, 10,000 and 2,000); see ``shared/data/README.md``;
2. ``<data dir>/cifar10.npz``, a cache written by step 3 (data dir: ``VGG_DATA_DIR``, default
   ``~/.cache/vgg_book``);
3. torchvision's download of the real dataset (50,000 + 10,000 images, about 170 MB, needs
   internet once), converted to that cache.

Every file is checked before use (arrays present, shapes, dtypes, label range), so a truncated or
foreign file gives an error that says what is wrong instead of a half-loaded dataset.
"""

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic_write import write_atomically
from .augment import normalize as normalize_images

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
ENV_NPZ = "VGG_CIFAR10_NPZ"
ENV_DATA_DIR = "VGG_DATA_DIR"
CACHE_NAME = "cifar10.npz"
REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(RuntimeError):
    """CIFAR-10 could not be found, downloaded or read; the message says what to do."""


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
        if name not in ("train", "val", "test"):
            raise ValueError(f"split={name!r}; choose 'train', 'val' or 'test'.")
        if name == "val" and not len(self.x_val):
            raise ValueError("This data has no validation split: load it with "
                             "load_cifar10(..., validation=5000), for example.")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    @property
    def device(self):
        return self.x_train.device

    def normalize(self, images, channels_last=False, dtype=torch.float32):
        """uint8 images -> float tensor with this dataset's per-channel mean 0 and std 1."""
        return normalize_images(images, self.mean, self.std, channels_last=channels_last, dtype=dtype)

    def to(self, device):
        return CIFAR10Data(self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                           self.y_test.to(device), list(self.classes), self.source, self.mean,
                           self.std, self.x_val.to(device), self.y_val.to(device))

    def __repr__(self):
        return (f"CIFAR10Data({len(self.x_train):,} train / {len(self.x_val):,} validation / "
                f"{len(self.x_test):,} test images, {tuple(self.x_train.shape[1:])} uint8 on "
                f"{self.device}, source: {self.source})")


def data_dir():
    """Where the downloaded dataset and its cache live: ``VGG_DATA_DIR``, else ``~/.cache/vgg_book``."""
    return Path(os.environ.get(ENV_DATA_DIR) or Path.home() / ".cache" / "vgg_book").expanduser()


def validate_arrays(arrays, where):
    """Raise ``DataError`` listing every problem with a dict of CIFAR-10 arrays (HWC uint8)."""
    problems = [f"missing array {name!r}" for name in REQUIRED_ARRAYS if name not in arrays]
    for split in ("train", "test"):
        x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if x is not None:
            if x.dtype != np.uint8:
                problems.append(f"x_{split} has dtype {x.dtype}, expected uint8 (pixel values 0..255)")
            if x.ndim != 4 or tuple(x.shape[1:]) != (32, 32, 3):
                problems.append(f"x_{split} has shape {x.shape}, expected (N, 32, 32, 3) "
                                "(height, width, RGB)")
        if y is not None:
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                problems.append(f"y_{split} has shape {y.shape} and dtype {y.dtype}, "
                                "expected integer labels of shape (N,)")
            elif y.size and (y.min() < 0 or y.max() > 9):
                problems.append(f"y_{split} has labels from {y.min()} to {y.max()}, expected 0..9")
        if x is not None and y is not None and x.ndim >= 1 and y.ndim >= 1 and len(x) != len(y):
            problems.append(f"x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if x is not None and len(x) == 0:
            problems.append(f"x_{split} holds no images")
    if problems:
        raise DataError(
            f"{where} is not a usable CIFAR-10 file: " + "; ".join(problems) + ". "
            "Expected arrays x_train, y_train, x_test, y_test as described in "
            "shared/data/README.md. Delete or replace the file (a cache is rebuilt on the next "
            "download)."
        )


def read_npz(path):
    """The arrays of a CIFAR-10 npz file, checked; ``DataError`` if unreadable or malformed."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise DataError(
            f"Could not read {path} as an npz file ({type(error).__name__}: {error}). The file is "
            "truncated or not a NumPy .npz archive; delete it and download again, or point "
            f"{ENV_NPZ} at a good copy."
        ) from error
    validate_arrays(arrays, str(path))
    return arrays


def write_npz_atomic(path, arrays):
    """Write ``arrays`` to ``path`` via a temporary file in the same folder and ``os.replace``,
    so a killed process leaves either the old file or the complete new one."""
    return write_atomically(path, lambda handle: np.savez(handle, **arrays))


def download_cifar10(directory):
    """torchvision's CIFAR-10 (downloaded once into ``directory``) as HWC uint8 arrays."""
    import torchvision

    arrays = {}
    for split, train in (("train", True), ("test", False)):
        dataset = torchvision.datasets.CIFAR10(root=str(directory), train=train, download=True)
        arrays[f"x_{split}"] = np.ascontiguousarray(np.asarray(dataset.data, dtype=np.uint8))
        arrays[f"y_{split}"] = np.asarray(dataset.targets, dtype=np.uint8)
        arrays["classes"] = np.asarray(list(dataset.classes))
    return arrays


def find_arrays(download=True):
    """(arrays, description of the source), trying the sources in the order of the module docstring."""
    sample = os.environ.get(ENV_NPZ)
    if sample:
        path = Path(sample).expanduser()
        if not path.is_file():
            raise DataError(
                f"{ENV_NPZ} is set to {sample!r}, but there is no file there. Point it at the "
                "offline copy (cifar10-full.npz or cifar10-mini.npz, in shared/data beside the "
                "repository), or unset "
                "it to download the full dataset with torchvision."
            )
        return read_npz(path), f"offline file {path}"
    directory = data_dir()
    cache = directory / CACHE_NAME
    if cache.is_file():
        return read_npz(cache), f"torchvision download (cached in {cache})"
    if not download:
        raise DataError(f"No CIFAR-10 cache at {cache} and download=False. Set {ENV_NPZ} to the "
                        "offline sample or allow the download.")
    try:
        arrays = download_cifar10(directory)
    except Exception as error:  # no internet, proxy, disk full...: one message for all of them
        raise DataError(
            "CIFAR-10 is not available. Looked for: (1) the environment variable "
            f"{ENV_NPZ} (not set); (2) a cache at {cache} (not there); (3) torchvision's "
            f"download into {directory}, which failed with {type(error).__name__}: {error}. "
            "Fix: connect to the internet and run again (the download is about 170 MB, once), "
            f"or set {ENV_NPZ}=/path/to/cifar10-full.npz or cifar10-mini.npz (the offline copies in shared/data/ "
            "beside the repository), or set VGG_DATA_DIR to a folder that already holds "
            "cifar10.npz or torchvision's cifar-10-batches-py."
        ) from error
    validate_arrays(arrays, "torchvision's CIFAR10 dataset")
    write_npz_atomic(cache, arrays)
    return arrays, f"torchvision download (cached in {cache})"


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


def channel_stats(x_hwc):
    """Per-channel mean and standard deviation of uint8 HWC images, scaled to 0..1."""
    pixels = x_hwc.reshape(-1, 3).astype(np.float64) / 255.0
    return tuple(float(v) for v in pixels.mean(0)), tuple(float(v) for v in pixels.std(0))


def load_cifar10(device=None, train_subset=None, test_subset=None, seed=0, download=True,
                 validation=0):
    """CIFAR-10 (or an offline file) as a ``CIFAR10Data`` with every tensor on ``device``
    (default: ``choose_device()``, the GPU when there is one).

    ``validation``: the number of training images set aside, class-balanced and chosen with
    ``seed``, as the validation split (0: none). ``train_subset`` / ``test_subset``: keep that
    many of the remaining training images / of the test images, class-balanced, chosen with
    ``seed`` (None keeps all). The validation images are never among the training images. The
    normalisation mean and std are those of the training images that are kept.
    """
    if not isinstance(validation, int) or isinstance(validation, bool) or validation < 0:
        raise ValueError(f"validation={validation!r}: the number of validation images, 0 or more.")
    arrays, source = find_arrays(download=download)
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else list(CLASSES)
    x_all, y_all = arrays["x_train"], arrays["y_train"].astype(np.int64)
    if validation >= len(y_all):
        raise ValueError(f"validation={validation:,} leaves no training images: the file has "
                         f"{len(y_all):,}.")
    chosen = {"test": (arrays["x_test"], arrays["y_test"].astype(np.int64), test_subset)}
    if validation:
        # A seed of its own, so that the validation split stays the same whatever else changes.
        held_out = balanced_subset(y_all, validation, seed=10_000 + seed)
        rest = np.setdiff1d(np.arange(len(y_all)), held_out)
        chosen["val"] = (x_all[held_out], y_all[held_out], None)
        x_all, y_all = x_all[rest], y_all[rest]
    chosen["train"] = (x_all, y_all, train_subset)
    tensors = {}
    for split, (x, y, size) in chosen.items():
        keep = balanced_subset(y, size, seed)
        x, y = x[keep], y[keep]
        if split == "train":
            mean, std = channel_stats(x)
        # HWC -> CHW once, here; the training loop never converts again.
        tensors[f"x_{split}"] = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        tensors[f"y_{split}"] = torch.from_numpy(y)
    data = CIFAR10Data(**tensors, classes=classes, source=source, mean=mean, std=std)
    if device is None:
        from ..device import choose_device

        device = choose_device()
    return data.to(device)
