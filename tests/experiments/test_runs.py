"""vgg_lib.experiments.runs: one run-record format. A record says what decided a run (by content,
no folders), what it ran on and what it gave; it is written atomically, reused only when it
matches, and a truncated, corrupt, foreign or mismatched file is an error naming the file, the
field and the fix."""

import json
import math

import pytest

from support import colour_data, tiny_model
from vgg_lib import TrainConfig, TrainingProbe, fit
from vgg_lib.experiments.runs import (FORMAT, RecordError, Stopwatch, code_version, find_record,
                                      identity, make_record, read_record, record_path, recorded,
                                      write_record)

RECIPE = TrainConfig(epochs=1, batch_size=32, lr=0.05)


@pytest.fixture(scope="module")
def trained():
    """(identity, record) of one short run."""
    data, model = colour_data(), tiny_model()
    data.source = "offline file /some/machine/folder/cifar10-full.npz"
    with Stopwatch() as watch:
        history = fit(model, data, RECIPE, progress=False, precision="fp32")
    wanted = identity("A", model.spec, RECIPE, None, data)
    return wanted, make_record(wanted, history, seconds=watch.seconds, cpu_seconds=watch.cpu_seconds,
                               model=model, images_seen=96, macs=123)


def test_a_record_holds_the_run_by_content_and_where_and_how_it_ran(trained, tmp_path):
    wanted, record = trained
    path = write_record(record_path(tmp_path, "A_seed0"), record)
    text = path.read_text()
    stored = json.loads(text)
    assert stored["format"] == FORMAT and stored["seed"] == 0
    assert set(stored["identity"]) == {"label", "spec", "recipe", "train_images", "data"}
    assert set(stored["identity"]["data"]) == {"train", "val", "test", "mean", "std"}
    assert stored["identity"]["data"]["train"] == {"images": 96, "sha256": stored["identity"]["data"]["train"]["sha256"]}
    assert len(stored["identity"]["data"]["test"]["sha256"]) == 64
    assert stored["precision"] == "fp32" and stored["device"] == "cpu" and stored["torch"]
    assert set(stored["machine"]) == {"cpu", "cores", "flags", "gpu"}
    assert set(stored["machine"]["flags"]) <= {"avx2", "avx512_bf16", "amx_bf16"}
    assert len(stored["code"]["sources"]) == 64 and "git" in stored["code"]
    assert stored["seconds"] > 0 and stored["cpu_seconds"] > 0 and stored["threads"] >= 1
    assert len(stored["history"]["epochs"]) == 1 and len(stored["history"]["steps"]) == 3
    assert stored["metrics"]["images_seen"] == 96 and stored["metrics"]["macs"] == 123
    assert stored["metrics"]["test_accuracy"] == record.restored_history().final_test_accuracy
    assert "/some/machine" not in text  # no folder of any machine
    assert read_record(path) == record
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_the_code_version_changes_with_the_sources():
    version = code_version()
    assert len(version["sources"]) == 64 and version["git"] in (None, version["git"])
    assert code_version() is version  # computed once per process


@pytest.mark.parametrize("content, expected", [
    ('{"format": "vgg_lib.run-record/1", "identity": {', r"is not complete JSON \(line 1"),
    ("", "is not complete JSON"),
    ('{"format": "vgg_lib.study-run/1", "result": {}}', r"not a run record of this vgg_lib \(format 'vgg_lib.study-run/1'"),
    ("[1, 2, 3]", r"not a run record.*\(format 'list'"),
    ('{"format": "vgg_lib.run-record/1", "identity": {}}', "does not hold the fields of a run record"),
])
def test_an_unusable_file_names_itself_and_the_fix(tmp_path, content, expected):
    path = tmp_path / "A_seed0.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=expected) as error:
        read_record(path)
    assert str(path) in str(error.value) and f"Delete {path}" in str(error.value)


def test_binary_junk_is_an_error_too(tmp_path):
    path = tmp_path / "junk.json"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(RecordError, match="not a text file"):
        read_record(path)


