"""Chapter 11's figures (vgg_lib/transfer/plots.py)."""

import torch

import vgg_lib.transfer.study as study


def test_the_figures_draw_every_curve_and_bar(finished):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vgg_lib.transfer.plots import (plot_distances, plot_label_efficiency, plot_probe_depth,
                                        show_textures)
    from vgg_lib.transfer.perceptual import KINDS

    _, results = finished
    layers = [study.PIXELS, "pool1", "pool2", "pool3", "pool4", "pool5"]
    ax = plot_probe_depth(results, layers, (2, None), chance=0.25, paper_layer="pool5")
    assert len(ax.containers) == 4          # two budgets x (pretrained, untrained)
    ax = plot_label_efficiency(results, (2, None), layers, "pool5", images_per_class=8)
    assert len(ax.containers) == 4          # probe on pool5, best probe, fine-tune, scratch
    summary = {"pixels": {k: (0.5, 0.1) for k in KINDS}, "relu1_1": {k: 0.4 for k in KINDS}}
    ax = plot_distances(summary, "test")
    assert len(ax.patches) == 2 * len(KINDS)
    fig = show_textures([torch.zeros(3, 32, 32, dtype=torch.uint8), torch.rand(3, 64, 64)],
                        ["a", "b"])
    assert len(fig.axes) == 2
    plt.close("all")
