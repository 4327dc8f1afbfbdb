"""The inspection figures."""

import numpy as np
import pytest
import torch

from vgg_lib import vgg
from vgg_lib.inspection.feature_maps import block_ends, capture_activations, strongest_channels


def small_model(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return vgg("A", batch_norm=batch_norm, width=0.125, head="compact", num_classes=10).eval()


# --- figures ----------------------------------------------------------------------------------

def test_feature_map_figure_has_one_row_per_layer_labelled_with_its_shape():
    import matplotlib.pyplot as plt
    from vgg_lib.inspection.plots import show_feature_maps

    model = small_model()
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))
    maps = {name: a[0] for name, a in capture_activations(model, image[None].float() / 255,
                                                           list(block_ends(model))).items()}
    fig = show_feature_maps(image, maps, k=3)
    axes = fig.axes
    assert len(axes) == 5 * 4
    assert axes[0].get_ylabel() == "relu1_1\n32×32×8" and axes[4 * 4].get_ylabel() == "relu5_2\n2×2×64"
    top = strongest_channels(maps["relu3_2"], 3).tolist()
    assert [ax.get_title().split(",")[0] for ax in axes[2 * 4 + 1:3 * 4]] == [f"ch {c}" for c in top]
    plt.close(fig)


def test_receptive_field_figure_zooms_on_the_theoretical_square():
    import matplotlib.pyplot as plt
    from vgg_lib.inspection.plots import show_receptive_fields

    fig = show_receptive_fields([torch.rand(100, 100)], [20], [(50.0, 40.0)], ["x"], margin=0.5)
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((40 - 16, 40 + 16))
    assert ax.get_ylim() == pytest.approx((50 + 16, 50 - 16))
    square = ax.patches[0]
    assert (square.get_x(), square.get_y(), square.get_width()) == (30.0, 40.0, 20)
    plt.close(fig)


def test_unit_gallery_puts_the_synthesised_image_first_and_the_top_images_after_it():
    import matplotlib.pyplot as plt
    from vgg_lib.inspection.plots import show_unit_gallery

    synthesised = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(12))
    top = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(13))
    fig = show_unit_gallery(synthesised, top, ["a", "b"], [["x", "y", "z"], ["u", "v", "w"]])
    axes = fig.axes
    assert len(axes) == 2 * 4 and axes[4].get_ylabel() == "b" and axes[7].get_title() == "w"
    assert (axes[0].get_images()[0].get_array() == synthesised[0].permute(1, 2, 0).numpy()).all()
    assert np.allclose(axes[6].get_images()[0].get_array(), top[1, 1].permute(1, 2, 0).numpy() / 255)
    plt.close(fig)
