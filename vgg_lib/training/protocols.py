"""Test-time protocols of the paper's Section 3.2 and 4.2-4.3 on CIFAR-sized data: single crop,
flip averaging, dense evaluation at one or several scales, multi-crop, and dense + multi-crop.

A protocol is a tree of *views*: a view is one forward pass of the fully-convolutional network
(``vgg_lib.architecture.dense``) on one version of the image: the whole image rescaled to Q x Q
("dense"), or one ``crop`` x ``crop`` window of it ("crop"), mirrored or not. Each view gives
soft-max class posteriors (a dense view averages its class-score map over the positions first,
the paper's sum-pooling); a protocol averages the posteriors of its parts, as the paper averages
over flips, over scales and, for "multi-crop & dense", over the two methods.

``evaluate_protocols(model, data, protocols)`` runs every view that any of the protocols needs
once per batch, so comparing six protocols costs what their union costs, and returns for each
its accuracy and the multiply-adds it spends per image (``vgg_lib.measure.counting``), so that
accuracy can be plotted against compute.
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..architecture.dense import to_fully_convolutional
from ..device import autocast, default_channels_last, resolve_precision
from .augment import resize_images


@dataclass(frozen=True)
class View:
    """One forward pass: the image rescaled to ``scale`` x ``scale``; all of it (``crop`` None:
    dense) or the ``crop`` x ``crop`` window at (top, left); mirrored when ``flip``."""

    scale: int
    flip: bool = False
    crop: int = None
    top: int = 0
    left: int = 0

    def __post_init__(self):
        if self.crop is not None and self.crop == self.scale:  # a crop of all of it: dense
            object.__setattr__(self, "crop", None)
        if self.crop is None:
            object.__setattr__(self, "top", 0)
            object.__setattr__(self, "left", 0)

    @property
    def input_size(self):
        return self.scale if self.crop is None else self.crop


@dataclass(frozen=True)
class Protocol:
    """``name`` and ``parts`` (views or protocols) whose posteriors are averaged."""

    name: str
    parts: tuple

    def views(self):
        for part in self.parts:
            yield from (part.views() if isinstance(part, Protocol) else (part,))

    def __repr__(self):
        return f"Protocol({self.name!r}, {sum(1 for _ in self.views())} views)"


def _check_scale(scale, crop):
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < crop:
        raise ValueError(f"Test scale Q={scale!r}: use whole numbers >= the {crop}-pixel crop.")


def _with_flip(views, flip):
    return tuple(v for view in views for v in ((view, View(**{**view.__dict__, "flip": True}))
                                               if flip else (view,)))


def single_crop(crop=32, scale=None):
    """The centre ``crop`` x ``crop`` window of the image rescaled to ``scale`` (default: the
    crop itself, i.e. CIFAR's whole 32 x 32 image)."""
    scale = scale or crop
    _check_scale(scale, crop)
    offset = (scale - crop) // 2
    return Protocol("single crop", (View(scale, False, crop, offset, offset),))


def flip_average(crop=32, scale=None):
    """The single crop and its mirror image, posteriors averaged."""
    view = single_crop(crop, scale).parts[0]
    return Protocol("flip", _with_flip((view,), True))


def dense(scales, flip=True, crop=32):
    """Dense evaluation at each test scale Q of ``scales``: the whole rescaled image through the
    fully-convolutional network, the score map averaged, with its mirror image (``flip``);
    posteriors averaged over the scales."""
    scales = _scales(scales, crop)
    parts = tuple(Protocol(f"dense Q={q}", _with_flip((View(q),), flip)) for q in scales)
    name = f"dense Q={scales[0]}" if len(scales) == 1 else "dense Q={" + ",".join(map(str, scales)) + "}"
    return parts[0] if len(parts) == 1 else Protocol(name, parts)


def crop_grid(scale, crop=32, grid=3):
    """Offsets of a ``grid`` x ``grid`` regular grid of ``crop`` windows in a ``scale`` image
    (the paper: 5 x 5 per scale); fewer distinct ones when the image is barely larger."""
    room = scale - crop
    offsets = sorted({round(room * i / (grid - 1)) for i in range(grid)}) if grid > 1 else [room // 2]
    return [(top, left) for top in offsets for left in offsets]


def multi_crop(scales, grid=3, flip=True, crop=32):
    """The paper's multi-crop evaluation: at each scale a ``grid`` x ``grid`` grid of crops (and
    their mirror images), posteriors averaged over the crops of a scale, then over scales."""
    scales = _scales(scales, crop)
    parts = tuple(Protocol(f"crops Q={q}", _with_flip(tuple(View(q, False, crop, t, l)
                                                              for t, l in crop_grid(q, crop, grid)),
                                                        flip))
                  for q in scales)
    return Protocol(f"multi-crop {grid}x{grid}", parts)


def dense_and_multi_crop(scales, grid=3, flip=True, crop=32):
    """The paper's best: the posteriors of dense and of multi-crop evaluation, averaged."""
    return Protocol("dense + multi-crop", (dense(scales, flip, crop), multi_crop(scales, grid, flip, crop)))


def _scales(scales, crop):
    scales = (scales,) if isinstance(scales, int) else tuple(scales)
    if not scales:
        raise ValueError("Give at least one test scale Q.")
    for q in scales:
        _check_scale(q, crop)
    return scales


# --- cost -----------------------------------------------------------------------------------

def view_macs(converted, size):
    """Multiply-adds of one forward pass of the fully-convolutional network on a ``size``
    square input (on the meta device: no memory, no time)."""
    from ..measure.counting import costs

    spec = converted.spec
    return _macs_of_spec(spec, size) if spec is not None else costs(converted, size).macs


@lru_cache(maxsize=256)
def _macs_of_spec(spec, size):
    from ..measure.counting import costs

    with torch.device("meta"):
        model = to_fully_convolutional(spec.build(init_weights=False))
    return costs(model, size).macs


def protocol_macs(protocol, converted):
    """Multiply-adds ``protocol`` spends on one image (the sum over its views)."""
    return sum(view_macs(converted, view.input_size) for view in protocol.views())


# --- evaluation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ProtocolResult:
    name: str
    accuracy: float
    macs: int       # multiply-adds per image
    views: int      # forward passes per image
    images: int     # images evaluated


def _view_input(images, view, resized):
    if view.scale not in resized:
        resized[view.scale] = resize_images(images, view.scale)
    x = resized[view.scale]
    if view.crop is not None:
        x = x[:, :, view.top:view.top + view.crop, view.left:view.left + view.crop]
    return x.flip(3) if view.flip else x


def _posteriors(protocol, computed):
    parts = [(_posteriors(p, computed) if isinstance(p, Protocol) else computed[p])
             for p in protocol.parts]
    return torch.stack(parts).mean(0)


@torch.no_grad()
def evaluate_protocols(model, data, protocols, split="test", batch_size=250, limit=None,
                       precision="auto", channels_last=None, progress=True):
    """{protocol name: ``ProtocolResult``} of ``model`` (a VGG, converted here, or already
    fully-convolutional) on the split ``split`` of ``data`` (a ``CIFAR10Data``): "test", "val"
    or "train"; ``limit`` evaluates only its first ``limit`` images (say so when you report).
    Every view the protocols need is computed once per batch and shared between them."""
    protocols = list(protocols)
    names = [p.name for p in protocols]
    if len(set(names)) != len(names):
        raise ValueError(f"Two protocols share a name ({names}); give each its own.")
    images, labels = data.split(split)
    if limit is not None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit={limit!r}: use a positive whole number of images, or None.")
        images, labels = images[:limit], labels[:limit]
    converted = to_fully_convolutional(model)
    device = images.device
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    if channels_last:
        converted.to(memory_format=torch.channels_last)
    views = list(dict.fromkeys(v for p in protocols for v in p.views()))
    was_training = converted.training
    converted.eval()
    correct = {name: 0 for name in names}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(images), unit="image", desc="protocols", dynamic_ncols=True)
    try:
        for start in range(0, len(images), batch_size):
            batch, y = images[start:start + batch_size], labels[start:start + batch_size]
            resized, computed = {}, {}
            for view in views:
                x = data.normalize(_view_input(batch, view, resized), channels_last=channels_last)
                with autocast(device, precision):
                    scores = converted.class_scores(x).float()
                computed[view] = scores.softmax(1)
            for protocol in protocols:
                correct[protocol.name] += int((_posteriors(protocol, computed).argmax(1) == y).sum())
            if bar is not None:
                bar.update(len(batch))
    finally:
        converted.train(was_training)
        if bar is not None:
            bar.close()
    return {p.name: ProtocolResult(p.name, correct[p.name] / len(images), protocol_macs(p, converted),
                                   sum(1 for _ in p.views()), len(images))
            for p in protocols}


def format_macs(macs):
    """"11.5 M" / "1.2 G": multiply-adds for tables."""
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.1f} M"


