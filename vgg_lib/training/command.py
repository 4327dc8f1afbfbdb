"""Train a VGG from the command line: ``python -m vgg_lib.train`` or ``vgg-train``.

One process (the default; exactly the chapters' ``fit``)::

    vgg-train --profile full --epochs 30 --checkpoint runs/vgg16.pt

Several processes, data-parallel (PyTorch's torchrun starts them, DDP averages gradients)::

    torchrun --standalone --nproc_per_node=4 -m vgg_lib.train --profile full

``--batch-size`` is always the global batch, split evenly among the processes. Only rank 0
prints progress and writes the checkpoint and the JSON history. ``--data PATH`` trains on a
folder of images in ImageFolder layout (PATH/train/<class>/, PATH/val/<class>/) with the paper's
ImageNet augmentation (``vgg_lib.training.imagefolder``). See book/beyond_one_gpu.md.

This module is a command: it may import every part of the package but ``teaching`` and
``exercises``, and nothing imports it.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from ..architecture.configs import CONFIGS, CONTROLS
from ..architecture.spec import HEADS
from ..atomic_write import write_atomically
from ..device import PRECISIONS, choose_device
from .checkpoint import CheckpointError, default_checkpoint_dir
from .data import DataError, load_cifar10
from .distributed import DEFAULT_TIMEOUT_S, DistributedError, launched_by_torchrun, setup
from .profiles import PROFILE_NAMES, get_profile

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


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _prog():
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m vgg_lib.train" if name in ("train.py", "__main__.py", "-c", "") else name


def build_parser():
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Train a VGG (Simonyan & Zisserman, 2014) on CIFAR-10 or a folder of images, "
                    "in one process or data-parallel under torchrun "
                    "(torchrun --nproc_per_node=N -m vgg_lib.train ...).",
        epilog="Defaults come from the profile: quick = VGG-11-BN at quarter width on 10,000 "
               "images (a CPU, minutes); full = VGG-16-BN at full width on all of CIFAR-10 (a GPU). "
               "Exit status 2: bad arguments, data, checkpoint or recipe; 1: the run failed.")
    model = parser.add_argument_group("the network (ModelSpec; default: the profile's)")
    model.add_argument("--profile", choices=PROFILE_NAMES, default=None,
                       help="starting point for every setting (default: $VGG_PROFILE, else full "
                            "with a CUDA GPU and quick without)")
    model.add_argument("--config", choices=[*CONFIGS, *CONTROLS], default=None,
                       help="Table 1 column: A (VGG-11) ... D (VGG-16), E (VGG-19); or the "
                            "paper's shallow control B-5x5 (B with each pair of 3x3 "
                            "convolutions merged into one 5x5, chapter 8)")
    model.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                       help="BatchNorm after every convolution (not in the paper)")
    model.add_argument("--width", type=_positive_float, default=None,
                       help="channel multiplier: 1 is the paper's width, 0.25 a quarter")
    model.add_argument("--head", choices=HEADS, default=None,
                       help="imagenet: the paper's three FC layers over a 7x7 map; compact: "
                            "global average pooling and one linear layer; fc-2x2: the paper's "
                            "three FC layers over a 2x2 map, the last max-pool dropped (CIFAR's "
                            "analogue of 7x7, chapter 9)")
    recipe = parser.add_argument_group("the recipe (TrainConfig; default: the profile's)")
    recipe.add_argument("--epochs", type=_positive_int, default=None, help="passes over the training images")
    recipe.add_argument("--batch-size", type=_positive_int, default=None,
                        help="GLOBAL batch: split evenly among the torchrun processes (the paper: 256)")
    recipe.add_argument("--lr", type=_positive_float, default=None,
                        help="peak learning rate; scale it with the global batch (book/beyond_one_gpu.md)")
    recipe.add_argument("--seed", type=_non_negative_int, default=None,
                        help="data order and augmentation seed (the weights' too)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="cifar10",
                      help="'cifar10' (offline file $VGG_CIFAR10_NPZ, else torchvision's download) "
                           "or a folder with train/<class>/*.jpg and val/<class>/*.jpg")
    data.add_argument("--train-images", type=_positive_int, default=None,
                      help="CIFAR-10: keep this many training images, class-balanced (default: the profile's)")
    data.add_argument("--test-images", type=_positive_int, default=None,
                      help="CIFAR-10: keep this many test images (default: the profile's)")
    data.add_argument("--val-images", type=_non_negative_int, default=None,
                      help="CIFAR-10: training images set aside as the validation split, evaluated "
                           "after every epoch; the test images are evaluated once, at the end "
                           "(default: the profile's)")
    data.add_argument("--workers", type=_non_negative_int, default=4,
                      help="image folders: DataLoader processes decoding JPEGs, per rank (default 4)")
    data.add_argument("--scale", type=_positive_int, nargs=2, metavar=("S_MIN", "S_MAX"),
                      default=(256, 512),
                      help="image folders: scale jittering, shorter side drawn from [S_MIN, S_MAX] "
                           "(default: the paper's 256 512)")
    data.add_argument("--crop", type=_positive_int, default=224,
                      help="image folders: random crop size (default 224)")
    data.add_argument("--eval-scale", type=_positive_int, default=None,
                      help="image folders: Q, the shorter side at test time (default (S_MIN+S_MAX)/2)")
    data.add_argument("--eval-protocol", choices=("centre-crop", "dense"), default="centre-crop",
                      help="folders of images: how val/ is evaluated: 'centre-crop' (the shorter "
                           "side resized to --eval-scale, the centre crop and its mirror) or "
                           "'dense' (the paper's dense evaluation: the fully-convolutional "
                           "network over whole images at each of --eval-scales, with mirrors)")
    data.add_argument("--eval-scales", type=_positive_int, nargs="+", default=None, metavar="Q",
                      help="test scales of --eval-protocol dense (default: S_min, the middle of "
                           "--scale and S_max, as in the paper's Table 4)")
    data.add_argument("--colour-shift", type=float, default=0.1,
                      help="image folders: std of Krizhevsky et al.'s RGB colour shift, 0 = off")
    output = parser.add_argument_group("checkpoints and logs (rank 0 writes them)")
    output.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint written after every epoch (default: "
                             "$VGG_CHECKPOINT_DIR or checkpoints/, file vgg-train.pt)")
    output.add_argument("--history", type=Path, default=None,
                        help="JSON history (default: the checkpoint's name with .json)")
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
    speed.add_argument("--threads", type=_positive_int, default=None,
                       help="torch CPU threads per process (default: torch's choice)")
    speed.add_argument("--max-steps", type=_positive_int, default=None,
                       help="stop after this many optimiser steps (the schedule stays that of --epochs)")
    parallel = parser.add_argument_group("several processes (under torchrun)")
    parallel.add_argument("--sync-bn", action="store_true",
                          help="SyncBatchNorm: batch statistics over the global batch (GPUs only)")
    parallel.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT_S,
                          help="seconds a process waits for the others in one collective before "
                               f"the run stops with an error (default {DEFAULT_TIMEOUT_S})")
    return parser


def _settings(args, profile):
    """(ModelSpec, TrainConfig) of the profile with the command line's changes."""
    spec_changes = {name: value for name, value in (
        ("config", args.config), ("batch_norm", args.batch_norm), ("width", args.width),
        ("head", args.head)) if value is not None}
    recipe_changes = {name: value for name, value in (
        ("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
        ("seed", args.seed)) if value is not None}
    return profile.model.replace(**spec_changes), profile.recipe.replace(**recipe_changes)


def _write_json(path, payload):
    text = json.dumps(payload, indent=1, default=str).encode()
    write_atomically(path, lambda handle: handle.write(text))


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
    common = dict(precision=args.precision, checkpoint_path=checkpoint, resume=args.resume,
                  progress=args.progress, max_steps=args.max_steps, distributed=distributed,
                  step_callback=step_callback)
    try:
        if args.data == "cifar10":
            if args.eval_protocol != "centre-crop" or args.eval_scales is not None:
                raise ValueError("--eval-protocol and --eval-scales are for folders of images "
                                 "(--data ROOT); CIFAR-10 runs are evaluated on 32x32 images "
                                 "(the dense and multi-crop protocols for CIFAR-10 are "
                                 "vgg_lib.training.protocols, chapter 9).")
            spec, recipe = _settings(args, profile)
            data = load_cifar10(device=device, train_subset=args.train_images or profile.train_subset,
                                test_subset=args.test_images or profile.test_subset,
                                validation=(profile.validation if args.val_images is None
                                            else args.val_images), seed=recipe.seed)
            described = f"{data}"
            spec = spec.replace(num_classes=len(data.classes))
        else:
            from .imagefolder import FolderAugment, load_image_folder

            data = load_image_folder(args.data)
            spec, recipe = _settings(args, profile)
            spec = spec.replace(num_classes=len(data.classes))
            augment = FolderAugment(scale_min=args.scale[0], scale_max=args.scale[1],
                                    crop=args.crop, colour_shift=args.colour_shift,
                                    eval_scale=args.eval_scale or (args.scale[0] + args.scale[1]) // 2)
            if args.eval_protocol == "dense":
                from .imagefolder import DenseMultiScale

                protocol = DenseMultiScale(args.eval_scales or (
                    args.scale[0], (args.scale[0] + args.scale[1]) // 2, args.scale[1]))
            else:
                if args.eval_scales is not None:
                    raise ValueError("--eval-scales belongs to --eval-protocol dense; the centre "
                                     "crop takes one scale, --eval-scale.")
                protocol = None  # fit_folder's default: CentreCrop at augment.eval_scale
            described = f"{data}, {augment}"
        if is_main:
            processes = f"{distributed.world_size} processes ({distributed.backend})" if distributed else "1 process"
            print(f"{spec.describe()}; {recipe.epochs} epochs, global batch {recipe.batch_size}, "
                  f"lr {recipe.lr:g}, seed {recipe.seed}; {processes} on {device}", flush=True)
            print(f"data: {described}", flush=True)
        torch.manual_seed(recipe.seed)  # the weights' initialisation: the same on every rank
        model = spec.build().to(device)
        if args.data == "cifar10":
            from .loop import fit

            history = fit(model, data, recipe, compile=args.compile, **common)
        else:
            from .imagefolder import fit_folder

            history = fit_folder(model, data, recipe, augment=augment, device=device,
                                 workers=args.workers, protocol=protocol, **common)
        if is_main:
            _write_json(history_path, dict(model_spec=spec.to_dict(), recipe=recipe.to_dict(),
                                           checkpoint=str(checkpoint), status=history.status,
                                           history=history.to_dict()))
            print(f"{history.status}; checkpoint {checkpoint}; history {history_path}", flush=True)
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
