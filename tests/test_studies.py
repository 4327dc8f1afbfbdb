"""vgg_lib.training.studies: resumable studies, stored results, the equal-compute budget; and the
shallow 5x5 control of chapter 8 (configs.CONTROLS)."""

import json

import pytest
import torch

from vgg_lib.architecture import configs
from vgg_lib.architecture.configs import CONFIGS, CONTROLS, get_config, merge_3x3_pairs
from vgg_lib.architecture.spec import ModelSpec
from vgg_lib.measure.counting import config_costs
from vgg_lib.measure.receptive_field import receptive_fields
from vgg_lib.training import studies
from vgg_lib.training.data import CIFAR10Data
from vgg_lib.training.recipe import TrainConfig
from vgg_lib.training.studies import (DEPTH_STUDY, StudyMismatch, StudyRun, depth_study_plan,
                                      equal_compute_images, estimate_study_seconds, forward_macs,
                                      run_study, summarise_study, training_subset)

pytestmark = pytest.mark.usefixtures("one_thread")


def random_data(n_train=96, n_val=20, n_test=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = lambda n: torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return CIFAR10Data(images(n_train), torch.arange(n_train) % 10, images(n_test),
                       torch.arange(n_test) % 10, classes=[str(i) for i in range(10)],
                       source="synthetic", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                       x_val=images(n_val), y_val=torch.arange(n_val) % 10)


TINY = ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact", num_classes=10)
RECIPE = TrainConfig(epochs=1, batch_size=32, lr=0.05)


def tiny_runs(seeds=(0, 1, 2)):
    return [StudyRun("A", TINY, RECIPE.replace(seed=s)) for s in seeds]


# --- the 5x5 control -------------------------------------------------------------------------------

def test_the_control_is_b_with_each_pair_of_3x3_merged_into_one_5x5():
    assert CONTROLS["B-5x5"] == [(64, 5), "M", (128, 5), "M", (256, 5), "M", (512, 5), "M",
                                 (512, 5), "M"]
    assert configs.weight_layer_count("B-5x5") == configs.weight_layer_count("B") - 5


def test_the_six_table_1_columns_stay_six():
    assert list(CONFIGS) == ["A", "A-LRN", "B", "C", "D", "E"]
    assert "B-5x5" not in configs.table_1()


def test_the_control_is_read_everywhere_a_configuration_is():
    assert ModelSpec(config="b-5X5").config == "B-5x5"
    assert get_config("B-5x5") == CONTROLS["B-5x5"]
    model = ModelSpec(config="B-5x5", width=0.125, head="compact", num_classes=10).build()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 5
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # 5x5 weights: 25 per input channel and output channel, against 9 + 9 for a pair of 3x3
    costs, base = config_costs("B-5x5", image_size=32), config_costs("B", image_size=32)
    first = 3 * 64 * 25 + 64  # conv1_1 of the control: 3 -> 64 channels, 5x5, bias
    assert costs.conv_parameters - first == sum(25 * cin * cout + cout for cin, cout in
                                                [(64, 128), (128, 256), (256, 512), (512, 512)])
    assert costs.conv_macs < base.conv_macs


def test_the_control_sees_what_b_sees_at_every_pooling():
    control = {r.name: r.receptive_field for r in receptive_fields("B-5x5", 224)}
    b = {r.name: r.receptive_field for r in receptive_fields("B", 224)}
    assert [control[f"pool{i}"] for i in range(1, 6)] == [b[f"pool{i}"] for i in range(1, 6)]


def test_merging_pairs_refuses_what_has_no_pairing():
    with pytest.raises(ValueError, match="odd number"):
        merge_3x3_pairs(CONFIGS["A"])
    with pytest.raises(ValueError, match="LRN"):
        merge_3x3_pairs(CONFIGS["A-LRN"])
    assert len(merge_3x3_pairs(CONFIGS["E"])) == len(CONFIGS["E"]) - 8


# --- the equal-compute budget ------------------------------------------------------------------------

def test_equal_compute_images_keep_macs_times_images_seen():
    a, e = TINY, TINY.replace(config="E")
    images = equal_compute_images(e, a, 6400, batch_size=128)
    assert images % 128 == 0
    ratio = forward_macs(a) / forward_macs(e)
    assert abs(images / 6400 - ratio) <= 128 / 6400  # within one batch
    # the same multiply-adds: the reference's own images (A-LRN's LRN costs no multiply-adds)
    assert equal_compute_images(a.replace(config="A-LRN"), a, 8000) == 8000
    with pytest.raises(ValueError, match="reference_images"):
        equal_compute_images(e, a, 0)


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
    assert estimate_study_seconds(runs, 8000, 2000, 5000, "cpu-1-thread") > 0
    full = depth_study_plan(DEPTH_STUDY["full"], 45_000)
    with pytest.raises(ValueError, match="width 0.125"):
        estimate_study_seconds(full["equal epochs"], 45_000, 5000, 10_000, "cpu-1-thread")
    assert estimate_study_seconds(full["equal epochs"], 45_000, 5000, 10_000, "t4") > 0


def test_training_subsets_are_nested_and_keep_the_normalisation():
    data = random_data()
    small, large = training_subset(data, 30), training_subset(data, 60)
    assert len(small.x_train) == 30 and small.mean == data.mean and small.x_val is data.x_val
    rows = {bytes(x.numpy()) for x in large.x_train}
    assert all(bytes(x.numpy()) in rows for x in small.x_train)
    with pytest.raises(ValueError, match="has 96"):
        training_subset(data, 200)


# --- running, storing, resuming -----------------------------------------------------------------------

def test_an_interrupted_study_resumes_without_retraining_finished_runs(tmp_path, monkeypatch):
    data = random_data()
    runs = tiny_runs()
    calls = []
    real_fit = studies.fit

    def interrupted_fit(model, run_data, recipe, **options):
        calls.append(recipe.seed)
        if recipe.seed == 2 and len(calls) == 3:
            raise KeyboardInterrupt  # the kernel interrupted during the third run
        return real_fit(model, run_data, recipe, **options)

    monkeypatch.setattr(studies, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        run_study(runs, data, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "A_allimg_1ep_seed0.json", "A_allimg_1ep_seed1.json"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written
    first = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    results = run_study(runs, data, tmp_path, progress=False)
    assert calls == [0, 1, 2, 2]  # only the unfinished run trained again
    assert [r.reused for r in results] == [True, True, False]
    assert all(first[name] == (tmp_path / name).read_text() for name in first)
    again = run_study(runs, data, tmp_path, progress=False)
    assert calls == [0, 1, 2, 2] and all(r.reused for r in again)
    assert [r.test_accuracy for r in again] == [r.test_accuracy for r in results]
    stored = json.loads((tmp_path / "A_allimg_1ep_seed0.json").read_text())
    assert stored["result"]["images_seen"] == 96 and len(stored["result"]["val_accuracy"]) == 1
    assert stored["result"]["macs"] == forward_macs(TINY)


def test_a_stored_result_of_another_run_is_never_reused(tmp_path):
    data = random_data()
    run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False)
    path = tmp_path / "A_allimg_1ep_seed0.json"
    # the same name, another recipe: the file was written with lr 0.05
    other = [StudyRun("A", TINY, RECIPE.replace(lr=0.1, seed=0))]
    with pytest.raises(StudyMismatch, match=r"recipe.lr: stored 0.05 vs now 0.1"):
        run_study(other, data, tmp_path, progress=False)
    # other training images under the same name
    with pytest.raises(StudyMismatch, match="data.sha256"):
        run_study(tiny_runs(seeds=(0,)), random_data(seed=1), tmp_path, progress=False)
    # the same images read from another folder are the same data: the result is reused
    moved = random_data()
    moved.source = "offline file /elsewhere/cifar10-full.npz"
    assert run_study(tiny_runs(seeds=(0,)), moved, tmp_path, progress=False)[0].reused
    # another model: width
    wider = [StudyRun("A", TINY.replace(width=0.125), RECIPE.replace(seed=0))]
    with pytest.raises(StudyMismatch, match="model.width"):
        run_study(wider, data, tmp_path, progress=False)
    # a damaged file
    path.write_text("{not json")
    with pytest.raises(StudyMismatch, match="not a readable study result"):
        run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False)


def test_a_mismatch_is_found_before_anything_trains(tmp_path, monkeypatch):
    data = random_data()
    run_study(tiny_runs(seeds=(1,)), data, tmp_path, progress=False)
    (tmp_path / "A_allimg_1ep_seed1.json").write_text(
        (tmp_path / "A_allimg_1ep_seed1.json").read_text().replace('"lr": 0.05', '"lr": 0.5'))
    trained = []
    monkeypatch.setattr(studies, "fit", lambda *a, **k: trained.append(1))
    with pytest.raises(StudyMismatch):
        run_study(tiny_runs(), data, tmp_path, progress=False)  # seed 0 comes first, seed 1 is bad
    assert trained == []


def test_bad_studies_get_clear_errors(tmp_path):
    data = random_data()
    with pytest.raises(ValueError, match="no runs"):
        run_study([], data, tmp_path)
    with pytest.raises(TypeError, match="StudyRun"):
        run_study([TINY], data, tmp_path)
    with pytest.raises(TypeError, match="checkpoint_path"):
        run_study(tiny_runs(), data, tmp_path, checkpoint_path=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="both named"):
        run_study([StudyRun("A", TINY, RECIPE), StudyRun("A", TINY, RECIPE.replace(lr=0.1))],
                  data, tmp_path)
    with pytest.raises(ValueError, match="label"):
        StudyRun("A/B", TINY, RECIPE)
    with pytest.raises(ValueError, match="train_images"):
        StudyRun("A", TINY, RECIPE, train_images=0)


def test_summaries_average_seeds(tmp_path):
    data = random_data()
    results = run_study(tiny_runs(), data, tmp_path, progress=False)
    (row,) = summarise_study(results)
    assert row.seeds == [0, 1, 2] and len(row.test) == 3 and row.images_seen == 96
    assert row.depth == 11
    text = studies.format_study_table([row], paper={"A": "29.6 / 10.4"})
    assert "29.6 / 10.4" in text and "mean ± std over 3 seeds" in text
