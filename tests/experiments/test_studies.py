"""vgg_lib.experiments.studies: the one many-run engine: resumable studies, one run record per
run, the equal-compute budget."""

import json

import pytest
import torch

from vgg_lib.architecture.model import ModelSpec
from vgg_lib.experiments import runs, studies
from vgg_lib.experiments.runs import RecordError
from vgg_lib.experiments.studies import (StudyRun, equal_compute_images, relabel, run_study,
                                         summarise_study)
from vgg_lib.training.data import CIFAR10Data
from vgg_lib.training.profiles import forward_macs
from vgg_lib.training.recipe import TrainConfig

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
        "A_allimg_1ep_lr0.05_seed0.json", "A_allimg_1ep_lr0.05_seed1.json"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written
    first = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    results = run_study(runs, data, tmp_path, progress=False)
    assert calls == [0, 1, 2, 2]  # only the unfinished run trained again
    assert [r.reused for r in results] == [True, True, False]
    assert all(first[name] == (tmp_path / name).read_text() for name in first)
    again = run_study(runs, data, tmp_path, progress=False)
    assert calls == [0, 1, 2, 2] and all(r.reused for r in again)
    assert [r.test_accuracy for r in again] == [r.test_accuracy for r in results]
    stored = json.loads((tmp_path / "A_allimg_1ep_lr0.05_seed0.json").read_text())
    assert stored["metrics"]["images_seen"] == 96 and len(stored["metrics"]["val_accuracy"]) == 1
    assert stored["metrics"]["macs"] == forward_macs(TINY) and stored["seed"] == 0


def test_a_read_only_study_returns_the_recorded_runs_and_trains_none(tmp_path, monkeypatch):
    data, runs = random_data(), tiny_runs()
    run_study(runs[:2], data, tmp_path, progress=False)
    monkeypatch.setattr(studies, "fit", lambda *args, **kwargs: pytest.fail("trained"))
    results = run_study(runs, data, tmp_path, progress=False, train=False)
    assert [r.run for r in results] == runs[:2] and all(r.source == "stored" for r in results)
    assert run_study(runs[2:], data, tmp_path, progress=False, train=False) == []
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [f"{run.name}.json" for run in runs[:2]]


def test_a_stored_result_of_another_run_is_never_reused(tmp_path):
    data = random_data()
    run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False)
    path = tmp_path / "A_allimg_1ep_lr0.05_seed0.json"
    # the same name, another recipe: the file was written with momentum 0.9
    other = [StudyRun("A", TINY, RECIPE.replace(momentum=0.8, seed=0))]
    with pytest.raises(RecordError, match=r"recipe.momentum: stored 0.9 vs now 0.8"):
        run_study(other, data, tmp_path, progress=False)
    # other training images under the same name
    with pytest.raises(RecordError, match=r"data.train.sha256"):
        run_study(tiny_runs(seeds=(0,)), random_data(seed=1), tmp_path, progress=False)
    # the same images read from another folder are the same data: the result is reused
    moved = random_data()
    moved.source = "offline file /elsewhere/cifar10-full.npz"
    assert run_study(tiny_runs(seeds=(0,)), moved, tmp_path, progress=False)[0].reused
    # another model: width
    wider = [StudyRun("A", TINY.replace(width=0.125), RECIPE.replace(seed=0))]
    with pytest.raises(RecordError, match=r"spec.width"):
        run_study(wider, data, tmp_path, progress=False)
    # a damaged file
    path.write_text("{not json")
    with pytest.raises(RecordError, match=r"A_allimg_1ep_lr0.05_seed0.json is not complete JSON.*Delete"):
        run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False)


