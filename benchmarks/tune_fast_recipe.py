"""Prototype of a faster quick-profile recipe (issue #25), tuned on the validation split only.

    python benchmarks/tune_fast_recipe.py --settings base whiten --seeds 0 1 2 --threads 1
    python benchmarks/tune_fast_recipe.py --summary          # the table of every recorded run

Each setting is a VGG (3x3 convolutions, max-pools, batch norm, a compact head) and a recipe with
some of the tricks of KellerJordan/cifar10-airbench switched on: a frozen patch-whitening first
convolution, identity ("dirac") initialisation, a frozen batch-norm scale with a scaled
batch-norm bias learning rate, lookahead/EMA of the weights, alternating flips, label smoothing,
test-time augmentation (mirror; mirror + 1-pixel translations). The loop is ``fit``'s step
(SGD with Nesterov momentum, weight decay on weights only, a one-cycle schedule) written out
here so that the features could be tried before they were in ``vgg_lib``; those chosen are now
``TrainConfig`` settings (``vgg_lib/training/airbench.py``), the quick profile uses them, and
chapter 5's ablation measures each with ``fit`` itself (``make results CHAPTER=5-ablation``). This
script stays as the record of how they were chosen.

Every run trains on CIFAR-10's training images minus the 5,000 of the validation split and is
evaluated on that split only: this script never evaluates the test set. The cost of a run is
its training FLOPs (the book's multiply-add counter, ``vgg_lib.measure.counting.costs``, x 6
per image seen; x 2 for a frozen layer, which needs no gradient) and its measured throughput,
stated as a share of a matmul measured in the same process just before it (the machine is
shared, so seconds alone mean little). Each run appends one JSON line to ``--record``.
Needs the full CIFAR-10 (``VGG_CIFAR10_NPZ=../shared/data/cifar10-full.npz`` offline).
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vgg_lib.device import autocast, cpu_flags, resolve_precision
from vgg_lib.measure.counting import costs
from vgg_lib.training.augment import apply_crop_flip
from vgg_lib.training.data import balanced_subset
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.loop import lr_factor
from vgg_lib.training.reproducibility import seed_everything

RECORD = Path(__file__).with_name("fast_recipe_runs.jsonl")

# --- the settings ----------------------------------------------------------------------------
# Defaults: today's quick profile (VGG-11-BN, quarter width, GAP + linear head, SGD Nesterov,
# peak lr 0.3 one-cycle, wd 5e-4, label smoothing 0.1, no crop padding, random flips, flip TTA)
# on all 45,000 training images.
BASE = dict(
    config=[16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"],  # A at width 1/4
    epochs=3, batch_size=128, lr=0.3, momentum=0.9, weight_decay=5e-4, label_smoothing=0.1,
    schedule="onecycle", train_images=None, crop_padding=0,
    whiten=0,            # 0: none; k: a frozen k x k patch-whitening convolution first (+- pairs)
    whiten_conv1=False,  # the first 3x3 conv's weight = P @ (3x3 patch whitening), P trained:
                         # the same network and cost, its first layer preconditioned (hlb-CIFAR10's
                         # frozen whitening + 1x1 projection, multiplied out)
    whiten_eps=5e-4,     # added to the eigenvalues before dividing by their square roots
    whiten_bias_epochs=0,  # epochs during which the whitening layer's bias trains (then frozen)
    dirac=False,         # identity init of the first in_channels filters of every conv
    bn_weight=True,      # False: batch-norm scale frozen at 1 (airbench)
    bn_bias_lr=1.0,      # learning-rate multiplier of the batch-norm biases (airbench: 64)
    bn_momentum=0.1,     # PyTorch's running-statistics momentum (airbench: 0.4)
    pool_first=False,    # conv -> max-pool -> BN -> ReLU where a pool follows (same function)
    head_scale=1.0,      # logits multiplied by this (airbench: 1/9 with a max-pool head)
    head_pool="avg",     # "avg" (the compact head) or "max" global pooling
    head_hidden=0,       # > 0: the paper's head, 3 FC layers (this many units) over the last map
                         # (the "fc-2x2" head when the config ends without its last max-pool)
    head_dropout=0.0,    # dropout of that head's hidden layers (the paper: 0.5)
    ema=None,            # (start fraction of the run, decay per step, every n steps) or None
    alternating_flip=False,  # each image flipped in every other epoch (random phase)
)

# Atoms of a setting; a setting is their names joined by "+", applied left to right:
# "2ep+wconv1+altflip" is the base at 2 epochs with a whitened first layer and alternating flips.
SETTINGS = {
    "base": dict(),
    "2ep": dict(epochs=2),
    "3ep": dict(epochs=3),
    "wconv1": dict(whiten_conv1=True),
    "eps1e-2": dict(whiten_eps=1e-2),
    "whiten2": dict(whiten=2),
    "whiten3": dict(whiten=3),
    "altflip": dict(alternating_flip=True),
    "smooth0.2": dict(label_smoothing=0.2),
    "smooth0": dict(label_smoothing=0.0),
    "ema": dict(ema=(0.3, 0.95, 5)),
    "dirac": dict(dirac=True),
    "bnfrozen": dict(bn_weight=False),
    "bnlr8": dict(bn_bias_lr=8.0),
    "bnlr64": dict(bn_bias_lr=64.0),
    "bnmom0.4": dict(bn_momentum=0.4),
    "poolfirst": dict(pool_first=True),
    "pad1": dict(crop_padding=1),
    "pad2": dict(crop_padding=2),
    "lr0.2": dict(lr=0.2),
    "lr0.5": dict(lr=0.5),
    "bs256": dict(batch_size=256, lr=0.5),
    "bs64": dict(batch_size=64, lr=0.2),
    "all": dict(whiten_conv1=True, alternating_flip=True, label_smoothing=0.2, ema=(0.3, 0.95, 5),
                dirac=True),
    # architecture: the paper's 3-FC head over a 2x2 map (no last pool), a wider last block
    "fc2x2": dict(config=[16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128], head_hidden=1024),
    "last256": dict(config=[16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M"]),
    "w3/8": dict(config=[24, "M", 48, "M", 96, 96, "M", 192, 192, "M", 192, 192, "M"]),
    "w5/16": dict(config=[20, "M", 40, "M", 80, 80, "M", 160, 160, "M", 160, 160, "M"]),
    "wide-early": dict(config=[32, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]),
    "1ep": dict(epochs=1),
    "4ep": dict(epochs=4),
    "5ep": dict(epochs=5),
    "35k": dict(train_images=35_000),
    "tta0": dict(),
    "nowconv1": dict(whiten_conv1=False),
    "noaltflip": dict(alternating_flip=False),
    "smooth0.1": dict(label_smoothing=0.1),
    "noema": dict(ema=None),
    "nodirac": dict(dirac=False),
    "40k": dict(train_images=40_000),
    "bnab": dict(bn_weight=False, bn_bias_lr=8.0, bn_momentum=0.4),
}


# --- the record so far (issue #25, phase A; 2026-12-04) -----------------------------------------
# Machine: 2-core Intel Xeon (Sapphire Rapids class, KVM), flags include avx2 avx512f avx512_bf16
# amx_bf16 amx_tile amx_int8; torch 2.14.1. SHARED by several agents: load average 10-21 during
# every run below, so each tuning run trained on one thread (--threads 1, nice 10) at 10-25% of a
# core; accuracy does not depend on that, the seconds and img/s columns of --summary do (ignore
# them; the "%mm" column compares a loaded run with a best-of-5 matmul and is no speed figure).
# Tuning runs: fp32 on the native ISA (AVX512; the same arithmetic as AVX2 up to rounding order),
# validation split only (5,000 images), training on the other 45,000; the per-run lines are in
# fast_recipe_runs.jsonl beside this file (setting, seed, val accuracy without TTA / flip TTA /
# flip + translate TTA, training GFLOP, date, load).
#
# Screening, seed 0 only unless stated (val % plain / tta1 / tta2; training TFLOP):
#   3ep (today's recipe on 45k)                 76.2 / 77.8 / 78.4   8.0
#   2ep                                         73.2 / 74.2 / 74.9   5.3
#   2ep+all (wconv1 altflip smooth0.2 ema dirac) 75.6 / 76.8 / 77.3   5.3
#     seeds 0 1 2: 75.6 ± 0.0 / 76.7 ± 0.2 / 77.3 ± 0.2 (tta2 77.3 / 77.5 / 77.0)
#   2ep+all+bnab (BN scale frozen, bias lr x8, momentum 0.4)  76.1 / 77.4 / 77.3   5.3
#   2ep+all+bs64 (batch 64, lr 0.2)             75.9 / 76.8 / 77.2   5.3
#   2ep+all+lr0.5                               75.8 / 76.9 / 77.0   5.3
#   3ep+all                                     78.7 / 79.4 / 79.8   8.0
#     seeds 0 1 2: 78.4 ± 0.4 / 79.5 ± 0.8 / 79.8 ± 0.4 (tta2 79.8 / 80.2 / 79.5)
#   2ep+all+fc2x2 (paper's 3-FC head on 2x2)    75.1 / 76.1 / 76.0   6.2
#   2ep+all+last256 (last block 256 wide)       75.3 / 76.1 / 76.8   6.6
#   1ep+all+bnab+w3/8 (A at width 3/8, 1 epoch) 59.2 / 60.2 / 60.2   5.9   (351 steps: too few)
#   2ep+all+bnab+wide-early+40k (32, 32 first)  75.2 / 76.7 / 76.9   5.5
# Read: at 5.3 TFLOP the airbench/hlb tricks together add about 2.4 points (tta2 74.9 -> 77.3,
# one seed); the other knobs move it by less than a seed's spread; a heavier head or last block
# costs FLOPs and gains nothing, and so does widening the first two layers at equal FLOPs; one
# epoch of a wider net is far worse (steps, not FLOPs, limit).
# 80 % (with TTA) needs about 8 TFLOP with VGG-11 at width 1/4: 3ep+all reaches 79.8 ± 0.4 there
# (3 seeds), 2.5 points above 2ep+all; the same 8 TFLOP without the tricks gave 78.4 (seed 0).
#
# Throughput probes (--speed 20, 1 thread, batch 128, fp32; "per CPU-second" rates, which a busy
# machine disturbs least; load 12-14):  share of a 2048^2 matmul at the same precision
#   emulated AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2,
#   checked: oneDNN runs brg_conv_fwd:avx2, ATen reports AVX2, MKL its AVX2 code path;
#   matmul 92-94 GFLOP/s per core):
#     base+all 57.5 %   base+all+bnab+poolfirst 64.4 %   base+all+w3/8 70.1 %   base+all+last256 55.0 %
#   bf16 with AMX (native ISA; matmul 847-884 GFLOP/s per core):
#     base+all 12.3 %   base+all+bnab+poolfirst 14.5 %   base+all+w3/8 15.4 %
# Profile of base at 1 thread, emulated AVX2: convolutions 62 % of the step (backward 42,
# forward 20), batch norm 15 %, ReLU backward 5 %, max-pool 6 %, the rest (optimizer, fills,
# copies) about 10 %: the memory-bound third is what fusion (torch.compile) and pool-before-BN
# (conv -> pool -> BN -> ReLU, the same function when the BN scale stays positive) attack.
#
# Phase B (2026-12-05, the same machine, quiet at first, then shared with test runs: load 1.5-4.5;
# seeds 0-2 at 2 threads for the first two rows, 1 thread with two runs side by side after):
#   3ep+all+bnab+poolfirst      77.5 / 78.7 / 79.0 +- 0.5   45 s of training at 2 threads, quiet
#   3ep+all+poolfirst           77.7 / 78.9 / 79.1 +- 0.4   pool-first costs ~0.7 (t ~ 2.4): out
#   leave-one-out from 3ep+all (tta2; 3ep+all itself 79.8 +- 0.4):
#     nowconv1 79.3 +- 0.4, noaltflip 79.6 +- 0.3, nodirac 79.1 +- 0.5, smooth0.1 79.4 (seed 0),
#     noema 79.9 +- 0.4: lookahead does not pay here (nor bnab: 79.9, seed 0), the others
#     each a few tenths, none settled on 3 seeds, together about 1.4 (3ep: 78.4, seed 0).
# Chosen for the quick profile (vgg_lib/training/profiles.py QUICK): 3ep+all without lookahead,
# i.e. whitened first layer, dirac, alternating flips, smoothing 0.2, and the flip + 1-pixel
# shift TTA (tta2); implemented in vgg_lib (TrainConfig settings, vgg_lib/training/airbench.py)
# and measured with fit itself in chapter 5's ablation (results/training_cifar10_quick_ablation/).
# Phase C (2026-12-05): the budget those tricks train for, benchmarks/tune_quick_budget.py and its
# record quick_budget_runs.jsonl: the profile now trains 4 epochs over 37,500 images (150,000 seen).
# torch.compile (inductor, CPU) was tried on the same model and loop: 271 s of compilation on
# one busy thread for no gain per CPU-second (1,176 against 1,157-1,212 images/CPU-s): not used.
#
# Phase D (2026-12-06, the same machine, 2 threads, fp32 unless said; the loop share is
# benchmarks/training_speed.py's "share of the matmul rate", whose matmul itself moves 290-360
# GFLOP/s with the host): where the 40 % the loop does not reach goes, and what would move it.
#   Profile (ops2: torch.profiler by input shape, 29 steps of fit): the 32x32x16 stage (the first
#   convolution, its batch norm, ReLU and max-pool, forward and backward, and the pool's zeroed
#   gradient) takes about 21.7 ms of a 54 ms step, 40 %, for 4.5 % of the multiply-adds. The same
#   operators alone on one reused 8-MiB tensor run 2-9x faster (first conv forward 0.67 against
#   4.15 ms, batch norm forward 1.37 against 3.74, max-pool 0.69 against 1.30, the zero fill
#   0.21 against 1.96): in the loop each 8-MiB activation is written in the forward pass and read
#   back in the backward pass after the rest of the network has pushed it out of the caches, so
#   these layers wait on memory. The convolutions alone run at 77 % of the matmul rate.
#   Tried, no gain beyond the host's +-5 %: glibc's malloc kept from returning memory
#   (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_; fit already takes under 250 page faults a
#   step), PyTorch's huge-page allocation (THP_MEM_ALLOC_ENABLE=1); smaller batches are slower
#   (share 32 % at 32, 36 % at 64, 42 % at 128). One thread: 48 %. Emulated AVX2 (the
#   ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 of phase A):
#   50-54 %.
#   Rewrites of the network (training_speed.py --variant, vgg_lib/training/speed_variants.py),
#   images per second of fit, two rounds: as-is 2,455 / 2,614; pool-before-relu (the same
#   function and gradients, bit for bit: same losses over 100 steps) 2,711 / 2,757;
#   no-first-batch-norm 2,772 / 3,030; both 3,004 / 3,032, i.e. a share of about 48 % (emulated
#   AVX2: 54-60 %, against 50-54 % as-is). A whole 4x40000 run (fit, 2 threads, host slow):
#   as-is 65.0 / 63.2 s, no-first-batch-norm 60.5 / 57.0 s. On validation (tune_quick_budget.py
#   --variant, record quick_budget_runs.jsonl, one thread, two runs side by side) the network
#   without its first batch norm is as accurate: 4x37500 80.03 +- 0.25 against the profile's
#   80.13 +- 0.47, 4x40000 80.47 +- 0.24 against 80.56 +- 0.31 (neither settled).
#   Not adopted: without its first batch norm the network is no longer torchvision's VGG-11-BN
#   (chapter 5 promises weights that load anywhere a VGG's do, and chapter 7 reads them), and
#   moving the pools changes the layer order that chapters 1, 4 and 7 print and hook; together
#   they still leave the loop under 60 % here. Reaching 60 % would take fusing the 32x32 stage's
#   memory-bound operators (what torch.compile does, at 271 s of compilation, phase C).


def setting(name):
    """The settings dict of "atom+atom+..."."""
    unknown = [atom for atom in name.split("+") if atom not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting atom(s) {unknown}; known: {', '.join(SETTINGS)}")
    s = dict(BASE)
    for atom in name.split("+"):
        s.update(SETTINGS[atom])
    return s


# --- the network -----------------------------------------------------------------------------

def patch_whitening(images, size, eps):
    """Weights of a ``size`` x ``size`` convolution whose 2 d filters (d = 3 size^2) are the
    eigenvectors of the training patches' covariance, divided by the square roots of their
    eigenvalues, and their negatives (so that a ReLU after it loses nothing)."""
    patches = images.unfold(2, size, 1).unfold(3, size, 1)             # N, C, H', W', k, k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * size * size).double()
    patches = patches - patches.mean(0)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = (eigenvectors / (eigenvalues + eps).sqrt()).T.flip(0)   # largest variance first
    filters = filters.reshape(-1, images.shape[1], size, size).float()
    return torch.cat([filters, -filters])


def whitening_matrix(images, size=3, eps=5e-4):
    """(d, d) matrix W, d = C size^2, whose rows are the patch covariance's eigenvectors divided by
    the square roots of their eigenvalues (+ eps): W @ patch has identity covariance."""
    filters = patch_whitening(images, size, eps)
    return filters[:len(filters) // 2].reshape(len(filters) // 2, -1)


class WhitenedConv(nn.Module):
    """A 3x3 convolution whose weight is ``P @ whitening``: SGD on P sees whitened patches."""

    def __init__(self, in_channels, out_channels, whitening):
        super().__init__()
        d = whitening.shape[0]
        self.register_buffer("whitening", whitening)
        self.P = nn.Parameter(torch.randn(out_channels, d) * math.sqrt(2 / d))
        self.in_channels, self.out_channels = in_channels, out_channels

    @property
    def weight(self):
        return (self.P @ self.whitening).view(self.out_channels, self.in_channels, 3, 3)

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


class Net(nn.Module):
    def __init__(self, s, whitening_images=None):
        super().__init__()
        layers, channels = [], 3
        if s["whiten"]:
            k = s["whiten"]
            conv = nn.Conv2d(3, 2 * 3 * k * k, k, padding=k // 2)  # k=2: 33x33 maps
            conv.weight.data.copy_(patch_whitening(whitening_images, k, s["whiten_eps"]))
            conv.weight.requires_grad_(False)
            conv.bias.data.zero_()
            conv.bias.requires_grad_(s["whiten_bias_epochs"] > 0)
            layers += [conv, nn.ReLU(inplace=True)]
            channels = conv.out_channels
        items = list(s["config"])
        i = 0
        while i < len(items):
            item = items[i]
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                i += 1
                continue
            if s["whiten_conv1"] and channels == 3:
                conv = WhitenedConv(3, item, whitening_matrix(whitening_images, 3, s["whiten_eps"]))
            else:
                conv = nn.Conv2d(channels, item, 3, padding=1, bias=False)
            bn = nn.BatchNorm2d(item, momentum=s["bn_momentum"])
            pool_next = s["pool_first"] and i + 1 < len(items) and items[i + 1] == "M"
            layers += [conv] + ([nn.MaxPool2d(2)] if pool_next else []) + [bn, nn.ReLU(inplace=True)]
            i += 2 if pool_next else 1
            channels = item
        self.features = nn.Sequential(*layers)
        if s["head_hidden"]:
            size = 32 // 2 ** sum(item == "M" for item in items)
            self.pool = nn.AdaptiveAvgPool2d(size)  # identity here (the counter knows it)
            h, p = s["head_hidden"], s["head_dropout"]
            self.classifier = nn.Sequential(
                nn.Linear(channels * size * size, h), nn.ReLU(inplace=True), nn.Dropout(p),
                nn.Linear(h, h), nn.ReLU(inplace=True), nn.Dropout(p), nn.Linear(h, 10))
        else:
            self.pool = nn.AdaptiveAvgPool2d(1) if s["head_pool"] == "avg" else nn.AdaptiveMaxPool2d(1)
            self.classifier = nn.Linear(channels, 10)
        self.scale = s["head_scale"]
        self._init(s)

    def _init(self, s):
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.weight.requires_grad:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if s["dirac"]:
                    w = m.weight.data
                    nn.init.dirac_(w[:min(w.shape[0], w.shape[1])])
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.weight.requires_grad_(s["bn_weight"])
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x) * self.scale


def training_flop_per_image(model, s):
    """6 x multiply-adds of the trainable layers + 2 x those of a frozen first layer."""
    if s["whiten_conv1"]:  # the same network with a plain first conv (the counter's kind)
        model = Net({**s, "whiten_conv1": False})
    meta = costs(model, 32)
    frozen = model.features[0]
    if isinstance(frozen, nn.Conv2d) and not frozen.weight.requires_grad:
        size = 32 - frozen.kernel_size[0] + 1 + 2 * frozen.padding[0]
        frozen_macs = size * size * frozen.in_channels * frozen.out_channels * frozen.kernel_size[0] ** 2
        return 6 * meta.macs - 4 * frozen_macs, meta.macs
    return 6 * meta.macs, meta.macs


# --- evaluation with test-time augmentation --------------------------------------------------

@torch.no_grad()
def evaluate_tta(model, data, images, labels, precision, batch_size=500):
    """Validation accuracy without TTA, with the mirror (level 1), and with the mirror and two
    1-pixel diagonal translations (level 2, airbench's weighting)."""
    model.eval()
    correct = [0, 0, 0]
    for start in range(0, len(images), batch_size):
        x = data.normalize(images[start:start + batch_size], channels_last=True)
        y = labels[start:start + batch_size]
        with autocast(x.device, precision):
            plain = model(x).float()
            mirror = 0.5 * plain + 0.5 * model(x.flip(3)).float()
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            shifted = [padded[:, :, :32, :32], padded[:, :, 2:, 2:]]
            shifted = sum(0.5 * model(v).float() + 0.5 * model(v.flip(3)).float() for v in shifted) / 2
            both = 0.5 * mirror + 0.5 * shifted
        for i, logits in enumerate((plain, mirror, both)):
            correct[i] += (logits.argmax(1) == y).sum().item()
    model.train()
    return [c / len(images) for c in correct]


# --- the loop --------------------------------------------------------------------------------

def matmul_rate(precision, n=1024, repeats=5, cpu=False):
    """GFLOP per wall-clock second (``cpu=True``: per CPU-second of this process) of an n x n
    matmul at ``precision``, the median of ``repeats``."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    clock = time.process_time if cpu else time.perf_counter
    times = []
    for _ in range(repeats):
        t = clock()
        a @ b
        times.append(clock() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def train(s, data, seed, precision, max_steps=None, warmup=0):
    """One run of setting ``s``; ``max_steps``: stop there and only time steps after ``warmup``
    (a throughput probe, no evaluation)."""
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = data.x_train, data.y_train
    if s["train_images"]:  # a class-balanced subset, as load_cifar10(train_subset=...) takes
        keep = torch.from_numpy(balanced_subset(y_train.numpy(), s["train_images"], seed=0))
        x_train, y_train = x_train[keep], y_train[keep]
    n = len(x_train)
    whitening_images = (data.normalize(x_train[:5000]) if s["whiten"] or s["whiten_conv1"]
                        else None)
    started = time.perf_counter()
    model = Net(s, whitening_images).to(memory_format=torch.channels_last)
    setup_seconds = time.perf_counter() - started
    bn_biases = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    ids = {id(p) for p in bn_biases}
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1 and id(p) not in ids]
    groups = [dict(params=decay, weight_decay=s["weight_decay"], scale=1.0),
              dict(params=rest, weight_decay=0.0, scale=1.0),
              dict(params=bn_biases, weight_decay=0.0, scale=s["bn_bias_lr"])]
    optimizer = torch.optim.SGD(groups, lr=s["lr"], momentum=s["momentum"], nesterov=True)
    steps_per_epoch = n // s["batch_size"]
    total = s["epochs"] * steps_per_epoch
    loss_fn = nn.CrossEntropyLoss(label_smoothing=s["label_smoothing"])
    ema = None
    flip_phase = torch.randint(0, 2, (n,), generator=generator).bool()
    step = 0
    model.train()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    timed_from = 0
    for epoch in range(s["epochs"]):
        whiten = model.features[0]
        if s["whiten"] and s["whiten_bias_epochs"]:
            whiten.bias.requires_grad_(epoch < s["whiten_bias_epochs"])
        order = torch.randperm(n, generator=generator)
        for i in range(steps_per_epoch):
            index = order[i * s["batch_size"]:(i + 1) * s["batch_size"]]
            images, labels = x_train.index_select(0, index), y_train.index_select(0, index)
            p = s["crop_padding"]
            offsets = torch.randint(0, 2 * p + 1, (2, len(index)), generator=generator)
            if s["alternating_flip"]:
                flips = flip_phase[index] ^ bool(epoch % 2)
            else:
                flips = torch.randint(0, 2, (len(index),), generator=generator).bool()
            images = apply_crop_flip(images, offsets[0], offsets[1], flips, p, channels_last=True)
            x = data.normalize(images, channels_last=True)
            factor = lr_factor(step, total, s["schedule"])
            for group in optimizer.param_groups:
                group["lr"] = s["lr"] * factor * group["scale"]
            with autocast(x.device, precision):
                loss = loss_fn(model(x).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if max_steps is not None:
                if step == warmup:
                    loss.item()
                    cpu0, wall0, timed_from = time.process_time(), time.perf_counter(), step
                if step == max_steps:
                    loss.item()
                    seconds = time.perf_counter() - wall0
                    flop, macs = training_flop_per_image(model, s)
                    images = (step - timed_from) * s["batch_size"]
                    return dict(seconds=seconds, cpu_seconds=time.process_time() - cpu0,
                                images_per_second=images / seconds, flop_per_image=flop,
                                gflops=flop * images / seconds / 1e9)
            if s["ema"] is not None:
                start, decay, every = s["ema"]
                if step >= start * total and step % every == 0:
                    state = [v for v in model.state_dict().values() if v.is_floating_point()]
                    if ema is None:
                        ema = [v.clone() for v in state]
                    else:
                        rho = decay ** every * (step / total) ** 3
                        for e, v in zip(ema, state):
                            e.lerp_(v, 1 - rho)
                            v.copy_(e)
        if not math.isfinite(loss.item()):
            return dict(diverged=True)
    if ema is not None:
        state = [v for v in model.state_dict().values() if v.is_floating_point()]
        for e, v in zip(ema, state):
            v.copy_(e)
    seconds, cpu_seconds = time.perf_counter() - wall0, time.process_time() - cpu0
    val = evaluate_tta(model, data, data.x_val, data.y_val, precision)
    flop, macs = training_flop_per_image(model, s)
    images_seen = total * s["batch_size"]
    return dict(val=val[0], val_tta1=val[1], val_tta2=val[2], seconds=seconds,
                cpu_seconds=cpu_seconds, setup_seconds=setup_seconds,
                images_per_second=images_seen / seconds, train_images=n,
                images_seen=images_seen, flop_per_image=flop, forward_macs=macs,
                train_gflop=flop * images_seen / 1e9, final_loss=loss.item(),
                gflops=flop * images_seen / seconds / 1e9)


def load_runs(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(path, precision_filter=None):
    runs = load_runs(path)
    by = {}
    for r in runs:
        if precision_filter and r["precision"] != precision_filter:
            continue
        by.setdefault((r["setting"], r["precision"]), []).append(r)
    print(f"{'setting':<28}{'prec':>5}{'seeds':>7}  {'val %':>11} {'tta1 %':>11} {'tta2 %':>11}"
          f"{'GFLOP':>8}{'img/s':>7}{'%mm':>6}{'load':>5}")

    def pm(values):
        m = 100 * statistics.mean(values)
        sd = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{m:5.1f} ± {sd:3.1f}"

    for (name, prec), rs in by.items():
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(f"{name:<28}{prec:>5}{seeds:>7}  {pm([r['val'] for r in rs]):>11} "
              f"{pm([r['val_tta1'] for r in rs]):>11} {pm([r['val_tta2'] for r in rs]):>11}"
              f"{statistics.mean(r['train_gflop'] for r in rs):8.0f}"
              f"{statistics.mean(r['images_per_second'] for r in rs):7.0f}"
              f"{100 * statistics.mean(r['gflops'] / r['matmul_gflops'] for r in rs):6.0f}"
              f"{statistics.mean(r['load'] for r in rs):5.1f}")


def speed(names, data, precision, steps, warmup=5):
    print(f"{torch.get_num_threads()} threads, {precision}, oneDNN ISA cap "
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}, ATen {torch.backends.cpu.get_cpu_capability()}, "
          f"load {os.getloadavg()[0]:.1f}")
    for name in names:
        s = setting(name)
        before = matmul_rate(precision, 2048), matmul_rate(precision, 2048, cpu=True)
        r = train(s, data, 0, precision, max_steps=warmup + steps, warmup=warmup)
        after = matmul_rate(precision, 2048), matmul_rate(precision, 2048, cpu=True)
        wall, cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        per_cpu = r["flop_per_image"] * steps * s["batch_size"] / r["cpu_seconds"] / 1e9
        print(f"{name:>24}: {r['flop_per_image'] / 1e6:6.1f} MFLOP/img, {r['images_per_second']:6.0f} img/s, "
              f"{r['gflops']:6.1f} GFLOP/s = {r['gflops'] / wall:5.1%} of the 2048^2 matmul's "
              f"{wall:.0f}; per CPU-second {per_cpu:.1f} = {per_cpu / cpu:5.1%} of its {cpu:.0f}; "
              f"CPU/wall {r['cpu_seconds'] / r['seconds']:.2f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=[], help="atoms joined by +: " + ", ".join(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--speed", type=int, default=0, metavar="STEPS",
                        help="only measure the throughput of STEPS steps (after 5 warm-up steps) "
                             "beside a matmul, for each setting; print, record nothing")
    args = parser.parse_args(argv)
    if args.summary:
        summary(args.record)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, "cpu")
    data = load_cifar10(device="cpu", validation=5000)
    if args.speed:
        speed(args.settings, data, precision, args.speed)
        return
    done = {(r["setting"], r["seed"], r["precision"]) for r in load_runs(args.record)}
    for name in args.settings:
        s = setting(name)
        for seed in args.seeds:
            if (name, seed, precision) in done:
                continue
            matmul = matmul_rate(precision)
            result = train(s, data, seed, precision)
            result.update(setting=name, seed=seed, precision=precision, matmul_gflops=matmul,
                          threads=torch.get_num_threads(), load=os.getloadavg()[0],
                          isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
                          machine=platform.processor() or platform.machine(),
                          date=datetime.date.today().isoformat(), torch=torch.__version__,
                          changes={k: v for k, v in s.items() if v != BASE[k]})
            with open(args.record, "a") as handle:
                handle.write(json.dumps(result) + "\n")
            print(f"{name:>20} seed {seed}: val {result['val']:.2%} / tta1 {result['val_tta1']:.2%} / "
                  f"tta2 {result['val_tta2']:.2%}; {result['train_gflop']:.0f} GFLOP in "
                  f"{result['seconds']:.0f} s ({result['images_per_second']:.0f} img/s, "
                  f"{result['gflops']:.1f} GFLOP/s = {result['gflops'] / matmul:.0%} of the "
                  f"{matmul:.0f} GFLOP/s matmul; load {result['load']:.1f})", flush=True)
    summary(args.record)


if __name__ == "__main__":
    main()
