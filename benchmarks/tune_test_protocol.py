"""Chapter 9's choices, on the validation split only: the scale-jitter range of training and
the test scales of the dense and multi-crop protocols.

    python benchmarks/tune_test_protocol.py --settings none 32-48 --seeds 0

Each run trains the chapter's model (``CHAPTER_SPEC``, ``CHAPTER_RECIPE`` in
``vgg_lib/experiments/test_protocol.py``) with ``fit(..., test=False)``: the test set is never read.
It prints each run's validation accuracy under single crop, flip, dense evaluation at each
candidate scale, dense at the candidate scale sets and multi-crop; the results are recorded
beside the chapter's settings (``PROTOCOL_TUNING``). Needs the full CIFAR-10 offline
(``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz``).
"""

import argparse
import time

import torch

from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.loop import fit
from vgg_lib.evaluation.engine import evaluate_protocols
from vgg_lib.evaluation.protocols import dense, flip_average, multi_crop, single_crop
from vgg_lib.experiments.test_protocol import CHAPTER_RECIPE, CHAPTER_SPEC, CHAPTER_TRAIN_IMAGES
from vgg_lib.training.reproducibility import seed_everything

SETTINGS = {"none": None, "32-40": (32, 40), "32-48": (32, 48), "32-64": (32, 64)}
CANDIDATE_SCALES = (40, 48, 56, 64)
CANDIDATE_SETS = ((32, 40, 48), (32, 48, 64))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--val-images", type=int, default=2_000,
                        help="validation images the protocols are compared on (of 5,000)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_cifar10(device="cpu", train_images=CHAPTER_TRAIN_IMAGES, validation=5_000)
    protocols = ([single_crop(), flip_average()]
                 + [dense(q) for q in CANDIDATE_SCALES] + [dense(s) for s in CANDIDATE_SETS]
                 + [multi_crop((32, 40, 48)), multi_crop((32, 48, 64), grid=3)])
    protocols[-2] = type(protocols[-2])("multi-crop {32,40,48}", protocols[-2].parts)
    protocols[-1] = type(protocols[-1])("multi-crop {32,48,64}", protocols[-1].parts)
    for setting in args.settings:
        for seed in args.seeds:
            recipe = CHAPTER_RECIPE.replace(seed=seed, scale_jitter=SETTINGS[setting])
            seed_everything(seed)
            model = CHAPTER_SPEC.build()
            started = time.perf_counter()
            history = fit(model, data, recipe, test=False, progress=False, eval_every_epoch=False)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            results = evaluate_protocols(model, data, protocols, split="val", limit=args.val_images,
                                         progress=False)
            evaluated = time.perf_counter() - started
            line = ", ".join(f"{name}: {r.accuracy:.4f}" for name, r in results.items())
            print(f"{setting} seed {seed}: train {seconds:.0f} s, protocols {evaluated:.0f} s; "
                  f"val (fit) {history.epochs[-1]['val_accuracy']:.4f}; {line}", flush=True)


if __name__ == "__main__":
    main()
