"""Test-time protocols of the paper's Sections 3.2 and 4.2-4.3: single crop, flip averaging,
dense evaluation at one or several scales, multi-crop, and dense + multi-crop. One description
for CIFAR's tensors and for folders of images of any size (``vgg_lib.evaluation.engine`` runs it).

A protocol is a tree of *views*: a view is one forward pass on one version of the image: its
shorter side rescaled to Q ("scale"), then all of it ("dense": the fully-convolutional network,
``vgg_lib.architecture.dense``, its class-score map averaged over the positions, the paper's
sum-pooling) or one ``crop`` x ``crop`` window of it, translated by a few pixels or not (the
borders filled by reflection: airbench's test-time translation), mirrored or not. Each view
gives soft-max class posteriors; a protocol averages the posteriors of its parts, as the paper
averages over flips, over scales and, for "multi-crop & dense", over the two methods. The
test-time flip is one such average, whatever the data (``flip_average``,
``TrainConfig.tta_flip``); flip + shifts another (``shifted_flips``, ``TrainConfig.tta_shift``).

A view whose input is the image as it is (no rescaling, no crop; mirrored or translated or not)
runs through the network as built; every other view through its fully-convolutional version.
"""

import math
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import torch
import torch.nn.functional as F

from ..architecture.dense import to_fully_convolutional
from ..measure.counting import costs


@dataclass(frozen=True)
class View:
    """One forward pass: the image's shorter side rescaled to ``scale`` (None: as it is); all of
    it (``crop`` None: dense) or the ``crop`` x ``crop`` window at (top, left) of the rescaled
    image (None: centred); that input translated by ``shift`` = (dy, dx) pixels (down and right;
    negative: up and left), the same size, the uncovered border filled by reflecting the input
    (None: not translated); mirrored when ``flip`` (after the translation)."""

    scale: int = None
    flip: bool = False
    crop: int = None
    top: int = None
    left: int = None
    shift: tuple = None

    def __post_init__(self):
        if self.crop is not None and self.crop == self.scale:  # a crop of all of it: dense
            object.__setattr__(self, "crop", None)
        if self.crop is None:
            object.__setattr__(self, "top", None)
            object.__setattr__(self, "left", None)
        if self.shift is not None:
            shift = tuple(self.shift) if isinstance(self.shift, (tuple, list)) else None
            if shift is None or len(shift) != 2 or not all(
                    isinstance(d, int) and not isinstance(d, bool) for d in shift):
                raise ValueError(f"shift={self.shift!r}: use None or (dy, dx), two whole "
                                 "numbers of pixels, e.g. (1, 1) or (-1, -1).")
            object.__setattr__(self, "shift", None if shift == (0, 0) else shift)

    def __repr__(self):  # the dataclass's, with ``shift`` only where there is one
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name != "shift" or self.shift is not None]
        return f"View({', '.join(shown)})"

    @property
    def input_size(self):
        """The side of the network's input for a square image."""
        return self.scale if self.crop is None else self.crop

    def window(self, height, width):
        """This view on a ``height`` x ``width`` image, with every size worked out: a ``Window``."""
        size = rescaled_size(height, width, self.scale)
        side = size if self.crop is None else (self.crop, self.crop)
        if self.shift is not None and not all(abs(d) < s for d, s in zip(self.shift, side)):
            raise ValueError(f"A shift of {self.shift} pixels does not fit a {side[0]}x{side[1]} "
                             "input (reflection needs |dy| < its height and |dx| < its width); "
                             "use a smaller shift.")
        if self.crop is None:
            return Window(size, None, 0, 0, self.flip, self.shift)
        if self.crop > min(size):
            raise ValueError(f"A {self.crop}-pixel crop does not fit in a {height}x{width} image "
                             f"rescaled to {size[0]}x{size[1]} (Q={self.scale}); use Q >= the crop.")
        top = (size[0] - self.crop) // 2 if self.top is None else self.top
        left = (size[1] - self.crop) // 2 if self.left is None else self.left
        return Window(size, self.crop, top, left, self.flip, self.shift)


@dataclass(frozen=True)
class Window:
    """A view resolved for one image size: rescale to ``size`` (height, width), cut the ``crop``
    window at (top, left) (``crop`` None: keep all of it), translate it by ``shift`` (reflecting
    at the borders; None: not), mirror when ``flip``."""

    size: tuple
    crop: int
    top: int
    left: int
    flip: bool
    shift: tuple = None

    def native(self, height, width):
        """True when the window has the image's own size, so that the network as built takes it:
        the image itself, or its mirror image or translation (no rescaling, no crop)."""
        return self.size == (height, width) and self.crop is None

    def cut(self, images):
        """The window of every uint8 image of the batch ``images`` (B, C, H, W)."""
        x = resize_images(images, self.size)
        if self.crop is not None:
            x = x[:, :, self.top:self.top + self.crop, self.left:self.left + self.crop]
        if self.shift is not None:
            x = translate(x, *self.shift)
        return x.flip(3) if self.flip else x


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


def translate(images, dy, dx):
    """The batch ``images`` (B, C, H, W) moved ``dy`` pixels down and ``dx`` right (negative: up,
    left), the same size, the uncovered border filled by reflection (``F.pad``'s "reflect", as
    airbench's test-time translation): reflect-pad |dy|, |dx| on every side, cut the original
    size back out."""
    if dy == 0 and dx == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (abs(dx), abs(dx), abs(dy), abs(dy)), mode="reflect")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, :, top:top + height, left:left + width]


