"""Chapter 10's settings (notebooks/10_residual_networks.ipynb): plain against residual VGG
columns of increasing depth, both profiles in one commented place, the pilot runs that chose
them, and the published figures the chapter sets beside its own. The runs go through the study
engine (``vgg_lib.experiments.studies``); the seed arithmetic is ``experiments.statistics``.

The networks: configurations A, D, E (Table 1) and the deeper columns E-6, E-8
(``configs.DEEPER``), each plain (``shortcuts="none"``) and residual (``shortcuts="identity"``,
``architecture/residual.py``); batch norm after every convolution, the compact head (global
average pooling and one linear layer), ten classes. One recipe and one budget for every network:
chapter 5's optimiser (SGD with Nesterov momentum 0.9, weight decay 5e-4 on the weights, a
one-cycle learning rate, label smoothing 0.1, batch 128, flips without crop padding). Every run
measures, after every epoch, its training loss and accuracy in eval mode on fixed training
images (``fit(..., train_eval_images=...)``), beside the validation accuracy, and the test
accuracy once at its end.
"""

from dataclasses import dataclass

import torch

from ..architecture.configs import weight_layer_count
from ..architecture.model import ModelSpec
from ..training.diagnostics import probe_batch
from ..training.recipe import TrainConfig
from .settings import Experiment
from .runs import read_record, record_path, shipped_folder
from .studies import StudyRun, study_folder

RESIDUAL_CONFIGS = ("A", "D", "E", "E-6", "E-8")   # the depth axis, shallow to deep
SHORTCUT_KINDS = ("none", "identity")              # plain, residual
LABELS = {"none": "plain", "identity": "residual"}


@dataclass(frozen=True)
class ResidualExperiment(Experiment):
    """An ``Experiment`` over several columns: ``configs`` (each plain and residual), the
    training images evaluated in eval mode after every epoch, and how the runs are computed."""

    configs: tuple = RESIDUAL_CONFIGS
    train_eval_images: int = 2_000
    precision: str = "auto"
    threads: int = None   # torch.set_num_threads for the study (None: leave it)


SPEC = ModelSpec(config="A", batch_norm=True, head="compact", num_classes=10)
# The chapter's recipe (chapter 5's optimiser); the peak learning rate was chosen on the
# validation split (PILOTS, below).
RECIPE = TrainConfig(epochs=5, batch_size=128, lr=0.1, weight_decay=5e-4, label_smoothing=0.1,
                     nesterov=True, tta_flip=False, crop_padding=0)

RESIDUAL_STUDY = {
    # What a reader trains from scratch on two CPU cores, sized for the chapter to execute in
    # about six minutes: the shallowest and the deepest column, plain and residual, two seeds,
    # chapter 8's quick budget (8,000 images x 3 epochs, 186 steps). Two seeds settle nothing
    # by the book's rule, and the page says so: it gives these comparisons as numbers. One
    # thread, fp32: on the book's shared 2-core Xeon (2026-12-04, load average about 5) one
    # thread trained A at 1,321 and E-8 at 621 images/s, two threads at 89 and 44 (they fought
    # the other jobs for the cores); bf16 trained E-8 at about half fp32's rate there.
    "quick": ResidualExperiment(SPEC.replace(width=0.125), RECIPE.replace(epochs=3),
                                train_images=8_000, validation=2_000, test_images=5_000,
                                seeds=(0, 1), configs=("A", "E-8"), train_eval_images=2_000,
                                precision="fp32", threads=1),
    # The records the chapter reads (results/residual_networks/, one JSON per run, made by
    # `make results CHAPTER=10`): the quick profile's size and recipe for all five columns,
    # plain and residual, five seeds (50 runs), so that the comparisons can reach the book's
    # four standard errors. The quick profile is its from-scratch subset (its 8 runs are 8 of
    # these 50, record for record): a reader without the records trains those. fp32 and one
    # thread, stated, so that a record means the same run on any CPU.
    "records": ResidualExperiment(SPEC.replace(width=0.125), RECIPE.replace(epochs=3),
                                  train_images=8_000, validation=2_000, test_images=5_000,
                                  seeds=(0, 1, 2, 3, 4), configs=RESIDUAL_CONFIGS,
                                  train_eval_images=2_000, precision="fp32", threads=1),
    # The study the chapter's questions need, on a GPU: all five columns, five seeds, a quarter
    # of VGG's width on all of CIFAR-10 but the validation split, 30 epochs.
    "full": ResidualExperiment(SPEC.replace(width=0.25), RECIPE.replace(epochs=30, crop_padding=4),
                               train_images=None, validation=5_000, test_images=None,
                               seeds=(0, 1, 2, 3, 4), configs=RESIDUAL_CONFIGS,
                               train_eval_images=5_000),
}

