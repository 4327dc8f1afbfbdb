"""Small data and networks for the tests of chapter 11's library."""

import torch

from vgg_lib import ModelSpec, TrainConfig, vgg
from vgg_lib.experiments.transfer_features import TransferSettings
from vgg_lib.training.cifar10 import CLASSES
from vgg_lib.training.data import CIFAR10Data
from vgg_lib.transfer.split import SOURCE_CLASSES, TARGET_CLASSES, class_split

TINY = TrainConfig(epochs=1, batch_size=16, lr=0.05, tta_flip=False, crop_padding=0)


def cifar_like(per_class=12, seed=0):
    """A CIFAR10Data with ``per_class`` training, 3 validation and 4 test images of every class;
    every image's pixels say which class it is (its value 20 * label + noise)."""
    generator = torch.Generator().manual_seed(seed)

    def split(count):
        labels = torch.arange(10).repeat_interleave(count)
        noise = torch.randint(0, 15, (len(labels), 3, 32, 32), generator=generator)
        return (20 * labels.view(-1, 1, 1, 1) + noise).to(torch.uint8), labels

    (x, y), (xv, yv), (xt, yt) = split(per_class), split(3), split(4)
    return CIFAR10Data(x, y, xt, yt, list(CLASSES), "test", (0.4, 0.4, 0.4), (0.25, 0.25, 0.25),
                       xv, yv)


def small_model(classes=6, seed=0, batch_norm=True):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=classes).eval()


def small_model(classes=6, seed=0, batch_norm=True):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=classes).eval()


def tiny_settings(**changes):
    values = dict(name="tiny", seeds=(0, 1), budgets=(2, None),
                  spec=ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact",
                                 num_classes=6),
                  recipe=TINY, train_images=None, validation=0, test_images=None,
                  fine_tune={2: TINY.replace(epochs=2), None: TINY},
                  scratch={2: TINY.replace(epochs=2), None: TINY}, l2_grid=(1.0, 0.01))
    values.update(changes)
    return TransferSettings(**values)


def tiny_tasks():
    data = cifar_like(per_class=8)
    source = class_split(data, SOURCE_CLASSES)
    return source, class_split(data, TARGET_CLASSES, source.mean, source.std)
