"""Two ways to run the training chapters: ``quick`` (a CPU, a few minutes) and ``full`` (a GPU).

``get_profile()`` picks ``full`` when a CUDA GPU is present and ``quick`` otherwise; the
environment variable ``VGG_PROFILE`` (``quick`` or ``full``) overrides that. A profile is a
``ModelSpec`` (the network), a ``TrainConfig`` (the recipe) and the data it trains on::

    profile = get_profile()
    print(profile)                       # one line, with a Colab T4's expected running time
    print(profile.estimate_here())       # this machine's, from a few steps measured just now
    model = profile.build_model()
    data = load_cifar10(**profile.data_kwargs())
    history = fit(model, data, profile.recipe)

Expected times: on the machine that runs the profile, ``estimate_here`` measures a few training
steps and evaluation batches (``training.calibration``) and scales them to the whole run; on
hardware the code is not running on (a Colab T4, an A100), the estimate comes from the model's
multiply-adds and an assumed effective throughput (see ``EFFECTIVE_TFLOPS``). Both are printed
with a "~".
"""

import os
from dataclasses import dataclass

import torch

from ..architecture.model import ModelSpec
from ..device import choose_device
from ..measure.counting import config_costs
from .recipe import TrainConfig

ENV_PROFILE = "VGG_PROFILE"
PROFILE_NAMES = ("quick", "full")

# Effective (achieved, not peak) training throughput in TFLOP/s, for the estimates. GPUs: from
# NVIDIA's published ResNet-50 v1.5 figures (DeepLearningExamples, PyTorch, mixed precision):
# A100 80GB trains 2,470 img/s; T4 infers 1,198 img/s at batch 256, assumed to train at the same
# FLOP rate. One ResNet-50 image costs 4.1 G multiply-adds forward (2 FLOPs each), 3x that to
# train. CPU: this loop's measured rate for the quick profile's model on the book's 2-core AMD
# EPYC (AVX2) machine, fp32, 2 threads: 2,812 images/s x 59.3 MFLOP (training steps only; chapter
# 5, 2026-12-01). An earlier 2-core machine of the same name reached 1,130-1,170 images/s.
_RESNET50_FORWARD_FLOP = 2 * 4.1e9
EFFECTIVE_TFLOPS = {
    "a100": 2470 * 3 * _RESNET50_FORWARD_FLOP / 1e12,
    "t4": 1198 * _RESNET50_FORWARD_FLOP / 1e12,
    "cpu": 0.167,
}
# A GPU step of a small model is bound by kernel launches, not FLOPs: about 150 kernels per
# training step at a few microseconds each, the optimiser and the per-step loss check.
GPU_SECONDS_PER_STEP_FLOOR = 0.005


def forward_macs(spec, image_size=32):
    """Multiply-adds of one forward pass of ``spec``'s network on one ``image_size`` image."""
    return config_costs(spec, image_size=image_size).macs


def train_flop_per_image(spec, image_size=32):
    """Floating-point operations to train ``spec``'s network on one image: 3 x forward
    multiply-adds x 2."""
    return 6 * forward_macs(spec, image_size)


