"""Chapter 6's settings and runs (vgg_lib.experiments.batch_norm): the plan of its 50 quick runs,
and the records the book ships of them (results/batch_norm_quick/)."""

from pathlib import Path

import pytest
import torch

from support import assert_shipped_records
from vgg_lib import results
from vgg_lib.experiments.batch_norm import (SETTINGS, batch_norm_plan, batch_norm_study_name,
                                            donor_trained_again)
from vgg_lib.training.diagnostics import FIELDS

QUICK = SETTINGS["quick"]
SHIPPED = Path(__file__).resolve().parents[2] / "results" / batch_norm_study_name("quick")


def unused_donor(seed):
    raise AssertionError("the plan builds no network until a run trains")


def test_the_quick_plan_is_the_chapter_s_grid_five_seeds_each():
    plan = batch_norm_plan(QUICK, unused_donor)
    assert QUICK.long.seeds == QUICK.short.seeds == (0, 1, 2, 3, 4)
    assert [len(plan[k]) for k in ("sweep", "depth", "remedies")] == [20, 20, 10]
    names = [run.name for runs in plan.values() for run in runs]
    assert len(set(names)) == 50   # one folder holds them all
    assert {(r.label, r.spec.config, r.spec.batch_norm) for r in plan["depth"]} == {
        ("A, plain", "A", False), ("A, batch norm", "A", True),
        ("E, plain", "E", False), ("E, batch norm", "E", True)}
    assert {r.recipe.lr for r in plan["sweep"]} == set(QUICK.lrs)
    assert all(r.recipe.lr == QUICK.deep_lr for r in plan["depth"] + plan["remedies"])
    probed = {(r.label, r.seed) for runs in plan.values() for r in runs if r.probe_steps}
    assert probed == {("E, plain", 0), ("E, batch norm", 0), ("paper init", 0), ("paper init + A", 0)}
    assert QUICK.probe_steps == [1, 2, 5, 10, 20, 50, 100, 128] and QUICK.short_steps == 128


def test_the_paper_start_and_the_transfer_from_a_build_the_network_the_record_names():
    plan = batch_norm_plan(QUICK, lambda seed: QUICK.build("A"))
    for label in ("paper init", "paper init + A"):
        run = next(r for r in plan["remedies"] if r.label == label)
        model = run.build(run.seed)
        assert model.spec == run.spec == QUICK.spec("E")
    paper = QUICK.build("E", init="paper")
    assert float(paper.features[0].weight.detach().std()) == pytest.approx(0.01 / QUICK.width ** 0.5, rel=0.2)


def test_chapter_6s_records_are_the_plan_on_each_budget_s_data_in_fp32():
    chapter = results.CHAPTERS["6"]()
    sets = chapter.parts
    assert chapter.name == "batch_norm_quick" and chapter.threads == 1
    plan = batch_norm_plan(QUICK, unused_donor)
    assert [len(s.runs) for s in sets] == [20, 30]
    assert [r.name for r in sets[0].runs] == [r.name for r in plan["sweep"]]
    assert [r.name for r in sets[1].runs] == [r.name for r in plan["depth"] + plan["remedies"]]
    cpu = torch.device("cpu")
    assert [s.data_kwargs for s in sets] == [QUICK.long.data_kwargs(cpu), QUICK.short.data_kwargs(cpu)]
    assert all(s.name == "batch_norm_quick" and s.precision == "fp32" and s.threads == 1 for s in sets)
    assert callable(donor_trained_again(QUICK))   # loads its data on first use only


def test_the_shipped_records_are_the_quick_plan_s_runs_in_fp32_on_one_thread():
    """results/batch_norm_quick/ holds one record per run of the quick plan, of that very run
    (the data's fingerprint aside, which chapter 6's nbval run checks: every run read), made in
    fp32 on one thread, the first seed's E runs with their probes."""
    plan = batch_norm_plan(QUICK, unused_donor)
    runs = {run.name: run for views in plan.values() for run in views}
    records = assert_shipped_records(SHIPPED.name, runs.values(), "fp32", 1)
    for name, run in runs.items():
        record = records[name]
        assert (record.probe is not None) == (run.probe_steps is not None), name
        if record.probe is not None:   # every field of it: the chapter plots activations too
            assert record.probe["steps"] == QUICK.probe_steps, name
            probe = record.restored_probe(run.probe_steps)
            assert probe.fields == FIELDS and probe.series("dead_fraction")[0] == QUICK.probe_steps, name
