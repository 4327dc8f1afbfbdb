"""How fast does the book evaluate? The quick profile's network on the validation split under the
profile's test-time views, timed for the levers issue #25 lists: the batch size,
``torch.inference_mode`` instead of ``no_grad``, and each convolution's batch norm folded into it.

    python benchmarks/evaluation_speed.py                   # fp32 and the machine's auto precision
    python benchmarks/evaluation_speed.py --rounds 3 --batch-sizes 64 128 256 512 1024

Every setting is timed ``--rounds`` times, the rounds interleaved (a host that slows down for a
while slows every setting alike), and the fastest round is reported. Before timing, the script
checks what each lever does to the outputs: the batch size and ``inference_mode`` leave every
image's log-posteriors exactly as they were (checked bit for bit here); folding batch norm into the
convolutions computes the same function in another order of rounding (the largest difference is
printed), so it would change the last digits of stored results and is measured, not used. The
network's weights are its initial ones (the time does not depend on them); its batch norms get
running statistics and scales that are not 0 and 1, so the folding has something to fold. Needs the
full CIFAR-10 (``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz``).

Measured 2026-12-06 on the book's 2-core Intel Xeon (avx2 avx512f avx512_bf16 amx_bf16, 2 threads,
torch 2.14.1), 5,000 validation images x 6 views (flip + 1-pixel shifts), fastest of 2 rounds:

    precision  batch   no_grad  inference_mode  folded batch norm
    fp32         128    3.26 s          3.35 s             2.94 s
    fp32         256    3.25 s          3.20 s             2.85 s
    fp32         512    3.80 s          3.71 s             2.78 s
    bf16         128    1.79 s          1.73 s             1.63 s
    bf16         256    1.73 s          1.66 s             1.44 s
    bf16         512    1.63 s          1.57 s             1.39 s

Outputs bit for bit the same at every batch size and mode, in both precisions, but the mean loss
not (fp32, validation: 2.302546484375 at 256, 2.3025462890625 at 512); folded batch norm
differs by up to 4.8e-7 (fp32) and 9.3e-4 (bf16) in a log-posterior. Read: in fp32, the slow case
this benchmark is for, 256 images per batch are 15 % faster than 512 (0.55 s per validation; 128
ties with 256); in bf16 512 is 6 % faster than 256. The book keeps 512 (``fit``'s
``eval_batch_size``, ``evaluate``'s ``batch_size``) all the same: each image's log-posteriors do
not change, but the mean loss is summed batch by batch in float32, so another batch size changes
its last bits, and the shipped records' losses (``train_eval_loss``, which ``make results
VERIFY=1`` compares bit for bit on the records' machine) would no longer reproduce. Changing it
means making every record again. ``inference_mode`` stays within a round's spread of ``no_grad``
(-3 % to +3 %): not worth a second way of turning gradients off. Folding batch norm saves 10 to
27 % but changes the last digits of every stored result too: not used.
"""

import argparse
import copy
import time

import torch
from torch import nn

from vgg_lib.device import autocast, machine, resolve_precision
from vgg_lib.evaluation.engine import evaluate
from vgg_lib.evaluation.protocols import shifted_flips
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.profiles import get_profile
from vgg_lib.training.reproducibility import seed_everything


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128, 256, 512])
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="default: fp32, and the machine's auto precision if it is another")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--split", default="val", choices=("val", "test"))
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.batch_sizes) or args.rounds < 1:
        parser.error("batch sizes and --rounds must be at least 1")
    return args


def with_statistics_worth_folding(model):
    """``model`` with running statistics and scales of its batch norms that are not 0 and 1."""
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.1, 0.1)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
    return model


def network(profile):
    """The profile's network in eval mode, its batch norms given statistics worth folding."""
    seed_everything(0)
    return with_statistics_worth_folding(profile.build_model().eval())


def gradients_off(mode):
    """The context that turns gradients off as ``mode`` says: "no_grad" or "inference_mode"."""
    return torch.inference_mode() if mode == "inference_mode" else torch.no_grad()


