"""Pilot runs that size chapter 10 (plain against residual VGG columns), on the validation split.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/residual_pilots.py --budget 10kx5 \\
        --configs A E E-8 --seeds 0 1 --lr 0.1 --folder /tmp/pilots --shard 0/2

Every run: batch norm, compact head, width 1/8, chapter 5's optimiser (SGD with Nesterov
momentum 0.9, weight decay 5e-4, one-cycle, label smoothing 0.1, batch 128, no crop padding),
fp32, one thread, ``fit(..., test=False)`` (the test set is never evaluated here: nothing is
chosen on it) and ``train_eval_images``: the training loss and accuracy measured after every
epoch, in eval mode, on fixed training images. One JSON file per finished run in ``--folder``
(a run already there is skipped, so the script resumes); ``--shard i/n`` runs every n-th run
(two processes share the list); ``--report`` prints the table of everything in the folder. The
results are recorded in ``vgg_lib/experiments/residual_networks.py`` (``PILOTS``).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vgg_lib.architecture.model import ModelSpec
from vgg_lib.atomic_write import write_atomically
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.loop import fit
from vgg_lib.training.recipe import TrainConfig
from vgg_lib.training.reproducibility import seed_everything

# name: (training images, epochs)
BUDGETS = {"10kx5": (10_000, 5), "10kx10": (10_000, 10), "20kx6": (20_000, 6),
           "20kx10": (20_000, 10), "45kx4": (45_000, 4), "5kx4": (5_000, 4), "8kx5": (8_000, 5),
           "10kx8": (10_000, 8), "15kx8": (15_000, 8), "20kx8": (20_000, 8)}
VALIDATION, TRAIN_EVAL = 2_000, 2_000
BASE = TrainConfig(batch_size=128, weight_decay=5e-4, label_smoothing=0.1, nesterov=True,
                   tta_flip=False, crop_padding=0)


def run_name(budget, config, shortcuts, seed, lr, width):
    return f"{budget}_lr{lr:g}_w{width:g}_{config}_{shortcuts}_seed{seed}"


def train(folder, budget, config, shortcuts, seed, lr, width):
    path = Path(folder) / f"{run_name(budget, config, shortcuts, seed, lr, width)}.json"
    if path.exists():
        return
    images, epochs = BUDGETS[budget]
    data = load_cifar10(device="cpu", train_images=images, test_images=1_000,
                        validation=VALIDATION, seed=0)
    spec = ModelSpec(config, batch_norm=True, width=width, head="compact", num_classes=10,
                     shortcuts=shortcuts)
    recipe = BASE.replace(epochs=epochs, lr=lr, seed=seed)
    seed_everything(seed)
    model = spec.build()
    started = time.perf_counter()
    history = fit(model, data, recipe, precision="fp32", progress=False, test=False,
                  train_eval_images=TRAIN_EVAL)
    record = dict(budget=budget, config=config, shortcuts=shortcuts, seed=seed, lr=lr,
                  width=width, seconds=time.perf_counter() - started,
                  threads=torch.get_num_threads(), epochs=history.epochs,
                  diverged=history.diverged)
    text = json.dumps(record, indent=1)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
    last = history.epochs[-1]
    print(f"{path.stem}: train-eval loss {last['train_eval_loss']:.3f} acc "
          f"{last['train_eval_accuracy']:.3f}, val acc {last['val_accuracy']:.3f}, "
          f"{record['seconds']:.0f} s", flush=True)


def report(folder):
    groups = {}
    for path in sorted(Path(folder).glob("*.json")):
        record = json.loads(path.read_text())
        key = (record["budget"], record["lr"], record["width"], record["config"], record["shortcuts"])
        groups.setdefault(key, []).append(record)

    def pm(values, scale=100):
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{scale * mean:6.2f} ± {scale * std:4.2f}"

    print("budget lr width config shortcuts n | train-eval loss | train-eval acc % | val acc % | s/run")
    for key, runs in sorted(groups.items()):
        last = [r["epochs"][-1] for r in runs]
        print(*key, len(runs), "|", pm([e["train_eval_loss"] for e in last], 1), "|",
              pm([e["train_eval_accuracy"] for e in last]), "|",
              pm([e["val_accuracy"] for e in last]), "|",
              f"{statistics.fmean(r['seconds'] for r in runs):.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", choices=list(BUDGETS), default="10kx5")
    parser.add_argument("--configs", nargs="+", default=["A", "D", "E", "E-6", "E-8"])
    parser.add_argument("--shortcuts", nargs="+", default=["none", "identity"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--folder", default="/tmp/residual-pilots")
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    Path(args.folder).mkdir(parents=True, exist_ok=True)
    if args.report:
        return report(args.folder)
    index, count = (int(v) for v in args.shard.split("/"))
    runs = [(seed, config, shortcuts) for seed in args.seeds for config in args.configs
            for shortcuts in args.shortcuts]
    for seed, config, shortcuts in runs[index::count]:
        train(args.folder, args.budget, config, shortcuts, seed, args.lr, args.width)


if __name__ == "__main__":
    main()
