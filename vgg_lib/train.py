"""Train a VGG from the command line: ``python -m vgg_lib.train`` or ``vgg-train``.

One process (the default; exactly the chapters' ``fit``)::

    vgg-train --profile full --epochs 30 --checkpoint runs/vgg16.pt

Several processes, data-parallel (PyTorch's torchrun starts them, DDP averages gradients)::

    torchrun --standalone --nproc_per_node=4 -m vgg_lib.train --profile full

The options of the network and of the recipe are generated from the fields of ``ModelSpec`` and
``TrainConfig`` (their help is the fields' own), so every setting that decides what a run
computes is a recipe field that checkpoints store and resuming compares; the command line only
sets it. ``--batch-size`` is always the global batch, split evenly among the processes. Only
rank 0 prints progress and writes the checkpoint and the run record (``vgg_lib.experiments.runs``,
beside the checkpoint as .json). ``--data PATH`` trains on a folder of images in ImageFolder
layout (PATH/train/<class>/, PATH/val/<class>/) with the paper's ImageNet augmentation
(``vgg_lib.training.folders``). See book/beyond_one_gpu.md.

This module is a command: it may import every part of the package but ``teaching`` and
``exercises``, and nothing imports it.
"""

import argparse
import math
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch

from .architecture.configs import NAMED
from .architecture.model import ModelSpec
from .device import PRECISIONS, choose_device
from .evaluation.protocols import dense
from .experiments.runs import Stopwatch, identity, make_record, write_record
from .training.checkpoint import CheckpointError, default_checkpoint_dir
from .training.cifar10 import load_cifar10
from .training.data import DataError
from .training.distributed import DEFAULT_TIMEOUT_S, DistributedError, launched_by_torchrun, setup
from .training.folders import load_image_folder
from .training.loop import fit
from .training.profiles import PROFILE_NAMES, get_profile
from .training.recipe import PAPER_IMAGENET_AUGMENTATION, TrainConfig

EXIT_BAD_INPUT = 2   # bad arguments, data, checkpoint or recipe (argparse's own code)
EXIT_FAILED = 1      # the run itself failed (another process died or hung, ...)


def _whole_number(minimum):
    """An argparse type: a whole number >= ``minimum``, with a one-line error otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            wanted = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value

    return parse


def _number(check):
    """An argparse type: a finite number that ``check(value)`` accepts (it raises ValueError or
    TypeError, with the message, otherwise)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        try:
            check(value)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    return parse


def _positive(value):
    if value <= 0:
        raise ValueError(f"{value:g} is not a positive number")


def _smallest_whole(settings, name):
    """0 or 1: the smallest whole number ``settings`` accepts as ``name``."""
    try:
        settings(**{name: 0})
        return 0
    except ValueError:
        return 1


def add_field_options(group, settings):
    """One option per field of the dataclass ``settings`` (``ModelSpec``, ``TrainConfig``),
    named like it (``--batch-size``), typed by it, with the field's ``help``; every default is
    None, meaning "the profile's". Fields marked ``command_line=False`` are set from the data."""
    for field in fields(settings):
        meta = field.metadata
        if meta.get("command_line", True) is False:
            continue
        flags = [f"--{field.name.replace('_', '-')}", *meta.get("aliases", ())]
        options = dict(default=None, dest=field.name, help=meta["help"])
        if field.type is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif field.type is int:
            options["type"] = _whole_number(_smallest_whole(settings, field.name))
        elif field.type is float:
            options["type"] = _number(lambda value, name=field.name: settings(**{name: value}))
        elif field.type is tuple:
            options.update(type=_whole_number(1), nargs=2, metavar=meta.get("metavar"))
        if "choices" in meta:
            options["choices"] = meta["choices"]
        group.add_argument(*flags, **options)


def _prog():
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m vgg_lib.train" if name in ("train.py", "__main__.py", "-c", "") else name


