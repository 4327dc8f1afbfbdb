"""Rewrites of a VGG-BN that the speed benchmarks measure (issue #25): candidates for a faster
training step, not settings of the book's profiles. Each takes a built model and changes it in
place; the parameters of every layer they keep keep their state-dict keys (torchvision's).

* ``pool-before-relu``: each max-pool moved in front of the ReLU it follows. The same function
  and the same gradients, bit for bit: ReLU never lowers the order of two numbers, so the
  largest of four rectified numbers is the rectified largest, and the gradient reaches the same
  winner (or, where all four are negative, nothing). The ReLU then runs on a quarter of the
  numbers. ``tests/training/test_speed_variants.py`` checks the equality.
* ``no-first-batch-norm``: the first convolution's batch norm taken out (an ``nn.Identity`` in
  its place keeps the later layers' keys). Another network: airbench's whitened first layer has
  no normalisation after it either; whether it trains as well is a question for validation runs
  (``benchmarks/tune_quick_budget.py --variant``).
* ``both``: the two together.

    python benchmarks/training_speed.py --precision fp32 --variant pool-before-relu
"""

from torch import nn

VARIANTS = ("as-is", "pool-before-relu", "no-first-batch-norm", "both")


def pool_before_relu(model):
    """Swap every ``ReLU, MaxPool2d`` pair of ``model.features`` into ``MaxPool2d, ReLU``."""
    layers = model.features
    for index in range(len(layers) - 1):
        if isinstance(layers[index], nn.ReLU) and isinstance(layers[index + 1], nn.MaxPool2d):
            layers[index], layers[index + 1] = layers[index + 1], layers[index]
    return model


def without_first_batch_norm(model):
    """Replace the batch norm right after the first convolution by ``nn.Identity``."""
    layers = model.features
    if not (isinstance(layers[0], nn.Conv2d) and isinstance(layers[1], nn.BatchNorm2d)):
        raise ValueError("no-first-batch-norm needs a VGG-BN whose features start with a "
                         f"convolution and its batch norm; this one starts with "
                         f"{type(layers[0]).__name__}, {type(layers[1]).__name__}")
    layers[1] = nn.Identity()
    return model


def apply_variant(model, variant):
    """``model`` rewritten as ``variant`` (one of ``VARIANTS``); "as-is" leaves it alone."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if variant in ("no-first-batch-norm", "both"):
        without_first_batch_norm(model)
    if variant in ("pool-before-relu", "both"):
        pool_before_relu(model)
    return model
