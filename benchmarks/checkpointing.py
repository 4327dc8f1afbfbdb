"""Gradient checkpointing over VGG's feature stack: memory against time for k = 1 ... 8 segments
and one segment per block, on this machine (chapter 4, vgg_lib/measure/checkpointing.py).

For each way of cutting: the memory kept for backward after the forward pass and at the peak of
the backward pass (MB for the whole batch, from the saved-tensor counter), the share of the
forward pass that is run again, the time of one training step (forward + backward, the fastest
of --repeats after a warm-up step) beside the time expected from the recomputation (a step
without checkpointing plus the recomputed share of its forward pass, both measured), and on a
GPU torch.cuda.max_memory_allocated.

    python benchmarks/checkpointing.py                         # VGG-16, 224x224, batch 1, CPU
    python benchmarks/checkpointing.py --batch-size 32 --device cuda --batch-norm
"""
import argparse
import platform
import time

import torch

from vgg_lib import vgg
from vgg_lib.device import choose_device
from vgg_lib.measure.checkpointing import checkpointing_table, format_checkpointing_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="D", help="Table 1 column (default D, VGG-16)")
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--max-k", type=int, default=8, help="k = 1 ... max-k segments")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per row (the fastest counts)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU if there is one)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else choose_device()
    torch.manual_seed(0)
    model = vgg(args.config, batch_norm=args.batch_norm).to(device)
    segmentings = (*range(1, args.max_k + 1), "blocks")
    started = time.perf_counter()
    rows = checkpointing_table(model, segmentings, args.image_size, args.batch_size, args.repeats)
    total = time.perf_counter() - started
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)")
    print(f"VGG configuration {args.config}{' with batch norm' if args.batch_norm else ''}, "
          f"{args.image_size}x{args.image_size}, batch {args.batch_size}, fp32, on {where}")
    print(format_checkpointing_table(rows))
    print(f"without checkpointing: a step {rows[0].plain_seconds:.2f} s, its forward pass "
          f"{rows[0].forward_seconds:.2f} s; expected s = that step + the share run again x that forward pass")
    print(f"whole benchmark: {total:.0f} s")


if __name__ == "__main__":
    main()