def test_a_mismatch_is_found_before_anything_trains(tmp_path, monkeypatch):
    data = random_data()
    run_study(tiny_runs(seeds=(1,)), data, tmp_path, progress=False)
    (tmp_path / "A_allimg_1ep_lr0.05_seed1.json").write_text(
        (tmp_path / "A_allimg_1ep_lr0.05_seed1.json").read_text().replace('"momentum": 0.9', '"momentum": 0.5'))
    trained = []
    monkeypatch.setattr(studies, "fit", lambda *a, **k: trained.append(1))
    with pytest.raises(RecordError):
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
        run_study([StudyRun("A", TINY, RECIPE), StudyRun("A", TINY, RECIPE.replace(momentum=0.5))],
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


def test_without_a_folder_every_run_trains_and_keeps_its_model_and_probe(no_hooks_left):
    data = random_data()
    built = []

    def build(seed):
        built.append(seed)
        return TINY.build()

    runs = [StudyRun("paper init + A", None, RECIPE.replace(seed=s), build=build,
                     probe_steps=(1, 3) if s == 0 else None) for s in (0, 1)]
    results = run_study(runs, data, None, progress=False, keep_models=True)
    assert built == [0, 1] and [r.reused for r in results] == [False, False]
    assert results[0].probe is not None and results[1].probe is None
    assert [rec["step"] for rec in results[0].probe.records] == [1, 3]
    assert all(no_hooks_left(r.model) for r in results)
    assert results[0].record.identity["spec"] == TINY.to_dict()  # the built model's spec
    assert results[0].name == "paper-init-A_allimg_1ep_lr0.05_seed0"
    (a_row,) = relabel(results, "E, ")[:1]
    assert a_row.label == "E, paper init + A" and a_row.history is results[0].history
    with pytest.raises(ValueError, match="build function has no ModelSpec"):
        run_study(runs, data, "somewhere", progress=False)


def test_a_probed_run_keeps_its_probe_in_its_record_and_reads_it_back(tmp_path, no_hooks_left):
    data = random_data()
    probed = [StudyRun("A", TINY, RECIPE.replace(seed=s), probe_steps=(1, 3) if s == 0 else None)
              for s in (0, 1)]
    trained = run_study(probed, data, tmp_path, progress=False, precision="fp32", keep_models=True)
    assert all(no_hooks_left(r.model) for r in trained)
    stored = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert stored[probed[0].name]["probe"]["steps"] == [1, 3]
    assert "probe" not in stored[probed[1].name]   # a run without a probe: its record as before
    read = run_study(probed, data, tmp_path, progress=False, precision="fp32")
    assert [r.source for r in read] == ["stored", "stored"] and read[1].probe is None
    for field in ("grad_norm", "weight_norm"):   # the same floats as the probe that watched it
        assert read[0].probe.series(field) == trained[0].probe.series(field)
    assert read[0].probe.series("grad_norm")[1][-1] == "fc"
    # a run that asks for other steps than its record kept has no probe (the caller trains it)
    other = [StudyRun("A", TINY, RECIPE.replace(seed=0), probe_steps=(2,))]
    assert run_study(other, data, tmp_path, progress=False)[0].probe is None
    # a record made before probes were kept is read as before, without a probe
    path = tmp_path / f"{probed[0].name}.json"
    path.write_text(json.dumps({k: v for k, v in stored[probed[0].name].items() if k != "probe"}))
    (old,) = run_study(probed[:1], data, tmp_path, progress=False)
    assert old.source == "stored" and old.probe is None
    assert old.test_accuracy == trained[0].test_accuracy
    # a probe that cannot be read is an error naming the file, never a run without its probe
    broken = dict(stored[probed[0].name], probe={"steps": [1, 3], "loss": [2.0]})
    path.write_text(json.dumps(broken))
    with pytest.raises(RecordError, match=r"seed0.json: its probe cannot be read.*Delete"):
        run_study(probed[:1], data, tmp_path, progress=False)


def test_an_explicit_precision_must_be_the_record_s(tmp_path):
    data = random_data()
    run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False, precision="fp32")
    assert run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False)[0].reused  # "auto": any
    with pytest.raises(RecordError, match="precision: stored 'fp32' vs now 'bf16'"):
        run_study(tiny_runs(seeds=(0,)), data, tmp_path, progress=False, precision="bf16")


