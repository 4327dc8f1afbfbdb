"""Tune the quick profile on the validation split, never on the test set.

    python benchmarks/tune_quick_profile.py                       # every setting below, seeds 0 1 2
    python benchmarks/tune_quick_profile.py --settings baseline more-images --seeds 0 1 2

Each setting changes the quick profile's training images, epochs, peak learning rate, crop
padding or label smoothing; the first ones keep the compute of one run at about 70,000 images
seen, the last ones at twice that (the training time of the first budget, measured on a quiet
2-core machine, left room). Every run trains with ``fit(..., test=False)``: the test set is
not evaluated at all, so nothing here can be chosen on it. The script prints each run's final
validation accuracy and training time, then one line per setting: mean ± standard deviation over
the seeds. The results are recorded beside ``QUICK`` in ``vgg_lib/training/profiles.py``.
Needs the full CIFAR-10 (``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz`` offline).
"""

import argparse
import statistics
import time

import torch

from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.loop import fit
from vgg_lib.training.profiles import make_profile
from vgg_lib.training.reproducibility import seed_everything

# name: (training images, recipe changes); images x epochs stays near 70,000
SETTINGS = {
    "baseline": (10_000, dict(epochs=7, lr=0.3, crop_padding=1)),    # the old profile's recipe
    "3x23k": (23_000, dict(epochs=3, lr=0.3, crop_padding=2)),
    "2x35k": (35_000, dict(epochs=2, lr=0.3, crop_padding=2)),
    "2x35k-pad4": (35_000, dict(epochs=2, lr=0.3, crop_padding=4)),
    # the baseline's crop padding, changed alone (issue: was that choice made on the test set?)
    "baseline-pad0": (10_000, dict(epochs=7, lr=0.3, crop_padding=0)),
    "baseline-pad4": (10_000, dict(epochs=7, lr=0.3, crop_padding=4)),
    "baseline-smooth0.2": (10_000, dict(epochs=7, lr=0.3, crop_padding=1, label_smoothing=0.2)),
    # twice the images seen (140,000): the first budget left half of the 60 s unused here
    "14x10k-pad0": (10_000, dict(epochs=14, lr=0.3, crop_padding=0)),
    "7x20k-pad0": (20_000, dict(epochs=7, lr=0.3, crop_padding=0)),
    "5x28k-pad0": (28_000, dict(epochs=5, lr=0.3, crop_padding=0)),
    # seed 002's optimiser for VGG on CIFAR-10 (Adam, lr 1e-3, batch 64, StepLR whose first decay
    # at epoch 30 falls outside this budget, so constant), in the chosen setting, all else equal
    "5x28k-adam": (28_000, dict(epochs=5, crop_padding=0, optimizer="adam", lr=1e-3, batch_size=64,
                                schedule="constant", nesterov=False)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    profile = make_profile("quick", "cpu")
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}; base: {profile}")
    results = {}
    for name in args.settings:
        images, changes = SETTINGS[name]
        data = load_cifar10(device=profile.device, train_images=images, test_images=None,
                            validation=profile.validation)
        recipe = profile.recipe.replace(**changes)
        for seed in args.seeds:
            seed_everything(seed)
            model = profile.model.build()
            started = time.perf_counter()
            history = fit(model, data, recipe.replace(seed=seed), progress=False, test=False,
                          eval_every_epoch=False)
            wall = time.perf_counter() - started
            training = sum(e["seconds"] for e in history.epochs)
            results.setdefault(name, []).append(history.final_val_accuracy)
            print(f"{name:>12} seed {seed}: val {history.final_val_accuracy:.2%}  "
                  f"training {training:.0f} s (wall {wall:.0f} s)", flush=True)
    print("\nsetting -> validation accuracy, mean ± std over seeds " + " ".join(map(str, args.seeds)))
    for name, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        images, changes = SETTINGS[name]
        print(f"{name:>12} ({images:,} images, {changes}): "
              f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}%")


if __name__ == "__main__":
    main()
