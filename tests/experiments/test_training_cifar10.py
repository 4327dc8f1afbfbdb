"""Chapter 5's runs of its profiles (vgg_lib/experiments/training_cifar10.py) and the records the
book ships of them (results/training_cifar10_quick/)."""

from support import ROOT, assert_shipped_records
from vgg_lib.experiments.networks import load_network, network_path
from vgg_lib.experiments.studies import recorded_results
from vgg_lib.experiments.training_cifar10 import (ABLATION_STUDY, FULL_PROFILE_RECORDS, PROFILE_SEEDS,
                                                  QUICK_TRICKS, REJECTED_TRICKS, WORKED_SEED,
                                                  ablation_plan, profile_plan, training_study_name,
                                                  without_all_tricks)
from vgg_lib.training.profiles import make_profile
from vgg_lib.training.recipe import TrainConfig


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


def test_the_ablation_removes_each_trick_the_profile_uses_and_adds_each_rejected_one():
    """Each "without <trick>" run is the quick profile with that trick's setting undone and
    nothing else changed; each "with <trick>" run adds a rejected trick; "without any" is the
    profile with every trick undone, which is the recipe as it was before them: no trick setting
    differs from TrainConfig's default but the smoothing, back at 0.1."""
    profile = make_profile("quick", "cpu")
    plan = ablation_plan(profile)
    assert len(plan) == 3 * (len(QUICK_TRICKS) + len(REJECTED_TRICKS) + 1)
    assert sorted({run.seed for run in plan}) == [0, 1, 2] and len({run.name for run in plan}) == len(plan)
    for run in plan:
        assert run.spec == profile.model and run.train_images is None and not run.keep_network
        base = profile.recipe.replace(seed=run.seed)
        changed = {name for name in TrainConfig.field_names() if getattr(run.recipe, name) != getattr(base, name)}
        trick = run.label.split(" ", 1)[1]
        if run.label == "without any":
            assert run.recipe == without_all_tricks(base)
        else:
            change = (QUICK_TRICKS if run.label.startswith("without ") else REJECTED_TRICKS)[trick]
            assert run.recipe == base.replace(**change) and changed == set(change), (run.label, changed)
    # every trick the profile uses is on in its recipe, and each rejected one off
    for change in QUICK_TRICKS.values():
        assert any(getattr(profile.recipe, k) != v for k, v in change.items())
    for change in REJECTED_TRICKS.values():
        assert all(getattr(profile.recipe, k) != v for k, v in change.items())
    plain = without_all_tricks(profile.recipe)
    assert plain.label_smoothing == 0.1 and plain.tta_shift == 0 and not plain.whiten_first_layer
    assert not plain.dirac_init and not plain.alternating_flip and plain.tta_flip


def test_the_shipped_ablation_records_are_its_plan_in_fp32_on_one_thread():
    """results/training_cifar10_quick_ablation/ holds one record per run of the ablation (`make
    results CHAPTER=5-ablation`), made in fp32 on one thread, and no networks."""
    plan = ablation_plan(make_profile("quick", "cpu"))
    assert_shipped_records(ABLATION_STUDY, plan, "fp32", 1)
    assert not list((ROOT / "results" / ABLATION_STUDY).glob("*.pt"))


def test_the_tuning_record_holds_what_the_quick_profile_s_comment_cites():
    """vgg_lib/training/profiles.py cites benchmarks/fast_recipe_runs.jsonl (the tuning script's
    record, validation only): the tricks together 79.8 +- 0.4 % (flip + shift TTA, seeds 0-2)
    against 78.4 % without them (seed 0); lookahead's removal ("noema") no worse."""
    import json
    import statistics

    runs = [json.loads(line) for line in (ROOT / "benchmarks" / "fast_recipe_runs.jsonl").read_text().splitlines()
            if line.strip()]
    assert all(r["precision"] == "fp32" and "test" not in json.dumps(sorted(r)) for r in runs)

    def tta2(setting):
        return [100 * r["val_tta2"] for r in sorted(runs, key=lambda r: r["seed"]) if r["setting"] == setting]

    together = tta2("3ep+all")
    assert len(together) == 3 and f"{statistics.mean(together):.1f} +- {statistics.stdev(together):.1f}" == "79.8 +- 0.4"
    assert f"{tta2('base')[0]:.1f}" == "78.4"
    assert statistics.mean(tta2("3ep+all+noema")) >= statistics.mean(together)


def test_the_budget_table_is_its_record_and_the_profile_follows_its_rule():
    """QUICK_BUDGET (chapter 5 prints it) is typed in from benchmarks/quick_budget_runs.jsonl,
    the budget tuning's record (validation only, one thread per run); the profile takes the
    setting with the best mean among those whose images seen trained at least QUICK_BUDGET_MARGIN
    under the minute on the book's machine (QUICK_BUDGET_SECONDS), and the seconds are the record's where it has them."""
    import json
    import statistics

    from vgg_lib.experiments.training_cifar10 import (QUICK_BUDGET, QUICK_BUDGET_LIMIT,
                                                      QUICK_BUDGET_MARGIN, QUICK_BUDGET_SECONDS,
                                                      quick_budget_choice)

    runs = [json.loads(line) for line in (ROOT / "benchmarks" / "quick_budget_runs.jsonl").read_text().splitlines()
            if line.strip()]
    assert all(r["precision"] == "fp32" and "test" not in json.dumps(sorted(r)) for r in runs)
    views = "flip + 1-pixel shifts"
    for setting, images, epochs, accuracies in QUICK_BUDGET:
        mine = sorted((r for r in runs if r["setting"] == setting and r["threads"] == 1), key=lambda r: r["seed"])
        assert [(r["seed"], r["train_images"], r["epochs"]) for r in mine] == [(s, images, epochs) for s in (0, 1, 2)]
        assert [round(100 * a, 2) for a in accuracies] == [r["val"][views] for r in mine]
    alone = {r["epochs"] * r["train_images"]: r["train_seconds"] for r in runs if r["threads"] == 2}
    assert alone and all(QUICK_BUDGET_SECONDS[seen] == seconds for seen, seconds in alone.items())
    profile = make_profile("quick", "cpu")
    assert quick_budget_choice() == (profile.train_images, profile.recipe.epochs) == (37_500, 4)
    # the rule: 160,000 (4x40000) is the most seen but over the margin; of the two 150,000 rows
    # the higher mean; a row without a measured time never qualifies
    means = {setting: statistics.mean(acc) for setting, _, _, acc in QUICK_BUDGET}
    assert means["4x40000"] > means["4x37500"] > means["5x30000"]
    assert quick_budget_choice(seconds={**QUICK_BUDGET_SECONDS, 160_000: 50.0}) == (40_000, 4)
    assert quick_budget_choice(seconds={135_000: 49.1}) == (45_000, 3)
    assert QUICK_BUDGET_SECONDS[160_000] > QUICK_BUDGET_LIMIT - QUICK_BUDGET_MARGIN   # the next budget up did not fit
