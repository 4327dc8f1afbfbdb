"""Chapter 5's runs of its profiles (vgg_lib/experiments/training_cifar10.py) and the records the
book ships of them (results/training_cifar10_quick/)."""

from support import ROOT, assert_shipped_records
from vgg_lib.experiments.networks import load_network, network_path
from vgg_lib.experiments.studies import recorded_results
from vgg_lib.experiments.training_cifar10 import (FULL_PROFILE_RECORDS, PROFILE_SEEDS, WORKED_SEED,
                                                  profile_plan, training_study_name)
from vgg_lib.training.profiles import make_profile


def test_the_plan_is_the_profile_once_per_seed_and_the_worked_seed_keeps_its_network():
    for name in ("quick", "full"):
        profile = make_profile(name, "cpu")
        plan = profile_plan(profile)
        assert [run.seed for run in plan] == list(PROFILE_SEEDS[name]) and WORKED_SEED in PROFILE_SEEDS[name]
        for run in plan:
            assert run.label == f"{name} profile" and run.spec == profile.model
            assert run.recipe == profile.recipe.replace(seed=run.seed) and run.train_images is None
            assert run.keep_network == (run.seed == WORKED_SEED)
    assert PROFILE_SEEDS["quick"] == (0, 1, 2)


def test_the_shipped_records_are_the_quick_plan_in_fp32_on_one_thread_with_seed_0s_network():
    """results/training_cifar10_quick/ holds one record per seed of the quick profile, of that very
    run, made in fp32 on one thread (``make results CHAPTER=5``), and seed 0's network beside its
    record, the one its numbers came from (chapter 5's nbval run reads them all)."""
    plan = profile_plan(make_profile("quick", "cpu"))
    name = training_study_name("quick")
    records = assert_shipped_records(name, plan, "fp32", 1)
    folder = ROOT / "results" / name
    worked = next(run for run in plan if run.keep_network)
    assert [p.name for p in folder.glob("*.pt")] == [network_path(folder, worked.name).name]
    record = records[worked.name]
    model = load_network(network_path(folder, worked.name), record.metrics["network_sha256"],
                         "the record beside it", "")
    assert model.spec == worked.spec
    assert sum(p.numel() for p in model.parameters()) == record.metrics["parameters"]


def test_the_gpu_session_recorded_the_full_profile_s_three_seeds():
    """Chapter 5's section on the full profile reads these from results/gpu-2026-12-04/."""
    plan = profile_plan(make_profile("full", "cpu"), seeds=(0, 1, 2))
    found = [r for r in recorded_results(FULL_PROFILE_RECORDS) if r.run in plan]
    assert [r.seed for r in found] == [0, 1, 2]
    assert all(r.record.device.startswith("cuda") and r.record.precision == "bf16" for r in found)