def test_a_record_of_another_run_names_the_field_and_is_never_reused(trained, tmp_path):
    wanted, record = trained
    write_record(record_path(tmp_path, "A_seed0"), record)
    assert find_record(tmp_path, "A_seed0", wanted) == record
    assert find_record(tmp_path, "missing", wanted) is None
    other = dict(wanted, recipe=dict(wanted["recipe"], lr=0.1))
    with pytest.raises(RecordError, match=r"A_seed0.json records another run.*recipe.lr: stored 0.05 vs now 0.1.*Delete"):
        find_record(tmp_path, "A_seed0", other)
    moved = dict(wanted, data=dict(wanted["data"], test={"images": 40, "sha256": "0" * 64}))
    with pytest.raises(RecordError, match=r"data.test.sha256"):
        find_record(tmp_path, "A_seed0", moved)
    with pytest.raises(RecordError, match="precision: stored 'fp32' vs now 'bf16'"):
        find_record(tmp_path, "A_seed0", wanted, precision="bf16")
    with pytest.raises(ValueError, match="Record name"):
        record_path(tmp_path, "../escape")


def test_recorded_reads_a_matching_record_and_trains_only_what_is_missing(trained, tmp_path):
    wanted, record = trained
    calls = []

    def train():
        calls.append(1)
        return record

    first, reused = recorded(tmp_path, "A_seed0", wanted, train)
    assert (first, reused, calls) == (record, False, [1])
    again, reused = recorded(tmp_path, "A_seed0", wanted, train)
    assert (again, reused, calls) == (record, True, [1])


def test_a_diverged_run_is_stored_as_json_without_nan(tmp_path):
    data, model = colour_data(), tiny_model(batch_norm=False)
    history = fit(model, data, RECIPE.replace(lr=1e6, schedule="constant"), progress=False,
                  precision="fp32")
    assert history.diverged and math.isnan(history.steps[-1])
    record = make_record(identity("A", model.spec, RECIPE, None, data), history, seconds=1.0,
                         cpu_seconds=1.0, model=model)
    path = write_record(tmp_path / "diverged.json", record)
    stored = read_record(path)
    assert stored.history["steps"][-1] is None and stored.metrics["diverged"] is True


def test_a_records_file_reads_line_by_line_and_names_a_bad_line(trained, tmp_path):
    from vgg_lib.experiments.runs import read_records

    record = trained[1]
    path = tmp_path / "records.jsonl"
    line = json.dumps(record.to_dict())
    path.write_text(line + "\n\n" + line + "\n", encoding="utf-8")
    assert [r.seed for r in read_records(path)] == [record.seed, record.seed]
    path.write_text(line + "\n" + line[: len(line) // 2] + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"records.jsonl, line 2: .*Copy .* again"):
        read_records(path)
    path.write_text('{"format": "something else"}\n', encoding="utf-8")
    with pytest.raises(RecordError, match="line 1: not a run record of format"):
        read_records(path)


def test_a_probed_run_s_record_keeps_its_probe_and_reads_it_back(tmp_path):
    data, model = colour_data(), tiny_model()
    probe = TrainingProbe(model, steps=(1, 3))
    with Stopwatch() as watch, probe:
        history = fit(model, data, RECIPE, progress=False, precision="fp32", step_callback=probe)
    record = make_record(identity("A", model.spec, RECIPE, None, data), history,
                         seconds=watch.seconds, cpu_seconds=watch.cpu_seconds, probe=probe)
    read = read_record(write_record(tmp_path / "probed.json", record))
    assert read == record and set(read.probe) == {"steps", "loss", "grad_norm", "weight_norm"}
    again = read.restored_probe((1, 3))
    for field in ("grad_norm", "weight_norm"):
        assert again.series(field) == probe.series(field)   # bit for bit
    # no probe asked for, or other steps than the record kept: none (the caller trains the run)
    assert read.restored_probe(None) is None and read.restored_probe(range(1, 4)) is None
    without = make_record(record.identity, history, seconds=1.0, cpu_seconds=1.0)
    assert without.probe is None and "probe" not in without.to_dict()
    assert without.restored_probe((1, 3)) is None


def test_every_shipped_record_counts_the_images_its_run_trained_on():
    """A record's images_seen is the images of the steps its run took (a plateau run stops before
    its cap of epochs), as the book's tables of compute read it: one batch per recorded step."""
    from support import ROOT

    checked = 0
    for path in sorted((ROOT / "results").glob("*/*.json")):
        record = read_record(path)
        if record.metrics.get("images_seen") is None:
            continue
        batch = record.identity["recipe"]["batch_size"]
        batch = min(batch, record.identity.get("train_images") or batch)
        assert record.metrics["images_seen"] == len(record.history["steps"]) * batch, path.name
        checked += 1
    assert checked > 200
