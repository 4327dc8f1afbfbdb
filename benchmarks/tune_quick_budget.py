"""The quick profile's budget (issue #25): how many epochs over how many images, and which test-time
views, chosen on the validation split; the test set is never evaluated here.

    python benchmarks/tune_quick_budget.py --settings 4x37500 5x30000 --seeds 0 1 2 --threads 1
    python benchmarks/tune_quick_budget.py --summary      # the table of every recorded run
    python benchmarks/tune_quick_budget.py --settings 4x40000 --threads 1 --variant no-first-batch-norm

A setting is "<epochs>x<training images>": the quick profile's network and recipe with only
those two changed, trained by ``fit(..., test=False)`` on that many of the 45,000 training
images outside the validation split (class-balanced, ``load_cifar10``'s choice). After training,
the validation split is evaluated under several test-time protocols at once (``PROTOCOLS``:
the flip alone; the profile's flip + 1-pixel diagonal shifts; and variants with more or other
shifts), so the profile's test-time views are chosen on the same runs. Each run appends one
JSON line to ``--record`` (quick_budget_runs.jsonl beside this file): the setting, seed,
training seconds, threads, each protocol's validation accuracy, the date, precision and the
CPU's flags. Needs the full CIFAR-10 (``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz``).

The budget rule: the most images seen (epochs x images) whose training fits 60 s on the book's
2-core machine in fp32 at least 5 s under the minute (2 threads, quiet: 3x45000 = 135,000 images
trained in 48.8-49.6 s, 4x37500 = 150,000 in 54.6 s, 4x40000 = 160,000 in 59.5 s, too close);
among the settings at that budget, the best mean validation accuracy over seeds 0-2.
"""

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from vgg_lib.device import cpu_flags
from vgg_lib.evaluation.engine import evaluate_protocols
from vgg_lib.evaluation.protocols import Protocol, View, _with_flip, centre_crop, shifted_flips
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.loop import fit
from vgg_lib.training.profiles import make_profile
from vgg_lib.training.reproducibility import seed_everything
from vgg_lib.training.speed_variants import VARIANTS, apply_variant

RECORD = Path(__file__).with_name("quick_budget_runs.jsonl")
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _pairs(name, shifts):
    """The images translated by each of ``shifts`` (dy, dx), each with its mirror image."""
    return Protocol(name, _with_flip(tuple(View(shift=s) for s in shifts), True))


DIAGONAL, ANTI = [(1, 1), (-1, -1)], [(1, -1), (-1, 1)]
AXES = [(0, 1), (0, -1), (1, 0), (-1, 0)]
PLAIN = centre_crop(flip=True)
# The profile's protocol is the second; "plain+..." weigh the plain pair 1/2 and the shifted
# pairs together 1/2 (as airbench and the profile do), "equal ..." weigh every pair alike.
PROTOCOLS = (
    PLAIN,
    shifted_flips(1),
    shifted_flips(2),
    Protocol("plain+4diag1", (PLAIN, _pairs("both diagonals", DIAGONAL + ANTI))),
    Protocol("plain+axes1", (PLAIN, _pairs("up, down, left, right", AXES))),
    Protocol("plain+8n1", (PLAIN, _pairs("8 neighbours", DIAGONAL + ANTI + AXES))),
    Protocol("plain+diag1+diag2", (PLAIN, Protocol("1 and 2 pixels", (
        _pairs("1 pixel", DIAGONAL), _pairs("2 pixels", [(2, 2), (-2, -2)]))))),
    Protocol("equal 4diag1", (_pairs("plain and both diagonals", [(0, 0)] + DIAGONAL + ANTI),)),
    Protocol("equal 8n1", (_pairs("plain and 8 neighbours", [(0, 0)] + DIAGONAL + ANTI + AXES),)),
)


def parse_setting(text):
    """"4x37500" -> (4, 37500)."""
    try:
        epochs, images = (int(part) for part in text.split("x"))
    except ValueError:
        raise SystemExit(f"setting {text!r}: write <epochs>x<training images>, e.g. 4x37500") from None
    if epochs < 1 or not 0 < images <= 45_000:
        raise SystemExit(f"setting {text!r}: at least 1 epoch, 1 to 45,000 training images")
    return epochs, images


