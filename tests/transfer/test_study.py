"""Chapter 11's study engine (vgg_lib/transfer/study.py): seed by seed, resumable, refusing
stored results of other settings."""

import json

import pytest

import vgg_lib.transfer.study as study
from vgg_lib.experiments.runs import RecordError, read_record

from transfer_support import TINY, tiny_settings, tiny_tasks


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
    record = read_record(folder / "seed1.json")  # one run-record format for every study
    assert record.seed == 1 and record.identity["label"] == "transfer"
    assert record.metrics["test_accuracy"] == results[1]["source"]["test"]
    assert [r["origin"] for r in results] == ["trained", "trained"]
    network = study.pretrained_network(results[0])
    assert network.spec.num_classes == 6 and not network.training
    assert study.network_digest(network) == results[0]["record"].metrics["network_sha256"]

def test_a_finished_study_is_read_back_without_training(finished, monkeypatch):
    folder, results = finished

    def no_training(*args, **kwargs):
        raise AssertionError("a stored seed was trained again")

    monkeypatch.setattr(study, "fit", no_training)
    source, target = tiny_tasks()
    again = study.run_transfer_study(tiny_settings(), source, target, folder, progress=False)
    assert [r["origin"] for r in again] == ["stored", "stored"]

    def numbers(found):
        return json.loads(json.dumps([{k: v for k, v in r.items() if k not in ("origin", "record")}
                                      for r in found]))

    assert numbers(again) == numbers(results)

def test_a_seed_stored_with_other_settings_is_refused_before_anything_trains(finished, monkeypatch):
    folder, _ = finished
    monkeypatch.setattr(study, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    source, target = tiny_tasks()
    other = tiny_settings(recipe=TINY.replace(lr=0.1))
    with pytest.raises(RecordError, match=r"recipe.lr: stored 0.05 vs now 0.1"):
        study.run_transfer_study(other, source, target, folder, progress=False)

def test_a_damaged_seed_file_names_itself_and_the_fix(tmp_path):
    source, target = tiny_tasks()
    (tmp_path / "seed0.json").write_text("{ not json")
    with pytest.raises(RecordError, match=r"seed0.json is not complete JSON.*Delete .*seed0.json"):
        study.run_transfer_study(tiny_settings(), source, target, tmp_path, progress=False)

def test_the_steps_to_train_count_every_run_of_a_seed():
    source, target = tiny_tasks()
    # pretraining: 48 source images, batch 16 -> 3 steps; budget 2/class: 8 images, one batch of
    # 8, 2 epochs, twice (fine-tune and scratch); all 32 target images: 2 steps, twice
    assert study.steps_to_train(tiny_settings(), source, target) == 3 + 2 * 2 + 2 * 2
