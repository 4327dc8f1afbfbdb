"""``FolderData``: any folder of JPEGs in ``ImageFolder`` layout, trained with the paper's ImageNet
recipe (Section 3.1) by the same ``fit`` as CIFAR-10.

``ROOT/train/<class>/*.jpg`` and ``ROOT/val/<class>/*.jpg`` (torchvision's
``datasets.ImageFolder`` layout, as ImageNet is usually unpacked). Unlike CIFAR-10 (the whole
dataset as one tensor on the device), these images do not fit in memory: they are decoded and
augmented image by image in DataLoader worker processes, and batches of fixed-size uint8 crops
travel to the device, where they are normalised.

Training augmentation, as in the paper (the recipe's ``scale_jitter``, ``crop`` and
``colour_shift``):

* scale jittering: the image is resized so that its shorter side is S, drawn for every image
  uniformly from [S_min, S_max] (the paper: [256, 512], Section 3.1, "multi-scale training");
* a random ``crop`` x ``crop`` crop of the rescaled image (the paper: 224), flipped left-right
  with probability 1/2;
* the RGB colour shift of Krizhevsky et al. (2012), ``vgg_lib.training.augment``.

Every random number of an image comes from a generator seeded by (recipe seed, epoch, position
in the epoch's order), so the augmentation does not depend on the number of workers or of
processes, and a resumed run sees the same images as an uninterrupted one.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .augment import apply_colour_shift, normalize as normalize_images
from .data import DataError, check_labels, data_fingerprint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


# --- decoding and per-image transforms (these run in the DataLoader's worker processes) -------
# torchvision is imported inside them: importing it costs seconds, which CIFAR-10 runs and
# `import vgg_lib` should not pay.

def decode(path):
    """An image file as a uint8 (3, H, W) RGB tensor (torchvision.io: libjpeg-turbo, no PIL)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as error:
        raise DataError(f"Could not decode {path} as an image ({error}).") from error


def resize_shorter(image, size):
    """Resize a (3, H, W) uint8 image so its shorter side is ``size`` (antialiased bilinear)."""
    from torchvision.transforms.v2.functional import resize

    return resize(image, [size], antialias=True)


def centre_crop(image, crop):
    height, width = image.shape[1:]
    top, left = (height - crop) // 2, (width - crop) // 2
    return image[:, top:top + crop, left:left + crop].contiguous()


def train_transform(image, recipe, generator):
    """(crop, alpha): the paper's scale jittering, random crop and flip of one image, and the
    three colour-shift coefficients (applied on the device, batched). Without ``augment``: the
    evaluation's centre crop, no shift."""
    if not recipe.augment:
        return centre_crop(resize_shorter(image, recipe.eval_scale or recipe.crop), recipe.crop), torch.zeros(3)
    scale = int(torch.randint(recipe.scale_jitter[0], recipe.scale_jitter[1] + 1, (), generator=generator))
    image = resize_shorter(image, scale)
    height, width = image.shape[1:]
    top = int(torch.randint(0, height - recipe.crop + 1, (), generator=generator))
    left = int(torch.randint(0, width - recipe.crop + 1, (), generator=generator))
    image = image[:, top:top + recipe.crop, left:left + recipe.crop]
    if bool(torch.randint(0, 2, (), generator=generator)):
        image = image.flip(2)
    alpha = torch.randn(3, generator=generator) * recipe.colour_shift
    return image.contiguous(), alpha


def evaluation_transform(image, scale, crop):
    """What a protocol's views share, done in the workers: the shorter side rescaled to
    ``scale`` (None: as it is), then the centre ``crop`` (None: all of it)."""
    image = image if scale is None else resize_shorter(image, scale)
    return image if crop is None else centre_crop(image, crop)


class _TrainImages(torch.utils.data.Dataset):
    def __init__(self, samples, recipe):
        self.samples, self.recipe = samples, recipe

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, key):
        index, seed = key
        path, label = self.samples[index]
        generator = torch.Generator().manual_seed(seed)
        crop, alpha = train_transform(decode(path), self.recipe, generator)
        return crop, alpha, label


class _EvalImages(torch.utils.data.Dataset):
    def __init__(self, samples, prepare):
        self.samples, self.prepare = samples, prepare

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        return evaluation_transform(decode(path), *self.prepare), label


class GlobalBatches:
    """This process's share of every global batch of one epoch, as lists of (image index, image
    seed); the order and the seeds depend only on (seed, epoch), never on the process count."""

    def __init__(self, size, batch_size, seed, share=None):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.share, self.epoch = share, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.size // self.batch_size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        seeds = torch.randint(0, 2 ** 62, (self.size,), generator=generator)
        for i in range(self.size // self.batch_size):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            seed = seeds[i * self.batch_size:(i + 1) * self.batch_size]
            if self.share is not None:
                index, seed = self.share(index, seed)
            yield list(zip(index.tolist(), seed.tolist()))


def _loader(dataset, batch_sampler, workers, device):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                                       pin_memory=device.type == "cuda",
                                       persistent_workers=workers > 0)


# --- the data -------------------------------------------------------------------------------

