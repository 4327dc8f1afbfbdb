"""The quick profile's claim, measured: test accuracy and training time of three seeds.

    python benchmarks/quick_profile.py                    # seeds 0 1 2, the quick profile as the chapters run it
    python benchmarks/quick_profile.py --precision fp32   # what a CPU without native bf16 runs

Run it on a quiet machine (nothing else busy): the times are what the chapter's "≤ 60 s of
training on 2 CPU cores" is about. Each run is the training chapter's: ``fit`` with the profile's
recipe, the validation split evaluated after every epoch, the test set once at the end. Needs the
full CIFAR-10 (``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz`` offline).
"""

import argparse
import platform
import statistics
import time

import torch

from vgg_lib.device import PRECISIONS, resolve_precision
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.loop import fit
from vgg_lib.training.profiles import get_profile
from vgg_lib.training.reproducibility import seed_everything


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="fit's precision; 'auto' (the chapters' choice) is bf16 on CPUs with "
                             "native bf16 (AMX), else fp32")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    data = load_cifar10(**profile.data_kwargs())
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, precision {args.precision} "
          f"({resolve_precision(args.precision, data.device)} here)\n{profile}")
    print(data)
    estimate = profile.estimate_here(args.precision)   # what chapter 5 prints before it trains
    print(estimate)
    tests, times, wholes = [], [], []
    for seed in args.seeds:
        seed_everything(seed)
        model = profile.build_model()
        started = time.perf_counter()
        history = fit(model, data, profile.recipe.replace(seed=seed), precision=args.precision,
                      progress=False)
        whole = time.perf_counter() - started
        seconds = sum(e["seconds"] for e in history.epochs)
        tests.append(history.final_test_accuracy)
        times.append(seconds)
        wholes.append(whole)
        print(f"seed {seed}: validation {history.final_val_accuracy:.2%}, test {history.final_test_accuracy:.2%}, "
              f"training {seconds:.1f} s ({len(data.x_train) * len(history.epochs) / seconds:,.0f} images/s); "
              f"the whole fit {whole:.1f} s (set-up, validation after each epoch and the test included)",
              flush=True)
    spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
    print(f"test accuracy {100 * statistics.mean(tests):.1f} ± {100 * spread:.1f}% over seeds {args.seeds}; "
          f"training {min(times):.1f}-{max(times):.1f} s; the whole fit {min(wholes):.1f}-{max(wholes):.1f} s")
    print(f"the estimate printed before the runs: ~{estimate.seconds:.0f} s per run, training and "
          f"evaluation (the training time above leaves evaluation out)")


if __name__ == "__main__":
    main()