def build_parser():
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Train a VGG (Simonyan & Zisserman, 2014) on CIFAR-10 or a folder of images, "
                    "in one process or data-parallel under torchrun "
                    "(torchrun --nproc_per_node=N -m vgg_lib.train ...).",
        epilog="Defaults come from the profile: quick = VGG-11-BN at quarter width, 3 epochs of "
               "45,000 images (a CPU, about a minute); full = VGG-16-BN at full width on all of CIFAR-10 (a GPU). "
               "Folders of images start from the paper's ImageNet augmentation (scale jitter 256 "
               "512, crop 224, colour shift 0.1, evaluation at Q = the middle of the jitter). "
               "Exit status 2: bad arguments, data, checkpoint or recipe; 1: the run failed.")
    parser.add_argument("--profile", choices=PROFILE_NAMES, default=None,
                        help="starting point for every setting (default: $VGG_PROFILE, else full "
                             "with a CUDA GPU and quick without)")
    add_field_options(parser.add_argument_group("the network (ModelSpec; default: the profile's)"),
                      ModelSpec)
    add_field_options(parser.add_argument_group("the recipe (TrainConfig; default: the profile's)"),
                      TrainConfig)
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="cifar10",
                      help="'cifar10' (offline file $VGG_CIFAR10_NPZ, else torchvision's download) "
                           "or a folder with train/<class>/*.jpg and val/<class>/*.jpg")
    data.add_argument("--train-images", type=_whole_number(1), default=None,
                      help="CIFAR-10: keep this many training images, class-balanced (default: the profile's)")
    data.add_argument("--test-images", type=_whole_number(1), default=None,
                      help="CIFAR-10: keep this many test images (default: the profile's)")
    data.add_argument("--val-images", type=_whole_number(0), default=None,
                      help="CIFAR-10: training images set aside as the validation split, evaluated "
                           "after every epoch; the test images are evaluated once, at the end "
                           "(default: the profile's)")
    data.add_argument("--workers", type=_whole_number(0), default=4,
                      help="image folders: DataLoader processes decoding JPEGs, per rank (default 4)")
    data.add_argument("--eval-protocol", choices=("centre-crop", "dense"), default="centre-crop",
                      help="folders of images: how val/ is evaluated: 'centre-crop' (the shorter "
                           "side resized to --eval-scale, the centre --crop, with its mirror when "
                           "--tta-flip) or 'dense' (the paper's dense evaluation: the "
                           "fully-convolutional network over whole images at each of "
                           "--eval-scales, with mirrors)")
    data.add_argument("--eval-scales", type=_whole_number(1), nargs="+", default=None, metavar="Q",
                      help="test scales of --eval-protocol dense (default: S_min, the middle of "
                           "--scale-jitter and S_max, as in the paper's Table 4)")
    output = parser.add_argument_group("checkpoints and records (rank 0 writes them)")
    output.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint written after every epoch (default: "
                             "$VGG_CHECKPOINT_DIR or checkpoints/, file vgg-train.pt)")
    output.add_argument("--history", type=Path, default=None,
                        help="the run record, JSON (default: the checkpoint's name with .json)")
    output.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint when it exists (every rank reads it); "
                             "refuses a checkpoint of another recipe")
    output.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    speed = parser.add_argument_group("speed (does not change what is computed)")
    speed.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 or fp16 on GPUs, bf16 on CPUs with AMX, else fp32")
    speed.add_argument("--device", default=None,
                       help="cpu, cuda, mps (default: the fastest; under torchrun cuda:LOCAL_RANK)")
    speed.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    speed.add_argument("--threads", type=_whole_number(1), default=None,
                       help="torch CPU threads per process (default: torch's choice)")
    speed.add_argument("--max-steps", type=_whole_number(1), default=None,
                       help="stop after this many optimiser steps (the schedule stays that of --epochs)")
    parallel = parser.add_argument_group("several processes (under torchrun)")
    parallel.add_argument("--sync-bn", action="store_true",
                          help="SyncBatchNorm: batch statistics over the global batch (GPUs only)")
    parallel.add_argument("--timeout", type=_number(_positive),
                          default=DEFAULT_TIMEOUT_S,
                          help="seconds a process waits for the others in one collective before "
                               f"the run stops with an error (default {DEFAULT_TIMEOUT_S})")
    return parser


def _changes(args, settings):
    """The fields of ``settings`` the command line sets."""
    return {f.name: getattr(args, f.name) for f in fields(settings)
            if getattr(args, f.name, None) is not None}


# The quick profile's CIFAR-10 tricks (chapter 5) that a folder of images, or a network whose first
# layer is not a 3x3 convolution (B-5x5), cannot take: off there unless the command line asks.
CIFAR_TRICKS_OFF = dict(whiten_first_layer=False, alternating_flip=False, tta_shift=0)


def _first_layer_is_3x3(spec):
    first = next(item for item in NAMED[spec.config] if isinstance(item, (int, tuple))
                 and not isinstance(item, bool))
    return not isinstance(first, tuple) or first[1] == 3


def _settings(args, profile, folders):
    """(ModelSpec, TrainConfig) of the profile with the command line's changes; folders of
    images start from the paper's ImageNet augmentation, evaluated at the middle of the jitter,
    without the profile's CIFAR-10 tricks (``CIFAR_TRICKS_OFF``), as does a network whose first
    layer is not a 3x3 convolution without its whitened first layer."""
    changes = _changes(args, TrainConfig)
    if changes.get("scale_jitter") is not None:
        changes["scale_jitter"] = tuple(changes["scale_jitter"])
    spec = profile.model.replace(**_changes(args, ModelSpec))
    if folders:
        changes = {**PAPER_IMAGENET_AUGMENTATION, **CIFAR_TRICKS_OFF, **changes}
        if "eval_scale" not in _changes(args, TrainConfig):
            changes["eval_scale"] = sum(changes["scale_jitter"]) // 2
    elif not _first_layer_is_3x3(spec):
        changes = {"whiten_first_layer": False, **changes}
    return spec, profile.recipe.replace(**changes)


