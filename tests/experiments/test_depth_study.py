"""Chapter 8's settings: the plan of the depth study in its two budget views, and its time
estimates."""

import pytest

from support import assert_shipped_records
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


def test_the_shipped_gpu_records_are_the_full_plan_s_runs_and_read_back_as_results():
    """results/gpu-2026-12-04/records.jsonl (the full profile on an H200) reads back as study
    results whose names are runs of the full plan, every one with a test accuracy."""
    from vgg_lib.experiments.depth_study import DEPTH_STUDY_CONFIGS, FULL_PROFILE_RECORDS
    from vgg_lib.experiments.studies import recorded_results, summarise_study

    results = recorded_results(FULL_PROFILE_RECORDS)
    plan = depth_study_plan(DEPTH_STUDY["full"], 45_000)
    planned = {run.name for view in plan.values() for run in view}
    study = [r for r in results if r.label in DEPTH_STUDY_CONFIGS]
    assert study and {r.name for r in study} <= planned
    assert all(r.reused and r.record.precision == "bf16" and 0.1 < r.test_accuracy < 1 for r in study)
    epoch_names = {run.name for run in plan["equal epochs"]}
    rows = summarise_study([r for r in study if r.name in epoch_names], list(DEPTH_STUDY_CONFIGS))
    assert [len(row.test) for row in rows] == [3] * len(DEPTH_STUDY_CONFIGS)


def test_the_shipped_quick_records_are_the_quick_plan_s_runs_in_fp32():
    """results/depth_study_quick/ holds one record per distinct run of the quick plan, of that
    very run (the data's fingerprint aside, which chapter 8's nbval run checks: all 36 read),
    made in fp32 on two threads."""
    from vgg_lib.experiments.depth_study import depth_study_name

    settings = DEPTH_STUDY["quick"]
    plan = depth_study_plan(settings, settings.train_images)
    assert_shipped_records(depth_study_name("quick"), [run for view in plan.values() for run in view],
                           "fp32", 2)


def test_the_long_budget_is_every_configuration_and_seed_under_the_paper_s_schedule_seed_by_seed():
    from vgg_lib.experiments.depth_study import (DEPTH_STUDY_CONFIGS, PLATEAU_EPOCHS, PLATEAU_LR,
                                                 PLATEAU_PATIENCE, plateau_budget_plan, plateau_pilot_plan)

    settings, full = DEPTH_STUDY["plateau"], DEPTH_STUDY["full"]
    runs = plateau_budget_plan(settings, 45_000)
    assert [(run.label, run.seed) for run in runs] == [
        (config, seed) for seed in settings.seeds for config in DEPTH_STUDY_CONFIGS]
    assert all(run.train_images is None and run.recipe.schedule == "plateau" for run in runs)
    assert all(run.spec.width == DEPTH_STUDY["quick"].spec.width for run in runs)   # the quick width
    # the full profile's data and recipe but for the schedule, its rate and its cap of epochs
    assert (settings.train_images, settings.validation, settings.test_images) == (
        full.train_images, full.validation, full.test_images)
    assert settings.recipe == full.recipe.replace(epochs=PLATEAU_EPOCHS, lr=PLATEAU_LR, schedule="plateau",
                                                  plateau_patience=PLATEAU_PATIENCE)
    pilots = plateau_pilot_plan(settings)
    assert [(run.label, run.seed, run.recipe.schedule, run.recipe.epochs) for run in pilots] == [
        ("A", 0, "plateau", PLATEAU_EPOCHS), ("A", 0, "onecycle", 30), ("A x2 epochs", 0, "onecycle", 60)]
    # a plateau pilot differs from the study's runs in peak learning rate and patience only; the
    # one-cycle pilots in schedule and epochs only (and the one-cycle ignores the patience)
    assert pilots[0].recipe.replace(lr=PLATEAU_LR, plateau_patience=PLATEAU_PATIENCE) == runs[0].recipe
    for pilot in pilots[1:]:
        assert pilot.spec == runs[0].spec
        assert pilot.recipe.replace(schedule="plateau", epochs=PLATEAU_EPOCHS,
                                    plateau_patience=PLATEAU_PATIENCE) == runs[0].recipe
    assert len({run.name for run in pilots + runs}) == len(pilots) + len(runs)   # each its own record


def test_the_shipped_long_budget_records_are_its_plan_s_runs_in_fp32_on_one_thread():
    """results/depth_study_plateau/ holds one record per run of the long budget's plan (all 21),
    each of that very run (the data's fingerprint aside, which chapter 8's nbval run checks), in
    fp32 on one thread, every one ended by the schedule before its cap; and
    results/depth_study_plateau_pilot/ one per pilot."""
    from vgg_lib.experiments.depth_study import depth_study_name, plateau_budget_plan, plateau_pilot_plan

    settings = DEPTH_STUDY["plateau"]
    assert_shipped_records(depth_study_name("plateau") + "_pilot", plateau_pilot_plan(settings), "fp32", 1)
    records = assert_shipped_records(depth_study_name("plateau"), plateau_budget_plan(settings, 45_000),
                                     "fp32", 1)
    assert len(records) == 21
    for name, record in records.items():
        assert record.history["stopped_by_schedule"] is True, name
        assert len(record.history["epochs"]) < settings.recipe.epochs, name
