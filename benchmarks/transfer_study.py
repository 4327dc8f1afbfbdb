"""Compute chapter 11's study (notebooks/11_transfer_features.ipynb) outside the notebook, seed by
seed, into the folder the chapter reads (``<checkpoint folder>/studies/transfer-<settings>``):

    python benchmarks/transfer_study.py --settings full --seeds 0 2 4   # one process
    python benchmarks/transfer_study.py --settings full --seeds 1 3     # another, beside it

Seeds already stored are read, not trained again, so the command can be stopped and rerun.
Needs the full CIFAR-10 (``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz`` offline). Each
process uses as many threads as ``OMP_NUM_THREADS`` allows (one per process for two at once).
"""

import argparse
import time

import torch

from vgg_lib.experiments.transfer_features import SETTINGS
from vgg_lib.transfer.study import load_tasks, run_transfer_study, study_folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default="full", choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="a subset of the settings' seeds (default: all of them)")
    args = parser.parse_args(argv)
    settings = SETTINGS[args.settings]
    seeds = tuple(args.seeds) if args.seeds else settings.seeds
    unknown = sorted(set(seeds) - set(settings.seeds))
    if unknown:
        parser.error(f"seeds {unknown} are not among the {args.settings!r} settings' seeds "
                     f"{settings.seeds}")
    source, target = load_tasks(settings)
    print(f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; settings "
          f"{settings.name!r}, seeds {seeds}; folder {study_folder(settings)}", flush=True)
    started = time.perf_counter()
    results = run_transfer_study(settings.replace(seeds=seeds), source, target,
                                 study_folder(settings))
    for result in results:
        print(f"seed {result['seed']}: source test {result['source']['test']:.3f}, "
              f"{result['seconds']:.0f} s when computed", flush=True)
    print(f"{time.perf_counter() - started:.0f} s in this call")


if __name__ == "__main__":
    main()