def protocol_suite(scales, single_scale, grid=3, crop=32):
    """The six protocols the chapter compares: single crop, flip, dense at ``single_scale``,
    dense at ``scales``, multi-crop and dense + multi-crop at ``scales``."""
    return [single_crop(crop), flip_average(crop),
            Protocol(f"dense 1 scale", dense(single_scale, crop=crop).parts),
            Protocol(f"dense {len(_scales(scales, crop))} scales", dense(scales, crop=crop).parts),
            multi_crop(scales, grid, crop=crop), dense_and_multi_crop(scales, grid, crop=crop)]


# --- chapter 9's CIFAR analogue --------------------------------------------------------------
#
# The quick profile's network (VGG-11-BN at quarter width) with the paper's three-layer head on
# a 2x2 map ("fc-2x2": the last max-pool dropped), so that a test image larger than 32x32 gives
# a class-score map with more than one position. The recipe is the quick profile's on 20,000
# images for 3 epochs (60,000 images seen, 43% of the profile's), so that the chapter trains
# six networks (with and without scale jittering, three seeds each) within its time budget.
from ..architecture.spec import ModelSpec  # noqa: E402
from .recipe import TrainConfig  # noqa: E402

CHAPTER_SPEC = ModelSpec(config="A", batch_norm=True, width=0.25, head="fc-2x2", num_classes=10)
CHAPTER_RECIPE = TrainConfig(epochs=3, batch_size=128, lr=0.3, weight_decay=5e-4,
                             label_smoothing=0.1, nesterov=True, tta_flip=True, crop_padding=0)
