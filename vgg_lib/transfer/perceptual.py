"""Perceptual distance: is a picture closer to a slightly changed copy of itself than to another
picture? Pixels against a VGG's block features.

Johnson et al. (2016) train image generators with a "perceptual loss", distances between VGG-16
feature maps instead of pixels; Zhang et al. (2018, LPIPS) show such feature distances agree with
human judgements of similarity far better than pixel distances do, for trained networks and, less
so, for untrained ones. The feature distance here is theirs without the learned weights: at every
position the feature vector is scaled to unit length (over channels), and the squared difference
of two images' unit vectors is averaged over positions.

The changes (``perturbations``): the image shifted right by 1 and by 2 pixels (the edge column
repeated), Gaussian noise, a Gaussian blur, a left-right flip; and two controls that are *not*
the same picture: another image of the same class, an image of another class.
"""

import torch
import torch.nn.functional as F

from ..inspection.feature_maps import block_ends, capture_activations

# The changes, with the settings the chapter uses (images on a 0..1 scale).
NOISE_STD = 0.05   # Gaussian noise, standard deviation: about 13 grey levels of 255
BLUR_SIGMA = 1.0   # Gaussian blur, pixels (a 5x5 kernel)
KINDS = ("shift 1 px", "shift 2 px", "noise", "blur", "flip", "same class", "other class")
SAME_PICTURE = KINDS[:5]   # changed copies of the picture itself
CONTROLS = KINDS[5:]       # other pictures


def to_unit(images):
    """uint8 images (0..255) -> float images on a 0..1 scale; float images pass unchanged."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def shifted(images, pixels):
    """Every image moved ``pixels`` to the right; the left edge column is repeated to fill in."""
    images = to_unit(images)
    if pixels == 0:
        return images
    padded = F.pad(images, (pixels, 0, 0, 0), mode="replicate")
    return padded[..., :images.shape[-1]]


def with_noise(images, std=NOISE_STD, seed=0):
    """Gaussian noise of standard deviation ``std`` added, clipped to 0..1."""
    images = to_unit(images)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return (images + std * noise.to(images.device)).clamp(0, 1)


def blurred(images, sigma=BLUR_SIGMA):
    """A Gaussian blur of standard deviation ``sigma`` pixels (kernel 2*ceil(2 sigma)+1 wide,
    the edges repeated)."""
    images = to_unit(images)
    radius = max(1, int(torch.ceil(torch.tensor(2 * sigma))))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).to(images.device)
    channels = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def partners(labels, same_class, seed=0):
    """For each image, the index of another image: of the same class (``same_class=True``) or of
    another class, drawn at random with ``seed``; never the image itself."""
    labels = torch.as_tensor(labels).cpu()
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.empty(len(labels), dtype=torch.long)
    for i, label in enumerate(labels.tolist()):
        pool = torch.nonzero((labels == label) if same_class else (labels != label)).flatten()
        pool = pool[pool != i]
        if not len(pool):
            raise ValueError(f"Image {i} has no partner {'of its class' if same_class else 'of another class'}: "
                             "give at least two images of every class, and two classes.")
        chosen[i] = pool[torch.randint(len(pool), (1,), generator=generator)]
    return chosen


def perturbations(images, labels, seed=0):
    """``{kind: images}`` for every kind of ``KINDS``: the second image of each pair, on a 0..1
    scale, in the order of ``images`` (the first image of each pair is ``images`` itself)."""
    images = to_unit(images)
    return {"shift 1 px": shifted(images, 1), "shift 2 px": shifted(images, 2),
            "noise": with_noise(images, seed=seed), "blur": blurred(images),
            "flip": images.flip(-1),
            "same class": images[partners(labels, True, seed).to(images.device)],
            "other class": images[partners(labels, False, seed).to(images.device)]}


def pixel_distance(first, second):
    """Root-mean-square difference of two batches of images (0..1 scale), one value per pair."""
    return (to_unit(first) - to_unit(second)).pow(2).flatten(1).mean(dim=1).sqrt()


def feature_distance(first, second, eps=1e-10):
    """Zhang et al.'s distance between two batches of feature maps ``(N, C, H, W)``, without
    learned weights: unit-normalise over channels at every position, squared difference, mean
    over positions. 0 for identical maps; at most 2 for ReLU outputs (non-negative)."""
    a = first / (first.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    b = second / (second.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    return (a - b).pow(2).sum(dim=1).flatten(1).mean(dim=1)


@torch.no_grad()
def distances(model, first, second, mean, std, layers=None, batch_size=500):
    """``{"pixels": (N,), <block end>: (N,), ...}``: the pixel distance and the feature distance
    at every block end (or ``layers``) between the pairs ``first[i]``, ``second[i]`` (images
    on a 0..1 scale or uint8), the model fed with ``(x - mean) / std``, in evaluation mode."""
    layers = list(block_ends(model)) if layers is None else list(layers)
    device = next(model.parameters()).device
    mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=device).view(1, -1, 1, 1)
    found = {"pixels": [], **{layer: [] for layer in layers}}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(first), batch_size):
            a = to_unit(first[start:start + batch_size]).to(device)
            b = to_unit(second[start:start + batch_size]).to(device)
            found["pixels"].append(pixel_distance(a, b).cpu())
            both = capture_activations(model, (torch.cat([a, b]) - mean) / std, layers)
            for layer, activation in both.items():
                fa, fb = activation.float().chunk(2)
                found[layer].append(feature_distance(fa, fb).cpu())
    finally:
        model.train(was_training)
    return {name: torch.cat(parts) for name, parts in found.items()}


def distance_study(model, images, labels, mean, std, seed=0):
    """``{kind: {metric: (N,) distances}}`` for every kind of ``KINDS``: each image against its
    changed copy or its partner, in pixels and at every block end."""
    return {kind: distances(model, images, others, mean, std)
            for kind, others in perturbations(images, labels, seed).items()}


def relative_medians(study):
    """``{metric: {kind: median distance / median distance to an image of another class}}``:
    each metric on its own scale, 1 meaning "as far as a picture of something else"."""
    metrics = next(iter(study.values())).keys()
    reference = {m: study["other class"][m].median().item() for m in metrics}
    return {m: {kind: study[kind][m].median().item() / reference[m] for kind in study}
            for m in metrics}


def same_picture_rate(study, control="same class"):
    """``{metric: {kind: share of images whose changed copy is closer than their `control`}}``:
    how often each metric says "this is the same picture" rather than another one."""
    metrics = next(iter(study.values())).keys()
    return {m: {kind: (study[kind][m] < study[control][m]).double().mean().item()
                for kind in SAME_PICTURE} for m in metrics}


def across_networks(tables):
    """``{metric: {kind: (mean, standard deviation)}}`` of several networks' ``relative_medians``
    (or ``same_picture_rate``) tables: the spread is that of the networks (their seeds)."""
    if not tables:
        raise ValueError("across_networks needs at least one table.")
    summary = {}
    for metric, kinds in tables[0].items():
        summary[metric] = {}
        for kind in kinds:
            values = torch.tensor([table[metric][kind] for table in tables], dtype=torch.float64)
            spread = values.std().item() if len(values) > 1 else 0.0
            summary[metric][kind] = (values.mean().item(), spread)
    return summary