def estimate_seconds(spec, recipe, train_images, validation, test_images, hardware="t4",
                     rates=None):
    """The book's one estimate of how long a training run takes: the images it trains on
    (whole batches of ``train_images`` for every epoch), the validation split after every
    epoch and the test set once (twice the forward passes with ``tta_flip``, six with
    ``tta_shift`` as well). From
    ``rates`` = (training, evaluation) images per second when they were measured; else from
    multiply-adds at ``EFFECTIVE_TFLOPS[hardware]`` ("t4", "a100" or "cpu", two cores), plus a
    GPU's per-step floor."""
    batch = min(recipe.batch_size, train_images)
    steps = recipe.epochs * (train_images // batch)
    views = (2 if recipe.tta_flip else 1) * (3 if recipe.tta_shift else 1)
    evaluated = (recipe.epochs * validation + test_images) * views
    if rates is not None:
        return steps * batch / rates[0] + evaluated / rates[1]
    if hardware not in EFFECTIVE_TFLOPS:
        raise ValueError(f"hardware={hardware!r}; choose one of {', '.join(EFFECTIVE_TFLOPS)}, or "
                         "give measured rates.")
    flop = train_flop_per_image(spec)
    seconds = (steps * batch * flop + evaluated * flop / 3) / (EFFECTIVE_TFLOPS[hardware] * 1e12)
    return seconds + (0 if hardware == "cpu" else steps * GPU_SECONDS_PER_STEP_FLOOR)


def format_seconds(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Profile:
    name: str
    model: ModelSpec
    recipe: TrainConfig
    train_images: int     # training images kept (more than the data has: all of them)
    test_images: int      # test images kept (likewise)
    validation: int       # training images set aside as the validation split
    device: torch.device

    def build_model(self):
        """The profile's VGG, initialised and on ``self.device``."""
        return self.model.build().to(self.device)

    def data_kwargs(self):
        """The keyword arguments of ``load_cifar10`` this profile stands for."""
        return dict(device=self.device, train_images=self.train_images,
                    test_images=self.test_images, validation=self.validation)

    def estimated_seconds(self, hardware="t4", train_images=None, test_images=None):
        """Training time estimated from FLOPs (``estimate_seconds``): ``hardware`` is "t4",
        "a100" or "cpu" (2 cores)."""
        return estimate_seconds(self.model, self.recipe, train_images or self.train_images,
                                self.validation, test_images or self.test_images, hardware)

    @property
    def expected_seconds_t4(self):
        return self.estimated_seconds("t4")

    def estimate_here(self, precision="auto"):
        """This machine's expected time for the profile's run (``TimeEstimate``), from its
        training and evaluation rates measured now on ``self.device`` in ``precision``
        (``calibration.measure_rates``: a few seconds at most)."""
        from .calibration import measure_rates   # only here: it imports the training loop

        rates = measure_rates(self.model, self.recipe, self.device, precision)
        seconds = estimate_seconds(self.model, self.recipe, self.train_images, self.validation,
                                   self.test_images, rates=(rates.train, rates.evaluate))
        return TimeEstimate(seconds, rates, self.device)

    def to_dict(self):
        return dict(name=self.name, model=self.model.to_dict(), recipe=self.recipe.to_dict(),
                    train_images=self.train_images, test_images=self.test_images,
                    validation=self.validation, device=str(self.device))

    def __str__(self):
        images = f"{self.train_images:,}"
        return (f"Profile {self.name!r}: {self.model.describe()}; {self.recipe.epochs} epochs, "
                f"batch {self.recipe.batch_size}, {images} training images, on {self.device}; "
                f"expected run time on a Colab T4: ~{format_seconds(self.expected_seconds_t4)} "
                "(estimate from FLOPs; profile.estimate_here() measures this machine)")


@dataclass(frozen=True)
class TimeEstimate:
    """A profile's expected run time on the machine that measured ``rates``."""

    seconds: float
    rates: object         # calibration.Rates
    device: torch.device

    def __str__(self):
        r = self.rates
        return (f"expected run time here ({self.device.type}, {r.precision}): ~{format_seconds(self.seconds)} "
                f"(training {r.train:,.0f} and evaluation {r.evaluate:,.0f} images/s, measured just "
                f"now over {r.steps} steps; slower while other work shares the machine)")


# Settings of each profile. Both set 5,000 of CIFAR-10's training images aside as the validation
# split (every choice is made on it) and evaluate all 10,000 test images once, at the end of a run.
#
# quick: VGG-11-BN at quarter width, one-cycle to a peak of 0.3, Nesterov, batch 128, no crop
# shift, flip TTA, four epochs over 37,500 of the training images, with four training tricks and
# one test-time trick of fast-training work on CIFAR-10 (airbench, hlb-CIFAR10): a whitened first
# layer, identity initialisation, alternating flips, label smoothing 0.2, and the image shifted
# by one pixel both ways at test time. Tuned on the validation split in three rounds: images,
# epochs and crop shift first (vgg_lib.experiments.training_cifar10.QUICK_TUNING,
# benchmarks/tune_quick_profile.py), then the tricks at 3 epochs of 45,000 images
# (benchmarks/tune_fast_recipe.py and its record fast_recipe_runs.jsonl, issue #25): together
# 79.8 +- 0.4 % validation against 78.4 % without them (seed 0); lookahead and airbench's batch
# norm (frozen scales, bias lr x8, momentum 0.4) did not pay and are not used. Then the budget
# (QUICK_BUDGET, quick_budget_choice, benchmarks/tune_quick_budget.py): the most images seen that
# train at least 5 s under the minute on the book's 2-core machine in fp32, 150,000 (54.6 s
# measured; 160,000 took 59.5 s), spent as 4 epochs of 37,500 images rather than 5 of 30,000
# (3 of all 45,000 were 135,000). Chapter 5 shows what each trick is worth (its ablation's
# records, results/training_cifar10_quick_ablation/).
# train_images / test_images: how many of the images to keep; a count above what the data has
# keeps all of them (45,000 = all of CIFAR-10's training images outside the validation split).
QUICK = dict(
    model=ModelSpec(config="A", batch_norm=True, width=0.25, head="compact", num_classes=10),
    recipe=TrainConfig(epochs=4, batch_size=128, lr=0.3, weight_decay=5e-4, label_smoothing=0.2,
                       nesterov=True, tta_flip=True, tta_shift=1, crop_padding=0,
                       whiten_first_layer=True, dirac_init=True, alternating_flip=True),
    train_images=37_500, test_images=10_000, validation=5_000)
FULL = dict(
    model=ModelSpec(config="D", batch_norm=True, width=1.0, head="compact", num_classes=10),
    recipe=TrainConfig(epochs=30, batch_size=256, lr=0.1, weight_decay=5e-4, label_smoothing=0.1,
                       nesterov=True, tta_flip=True, crop_padding=4),
    train_images=45_000, test_images=10_000, validation=5_000)


def make_profile(name, device=None):
    """The ``quick`` or ``full`` profile, on ``device`` (default ``choose_device()``)."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"Unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
                         f"(or unset {ENV_PROFILE}).")
    settings = QUICK if name == "quick" else FULL
    return Profile(name=name, **settings, device=torch.device(device or choose_device()))


def get_profile(name=None, device=None):
    """``name``, else ``$VGG_PROFILE``, else ``full`` with a CUDA GPU and ``quick`` without."""
    name = name or os.environ.get(ENV_PROFILE) or None
    device = torch.device(device) if device is not None else choose_device()
    if name is None:
        name = "full" if device.type == "cuda" else "quick"
    return make_profile(name.strip().lower(), device)
