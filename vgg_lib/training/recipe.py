"""``TrainConfig``: the training recipe, every setting that decides what a run computes, in one
commented place. ``fit(model, data, recipe)`` reads it, checkpoints store it, and resuming
refuses a recipe that differs from the stored one, naming the field.

Settings that only decide *how fast* a run goes (precision, memory layout, ``torch.compile``,
the progress bar) are not part of the recipe: they are ``fit``'s keyword arguments and may
change between the sessions of one run.
"""

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

SCHEDULES = ("onecycle", "cosine", "constant")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10              # passes over the training images
    lr: float = 0.05              # peak learning rate of the schedule (the paper: 0.01, constant
                                  # until the validation accuracy stalls, then divided by 10)
    batch_size: int = 128         # the paper: 256
    optimizer: str = "sgd"        # "sgd", the paper's; "adam" (Kingma & Ba, 2015) ignores momentum
    momentum: float = 0.9         # the paper's 0.9
    nesterov: bool = False        # plain momentum, as in the paper; the profiles use Nesterov's
    weight_decay: float = 5e-4    # the paper's 5e-4, on weights only (not biases or batch norm)
    schedule: str = "onecycle"    # see vgg_lib.training.loop.lr_factor
    label_smoothing: float = 0.0  # not in the paper (Szegedy et al., 2016)
    augment: bool = True          # random crops and horizontal flips
    crop_padding: int = 4         # zero padding of the random crops, pixels per side
    seed: int = 0                 # weights' initialisation aside: data order and augmentation
    tta_flip: bool = False        # evaluation averages each image's logits with its mirror's
    scale_jitter: tuple = None    # (S_min, S_max): scale jittering instead of pad-and-crop, each
                                  # image rescaled to S x S, S drawn from [S_min, S_max], then
                                  # cropped to its own size (the paper: [256, 512], crops of 224;
                                  # chapter 9). None: no rescaling

    def __post_init__(self):
        problems = []

        def whole(name, minimum):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
                problems.append(f"{name}={value!r} (a whole number >= {minimum})")

        def real(name, minimum, strictly=False):
            value = getattr(self, name)
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and math.isfinite(value) and (value > minimum if strictly else value >= minimum))
            if not ok:
                problems.append(f"{name}={value!r} (a finite number {'>' if strictly else '>='} {minimum})")

        whole("epochs", 1)
        whole("batch_size", 1)
        whole("crop_padding", 0)
        whole("seed", 0)
        real("lr", 0, strictly=True)
        real("momentum", 0)
        real("weight_decay", 0)
        real("label_smoothing", 0)
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
                            "step_callback, eval_every_epoch, eval_batch_size and train_eval_images.")
        return replace(self, **changes) if changes else self

    def differences(self, other):
        """The names of the settings in which ``other`` differs from this recipe."""
        return [name for name in self.field_names() if getattr(self, name) != getattr(other, name)]

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values, dict):
            raise TypeError(f"A training recipe is a dict of settings, not a {type(values).__name__}.")
        return cls().replace(**values)
