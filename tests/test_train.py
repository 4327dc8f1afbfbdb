"""The command line (``python -m vgg_lib.train``, ``vgg-train``): options generated from the
fields of ModelSpec and TrainConfig, help, one-line errors, and the ImageFolder path end to end on
a tiny folder of JPEGs made here (train two steps, checkpoint, resume, evaluate)."""

import json
import os
import subprocess
import sys
from dataclasses import fields

import pytest
import torch

from support import ROOT, make_folder, synthetic_npz
from vgg_lib import ModelSpec, TrainConfig, read_checkpoint
from vgg_lib.experiments.runs import read_record
from vgg_lib.train import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--profile", "quick", "--config", "A", "--width", "0.0625", "--head", "compact", "--val-images", "32",
        "--precision", "fp32", "--device", "cpu", "--no-progress"]


def test_help_explains_every_option_and_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "vgg_lib.train", "--help"], capture_output=True,
                            text=True, timeout=120, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    for option in ("--profile", "--config", "--batch-norm", "--width", "--epochs", "--batch-size",
                   "--lr", "--data", "--checkpoint", "--resume", "--seed", "--precision",
                   "--sync-bn", "--timeout", "torchrun"):
        assert option in result.stdout


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line, no traceback
    return err[0]


@pytest.mark.parametrize("arguments, expected", [
    (["--epochs", "0"], "not a positive whole number"),
    (["--config", "Z"], "invalid choice"),
    (["--precision", "fp8"], "invalid choice"),
    (["--lr", "fast"], "not a number"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, arguments, expected):
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert expected in lines[-1] and "error:" in lines[-1]


def test_bad_data_and_recipe_exit_2_with_one_line(capsys, tmp_path, monkeypatch):
    assert main([*TINY, "--data", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in error_line(capsys)
    (tmp_path / "folder" / "train").mkdir(parents=True)
    assert main([*TINY, "--data", str(tmp_path / "folder")]) == 2
    assert "has no val folder" in error_line(capsys)
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(tmp_path / "missing.npz"))
    assert main([*TINY, "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "VGG_CIFAR10_NPZ is set" in error_line(capsys)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(bad))
    assert main([*TINY, "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "Could not read" in error_line(capsys)
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(synthetic_npz(tmp_path / "tiny.npz")))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"junk")
    assert main([*TINY, "--checkpoint", str(broken), "--resume"]) == 2
    assert "Could not read" in error_line(capsys)
    folder = make_folder(tmp_path / "images", classes=2, train=1, val=1)
    assert main([*TINY, "--data", str(folder), "--scale", "64", "32"]) == 2  # a ValueError
    assert "scale_jitter=(64, 32) (None, or a pair of whole numbers (S_min, S_max) with 1 <= S_min <= S_max" in error_line(capsys)


FOLDER_RUN = [*TINY, "--epochs", "2", "--batch-size", "12", "--lr", "0.05", "--scale", "32", "40",
              "--crop", "32", "--eval-scale", "36", "--workers", "1"]


def test_image_folder_end_to_end_two_steps_checkpoint_resume_evaluate(tmp_path, capsys):
    data = make_folder(tmp_path / "images")
    checkpoint = tmp_path / "run" / "folder.pt"
    run = [*FOLDER_RUN, "--data", str(data), "--checkpoint", str(checkpoint)]
    # 24 training images, global batch 12: two steps make epoch 1, then a checkpoint
    assert main([*run, "--max-steps", "2"]) == 0
    first = json.loads(checkpoint.with_suffix(".json").read_text())
    assert len(first["history"]["steps"]) == 2 and first["history"]["epochs"][0]["epoch"] == 1
    assert torch.load(checkpoint, weights_only=True)["training_state"]["epoch"] == 1
    assert main([*run, "--resume"]) == 0
    out = capsys.readouterr().out
    print(out)
    history = json.loads(checkpoint.with_suffix(".json").read_text())["history"]
    assert len(history["steps"]) == 4 and len(history["epochs"]) == 2
    accuracy = history["epochs"][-1]["val_accuracy"]
    assert accuracy is not None and 0 <= accuracy <= 1
    assert history["config"]["evaluation"] == "centre crop 32 at Q=36, flip"
    assert "FolderData(24 train / 12 val images, 3 classes" in out
    # the resumed run is the uninterrupted one
    straight = tmp_path / "straight.pt"
    assert main([*FOLDER_RUN, "--data", str(data), "--checkpoint", str(straight)]) == 0
    a, b = (torch.load(p, weights_only=True)["model"] for p in (checkpoint, straight))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resuming with another recipe (the image settings are recipe fields) is refused, in one line
    capsys.readouterr()
    assert main([*run, "--resume", "--lr", "0.1"]) == 2
    assert "lr: checkpoint 0.05 vs now 0.1" in error_line(capsys)
    assert main([*run, "--resume", "--scale", "32", "48"]) == 2
    assert "scale_jitter: checkpoint (32, 40) vs now (32, 48)" in error_line(capsys)


def test_image_folder_dense_evaluation_end_to_end(tmp_path, capsys):
    """--eval-protocol dense: the paper's dense multi-scale evaluation of val/ after training."""
    data = make_folder(tmp_path / "images", classes=2, train=6, val=3)
    checkpoint = tmp_path / "dense.pt"
    run = [*TINY, "--epochs", "1", "--batch-size", "12", "--lr", "0.05", "--scale", "32", "48",
           "--crop", "32", "--workers", "0", "--data", str(data), "--checkpoint", str(checkpoint)]
    assert main([*run, "--eval-protocol", "dense", "--eval-scales", "32", "48"]) == 0
    history = json.loads(checkpoint.with_suffix(".json").read_text())["history"]
    assert history["config"]["evaluation"] == "dense Q={32,48}"
    accuracy = history["epochs"][-1]["val_accuracy"]
    assert accuracy is not None and 0 <= accuracy <= 1
    assert main([*run, "--eval-protocol", "dense"]) == 0  # default scales: S_min, middle, S_max
    history = json.loads(checkpoint.with_suffix(".json").read_text())["history"]
    assert history["config"]["evaluation"] == "dense Q={32,40,48}"
    capsys.readouterr()
    assert main([*run, "--eval-scales", "32", "48"]) == 2
    assert "--eval-scales belongs to --eval-protocol dense" in error_line(capsys)
    assert main([*TINY, "--eval-protocol", "dense"]) == 2
    assert "for folders of images" in error_line(capsys)


def test_the_paper_s_shallow_control_trains_from_the_command_line(tmp_path, monkeypatch, capsys):
    # B-5x5 (chapter 8) is a configuration like the others: --config builds it, the checkpoint
    # records it, and its convolutions are 5x5
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(synthetic_npz(tmp_path / "tiny.npz")))
    path = tmp_path / "b5x5.pt"
    arguments = [*TINY, "--config", "B-5x5", "--epochs", "1", "--batch-size", "32",
                 "--checkpoint", str(path)]
    assert main(arguments) == 0, capsys.readouterr().err
    saved = read_checkpoint(path)
    assert saved["model_spec"]["config"] == "B-5x5"
    kernels = {tuple(v.shape[2:]) for k, v in saved["model"].items()
               if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4}
    assert kernels == {(5, 5)}  # B has two 3x3 layers in every block: each pair is one 5x5
    assert "whiten_first_layer" not in saved["recipe"]   # off (left out at its default): a 5x5 first layer


def test_the_quick_profile_s_cifar_tricks_stay_off_where_they_cannot_apply(tmp_path, monkeypatch, capsys):
    """The quick profile whitens a 3x3 first layer and alternates flips of CIFAR-10's tensors: a
    folder of images starts without them (and without the shifted test views), B-5x5 (a 5x5 first
    layer) without the whitening; asked for on the command line, the whitening is refused with
    fit's reason."""
    from vgg_lib.train import _settings
    from vgg_lib.training.profiles import get_profile

    profile = get_profile("quick", device="cpu")
    assert profile.recipe.whiten_first_layer and profile.recipe.alternating_flip and profile.recipe.tta_shift
    parser = build_parser()
    _, recipe = _settings(parser.parse_args(["--profile", "quick"]), profile, folders=True)
    assert not recipe.whiten_first_layer and not recipe.alternating_flip and recipe.tta_shift == 0
    _, recipe = _settings(parser.parse_args(["--profile", "quick", "--config", "B-5x5"]), profile, folders=False)
    assert not recipe.whiten_first_layer and recipe.alternating_flip and recipe.tta_shift == 1
    _, recipe = _settings(parser.parse_args(["--profile", "quick", "--config", "E"]), profile, folders=False)
    assert recipe == profile.recipe
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(synthetic_npz(tmp_path / "tiny.npz")))
    arguments = [*TINY, "--config", "B-5x5", "--epochs", "1", "--batch-size", "32", "--whiten-first-layer"]
    assert main(arguments) == 2
    assert "5x5 convolution" in capsys.readouterr().err


def test_the_network_and_recipe_options_are_generated_from_their_fields():
    """Every field of ModelSpec and TrainConfig (those not set from the data) is an option, with
    the field's own help, and sets that field; nothing else changes what a run computes."""
    parser = build_parser()
    options = {o for action in parser._actions for o in action.option_strings}
    for settings in (ModelSpec, TrainConfig):
        for field in fields(settings):
            flag = "--" + field.name.replace("_", "-")
            assert (flag in options) == field.metadata.get("command_line", True), flag
    args = parser.parse_args(["--crop", "24", "--scale", "28", "36", "--colour-shift", "0.2",
                              "--no-augment", "--tta-flip", "--dropout", "0.3", "--optimizer", "adam"])
    assert (args.crop, args.scale_jitter, args.colour_shift, args.augment, args.tta_flip,
            args.dropout, args.optimizer) == (24, [28, 36], 0.2, False, True, 0.3, "adam")
    assert args.lr is None and args.batch_norm is None  # unset: the profile's
    help_text = parser.format_help()
    assert "Krizhevsky" in help_text and "GLOBAL batch" in help_text


@pytest.mark.parametrize("arguments, expected", [
    (["--width", "0"], "width=0.0: use a positive number"),
    (["--colour-shift", "-1"], "colour_shift=-1.0"),
    (["--crop", "0"], "not a positive whole number"),
    (["--seed", "-2"], "not a whole number >= 0"),
    (["--scale-jitter", "32"], "expected 2 arguments"),
])
def test_generated_options_refuse_bad_values_in_one_line(capsys, arguments, expected):
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    assert stopped.value.code == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_command_writes_a_run_record(tmp_path, monkeypatch):
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(synthetic_npz(tmp_path / "tiny.npz")))
    path = tmp_path / "record-run.pt"
    assert main([*TINY, "--epochs", "1", "--batch-size", "32", "--checkpoint", str(path)]) == 0
    record = read_record(path.with_suffix(".json"))
    assert record.identity["label"] == "record-run" and record.identity["recipe"]["epochs"] == 1
    assert record.identity["data"]["train"]["images"] == 288 - 32 and record.precision == "fp32"
    assert str(tmp_path) not in path.with_suffix(".json").read_text()  # no folders of this machine