def test_studies_store_the_end_of_epoch_fit(tmp_path):
    data = random_data()
    spec = TINY.replace(shortcuts="identity")
    run = StudyRun("A-res", spec, RECIPE, train_eval_images=40)
    (result,) = run_study([run], data, tmp_path, progress=False, precision="fp32")
    assert len(result.train_eval_loss) == RECIPE.epochs
    (reused,) = run_study([run], data, tmp_path, progress=False, precision="fp32")
    assert reused.reused and reused.train_eval_accuracy == result.train_eval_accuracy
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert stored["identity"]["train_eval_images"] == 40
    # a run without them keeps the identity it had before the option existed, and has none
    (without,) = run_study([StudyRun("A-res", spec, RECIPE)], data, None, progress=False,
                           precision="fp32")
    assert without.train_eval_loss is None
    assert "train_eval_images" not in studies._identity(without.run, spec, data)
    with pytest.raises(TypeError, match="train_eval_images"):
        run_study([without.run], data, tmp_path / "other", progress=False, train_eval_images=40)


# --- the records the repository ships ----------------------------------------------------------------

def shipped_and_checkpoints(tmp_path, monkeypatch, seeds=(0, 1)):
    """Records of ``tiny_runs(seeds)`` shipped as study "tiny" in ``tmp_path/results``, and an
    empty checkpoint folder; returns (shipped folder, the study's checkpoint folder, data)."""
    data = random_data()
    shipped = tmp_path / "results" / "tiny"
    run_study(tiny_runs(seeds), data, shipped, progress=False, precision="fp32")
    monkeypatch.setenv("VGG_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VGG_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    return shipped, studies.study_folder("tiny"), data


def test_a_study_reads_the_shipped_records_first_and_writes_only_to_its_own_folder(tmp_path,
                                                                                   monkeypatch):
    shipped, folder, data = shipped_and_checkpoints(tmp_path, monkeypatch)
    before = {p.name: p.read_bytes() for p in shipped.glob("*.json")}
    trained = []
    real_fit = studies.fit
    monkeypatch.setattr(studies, "fit", lambda *a, **k: trained.append(1) or real_fit(*a, **k))
    assert runs.shipped_folder("tiny") == shipped
    results = run_study(tiny_runs((0, 1, 2)), data, folder, progress=False, precision="fp32")
    assert [r.source for r in results] == ["shipped", "shipped", "trained"] and trained == [1]
    assert [r.reused for r in results] == [True, True, False]
    assert sorted(p.name for p in folder.glob("*.json")) == ["A_allimg_1ep_lr0.05_seed2.json"]
    assert {p.name: p.read_bytes() for p in shipped.glob("*.json")} == before  # read only
    again = run_study(tiny_runs((0, 1, 2)), data, folder, progress=False, precision="fp32")
    assert [r.source for r in again] == ["shipped", "shipped", "stored"] and trained == [1]
    assert [r.test_accuracy for r in again] == [r.test_accuracy for r in results]
    # a folder that is not a study's folder has no shipped records unless they are named
    elsewhere = run_study(tiny_runs((0,)), data, tmp_path / "mine", progress=False)
    assert elsewhere[0].source == "trained"
    named = run_study(tiny_runs((0,)), data, None, shipped=shipped, progress=False)
    assert named[0].source == "shipped" and trained == [1, 1]


def test_a_shipped_record_of_another_run_is_named_and_trained_again(tmp_path, monkeypatch, capsys):
    shipped, folder, data = shipped_and_checkpoints(tmp_path, monkeypatch, seeds=(0,))
    path = shipped / "A_allimg_1ep_lr0.05_seed0.json"
    path.write_text(path.read_text().replace('"momentum": 0.9', '"momentum": 0.5'))
    (result,) = run_study(tiny_runs((0,)), data, folder, progress=False)
    said = capsys.readouterr().out
    assert "Not using the shipped record tiny/A_allimg_1ep_lr0.05_seed0.json" in said
    assert "recipe.momentum: stored 0.5 vs now 0.9" in said and result.source == "trained"
    assert '"momentum": 0.5' in path.read_text()  # the shipped file is left as it was
    assert (folder / path.name).is_file()
    # another precision than the one asked for is another run too
    path.write_text(path.read_text().replace('"momentum": 0.5', '"momentum": 0.9'))
    (result,) = run_study(tiny_runs((0,)), data, tmp_path / "elsewhere", shipped=shipped,
                          progress=False, precision="bf16")
    assert result.source == "trained"
    assert "precision: stored 'fp32' vs now 'bf16'" in capsys.readouterr().out


def test_records_off_trains_and_a_broken_shipped_record_is_an_error(tmp_path, monkeypatch):
    shipped, folder, data = shipped_and_checkpoints(tmp_path, monkeypatch, seeds=(0,))
    monkeypatch.setenv("VGG_RECORDS", "off")
    assert runs.shipped_folder("tiny") is None
    (result,) = run_study(tiny_runs((0,)), data, folder, progress=False)
    assert result.source == "trained"
    (result,) = run_study(tiny_runs((0,)), data, None, shipped=shipped, progress=False)
    assert result.source == "trained"
    monkeypatch.delenv("VGG_RECORDS")
    (shipped / "A_allimg_1ep_lr0.05_seed0.json").write_text('{"format": "vgg_lib.run-rec')
    with pytest.raises(RecordError, match=r"seed0.json is not complete JSON.*Delete"):
        run_study(tiny_runs((0,)), data, tmp_path / "fresh", shipped=shipped, progress=False)


def test_the_shipped_records_are_the_repository_s_results_folder(monkeypatch):
    from vgg_lib.experiments.runs import PACKAGE, results_dir
    monkeypatch.delenv("VGG_RESULTS_DIR", raising=False)
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    assert results_dir() == PACKAGE.parent / "results"
    assert runs.shipped_folder("residual_networks") == PACKAGE.parent / "results" / "residual_networks"
    with pytest.raises(ValueError, match="Study name"):
        runs.shipped_folder("../x")


# --- a run's network, kept beside its record ---------------------------------------------------------

def kept(seeds=(0, 1)):
    """``tiny_runs`` of which seed 0's keeps its network (as chapter 5's worked run)."""
    return [StudyRun("A", TINY, RECIPE.replace(seed=s), keep_network=s == 0) for s in seeds]


def shipped_with_networks(tmp_path, monkeypatch, seeds=(0, 1)):
    """As ``shipped_and_checkpoints``, of ``kept(seeds)``."""
    data = random_data()
    shipped = tmp_path / "results" / "tiny"
    made = run_study(kept(seeds), data, shipped, progress=False, precision="fp32")
    monkeypatch.setenv("VGG_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VGG_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    return shipped, studies.study_folder("tiny"), data, made


def test_a_run_keeps_its_network_beside_its_record_and_reads_it_back(tmp_path, monkeypatch, capsys):
    from vgg_lib.experiments.networks import network_digest, trained_network
    shipped, folder, data, made = shipped_with_networks(tmp_path, monkeypatch)
    assert sorted(p.name for p in shipped.iterdir()) == [
        "A_allimg_1ep_lr0.05_seed0.json", "A_allimg_1ep_lr0.05_seed0.pt", "A_allimg_1ep_lr0.05_seed1.json"]
    assert made[0].network == shipped / "A_allimg_1ep_lr0.05_seed0.pt" and made[1].network is None
    digest = made[0].record.metrics["network_sha256"]
    assert digest == network_digest(made[0].model) and "network_sha256" not in made[1].record.metrics
    read = run_study(kept(), data, folder, progress=False)
    assert [r.source for r in read] == ["shipped", "shipped"] and read[0].model is None
    assert network_digest(trained_network(read[0])) == digest
    assert not folder.exists()   # nothing trained, nothing written
    assert studies.recorded_run(kept((0,))[0], data, folder).network == read[0].network
    assert studies.recorded_run(kept((2,))[0], data, folder) is None   # not recorded: not trained
    # a shipped record without its network is not used: the run trains, its network stored with it
    (shipped / "A_allimg_1ep_lr0.05_seed0.pt").unlink()
    (again, _) = run_study(kept(), data, folder, progress=False)
    assert again.source == "trained" and (folder / "A_allimg_1ep_lr0.05_seed0.pt").is_file()
    assert "its network A_allimg_1ep_lr0.05_seed0.pt is not beside it; training the run" in capsys.readouterr().out


def test_a_corrupt_or_foreign_network_is_an_error_naming_the_file_and_the_fix(tmp_path, monkeypatch):
    from vgg_lib.experiments.networks import save_network, trained_network
    from vgg_lib.training.checkpoint import CheckpointError
    shipped, folder, data, _ = shipped_with_networks(tmp_path, monkeypatch, seeds=(0,))
    run_study(kept((0,)), data, tmp_path / "mine", progress=False, precision="fp32")
    (from_shipped,) = run_study(kept((0,)), data, folder, progress=False)
    (from_mine,) = run_study(kept((0,)), data, tmp_path / "mine", shipped=None, progress=False)
    assert (from_shipped.source, from_mine.source) == ("shipped", "stored")
    network = shipped / "A_allimg_1ep_lr0.05_seed0.pt"
    network.write_bytes(network.read_bytes()[:1000])   # truncated
    with pytest.raises(CheckpointError, match=r"A_allimg_1ep_lr0.05_seed0.pt cannot be loaded as the "
                       r"network of the record tiny/A_allimg_1ep_lr0.05_seed0.json .*git checkout -- "
                       r"results/tiny/A_allimg_1ep_lr0.05_seed0.pt.*make results"):
        trained_network(from_shipped)
    save_network(tmp_path / "mine" / network.name, TINY.build())   # another network, same spec
    with pytest.raises(CheckpointError, match=r"mine/A_allimg_1ep_lr0.05_seed0.pt is not the network "
                       r"of the record mine/A_allimg_1ep_lr0.05_seed0.json .*Delete it and "
                       r"A_allimg_1ep_lr0.05_seed0.json beside it to train the run again"):
        trained_network(from_mine)


def test_a_row_of_plateau_runs_averages_seeds_that_trained_for_different_epochs(tmp_path):
    """Under the paper's schedule each seed decides how long it trains; a row still averages
    them (images seen: their mean), and refuses runs whose recipes differ beyond the seed."""
    data = random_data()
    plateau = RECIPE.replace(epochs=12, schedule="plateau", plateau_patience=1, plateau_decreases=1,
                             lr=0.1)  # seeds 0 and 1 stop after 4 and 3 epochs
    results = run_study([StudyRun("A", TINY, plateau.replace(seed=s)) for s in (0, 1, 2)], data,
                        tmp_path, progress=False)
    epochs = [len(r.history.epochs) for r in results]
    assert all(r.history.stopped_by_schedule for r in results) and len(set(epochs)) > 1, epochs
    (row,) = summarise_study(results)
    assert row.epochs == epochs and len(row.test) == 3
    per_epoch = len(data.x_train) // plateau.batch_size * plateau.batch_size
    assert [r.images_seen for r in results] == [e * per_epoch for e in epochs]   # those trained, not the cap's
    assert row.images_seen == round(sum(r.images_seen for r in results) / 3)
    assert "each run as long as the plateau schedule let it train" in studies.format_study_table([row])
    other = run_study([StudyRun("A", TINY, plateau.replace(seed=3, lr=0.05))], data, tmp_path,
                      progress=False)
    with pytest.raises(ValueError, match="differ in model or images seen"):
        summarise_study(results + other)