# Pilot runs: benchmarks/residual_pilots.py, validation split only (the test set never
# evaluated), fp32, one thread per run, two runs at a time, on the book's 2-core Intel Xeon
# (AVX512-BF16, AMX) beside other agents' work (load average 6-20), so their times are not quoted;
# 2026-12-04, torch 2.14.1. Data: 10,000 class-balanced CIFAR-10 training images, 2,000
# validation images, 2,000 fixed training images for the end-of-epoch evaluation; the rest as
# RECIPE. Rows: (images x epochs, peak lr, config, shortcuts, seeds, end-of-training loss on the
# fixed training images in eval mode, training accuracy there, validation accuracy), one value
# per seed. What they decided:
# * the peak learning rate, 0.1: the higher mean final validation accuracy over A and E-8, plain
#   and residual, seed 0 (0.1: 55.1%, 0.2: 54.8%); 0.2 helps plain A a little and hurts residual
#   E-8. A run at 0.05 was stopped unfinished to keep two runs at a time on the machine.
# * the size of a study that settles the chapter's questions: at 10,000 images x 5 epochs the
#   deepest plain column (E-8) ends far above A in training loss (1.45-1.48 against 0.91-0.92)
#   and its residual version below it (1.12-1.26), with seed spreads small enough for five seeds
#   to settle these differences at four standard errors (by the two-seed spreads: about 45 and 6
#   standard errors); residual A against plain A (about 3.6) may stay open. Its 50 runs do not
#   fit the quick profile's six minutes on this machine (E-8 alone: about 100 s per run on one
#   thread); they are the size of the records a GPU session or `make results` would make.
PILOTS = (
    ("10kx5", 0.1, "A", "none", (0, 1), (0.908, 0.920), (0.7090, 0.7080), (0.6165, 0.6160)),
    ("10kx5", 0.1, "A", "identity", (0, 1), (1.008, 0.950), (0.6670, 0.6885), (0.5805, 0.5950)),
    ("10kx5", 0.1, "E", "none", (0, 1), (1.088, 1.153), (0.6275, 0.5980), (0.5695, 0.5460)),
    ("10kx5", 0.1, "E", "identity", (0, 1), (0.973, 1.040), (0.6775, 0.6725), (0.5995, 0.5870)),
    ("10kx5", 0.1, "E-8", "none", (0, 1), (1.448, 1.484), (0.4630, 0.4585), (0.4515, 0.4280)),
    ("10kx5", 0.1, "E-8", "identity", (0, 1), (1.118, 1.261), (0.6120, 0.5550), (0.5535, 0.5100)),
    ("10kx5", 0.2, "A", "none", (0,), (0.877,), (0.7185,), (0.6315,)),
    ("10kx5", 0.2, "A", "identity", (0,), (0.965,), (0.6875,), (0.6095,)),
    ("10kx5", 0.2, "E-8", "none", (0,), (1.423,), (0.4640,), (0.4755,)),
    ("10kx5", 0.2, "E-8", "identity", (0,), (1.376,), (0.5115,), (0.4755,)),
)


def study_spec(config, shortcuts, settings):
    """The network of one row: ``config`` plain or residual, as ``settings`` builds it."""
    return settings.spec.replace(config=config, shortcuts=shortcuts)


def study_label(config, shortcuts):
    """A run's label: "E-8-plain", "E-8-residual"."""
    return f"{config}-{LABELS[shortcuts]}"


PROBES = 40   # the probed runs record their gradients at about this many evenly spaced steps


