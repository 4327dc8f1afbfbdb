"""A pretrained network for a new task: its convolutional layers kept, its classifier new.

``with_new_head(pretrained, num_classes)`` builds the same architecture for ``num_classes``
outputs, copies every weight of ``features`` (the convolutions and their batch norms, running
statistics included) and leaves the classifier freshly initialised. Training that network on the
target task is *fine-tuning*; training ``spec.build()`` for the same task from its random
initialisation is *training from scratch*; ``fit`` does both with one recipe.
"""

from ..architecture.model import build
from ..training.reproducibility import seed_everything


def with_new_head(pretrained, num_classes, seed=0):
    """A copy of ``pretrained`` (a VGG with a ``spec``) whose classifier has ``num_classes``
    outputs, initialised with ``seed``; every ``features`` weight comes from ``pretrained``.
    ``pretrained`` itself is left untouched."""
    spec = getattr(pretrained, "spec", None)
    if spec is None:
        raise TypeError("with_new_head needs a VGG built from a ModelSpec (vgg(...) or "
                        "spec.build()), which records its architecture in model.spec.")
    seed_everything(seed)
    model = build(spec.replace(num_classes=num_classes))
    features = {k: v for k, v in pretrained.state_dict().items() if k.startswith("features.")}
    missing, unexpected = model.load_state_dict(features, strict=False)
    if unexpected or any(k.startswith("features.") for k in missing):
        raise ValueError(f"The pretrained features do not fit the new network: missing "
                         f"{[k for k in missing if k.startswith('features.')][:3]}, unexpected "
                         f"{unexpected[:3]}.")
    device = next(pretrained.parameters()).device
    return model.to(device)


def from_scratch(spec, num_classes, seed=0):
    """The same architecture as ``spec`` for ``num_classes`` outputs, initialised with ``seed``
    (the control of fine-tuning: everything equal but the starting weights)."""
    seed_everything(seed)
    return build(spec.replace(num_classes=num_classes))

