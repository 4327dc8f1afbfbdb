"""Chapter 6's settings (notebooks/06_batch_norm.ipynb): two budgets, each the same for every run
that uses it, per profile.

Every run uses SGD with momentum 0.9 and weight decay 5e-4, as in the paper, the compact head and
ten classes. "long" is Experiment 1 (a learning-rate sweep: where does training end?), "short"
Experiments 2 and 3 (how does it start, at depth?). Everything runs in float32: some signals the
chapter measures are smaller than 1e-7.
"""

from dataclasses import dataclass

from ..architecture.model import ModelSpec
from ..training.recipe import TrainConfig
from .settings import Experiment

LRS = (0.01, 0.05)   # the learning-rate sweep: the paper's rate and five times it
DEEP_LR = 0.05       # the learning rate of the deep-network experiments
PLATEAU = 2.2        # a training loss below this (mean of 8 steps): the network has started to learn
PRECISION = "fp32"


@dataclass(frozen=True)
class BatchNormSettings:
    long: Experiment     # Experiment 1: cosine schedule
    short: Experiment    # Experiments 2 and 3: constant learning rate
    lrs: tuple = LRS
    deep_lr: float = DEEP_LR
    plateau: float = PLATEAU
    precision: str = PRECISION

    @property
    def width(self):
        return self.long.spec.width

    def spec(self, config, batch_norm=False):
        """The chapter's network: configuration ``config`` at its width, with or without batch norm."""
        return self.long.spec.replace(config=config, batch_norm=batch_norm)


def _settings(width, batch_size, augment, long, short):
    spec = ModelSpec(config="A", width=width, head="compact", num_classes=10)
    base = TrainConfig(batch_size=batch_size, augment=augment, momentum=0.9, weight_decay=5e-4)
    (long_images, long_validation, long_test, long_epochs), (short_images, short_validation,
                                                               short_test, short_epochs) = long, short
    return BatchNormSettings(
        long=Experiment(spec, base.replace(epochs=long_epochs, schedule="cosine"), long_images,
                        long_validation, long_test),
        short=Experiment(spec, base.replace(epochs=short_epochs, schedule="constant"), short_images,
                         short_validation, short_test))


# (training images, validation images, test images, epochs) of each budget
SETTINGS = {
    "quick": _settings(1 / 8, 64, False, long=(16_384, 2000, 10_000, 3), short=(2048, 1000, 1000, 4)),
    "full": _settings(1 / 4, 128, True, long=(20_000, 5000, 5000, 10), short=(20_000, 5000, 5000, 2)),
}
