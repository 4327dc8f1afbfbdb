"""Chapter 11's settings, both profiles, in one commented place (airbench style).

``quick``: what a reader without stored results trains, on a CPU, in about 6 minutes.
``records``: the runs the chapter reports (at least five seeds wherever it compares), in fp32 on
the book's 2-core CPU. Every choice below was made on validation splits only (the source's
3,000 validation images for pretraining, the target's 2,000 for the probes' penalties and the
fine-tuning and from-scratch recipes); the target's 4,000 test images are evaluated once per
reported run.
"""

from dataclasses import asdict, dataclass, replace

from ..architecture.spec import ModelSpec
from ..training.recipe import TrainConfig
from .probes import L2_GRID

# --- the pieces every profile shares ----------------------------------------------------------

# Chapter 5's quick network: VGG-11-BN (configuration A) at a quarter of the paper's width, with
# the compact head (global average pooling + one linear layer), here for the six source classes.
NETWORK = ModelSpec(config="A", batch_norm=True, width=0.25, head="compact", num_classes=6)
# Chapter 5's quick recipe (one-cycle, peak lr 0.3, Nesterov, label smoothing 0.1, flips but no
# crop padding) on the 27,000 source training images: 5 epochs = 135,000 images seen, the quick
# profile's 140,000 give or take.
PRETRAIN = TrainConfig(epochs=5, batch_size=128, lr=0.3, weight_decay=5e-4, label_smoothing=0.1,
                       nesterov=True, tta_flip=False, crop_padding=0)
# CIFAR-10's training images set aside as validation splits, class-balanced: 500 per class, so
# 3,000 for the source (six animals) and 2,000 for the target (four vehicles), as in chapter 5.
VALIDATION = 5_000
# Labelled target images per class; None: all of them (4,500 per class after validation).
BUDGETS = (10, 100, None)


@dataclass(frozen=True)
class TransferSettings:
    name: str
    seeds: tuple                  # each seed: a pretraining run, its untrained twin (the random
                                  # control), the label subsets, the fine-tuning and from-scratch
                                  # runs; pairs of methods are compared seed by seed
    fine_tune: dict               # budget -> recipe for fine-tuning the pretrained network
    scratch: dict                 # budget -> recipe for the same network from its random start
    network: ModelSpec = NETWORK
    pretrain: TrainConfig = PRETRAIN
    validation: int = VALIDATION
    budgets: tuple = BUDGETS
    l2_grid: tuple = L2_GRID      # the probes' penalties, chosen per probe on validation
    precision: str = "fp32"       # the records' precision (the stored results are fp32)
    perceptual_images: int = 1_000  # target test images in the perceptual-distance study
    texture_size: tuple = (64, 64)  # the synthesised texture (the exemplar is 32 x 32)
    texture_iterations: int = 200   # L-BFGS iterations of one synthesis

    def __post_init__(self):
        missing = [b for b in self.budgets if b not in self.fine_tune or b not in self.scratch]
        if missing:
            raise ValueError(f"Settings {self.name!r}: no fine-tuning or from-scratch recipe for "
                             f"the budget(s) {missing}.")

    def replace(self, **changes):
        return replace(self, **changes)

    def to_dict(self):
        """Every setting as plain data (JSON-ready)."""
        found = asdict(self)
        found["network"] = self.network.to_dict()
        found["pretrain"] = self.pretrain.to_dict()
        for name in ("fine_tune", "scratch"):
            found[name] = {str(b): r.to_dict() for b, r in getattr(self, name).items()}
        return found

    def describe(self):
        """A few lines: the network, the pretraining, the budgets, the recipes, the seeds."""
        def recipe(r):
            return f"{r.epochs} epochs at peak lr {r.lr:g}"

        budgets = ", ".join(("all" if b is None else str(b)) for b in self.budgets)
        lines = [f"transfer settings {self.name!r}: {self.network.describe()}, "
                 f"{self.precision}, seeds {', '.join(map(str, self.seeds))}",
                 f"pretraining on the source task: {recipe(self.pretrain)}, batch "
                 f"{self.pretrain.batch_size}; label budgets per target class: {budgets}"]
        for name, recipes in (("fine-tuning", self.fine_tune), ("from scratch", self.scratch)):
            lines.append(f"{name}: " + "; ".join(
                f"{'all' if b is None else b}/class {recipe(r)}" for b, r in recipes.items()))
        return "\n".join(lines)

    def seed_fields(self):
        """The settings one seed's results depend on (not the name, not which other seeds the
        study has, not the perceptual and texture settings, which the chapter applies later)."""
        keep = ("network", "pretrain", "validation", "budgets", "l2_grid", "precision",
                "fine_tune", "scratch")
        return {k: v for k, v in self.to_dict().items() if k in keep}


