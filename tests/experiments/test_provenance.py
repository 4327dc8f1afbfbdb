"""vgg_lib.experiments.provenance: where a study's runs came from and what their records say
they ran on and cost, printed from the records, never from the machine that reads them."""

from dataclasses import replace

import pytest
from test_studies import shipped_and_checkpoints, tiny_runs

from vgg_lib.experiments import provenance as provenance_module
from vgg_lib.experiments.provenance import Provenance
from vgg_lib.experiments.studies import run_study

pytestmark = pytest.mark.usefixtures("one_thread")


def test_provenance_counts_the_sources_and_reads_the_rest_from_the_records(tmp_path, monkeypatch):
    shipped, folder, data = shipped_and_checkpoints(tmp_path, monkeypatch)
    results = run_study(tiny_runs((0, 1, 2)), data, folder, progress=False, precision="fp32")
    said = Provenance.of(results, "tiny")
    assert said.sources == {"shipped": 2, "stored": 0, "trained": 1}
    assert said.trained_seconds == results[2].record.seconds
    first, made_on, how, code, cost = said.lines()
    assert first.startswith("3 runs: 2 read from the records the book ships (results/tiny/), "
                            "0 from this machine's earlier runs, 1 trained here in ")
    record = results[0].record
    assert made_on == f"made on: {record.machine['cpu']} ({record.machine['cores']} cores), cpu"
    assert how == f"precision fp32; torch {record.torch}; 1 thread(s) per run"
    assert code.startswith("code: ") and cost.endswith("of CPU time, summed over the runs")
    assert str(said) == "\n".join(said.lines())

    # what the records say, not what this machine is: records of another machine, precision
    # and code, with their own times, are printed as recorded, whatever reads them
    elsewhere = dict(precision="bf16", threads=2, torch="9.9", seconds=600.0, cpu_seconds=1200.0,
                     code={"git": "0123456789abcdef", "modified": True},
                     machine={"cpu": "Some CPU", "cores": 64, "flags": [], "gpu": None})
    again = run_study(tiny_runs((0, 1, 2)), data, folder, progress=False, precision="fp32")
    other = [replace(r, record=replace(r.record, **elsewhere)) for r in again]
    said = Provenance.of(other, "tiny")
    assert said.sources == {"shipped": 2, "stored": 1, "trained": 0} and said.precisions == ["bf16"]
    assert said.lines()[0].endswith("1 from this machine's earlier runs, 0 trained here")
    assert said.lines()[1:] == ["made on: Some CPU (64 cores), cpu",
                                "precision bf16; torch 9.9; 2 thread(s) per run",
                                "code: 0123456789 with changes",
                                f"cost: {provenance_module.format_seconds(1800)} of wall time, "
                                f"{provenance_module.format_seconds(3600)} of CPU time, summed over the runs"]


def test_shipped_records_alone_read_as_shipped_with_their_sums(tmp_path, monkeypatch):
    # book/execution.md's records table reads a results/ folder's records without a study
    shipped, folder, data = shipped_and_checkpoints(tmp_path, monkeypatch)
    records = [r.record for r in run_study(tiny_runs((0, 1, 2)), data, folder, progress=False,
                                           precision="fp32")]
    said = Provenance.shipped(records, "tiny")
    assert said.sources == {"shipped": 3, "stored": 0, "trained": 0}
    assert said.precisions == ["fp32"] and said.threads == [1]
    assert said.seconds == sum(r.seconds for r in records) > 0
    assert said.cpu_seconds == sum(r.cpu_seconds for r in records) > 0
    assert said.lines()[0] == ("3 runs: 3 read from the records the book ships (results/tiny/), "
                               "0 from this machine's earlier runs, 0 trained here")
