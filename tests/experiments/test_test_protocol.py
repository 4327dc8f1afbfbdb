"""Chapter 9's settings: the comment beside the protocol tuning record says what its rows show."""

from vgg_lib.experiments.test_protocol import PROTOCOL_TUNING, SETTINGS

IMAGES = 2_000  # validation images per row (the record's comment)
COLUMNS = ("single crop", "flip", "dense Q=40", "dense Q=48", "dense {32,40,48}", "dense {32,48,64}",
           "multi-crop {32,40,48}", "multi-crop {32,48,64}")


def _rows():
    return {name: dict(zip(COLUMNS, accuracies)) for name, *accuracies in PROTOCOL_TUNING}


def _images(difference):
    count = round(difference * IMAGES)
    assert abs(difference * IMAGES - count) < 1e-6, "each accuracy is a whole number of images"
    return count


def test_the_chosen_jitter_is_the_highest_jittered_row_under_every_protocol():
    rows = _rows()
    jittered = [name for name in rows if name.startswith("[")]
    assert len(jittered) == 3 and SETTINGS["quick"].jitter == (32, 40)
    margins = []
    for column in COLUMNS:
        best = max(jittered, key=lambda name: rows[name][column])
        assert best == "[32, 40]", column
        margins.append(_images(rows["[32, 40]"][column] - rows["[32, 48]"][column]))
    assert (min(margins), max(margins)) == (29, 79)  # "ahead of [32, 48] by 29 to 79 images"


def test_the_chosen_scales_margins_are_the_comments():
    rows = _rows()
    assert SETTINGS["quick"].scales == (32, 40, 48)
    dense = [_images(r["dense {32,40,48}"] - r["dense {32,48,64}"]) for r in rows.values()]
    crops = [_images(r["multi-crop {32,40,48}"] - r["multi-crop {32,48,64}"]) for r in rows.values()]
    assert dense == [17, 2, 1, 27]
    assert crops == [48, 19, 22, -18] and list(rows)[-1] == "[32, 64]"


# --- the study: each run's protocol evaluations ride in its record ------------------------------

def test_a_run_s_protocol_evaluations_ride_in_its_record_and_its_identity(tmp_path):
    """A jittered tiny run with a protocol evaluation: its record keeps the six protocols'
    numbers, read back (scale_jitter's tuple against the record's list) without training again;
    the same run evaluated on other test images is another run, an error naming the field."""
    import pytest
    import torch

    from support import colour_data
    from vgg_lib.architecture.model import ModelSpec
    from vgg_lib.experiments.runs import RecordError
    from vgg_lib.experiments.studies import StudyRun, run_study
    from vgg_lib.experiments.test_protocol import ProtocolEvaluation
    from vgg_lib.training.recipe import TrainConfig

    torch.set_num_threads(1)
    spec = ModelSpec(config="A", batch_norm=True, width=0.0625, head="fc-2x2", num_classes=10)
    recipe = TrainConfig(epochs=1, batch_size=32, lr=0.05, crop_padding=0, scale_jitter=(32, 40))
    evaluation = ProtocolEvaluation((32, 40), 36, 2, images=20)
    run = StudyRun("jittered", spec, recipe, derive=evaluation)
    data = colour_data()
    (trained,) = run_study([run], data, tmp_path, shipped=None, progress=False, precision="fp32",
                           eval_every_epoch=False)
    evaluated = trained.metrics["protocols"]
    assert sorted(evaluated) == sorted(["single crop", "flip", "dense 1 scale", "dense 2 scales",
                                        "multi-crop 2x2", "dense + multi-crop"])
    assert all(e["images"] == 20 and 0 <= e["accuracy"] <= 1 for e in evaluated.values())
    assert evaluated["flip"]["views"] == 2 and evaluated["multi-crop 2x2"]["macs"] > evaluated["flip"]["macs"]
    assert trained.record.identity["derived"] == evaluation.identity()
    (read,) = run_study([run], data, tmp_path, shipped=None, progress=False, precision="fp32")
    assert read.source == "stored" and read.metrics["protocols"] == evaluated
    other = StudyRun("jittered", spec, recipe, derive=ProtocolEvaluation((32, 40), 36, 2, images=10))
    with pytest.raises(RecordError, match="derived.protocols.images"):
        run_study([other], data, tmp_path, shipped=None, progress=False)


def test_the_shipped_records_are_the_quick_plan_s_ten_runs_in_fp32_on_one_thread():
    """results/test_protocol_quick/ holds one record per run of the quick plan (fixed and
    jittered, five seeds), of that very run and protocol evaluation (the data's fingerprint
    aside, which chapter 9's nbval run checks: all ten read), made in fp32 on one thread, each
    with every protocol of its suite on the first 2,000 test images."""
    from pathlib import Path

    from support import assert_shipped_records
    from vgg_lib.experiments.test_protocol import protocol_study_name, protocol_study_plan

    settings = SETTINGS["quick"]
    runs = {run.name: run for run in protocol_study_plan(settings)}
    assert len(runs) == 10 and settings.seeds == (0, 1, 2, 3, 4)
    folder = Path(__file__).resolve().parents[2] / "results" / protocol_study_name("quick")
    assert sorted(p.stem for p in folder.glob("*")) == sorted(runs)   # no weights beside them
    records = assert_shipped_records(protocol_study_name("quick"), runs.values(), "fp32", 1)
    for name, run in runs.items():
        record = records[name]
        suite = [p.name for p in settings.suite(run.recipe.scale_jitter)]
        assert sorted(record.metrics["protocols"]) == sorted(suite), name
        assert {e["images"] for e in record.metrics["protocols"].values()} == {2_000}, name
