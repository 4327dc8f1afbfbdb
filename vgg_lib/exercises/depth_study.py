"""Checks for chapter 8, "Does depth matter?" (notebooks/08_depth_study.ipynb). Every expected
value is computed by vgg_lib's own counters and budget helper."""

from .registry import Exercise, register
from ..measure.counting import config_costs
from ..measure.receptive_field import receptive_fields
from ..experiments.depth_study import DEPTH_STUDY, depth_study_spec
from ..experiments.studies import equal_compute_images


def _macs(config, width=1.0, image_size=224):
    return config_costs(config, image_size=image_size, width=width).macs


def _control_pool5_receptive_field(image_size=224):
    (pool5,) = [r for r in receptive_fields("B-5x5", image_size) if r.name == "pool5"]
    return pool5.receptive_field


def _equal_compute_images_of(config="E"):
    settings = DEPTH_STUDY["quick"]
    return equal_compute_images(depth_study_spec(config, settings), depth_study_spec("A", settings),
                                settings.train_images, settings.recipe.batch_size)


def _width_matching(config="A", target="E", width=0.125):
    """The width at which ``config`` (batch norm, compact head, 32x32) costs as many forward
    multiply-adds as ``target`` at ``width``; found by bisection."""
    def macs(c, w):
        return config_costs(c, batch_norm=True, image_size=32, head="compact", num_classes=10,
                            width=w).macs

    goal, low, high = macs(target, width), width, 4 * width
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if macs(config, middle) < goal else (low, middle)
    return (low + high) / 2


register(
    Exercise(
        id="depth_study/d-over-c-macs",
        expected=lambda: _macs("D") / _macs("C"),
        kind="number",
        rel_tol=0.005,
        hint="C and D differ only in the third convolution of blocks 3, 4 and 5: 1x1 in C, 3x3 in "
             "D, with the same channels and map sizes. A kxk convolution costs k*k*C_in*C_out "
             "multiply-adds per output position. Add the difference to C's total (configuration C "
             "at 224x224, with the paper's classifier) and divide.",
    ),
    Exercise(
        id="depth_study/control-pool5-receptive-field",
        expected=_control_pool5_receptive_field,
        kind="integer",
        hint="Use r_out = r_in + (k - 1) * j_in and j_out = j_in * s for the five 5x5 "
             "convolutions (stride 1) and the five 2x2 poolings (stride 2), starting from r = 1, "
             "j = 1 at the image.",
    ),
    Exercise(
        id="depth_study/control-weight-ratio",
        expected=lambda: 25 / 18,
        kind="number",
        rel_tol=0.005,
        hint="A 5x5 convolution from C to C channels has 25*C*C weights; the two 3x3 convolutions "
             "it replaces have 9*C*C each. The C*C cancels.",
    ),
    Exercise(
        id="depth_study/equal-compute-images-e",
        expected=_equal_compute_images_of,
        kind="integer",
        hint="E must get A's multiply-adds x images seen: A's images per epoch times MACs(A) / "
             "MACs(E), rounded to whole batches of 128 (count A's whole batches first: the loop "
             "drops an incomplete last batch). Use forward_macs(spec) or config_costs for the "
             "multiply-adds of the study's networks (width 0.125, batch norm, compact head, 32x32).",
    ),
    Exercise(
        id="depth_study/width-matching-e",
        expected=_width_matching,
        kind="number",
        rel_tol=0.01,
        hint="Multiply-adds grow about with the square of the width (C_in * C_out), except the "
             "first layer's, which grows with the width. Start from sqrt(MACs(E) / MACs(A)) * "
             "0.125 and refine it with config_costs(..., width=w).macs.",
    ),
)
