"""The settings of chapter 4's slim-head study (vgg_lib/experiments/layer_by_layer.py)."""

import pytest

from support import assert_shipped_records
from vgg_lib.experiments.layer_by_layer import (SLIM_HEAD_LR_CHECK, SLIM_HEAD_LRS, SLIM_HEAD_STUDY,
                                                SLIM_HEAD_STUDY_NAME, SLIM_HEADS, slim_head_plan,
                                                slim_head_recipe, slim_head_spec)
from vgg_lib.experiments.statistics import mean


def test_every_head_has_a_network_and_a_recipe():
    for head in SLIM_HEADS:
        spec = slim_head_spec(head)
        assert spec.head == head and spec.config == "D" and spec.batch_norm
        recipe = slim_head_recipe(head, seed=3)
        assert recipe.seed == 3 and recipe.lr == SLIM_HEAD_LRS[head]
    assert slim_head_spec("fc-2x2").build().features[-1].__class__.__name__ != "MaxPool2d"


def test_each_head_learning_rate_is_the_best_of_the_validation_check():
    for head in SLIM_HEADS:
        means = {lr: mean(values) for lr, h, values in SLIM_HEAD_LR_CHECK if h == head}
        assert len(means) >= 3
        best = max(means, key=means.get)
        assert SLIM_HEAD_LRS[head] == best
        assert min(means) < best < max(means)  # not at the edge of the range that was tried


def test_unknown_heads_are_refused():
    with pytest.raises(ValueError, match="compares fc-2x2 and compact"):
        slim_head_spec("imagenet")
    with pytest.raises(ValueError, match="compares"):
        slim_head_recipe("wide", seed=0)


def test_the_plan_is_every_head_with_every_seed():
    plan = slim_head_plan()
    assert [(run.label, run.seed) for run in plan] == [(head, seed) for head in SLIM_HEADS
                                                       for seed in SLIM_HEAD_STUDY.seeds]
    for run in plan:
        assert run.spec == slim_head_spec(run.label) and run.recipe == slim_head_recipe(run.label, run.seed)
        assert run.train_images is None   # all of the study's training images
    assert len({run.name for run in plan}) == len(plan)


def test_the_shipped_records_are_the_plan_s_runs_in_fp32_on_one_thread():
    """results/slim_head/ holds one record per run of the plan, of that very run, made in fp32 on
    one thread, as ``make results CHAPTER=4`` makes them (chapter 4's nbval run reads them all)."""
    assert_shipped_records(SLIM_HEAD_STUDY_NAME, slim_head_plan(), "fp32", 1)
