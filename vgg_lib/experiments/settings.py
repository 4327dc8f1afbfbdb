"""``Experiment``: the one shape of an experiment chapter's settings (chapters 6, 8 and 9 keep
theirs in ``vgg_lib.experiments.<chapter>``, one per profile): the network, the recipe, the data
it trains and is tested on, and the seeds."""

from dataclasses import dataclass, replace

from ..architecture.model import ModelSpec
from ..training.recipe import TrainConfig


@dataclass(frozen=True)
class Experiment:
    spec: ModelSpec          # the network (a study varies its configuration)
    recipe: TrainConfig      # the recipe (each run sets its own seed, a sweep its learning rate)
    train_images: int        # training images kept; None: every one outside the validation split
    validation: int          # training images set aside as the validation split
    test_images: int         # test images kept; None: all of them
    seeds: tuple = (0, 1, 2)

    def data_kwargs(self, device=None):
        """The keyword arguments of ``load_cifar10`` for this experiment's data."""
        return dict(device=device, train_images=self.train_images, validation=self.validation,
                    test_images=self.test_images, seed=0)

    def replace(self, **changes):
        return replace(self, **changes)

    def describe(self):
        train = "all" if self.train_images is None else f"{self.train_images:,}"
        test = "all" if self.test_images is None else f"{self.test_images:,}"
        return (f"{self.spec.describe()}; {train} training images, {self.validation:,} "
                f"validation images, {test} test images; seeds {', '.join(map(str, self.seeds))}")
