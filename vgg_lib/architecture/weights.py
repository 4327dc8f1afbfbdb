"""torchvision's pretrained ImageNet weights, and state dicts checked before they load."""

import torch

from .configs import TORCHVISION_NAMES
from .model import check_state_dict, vgg


def load_state_dict_checked(model, state_dict):
    """``model.load_state_dict(state_dict, strict=True)`` with an error a student can act on
    (``check_state_dict``), for any model: a ``VGG`` checks by itself, other modules here."""
    check_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return model


def torchvision_name(config, batch_norm=False):
    """torchvision's builder name of configuration ``config`` ("vgg16", "vgg16_bn"), or None
    where torchvision has none (A-LRN, C, the controls)."""
    name = TORCHVISION_NAMES.get(str(config).strip().upper())
    return None if name is None else name + ("_bn" if batch_norm else "")


def torchvision_model(config, batch_norm=False):
    """torchvision's own network of configuration ``config``, untrained (``weights=None``), to
    compare with this book's; build it under ``torch.device("meta")`` to count without memory."""
    import torchvision  # here, not at the top: importing it costs seconds

    name = torchvision_name(config, batch_norm)
    if name is None:
        raise ValueError(f"torchvision builds configurations {', '.join(TORCHVISION_NAMES)} only, "
                         f"not {config!r}.")
    return getattr(torchvision.models, name)(weights=None)


def torchvision_weights(config, batch_norm=False):
    """torchvision's ``IMAGENET1K_V1`` weights enum for configuration A, B, D or E (its
    ``.meta`` holds torchvision's documented parameter count and GFLOPS)."""
    import torchvision  # see torchvision_model

    name = torchvision_name(config, batch_norm)
    if name is None:
        raise ValueError(
            f"torchvision ships pretrained weights for configurations "
            f"{', '.join(TORCHVISION_NAMES)} only, not {config!r}."
        )
    # "vgg16_bn" -> torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1
    return torchvision.models.get_weight(f"{name.upper()}_Weights.IMAGENET1K_V1")


def pretrained_vgg(config="D", batch_norm=False, progress=True):
    """Configuration ``config`` with torchvision's ImageNet weights (downloads once, needs internet).

    Returns ``(model, weights)``; ``weights.transforms()`` is the matching preprocessing and
    ``weights.meta["categories"]`` the 1000 class names.
    """
    weights = torchvision_weights(config, batch_norm)
    try:
        state_dict = weights.get_state_dict(progress=progress, check_hash=True)
    except OSError as error:  # URLError is an OSError
        raise RuntimeError(
            f"Could not download torchvision's pretrained weights {weights} ({error}). "
            "They need internet access once; afterwards they are cached in "
            f"{torch.hub.get_dir()}. Offline, use a model trained in this book instead."
        ) from error
    model = vgg(config, batch_norm=batch_norm, init_weights=False)  # every weight is overwritten
    load_state_dict_checked(model, state_dict)
    return model.eval(), weights
