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


def test_the_long_budget_is_every_configuration_and_seed_seed_by_seed_then_its_convergence_check():
    from vgg_lib.experiments.depth_study import (DEPTH_STUDY_CONFIGS, LONG_CONVERGENCE, LONG_EPOCHS,
                                                 LONG_LR, long_budget_plan)

    settings = DEPTH_STUDY["long"]
    runs = long_budget_plan(settings, 45_000)
    study, check = runs[:-1], runs[-1]
    assert [(run.label, run.seed) for run in study] == [
        (config, seed) for seed in settings.seeds for config in DEPTH_STUDY_CONFIGS]
    assert all(run.recipe.epochs == LONG_EPOCHS and run.train_images is None for run in study)
    assert all(run.spec.width == DEPTH_STUDY["quick"].spec.width for run in runs)   # the quick width
    assert (check.spec.config, check.seed) == (LONG_CONVERGENCE["config"], LONG_CONVERGENCE["seed"])
    assert check.recipe == study[0].recipe.replace(epochs=LONG_CONVERGENCE["factor"] * LONG_EPOCHS)
    assert check.name not in {run.name for run in study}   # its own record
    # the full profile's data and recipe but for the epochs: the two budgets differ in width
    full = DEPTH_STUDY["full"]
    assert (settings.train_images, settings.validation, settings.test_images) == (
        full.train_images, full.validation, full.test_images)
    assert settings.recipe == full.recipe.replace(epochs=LONG_EPOCHS, lr=LONG_LR)


def test_the_shipped_long_budget_records_are_its_plan_s_runs_in_fp32_on_one_thread():
    """results/depth_study_long/ holds one record per run of the long budget's plan (its 21
    equal-epoch runs and the convergence check), and results/depth_study_long_pilot/ one per
    pilot, each of that very run (the data's fingerprint aside, which chapter 8's nbval run
    checks: all 29 read), made in fp32 on one thread."""
    from vgg_lib.experiments.depth_study import depth_study_name, long_budget_plan, long_pilot_plan

    settings = DEPTH_STUDY["long"]
    assert_shipped_records(depth_study_name("long"), long_budget_plan(settings, 45_000), "fp32", 1)
    pilots = long_pilot_plan(settings)
    assert_shipped_records(depth_study_name("long") + "_pilot", pilots, "fp32", 1)
    # the pilots differ from the study's runs in epochs and peak learning rate only
    assert all(run.recipe.replace(epochs=settings.recipe.epochs, lr=settings.recipe.lr) ==
               settings.recipe for run in pilots)
    assert all(run.spec == settings.spec.replace(config=run.spec.config) for run in pilots)


def test_the_plateau_budget_is_the_long_budget_under_the_paper_s_schedule_seed_by_seed():
    from vgg_lib.experiments.depth_study import (DEPTH_STUDY_CONFIGS, PLATEAU_EPOCHS, PLATEAU_LR,
                                                 PLATEAU_PATIENCE, long_budget_plan, plateau_budget_plan,
                                                 plateau_pilot_plan)

    settings, long = DEPTH_STUDY["plateau"], DEPTH_STUDY["long"]
    runs = plateau_budget_plan(settings, 45_000)
    assert [(run.label, run.seed) for run in runs] == [
        (config, seed) for seed in settings.seeds for config in DEPTH_STUDY_CONFIGS]
    assert all(run.train_images is None and run.recipe.schedule == "plateau" for run in runs)
    # the long budget's data, width and recipe but for the schedule, its rate and its cap
    assert settings.replace(recipe=long.recipe) == long and settings.seeds == (0, 1, 2)
    assert settings.recipe == long.recipe.replace(epochs=PLATEAU_EPOCHS, lr=PLATEAU_LR, schedule="plateau",
                                                  plateau_patience=PLATEAU_PATIENCE)
    pilots = plateau_pilot_plan(settings)
    assert [(run.label, run.seed, run.recipe.schedule) for run in pilots] == [
        ("A", 0, "plateau"), ("A", 0, "onecycle"), ("A x2 epochs", 0, "onecycle")]
    # a plateau pilot differs from the study's runs in peak learning rate and patience only
    assert pilots[0].recipe.replace(lr=PLATEAU_LR, plateau_patience=PLATEAU_PATIENCE) == runs[0].recipe
    # the one-cycle pilots are the long budget's A of seed 0 and its convergence check
    long_runs = long_budget_plan(long, 45_000)
    assert pilots[1:] == [long_runs[0], long_runs[-1]]
    assert len({run.name for run in pilots + runs}) == len(pilots) + len(runs)   # each its own record


def test_the_plateau_budget_s_records_made_so_far_are_its_plan_s_runs_in_fp32_on_one_thread():
    """results/depth_study_plateau/ holds records of the plateau budget's runs, made over
    several sittings (issue #21; chapter 8 reads them once all 21 are made), each of that very run,
    in fp32 on one thread, every one ended by the schedule before its cap; and
    results/depth_study_plateau_pilot/ one per pilot."""
    from vgg_lib.experiments.depth_study import depth_study_name, plateau_budget_plan, plateau_pilot_plan

    settings = DEPTH_STUDY["plateau"]
    assert_shipped_records(depth_study_name("plateau") + "_pilot", plateau_pilot_plan(settings), "fp32", 1)
    records = assert_shipped_records(depth_study_name("plateau"), plateau_budget_plan(settings, 45_000),
                                     "fp32", 1, being_made=True)
    for name, record in records.items():
        assert record.history["stopped_by_schedule"] is True, name
        assert len(record.history["epochs"]) < settings.recipe.epochs, name
