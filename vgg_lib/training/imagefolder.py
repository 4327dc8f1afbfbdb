"""The paper's ImageNet recipe (Section 3.1) on any folder of JPEGs in ``ImageFolder`` layout.

``ROOT/train/<class>/*.jpg`` and ``ROOT/val/<class>/*.jpg`` (torchvision's
``datasets.ImageFolder`` layout, as ImageNet is usually unpacked). Unlike CIFAR-10 (``fit``,
the whole dataset as one tensor on the device), these images do not fit in memory: they are
decoded and augmented image by image in DataLoader worker processes, and batches of fixed-size
uint8 crops travel to the device, where they are normalised.

Training augmentation, as in the paper:

* scale jittering: the image is resized so that its shorter side is S, drawn for every image
  uniformly from [S_min, S_max] = [256, 512] (Section 3.1, "multi-scale training");
* a random 224 x 224 crop of the rescaled image, flipped left-right with probability 1/2;
* the RGB colour shift of Krizhevsky et al. (2012): every pixel moves by
  ``sum_i alpha_i * lambda_i * p_i`` along the principal components p_i (eigenvalues lambda_i)
  of ImageNet's RGB covariance, alpha_i ~ N(0, 0.1) drawn once per image.

Every random number of an image comes from a generator seeded by (recipe seed, epoch, position
in the epoch's order), so the augmentation does not depend on the number of workers or of
processes, and a resumed run sees the same images as an uninterrupted one.

Evaluation is a pluggable ``protocol``: ``CentreCrop`` (the shorter side resized to Q, the centre
crop, optionally averaged with its mirror image) is built in; the dense multi-scale evaluation of
the paper's Section 3.2 (the fully-convolutional net over whole images at several Q) is
``DenseMultiScale``; both plug into the same place: an object with ``transform(image) -> tensor`` (run in the workers),
``logits(model, x) -> (B, classes)`` and ``batchable`` (False when images differ in size).
"""

import math
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from ..device import autocast, default_channels_last, resolve_precision
from .augment import normalize
from .checkpoint import check_checkpoint_folder, load_checkpoint, read_checkpoint, save_checkpoint
from .data import DataError
from .history import History
from .reproducibility import rng_states, seed_everything, set_rng_states

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Principal components of ImageNet's RGB pixel covariance (pixels scaled to 0..1), as used by
# fb.resnet.torch and most re-implementations of Krizhevsky et al.'s colour augmentation.
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = ((-0.5675, 0.7192, 0.4009),
                    (-0.5808, -0.0045, -0.8140),
                    (-0.5836, -0.6948, 0.4203))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FolderAugment:
    """The image-level settings of the recipe for folders of images (stored in checkpoints
    beside the ``TrainConfig``, and compared on resume like it)."""

    scale_min: int = 256       # S_min: shorter side of the rescaled training image
    scale_max: int = 512       # S_max (= S_min for single-scale training)
    crop: int = 224            # the network's input size
    colour_shift: float = 0.1  # std of alpha in Krizhevsky et al.'s RGB shift; 0 turns it off
    eval_scale: int = 384      # Q of the centre-crop evaluation: (S_min + S_max) / 2, Sec. 3.2

    def __post_init__(self):
        problems = []
        for name in ("scale_min", "scale_max", "crop", "eval_scale"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name}={value!r} (a positive whole number)")
        if not problems:
            if self.scale_max < self.scale_min:
                problems.append(f"scale_max={self.scale_max} is below scale_min={self.scale_min}")
            if self.scale_min < self.crop or self.eval_scale < self.crop:
                problems.append(f"crop={self.crop} is larger than the shorter side "
                                f"(scale_min={self.scale_min}, eval_scale={self.eval_scale})")
        if not (isinstance(self.colour_shift, (int, float)) and math.isfinite(self.colour_shift)
                and self.colour_shift >= 0):
            problems.append(f"colour_shift={self.colour_shift!r} (a finite number >= 0)")
        if problems:
            raise ValueError("Bad image-folder augmentation: " + "; ".join(problems) + ".")

    def to_dict(self):
        return asdict(self)


