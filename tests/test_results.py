"""The records command (``python -m vgg_lib.results``, ``make results``): makes a chapter's
records resumably in the results folder, in parts, and ``--verify`` re-trains recorded runs and
finds a record the code no longer reproduces. On a tiny study of synthetic data."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from support import colour_data
from vgg_lib.experiments import runs as runs_module
from vgg_lib import results
from vgg_lib.architecture.model import ModelSpec
from vgg_lib.experiments.depth_study import DEPTH_STUDY, VIEWS, depth_study_name, depth_study_plan
from vgg_lib.experiments.layer_by_layer import SLIM_HEAD_STUDY, slim_head_plan
from vgg_lib.experiments.residual_networks import (RESIDUAL_STUDY, probed_steps,
                                                   residual_study_name, residual_study_plan)
from vgg_lib.experiments.runs import read_record
from vgg_lib.experiments.studies import StudyRun
from vgg_lib.training.recipe import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact", num_classes=10)
RECIPE = TrainConfig(epochs=1, batch_size=32, lr=0.05)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_chapter(tmp_path, monkeypatch):
    """Chapter "10" is a study of three tiny runs on synthetic data; results go to tmp_path."""
    runs = [StudyRun("A-plain", TINY, RECIPE.replace(seed=s), train_eval_images=20)
            for s in (0, 1, 2)]
    chapter = results.ChapterRecords("tiny", runs, {}, "fp32", fit_options={"eval_every_epoch": False})
    monkeypatch.setattr(results, "CHAPTERS", {"10": lambda: chapter})
    monkeypatch.setattr(results, "load_cifar10", lambda **options: colour_data())
    monkeypatch.setenv("VGG_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    return tmp_path / "tiny"




def test_records_are_made_in_parts_then_verified_bit_for_bit(tiny_chapter, capsys):
    with pytest.raises(SystemExit):   # nothing recorded yet: verify says to make them first
        results.main(["--verify", "1"])
    assert "make results CHAPTER=10" in capsys.readouterr().err
    assert results.main(["--chapter", "10", "--part", "2/2"]) == 0
    assert sorted(p.name for p in tiny_chapter.glob("*.json")) == ["A-plain_allimg_1ep_lr0.05_seed1.json"]
    assert results.main(["--chapter", "10"]) == 0
    assert "2 trained, 1 already recorded" in capsys.readouterr().out
    first = {p.name: p.read_text() for p in tiny_chapter.glob("*.json")}
    assert len(first) == 3
    assert results.main(["--verify", "2", "--seed", "3"]) == 0
    said = capsys.readouterr().out
    assert "verifying 2 of 3 runs (seed 3)" in said and "DIFFERENT" not in said
    assert said.count("ok (identical)") == 2 * len(results.METRICS)  # same machine, fp32, torch
    assert {p.name: p.read_text() for p in tiny_chapter.glob("*.json")} == first  # nothing written


def test_verify_fails_on_a_record_the_code_does_not_reproduce(tiny_chapter, capsys):
    assert results.main(["--chapter", "10"]) == 0
    for path in tiny_chapter.glob("*.json"):
        record = json.loads(path.read_text())
        record["metrics"]["test_accuracy"] += 0.01
        path.write_text(json.dumps(record))
    assert results.main(["--verify", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("DIFFERENT (identical)") == 1   # the test accuracy, nothing else
    assert "test_accuracy: recorded" in captured.out and "1 numbers did not reproduce" in captured.err
    for wrong in ("3/2", "half"):
        with pytest.raises(SystemExit):
            results.main(["--part", wrong])
        assert "use I/K" in capsys.readouterr().err


def test_on_another_machine_verify_allows_the_recorded_seed_spread(tiny_chapter, capsys, monkeypatch):
    assert results.main(["--chapter", "10"]) == 0
    here = results.machine()
    monkeypatch.setattr(results, "machine", lambda: dict(here, cpu="another CPU"))
    assert results.main(["--verify", "1"]) == 0
    said = capsys.readouterr().out
    assert "(4 seed stds)" in said and "(identical)" not in said


def test_the_same_cpu_name_with_other_cpu_features_is_another_machine(tiny_chapter, capsys,
                                                                       monkeypatch):
    # a virtual machine reports one generic model name for CPUs whose kernels round differently
    assert results.main(["--chapter", "10"]) == 0
    here = results.machine()
    other = [flag for flag in ("avx2", "avx512_bf16", "amx_bf16") if flag not in here["flags"]]
    flags = here["flags"][:-1] if not other else here["flags"] + other[:1]
    monkeypatch.setattr(results, "machine", lambda: dict(here, flags=flags))
    assert results.main(["--verify", "1"]) == 0
    said = capsys.readouterr().out
    assert "(4 seed stds)" in said and "(identical)" not in said


def recorded_on_two_threads(folder):
    for path in folder.glob("*.json"):
        record = json.loads(path.read_text())
        record["threads"] = 2
        path.write_text(json.dumps(record))


def test_a_verify_trains_on_the_threads_of_the_record(tiny_chapter, monkeypatch):
    # a CPU's kernels split their sums by thread: 2 threads and 1 round differently
    assert results.main(["--chapter", "10"]) == 0
    recorded_on_two_threads(tiny_chapter)
    monkeypatch.setattr(runs_module.os, "cpu_count", lambda: 4)
    used, real_run_study = [], results.run_study
    monkeypatch.setattr(results, "run_study", lambda runs, data, folder, **options: (
        used.append(torch.get_num_threads()) or real_run_study(runs, data, folder, **options)))
    results.main(["--verify", "1"])   # the tiny record was made on 1 thread: it may differ
    assert used == [1, 2] and torch.get_num_threads() == 1   # read the records; the run; restored


def test_a_record_of_more_threads_than_cores_is_compared_within_the_seed_spread(tiny_chapter, capsys,
                                                                                 monkeypatch):
    assert results.main(["--chapter", "10"]) == 0
    recorded_on_two_threads(tiny_chapter)
    monkeypatch.setattr(runs_module.os, "cpu_count", lambda: 1)
    assert results.main(["--verify", "1"]) == 0
    said = capsys.readouterr().out
    assert "(4 seed stds)" in said and "(identical)" not in said


def test_a_verify_compares_only_what_the_runs_measured(tiny_chapter, monkeypatch, capsys):
    # chapter 8's runs have no train_eval_images: their records hold no eval-mode training numbers
    runs = [StudyRun("A", TINY, RECIPE.replace(seed=s)) for s in (0, 1, 2)]
    chapter = results.ChapterRecords("tiny", runs, {}, "fp32")
    monkeypatch.setattr(results, "CHAPTERS", {"8": lambda: chapter})
    assert results.main(["--chapter", "8"]) == 0
    assert results.main(["--verify", "1"]) == 0
    said = capsys.readouterr().out
    assert said.count("ok (identical)") == 2 and "train_eval" not in said


def test_the_seed_spread_is_the_row_of_the_same_run_in_another_seed():
    # chapter 8's label B has two rows (equal epochs: all images; equal compute: fewer)
    def result(images, seed, accuracy):
        run = StudyRun("B", TINY, RECIPE.replace(seed=seed), images)
        return SimpleNamespace(run=run, label="B", test_accuracy=accuracy, val_accuracy=[accuracy],
                               history=SimpleNamespace(epochs=[]), metrics={})

    rows = [result(None, 0, 0.50), result(None, 1, 0.52), result(40, 0, 0.30), result(40, 1, 0.34)]
    assert results.spread(rows, rows[0].run, "test_accuracy") == pytest.approx(results.std([0.50, 0.52]))
    assert results.spread(rows, rows[3].run, "test_accuracy") == pytest.approx(results.std([0.30, 0.34]))


def test_chapter_8s_records_are_the_quick_study_the_chapter_reads_in_fp32():
    chapter = results.CHAPTERS["8"]()
    plan = depth_study_plan(DEPTH_STUDY["quick"], DEPTH_STUDY["quick"].train_images)
    assert {run.name for run in chapter.runs} == {run.name for view in VIEWS for run in plan[view]}
    assert len(chapter.runs) == len({run.name for run in chapter.runs}) == 36
    assert chapter.name == depth_study_name("quick") and chapter.precision == "fp32"
    assert chapter.threads == 1 and chapter.fit_options == {}   # the chapter evaluates every epoch
    assert chapter.data_kwargs == DEPTH_STUDY["quick"].data_kwargs(torch.device("cpu"))


def test_a_verify_compares_a_probed_run_s_probe_too(tiny_chapter, monkeypatch, capsys):
    runs = [StudyRun("A-plain", TINY, RECIPE.replace(seed=s), train_eval_images=20,
                     probe_steps=(1, 2) if s == 0 else None) for s in (0, 1)]
    chapter = results.ChapterRecords("tiny", runs, {}, "fp32", fit_options={"eval_every_epoch": False})
    monkeypatch.setattr(results, "CHAPTERS", {"10": lambda: chapter})
    assert results.main(["--chapter", "10"]) == 0
    assert results.main(["--verify", "2"]) == 0
    said = capsys.readouterr().out
    assert said.count("probe (2 steps): ok (identical)") == 1   # the unprobed run has none
    path = tiny_chapter / f"{runs[0].name}.json"
    record = json.loads(path.read_text())
    record["probe"]["grad_norm"]["values"][1][0] *= 1.5
    path.write_text(json.dumps(record))
    assert results.main(["--verify", "2"]) == 1
    assert "probe (2 steps): DIFFERENT (identical)" in capsys.readouterr().out


def test_chapter_10s_records_are_its_50_runs_and_keep_the_probe_of_the_two_it_probes():
    chapter = results.CHAPTERS["10"]()
    settings = RESIDUAL_STUDY["records"]
    steps = probed_steps(settings, settings.train_images)
    assert [run.name for run in chapter.runs] == [run.name for run in residual_study_plan(settings)]
    assert chapter.name == residual_study_name("records") and len(chapter.runs) == 50
    assert chapter.precision == "fp32" and chapter.threads == 1
    probed = [run for run in chapter.runs if run.probe_steps is not None]
    assert [run.label for run in probed] == ["E-8-plain", "E-8-residual"]
    assert {run.seed for run in probed} == {0} and all(run.probe_steps == steps for run in probed)
    assert len(steps) == 47 and steps[0] == 1   # 186 steps: the first, then every 4th
    shipped = ROOT / "results" / chapter.name
    for run in chapter.runs:
        record = read_record(shipped / f"{run.name}.json")
        assert record.precision == "fp32" and record.threads == 1, run.name
        assert (record.probe is not None) == (run.probe_steps is not None), run.name
        if run.probe_steps is not None:   # what the chapter reads instead of training it again
            assert record.probe["steps"] == list(steps)
            assert record.restored_probe(steps).series("grad_norm")[1][0] == "conv1_1"


def test_chapter_4s_records_are_the_slim_head_study_the_chapter_reads_in_fp32():
    chapter = results.CHAPTERS["4"]()
    assert chapter.name == "slim_head" and chapter.runs == slim_head_plan()
    assert len(chapter.runs) == 2 * len(SLIM_HEAD_STUDY.seeds)
    assert chapter.precision == "fp32" and chapter.threads == 1 and chapter.fit_options == {}
    assert chapter.data_kwargs == SLIM_HEAD_STUDY.data_kwargs(torch.device("cpu"))


def test_chapter_5s_records_are_the_quick_profile_s_seeds_in_fp32_on_one_thread():
    from vgg_lib.experiments.training_cifar10 import profile_plan, training_study_name
    from vgg_lib.training.profiles import make_profile

    chapter, profile = results.CHAPTERS["5"](), make_profile("quick", "cpu")
    assert chapter.name == training_study_name("quick") == "training_cifar10_quick"
    assert chapter.runs == profile_plan(profile) and [r.seed for r in chapter.runs] == [0, 1, 2]
    assert [r.keep_network for r in chapter.runs] == [True, False, False]
    assert chapter.precision == "fp32" and chapter.threads == 1 and chapter.fit_options == {}
    assert chapter.data_kwargs == profile.data_kwargs()


def test_chapter_5s_ablation_is_its_own_entry_on_the_profile_s_data_in_fp32_on_one_thread():
    from vgg_lib.experiments.training_cifar10 import ABLATION_STUDY, ablation_plan
    from vgg_lib.training.profiles import make_profile

    chapter, profile = results.CHAPTERS["5-ablation"](), make_profile("quick", "cpu")
    assert chapter.name == ABLATION_STUDY and chapter.runs == ablation_plan(profile)
    assert chapter.precision == "fp32" and chapter.threads == 1 and chapter.fit_options == {}
    assert chapter.data_kwargs == profile.data_kwargs()
    assert sorted(["8", "5-ablation", "5", "4"], key=results.chapter_order) == ["4", "5", "5-ablation", "8"]


def test_chapter_9s_records_are_the_chapter_s_ten_runs_with_their_protocols_in_fp32():
    from vgg_lib.experiments.test_protocol import SETTINGS, protocol_study_name, protocol_study_plan

    chapter = results.CHAPTERS["9"]()
    settings = SETTINGS["quick"]
    assert [run.name for run in chapter.runs] == [run.name for run in protocol_study_plan(settings)]
    assert chapter.runs == protocol_study_plan(settings) and len(chapter.runs) == 10
    assert {run.recipe.scale_jitter for run in chapter.runs} == {None, settings.jitter}
    assert all(run.derive == settings.evaluation(run.recipe.scale_jitter) for run in chapter.runs)
    assert chapter.name == protocol_study_name("quick") and chapter.precision == "fp32"
    assert chapter.threads == 1 and chapter.fit_options == {"eval_every_epoch": False}
    assert chapter.data_kwargs == settings.data_kwargs(torch.device("cpu"))


def test_a_verify_compares_each_protocol_s_accuracy_too():
    run = StudyRun("fixed", TINY, RECIPE)
    protocols = {"flip": {"accuracy": 0.5}, "dense 3 scales": {"accuracy": 0.25}}
    result = SimpleNamespace(run=run, test_accuracy=0.5, val_accuracy=[0.4],
                             history=SimpleNamespace(epochs=[]), metrics={"protocols": protocols})
    numbers = results.final_numbers(result)
    assert numbers["flip accuracy"] == 0.5 and numbers["dense 3 scales accuracy"] == 0.25
    assert set(results.METRICS) < set(numbers)


def test_chapter_8s_plateau_budget_and_its_pilots_are_their_own_entries_in_fp32_on_one_thread():
    from vgg_lib.experiments.depth_study import plateau_budget_plan, plateau_pilot_plan

    settings = DEPTH_STUDY["plateau"]
    chapter, pilots = results.CHAPTERS["8-plateau"](), results.CHAPTERS["8-plateau-pilots"]()
    assert chapter.runs == plateau_budget_plan(settings, 50_000 - settings.validation)
    assert pilots.runs == plateau_pilot_plan(settings)
    assert (chapter.name, pilots.name) == (depth_study_name("plateau"), depth_study_name("plateau") + "_pilot")
    for entry in (chapter, pilots):
        assert (entry.precision, entry.threads, entry.fit_options) == ("fp32", 1, {})  # validation every epoch
        assert entry.data_kwargs == settings.data_kwargs(torch.device("cpu"))
    assert sorted(["11", "8-plateau-pilots", "9", "8-plateau", "10", "8", "4"], key=results.chapter_order) == [
        "4", "8", "8-plateau", "8-plateau-pilots", "9", "10", "11"]