def _protocol(args, recipe, folders):
    if not folders:
        if args.eval_protocol != "centre-crop" or args.eval_scales is not None:
            raise ValueError("--eval-protocol and --eval-scales are for folders of images "
                             "(--data ROOT); CIFAR-10 runs are evaluated on 32x32 images (the "
                             "dense and multi-crop protocols for CIFAR-10 are "
                             "vgg_lib.evaluation.protocols, chapter 9).")
        return None
    if args.eval_protocol == "dense":
        low, high = recipe.scale_jitter
        return dense(args.eval_scales or (low, (low + high) // 2, high), flip=True, crop=recipe.crop)
    if args.eval_scales is not None:
        raise ValueError("--eval-scales belongs to --eval-protocol dense; the centre crop takes "
                         "one scale, --eval-scale.")
    return None  # fit's default: the recipe's centre crop at eval_scale


def run(args, step_callback=None):
    """Train as ``args`` (from ``build_parser``) say; returns (model, history, distributed).
    ``step_callback(step, model, loss)`` is passed to the training loop (tests use it)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    distributed = setup(device=args.device, timeout_s=args.timeout, sync_batch_norm=args.sync_bn)
    if args.sync_bn and distributed is None:
        print("note: --sync-bn has no effect in a single process", file=sys.stderr)
    device = distributed.device if distributed else torch.device(args.device or choose_device())
    is_main = distributed is None or distributed.is_main
    profile = get_profile(args.profile, device=device)
    checkpoint = args.checkpoint or default_checkpoint_dir() / "vgg-train.pt"
    history_path = args.history or checkpoint.with_suffix(".json")
    folders = args.data != "cifar10"
    try:
        spec, recipe = _settings(args, profile, folders)
        protocol = _protocol(args, recipe, folders)
        if folders:
            data = load_image_folder(args.data, device=device)
        else:
            data = load_cifar10(device=device, train_images=args.train_images or profile.train_images,
                                test_images=args.test_images or profile.test_images,
                                validation=(profile.validation if args.val_images is None
                                            else args.val_images), seed=recipe.seed)
        spec = spec.replace(num_classes=len(data.classes))
        if is_main:
            processes = f"{distributed.world_size} processes ({distributed.backend})" if distributed else "1 process"
            print(f"{spec.describe()}; {recipe.epochs} epochs, global batch {recipe.batch_size}, "
                  f"lr {recipe.lr:g}, seed {recipe.seed}; {processes} on {device}", flush=True)
            print(f"data: {data}", flush=True)
        torch.manual_seed(recipe.seed)  # the weights' initialisation: the same on every rank
        model = spec.build().to(device)
        with Stopwatch() as watch:
            history = fit(model, data, recipe, compile=args.compile, precision=args.precision,
                          checkpoint_path=checkpoint, resume=args.resume, progress=args.progress,
                          max_steps=args.max_steps, distributed=distributed,
                          step_callback=step_callback, workers=args.workers, protocol=protocol)
        if is_main:
            record = make_record(identity(checkpoint.stem, spec, recipe, None, data), history,
                                 seconds=watch.seconds, cpu_seconds=watch.cpu_seconds, model=model)
            write_record(history_path, record)
            print(f"{history.status}; checkpoint {checkpoint}; run record {history_path}", flush=True)
        return model, history, distributed
    finally:
        if distributed is not None:
            distributed.close()


def main(argv=None, step_callback=None):
    """The command line; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 and one "error:" line on bad arguments
    rank = f"[rank {os.environ.get('RANK')}] " if launched_by_torchrun() else ""
    try:
        _, history, _ = run(args, step_callback=step_callback)
    except (DataError, CheckpointError, ValueError, TypeError) as error:
        print(f"{parser.prog}: error: {rank}{_one_line(error)}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except DistributedError as error:
        print(f"{parser.prog}: error: {_one_line(error)}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except RuntimeError as error:
        if not launched_by_torchrun():
            raise  # a bug, not a message: keep the traceback
        # DDP's gradient all-reduce runs inside backward(): a peer that died or hangs surfaces
        # here as gloo's or NCCL's RuntimeError (after --timeout seconds)
        print(f"{parser.prog}: error: {rank}training stopped: {_one_line(error)[:300]} (another "
              "process of this run failed or hangs; torchrun stops the others)",
              file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return 1 if history.diverged else 0


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