# --- decoding and per-image transforms (these run in the DataLoader's worker processes) -------

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


def train_transform(image, settings, generator, augment=True):
    """(crop, alpha): the paper's scale jittering, random crop and flip of one image, and the
    three colour-shift coefficients (applied on the device, batched, by ``to_model_input``)."""
    if not augment:
        return centre_crop(resize_shorter(image, settings.eval_scale), settings.crop), torch.zeros(3)
    scale = int(torch.randint(settings.scale_min, settings.scale_max + 1, (), generator=generator))
    image = resize_shorter(image, scale)
    height, width = image.shape[1:]
    top = int(torch.randint(0, height - settings.crop + 1, (), generator=generator))
    left = int(torch.randint(0, width - settings.crop + 1, (), generator=generator))
    image = image[:, top:top + settings.crop, left:left + settings.crop]
    if bool(torch.randint(0, 2, (), generator=generator)):
        image = image.flip(2)
    alpha = torch.randn(3, generator=generator) * settings.colour_shift
    return image.contiguous(), alpha


def centre_crop(image, crop):
    height, width = image.shape[1:]
    top, left = (height - crop) // 2, (width - crop) // 2
    return image[:, top:top + crop, left:left + crop].contiguous()


class CentreCrop:
    """Single-scale evaluation: the shorter side resized to ``scale`` (Q), the centre
    ``crop`` x ``crop``, and (``flip=True``) the logits averaged with the mirror image's."""

    batchable = True

    def __init__(self, scale=384, crop=224, flip=True):
        self.scale, self.crop, self.flip = scale, crop, flip

    def transform(self, image):
        return centre_crop(resize_shorter(image, self.scale), self.crop)

    def logits(self, model, x):
        logits = model(x).float()
        if self.flip:
            logits = (logits + model(x.flip(3)).float()) / 2
        return logits

    def __repr__(self):
        return f"CentreCrop(Q={self.scale}, crop={self.crop}, flip={self.flip})"


class _TrainImages(torch.utils.data.Dataset):
    def __init__(self, samples, settings, augment):
        self.samples, self.settings, self.augment = samples, settings, augment

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, key):
        index, seed = key
        path, label = self.samples[index]
        generator = torch.Generator().manual_seed(seed)
        crop, alpha = train_transform(decode(path), self.settings, generator, self.augment)
        return crop, alpha, label


class _EvalImages(torch.utils.data.Dataset):
    def __init__(self, samples, protocol):
        self.samples, self.protocol = samples, protocol

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        return self.protocol.transform(decode(path)), label