def _recipe(epochs, lr):
    """The chapter's target-task recipe: the pretraining recipe with its own epochs and lr."""
    return PRETRAIN.replace(epochs=epochs, lr=lr)


# Fine-tuning and from scratch: the same epochs (hence the same optimiser steps) for both at a
# budget, so that only the starting weights differ; the peak learning rate of each chosen per
# budget on the target's validation split (TARGET_LR_TUNING below). A budget of 10 images per
# class is one batch of 40, so its 60 epochs are 60 steps; 100 per class are 3 batches of 128
# (40 epochs, 120 steps); all 18,000 images 140 batches (4 epochs, 560 steps).
FINE_TUNE = {10: _recipe(60, 0.1), 100: _recipe(40, 0.6), None: _recipe(4, 0.3)}
SCRATCH = {10: _recipe(60, 0.01), 100: _recipe(40, 0.1), None: _recipe(4, 0.3)}
# The record of that choice: (method, labels per class (None: all), peak lr, final validation
# accuracy of seeds 0 and 1, or of seed 0 alone). Fine-tuning started from one pretrained
# network (seed 0 of the records' pretraining, its source validation accuracy 75.5 %); the
# seeds drew the labelled images, the new classifier and the data order. The highest mean
# wins; every other setting as above. The test set was never evaluated. fp32, one thread per
# run, two runs at a time on the book's 2-core Intel Xeon beside other work (times therefore
# not quoted), 2026-12-04.
TARGET_LR_TUNING = (
    ("fine-tune", 10, 0.01, (0.525, 0.496)),
    ("fine-tune", 10, 0.03, (0.55, 0.5355)),
    ("fine-tune", 10, 0.1, (0.5615, 0.547)),        # chosen
    ("fine-tune", 10, 0.3, (0.5555, 0.5495)),
    ("fine-tune", 100, 0.01, (0.65, 0.642)),
    ("fine-tune", 100, 0.03, (0.7055, 0.672)),
    ("fine-tune", 100, 0.1, (0.735, 0.7065)),
    ("fine-tune", 100, 0.3, (0.756, 0.7195)),
    ("fine-tune", 100, 0.6, (0.7675, 0.7325)),      # chosen
    ("fine-tune", 100, 1.0, (0.746, 0.727)),
    ("fine-tune", None, 0.01, (0.8165,)),
    ("fine-tune", None, 0.03, (0.867,)),
    ("fine-tune", None, 0.1, (0.9005, 0.9085)),
    ("fine-tune", None, 0.3, (0.912, 0.916)),       # chosen
    ("fine-tune", None, 0.6, (0.9185, 0.9065)),
    ("scratch", 10, 0.003, (0.4545, 0.427)),
    ("scratch", 10, 0.01, (0.482, 0.46)),           # chosen
    ("scratch", 10, 0.03, (0.4525, 0.4555)),
    ("scratch", 10, 0.1, (0.4585, 0.3915)),
    ("scratch", 10, 0.3, (0.405,)),
    ("scratch", 100, 0.03, (0.609, 0.582)),
    ("scratch", 100, 0.1, (0.658, 0.605)),          # chosen
    ("scratch", 100, 0.3, (0.577,)),
    ("scratch", None, 0.1, (0.8845, 0.8945)),
    ("scratch", None, 0.3, (0.8975, 0.892)),        # chosen
    ("scratch", None, 0.6, (0.8865, 0.8875)),
)

# records: five seeds (the fewest the chapter compares methods with), the recipes above.
# quick: two seeds, pretraining shortened to 3 epochs and the all-labels runs to 2, so that
# the chapter runs in about six minutes on two CPU cores without stored records.
RECORDS = TransferSettings(name="records", seeds=(0, 1, 2, 3, 4), fine_tune=FINE_TUNE,
                           scratch=SCRATCH)
QUICK = TransferSettings(
    name="quick", seeds=(0, 1), pretrain=PRETRAIN.replace(epochs=3),
    fine_tune={**FINE_TUNE, None: FINE_TUNE[None].replace(epochs=2)},
    scratch={**SCRATCH, None: SCRATCH[None].replace(epochs=2)}, perceptual_images=500)
PROFILES = {settings.name: settings for settings in (QUICK, RECORDS)}


def chapter_settings(name=None):
    """The settings the chapter runs: ``name`` ("quick" or "records"), or by default "records"
    when every seed of the records is stored in its study folder, else "quick"."""
    from .study import stored_seeds  # the study engine reads settings; settings only ask it

    if name is None:
        name = "records" if set(stored_seeds(RECORDS)) == set(RECORDS.seeds) else "quick"
    if name not in PROFILES:
        raise ValueError(f"No transfer settings {name!r}; choose one of {', '.join(PROFILES)}.")
    return PROFILES[name]
