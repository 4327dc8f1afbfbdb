"""The one evaluation engine (the paper's Section 3.2): any protocol of
``vgg_lib.evaluation.protocols``, on CIFAR's tensors or on a folder of images, in one process or
data-parallel. ``fit`` evaluates its validation and test splits with it, chapter 9 its six
protocols, the training command the val/ folder of ImageNet-like data.

The data object yields uint8 batches (``data.evaluation_batches``): CIFAR's images are all
32 x 32, so a batch of them goes through every view on the device. Images of a folder differ in
size: its DataLoader workers decode them and do what every view shares (the centre crop's
rescale-and-cut, or the rescale to the largest test scale), and what remains runs on the device,
one image at a time where the sizes still differ. Every view a set of protocols needs is
computed once per batch and shared between them, so comparing six protocols costs what their
union costs.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..architecture.dense import to_fully_convolutional
from ..device import autocast, default_channels_last, resolve_precision
from .protocols import Protocol, View, centre_crop, combine, protocol_macs


@dataclass(frozen=True)
class ProtocolResult:
    name: str
    accuracy: float
    loss: float     # mean cross-entropy of the protocol's averaged posteriors
    macs: int       # multiply-adds per image (None for images of different sizes)
    views: int      # forward passes per image
    images: int     # images evaluated


def evaluate(model, data, split="test", *, protocol=None, tta_flip=False, batch_size=512,
             precision="auto", channels_last=None, workers=2, distributed=None):
    """(mean cross-entropy, accuracy) of ``model`` on the split ``split`` of ``data`` ("test",
    "val", the validation split, or "train") under ``protocol`` (default: the images as they
    are; ``tta_flip=True``: with their mirror images, the soft-max posteriors averaged, which
    costs a second forward pass and usually adds a little accuracy)."""
    protocol = protocol or centre_crop(flip=tta_flip)
    (result,) = evaluate_protocols(model, data, [protocol], split, batch_size=batch_size,
                                   precision=precision, channels_last=channels_last,
                                   progress=False, workers=workers, distributed=distributed,
                                   count_macs=False).values()
    return result.loss, result.accuracy


@torch.no_grad()
def evaluate_protocols(model, data, protocols, split="test", *, batch_size=250, limit=None,
                       precision="auto", channels_last=None, progress=True, workers=2,
                       distributed=None, count_macs=True):
    """{protocol name: ``ProtocolResult``} of ``model`` on the split ``split`` of ``data`` (a
    ``CIFAR10Data`` or a ``FolderData``). ``limit`` evaluates only the split's first ``limit``
    images (say so when you report). ``distributed``: each process evaluates every N-th image
    with rank 0's BatchNorm statistics, and the sums are combined. ``count_macs``: each result
    gives the multiply-adds its protocol spends per image (square images only)."""
    protocols = list(protocols)
    names = [p.name for p in protocols]
    if not all(isinstance(p, Protocol) for p in protocols):
        raise TypeError("Give a list of protocols (vgg_lib.evaluation.protocols: single_crop, "
                        "flip_average, dense, multi_crop, centre_crop, ...).")
    if len(set(names)) != len(names):
        raise ValueError(f"Two protocols share a name ({names}); give each its own.")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit={limit!r}: use a positive whole number of images, or None.")
    device = torch.device(data.device)
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    views = list(dict.fromkeys(v for p in protocols for v in p.views()))
    prepare, views_on_device = worker_plan(views) if data.image_size is None else (None, {})
    if prepare is not None and prepare[1] is None:
        batch_size = 1  # the images still differ in size
    shard = (distributed.rank, distributed.world_size) if distributed is not None else None
    batches = data.evaluation_batches(split, batch_size, prepare=prepare, workers=workers,
                                      shard=shard, limit=limit)
    network = Networks(model, channels_last)
    totals = {name: [torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)]
              for name in names}
    count = 0
    bar = _progress_bar(progress, data.split_size(split) if limit is None else limit)
    was_training = model.training
    model.eval()
    try:
        with distributed.main_buffers(model) if distributed is not None else nullcontext():
            for images, labels in batches:
                computed = network.log_posteriors(
                    images, views, lambda x: data.normalize(x, channels_last=channels_last),
                    device, precision, views_on_device)
                for protocol in protocols:
                    log_posteriors = combine(protocol, computed)
                    totals[protocol.name][0] += F.nll_loss(log_posteriors, labels, reduction="sum")
                    totals[protocol.name][1] += (log_posteriors.argmax(1) == labels).sum()
                count += len(labels)
                if bar is not None:
                    bar.update(len(labels) * (shard[1] if shard else 1))
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    results = {}
    for protocol in protocols:
        loss, correct = (t.item() for t in totals[protocol.name])
        images = count
        if distributed is not None:
            loss, correct, images = distributed.sum(loss, correct, count)
        macs = protocol_macs(protocol, model, data.image_size) if count_macs and data.image_size else None
        results[protocol.name] = ProtocolResult(protocol.name, correct / max(images, 1),
                                                loss / max(images, 1), macs,
                                                sum(1 for _ in protocol.views()), images)
    return results


class Networks:
    """The model as built (for views that are the image itself) and, made when first needed, its
    fully-convolutional version (for every other view; it shares the model's weights)."""

    def __init__(self, model, channels_last=False):
        self.model, self.converted, self.channels_last = model, None, channels_last

    @torch.no_grad()
    def log_posteriors(self, images, views, normalize, device, precision, views_on_device=None):
        """{view: log soft-max posteriors (B, classes)} of a uint8 batch ``images``, each
        distinct window computed once; ``normalize``: uint8 images -> the network's input."""
        height, width = images.shape[-2:]
        by_window, computed = {}, {}
        for view in views:
            window = (views_on_device or {}).get(view, view).window(height, width)
            if window not in by_window:
                x = normalize(window.cut(images))
                native = window.native(height, width)
                if not native and self.converted is None:
                    self.converted = to_fully_convolutional(self.model).eval()
                    if self.channels_last:
                        self.converted.to(memory_format=torch.channels_last)
                with autocast(device, precision):
                    scores = self.model(x) if native else self.converted.class_scores(x)
                by_window[window] = scores.float().log_softmax(1)
            computed[view] = by_window[window]
        return computed


def protocol_posteriors(model, images, protocols, normalize, precision="fp32"):
    """{protocol name: soft-max posteriors (B, classes)} of ``model`` (in eval mode) for the
    uint8 batch ``images`` under each of ``protocols``: a few images evaluated by hand (a
    photograph, say). ``normalize``: uint8 images -> the model's input."""
    views = list(dict.fromkeys(v for p in protocols for v in p.views()))
    computed = Networks(model).log_posteriors(images, views, normalize, images.device, precision)
    return {p.name: combine(p, computed).exp() for p in protocols}


def worker_plan(views):
    """For images of different sizes: ((Q, crop), {view: what remains on the device}). When
    every view is the centre crop of one scale (flipped, translated or not), the workers rescale
    and cut it and the device only mirrors and translates: batches of equal crops. Otherwise the
    workers rescale each image's shorter side to the largest Q (None: as it is), crop None, and
    the device does the rest image by image (the smaller scales are rescaled from the largest
    one)."""
    shapes = {(v.scale, v.crop, v.top, v.left) for v in views}
    if len(shapes) == 1:
        scale, crop, top, left = shapes.pop()
        if crop is not None and top is None and left is None:
            return (scale, crop), {v: View(None, v.flip, shift=v.shift) for v in views}
    scales = [v.scale for v in views]
    return (None if None in scales else max(scales), None), {}


def _progress_bar(progress, total):
    if not progress:
        return None
    return tqdm(total=total, unit="image", desc="protocols", dynamic_ncols=True, mininterval=1.0)
