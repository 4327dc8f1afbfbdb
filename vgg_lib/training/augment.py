"""Augmentation for a whole batch at once, on whatever device the batch is on: CIFAR's
pad-and-crop and flip, the paper's scale jittering and Krizhevsky et al.'s colour shift.

The classic CIFAR recipe (pad 4 pixels with zeros, crop a random 32x32 window, flip half the images
left-right) is usually done image by image with PIL in DataLoader workers. Here it is one gather:
for every output pixel we compute which padded-input pixel it comes from, and index all of them
in one go. The random numbers come from a CPU ``torch.Generator`` (a few bytes per image), so the
same generator state gives the same augmentation on a CPU and on a GPU, and a checkpoint can
store that state. Each augmentation comes as a pair: ``*_params`` draws the random numbers of a
batch, ``apply_*`` uses them, so that data-parallel processes can draw the numbers of the whole
global batch, as one process does, and each apply its own share.
"""

from functools import lru_cache

import torch
import torch.nn.functional as F


def crop_flip_params(batch_size, padding=4, flip=True, generator=None):
    """Random (top, left) offsets into the padded images, in 0..2*padding, and flip flags."""
    offsets = torch.randint(0, 2 * padding + 1, (2, batch_size), generator=generator)
    flips = (torch.randint(0, 2, (batch_size,), generator=generator).bool() if flip
             else torch.zeros(batch_size, dtype=torch.bool))
    return offsets[0], offsets[1], flips


def apply_crop_flip(images, top, left, flips, padding=4, channels_last=False):
    """Crop each image of the zero-padded batch at (top[i], left[i]) and mirror it if flips[i].

    ``images``: (B, C, H, W) of any dtype; the result has the same shape, dtype and device.
    ``channels_last=True`` gathers the pixels in (B, H, W, C) order, so that the result comes
    out in the channels_last memory format the training loop feeds the network with, and no
    second pass over the batch is needed to convert it (same values either way).
    """
    batch, channels, height, width = images.shape
    device = images.device
    top, left, flips = top.to(device), left.to(device), flips.to(device)
    padded = F.pad(images.contiguous(), (padding, padding, padding, padding))
    padded_height, padded_width = height + 2 * padding, width + 2 * padding
    rows = top[:, None] + torch.arange(height, device=device)                       # (B, H)
    columns = torch.arange(width, device=device)
    columns = torch.where(flips[:, None], width - 1 - columns, columns) + left[:, None]  # (B, W)
    # position of every output pixel inside its flattened padded image, then one gather
    pixel = rows[:, :, None] * padded_width + columns[:, None, :]                   # (B, H, W)
    channel = torch.arange(channels, device=device) * (padded_height * padded_width)
    if channels_last:
        index = (pixel[:, :, :, None] + channel).view(batch, -1)                    # (B, H*W*C)
        crops = padded.view(batch, -1).gather(1, index)
        return crops.view(batch, height, width, channels).permute(0, 3, 1, 2)
    index = (channel.view(1, -1, 1, 1) + pixel[:, None]).view(batch, -1)            # (B, C*H*W)
    return padded.view(batch, -1).gather(1, index).view(batch, channels, height, width)


def alternating_flip_sides(images, generator=None):
    """Alternating flips (airbench): whether each of ``images`` training images is mirrored in
    the even epochs (0, 2, ...) of the run, drawn once per run; it is mirrored in the odd ones
    when not (``alternating_flips``)."""
    return torch.randint(0, 2, (images,), generator=generator).bool()


def alternating_flips(sides, index, epoch):
    """The flip flags of the training images at ``index`` in ``epoch``: their ``sides``
    (``alternating_flip_sides``), inverted in odd epochs, so that every image is seen mirrored
    in every other epoch instead of after a coin toss per view."""
    return sides[index] ^ bool(epoch % 2)


def random_crop_flip(images, padding=4, flip=True, generator=None, channels_last=False):
    """Pad-and-crop plus horizontal flip for a whole (B, C, H, W) batch, on its own device."""
    top, left, flips = crop_flip_params(len(images), padding, flip, generator)
    return apply_crop_flip(images, top, left, flips, padding, channels_last=channels_last)


@lru_cache(maxsize=16)
def _scale_and_shift(mean, std, device, dtype):
    mean = torch.tensor(mean, dtype=torch.float64)
    std = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * std)).to(device=device, dtype=dtype).view(1, -1, 1, 1)
    shift = (-mean / std).to(device=device, dtype=dtype).view(1, -1, 1, 1)
    return scale, shift


