"""How fast is the book's training loop? One run on one machine, side by side with plain PyTorch.

Measures, on the same model and batch size:

1. augmentation alone: our batched crop/flip/normalise on the device vs torchvision's PIL
   transforms (RandomCrop, RandomHorizontalFlip, ToTensor, Normalize) behind a DataLoader;
2. whole training steps: ``vgg_lib.fit`` vs a plain PyTorch loop fed by that DataLoader;
3. the effective training GFLOP/s of our loop vs a large matrix multiplication's GFLOP/s.

    python benchmarks/training_speed.py                 # short default run (under 2 minutes)
    python benchmarks/training_speed.py --steps 100     # longer, steadier numbers
    python benchmarks/training_speed.py --profile full  # the full profile's model
    python benchmarks/training_speed.py --precision fp32  # what a CPU without native bf16 runs
    python benchmarks/training_speed.py --breakdown     # where a step's time goes, by layer kind
    python benchmarks/training_speed.py --variant both  # fit's network rewritten (speed_variants.py)

``--breakdown`` profiles ``fit``'s timed steps (``torch.profiler``, the operators' own time on the
main thread, which includes their worker threads' work) and groups it by kind of layer:
convolutions, batch norm, ReLU, max-pooling, the optimiser, and the rest. It prints the
convolutions' own rate beside the matmul's: the loop cannot come closer to the matmul than its
convolutions do, and the other kinds, which move memory rather than multiply, are the rest of the gap.
The last line divides the loop's rate by its convolutions' own: 100 % would mean that everything
but the convolutions cost nothing.

Every line reports images per second of wall-clock time and images per CPU-second (all threads
and DataLoader worker processes together; Linux only, else "n/a"). On a machine shared with other
jobs the wall-clock figures drop, sometimes by a lot: PyTorch's OpenMP threads wait for each other
at every parallel operation, and a busy core makes them wait long. The CPU-second figures barely
move under load, so compare those there, ideally with ``--threads 1``.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from vgg_lib.measure.counting import config_costs
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.data import CIFAR10Data, DataError
from vgg_lib.training.profiles import get_profile, train_flop_per_image
from vgg_lib.training.reproducibility import seed_everything
from vgg_lib.device import PRECISIONS, resolve_precision
from vgg_lib.training.loop import fit
from vgg_lib.training.speed_variants import VARIANTS, apply_variant


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per loop")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--augment-batches", type=int, default=20,
                        help="batches for the augmentation-only comparison")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    parser.add_argument("--matmul-size", type=int, default=None,
                        help="n of the n x n matmul (default 2048 on CPU, 8192 on GPU)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="fit's precision; 'auto' (the chapters' choice) is bf16 on CPUs with "
                             "native bf16 (AMX), else fp32; the matmul yardstick runs in the same")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in this process (default: torch's choice)")
    parser.add_argument("--variant", default="as-is", choices=VARIANTS,
                        help="fit's network rewritten (vgg_lib/training/speed_variants.py): "
                             "pool-before-relu computes the same function, no-first-batch-norm "
                             "is another network")
    parser.add_argument("--breakdown", action="store_true",
                        help="also profile the timed steps and print where their time goes")
    return parser.parse_args(argv)


class Clock:
    """Wall-clock and CPU seconds of this process plus the given worker processes."""

    def __init__(self, pids=()):
        self.pids = list(pids)

    def cpu(self):
        total = time.process_time()
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                return float("nan")
        return total

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), self.cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.seconds_cpu = self.cpu() - self.cpu0
        return False


def rates(images, clock):
    """(images per wall-clock second, images per CPU-second)."""
    return images / clock.wall, images / clock.seconds_cpu if clock.seconds_cpu > 0 else float("nan")


def line(label, pair, width=44):
    wall, cpu = pair
    cpu = f"{cpu:12,.0f}" if cpu == cpu else f"{'n/a':>12}"
    return f"  {label:<{width}}{wall:12,.0f}{cpu}"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def get_data(device):
    try:
        return load_cifar10(device=device)
    except DataError as error:
        print(f"(no CIFAR-10 here, using random images instead: {str(error)[:80]}...)")
        generator = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8, generator=generator)
        y = torch.randint(0, 10, (10_000,), generator=generator)
        return CIFAR10Data(x.to(device), y.to(device), x[:2000].to(device), y[:2000].to(device),
                           [str(i) for i in range(10)], "random", (0.5,) * 3, (0.25,) * 3)


class ArrayDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: HWC uint8 array -> PIL image -> transform."""

    def __init__(self, images_hwc, labels, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def pil_loader(data, batch_size, workers):
    import torchvision.transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(data.mean, data.std)])
    dataset = ArrayDataset(data.x_train.permute(0, 2, 3, 1).cpu().numpy(),
                           data.y_train.cpu().numpy(), transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=workers, drop_last=True,
                                       persistent_workers=workers > 0,
                                       pin_memory=data.device.type == "cuda")


def worker_pids(iterator):
    return [w.pid for w in getattr(iterator, "_workers", [])]


