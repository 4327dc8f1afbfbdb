"""Pictures of training: augmented copies of an image, learning curves of repeated runs with their
seed spread, and statistics recorded by a ``TrainingProbe`` drawn layer by layer.

matplotlib's pyplot is imported inside the functions that draw: importing it costs most of a
second and picks a backend, which code that never plots should not pay for."""

import math

import numpy as np

COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def plot_augmented_copies(original, copies):
    """The uint8 image ``original`` (3, H, W) and its augmented ``copies`` (N, 3, H, W) side by
    side, as a matplotlib Figure (chapters 5 and 9)."""
    import matplotlib.pyplot as plt  # see the module docstring

    fig, axes = plt.subplots(1, 1 + len(copies), figsize=(13, 1.9))
    titles = ["original"] + [f"copy {i}" for i in range(1, len(copies) + 1)]
    for ax, picture, title in zip(axes, [original, *copies], titles):
        ax.imshow(picture.cpu().permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def moving_average(values, window):
    """Trailing mean over ``window`` values (fewer at the start). Non-finite values, such as the
    last loss of a run that diverged, are dropped first."""
    values = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(values) == 0:
        return values
    window = max(1, int(window))
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def _spread(ax, x, curves, color, label):
    """Mean of ``curves`` (ragged: runs that diverged stop early) with the min..max band."""
    length = max(len(c) for c in curves)
    table = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        table[i, :len(curve)] = curve
    with np.errstate(all="ignore"):
        mean = np.nanmean(table, axis=0)
        low, high = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
    ax.plot(x[:length], mean, color=color, label=label, linewidth=1.6)
    ax.fill_between(x[:length], low, high, color=color, alpha=0.2, linewidth=0)


def plot_learning_curves(runs, smooth=10, colors=None, chance=0.1, title=None):
    """Training loss (per step, smoothed) and validation accuracy (per epoch), one column per learning
    rate, one colour per model label; lines are the mean over seeds, bands the min..max range.
    A run that diverged is marked with a cross where it stopped."""
    import matplotlib.pyplot as plt  # see the module docstring

    lrs = list(dict.fromkeys(r.lr for r in runs))
    labels = list(dict.fromkeys(r.label for r in runs))
    colors = dict(zip(labels, colors or COLORS))
    fig, axes = plt.subplots(2, len(lrs), figsize=(max(6.0, 3.6 * len(lrs)), 5.6), squeeze=False,
                             sharey="row")
    for column, lr in enumerate(lrs):
        loss_ax, acc_ax = axes[0, column], axes[1, column]
        for label in labels:
            group = [r for r in runs if r.lr == lr and r.label == label]
            if not group:
                continue
            diverged = [r for r in group if r.diverged]
            name = label + (f" ({len(diverged)}/{len(group)} diverged)" if diverged else "")
            curves = [moving_average(r.history.steps, smooth) for r in group]
            _spread(loss_ax, np.arange(1, max(map(len, curves)) + 1), curves, colors[label], name)
            for r in diverged:
                loss_ax.plot([r.history.diverged_at_step], [math.log(10) * 1.25], "x",
                             color=colors[label], markersize=9, mew=2)
            accuracies = [[e["val_accuracy"] for e in r.history.epochs
                           if e.get("val_accuracy") is not None] for r in group]
            if any(accuracies):
                _spread(acc_ax, np.arange(1, max(map(len, accuracies)) + 1),
                        [a for a in accuracies if a], colors[label], name)
        loss_ax.axhline(math.log(10), color="gray", linestyle=":", linewidth=1)
        loss_ax.set(title=f"learning rate {lr:g}", xlabel="step",
                    ylim=(0, math.log(10) * 1.35))
        acc_ax.axhline(chance, color="gray", linestyle=":", linewidth=1)
        acc_ax.set(xlabel="epoch", ylim=(0, None))
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"training loss\n(mean of {smooth} steps)")
    axes[1, 0].set_ylabel("validation accuracy")
    for ax in axes[0]:  # one legend per column: divergence counts differ between columns
        ax.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_per_layer(ax, per_layer, field, label=None, log=False, **style):
    """One line: ``field`` of every layer in ``per_layer`` ({name: {field: value}}), in order.
    ``log=True`` leaves out values of zero or less (a log axis cannot show them)."""
    names = [n for n in per_layer if field in per_layer[n]]
    values = [per_layer[n][field] for n in names]
    if log:
        values = [v if v > 0 else math.nan for v in values]
    ax.plot(range(len(names)), values, marker="o", markersize=3, label=label, **style)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    return names


FIELD_TITLES = {
    "grad_norm": "gradient norm of the weights",
    "weight_norm": "weight norm",
    "pre_mean": "mean of the ReLU input",
    "pre_std": "std of the ReLU input",
    "post_mean": "mean of the ReLU output",
    "post_std": "std of the ReLU output",
    "zero_fraction": "share of zero outputs",
    "dead_fraction": "share of dead units",
}
LOG_FIELDS = ("grad_norm", "weight_norm", "pre_std", "post_std")


def plot_probes(probes, fields=("pre_std", "grad_norm", "dead_fraction"), steps=None,
                cmap="viridis"):
    """Statistics recorded by ``TrainingProbe``s, layer by layer: one row per field, one column per
    probe (``probes`` is ``{label: probe}``), one line per recorded step (dark = early).

    ``steps``: which recorded steps to draw (default: all of them). On the log-scaled rows
    (norms and standard deviations) values of exactly zero are left out."""
    import matplotlib.pyplot as plt  # see the module docstring

    labels = list(probes)
    fig, axes = plt.subplots(len(fields), len(labels), figsize=(4.6 * len(labels), 2.9 * len(fields)),
                             squeeze=False, sharey="row")
    colormap = plt.get_cmap(cmap)
    for column, label in enumerate(labels):
        records = [r for r in probes[label].records if steps is None or r["step"] in steps]
        if not records:
            raise ValueError(f"The probe {label!r} recorded none of the steps asked for.")
        for row, field in enumerate(fields):
            ax = axes[row, column]
            for i, record in enumerate(records):
                shade = colormap(i / max(1, len(records) - 1) * 0.9)
                plot_per_layer(ax, record["layers"], field, label=f"step {record['step']}",
                               log=field in LOG_FIELDS, color=shade, linewidth=1.2)
            if field in LOG_FIELDS:
                ax.set_yscale("log")
            if field in ("dead_fraction", "zero_fraction"):
                ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(label)
            if column == 0:
                ax.set_ylabel(FIELD_TITLES.get(field, field))
        axes[0, column].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