@dataclass
class FolderData:
    """The (path, label) lists of ``root/train`` and ``root/val`` and their class names; batches
    go to ``device``. The interface of ``CIFAR10Data`` (``vgg_lib.training.data``)."""

    train: list
    val: list
    classes: list
    source: str
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    device: torch.device = torch.device("cpu")

    image_size = None  # the images differ in size

    def __repr__(self):
        return (f"FolderData({len(self.train):,} train / {len(self.val):,} val images, "
                f"{len(self.classes)} classes, from {self.source})")

    @property
    def train_images(self):
        return len(self.train)

    def split_size(self, name):
        return len(getattr(self, name, ()))

    def normalize(self, images, channels_last=False, dtype=torch.float32):
        return normalize_images(images, self.mean, self.std, channels_last=channels_last, dtype=dtype)

    def to(self, device):
        return FolderData(self.train, self.val, self.classes, self.source, self.mean, self.std,
                          torch.device(device))

    def fingerprint(self):
        """The number of images of each split and a sha256 of their paths inside the root, file
        sizes and labels (the root itself left out); reading every image would take hours."""
        root = Path(self.source)
        splits = {}
        for name in ("train", "val", "test"):
            samples = getattr(self, name, [])
            digest = hashlib.sha256()
            for path, label in samples:
                path = Path(path)
                digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\t{label}\n".encode())
            splits[name] = (len(samples), digest.hexdigest())
        return data_fingerprint(splits, self.mean, self.std)

    # --- what fit needs ---------------------------------------------------------------
    def check(self, model, recipe):
        if recipe.scale_jitter is None or recipe.crop is None:
            raise ValueError("Folders of images are trained with scale jittering and a crop: set "
                             "scale_jitter=(S_min, S_max) and crop (the paper: (256, 512) and "
                             "224, vgg_lib.training.recipe.PAPER_IMAGENET_AUGMENTATION).")
        if recipe.alternating_flip:
            raise ValueError("alternating_flip=True works on CIFAR's tensors (a CIFAR10Data); the "
                             "images of a folder are each flipped after a coin toss of their own "
                             "(from the seed, the epoch and their position): set "
                             "alternating_flip=False.")
        if not self.train:
            raise DataError(f"{self.source} has no training images.")
        check_labels(model, max(label for _, label in self.train), self.classes, 3)

    def training_batches(self, recipe, generator, *, channels_last=False, share=None, workers=4):
        """``epoch -> iterator`` over the batches of one epoch (``generator`` unused: every
        image's random numbers come from (seed, epoch, position), see the module docstring).
        The DataLoader's worker processes live as long as the returned function."""
        sampler = GlobalBatches(len(self.train), recipe.batch_size, recipe.seed, share)
        loader = _loader(_TrainImages(self.train, recipe), sampler, workers, self.device)

        def epoch_batches(epoch):
            sampler.set_epoch(epoch)
            for images, alpha, labels in loader:
                x = self.normalize(images.to(self.device, non_blocking=True), channels_last=channels_last)
                yield apply_colour_shift(x, alpha, self.std), labels.to(self.device, non_blocking=True)

        return epoch_batches

    def evaluation_batches(self, split, batch_size, prepare=None, workers=2, shard=None,
                           limit=None):
        """(uint8 images, labels) of the split's images (``val``: ROOT/val, the set the paper
        reports on), decoded and ``prepare``d = (Q, crop) in worker processes (see
        ``evaluation_transform``); the first ``limit`` (None: all), every ``world_size``-th
        from ``rank`` when ``shard=(rank, world_size)``."""
        if split not in ("train", "val"):
            raise ValueError(f"split={split!r}: a folder of images has the splits 'train' and "
                             "'val' (ROOT/val, the set the paper reports on).")
        if prepare is None:
            raise ValueError("Images of a folder differ in size: give prepare=(Q, crop).")
        indices = list(range(len(getattr(self, split))))[:limit]
        if shard is not None:
            indices = indices[shard[0]::shard[1]]
        batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        for images, labels in _loader(_EvalImages(getattr(self, split), prepare), batches,
                                      workers, self.device):
            yield images.to(self.device, non_blocking=True), labels.to(self.device)


def _scan(folder):
    from torchvision.datasets.folder import find_classes, make_dataset  # see decode

    try:
        classes, class_to_index = find_classes(str(folder))
        samples = make_dataset(str(folder), class_to_index, extensions=IMAGE_EXTENSIONS)
    except (FileNotFoundError, OSError) as error:
        raise DataError(f"{folder} is not an ImageFolder ({error}). Expected one sub-folder "
                        "per class holding the images (root/train/<class>/*.jpg).") from error
    return classes, samples


def load_image_folder(root, device="cpu"):
    """``FolderData`` of ``root`` (``root/train`` and ``root/val``, one sub-folder per class,
    the same classes in both), its batches going to ``device``. ``DataError`` says what is
    missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"--data {root}: no such folder. Give 'cifar10' or a folder holding "
                        "train/<class>/*.jpg and val/<class>/*.jpg (ImageFolder layout).")
    missing = [name for name in ("train", "val") if not (root / name).is_dir()]
    if missing:
        raise DataError(f"{root} has no {' or '.join(missing)} folder; expected train/<class>/ "
                        "and val/<class>/ (ImageFolder layout, as ImageNet is usually unpacked).")
    classes, train = _scan(root / "train")
    val_classes, val = _scan(root / "val")
    if val_classes != classes:
        raise DataError(f"{root}: train/ has classes {classes[:5]}... but val/ has "
                        f"{val_classes[:5]}...; both need the same class folders.")
    return FolderData(train=train, val=val, classes=classes, source=str(root),
                      device=torch.device(device))
