"""Two ways to run the training chapters: ``quick`` (a CPU, a few minutes) and ``full`` (a GPU).

``get_profile()`` picks ``full`` when a CUDA GPU is present and ``quick`` otherwise; the
environment variable ``VGG_PROFILE`` (``quick`` or ``full``) overrides that. A profile holds every
setting a chapter needs, builds its model and passes its settings to ``fit``::

    profile = get_profile()
    print(profile)                       # one line, with the expected running times
    model = profile.build_model()
    history = fit(model, data, **profile.fit_kwargs())

Expected times: the CPU figure of ``quick`` was measured on the book's 2-core test machine; every
other figure is an *estimate* from the model's multiply-adds and an assumed effective
throughput (see ``EFFECTIVE_TFLOPS``), printed with a "~".
"""

import os
from dataclasses import asdict, dataclass, fields

import torch

from .configs import weight_layer_count

ENV_PROFILE = "VGG_PROFILE"
PROFILE_NAMES = ("quick", "full")

# Effective (achieved, not peak) training throughput in TFLOP/s, for the estimates. GPUs: from
# NVIDIA's published ResNet-50 v1.5 figures (DeepLearningExamples, PyTorch, mixed precision):
# A100 80GB trains 2,470 img/s; T4 infers 1,198 img/s at batch 256, assumed to train at the same
# FLOP rate. One ResNet-50 image costs 4.1 G multiply-adds forward (2 FLOPs each), 3x that to
# train. CPU: this loop's measured rate for the quick profile's model on the book's 2-core AMD
# EPYC (AVX2) machine, fp32, 2 threads: 1,130-1,170 images/s x 59.3 MFLOP (training steps only).
_RESNET50_FORWARD_FLOP = 2 * 4.1e9
EFFECTIVE_TFLOPS = {
    "a100": 2470 * 3 * _RESNET50_FORWARD_FLOP / 1e12,
    "t4": 1198 * _RESNET50_FORWARD_FLOP / 1e12,
    "cpu": 0.068,
}
# A GPU step of a small model is bound by kernel launches, not FLOPs: about 150 kernels per
# training step at a few microseconds each, the optimiser and the per-step loss check.
GPU_SECONDS_PER_STEP_FLOOR = 0.005


def choose_device():
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def train_flop_per_image(config, batch_norm, width, head, image_size=32, num_classes=10):
    """Floating-point operations to train on one image: 3 x forward multiply-adds x 2."""
    from .counting import config_costs

    macs = config_costs(config, batch_norm=batch_norm, image_size=image_size, head=head,
                        num_classes=num_classes, width=width).macs
    return 6 * macs


