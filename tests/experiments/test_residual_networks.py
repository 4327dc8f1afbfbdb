"""Chapter 10's settings (vgg_lib.experiments.residual_networks): the plan of plain against
residual runs, reading their end-of-training figures, the gradient profile at initialisation."""

import json
from pathlib import Path

import pytest
import torch

from vgg_lib.experiments.residual_networks import (RESIDUAL_STUDY, ResidualExperiment,
                                                   chapter_profile, depth_of, final,
                                                   gradient_profile, residual_study_folder,
                                                   residual_study_plan, study_label, study_spec)
from vgg_lib.experiments.runs import record_path
from vgg_lib.experiments.settings import Experiment

ROOT = Path(__file__).resolve().parents[2]


def test_both_profiles_are_experiments_of_one_recipe_over_plain_and_residual_columns():
    for name, settings in RESIDUAL_STUDY.items():
        assert isinstance(settings, ResidualExperiment) and isinstance(settings, Experiment), name
        runs = residual_study_plan(settings)
        assert len(runs) == len(settings.configs) * 2 * len(settings.seeds)
        assert {r.recipe.replace(seed=0) for r in runs} == {settings.recipe.replace(seed=0)}
        assert {r.train_eval_images for r in runs} == {settings.train_eval_images}
        assert {r.spec.shortcuts for r in runs} == {"none", "identity"}


def test_the_quick_profile_is_the_records_from_scratch_subset_run_for_run():
    quick, records = (residual_study_plan(RESIDUAL_STUDY[name]) for name in ("quick", "records"))
    by_name = {run.name: run for run in records}
    assert len(records) == 50 and all(by_name[run.name] == run for run in quick)
    assert all(by_name[run.name].train_eval_images == run.train_eval_images for run in quick)
    assert RESIDUAL_STUDY["records"].precision == "fp32" and RESIDUAL_STUDY["records"].threads == 1
    assert residual_study_folder("quick") == residual_study_folder("records")
    assert RESIDUAL_STUDY["quick"].data_kwargs() == RESIDUAL_STUDY["records"].data_kwargs()


def test_the_chapter_reads_the_records_only_when_all_of_them_are_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("VGG_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    assert chapter_profile("quick") == "quick" and chapter_profile("full") == "full"
    runs = residual_study_plan(RESIDUAL_STUDY["records"])
    for run in runs[:-1]:
        path = record_path(tmp_path / "residual_networks", run.name)
        path.parent.mkdir(exist_ok=True)
        path.write_text("{}")
    assert chapter_profile("quick") == "quick"  # one missing
    record_path(tmp_path / "residual_networks", runs[-1].name).write_text("{}")
    assert chapter_profile("quick") == "records"
    # recorded on other data (by content): the reader's data trains the quick profile
    real = sorted((ROOT / "results" / "residual_networks").glob("*.json"))[0].read_text()
    record_path(tmp_path / "residual_networks", runs[0].name).write_text(real)
    stored = json.loads(real)["identity"]["data"]

    class Data:
        def __init__(self, fingerprint):
            self.fingerprint = lambda: fingerprint

    assert chapter_profile("quick", Data(stored)) == "records"
    assert chapter_profile("quick", Data(dict(stored, train={"count": 1}))) == "quick"
    monkeypatch.setenv("VGG_RECORDS", "off")
    assert chapter_profile("quick") == "quick"


def test_only_the_deepest_first_seed_runs_carry_the_probe():
    settings = RESIDUAL_STUDY["quick"]
    probed = [r for r in residual_study_plan(settings, probe_steps=(1, 2)) if r.probe_steps]
    assert [r.label for r in probed] == [study_label(settings.configs[-1], k)
                                         for k in ("none", "identity")]
    assert {r.seed for r in probed} == {settings.seeds[0]}


def test_labels_specs_and_depths():
    settings = RESIDUAL_STUDY["quick"]
    assert study_label("E-8", "identity") == "E-8-residual"
    assert study_spec("E", "identity", settings).shortcuts == "identity"
    assert study_spec("E", "none", settings).width == settings.spec.width
    assert (depth_of("A"), depth_of("E"), depth_of("E-8")) == (9, 17, 29)


def test_final_reads_each_label_in_seed_order():
    class Result:
        def __init__(self, label, seed, loss):
            self.label, self.seed, self.train_eval_loss, self.test_accuracy = label, seed, [9, loss], loss

    results = [Result("A-plain", 1, 0.5), Result("A-plain", 0, 0.7), Result("E-plain", 0, 1.0)]
    assert final(results, "A-plain", "train_eval_loss") == [0.7, 0.5]
    assert final(results, "A-plain", "test_accuracy") == [0.7, 0.5]
    with pytest.raises(KeyError, match="No runs labelled 'D-plain'"):
        final(results, "D-plain", "train_eval_loss")


def test_gradient_profile_gives_every_convolution_for_every_seed():
    spec = RESIDUAL_STUDY["quick"].spec.replace(config="A", width=0.0625)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    names, norms = gradient_profile(spec, x, y, seeds=(0, 1))
    assert names[0] == "conv1_1" and len(names) == 8
    assert len(norms) == 2 and all(len(n) == 8 and min(n) > 0 for n in norms)
    assert norms[0] != norms[1]  # another seed, other starting weights
    assert gradient_profile(spec, x, y, seeds=(0,))[1][0] == norms[0]  # seeded: reproducible
