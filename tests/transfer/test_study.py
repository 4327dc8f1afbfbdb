"""Chapter 11's study engine (vgg_lib/transfer/study.py): seed by seed, resumable, refusing
stored results of other settings."""

import json

import pytest

import vgg_lib.transfer.study as study
from vgg_lib.experiments.networks import network_digest
from vgg_lib.experiments.runs import RecordError, read_record
from vgg_lib.training.checkpoint import CheckpointError

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
    assert network_digest(network) == results[0]["record"].metrics["network_sha256"]

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


def shipped_tiny(tmp_path, monkeypatch):
    """The tiny study's seeds shipped as results/transfer-tiny/ in ``tmp_path``, and an empty
    checkpoint folder; returns (shipped folder, the study's default folder, its results)."""
    source, target = tiny_tasks()
    shipped = tmp_path / "results" / "transfer-tiny"
    results = study.run_transfer_study(tiny_settings(), source, target, shipped, progress=False,
                                       shipped=None)
    monkeypatch.setenv("VGG_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VGG_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    return shipped, study.study_folder(tiny_settings()), results


def test_the_shipped_seeds_are_read_first_and_nothing_is_written_beside_them(tmp_path, monkeypatch):
    shipped, folder, made = shipped_tiny(tmp_path, monkeypatch)
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    monkeypatch.setattr(study, "fit", lambda *a, **k: pytest.fail("a shipped seed was trained"))
    source, target = tiny_tasks()
    results = study.run_transfer_study(tiny_settings(), source, target, progress=False)
    assert [r["origin"] for r in results] == ["shipped", "shipped"]
    assert [r["training"] for r in results] == [r["training"] for r in made]
    assert not folder.exists() and {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    network = study.pretrained_network(results[1])   # read from beside the shipped record
    assert network_digest(network) == made[1]["record"].metrics["network_sha256"]
    said = str(study.transfer_provenance(results, tiny_settings()))
    assert said.startswith("2 runs: 2 read from the records the book ships (results/transfer-tiny/), "
                           "0 from this machine's earlier runs, 0 trained here")


def test_a_shipped_seed_of_other_settings_or_without_its_network_is_said_and_computed(tmp_path,
                                                                                      monkeypatch,
                                                                                      capsys):
    shipped, folder, _ = shipped_tiny(tmp_path, monkeypatch)
    (shipped / "source_seed0.pt").unlink()
    source, target = tiny_tasks()
    results = study.run_transfer_study(tiny_settings(), source, target, progress=False)
    assert [r["origin"] for r in results] == ["trained", "shipped"]
    assert "its network source_seed0.pt is not beside it" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["seed0.json", "source_seed0.pt"]

    other = tiny_settings(l2_grid=(1.0, 0.1))
    results = study.run_transfer_study(other, source, target, tmp_path / "other", progress=False,
                                       shipped=shipped)
    assert [r["origin"] for r in results] == ["trained", "trained"]
    assert "transfer.l2_grid" in capsys.readouterr().out   # seed 1's record: named, not used


def test_with_records_off_every_seed_is_computed(tmp_path, monkeypatch):
    shipped_tiny(tmp_path, monkeypatch)
    monkeypatch.setenv("VGG_RECORDS", "off")
    source, target = tiny_tasks()
    results = study.run_transfer_study(tiny_settings(), source, target, progress=False)
    assert [r["origin"] for r in results] == ["trained", "trained"]


def test_a_network_that_is_not_its_record_s_is_refused(finished, tmp_path):
    folder, results = finished
    swapped = dict(results[0], network=str(folder / "source_seed1.pt"))
    with pytest.raises(CheckpointError, match=r"source_seed1.pt is not the network of seed 0's record"):
        study.pretrained_network(swapped)
