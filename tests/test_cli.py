"""The command line (``python -m vgg_lib.train``, ``vgg-train``): help, one-line errors, and the
ImageFolder path end to end on a tiny folder of JPEGs made here (train two steps, checkpoint,
resume, evaluate)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vgg_lib.training.command import main
from vgg_lib.training.imagefolder import (CentreCrop, FolderAugment, GlobalBatches,
                                          load_image_folder, train_transform)

ROOT = Path(__file__).resolve().parents[1]
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
    from test_distributed import synthetic_npz

    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(synthetic_npz(tmp_path / "tiny.npz")))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"junk")
    assert main([*TINY, "--checkpoint", str(broken), "--resume"]) == 2
    assert "Could not read" in error_line(capsys)
    folder = make_folder(tmp_path / "images", classes=2, train=1, val=1)
    assert main([*TINY, "--data", str(folder), "--scale", "64", "32"]) == 2  # a ValueError
    assert "scale_max=32 is below scale_min=64" in error_line(capsys)


def make_folder(root, classes=3, train=8, val=4, size=(40, 48)):
    """A tiny ImageFolder: class c is a JPEG whose colour channel c is bright, with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 90, (*size, 3))
                pixels[..., c] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


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
    assert history["config"]["evaluation"] == "CentreCrop(Q=36, crop=32, flip=True)"
    assert "FolderData(24 train / 12 val images, 3 classes" in out
    # the resumed run is the uninterrupted one
    straight = tmp_path / "straight.pt"
    assert main([*FOLDER_RUN, "--data", str(data), "--checkpoint", str(straight)]) == 0
    a, b = (torch.load(p, weights_only=True)["model"] for p in (checkpoint, straight))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resuming with another recipe or other image settings is refused, in one line
    capsys.readouterr()
    assert main([*run, "--resume", "--lr", "0.1"]) == 2
    assert "lr: checkpoint 0.05 vs now 0.1" in error_line(capsys)
    assert main([*run, "--resume", "--scale", "32", "48"]) == 2
    assert "other image settings" in error_line(capsys)


def test_scale_jittering_crops_flips_and_colour_shift(tmp_path):
    settings = FolderAugment(scale_min=32, scale_max=64, crop=24, eval_scale=40)
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    crops = [train_transform(image, settings, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(c.shape == (3, 24, 24) and c.dtype == torch.uint8 for c, _ in crops)
    assert len({tuple(a.tolist()) for _, a in crops}) == 20  # a colour shift per image
    again = train_transform(image, settings, torch.Generator().manual_seed(3))
    assert torch.equal(again[0], crops[3][0])  # the image's seed decides everything
    assert CentreCrop(40, 24).transform(image).shape == (3, 24, 24)
    with pytest.raises(ValueError, match="larger than the shorter side"):
        FolderAugment(scale_min=200, crop=224)


def test_global_batches_split_among_ranks_like_one_process():
    class Rank:
        def __init__(self, rank):
            self.rank, self.world_size = rank, 2

        def shard(self, *tensors):
            half = len(tensors[0]) // 2
            return tuple(t[self.rank * half:(self.rank + 1) * half] for t in tensors)

    one = list(GlobalBatches(40, 8, seed=1))
    two = [list(GlobalBatches(40, 8, seed=1, distributed=Rank(r))) for r in (0, 1)]
    assert len(one) == 5 and all(a + b == c for a, b, c in zip(*two, one))


def test_load_image_folder_lists_classes(tmp_path):
    data = load_image_folder(make_folder(tmp_path / "f", classes=2, train=2, val=1))
    assert data.classes == ["class0", "class1"] and len(data.train) == 4 and len(data.val) == 2


def test_image_folder_dense_evaluation_end_to_end(tmp_path, capsys):
    """--eval-protocol dense: the paper's dense multi-scale evaluation of val/ after training."""
    data = make_folder(tmp_path / "images", classes=2, train=6, val=3)
    checkpoint = tmp_path / "dense.pt"
    run = [*TINY, "--epochs", "1", "--batch-size", "12", "--lr", "0.05", "--scale", "32", "48",
           "--crop", "32", "--workers", "0", "--data", str(data), "--checkpoint", str(checkpoint)]
    assert main([*run, "--eval-protocol", "dense", "--eval-scales", "32", "48"]) == 0
    history = json.loads(checkpoint.with_suffix(".json").read_text())["history"]
    assert history["config"]["evaluation"] == "DenseMultiScale(Q=[32, 48], flip=True)"
    accuracy = history["epochs"][-1]["val_accuracy"]
    assert accuracy is not None and 0 <= accuracy <= 1
    assert main([*run, "--eval-protocol", "dense"]) == 0  # default scales: S_min, middle, S_max
    history = json.loads(checkpoint.with_suffix(".json").read_text())["history"]
    assert history["config"]["evaluation"] == "DenseMultiScale(Q=[32, 40, 48], flip=True)"
    capsys.readouterr()
    assert main([*run, "--eval-scales", "32", "48"]) == 2
    assert "--eval-scales belongs to --eval-protocol dense" in error_line(capsys)
    assert main([*TINY, "--eval-protocol", "dense"]) == 2
    assert "for folders of images" in error_line(capsys)


def test_the_paper_s_shallow_control_trains_from_the_command_line(tmp_path, monkeypatch, capsys):
    # B-5x5 (chapter 8) is a configuration like the others: --config builds it, the checkpoint
    # records it, and its convolutions are 5x5
    from test_distributed import synthetic_npz

    from vgg_lib.training.checkpoint import read_checkpoint

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
