"""Training and evaluation speed of every configuration of chapter 8's depth study, on this
machine: images per second for training steps (batch 128, augmentation and optimiser included)
and for evaluation (forward only), per configuration and width. Used to size the chapter's
quick profile (vgg_lib/training/studies.py, DEPTH_STUDY_QUICK).

    OMP_NUM_THREADS=1 python benchmarks/depth_study_speed.py --widths 0.125 0.25 --threads 1
"""
import argparse
import time

import torch

from vgg_lib.architecture.model import ModelSpec
from vgg_lib.measure.counting import config_costs
from vgg_lib import evaluate, fit
from vgg_lib.training.cifar10 import load_cifar10

CONFIGS = ("A", "A-LRN", "B", "C", "D", "E", "B-5x5")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_cifar10(device="cpu", train_images=128 * args.steps, test_images=2048, validation=0)
    print(f"{torch.get_num_threads()} thread(s); training images/s over {args.steps} steps "
          "(after 4 warm-up steps), evaluation images/s over 2,048 images")
    for width in args.widths:
        for config in CONFIGS:
            spec = ModelSpec(config=config, batch_norm=True, width=width, head="compact", num_classes=10)
            macs = config_costs(config, batch_norm=True, image_size=32, head="compact",
                                num_classes=10, width=width).macs
            model = spec.build()
            fit(model, data, epochs=1, lr=0.05, progress=False, max_steps=4, test=False)
            model = spec.build()
            start = time.perf_counter()
            fit(model, data, epochs=1, lr=0.05, progress=False, test=False)
            train = 128 * args.steps / (time.perf_counter() - start)
            start = time.perf_counter()
            evaluate(model, data)
            ev = 2048 / (time.perf_counter() - start)
            print(f"width {width:<6g} {config:6s} {macs / 1e6:6.2f} M MACs  train {train:7.0f} img/s"
                  f"  eval {ev:7.0f} img/s  train GMAC/s {train * macs / 1e9:6.1f}", flush=True)


if __name__ == "__main__":
    main()
