"""CIFAR-10: where its images come from, checked, and ``load_cifar10``.

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

import math
import numbers
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic_write import write_atomically
from ..device import choose_device
from .data import (ENV_NPZ, CIFAR10Data, DataError, balanced_subset, channel_stats, data_dir)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
CACHE_NAME = "cifar10.npz"
REQUIRED_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


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
    problems += class_name_problems(arrays.get("classes"), arrays.get("y_train"), arrays.get("y_test"))
    if problems:
        raise DataError(
            f"{where} is not a usable CIFAR-10 file: " + "; ".join(problems) + ". "
            "Expected arrays x_train, y_train, x_test, y_test as described in "
            "shared/data/README.md. Delete or replace the file (a cache is rebuilt on the next "
            "download)."
        )


def class_name_problems(classes, *label_arrays):
    """What is wrong with an npz file's optional ``classes`` array: one name per label 0..9."""
    if classes is None:
        return []
    if classes.ndim != 1 or classes.dtype.kind not in "US":
        return [f"classes has shape {classes.shape} and dtype {classes.dtype}, expected the "
                f"{len(CLASSES)} class names as strings"]
    labels = [y for y in label_arrays if y is not None and y.ndim == 1 and y.size
              and np.issubdtype(y.dtype, np.integer)]
    highest = max((int(y.max()) for y in labels), default=len(CLASSES) - 1)
    if len(classes) != len(CLASSES) or highest >= len(classes):
        return [f"classes lists {len(classes)} name(s) ({', '.join(map(str, classes[:12]))}) but "
                f"the labels go up to {highest} and CIFAR-10 has {len(CLASSES)} classes "
                f"({', '.join(CLASSES)}); store all {len(CLASSES)} names in label order, or "
                "leave the classes array out"]
    if len(set(classes.tolist())) != len(classes):
        return [f"classes repeats names: {', '.join(map(str, classes))}"]
    return []


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def available_memory():
    """Bytes of memory this machine can still give (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _read_npy_header(member):
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    return np.lib.format._read_array_header(member, version)  # 3.0: no public reader


def check_npz_file(path):
    """Before anything is allocated: ``path`` is an npz archive (not a single .npy array) and
    the sizes its arrays' headers claim fit in the file and in this machine's memory."""
    with open(path, "rb") as handle:
        start = handle.read(len(NPY_MAGIC))
    if start == NPY_MAGIC:
        raise DataError(
            f"{path} is a single NumPy array (.npy), not an .npz archive of named arrays. Save "
            "the four arrays together: np.savez('cifar10.npz', x_train=x_train, y_train=y_train, "
            f"x_test=x_test, y_test=y_test), and point {ENV_NPZ} at that file.")
    if start[:len(ZIP_MAGIC)] != ZIP_MAGIC:
        return  # not a zip at all: np.load's own error is reported by read_npz
    needed, claims = 0, []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            with archive.open(info) as member:
                shape, _, dtype = _read_npy_header(member)
                header_bytes = member.tell()
            claimed = math.prod(shape) * dtype.itemsize
            stored = info.file_size - header_bytes
            if claimed > stored:
                raise DataError(
                    f"{path}: the header of array {name!r} claims shape {shape} of {dtype} "
                    f"({_size(claimed)}), but the file holds only {_size(stored)} for it. The "
                    f"file is truncated or damaged; delete it and download again, or point "
                    f"{ENV_NPZ} at a good copy.")
            needed += claimed
            claims.append(f"{name} {shape}")
    free = available_memory()
    if free is not None and needed > free:
        raise DataError(
            f"{path} holds {_size(needed)} of arrays ({'; '.join(claims)}), more than the "
            f"{_size(free)} of memory this machine has free. Use a smaller file (the offline "
            "sample cifar10-mini.npz), close other programs or notebooks, or use a machine "
            "with more memory.")


def _size(n):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def read_npz(path):
    """The arrays of a CIFAR-10 npz file, checked; ``DataError`` if unreadable or malformed."""
    path = Path(path)
    try:
        check_npz_file(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, AttributeError,
            TypeError) as error:
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
    import torchvision  # here, not at the top: importing it costs seconds, and only a download needs it

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


def load_cifar10(device=None, train_images=None, test_images=None, seed=0, download=True,
                 validation=0):
    """CIFAR-10 (or an offline file) as a ``CIFAR10Data`` with every tensor on ``device``
    (default: ``choose_device()``, the GPU when there is one).

    ``validation``: the number of training images set aside, class-balanced and chosen with
    ``seed``, as the validation split (0: none). ``train_images`` / ``test_images``: keep that
    many of the remaining training images / of the test images, class-balanced, chosen with
    ``seed`` (None keeps all). The validation images are never among the training images. The
    normalisation mean and std are those of the training images that are kept.
    """
    for name, value, least, meaning in (
            ("validation", validation, 0, "the number of validation images, 0 or more"),
            ("train_images", train_images, 1, "a whole number of images, 1 or more, or None for all"),
            ("test_images", test_images, 1, "a whole number of images, 1 or more, or None for all"),
            ("seed", seed, 0, "a whole number, 0 or more")):
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least
        if not whole and not (value is None and least == 1):
            raise ValueError(f"{name}={value!r}: use {meaning}.")
    arrays, source = find_arrays(download=download)
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else list(CLASSES)
    x_all, y_all = arrays["x_train"], arrays["y_train"].astype(np.int64)
    if validation >= len(y_all):
        raise ValueError(f"validation={validation:,} leaves no training images: the file has "
                         f"{len(y_all):,}.")
    chosen = {"test": (arrays["x_test"], arrays["y_test"].astype(np.int64), test_images)}
    if validation:
        # A seed of its own, so that the validation split stays the same whatever else changes.
        held_out = balanced_subset(y_all, validation, seed=10_000 + seed)
        rest = np.setdiff1d(np.arange(len(y_all)), held_out)
        chosen["val"] = (x_all[held_out], y_all[held_out], None)
        x_all, y_all = x_all[rest], y_all[rest]
    chosen["train"] = (x_all, y_all, train_images)
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
    return data.to(choose_device() if device is None else device)