def time_pil_batches(loader, batches, device):
    """Images per second delivered by the DataLoader (after its workers have started)."""
    iterator = iter(loader)
    next(iterator)  # worker start-up is not counted
    images = 0
    with Clock(worker_pids(iterator)) as clock:
        for _ in range(batches):
            x, _ = next(iterator)
            x = x.to(device, non_blocking=True)
            images += len(x)
        sync(device)
    return rates(images, clock)


def time_our_augmentation(data, recipe, batch_size, batches, channels_last):
    """The training loop's own data path (``CIFAR10Data.training_batch``: pick the images, crop,
    flip, normalise), with the PIL side's crop, 4 pixels of padding, and its coin-toss flips."""
    recipe = recipe.replace(augment=True, crop_padding=4, scale_jitter=None, alternating_flip=False)
    generator = torch.Generator().manual_seed(0)
    n = len(data.x_train)
    draw = lambda: torch.randint(0, n, (batch_size,), generator=generator).to(data.device)  # noqa: E731
    data.training_batch(draw(), recipe, generator, channels_last)
    sync(data.device)
    with Clock() as clock:
        for _ in range(batches):
            x, _ = data.training_batch(draw(), recipe, generator, channels_last)
        sync(data.device)
    return rates(batches * batch_size, clock)


def time_baseline_loop(profile, loader, steps, warmup, device):
    """A plain PyTorch loop: DataLoader batches, fp32, default memory layout."""
    seed_everything(0)
    model = profile.build_model().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    iterator = iter(loader)
    clock = Clock(worker_pids(iterator))
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            clock.__enter__()
        x, y = next(iterator)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync(device)
    clock.__exit__()
    return rates(steps * loader.batch_size, clock)


def fit_steps(profile, data, batch_size, steps, warmup, precision, begin, end, variant="as-is"):
    """``warmup`` untimed steps of ``fit`` (oneDNN/cuDNN set-up, allocator), then ``steps`` more,
    calling ``begin()`` at the end of the first one's backward pass and ``end()`` at the end of
    the last one's (``step_callback``, after the device has caught up): what lies between is
    ``steps - 1`` training steps alone, without the recipe's set-up (a whitened first layer's
    patch statistics, a few seconds) or the end of the run."""
    seed_everything(0)
    model = apply_variant(profile.build_model(), variant)
    recipe = profile.recipe.replace(batch_size=batch_size, epochs=1)
    settings = dict(progress=False, eval_every_epoch=False, precision=precision, test=False)
    fit(model, data, recipe, max_steps=warmup, **settings)

    def stopwatch(step, model, loss):
        if step in (1, steps):
            sync(data.device)
            begin() if step == 1 else end()

    fit(model, data, recipe, max_steps=steps, step_callback=stopwatch, **settings)


def time_our_loop(profile, data, batch_size, steps, warmup, precision, variant="as-is"):
    """Images per second (wall, CPU) of ``fit``'s training steps alone (``fit_steps``)."""
    clock = Clock()
    fit_steps(profile, data, batch_size, steps, warmup, precision, clock.__enter__, clock.__exit__,
              variant)
    return rates((steps - 1) * batch_size, clock)


# Operator names (substrings of torch.profiler's, forward and backward alike) -> kind of layer.
# The first kind that matches an operator counts it; whatever matches none is "the rest".
KINDS = (("convolutions", ("convolution",)),
         ("batch norm", ("batch_norm",)),
         ("ReLU", ("relu", "threshold", "clamp_min")),
         ("max-pooling", ("max_pool",)),
         ("optimiser (SGD, zeroing the gradients)", ("optimizer", "foreach", "_fused_sgd",
                                                      "zero_grad")))


