"""Chapter 11's figures: probe accuracy against depth, accuracy against labels, perceptual
distances, textures. Computation lives in the other modules; these only draw."""

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..experiments.statistics import mean_std
from .perceptual import KINDS
from .study import PIXELS, budget_name
from .summary import best_probe_accuracies, probe_accuracies, training_accuracies

BUDGET_COLOURS = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple")


def _mean_and_std(values):
    mean, std = mean_std(values)
    return 100 * mean, 100 * std


def plot_probe_depth(results, layers, budgets, chance, paper_layer, ax=None):
    """Test accuracy of a linear probe against the layer it reads, one colour per label budget:
    solid for the pretrained network, dashed for its untrained twin (mean ± std over seeds)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(layers))
    for colour, budget in zip(BUDGET_COLOURS, budgets):
        for network, style in (("trained", "-"), ("random", "--")):
            points = [(i, *_mean_and_std(probe_accuracies(results, network, layer, budget)))
                      for i, layer in enumerate(layers) if network == "trained" or layer != PIXELS]
            xs, means, stds = zip(*points)
            ax.errorbar(xs, means, yerr=stds, fmt=style + "o", color=colour, capsize=3,
                        markersize=4, alpha=1 if network == "trained" else 0.6,
                        label=f"{budget_name(budget)} labels/class, "
                              f"{'pretrained' if network == 'trained' else 'untrained'}")
    ax.axhline(100 * chance, color="grey", lw=0.8, ls=":")
    ax.text(-0.4, 100 * chance + 0.5, "chance", color="grey", fontsize=8)
    ax.axvspan(layers.index(paper_layer) - 0.3, layers.index(paper_layer) + 0.3, color="grey",
               alpha=0.12, lw=0)
    ax.set_xticks(x, [f"{layer}\n(mean colour)" if layer == PIXELS else layer for layer in layers])
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title(f"linear probe on pooled features; shaded: {paper_layer}, the paper's layer",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return ax


def plot_label_efficiency(results, budgets, layers, paper_layer, images_per_class, ax=None):
    """Test accuracy against labelled images per class (log scale) for the probes, fine-tuning
    and training from scratch (mean ± std over seeds)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    counts = [images_per_class if b is None else b for b in budgets]
    curves = {
        f"probe on {paper_layer}": lambda b: probe_accuracies(results, "trained", paper_layer, b),
        "probe, best block": lambda b: best_probe_accuracies(results, "trained", b, layers),
        "fine-tune": lambda b: training_accuracies(results, "fine-tune", b),
        "from scratch": lambda b: training_accuracies(results, "scratch", b),
    }
    for (name, accuracies), style in zip(curves.items(), (":o", "-o", "-s", "--^")):
        stats = [_mean_and_std(accuracies(b)) for b in budgets]
        ax.errorbar(counts, [m for m, _ in stats], yerr=[s for _, s in stats], fmt=style,
                    capsize=3, markersize=4, label=name)
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.minorticks_off()
    ax.set_xlabel("labelled target images per class")
    ax.set_ylabel("target test accuracy (%)")
    ax.legend(fontsize=8)
    return ax


def plot_distances(summary, title, ax=None):
    """Grouped bars: for every change (x), each metric's median distance relative to its median
    distance to a picture of another class (1: as far as something else). ``summary``:
    ``{metric: {kind: value or (mean, std)}}`` (``relative_medians`` or ``across_networks``);
    a spread is drawn as an error bar."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    metrics = list(summary)
    width = 0.8 / len(metrics)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(metrics)))
    for i, metric in enumerate(metrics):
        values = [summary[metric][kind] for kind in KINDS]
        means = [v[0] if isinstance(v, tuple) else v for v in values]
        spreads = [v[1] if isinstance(v, tuple) else 0.0 for v in values]
        ax.bar(np.arange(len(KINDS)) + (i - (len(metrics) - 1) / 2) * width, means, width,
               yerr=spreads, capsize=1.5, error_kw=dict(lw=0.6),
               color="black" if metric == "pixels" else colours[i], label=metric)
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(KINDS)), KINDS)
    ax.set_ylabel("median distance\n/ median to another class")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=len(metrics), loc="upper left")
    return ax


def show_textures(images, titles, size=2.0):
    """One row of images ``(3, H, W)`` on a 0..1 scale (or uint8), each with its title, drawn at
    their relative sizes (pixels not smoothed)."""
    widest = max(max(image.shape[-2:]) for image in images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size * 1.15),
                             squeeze=False)
    for ax, image, title in zip(axes[0], images, titles):
        picture = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        height, width = image.shape[-2:]
        ax.imshow(picture.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest",
                  extent=(0, width, height, 0))
        ax.set_xlim(0, widest)
        ax.set_ylim(widest, 0)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return fig
