"""``TrainConfig``: the training recipe, every setting that decides what a run computes, in one
commented place. ``fit(model, data, recipe)`` reads it, checkpoints store it, and resuming
refuses a recipe that differs from the stored one, naming the field. Each field's ``help`` (its
metadata) documents it and is the help of its option of ``python -m vgg_lib.train``, which is
generated from these fields.

The same recipe trains CIFAR-10's tensors and folders of images: pad-and-crop is CIFAR's
augmentation; scale jittering, the training crop and the colour shift are the paper's ImageNet
augmentation (Section 3.1), and work on both.

Settings that only decide *how fast* a run goes (precision, memory layout, ``torch.compile``,
the progress bar) are not part of the recipe: they are ``fit``'s keyword arguments and may
change between the sessions of one run.
"""

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

from ..architecture.model import setting

SCHEDULES = ("onecycle", "cosine", "constant", "plateau")
OPTIMIZERS = ("sgd", "adam")



@dataclass(frozen=True)
class TrainConfig:
    epochs: int = setting(10, "passes over the training images")
    lr: float = setting(
        0.05, "peak learning rate of the schedule (the paper: 0.01, constant until the validation "
              "accuracy stalls, then divided by 10); scale it with the global batch "
              "(book/beyond_one_gpu.md)")
    batch_size: int = setting(
        128, "images per optimiser step: the GLOBAL batch, split evenly among torchrun's "
             "processes (the paper: 256)")
    optimizer: str = setting(
        "sgd", "sgd, the paper's; adam (Kingma & Ba, 2015) ignores momentum and nesterov",
        choices=OPTIMIZERS)
    momentum: float = setting(0.9, "the paper's 0.9")
    nesterov: bool = setting(
        False, "Nesterov's momentum instead of the paper's plain momentum (the profiles use it)")
    weight_decay: float = setting(
        5e-4, "the paper's 5e-4, on weights only (not on biases or batch norm)")
    schedule: str = setting(
        "onecycle", "the learning rate over the run (vgg_lib.training.loop.lr_factor); plateau: "
                    "the paper's, divided by 10 when the validation accuracy stops improving, "
                    "the run ending when it stops after the last decrease "
                    "(vgg_lib.training.plateau; epochs is then the most it trains)",
        choices=SCHEDULES)
    plateau_patience: int = setting(
        3, "with schedule plateau: epochs in a row without a new best validation accuracy that "
           "count as 'stopped improving'")
    plateau_decreases: int = setting(
        3, "with schedule plateau: decreases of the learning rate before the next stall ends the "
           "run (the paper's 3)")
    label_smoothing: float = setting(0.0, "not in the paper (Szegedy et al., 2016)")
    augment: bool = setting(True, "random crops and horizontal flips of the training images")
    crop_padding: int = setting(
        4, "pad-and-crop (CIFAR's augmentation): zero padding of the random crops, pixels per "
           "side; 0 with scale jittering")
    seed: int = setting(
        0, "data order and augmentation (the command and the studies seed the initial weights "
           "with it too)")
    tta_flip: bool = setting(
        False, "evaluation averages the soft-max posteriors of each image and its mirror image "
               "(the paper's test-time flip)")
    tta_shift: int = setting(
        0, "evaluation also averages the image translated diagonally by this many pixels both "
           "ways (down-right and up-left, the borders reflected), each with its mirror image: "
           "airbench's test-time translation, weighted 1/2 plain pair, 1/4 each translated pair "
           "(vgg_lib.evaluation.protocols.shifted_flips); 0: off; needs tta_flip")
    scale_jitter: tuple = setting(
        None, "scale jittering instead of pad-and-crop: each training image's shorter side "
              "rescaled to S drawn from [S_MIN, S_MAX], then a random crop (the paper: 256 512, "
              "crops of 224; chapter 9). None: no rescaling",
        metavar=("S_MIN", "S_MAX"), aliases=("--scale",))
    crop: int = setting(
        None, "side of the training crop and of the evaluation's centre crop, in pixels (None: "
              "the images' own side, CIFAR's 32; the paper: 224)")
    colour_shift: float = setting(
        0.0, "std of Krizhevsky et al.'s RGB colour shift along the principal components of "
             "ImageNet's pixels, per training image (the paper's 0.1; 0: off)")
    eval_scale: int = setting(
        None, "Q of the evaluation: each image's shorter side rescaled to Q, then the centre crop "
              "(None: no rescaling, the crop's side; the paper: the middle of the jitter range, "
              "384)")
    # --- five of airbench's training tricks (KellerJordan/cifar10-airbench; issue #25), all off
    # by default; vgg_lib.training.airbench implements them, fit applies them. They are recipe,
    # not architecture: the network and its state-dict keys stay torchvision's.
    whiten_first_layer: bool = setting(
        False, "SGD on the first 3x3 convolution preconditioned by the whitening of its input "
               "patches, as if its weight were P @ Wh with Wh the whitening of the 3x3 patches "
               "of the first 5,000 training images and P trained: the weight starts at such a "
               "product (P random) and its gradient is multiplied by (covariance + eps I)^-1; "
               "CIFAR's tensors, SGD only")
    dirac_init: bool = setting(
        False, "at the start of a run, every 3x3 convolution's first min(out, in) filters set to "
               "the identity (torch.nn.init.dirac_), the rest keeping the model's initialisation "
               "(the first convolution is left alone with whiten_first_layer)")
    bn_scale: bool = setting(
        True, "train the batch-norm scales; False: left out of the optimiser, they keep their "
              "value, 1 in a fresh network (airbench)")
    bn_bias_lr: float = setting(
        1.0, "multiplier of the learning rate of the batch-norm biases (shifts), a parameter "
             "group of their own that follows the schedule (airbench: 64)")
    bn_momentum: float = setting(
        None, "momentum of every batch norm's running statistics during the run, in (0, 1] "
              "(PyTorch's convention: the weight of the new batch; airbench: 0.4); None: the "
              "modules' own (0.1)")
    lookahead: bool = setting(
        False, "airbench's lookahead: from 30 percent of the run's steps on, every 5 steps, the "
               "weights and batch-norm statistics move to an exponential moving average of them, "
               "which the network takes at the end of the run")
    alternating_flip: bool = setting(
        False, "each training image mirrored in every other epoch, from a side drawn once per "
               "image, instead of a coin toss per view (airbench; CIFAR's tensors only)")

    def __post_init__(self):
        problems = []

        def whole(name, minimum, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
                problems.append(f"{name}={value!r} (a whole number >= {minimum}"
                                + (", or None)" if optional else ")"))

        def real(name, minimum, strictly=False):
            value = getattr(self, name)
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and math.isfinite(value) and (value > minimum if strictly else value >= minimum))
            if not ok:
                problems.append(f"{name}={value!r} (a finite number {'>' if strictly else '>='} {minimum})")

        def flag(name):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name}={getattr(self, name)!r} (True or False)")

        whole("epochs", 1)
        whole("batch_size", 1)
        whole("crop_padding", 0)
        whole("seed", 0)
        whole("crop", 1, optional=True)
        whole("eval_scale", 1, optional=True)
        whole("tta_shift", 0)
        whole("plateau_patience", 1)
        whole("plateau_decreases", 0)
        real("lr", 0, strictly=True)
        real("momentum", 0)
        real("weight_decay", 0)
        real("label_smoothing", 0)
        real("colour_shift", 0)
        if isinstance(self.label_smoothing, numbers.Real) and self.label_smoothing >= 1:
            problems.append(f"label_smoothing={self.label_smoothing!r} (below 1)")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer={self.optimizer!r} (one of {', '.join(OPTIMIZERS)})")
        if isinstance(self.scale_jitter, list):  # read back from JSON
            object.__setattr__(self, "scale_jitter", tuple(self.scale_jitter))
        if self.scale_jitter is not None:
            jitter = self.scale_jitter
            if not (isinstance(jitter, tuple) and len(jitter) == 2
                    and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                            for v in jitter) and jitter[0] <= jitter[1]):
                problems.append(f"scale_jitter={jitter!r} (None, or a pair of whole numbers "
                                "(S_min, S_max) with 1 <= S_min <= S_max, e.g. (32, 48))")
            elif isinstance(self.crop_padding, numbers.Integral) and self.crop_padding != 0:
                problems.append(f"scale_jitter={jitter!r} with crop_padding={self.crop_padding!r} "
                                "(both decide the training crop: set crop_padding=0 with scale "
                                "jittering)")
            elif isinstance(self.crop, numbers.Integral) and jitter[0] < self.crop:
                problems.append(f"scale_jitter={jitter!r} with crop={self.crop} (the smallest "
                                f"scale must be at least the crop: S_min >= {self.crop})")
        if (isinstance(self.crop, numbers.Integral) and isinstance(self.eval_scale, numbers.Integral)
                and self.eval_scale < self.crop):
            problems.append(f"eval_scale={self.eval_scale} with crop={self.crop} (the centre "
                            "crop must fit in the rescaled image: eval_scale >= crop)")
        if isinstance(self.tta_shift, numbers.Integral) and self.tta_shift > 0 and not self.tta_flip:
            problems.append(f"tta_shift={self.tta_shift} with tta_flip={self.tta_flip!r} (the "
                            "translated views come with their mirror images, airbench's test-time "
                            "augmentation: set tta_flip=True, or tta_shift=0)")
        for name in ("whiten_first_layer", "dirac_init", "bn_scale", "lookahead", "alternating_flip"):
            flag(name)
        real("bn_bias_lr", 0)
        momentum = self.bn_momentum
        if momentum is not None and not (isinstance(momentum, numbers.Real) and not isinstance(momentum, bool)
                                         and 0 < momentum <= 1):
            problems.append(f"bn_momentum={momentum!r} (None for the modules' own, or a number in "
                            "(0, 1]: the weight of each new batch in the running statistics)")
        if self.alternating_flip is True and self.augment is False:
            problems.append("alternating_flip=True with augment=False (no image is flipped "
                            "without augmentation: set augment=True, or alternating_flip=False)")
        if self.whiten_first_layer is True and self.optimizer == "adam":
            problems.append("whiten_first_layer=True with optimizer='adam' (the whitening "
                            "preconditions SGD, whose update is linear in the gradient; Adam "
                            "rescales each weight's step and would undo it: use optimizer='sgd')")
        if self.schedule == "plateau" and self.lookahead is True:
            problems.append("schedule='plateau' with lookahead=True (the lookahead's averaging "
                            "follows the run's length, which the plateau schedule decides as it "
                            "goes: use another schedule, or lookahead=False)")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} (one of {', '.join(SCHEDULES)})")
        if problems:
            raise ValueError("Bad training recipe: " + "; ".join(problems) + ".")

    def replace(self, **changes):
        """A copy with ``changes``; an unknown setting is an error that lists the known ones."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise TypeError(f"Unknown training setting(s) {', '.join(unknown)}. A TrainConfig has "
                            f"{', '.join(self.field_names())}; fit also takes precision, "
                            "channels_last, compile, checkpoint_path, resume, progress, max_steps, "
                            "step_callback, eval_every_epoch, eval_batch_size, test, distributed, "
                            "workers, protocol and train_eval_images.")
        return replace(self, **changes) if changes else self

    def differences(self, other):
        """The names of the settings in which ``other`` differs from this recipe."""
        return [name for name in self.field_names() if getattr(self, name) != getattr(other, name)]

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]

    def to_dict(self):
        # Settings added after records were shipped (LATER_SETTINGS) are left out while at their
        # defaults: a recipe that does not use them reads exactly as it did before they existed,
        # so the shipped run records and checkpoints, which store this dict and compare it field
        # by field, still match their runs; from_dict gives such a left-out setting its default.
        return {name: value for name, value in asdict(self).items()
                if not (name in LATER_SETTINGS and value == DEFAULTS[name])}

    def __repr__(self):
        # likewise: a recipe prints as it did before the later settings existed, unless it uses them
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values, dict):
            raise TypeError(f"A training recipe is a dict of settings, not a {type(values).__name__}.")
        return cls().replace(**values)


# Settings TrainConfig.to_dict (and the printed recipe) leave out at their defaults: those added
# after run records were shipped (issue #25). A setting added later joins this list.
LATER_SETTINGS = ("tta_shift", "whiten_first_layer", "dirac_init", "bn_scale", "bn_bias_lr",
                  "bn_momentum", "lookahead", "alternating_flip", "plateau_patience",
                  "plateau_decreases")
DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}

# The paper's ImageNet augmentation (Section 3.1), which the training command applies to folders
# of images: scale jittering S in [256, 512], 224 x 224 crops, Krizhevsky et al.'s colour shift,
# evaluated at Q = (S_min + S_max) / 2 = 384 (Section 3.2); no pad-and-crop.
PAPER_IMAGENET_AUGMENTATION = dict(scale_jitter=(256, 512), crop=224, colour_shift=0.1,
                                   eval_scale=384, crop_padding=0)
