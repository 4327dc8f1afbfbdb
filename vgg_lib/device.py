"""Where and in what precision the book's code runs: one module for the device and the precision.

``choose_device()`` picks a CUDA GPU, else Apple's MPS, else the CPU; ``resolve_precision`` turns
"auto" into what runs fastest on a device; ``autocast`` is the matching context manager;
``machine()`` describes the computer, as run records and the execution stamps note it.
"""

import os
import platform
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Where set, what "auto" means on any device: the maintainers' way to store chapters computed in
# one precision whatever CPU re-executes them (VGG_PRECISION=fp32 make notebooks ...).
ENV_PRECISION = "VGG_PRECISION"


def choose_device():
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def cpu_flags():
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


# The CPU features that decide how fast training runs here (and which precision "auto" picks).
RECORDED_FLAGS = ("avx2", "avx512_bf16", "amx_bf16")


def cpu_model():
    """The CPU's model name (Linux), else what ``platform`` knows, else "not recorded"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "not recorded"


def machine():
    """This computer as a run record notes it: CPU model, cores, the CPU features of
    ``RECORDED_FLAGS`` it has, and the GPU (None without one)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "flags": [flag for flag in RECORDED_FLAGS if flag in cpu_flags()], "gpu": gpu}


def cpu_has_native_bf16():
    """True where the CPU reports native bf16 instructions: AMX on x86 (the ``amx_bf16`` flag) or
    BF16 on Arm (``bf16``). These are the CPUs on which ``resolve_precision("auto", "cpu")``
    picks bf16; the function reads the flags, it does not time anything.

    Why those flags: without native bf16, PyTorch emulates it: on this book's AVX2 test machine
    (AMD EPYC, 2 cores) a training step of a quarter-width VGG-16-BN ran at 56 images/s under
    bf16 autocast against 620 images/s in fp32. AVX512-BF16 alone (``avx512_bf16`` without AMX)
    was not enough: on a 2-core Intel Xeon with it, bf16 autocast trained VGG-16-BN at widths
    1/4, 1/2 and 1 at 759/173/64 images/s against 869/236/75 in fp32 (5 steps of batch 64 each,
    side by side; 13-32% slower over two passes), the quick profile's loop at 1,489 against
    1,714, and a 2048x2048 bf16 matmul ran at 49-73% of the fp32 rate
    (benchmarks/training_speed.py). With AMX, bf16 was the faster one: on the book's 2-core
    Intel Xeon with ``amx_bf16`` (torch 2.14, one thread, 2026-12-04), a training step of
    VGG-16-BN (compact head, batch 64, channels-last) ran at 1,114-1,210 against 714-719
    images per CPU-second at width 1/4 and 421-428 against 202-211 at width 1/2, and a
    2048x2048 matmul at 941-992 against 161 GFLOP per CPU-second (two passes each, 5 timed
    steps or products after 2 untimed; a one-off timing on a quiet machine, not a benchmark
    script). Arm's
    ``bf16`` is chosen on the same reasoning, not measured here."""
    flags = cpu_flags()
    return bool({"amx_bf16", "bf16"} & flags)


def resolve_precision(precision, device):
    """Turn "auto" into what runs fastest on ``device``: bf16 on GPUs that support it, fp16
    (with loss scaling) on older GPUs such as the T4, bf16 on CPUs whose flags show native bf16
    (``cpu_has_native_bf16``: AMX on x86, BF16 on Arm), else fp32 (emulated bf16 is many times
    slower than fp32, and AVX512-BF16 without AMX was still slower), fp32 on MPS.
    The environment variable VGG_PRECISION, where set, replaces that choice."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    forced = os.environ.get(ENV_PRECISION)
    if forced:
        if forced not in PRECISIONS[1:]:
            raise ValueError(f"{ENV_PRECISION}={forced!r}; set it to one of "
                             f"{', '.join(PRECISIONS[1:])}, or unset it to let each device choose.")
        return forced
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast(device, precision):
    """The autocast context for a resolved precision (BatchNorm stays fp32 inside it)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def default_channels_last(device):
    """NHWC memory layout: faster on CUDA (tensor cores) and on CPUs (oneDNN), not on MPS."""
    return torch.device(device).type in ("cuda", "cpu")


def synchronise(device):
    """Wait for ``device``'s queued work (CUDA runs kernels asynchronously), so that a clock read
    next times what was launched; nothing to wait for on a CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