def rescaled_size(height, width, scale):
    """(height, width) of an image whose shorter side is rescaled to ``scale`` (None: as it is),
    the aspect ratio kept."""
    if scale is None:
        return (height, width)
    if height <= width:
        return (scale, max(scale, round(width * scale / height)))
    return (max(scale, round(height * scale / width)), scale)


def resize_images(images, size):
    """A uint8 batch (B, C, H, W) resized to ``size`` (a side, or (height, width); bilinear,
    antialiased when shrinking), as uint8: the test-time rescaling of every protocol."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == size:
        return images
    shrinking = min(size) < min(images.shape[-2:])
    resized = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False,
                            antialias=shrinking)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def _check_scale(scale, crop):
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < crop:
        raise ValueError(f"Test scale Q={scale!r}: use whole numbers >= the {crop}-pixel crop.")


def _with_flip(views, flip):
    return tuple(v for view in views for v in ((view, replace(view, flip=True)) if flip else (view,)))


def centre_crop(scale=None, crop=None, flip=False, name=None):
    """The centre ``crop`` x ``crop`` window of the image rescaled to ``scale`` (None: as it is,
    and all of it), with its mirror image when ``flip``: how ``fit`` evaluates (the recipe's
    ``eval_scale``, ``crop`` and ``tta_flip``)."""
    if crop is not None and scale is not None:
        _check_scale(scale, crop)
    return Protocol(name or _described(scale, crop) + (", flip" if flip else ""),
                    _with_flip((View(scale, False, crop),), flip))


def _described(scale, crop):
    return ("the images as they are" if scale is None and crop is None else
            f"centre crop {crop} at Q={scale}" if crop is not None else f"Q={scale}")


def shifted_flips(shift=1, crop=None, scale=None):
    """"flip + 1-pixel shifts" (airbench's test-time translation): the centre ``crop`` of the
    image rescaled to ``scale`` (both None: the images as they are, as ``centre_crop``) and its
    mirror image, plus that input translated ``shift`` pixels diagonally both ways, down-right
    and up-left (borders reflected), each with its mirror image: 6 views. Protocols average their
    parts equally, so this one nests them to weigh the plain pair 1/2 and each translated pair
    1/4 (airbench's weights): a Protocol of [the flip pair, a Protocol of the two translated
    flip pairs]."""
    if not isinstance(shift, int) or isinstance(shift, bool) or shift < 1:
        raise ValueError(f"shift={shift!r}: use a whole number of pixels >= 1.")
    plain = centre_crop(scale, crop, flip=True)
    (view, _) = plain.parts
    shifted = Protocol(f"{shift}-pixel shifts, flip",
                       _with_flip((replace(view, shift=(shift, shift)),
                                   replace(view, shift=(-shift, -shift))), True))
    described = "" if scale is None and crop is None else _described(scale, crop) + ", "
    return Protocol(f"{described}flip + {shift}-pixel shifts", (plain, shifted))


def single_crop(crop=32, scale=None):
    """The centre ``crop`` x ``crop`` window of the image rescaled to ``scale`` (default: the
    crop itself, i.e. CIFAR's whole 32 x 32 image)."""
    scale = scale or crop
    _check_scale(scale, crop)
    return centre_crop(scale, crop, flip=False, name="single crop")


def flip_average(crop=32, scale=None):
    """The single crop and its mirror image, posteriors averaged."""
    return centre_crop(scale or crop, crop, flip=True, name="flip")


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
    their mirror images), posteriors averaged over the crops of a scale, then over scales. The
    offsets are those of a square image (CIFAR's)."""
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
        raise ValueError("Give at least one test scale Q, e.g. (256, 384, 512) as in the "
                         "paper's Table 4.")
    for q in scales:
        _check_scale(q, crop)
    return scales


def protocol_suite(scales, single_scale, grid=3, crop=32):
    """The six protocols chapter 9 compares: single crop, flip, dense at ``single_scale``,
    dense at ``scales``, multi-crop and dense + multi-crop at ``scales``."""
    return [single_crop(crop), flip_average(crop),
            Protocol("dense 1 scale", dense(single_scale, crop=crop).parts),
            Protocol(f"dense {len(_scales(scales, crop))} scales", dense(scales, crop=crop).parts),
            multi_crop(scales, grid, crop=crop), dense_and_multi_crop(scales, grid, crop=crop)]


def combine(protocol, computed):
    """Log of the averaged posteriors of ``protocol``, from ``computed`` {view: log-posteriors}."""
    parts = [combine(p, computed) if isinstance(p, Protocol) else computed[p] for p in protocol.parts]
    if len(parts) == 1:
        return parts[0]
    return torch.logsumexp(torch.stack(parts), 0) - math.log(len(parts))


# --- cost -----------------------------------------------------------------------------------

def view_macs(model, size):
    """Multiply-adds of one forward pass of ``model``'s fully-convolutional version on a
    ``size`` square input (on the meta device: no memory, no time)."""
    spec = getattr(model, "spec", None)
    return costs(to_fully_convolutional(model), size).macs if spec is None else _macs_of_spec(spec, size)


@lru_cache(maxsize=256)
def _macs_of_spec(spec, size):
    with torch.device("meta"):
        return costs(to_fully_convolutional(spec.build(init_weights=False)), size).macs


def protocol_macs(protocol, model, image_size=32):
    """Multiply-adds ``protocol`` spends on one square ``image_size`` image (the sum over its
    views)."""
    windows = (view.window(image_size, image_size) for view in protocol.views())
    return sum(view_macs(model, w.crop or w.size[0]) for w in windows)


def format_macs(macs):
    """"11.5 M" / "1.2 G": multiply-adds for tables."""
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.1f} M"
