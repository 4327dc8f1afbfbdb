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

import math
import os
import re
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
        # The folders are left out (``source`` keeps them): they differ from machine to machine,
        # and a stored notebook output that prints this must read the same on every one.
        return (f"CIFAR10Data({len(self.x_train):,} train / {len(self.x_val):,} validation / "
                f"{len(self.x_test):,} test images, {tuple(self.x_train.shape[1:])} uint8 on "
                f"{self.device}, source: {without_folders(self.source)})")


def without_folders(text):
    """``text`` with each absolute path shortened to ".../" and its last part:
    "offline file /work/shared/data/cifar10-full.npz" -> "offline file .../cifar10-full.npz"."""
    return re.sub(r"(?:[A-Za-z]:)?[\\/][^\s()]*[\\/]", ".../", text)


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
            "how it was made, or use more images (a larger train_subset).")


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


def data_fingerprint(data, samples=256):
    """What a checkpoint remembers of the training images, to refuse resuming on other data:
    their number, where they came from, and a sha256 of all labels and an evenly spaced
    sample of ``samples`` images (a few hundred kilobytes hashed, whatever the dataset's size)."""
    import hashlib

    count = len(data.x_train)
    step = max(1, count // samples)
    digest = hashlib.sha256()
    digest.update(data.y_train.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    digest.update(data.x_train[::step].detach().cpu().contiguous().numpy().tobytes())
    return {"train_images": count, "source": str(data.source), "sha256": digest.hexdigest()[:16]}
