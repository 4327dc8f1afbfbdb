"""Run by tests/training/test_distributed.py under torchrun (2 processes, gloo): ``vgg_lib.train`` in
scenarios that need a hook inside the run. Not a test module (pytest collects test_*.py only).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/training/ddp_worker.py \
        SCENARIO OUT_DIR STEP -- <vgg_lib.train arguments>

runs:   the run without batch norm, the one with it, one with scale jittering and two with airbench's
        settings (without and with batch norm), in one process group (setup() reuses it); every
        rank saves its final state dict as OUT_DIR/<name>-rank<r>.pt
killed: rank 1 kills itself (SIGKILL) at optimiser step STEP
hang:   rank 1 stops taking part (sleeps) at step STEP; rank 0 must time out
"""

import datetime
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

from vgg_lib.train import build_parser, main, run

# airbench's settings (vgg_lib/training/airbench.py), without batch norm and with its own ones
AIRBENCH = ["--no-batch-norm", "--whiten-first-layer", "--dirac-init", "--lookahead",
            "--alternating-flip"]
AIRBENCH_BN = ["--batch-norm", "--whiten-first-layer", "--dirac-init", "--lookahead",
               "--alternating-flip", "--no-bn-scale", "--bn-bias-lr", "8", "--bn-momentum", "0.4"]

scenario, out, step_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
argv = sys.argv[sys.argv.index("--") + 1:]
rank = int(os.environ["RANK"])
torch.set_num_threads(1)


def at_step(action):
    def callback(step, model, loss):
        if rank == 1 and step == step_at:
            action()
    return callback


if scenario == "runs":
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    for name, flags in (("plain", ["--no-batch-norm"]), ("bn", ["--batch-norm"]),
                        ("jitter", ["--no-batch-norm", "--scale-jitter", "32", "40", "--crop-padding", "0"]),
                        ("airbench", AIRBENCH), ("airbench-bn", AIRBENCH_BN)):
        args = build_parser().parse_args(argv + flags + ["--checkpoint", f"{out}/{name}.pt"])
        model, history, _ = run(args)
        torch.save(model.state_dict(), f"{out}/{name}-rank{rank}.pt")
    dist.destroy_process_group()
elif scenario == "killed":
    sys.exit(main(argv, step_callback=at_step(lambda: os.kill(os.getpid(), signal.SIGKILL))))
elif scenario == "hang":
    sys.exit(main(argv, step_callback=at_step(lambda: time.sleep(600))))
else:
    sys.exit(f"unknown scenario {scenario!r}")
