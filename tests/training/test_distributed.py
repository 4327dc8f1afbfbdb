"""Data parallelism under torchrun, on CPUs with the gloo backend (no GPU needed).

Three torchrun launches of 2 processes each (most of each launch is importing torch in three
processes), plus four 1-process runs inside pytest:

* without batch norm, a 2-process run with global batch 64 ends within a stated tolerance of the
  1-process run with the same global batch, seed and augmentation, with pad-and-crop and with
  scale jittering (every rank draws the crops of the whole global batch and keeps its share);
* with batch norm (no SyncBatchNorm: PyTorch runs it on GPUs only) the two runs differ, because
  each rank normalises with the statistics of its own 32 images: the learned parameters are the
  same on both ranks, the running statistics are not;
* airbench's settings (whitened first layer, dirac init, lookahead, alternating flips) keep a
  2-process run within the tolerance of the 1-process one, and with batch norm (frozen scales,
  their biases' own learning rate, a momentum) keep the ranks' learned parameters identical;
* a rank that hangs in epoch 2 makes the run stop, with one clear line, after the process
  group's timeout; the run, killed after an epoch, resumes from the epoch-1 checkpoint and
  finishes with exactly the weights of the uninterrupted 2-process run.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from support import ROOT, TRAIN_IMAGES, synthetic_npz
from vgg_lib.train import build_parser, run

WORKER = Path(__file__).resolve().with_name("ddp_worker.py")
BATCH, VAL_IMAGES = 64, 32  # of synthetic_npz's 288 training images, 32 validation, 256 to train on
STEPS_PER_EPOCH = (TRAIN_IMAGES - VAL_IMAGES) // BATCH  # 4 steps per epoch
COMMON = ["--profile", "quick", "--config", "A", "--width", "0.0625", "--head", "compact",
          "--val-images", str(VAL_IMAGES),
          "--epochs", "2", "--batch-size", str(BATCH), "--lr", "0.05", "--seed", "3",
          "--precision", "fp32", "--device", "cpu", "--threads", "1", "--no-progress",
          "--timeout", "60"]
# 1 vs 2 processes differ only in the order of floating-point additions (each rank averages
# its 32 losses, DDP averages the two gradients; one process averages 64): a relative 1e-7 per
# operation. Over these 8 SGD steps that grew to 6e-8 on the weights (measured on the 2-core
# test machine; the losses agreed to 6 decimals); 1e-4 leaves room for other CPUs' kernels and
# is far below what a real difference moves them: per-rank batch norm moved them by 8e-3.
TOLERANCE = 1e-4
JITTER = ["--no-batch-norm", "--scale-jitter", "32", "40", "--crop-padding", "0"]  # the worker's "jitter" run
AIRBENCH = ["--no-batch-norm", "--whiten-first-layer", "--dirac-init", "--lookahead",
            "--alternating-flip"]  # the worker's "airbench" run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    synthetic_npz(folder / "tiny.npz")
    return folder


def environment(workdir):
    env = {k: v for k, v in os.environ.items() if k != "VGG_PROFILE"}
    env.update(VGG_CIFAR10_NPZ=str(workdir / "tiny.npz"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def torchrun(workdir, *arguments, timeout=120):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", *map(str, arguments)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env=environment(workdir), cwd=workdir)
    return result, time.perf_counter() - started


def worker(workdir, scenario, step, *train_arguments, **kwargs):
    return torchrun(workdir, WORKER, scenario, workdir, step, "--", *train_arguments, **kwargs)


@pytest.fixture(scope="module")
def two_process_runs(workdir):
    """One torchrun launch: the run without batch norm, then the one with it."""
    result, seconds = worker(workdir, "runs", 0, *COMMON)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"2-process runs (one launch): {seconds:.1f} s")
    return workdir, result


def one_process_run(workdir, monkeypatch, *arguments):
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(workdir / "tiny.npz"))
    threads = torch.get_num_threads()
    try:
        model, history, distributed = run(build_parser().parse_args([*COMMON, *arguments]))
    finally:
        torch.set_num_threads(threads)
    assert distributed is None
    return model.state_dict(), history


def largest_difference(a, b, parameters_only=True):
    keys = [k for k in a if not parameters_only or "running" not in k and "num_batches" not in k]
    return max((a[k].double() - b[k].double()).abs().max().item() for k in keys)


def test_two_processes_match_one_process_without_batch_norm(two_process_runs, monkeypatch):
    workdir, result = two_process_runs
    assert "2 processes (gloo)" in result.stdout
    rank0 = torch.load(workdir / "plain-rank0.pt", weights_only=True)
    rank1 = torch.load(workdir / "plain-rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP keeps the ranks identical
    single, history = one_process_run(workdir, monkeypatch, "--no-batch-norm",
                                      "--checkpoint", str(workdir / "single-plain.pt"))
    difference = largest_difference(single, rank0)
    two = json.loads((workdir / "plain.json").read_text())["history"]
    loss_gap = abs(two["epochs"][-1]["train_loss"] - history.epochs[-1]["train_loss"])
    print(f"no batch norm, 1 vs 2 processes: final train loss {history.epochs[-1]['train_loss']:.6f}"
          f" vs {two['epochs'][-1]['train_loss']:.6f}, largest weight difference {difference:.2e}")
    assert len(two["steps"]) == len(history.steps) == 2 * STEPS_PER_EPOCH
    assert difference < TOLERANCE and loss_gap < TOLERANCE
    assert np.allclose(two["steps"], history.steps, rtol=0, atol=TOLERANCE)
    assert two["config"]["world_size"] == 2 and two["config"]["batch_size"] == BATCH


def test_two_processes_match_one_process_with_scale_jittering(two_process_runs, monkeypatch):
    workdir, _ = two_process_runs
    rank0 = torch.load(workdir / "jitter-rank0.pt", weights_only=True)
    single, history = one_process_run(workdir, monkeypatch, *JITTER,
                                      "--checkpoint", str(workdir / "single-jitter.pt"))
    two = json.loads((workdir / "jitter.json").read_text())["history"]
    difference = largest_difference(single, rank0)
    print(f"scale jittering, 1 vs 2 processes: largest weight difference {difference:.2e}")
    assert two["config"]["scale_jitter"] == [32, 40] and two["config"]["world_size"] == 2
    assert difference < TOLERANCE
    assert np.allclose(two["steps"], history.steps, rtol=0, atol=TOLERANCE)


def test_airbench_settings_two_processes_match_one_process(two_process_runs, monkeypatch):
    """Every rank whitens, initialises, averages (lookahead) and flips alike: without batch norm
    the 2-process run is the 1-process one; with it, its learned parameters are the same on
    both ranks and its batch-norm scales, left out of training, stay at 1."""
    workdir, _ = two_process_runs
    rank0 = torch.load(workdir / "airbench-rank0.pt", weights_only=True)
    single, history = one_process_run(workdir, monkeypatch, *AIRBENCH,
                                      "--checkpoint", str(workdir / "single-airbench.pt"))
    two = json.loads((workdir / "airbench.json").read_text())["history"]
    assert two["config"]["lookahead"] and two["config"]["world_size"] == 2
    assert largest_difference(single, rank0) < TOLERANCE
    assert np.allclose(two["steps"], history.steps, rtol=0, atol=TOLERANCE)
    bn0, bn1 = (torch.load(workdir / f"airbench-bn-rank{r}.pt", weights_only=True) for r in (0, 1))
    assert largest_difference(bn0, bn1) == 0
    scales = [k for k in bn0 if k.endswith(".weight") and bn0[k].ndim == 1 and "classifier" not in k]
    assert scales and all(torch.equal(bn0[k], torch.ones_like(bn0[k])) for k in scales)


def test_batch_norm_two_processes_use_per_rank_statistics(two_process_runs, monkeypatch):
    workdir, _ = two_process_runs
    rank0 = torch.load(workdir / "bn-rank0.pt", weights_only=True)
    rank1 = torch.load(workdir / "bn-rank1.pt", weights_only=True)
    running = [k for k in rank0 if "running_mean" in k]
    assert running
    # learned parameters: identical on both ranks (the same averaged gradients)
    assert largest_difference(rank0, rank1) == 0
    # running statistics: each rank's own (rank 0's are broadcast before every forward pass,
    # then each rank updates them with its 32 images), so they differ after the last step
    assert any(not torch.equal(rank0[k], rank1[k]) for k in running)
    single, history = one_process_run(workdir, monkeypatch, "--batch-norm",
                                      "--checkpoint", str(workdir / "single-bn.pt"))
    difference = largest_difference(single, rank0)
    two = json.loads((workdir / "bn.json").read_text())["history"]
    print(f"batch norm, 1 vs 2 processes: final train loss {history.epochs[-1]['train_loss']:.6f}"
          f" vs {two['epochs'][-1]['train_loss']:.6f}, largest weight difference {difference:.2e}")
    # batch statistics of 32 images instead of 64: not a rounding difference any more
    assert difference > 10 * TOLERANCE


def test_a_hanging_rank_stops_the_run_which_then_resumes_and_finishes(two_process_runs):
    """Rank 1 stops taking part at the first step of epoch 2 (a hung GPU or file system, say).
    Rank 0 waits in its next all-reduce for ``--timeout`` seconds, then stops with one clear
    line; torchrun then stops rank 1: the run is killed after an epoch. ``--resume`` restores
    both ranks from the epoch-1 checkpoint and finishes with exactly the weights of the
    uninterrupted 2-process run. (A rank killed outright, SIGKILL, also stops the run: the
    worker's ``killed`` scenario; not run here, to keep CI short.)"""
    workdir, _ = two_process_runs
    checkpoint, timeout = workdir / "stopped.pt", 5
    arguments = [*COMMON, "--no-batch-norm", "--checkpoint", checkpoint]
    stopped, seconds = worker(workdir, "hang", STEPS_PER_EPOCH + 1, *arguments,
                              "--timeout", timeout, timeout=180)
    print(f"hanging rank: the run stopped after {seconds:.1f} s")
    assert stopped.returncode != 0
    message = [line for line in stopped.stderr.splitlines() if "error: rank 0" in line]
    assert message, stopped.stderr[-3000:]
    assert "another process of this run failed or hangs" in message[0]
    assert seconds < timeout + 90  # stopped by the process group's timeout, not by pytest's
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["training_state"]["epoch"] == 1  # the epoch-1 checkpoint, intact

    resumed, seconds = torchrun(workdir, "-m", "vgg_lib.train", *arguments, "--resume")
    print(f"resumed launch: {seconds:.1f} s")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("2 epoch(s)") == 1  # rank 0 alone reports
    final = torch.load(checkpoint, weights_only=True)
    uninterrupted = torch.load(workdir / "plain-rank0.pt", weights_only=True)
    assert final["training_state"]["epoch"] == 2
    assert all(torch.equal(final["model"][k], uninterrupted[k]) for k in uninterrupted)
    history = json.loads(checkpoint.with_suffix(".json").read_text())["history"]
    assert len(history["steps"]) == 2 * STEPS_PER_EPOCH