def normalize(images, mean, std, channels_last=False, dtype=torch.float32):
    """uint8 images (0..255) -> ``(x / 255 - mean) / std`` per channel, as ``dtype``.

    ``channels_last=True`` returns the NHWC memory layout that convolutions on GPUs (tensor
    cores) and on CPUs (oneDNN) run fastest with; the tensor's shape stays (B, C, H, W).
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images (0..255), got {images.dtype}.")
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    scale, shift = _scale_and_shift(tuple(mean), tuple(std), images.device, dtype)
    return torch.addcmul(shift, images.to(dtype), scale)


# --- scale jittering (the paper's Section 3.1, "multi-scale training") ----------------------

def scale_crop_flip_params(batch_size, scale_min, scale_max, crop, flip=True, generator=None):
    """For every image: a scale S drawn uniformly from the whole numbers in [scale_min,
    scale_max], a (top, left) offset of a ``crop`` x ``crop`` window inside the S x S rescaled
    image, and a flip flag."""
    scales = torch.randint(scale_min, scale_max + 1, (batch_size,), generator=generator)
    room = (scales - crop + 1).double()
    offsets = (torch.rand(2, batch_size, generator=generator, dtype=torch.float64) * room).long()
    flips = (torch.randint(0, 2, (batch_size,), generator=generator).bool() if flip
             else torch.zeros(batch_size, dtype=torch.bool))
    return scales, offsets[0], offsets[1], flips


def apply_scale_crop_flip(images, scales, top, left, flips, crop):
    """Rescale image i of the uint8 batch to ``scales[i]`` pixels a side (bilinear, as
    ``F.interpolate(..., align_corners=False)`` does), cut the ``crop`` x ``crop`` window at
    (top[i], left[i]) and mirror it if flips[i]: one ``grid_sample`` for the whole batch, on
    the batch's device. Returns uint8 crops (B, C, crop, crop)."""
    batch, _, height, width = images.shape
    device = images.device
    scales = scales.to(device=device, dtype=torch.float32)
    top, left, flips = top.to(device), left.to(device), flips.to(device)
    steps = torch.arange(crop, device=device, dtype=torch.float32) + 0.5
    # centre of output pixel j, in the S-pixel image, as a fraction of its side, mapped to [-1, 1]
    columns = torch.where(flips[:, None], crop - steps, steps)                       # (B, crop)
    x = (left[:, None] + columns) / scales[:, None] * 2 - 1
    y = (top[:, None] + steps) / scales[:, None] * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)
    sampled = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    return sampled.round_().clamp_(0, 255).to(torch.uint8)


def random_scale_crop_flip(images, scale_min, scale_max, crop=None, flip=True, generator=None):
    """Scale jittering for a whole batch: each image rescaled to a random S in [scale_min,
    scale_max], a random ``crop`` x ``crop`` window of it (default: the images' own size),
    flipped half the time."""
    crop = crop or images.shape[-1]
    if scale_min < crop:
        raise ValueError(f"scale_jitter=({scale_min}, {scale_max}): the smallest scale must be at "
                         f"least the {crop}-pixel crop (the paper: S >= 224 for 224 crops).")
    scales, top, left, flips = scale_crop_flip_params(len(images), scale_min, scale_max, crop,
                                                      flip, generator)
    return apply_scale_crop_flip(images, scales, top, left, flips, crop)


# --- the colour shift (Krizhevsky et al., 2012; the paper's Section 3.1) -------------------

# Principal components of ImageNet's RGB pixel covariance (pixels scaled to 0..1), as used by
# fb.resnet.torch and most re-implementations of Krizhevsky et al.'s colour augmentation.
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = ((-0.5675, 0.7192, 0.4009),
                    (-0.5808, -0.0045, -0.8140),
                    (-0.5836, -0.6948, 0.4203))


def colour_shift_params(batch_size, std, generator=None):
    """The coefficients alpha ~ N(0, std) of each image's shift along the three components."""
    return torch.randn(batch_size, 3, generator=generator) * std


def apply_colour_shift(x, alpha, std):
    """Add to each normalised image of ``x`` (B, 3, H, W) the shift ``sum_i alpha_i * lambda_i *
    p_i`` (in 0..1 pixel units, divided by the normalisation's per-channel ``std``)."""
    if alpha is None or not bool(alpha.any()):
        return x
    shift = (alpha * torch.tensor(PCA_EIGENVALUES)) @ torch.tensor(PCA_EIGENVECTORS).T  # (B, 3)
    shift = shift / torch.tensor(std)
    return x + shift.to(x.device, non_blocking=True).view(-1, 3, 1, 1)
