"""The GPU check: train the full profile and say how fast the GPU ran it.

Trains the ``full`` profile (VGG-16-BN at full width, compact head, all 50,000 CIFAR-10 training
images, the chapters' recipe: 30 epochs, batch 256, one-cycle, label smoothing, flip TTA) with
``vgg_lib``'s own ``fit`` (the chapters' code path) and prints the test accuracy, the wall time,
images per second and the effective TFLOP/s (6 x multiply-adds per image, forward and
backward), against the GPU's own matmul rate measured in the same run in the training precision.

Data: ``VGG_CIFAR10_NPZ`` (``../shared/data/cifar10-full.npz`` offline). On a machine that gets
neither ``../shared`` nor more than 64 MiB of working tree, pass ``--jpeg FILE``: the 18 MB
``cifar10-full-jpeg.npz`` with ``unpack_jpeg.py`` beside it (``../shared/data/README.md``),
decoded here into a temporary npz (Pillow: exactly the pixels of ``cifar10-full.npz``). Needs
torch and numpy (and Pillow for ``--jpeg``); nothing else.

    # a later session with a GPU: copy the data into an ignored folder, carry it, run
    mkdir -p .device && cp ../shared/data/cifar10-full-jpeg.npz ../shared/data/unpack_jpeg.py .device/
    # run (carry [".device"], timeout_s 600):
    PYTHONPATH=. python3 benchmarks/full_profile.py --jpeg .device/cifar10-full-jpeg.npz

    # here, on a CPU, end to end in a minute (a tiny step count; the numbers mean nothing):
    VGG_CIFAR10_NPZ=../shared/data/cifar10-mini.npz python benchmarks/full_profile.py \
        --width 0.0625 --epochs 1 --max-steps 3 --train-images 768 --test-images 256 --batch-size 256
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from vgg_lib.device import resolve_precision  # noqa: E402
from vgg_lib.training.cifar10 import load_cifar10  # noqa: E402
from vgg_lib.training.data import DataError  # noqa: E402
from vgg_lib.training.loop import recipe_protocol  # noqa: E402
from vgg_lib import evaluate, fit  # noqa: E402
from vgg_lib.training.profiles import get_profile, train_flop_per_image  # noqa: E402
from vgg_lib.training.reproducibility import seed_everything  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jpeg", type=Path, default=None,
                        help="cifar10-full-jpeg.npz (unpack_jpeg.py beside it): decode it first")
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's 30")
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (a smoke test)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the profile's 256")
    parser.add_argument("--width", type=float, default=None, help="default: the profile's 1.0")
    parser.add_argument("--train-images", type=int, default=None, help="default: all")
    parser.add_argument("--test-images", type=int, default=None, help="default: all")
    parser.add_argument("--precision", default="auto", help="default: the fastest here")
    parser.add_argument("--matmul-size", type=int, default=None,
                        help="n of the n x n matmul (default 8192 on a GPU, 1024 on a CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def unpack(jpeg):
    script = jpeg.parent / "unpack_jpeg.py"
    if not script.is_file():
        raise DataError(f"--jpeg {jpeg}: unpack_jpeg.py is not beside it; copy both from "
                        "../shared/data/.")
    target = Path(tempfile.gettempdir()) / "cifar10-full-unpacked.npz"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(script), str(jpeg), str(target)], check=True)
    print(f"decoded {jpeg} in {time.perf_counter() - started:.1f} s", flush=True)
    return target


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device, precision, n, repeats=10):
    """Best TFLOP/s of an n x n matmul in the training precision (what tensor cores can do)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best / 1e12, str(dtype).replace("torch.", "")


def main(argv=None):
    args = parse_args(argv)
    if args.jpeg is not None:
        os.environ["VGG_CIFAR10_NPZ"] = str(unpack(args.jpeg))
    profile = get_profile("full")
    device = profile.device
    spec = profile.model if args.width is None else profile.model.replace(width=args.width)
    changes = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size))
               if v is not None}
    recipe = profile.recipe.replace(**changes)
    precision = resolve_precision(args.precision, device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"machine: {gpu or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"precision {precision}", flush=True)
    print(f"model: {spec.describe()}; recipe: {recipe}", flush=True)

    data = load_cifar10(device=device, train_images=args.train_images,
                        test_images=args.test_images, validation=profile.validation)
    print(f"data: {data}", flush=True)
    seed_everything(recipe.seed)
    model = spec.build().to(device)
    started = time.perf_counter()
    history = fit(model, data, recipe, precision=precision, max_steps=args.max_steps,
                  progress=False, eval_every_epoch=False)
    sync(device)
    wall = time.perf_counter() - started
    if history.test is None:  # stopped by --max-steps (a smoke test): evaluate anyway
        loss, accuracy = evaluate(model, data, protocol=recipe_protocol(recipe, data.image_size),
                                  precision=precision)
        history.test = dict(loss=loss, accuracy=accuracy)

    flop = train_flop_per_image(spec)
    trained = len(history.steps) * recipe.batch_size
    train_seconds = sum(e["seconds"] for e in history.epochs)
    rate = trained / train_seconds
    effective = rate * flop / 1e12
    n = args.matmul_size or (8192 if device.type == "cuda" else 1024)
    peak, dtype = matmul_tflops(device, precision, n)
    results = dict(device=str(device), gpu=gpu, torch=torch.__version__, precision=precision,
                   model=spec.describe(), epochs=len(history.epochs), steps=len(history.steps),
                   test_accuracy=history.final_test_accuracy, wall_seconds=wall,
                   train_seconds=train_seconds, images_per_second=rate,
                   train_gflop_per_image=flop / 1e9, effective_tflops=effective,
                   matmul_tflops=peak, matmul_dtype=dtype, share_of_matmul=effective / peak,
                   status=history.status)
    print(f"\ntest accuracy      {history.final_test_accuracy:.2%}  ({history.status})")
    print(f"wall time          {wall:,.1f} s (training and evaluation), {train_seconds:,.1f} s training")
    print(f"images/s           {rate:,.0f} (training steps)")
    print(f"compute            {flop / 1e9:.3f} GFLOP per training image (6 x multiply-adds)")
    print(f"effective          {effective:,.2f} TFLOP/s")
    print(f"{n}x{n} {dtype} matmul  {peak:,.2f} TFLOP/s, measured now")
    print(f"share of matmul    {effective / peak:.1%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"full_profile.py: error: {error}")