def probed_steps(settings, train_images):
    """The steps at which the deepest column's first-seed runs record their layers' gradients
    (a ``TrainingProbe``): the first, then every (steps // ``PROBES``)-th of the run's steps;
    ``train_images``: the training images per epoch (``settings.train_images``, or all the
    data's when that is None)."""
    steps = settings.recipe.epochs * (train_images // settings.recipe.batch_size)
    return range(1, steps + 1, max(1, steps // PROBES))


def residual_study_plan(settings, probe_steps=None):
    """The study's runs: every configuration, plain and residual, every seed, one recipe.
    ``probe_steps``: the deepest column's seed-0 runs record a ``TrainingProbe`` at those steps
    (kept in their records; a run read from a record without it has none)."""
    deepest, first_seed = settings.configs[-1], settings.seeds[0]
    return [StudyRun(study_label(config, shortcuts), study_spec(config, shortcuts, settings),
                     settings.recipe.replace(seed=seed),
                     train_eval_images=settings.train_eval_images,
                     probe_steps=probe_steps if (config, seed) == (deepest, first_seed) else None)
            for config in settings.configs for shortcuts in SHORTCUT_KINDS
            for seed in settings.seeds]


def residual_study_name(profile_name):
    """The study a profile's runs belong to: "residual_networks" for the CPU budget (the
    records and their quick subset share it, run for run), "residual_networks-full"."""
    return "residual_networks" if profile_name in ("quick", "records") else f"residual_networks-{profile_name}"


def residual_study_folder(profile_name):
    """Where the runs of a profile are stored (``studies.study_folder``)."""
    return study_folder(residual_study_name(profile_name))


def chapter_profile(profile_name, data=None):
    """The profile the chapter runs: "full" on a GPU; on a CPU "records" when every one of its
    runs is shipped (``results/residual_networks/``, read, not trained) and, given ``data``,
    recorded on the same data (by content: not on the 10,000-image sample, say), else "quick",
    the records' from-scratch subset (a reader in Colab, or ``VGG_RECORDS=off``)."""
    if profile_name == "full":
        return "full"
    shipped = shipped_folder(residual_study_name("records"))
    paths = [record_path(shipped, run.name) for run in residual_study_plan(RESIDUAL_STUDY["records"])
             if shipped is not None]
    if not paths or not all(path.is_file() for path in paths):
        return "quick"
    if data is not None and read_record(paths[0]).identity.get("data") != data.fingerprint():
        return "quick"
    return "records"


def final(results, label, field):
    """``field`` at the end of training ("train_eval_loss", "train_eval_accuracy",
    "test_accuracy", "val_accuracy") for every run labelled ``label``, in seed order."""
    chosen = sorted((r for r in results if r.label == label), key=lambda r: r.seed)
    if not chosen:
        raise KeyError(f"No runs labelled {label!r}.")
    if field == "test_accuracy":
        return [r.test_accuracy for r in chosen]
    return [getattr(r, field)[-1] for r in chosen]


def depth_of(config, head="compact"):
    """Weight layers of ``config`` with the compact head (one linear layer), as this study
    builds it; ``head="imagenet"``: the paper's count (three fully connected layers)."""
    return weight_layer_count(config) - (2 if head == "compact" else 0)


# --- gradients through depth ------------------------------------------------------------------

def gradient_profile(spec, x, y, seeds=(0, 1, 2)):
    """Per-layer gradient norms of ``spec``'s network at initialisation: for each seed, a fresh
    network (``torch.manual_seed(seed)``) and one forward and backward pass on ``(x, y)`` in
    training mode (chapter 6's ``probe_batch``). Returns ``(names, norms)``: the convolutions'
    paper names in forward order and ``norms[i][j]``, seed i's gradient norm of layer j."""
    norms, names = [], None
    for seed in seeds:
        torch.manual_seed(seed)
        model = spec.build().to(x.device)
        stats = probe_batch(model, x, y)
        names = [name for name in stats if name.startswith("conv")]
        norms.append([stats[name]["grad_norm"] for name in names])
    return names, norms


# --- the published figures set beside ours ------------------------------------------------------

# He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", CVPR.
# Table 6: CIFAR-10 test error (%) of their CIFAR ResNets (6n + 2 layers, 16/32/64 filters,
# option A shortcuts, 64k iterations); ResNet-110: best of 5 runs, mean 6.61 ± 0.16.
HE_CIFAR_RESNET_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
HE_CIFAR_RESNET_110_MEAN_STD = (6.61, 0.16)
# Their plain nets of the same depths have no table: Fig. 6 (left) plots their test error. Read
# from that figure, so approximate (about +-0.5 points): plain-20/32/44/56.
HE_CIFAR_PLAIN_ERROR_READ_FROM_FIGURE = {20: 9.5, 32: 10.0, 44: 12.0, 56: 13.5}
# Table 2: ImageNet validation top-1 error (%, 10-crop testing), plain against ResNet (option A:
# no extra parameters) at 18 and 34 layers.
HE_IMAGENET_TOP1_ERROR = {("plain", 18): 27.94, ("plain", 34): 28.54,
                          ("ResNet", 18): 27.88, ("ResNet", 34): 25.03}

# The course notes' comparison table (seeds/002, "VGG vs Modern Architectures"), as printed
# there: parameters, "FLOPs", ImageNet top-1 accuracy (%). The chapter recomputes each figure.
NOTES_COST_TABLE = {"vgg16": (138e6, 15.5e9, 71.3), "resnet50": (25.6e6, 4.1e9, 76.1),
                    "efficientnet_b0": (5.3e6, 390e6, 77.3)}