class GlobalBatches:
    """This process's share of every global batch of one epoch, as lists of (image index, image
    seed); the order and the seeds depend only on (seed, epoch), never on the process count."""

    def __init__(self, size, batch_size, seed, distributed=None):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.distributed, self.epoch, self.skip = distributed, 0, 0

    def set_epoch(self, epoch, skip=0):
        self.epoch, self.skip = epoch, skip

    def __len__(self):
        return self.size // self.batch_size - self.skip

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        seeds = torch.randint(0, 2 ** 62, (self.size,), generator=generator)
        for i in range(self.skip, self.size // self.batch_size):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            seed = seeds[i * self.batch_size:(i + 1) * self.batch_size]
            if self.distributed is not None:
                index, seed = self.distributed.shard(index, seed)
            yield list(zip(index.tolist(), seed.tolist()))


# --- the data -------------------------------------------------------------------------------

@dataclass
class FolderData:
    """The (path, label) lists of ``root/train`` and ``root/val`` and their class names."""

    train: list
    val: list
    classes: list
    source: str
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __repr__(self):
        return (f"FolderData({len(self.train):,} train / {len(self.val):,} val images, "
                f"{len(self.classes)} classes, from {self.source})")


def _scan(folder):
    from torchvision.datasets.folder import find_classes, make_dataset

    try:
        classes, class_to_index = find_classes(str(folder))
        samples = make_dataset(str(folder), class_to_index, extensions=IMAGE_EXTENSIONS)
    except (FileNotFoundError, OSError) as error:
        raise DataError(f"{folder} is not an ImageFolder ({error}). Expected one sub-folder "
                        "per class holding the images (root/train/<class>/*.jpg).") from error
    return classes, samples


def load_image_folder(root):
    """``FolderData`` of ``root`` (``root/train`` and ``root/val``, one sub-folder per class,
    the same classes in both). ``DataError`` says what is missing."""
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
    return FolderData(train=train, val=val, classes=classes, source=str(root))


class DenseMultiScale:
    """The paper's dense multi-scale evaluation (Section 3.2; Table 4): the image's shorter side
    resized to each Q of ``scales``, the whole image through the fully-convolutional network
    (``vgg_lib.architecture.dense``), its class-score map averaged over the positions, the soft-max
    posteriors averaged with the mirror image's (``flip``) and over the scales. ``logits``
    returns the log of the averaged posteriors, so ``evaluate_folder``'s cross-entropy is that of
    the protocol's prediction. Images differ in size: one image per batch."""

    batchable = False

    def __init__(self, scales=(256, 384, 512), flip=True):
        scales = (scales,) if isinstance(scales, int) else tuple(scales)
        if not scales or not all(isinstance(q, int) and not isinstance(q, bool) and q >= 1
                                 for q in scales):
            raise ValueError(f"scales={scales!r}: give one or more test scales Q in pixels (whole "
                             "numbers), e.g. (256, 384, 512) as in the paper's Table 4.")
        self.scales, self.flip = scales, flip

    def transform(self, image):
        # the largest scale travels; the smaller ones are resized from it on the device
        return resize_shorter(image, max(self.scales))

    def logits(self, model, x):
        from ..architecture.dense import to_fully_convolutional

        converted = to_fully_convolutional(model)
        posteriors = []
        for q in self.scales:
            height, width = x.shape[-2:]
            size = (q, max(q, round(width * q / height))) if height <= width else \
                   (max(q, round(height * q / width)), q)
            scaled = x if (height, width) == size else F.interpolate(
                x, size=size, mode="bilinear", align_corners=False, antialias=q < min(height, width))
            # normalising commutes with the resize (both are linear, the weights sum to 1)
            for view in ((scaled, scaled.flip(3)) if self.flip else (scaled,)):
                posteriors.append(converted.class_scores(view).float().softmax(1))
        return torch.stack(posteriors).mean(0).clamp_min(1e-12).log()

    def __repr__(self):
        return f"DenseMultiScale(Q={list(self.scales)}, flip={self.flip})"


def to_model_input(images, alpha, data, device, channels_last):
    """uint8 crops (B, 3, h, w) and colour-shift coefficients (B, 3) -> the normalised float
    batch on ``device``: ``(x / 255 + shift - mean) / std`` with the PCA shift of each image."""
    images = images.to(device, non_blocking=True)
    x = normalize(images, data.mean, data.std, channels_last=channels_last)
    if alpha is not None and bool(alpha.any()):
        eigenvalues = torch.tensor(PCA_EIGENVALUES)
        eigenvectors = torch.tensor(PCA_EIGENVECTORS)
        shift = (alpha * eigenvalues) @ eigenvectors.T                         # (B, 3), 0..1 units
        shift = shift / torch.tensor(data.std)
        x = x + shift.to(device, non_blocking=True).view(-1, 3, 1, 1)
    return x


def _loader(dataset, batch_sampler, workers, device):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers,
                                       pin_memory=device.type == "cuda",
                                       persistent_workers=workers > 0)


# --- evaluation -----------------------------------------------------------------------------