def folded(model):
    """A copy of ``model`` with each convolution's batch norm folded into its weights and bias."""
    model = copy.deepcopy(model)
    layers = model.features
    for index in range(len(layers) - 1):
        if isinstance(layers[index], nn.Conv2d) and isinstance(layers[index + 1], nn.BatchNorm2d):
            layers[index] = nn.utils.fusion.fuse_conv_bn_eval(layers[index], layers[index + 1])
            layers[index + 1] = nn.Identity()
    return model


def log_posteriors(model, images, batch_size, precision, mode):
    """The log-posteriors of ``images`` (normalised, N x 3 x 32 x 32), batch by batch."""
    with gradients_off(mode), autocast(images.device, precision):
        return torch.cat([model(images[i:i + batch_size]).float().log_softmax(1)
                          for i in range(0, len(images), batch_size)])


def check_outputs(model, data, batch_sizes, precision):
    """Whether the levers change the outputs: a dict of findings, printed."""
    images = data.normalize(data.x_val[:1024], channels_last=True)
    model = model.to(memory_format=torch.channels_last)
    reference = log_posteriors(model, images, batch_sizes[0], precision, "no_grad")
    same = {f"batch {size}, {mode}": torch.equal(reference, log_posteriors(model, images, size,
                                                                           precision, mode))
            for size in batch_sizes for mode in ("no_grad", "inference_mode")}
    fused = log_posteriors(folded(model), images, batch_sizes[0], precision, "no_grad")
    return same, (fused - reference).abs().max().item()


def time_evaluation(model, data, split, protocol, batch_size, precision, mode):
    started = time.perf_counter()
    with gradients_off(mode):
        evaluate(model, data, split, protocol=protocol, batch_size=batch_size, precision=precision)
    return time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    profile = get_profile("quick", "cpu")
    data = load_cifar10(**profile.data_kwargs())
    auto = resolve_precision("auto", data.device)
    precisions = args.precisions or list(dict.fromkeys(["fp32", auto]))
    protocol = shifted_flips(profile.recipe.tta_shift)
    images = data.split_size(args.split)
    here = machine()
    print(f"machine: {here['cpu']} ({' '.join(here['flags'])}), {here['cores']} CPUs, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{profile}\n{images:,} {args.split} images x {len(list(protocol.views()))} views "
          f"({protocol.name}), fastest of {args.rounds} interleaved rounds\n")
    model = network(profile)
    variants = {"no_grad": model, "inference_mode": model, "folded batch norm": folded(model)}
    for precision in precisions:
        same, folded_difference = check_outputs(model, data, args.batch_sizes, precision)
        print(f"{precision}: outputs bit for bit the same at every batch size and mode: "
              f"{all(same.values())}" + ("" if all(same.values()) else f" ({same})"))
        print(f"{precision}: folded batch norm, largest log-posterior difference "
              f"{folded_difference:.2e} (another rounding: not used)")
        losses = {size: evaluate(model, data, args.split, batch_size=size, precision=precision)[0]
                  for size in args.batch_sizes}   # the mean loss, summed batch by batch
        print(f"{precision}: mean loss (the images as they are) by batch size: "
              + ", ".join(f"{size}: {loss!r}" for size, loss in losses.items())
              + f" (all equal: {len(set(losses.values())) == 1})")
        seconds = {}
        evaluate(model, data, args.split, protocol=protocol, precision=precision)   # warm-up
        for _ in range(args.rounds):
            for size in args.batch_sizes:
                for name, variant in variants.items():
                    mode = "inference_mode" if name == "inference_mode" else "no_grad"
                    seconds.setdefault((size, name), []).append(time_evaluation(
                        variant, data, args.split, protocol, size, precision, mode))
        print(f"  {'batch':>6}" + "".join(f"{name:>20}" for name in variants))
        for size in args.batch_sizes:
            print(f"  {size:>6}" + "".join(f"{min(seconds[(size, name)]):>18.2f} s"
                                           for name in variants))
        best = min(args.batch_sizes, key=lambda size: min(seconds[(size, "no_grad")]))
        print(f"  fastest batch (no_grad): {best}\n")


if __name__ == "__main__":
    main()