def format_seconds(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Profile:
    name: str
    config: str
    batch_norm: bool
    width: float
    head: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    train_subset: object  # None = every training image
    test_subset: object
    device: torch.device
    expected_seconds_cpu: float
    expected_seconds_t4: float
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "onecycle"
    tta_flip: bool = True
    crop_padding: int = 4
    num_classes: int = 10

    def build_model(self):
        """The profile's VGG, initialised and on ``self.device``."""
        from .model import vgg

        return vgg(self.config, batch_norm=self.batch_norm, num_classes=self.num_classes,
                   head=self.head, width=self.width).to(self.device)

    def fit_kwargs(self):
        """The keyword arguments of ``fit`` this profile stands for."""
        return dict(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                    momentum=self.momentum, nesterov=self.nesterov,
                    weight_decay=self.weight_decay, schedule=self.schedule,
                    label_smoothing=self.label_smoothing, tta_flip=self.tta_flip,
                    crop_padding=self.crop_padding)

    def data_kwargs(self):
        """The keyword arguments of ``load_cifar10`` this profile stands for."""
        return dict(device=self.device, train_subset=self.train_subset,
                    test_subset=self.test_subset)

    def model_description(self):
        """Plain data describing the model, for ``save_checkpoint(..., extra=...)``."""
        return dict(config=self.config, batch_norm=self.batch_norm, width=self.width,
                    head=self.head, num_classes=self.num_classes, profile=self.name)

    def estimated_seconds(self, hardware="t4", train_images=None, test_images=None):
        """Training time estimated from FLOPs: ``hardware`` is "t4", "a100" or "cpu" (2 cores)."""
        if hardware not in EFFECTIVE_TFLOPS:
            raise ValueError(f"hardware={hardware!r}; choose one of {', '.join(EFFECTIVE_TFLOPS)}.")
        train_images = train_images or self.train_subset or _TRAIN_IMAGES[self.name]
        test_images = test_images or self.test_subset or _TEST_IMAGES[self.name]
        return _estimate(self.config, self.batch_norm, self.width, self.head, self.epochs,
                         self.batch_size, train_images, test_images, hardware)

    def to_dict(self):
        values = asdict(self)
        values["device"] = str(self.device)
        return values

    def __str__(self):
        model = (f"VGG-{weight_layer_count(self.config)}{'-BN' if self.batch_norm else ''} "
                 f"(configuration {self.config}, "
                 + (f"width {self.width:g}" if self.width != 1 else "full width")
                 + f", {self.head} head)")
        images = "all" if self.train_subset is None else f"{self.train_subset:,}"
        cpu = format_seconds(self.expected_seconds_cpu)
        return (f"Profile {self.name!r}: {model}; {self.epochs} epochs, batch {self.batch_size}, "
                f"{images} training images, on {self.device}; expected run time: "
                f"~{cpu} on a 2-core CPU, ~{format_seconds(self.expected_seconds_t4)} on a "
                "Colab T4 (estimate)")


def _estimate(config, batch_norm, width, head, epochs, batch_size, train_images, test_images,
              device):
    flop = train_flop_per_image(config, batch_norm, width, head)
    # evaluation: a forward pass (with the flipped copy) of every test image each epoch
    total = epochs * (train_images * flop + test_images * 2 * flop / 3)
    seconds = total / (EFFECTIVE_TFLOPS[device] * 1e12)
    if device != "cpu":
        seconds += epochs * (train_images // batch_size) * GPU_SECONDS_PER_STEP_FLOOR
    return seconds


# Settings of each profile. quick trains on 10,000 images: all of the offline sample, or a
# class-balanced tenth of the full dataset for readers who downloaded it.
# quick: VGG-11-BN at quarter width, one-cycle, label smoothing 0.1, flip TTA, batch 128, on the
# offline sample (10,000 / 2,000 images), test accuracy by (epochs, peak lr, crop padding):
# (8, 0.1, 4) 69.1%; (8, 0.2, 2) 70.5% and 69.7%; (8, 0.2, 1) 71.9% and 72.1%; (7, 0.2, 1) 69.8%;
# (7, 0.2, 0) 71.3% and 71.3%; (7, 0.3, 1) 70.8% and 72.0% (two seeds each where two are given).
# Short runs gain from milder crops. 7 epochs keep the training near 60 s on two cores.
QUICK = dict(config="A", batch_norm=True, width=0.25, head="compact", epochs=7, batch_size=128,
             lr=0.3, weight_decay=5e-4, label_smoothing=0.1, train_subset=10_000,
             test_subset=2_000, crop_padding=1)
FULL = dict(config="D", batch_norm=True, width=1.0, head="compact", epochs=30, batch_size=256,
            lr=0.1, weight_decay=5e-4, label_smoothing=0.1, train_subset=None, test_subset=None)
_TRAIN_IMAGES = {"quick": 10_000, "full": 50_000}
_TEST_IMAGES = {"quick": 2_000, "full": 10_000}


def make_profile(name, device=None):
    """The ``quick`` or ``full`` profile, on ``device`` (default ``choose_device()``)."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"Unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
                         f"(or unset {ENV_PROFILE}).")
    settings = dict(QUICK if name == "quick" else FULL)
    shape = (settings["config"], settings["batch_norm"], settings["width"], settings["head"],
             settings["epochs"], settings["batch_size"], _TRAIN_IMAGES[name], _TEST_IMAGES[name])
    return Profile(name=name, **settings, device=torch.device(device or choose_device()),
                   expected_seconds_cpu=_estimate(*shape, "cpu"),
                   expected_seconds_t4=_estimate(*shape, "t4"))


def get_profile(name=None, device=None):
    """``name``, else ``$VGG_PROFILE``, else ``full`` with a CUDA GPU and ``quick`` without."""
    name = name or os.environ.get(ENV_PROFILE) or None
    device = torch.device(device) if device is not None else choose_device()
    if name is None:
        name = "full" if device.type == "cuda" else "quick"
    return make_profile(name.strip().lower(), device)


def profile_fields():
    return [f.name for f in fields(Profile)]
