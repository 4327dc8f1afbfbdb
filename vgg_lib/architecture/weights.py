"""torchvision's pretrained ImageNet weights, and state dicts checked before they load."""

import torch

from .configs import TORCHVISION_NAMES
from .model import vgg


def describe_state_dict(state_dict):
    """Guess which configuration a VGG state dict came from: (conv layers, batch norm?)."""
    conv_weights = [k for k, v in state_dict.items()
                    if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4]
    batch_norm = any(k.endswith("running_mean") for k in state_dict)
    return len(conv_weights), batch_norm


def load_state_dict_checked(model, state_dict):
    """``model.load_state_dict(state_dict, strict=True)`` with an error a student can act on."""
    if isinstance(state_dict, dict) and "model" in state_dict and "format" in state_dict:
        raise TypeError("This is a whole checkpoint (weights, recipe, history...), not a state "
                        "dict: use load_checkpoint(path, model) or load_model(path), or pass "
                        "checkpoint['model'].")
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError(f"Expected a state dict (parameter names -> tensors, as "
                        f"model.state_dict() gives), not a {type(state_dict).__name__}"
                        + (" holding non-tensor values" if isinstance(state_dict, dict) else "")
                        + ".")
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or mismatched:
        theirs, their_bn = describe_state_dict(state_dict)
        ours, our_bn = describe_state_dict(own)
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[:3]}")
        raise ValueError(
            f"This state dict does not fit the model (configuration {getattr(model, 'config', '?')}, "
            f"{ours} convolutions, batch_norm={our_bn}); the state dict has {theirs} convolutions "
            f"and batch_norm={their_bn}. " + "; ".join(problems) + ". "
            "Build the model with the same configuration, batch_norm, width, head and "
            "num_classes as the one that was saved."
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def torchvision_weights(config, batch_norm=False):
    """torchvision's ``IMAGENET1K_V1`` weights enum for configuration A, B, D or E."""
    import torchvision

    key = str(config).strip().upper()
    if key not in TORCHVISION_NAMES:
        raise ValueError(
            f"torchvision ships pretrained weights for configurations "
            f"{', '.join(TORCHVISION_NAMES)} only, not {config!r}."
        )
    name = TORCHVISION_NAMES[key] + ("_bn" if batch_norm else "")
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
