"""Chapter 11's study engine (vgg_lib/transfer/study.py, summary.py): seed by seed, resumable,
refusing stored results of other settings; and the summaries the chapter's claims rest on."""

import json
import math

import pytest
import torch

import vgg_lib.transfer.study as study
from vgg_lib.architecture.spec import ModelSpec
from vgg_lib.training.recipe import TrainConfig
from vgg_lib.transfer.settings import QUICK, RECORDS, TransferSettings
from vgg_lib.transfer.split import SOURCE_CLASSES, TARGET_CLASSES, class_split
from vgg_lib.transfer.summary import (CLAIM_T, GUARD_T, best_probe_accuracies, difference_table,
                                      method_table,
                                      paired_difference, percent, probe_accuracies, probe_table,
                                      training_accuracies, verdict)

from test_transfer import cifar_like

TINY = TrainConfig(epochs=1, batch_size=16, lr=0.05, tta_flip=False, crop_padding=0)


def tiny_settings(**changes):
    values = dict(name="tiny", seeds=(0, 1), budgets=(2, None),
                  network=ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact",
                                    num_classes=6),
                  pretrain=TINY, fine_tune={2: TINY.replace(epochs=2), None: TINY},
                  scratch={2: TINY.replace(epochs=2), None: TINY}, l2_grid=(1.0, 0.01))
    values.update(changes)
    return TransferSettings(**values)


def tiny_tasks():
    data = cifar_like(per_class=8)
    source = class_split(data, SOURCE_CLASSES)
    return source, class_split(data, TARGET_CLASSES, source.mean, source.std)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("transfer")
    source, target = tiny_tasks()
    results = study.run_transfer_study(tiny_settings(), source, target, folder, progress=False)
    torch.set_num_threads(threads)
    return folder, results


def test_every_seed_has_its_probes_runs_and_pretrained_network(finished):
    folder, results = finished
    assert [r["seed"] for r in results] == [0, 1]
    for result in results:
        layers = {(r["network"], r["layer"]) for r in result["probes"]}
        assert ("none", study.PIXELS) in layers and ("random", study.PIXELS) not in layers
        assert {r["budget"] for r in result["probes"]} == {"2", "all"}
        # pixels once, five blocks for each network, at each of two budgets
        assert len(result["probes"]) == 2 * (1 + 2 * 5)
        assert {(r["method"], r["budget"]) for r in result["training"]} == {
            ("fine-tune", "2"), ("scratch", "2"), ("fine-tune", "all"), ("scratch", "all")}
        assert all(0 <= r["test"] <= 1 for r in result["probes"] + result["training"])
        assert (folder / f"source_seed{result['seed']}.pt").is_file()
    network = study.pretrained_network(tiny_settings(), 0, folder)
    assert network.spec.num_classes == 6 and not network.training


def test_a_finished_study_is_read_back_without_training(finished, monkeypatch):
    folder, results = finished

    def no_training(*args, **kwargs):
        raise AssertionError("a stored seed was trained again")

    monkeypatch.setattr(study, "fit", no_training)
    source, target = tiny_tasks()
    again = study.run_transfer_study(tiny_settings(), source, target, folder, progress=False)
    assert again == json.loads(json.dumps(results))