def step_breakdown(profile, data, batch_size, steps, warmup, precision, variant="as-is"):
    """{kind: seconds} of ``steps - 1`` of ``fit``'s training steps, by kind of layer (``KINDS``),
    the operators' own time as ``torch.profiler`` measures it on the main thread; the wall
    seconds of those steps; and the four largest operators of "the rest", (name, seconds)."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    clock, profiler = Clock(), torch_profile(activities=[ProfilerActivity.CPU])
    fit_steps(profile, data, batch_size, steps, warmup, precision,
              begin=lambda: (clock.__enter__(), profiler.start()),
              end=lambda: (profiler.stop(), clock.__exit__()), variant=variant)
    seconds = {kind: 0.0 for kind, _ in KINDS}
    seconds["the rest"], rest = 0.0, {}
    for event in profiler.key_averages():
        name = event.key.lower()
        kind = next((kind for kind, keys in KINDS if any(key in name for key in keys)), "the rest")
        seconds[kind] += event.self_cpu_time_total / 1e6
        if kind == "the rest":
            rest[event.key] = event.self_cpu_time_total / 1e6
    return seconds, clock.wall, sorted(rest.items(), key=lambda item: -item[1])[:4]


def print_breakdown(seconds, wall, largest_rest, conv_flop_per_image, images, matmul, loop):
    """The step's time by kind of layer, the convolutions' own rate against the matmul's, and
    the loop's effective rate ``loop`` (GFLOP/s) against the convolutions'."""
    total = sum(seconds.values())
    print(f"where the time of {images:,} training images goes (torch.profiler, operators' own time; "
          f"{total:.2f} s of {wall:.2f} s wall):")
    for kind, spent in seconds.items():
        print(f"  {kind:<44}{spent:10.2f} s{spent / total:10.1%}")
    print("  the rest's largest: " + ", ".join(f"{name} {spent:.2f} s" for name, spent in largest_rest))
    conv = conv_flop_per_image * images / seconds["convolutions"] / 1e9
    print(f"  {'convolutions alone, effective GFLOP/s':<44}{conv:10.1f}  "
          f"({conv / matmul:.1%} of the matmul rate)")
    # the yardstick the network's own convolutions set (issue #25)
    print(f"  {'our loop against its convolutions alone':<44}{loop / conv:10.1%}")


MATMUL_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def matmul_gflops(device, n, precision="fp32", repeats=5):
    """(GFLOP per wall-clock second, GFLOP per CPU-second) of an n x n matmul at ``precision``
    (the training loop's: bf16 on a CPU with AMX, where an fp32 matmul would be the
    wrong yardstick), best of 5."""
    dtype = MATMUL_DTYPES[precision]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    sync(device)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        with Clock() as clock:
            a @ b
            sync(device)
        best_wall, best_cpu = min(best_wall, clock.wall), min(best_cpu, clock.seconds_cpu)
    return 2 * n ** 3 / best_wall / 1e9, 2 * n ** 3 / best_cpu / 1e9


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    device = profile.device
    batch_size = args.batch_size or profile.recipe.batch_size
    precision = resolve_precision(args.precision, device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}, "
          f"precision {precision}")
    print(f"model: {profile}")
    data = get_data(device)
    print(f"data: {data}")
    print(f"batch size {batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps\n")

    loader = pil_loader(data, batch_size, args.workers)
    ours_aug = time_our_augmentation(data, profile.recipe, batch_size, args.augment_batches,
                                     channels_last=True)
    pil_aug = time_pil_batches(loader, args.augment_batches, device)
    header = f"  {'':<44}{'per second':>12}{'per CPU-s':>12}"
    print("augmentation only (crop + flip + normalise), images:")
    print(header)
    print(line(f"batched on {device.type} (vgg_lib.training.augment)", ours_aug))
    print(line(f"PIL + DataLoader, {args.workers} workers", pil_aug))
    ratio = [a / b for a, b in zip(ours_aug, pil_aug)]
    print(f"  {'ratio (x)':<44}{ratio[0]:12,.1f}{ratio[1]:12,.1f}\n")

    baseline = time_baseline_loop(profile, loader, args.steps, args.warmup, device)
    ours = time_our_loop(profile, data, batch_size, args.steps, args.warmup, precision,
                         args.variant)
    print("whole training steps (forward, backward, SGD), images:")
    print(header)
    print(line("plain PyTorch + DataLoader (fp32, NCHW)", baseline))
    layout = "channels_last" if args.variant == "as-is" else args.variant
    print(line(f"vgg_lib.fit ({precision}, {layout})", ours))
    ratio = [a / b for a, b in zip(ours, baseline)]
    print(f"  {'ratio (x)':<44}{ratio[0]:12,.2f}{ratio[1]:12,.2f}\n")

    flop = train_flop_per_image(profile.model)
    n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    # The yardstick is a matmul at the loop's own precision; an fp32 one is shown beside it
    # when the loop runs in another (on a bf16 CPU, fp32 is not the rate the loop could reach).
    matmul = matmul_gflops(device, n, precision)
    effective = [rate * flop / 1e9 for rate in ours]
    print(f"compute: {flop / 1e6:,.1f} MFLOP to train on one image (6 x multiply-adds), GFLOP:")
    print(header)
    print(f"  {f'our loop, effective ({precision})':<44}{effective[0]:12,.1f}{effective[1]:12,.1f}")
    print(f"  {f'{n}x{n} {precision} matmul':<44}{matmul[0]:12,.1f}{matmul[1]:12,.1f}")
    print(f"  {'share of the matmul rate':<44}{effective[0] / matmul[0]:12,.1%}"
          f"{effective[1] / matmul[1]:12,.1%}")
    if precision != "fp32":
        fp32 = matmul_gflops(device, n, "fp32")
        print(f"  {f'{n}x{n} fp32 matmul (for comparison)':<44}{fp32[0]:12,.1f}{fp32[1]:12,.1f}")
    breakdown = None
    if args.breakdown:
        print()
        breakdown, wall, largest_rest = step_breakdown(profile, data, batch_size, args.steps,
                                                       args.warmup, precision, args.variant)
        # the convolutions' share of the training FLOPs: 6 x their multiply-adds
        conv_flop = 6 * config_costs(profile.model, image_size=data.image_size).conv_macs
        print_breakdown(breakdown, wall, largest_rest, conv_flop, (args.steps - 1) * batch_size,
                        matmul[0], effective[0])
    return dict(augment_ours=ours_aug, augment_pil=pil_aug, loop_ours=ours, loop_baseline=baseline,
                effective_gflops=effective, matmul_gflops=matmul, breakdown=breakdown)


if __name__ == "__main__":
    sys.exit(main() and 0)
