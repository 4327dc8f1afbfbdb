"""``make results CHAPTER=11`` (vgg_lib/results.py's TransferRecords): chapter 11's seeds made
in parts into the results folder, and verified by computing seeds again; on the tiny study."""

import json

import pytest

from vgg_lib import results
from vgg_lib.experiments.runs import read_record
from vgg_lib.transfer import study

from transfer_support import tiny_settings, tiny_tasks


@pytest.fixture
def tiny_chapter(tmp_path, monkeypatch):
    """Chapter "11" is the tiny study (two seeds); its records go to tmp_path/transfer-tiny."""
    monkeypatch.setattr(results, "CHAPTERS", {"11": lambda: results.TransferRecords(tiny_settings())})
    monkeypatch.setattr(study, "load_tasks", lambda settings: tiny_tasks())
    monkeypatch.setenv("VGG_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("VGG_RECORDS", raising=False)
    return tmp_path / "transfer-tiny"


def test_seeds_are_made_in_parts_then_verified_bit_for_bit(tiny_chapter, capsys):
    with pytest.raises(SystemExit):   # nothing recorded yet: verify says to make them first
        results.main(["--chapter", "11", "--verify", "1"])
    assert "make results CHAPTER=11" in capsys.readouterr().err
    assert results.main(["--chapter", "11", "--part", "2/2"]) == 0
    assert sorted(p.name for p in tiny_chapter.iterdir()) == ["seed1.json", "source_seed1.pt"]
    assert results.main(["--chapter", "11"]) == 0
    assert "1 computed, 1 already recorded" in capsys.readouterr().out
    first = {p.name: p.read_bytes() for p in tiny_chapter.iterdir()}
    assert results.main(["--chapter", "11", "--verify", "1", "--seed", "1"]) == 0
    said = capsys.readouterr().out
    numbers = len(results.transfer_numbers(read_record(tiny_chapter / "seed0.json")))
    assert numbers == 2 + 2 * (1 + 2 * 5) + 4   # source; the probes; fine-tune and scratch
    assert "verifying 1 of 2 runs (seed 1)" in said
    assert f"{numbers} of {numbers} numbers ok (identical)" in said and "DIFFERENT" not in said
    assert {p.name: p.read_bytes() for p in tiny_chapter.iterdir()} == first   # nothing written


def test_verify_names_the_number_a_seed_no_longer_reproduces(tiny_chapter, capsys):
    assert results.main(["--chapter", "11"]) == 0
    for path in tiny_chapter.glob("*.json"):
        record = json.loads(path.read_text())
        record["metrics"]["training"][0]["test"] += 0.01
        path.write_text(json.dumps(record))
    assert results.main(["--chapter", "11", "--verify", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("DIFFERENT (identical)") == 1
    assert "fine-tune 2/class: recorded" in captured.out
    assert "1 numbers did not reproduce" in captured.err


def test_on_another_machine_a_seed_is_compared_within_the_seed_spread(tiny_chapter, capsys,
                                                                      monkeypatch):
    assert results.main(["--chapter", "11"]) == 0
    here = results.machine()
    monkeypatch.setattr(results, "machine", lambda: dict(here, cpu="another CPU"))
    assert results.main(["--chapter", "11", "--verify", "1"]) == 0
    assert "numbers ok (within 4 seed stds)" in capsys.readouterr().out


def test_chapter_11s_records_are_the_quick_seeds_the_chapter_reads_in_fp32_on_one_thread():
    from vgg_lib.experiments.transfer_features import SETTINGS

    chapter = results.CHAPTERS["11"]()
    assert chapter.settings == SETTINGS["quick"] and chapter.settings.precision == "fp32"
    assert chapter.name == study.study_folder(SETTINGS["quick"]).name == "transfer-quick"
    assert chapter.threads == 1