def test_a_seed_stored_with_other_settings_is_refused_before_anything_trains(finished, monkeypatch):
    folder, _ = finished
    monkeypatch.setattr(study, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    source, target = tiny_tasks()
    other = tiny_settings(pretrain=TINY.replace(lr=0.1))
    with pytest.raises(study.StudyMismatch, match=r"settings.pretrain.lr: stored 0.05 vs now 0.1"):
        study.run_transfer_study(other, source, target, folder, progress=False)


def test_a_damaged_seed_file_names_itself_and_the_fix(tmp_path):
    source, target = tiny_tasks()
    (tmp_path / "seed0.json").write_text("{ not json")
    with pytest.raises(study.StudyMismatch, match="seed0.json is not a readable .*Delete it"):
        study.run_transfer_study(tiny_settings(), source, target, tmp_path, progress=False)


def test_the_steps_to_train_count_every_run_of_a_seed():
    source, target = tiny_tasks()
    # pretraining: 48 source images, batch 16 -> 3 steps; budget 2/class: 8 images, one batch of
    # 8, 2 epochs, twice (fine-tune and scratch); all 32 target images: 2 steps, twice
    assert study.steps_to_train(tiny_settings(), source, target) == 3 + 2 * 2 + 2 * 2


def test_settings_need_a_recipe_for_every_budget_and_are_plain_data():
    with pytest.raises(ValueError, match=r"budget\(s\) \[None\]"):
        tiny_settings(fine_tune={2: TINY})
    for settings in (QUICK, RECORDS):
        text = json.dumps(settings.to_dict())
        assert settings.name in text and len(settings.seeds) >= 2
    assert len(RECORDS.seeds) >= 5   # every comparison the chapter draws rests on five seeds


# --- summaries and claims --------------------------------------------------------------------------

def test_summaries_pick_the_rows_of_every_seed(finished):
    _, results = finished
    values = probe_accuracies(results, "trained", "pool3", None)
    assert len(values) == 2
    assert probe_accuracies(results, "random", study.PIXELS, 2) == \
        probe_accuracies(results, "trained", study.PIXELS, 2)   # the pixels have no network
    layers = [study.PIXELS, "pool1", "pool2", "pool3", "pool4", "pool5"]
    best = best_probe_accuracies(results, "trained", 2, layers)
    assert all(b in [probe_accuracies([r], "trained", layer, 2)[0] for layer in layers]
               for b, r in zip(best, results))
    assert len(training_accuracies(results, "scratch", "all")) == 2
    table = probe_table(results, layers, (2, None))
    assert "pool5" in table and "seeds 0, 1" in table
    assert "fine-tune" in method_table(results, (2, None), layers, "pool5")
    with pytest.raises(KeyError, match="budget 7"):
        training_accuracies(results, "scratch", 7)


def test_paired_differences_and_verdicts():
    mean, error, t = paired_difference([3.0, 4.0, 5.0], [2.0, 3.0, 4.0])
    assert mean == 1 and error == 0 and t == math.inf
    assert paired_difference([0.5, 0.25], [0.5, 0.25]) == (0.0, 0.0, 0.0)
    mean, error, t = paired_difference([0.70, 0.72, 0.74, 0.71], [0.60, 0.66, 0.61, 0.64])
    assert error > 0 and t == pytest.approx(mean / error)
    assert verdict([0.70, 0.72, 0.74, 0.71], [0.60, 0.66, 0.61, 0.64], ("A", "B")) == "A ahead"
    assert verdict([0.6, 0.7, 0.5], [0.65, 0.55, 0.6], ("A", "B")) == "not settled"
    assert GUARD_T < CLAIM_T
    assert percent([0.5, 0.7]) == "60.0 ± 14.1"
    with pytest.raises(ValueError, match="at least two"):
        paired_difference([0.5], [0.4])
    table = difference_table([("x - y", [0.70, 0.72, 0.74, 0.71], [0.60, 0.66, 0.61, 0.64]),
                              ("same", [0.5, 0.6], [0.5, 0.6])], names=("x", "y"))
    assert "x ahead" in table and "not settled" in table and "+9.0" in table
    table = difference_table([("10/class: fine-tune - scratch", [0.6, 0.5, 0.55], [0.7, 0.6, 0.64])])
    assert "scratch ahead" in table


def test_the_chosen_learning_rates_are_the_best_of_their_record():
    from vgg_lib.transfer.settings import TARGET_LR_TUNING

    means = {}
    for method, budget, lr, values in TARGET_LR_TUNING:
        means.setdefault((method, budget), {})[lr] = sum(values) / len(values)
    assert {budget for _, budget in means} == set(RECORDS.budgets)
    for (method, budget), by_lr in means.items():
        recipes = RECORDS.fine_tune if method == "fine-tune" else RECORDS.scratch
        assert recipes[budget].lr == max(by_lr, key=by_lr.get), (method, budget)
        assert QUICK.fine_tune[budget].lr == RECORDS.fine_tune[budget].lr
        assert QUICK.scratch[budget].lr == RECORDS.scratch[budget].lr


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
