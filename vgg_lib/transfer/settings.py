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
# budget, so that only the starting weights differ; the peak learning rate of each chosen on
# the target's validation split (TARGET_LR_TUNING). A budget of 10 images per class is one
# batch of 40: 60 epochs are 60 steps. PROVISIONAL: the pilots are still running.
FINE_TUNE = {10: _recipe(60, 0.1), 100: _recipe(40, 0.1), None: _recipe(4, 0.1)}
SCRATCH = {10: _recipe(60, 0.3), 100: _recipe(40, 0.3), None: _recipe(4, 0.3)}

RECORDS = TransferSettings(name="records", seeds=(0, 1, 2, 3, 4), fine_tune=FINE_TUNE,
                           scratch=SCRATCH)
QUICK = TransferSettings(name="quick", seeds=(0, 1), fine_tune=FINE_TUNE, scratch=SCRATCH,
                         pretrain=PRETRAIN.replace(epochs=3))
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