CHAPTER_TRAIN_IMAGES = 20_000

# Choices of benchmarks/tune_test_protocol.py, on the validation split (the first 2,000 of its
# 5,000 images), seed 0 only, the test set never read; 2026-12-01, the book's 2-core AMD EPYC
# machine, one thread, beside other work. Each row: (training scale jitter, validation accuracy
# of: single crop, flip, dense Q=40, dense Q=48, dense Q={32,40,48}, dense Q={32,48,64},
# multi-crop {32,40,48}, multi-crop {32,48,64}).
PROTOCOL_TUNING = (
    ("none (S = 32)", 0.6470, 0.6570, 0.5370, 0.4125, 0.6285, 0.6200, 0.6320, 0.6080),
    ("[32, 40]", 0.5935, 0.5980, 0.5780, 0.5235, 0.6095, 0.6085, 0.6210, 0.6115),
    ("[32, 48]", 0.5555, 0.5595, 0.5470, 0.5090, 0.5700, 0.5695, 0.5835, 0.5725),
    ("[32, 64]", 0.4775, 0.4820, 0.4965, 0.4860, 0.5035, 0.4900, 0.5045, 0.5135),
)
# Chosen: jitter [32, 40] (the best jittered row under every protocol), test scales {32, 40, 48}
# (the better set under dense evaluation in every row, and under multi-crop in all but [32, 64]).


@dataclass(frozen=True)
class ChapterSettings:
    """Everything chapter 9 trains and tests with, for one profile."""

    spec: ModelSpec
    recipe: TrainConfig
    train_images: int        # None: every training image outside the validation split
    jitter: tuple            # (S_min, S_max) of the jittered runs
    scales: tuple            # the test scales Q of the multi-scale protocols
    grid: int                # multi-crop: grid x grid crops per scale
    test_images: int         # test images every protocol is evaluated on (None: all 10,000)
    seeds: tuple = (0, 1, 2)

    def single_scale(self, jitter):
        """The paper's single test scale (Table 3): Q = S for a fixed training scale, the middle
        of [S_min, S_max] for a jittered one."""
        return (jitter[0] + jitter[1]) // 2 if jitter else 32  # CIFAR's 32x32 images

    def suite(self, jitter):
        return protocol_suite(self.scales, self.single_scale(jitter), self.grid)


CHAPTER_SETTINGS = {
    "quick": ChapterSettings(CHAPTER_SPEC, CHAPTER_RECIPE, CHAPTER_TRAIN_IMAGES, jitter=(32, 40),
                             scales=(32, 40, 48), grid=3, test_images=2_000),
    # not run yet (no GPU here): VGG-16-BN, the full profile's optimiser, 15 epochs
    "full": ChapterSettings(CHAPTER_SPEC.replace(config="D", width=1.0),
                            CHAPTER_RECIPE.replace(epochs=15, batch_size=256, lr=0.1),
                            None, jitter=(32, 40), scales=(32, 40, 48), grid=3, test_images=None),
}
