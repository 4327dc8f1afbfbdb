"""Chapter 8's settings: the plan of the depth study in its two budget views, and its time
estimates."""

import pytest

from vgg_lib.experiments import studies
from vgg_lib.experiments.depth_study import DEPTH_STUDY, QUICK_RATES, depth_study_plan
from vgg_lib.experiments.studies import estimate_study_seconds


def test_the_plan_shares_the_runs_both_views_have_in_common():
    plan = depth_study_plan(DEPTH_STUDY["quick"], 8000)
    assert len(plan["equal epochs"]) == len(plan["equal compute"]) == 21
    both = {r.name for r in plan["equal epochs"]} & {r.name for r in plan["equal compute"]}
    assert {name.split("_")[0] for name in both} == {"A", "A-LRN"}
    assert len(studies._unique(plan["equal epochs"] + plan["equal compute"])) == 36
    for run in plan["equal compute"]:
        if run.train_images is not None:
            assert run.train_images < 8000


def test_the_estimates_are_positive_and_refuse_unmeasured_widths():
    plan = depth_study_plan(DEPTH_STUDY["quick"], 8000)
    runs = plan["equal epochs"] + plan["equal compute"]
    assert estimate_study_seconds(runs, 8000, 2000, 5000, rates=QUICK_RATES) > 0
    full = depth_study_plan(DEPTH_STUDY["full"], 45_000)
    with pytest.raises(ValueError, match="width 0.125"):
        estimate_study_seconds(full["equal epochs"], 45_000, 5000, 10_000, rates=QUICK_RATES)
    assert estimate_study_seconds(full["equal epochs"], 45_000, 5000, 10_000, "t4") > 0
