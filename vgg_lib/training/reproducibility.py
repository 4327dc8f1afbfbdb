"""Seeds and random-number-generator states: same seed, same machine, same run.

``seed_everything`` seeds every generator a training run touches (Python's ``random``, NumPy's
global generator, torch on the CPU and every GPU). ``rng_states`` / ``set_rng_states`` capture and
restore them as tensors and plain lists, so a checkpoint holding them loads with
``torch.load(..., weights_only=True)`` and a resumed run draws exactly the numbers an
uninterrupted run would have drawn.
"""

import random

import numpy as np
import torch


def seed_everything(seed=0, deterministic=False):
    """Seed Python, NumPy and torch (CPU and all CUDA devices) with ``seed``.

    cuDNN's autotuner is switched off, because it may pick a different (and differently
    rounding) algorithm on each run; that costs little. ``deterministic=True`` additionally
    asks torch for deterministic kernels everywhere, which can be much slower on GPUs.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.benchmark = False
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def rng_states():
    """The states of Python's, NumPy's and torch's global generators, checkpoint-safe."""
    version, python_state, gauss_next = random.getstate()
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    states = {
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states):
    """Restore what ``rng_states`` returned."""
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy = states["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        cuda_states = states["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
