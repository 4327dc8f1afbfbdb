"""Chapter 6's settings (notebooks/06_batch_norm.ipynb): two budgets, each the same for every run
that uses it, per profile.

Every run uses SGD with momentum 0.9 and weight decay 5e-4, as in the paper, the compact head and
ten classes. "long" is Experiment 1 (a learning-rate sweep: where does training end?), "short"
Experiments 2 and 3 (how does it start, at depth?). Everything runs in float32: some signals the
chapter measures are smaller than 1e-7.

Every run is a run record (``experiments.runs``) of the study ``batch_norm_<profile>``: the
chapter's ``train_grid`` calls keep them in ``study_folder(batch_norm_study_name(profile))``, and
read the quick profile's from the records the book ships (``results/batch_norm_quick/``, made by
``make results CHAPTER=6`` from ``batch_norm_plan``, the same runs).
"""

import functools
from dataclasses import dataclass

from ..architecture.model import ModelSpec
from ..training.cifar10 import load_cifar10
from ..training.initialisation import initialise, initialise_from_shallower, width_matched_std
from ..training.recipe import TrainConfig
from .settings import Experiment
from .studies import run_study
from .sweeps import grid_runs

LRS = (0.01, 0.05)   # the learning-rate sweep: the paper's rate and five times it
DEEP_LR = 0.05       # the learning rate of the deep-network experiments
PLATEAU = 2.2        # a training loss below this (mean of 8 steps): the network has started to learn
PRECISION = "fp32"
PROBE_AT = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # the steps a TrainingProbe keeps (and the last)


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

    def build(self, config, batch_norm=False, init="kaiming"):
        """A fresh network of ``spec(config, batch_norm)``: initialised as ``vgg()`` does
        (Kaiming-normal convolutions, torchvision's), or ``init="paper"``: every weight from one
        normal distribution of the paper's 0.01, raised to the same per-layer gain at this width
        (``width_matched_std``), biases zero; any other scheme of ``initialise``."""
        model = self.spec(config, batch_norm).build()
        if init == "paper":
            initialise(model, "paper", std=width_matched_std(self.width))
        elif init != "kaiming":
            initialise(model, init)
        return model

    @property
    def short_steps(self):
        """SGD steps of a run of the short budget (an incomplete last batch is dropped)."""
        recipe = self.short.recipe
        return recipe.epochs * (self.short.train_images // recipe.batch_size)

    @property
    def probe_steps(self):
        """The steps at which a short run's ``TrainingProbe`` records: those of ``PROBE_AT``
        within the run, and its last."""
        return sorted({*PROBE_AT, self.short_steps} & set(range(1, self.short_steps + 1)))


def _settings(width, batch_size, augment, long, short, seeds):
    spec = ModelSpec(config="A", width=width, head="compact", num_classes=10)
    base = TrainConfig(batch_size=batch_size, augment=augment, momentum=0.9, weight_decay=5e-4)
    (long_images, long_validation, long_test, long_epochs), (short_images, short_validation,
                                                               short_test, short_epochs) = long, short
    return BatchNormSettings(
        long=Experiment(spec, base.replace(epochs=long_epochs, schedule="cosine"), long_images,
                        long_validation, long_test, seeds),
        short=Experiment(spec, base.replace(epochs=short_epochs, schedule="constant"), short_images,
                         short_validation, short_test, seeds))


# (training images, validation images, test images, epochs) of each budget, and the seeds of
# every setting: five in quick, whose records the book ships (with three, several comparisons the
# page draws were under four standard errors; all its records cost about ten CPU minutes)
SETTINGS = {
    "quick": _settings(1 / 8, 64, False, long=(16_384, 2000, 10_000, 3), short=(2048, 1000, 1000, 4),
                       seeds=(0, 1, 2, 3, 4)),
    "full": _settings(1 / 4, 128, True, long=(20_000, 5000, 5000, 10), short=(20_000, 5000, 5000, 2),
                      seeds=(0, 1, 2)),
}


def batch_norm_study_name(profile):
    """The study of chapter 6's runs in profile ``profile``: ``batch_norm_<profile>``."""
    return f"batch_norm_{profile}"


def batch_norm_plan(settings, donor):
    """The chapter's runs, as its ``train_grid`` calls make them: ``{"sweep": Experiment 1 (A,
    plain and batch norm, long budget, every learning rate), "depth": Experiment 2 (A and E,
    plain and batch norm, short budget), "remedies": Experiment 3 (E from the paper's start, and
    from it with net A's layers copied in)}``; every label, network, recipe and seed, the probes
    on the first seed. ``donor(seed)``: the plain A of Experiment 2 with that seed, trained (the
    "paper init + A" runs copy its layers; ``donor_trained_again``)."""
    long, short = settings.long, settings.short
    sweep, depth = [], []
    for label, batch_norm in (("plain", False), ("batch norm", True)):
        sweep += grid_runs(lambda seed, bn=batch_norm: settings.build("A", bn), label,
                           settings.lrs, long.seeds, long.recipe, spec=settings.spec("A", batch_norm))
        for config in ("A", "E"):
            depth += grid_runs(lambda seed, c=config, bn=batch_norm: settings.build(c, bn),
                               f"{config}, {label}", (settings.deep_lr,), short.seeds, short.recipe,
                               probe_steps=settings.probe_steps if config == "E" else None,
                               spec=settings.spec(config, batch_norm))

    def from_a(seed):
        model = settings.build("E", init="paper")
        initialise_from_shallower(model, donor(seed))
        return model

    remedies = (grid_runs(lambda seed: settings.build("E", init="paper"), "paper init",
                          (settings.deep_lr,), short.seeds, short.recipe,
                          probe_steps=settings.probe_steps, spec=settings.spec("E"))
                + grid_runs(from_a, "paper init + A", (settings.deep_lr,), short.seeds,
                            short.recipe, probe_steps=settings.probe_steps, spec=settings.spec("E")))
    return {"sweep": sweep, "depth": depth, "remedies": remedies}


def donor_trained_again(settings, device=None, **fit_options):
    """``donor(seed)`` for ``batch_norm_plan``: Experiment 2's plain A of that seed trained again
    on the short budget's data (loaded on first use), once per seed (as long as a short run of A)."""
    @functools.lru_cache(maxsize=1)
    def data():
        return load_cifar10(**settings.short.data_kwargs(device))

    @functools.lru_cache(maxsize=None)
    def donor(seed):
        runs = grid_runs(None, "A, plain", (settings.deep_lr,), (seed,), settings.short.recipe,
                         spec=settings.spec("A"))
        (result,) = run_study(runs, data(), None, progress=False, keep_models=True, log=None,
                              **dict(fit_options, precision=settings.precision))
        return result.model

    return donor