@torch.no_grad()
def evaluate_folder(model, data, protocol, device, batch_size=64, workers=2, precision="auto",
                    channels_last=None, distributed=None):
    """(mean cross-entropy, accuracy) of ``model`` on ``data.val`` under ``protocol``
    (``CentreCrop`` or a dense evaluator with the same three members). Data-parallel: each rank
    evaluates every N-th image, with rank 0's BatchNorm statistics, and the sums are combined."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    indices = list(range(len(data.val)))
    if distributed is not None:
        distributed.sync_buffers(model)
        indices = indices[distributed.rank::distributed.world_size]
    per_batch = batch_size if protocol.batchable else 1
    batches = [indices[i:i + per_batch] for i in range(0, len(indices), per_batch)]
    was_training = model.training
    model.eval()
    total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    try:
        for images, labels in _loader(_EvalImages(data.val, protocol), batches, workers, device):
            x = to_model_input(images, None, data, device, channels_last)
            labels = labels.to(device)
            with autocast(device, precision):
                logits = protocol.logits(model, x).float()
            total_loss += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
    finally:
        model.train(was_training)
    total_loss, correct, count = total_loss.item(), correct.item(), len(indices)
    if distributed is not None:
        total_loss, correct, count = distributed.sum(total_loss, correct, count)
    return total_loss / max(count, 1), correct / max(count, 1)


# --- training -------------------------------------------------------------------------------

def fit_folder(model, data, recipe, *, augment=None, device=None, precision="auto",
               channels_last=None, checkpoint_path=None, resume=False, progress=True,
               max_steps=None, workers=4, distributed=None, protocol=None,
               eval_every_epoch=True, eval_batch_size=64, step_callback=None):
    """Train ``model`` on ``data`` (a ``FolderData``) with ``recipe`` (a ``TrainConfig``: epochs,
    lr, batch_size (global), optimizer, momentum, nesterov, weight_decay, schedule, label_smoothing,
    augment, seed; its ``crop_padding`` is CIFAR's and unused here) and ``augment`` (a
    ``FolderAugment``). Returns a ``History`` whose test_* entries are the val/ folder's.

    The same contract as ``fit``: atomic checkpoints after every epoch (rank 0 only), resume
    refusing another recipe or other image settings, ``max_steps``, ``distributed`` for torchrun,
    ``protocol`` for evaluation (default ``CentreCrop`` at ``augment.eval_scale``)."""
    from .loop import _check_resumable, _progress_bar, lr_factor, make_optimizer, make_train_step

    augment = augment or FolderAugment()
    if recipe.scale_jitter is not None:
        raise ValueError(f"recipe.scale_jitter={recipe.scale_jitter} is CIFAR's scale jittering; "
                         "for folders of images set the range in FolderAugment(scale_min=..., "
                         "scale_max=...) and leave scale_jitter=None.")
    for member in ("transform", "logits", "batchable"):
        if protocol is not None and not hasattr(protocol, member):
            raise TypeError(f"protocol={protocol!r} has no {member!r}: use CentreCrop(...) or "
                            "DenseMultiScale(...), or an object with transform, logits and "
                            "batchable.")
    device = torch.device(device or (distributed.device if distributed else "cpu"))
    protocol = protocol or CentreCrop(augment.eval_scale, augment.crop, flip=recipe.tta_flip)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from.")
    if checkpoint_path is not None:
        check_checkpoint_folder(checkpoint_path)
    is_main = distributed is None or distributed.is_main
    progress = progress and is_main
    model.to(device)
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)

    train_images = len(data.train)
    batch_size = min(recipe.batch_size, train_images)
    recipe = recipe.replace(batch_size=batch_size)
    if distributed is not None:
        distributed.check_batch_size(batch_size)
    steps_per_epoch = train_images // batch_size
    total_steps = recipe.epochs * steps_per_epoch
    config = dict(recipe.to_dict(), **augment.to_dict(), train_images=train_images,
                  test_images=len(data.val), steps_per_epoch=steps_per_epoch,
                  precision=precision, channels_last=channels_last, device=str(device),
                  data_source=data.source, evaluation=repr(protocol),
                  **(distributed.describe() if distributed else {}))
    optimizer = make_optimizer(model, recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total_steps=total_steps, schedule=recipe.schedule))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    history, start_epoch, step = History(config), 0, 0
    if resume and Path(checkpoint_path).is_file():
        saved = read_checkpoint(checkpoint_path, map_location=device)
        # folder runs reseed every image from (seed, epoch, position): no data generator to store
        _check_resumable(saved, recipe, train_images, checkpoint_path,
                         required=("epoch", "step", "train_images", "scaler", "image_folder", "rng"))
        stored = saved["training_state"].get("image_folder")
        if stored != augment.to_dict():
            raise ValueError(f"Cannot resume from {checkpoint_path}: it belongs to a run with other "
                             f"image settings (checkpoint {stored} vs now {augment.to_dict()}).")
        load_checkpoint(checkpoint_path, model, optimizer, scheduler, payload=saved)
        state = saved["training_state"]
        history = History.from_dict(saved["history"])
        history.config.update(precision=precision, channels_last=channels_last, device=str(device))
        start_epoch, step = state["epoch"], state["step"]
        scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
    else:
        seed_everything(recipe.seed)

    training_model = model if distributed is None else distributed.wrap(model)
    train_step = make_train_step(training_model, model, recipe, optimizer, scheduler, scaler, device,
                                 precision, history, step_callback, distributed)
    last_step = total_steps if max_steps is None else min(total_steps, max_steps)
    sampler = GlobalBatches(train_images, batch_size, recipe.seed, distributed)
    loader = _loader(_TrainImages(data.train, augment, recipe.augment), sampler, workers, device)
    bar = _progress_bar(progress, last_step, step)
    model.train()
    try:
        for epoch in range(start_epoch, recipe.epochs):
            if step >= last_step:
                break
            sampler.set_epoch(epoch)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, started = 0, time.perf_counter()
            for images, alpha, labels in loader:
                if step >= last_step:
                    break
                x = to_model_input(images, alpha, data, device, channels_last)
                labels = labels.to(device, non_blocking=True)
                step += 1
                done = train_step(x, labels, step)
                if done is None:
                    break
                loss, logits, loss_value = done
                loss_sum += loss.detach() * len(labels)
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += len(labels)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"epoch {epoch + 1}/{recipe.epochs}, loss {loss_value:.3f}",
                                        refresh=False)
            if history.diverged:
                break
            if distributed is not None:
                loss_sum, correct, seen = distributed.sum(loss_sum, correct, seen)
            seconds = time.perf_counter() - started
            record = dict(epoch=epoch + 1, train_loss=(loss_sum / max(seen, 1)).item(),
                          train_accuracy=correct.item() / max(seen, 1), val_loss=None,
                          val_accuracy=None, lr=optimizer.param_groups[0]["lr"],
                          seconds=seconds, images_per_second=seen / seconds if seconds else 0.0)
            complete = seen == steps_per_epoch * batch_size
            if eval_every_epoch or (complete and epoch + 1 == recipe.epochs):
                # ROOT/val/: ImageNet's validation set, on which the paper reports its results
                record["val_loss"], record["val_accuracy"] = evaluate_folder(
                    model, data, protocol, device, eval_batch_size, workers, precision,
                    channels_last, distributed)
            history.epochs.append(record)
            if bar is not None and record["val_accuracy"] is not None:
                bar.set_postfix_str(f"epoch {epoch + 1}/{recipe.epochs}, loss "
                                    f"{record['train_loss']:.3f}, val acc {record['val_accuracy']:.1%}")
            if not complete:
                history.stopped_at_step = step
                break
            if checkpoint_path is not None and is_main:
                save_checkpoint(checkpoint_path, model, optimizer, scheduler, history,
                                recipe=recipe,
                                training_state=dict(epoch=epoch + 1, step=step,
                                                    train_images=train_images,
                                                    image_folder=augment.to_dict(),
                                                    scaler=scaler.state_dict(), rng=rng_states()))
        if step >= last_step and last_step < total_steps and history.stopped_at_step is None:
            history.stopped_at_step = step
    finally:
        if bar is not None:
            bar.close()
    return history