def run(profile, data, epochs, setting, seed, record, variant="as-is"):
    """Train ``profile`` with ``epochs`` on ``data`` (the setting's images) for ``seed``, evaluate
    the validation split under every protocol and append the run's line to ``record``.
    ``variant``: the network rewritten by ``speed_variants.apply_variant`` (after the seed)."""
    seed_everything(seed)
    model = apply_variant(profile.build_model(), variant)
    if variant != "as-is":
        setting = f"{setting}+{variant}"
    history = fit(model, data, profile.recipe.replace(seed=seed, epochs=epochs), precision="fp32",
                  test=False, progress=False, eval_every_epoch=False)
    seconds = sum(e["seconds"] for e in history.epochs)
    results = evaluate_protocols(model, data, PROTOCOLS, "val", progress=False, precision="fp32",
                                 count_macs=False)
    line = dict(setting=setting, epochs=epochs, train_images=len(data.x_train), seed=seed,
                train_seconds=round(seconds, 1), threads=torch.get_num_threads(),
                val={name: round(100 * r.accuracy, 2) for name, r in results.items()},
                date=datetime.date.today().isoformat(), precision="fp32",
                flags=sorted(f for f in FLAGS if f in cpu_flags()),
                machine=platform.processor() or platform.machine(), torch=torch.__version__,
                **({"variant": variant} if variant != "as-is" else {}))
    print(json.dumps(line), flush=True)
    with open(record, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def summary(record):
    lines = [json.loads(text) for text in Path(record).read_text().splitlines() if text.strip()]
    profile_views = shifted_flips(1).name
    print(f"{'setting':>9} {'images seen':>11} {'seeds':>7} {'val % (profile views)':>22} "
          f"{'flip only':>10} {'train s':>8} threads")
    for setting, threads in dict.fromkeys((line["setting"], line["threads"]) for line in lines):
        runs = sorted((line for line in lines if (line["setting"], line["threads"]) == (setting, threads)),
                      key=lambda line: line["seed"])
        vals = [line["val"][profile_views] for line in runs]
        flips = [line["val"][PLAIN.name] for line in runs]
        spread = statistics.stdev(vals) if len(vals) > 1 else 0.0
        print(f"{setting:>9} {runs[0]['epochs'] * runs[0]['train_images']:>11,} "
              f"{','.join(str(r['seed']) for r in runs):>7} "
              f"{statistics.mean(vals):>14.2f} ± {spread:.2f} {statistics.mean(flips):>10.2f} "
              f"{statistics.mean(r['train_seconds'] for r in runs):>8.1f} {threads}")
    # every protocol against the profile's, paired over every run of the profile's network with
    # one thread (a --variant's runs are of another network)
    paired = [line for line in lines if line["threads"] == 1 and "variant" not in line]
    print(f"\ntest-time views against the profile's, validation points, paired over {len(paired)} runs:")
    for name in paired[0]["val"]:
        diffs = [line["val"][name] - line["val"][profile_views] for line in paired]
        mean, error = statistics.mean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
        t = mean / error if error else 0.0
        print(f"  {name:<30} {mean:+.2f} ± {error:.2f} (t {t:+.1f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=[])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--record", default=str(RECORD))
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--variant", default="as-is", choices=VARIANTS,
                        help="the network rewritten for speed (vgg_lib/training/speed_variants.py)")
    args = parser.parse_args(argv)
    if args.summary:
        return summary(args.record)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {setting: parse_setting(setting) for setting in args.settings}   # all checked first
    profile = make_profile("quick", "cpu")
    for setting, (epochs, images) in settings.items():
        data = load_cifar10(**dict(profile.data_kwargs(), train_images=images))   # once per setting
        for seed in args.seeds:
            started = time.perf_counter()
            run(profile, data, epochs, setting, seed, args.record, args.variant)
            print(f"  ({time.perf_counter() - started:.0f} s with evaluation)", flush=True)


if __name__ == "__main__":
    main()
