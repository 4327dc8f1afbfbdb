"""Atomic checkpoints, weights_only loading and the errors for files that do not fit."""

from pathlib import Path

import pytest
import torch

from vgg_lib.training import checkpoint as checkpoint_module
from vgg_lib.training.checkpoint import (CheckpointError, default_checkpoint_dir, load_checkpoint,
                                read_checkpoint, save_checkpoint)
from vgg_lib.training.history import History
from vgg_lib.architecture.model import vgg


pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(config="A", seed=0, **options):
    torch.manual_seed(seed)
    return vgg(config, batch_norm=True, head="compact", width=0.125, num_classes=10, **options)


def test_round_trip_with_optimizer_history_and_extra(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    history = History({"lr": 0.1})
    history.epochs.append(dict(epoch=1, train_loss=1.5, train_accuracy=0.4, val_loss=None,
                               val_accuracy=None, lr=0.1, seconds=1.0, images_per_second=2.0))
    path = save_checkpoint(tmp_path / "run.pt", model, optimizer, history=history,
                           extra={"config": "A", "width": 0.125})
    # the file is plain tensors and containers: torch's safe loader reads it directly
    raw = torch.load(path, weights_only=True)
    assert raw["extra"] == {"config": "A", "width": 0.125}
    assert History.from_dict(raw["history"]).epochs == history.epochs

    other = small_model(seed=1)
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    loaded = load_checkpoint(path, other, other_optimizer)
    for key, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key
    assert loaded["extra"]["config"] == "A"
    theirs = other_optimizer.state_dict()["state"]
    for index, state in optimizer.state_dict()["state"].items():
        assert torch.equal(state["momentum_buffer"], theirs[index]["momentum_buffer"])


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    first = small_model(seed=0)
    save_checkpoint(path, first)
    before = path.read_bytes()

    real_save = torch.save

    def dying_save(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.seek(handle.tell() // 2)
        handle.truncate()  # half written ...
        raise KeyboardInterrupt  # ... when the process is interrupted

    monkeypatch.setattr(checkpoint_module.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, small_model(seed=1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left
    restored = small_model(seed=2)
    load_checkpoint(path, restored)
    assert torch.equal(restored.features[0].weight, first.features[0].weight)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt", small_model())
    path = tmp_path / "run.pt"
    save_checkpoint(path, small_model())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="Could not read .*run.pt"):
        load_checkpoint(path, small_model())
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="Could not read"):
        read_checkpoint(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "extra": Path("x")}, path)  # an arbitrary Python object
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(path)


def test_checkpoint_of_another_configuration(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", small_model("A"))
    with pytest.raises(ValueError, match="does not fit the model"):
        load_checkpoint(path, small_model("D"))


def test_bare_state_dict_files_load(tmp_path):
    model = small_model(seed=3)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    other = small_model(seed=4)
    load_checkpoint(tmp_path / "weights.pt", other)
    assert torch.equal(other.classifier[0].weight, model.classifier[0].weight)


def test_default_checkpoint_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VGG_CHECKPOINT_DIR", str(tmp_path / "drive"))
    assert default_checkpoint_dir() == tmp_path / "drive"
    monkeypatch.delenv("VGG_CHECKPOINT_DIR")
    repository = Path(checkpoint_module.__file__).resolve().parents[2]
    assert default_checkpoint_dir() == repository / "checkpoints"


def test_keep_checkpoints_on_drive_mounts_only_in_colab(monkeypatch, tmp_path, capsys):
    import sys
    import types

    from vgg_lib.training.checkpoint import keep_checkpoints_on_drive

    monkeypatch.delenv("VGG_CHECKPOINT_DIR", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert keep_checkpoints_on_drive() == default_checkpoint_dir()
    assert "Not in Google Colab" in capsys.readouterr().out
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setenv("VGG_CHECKPOINT_DIR", "unchanged")  # monkeypatch restores it afterwards
    folder = keep_checkpoints_on_drive(mount_point=str(tmp_path / "drive"))
    assert mounted == [str(tmp_path / "drive")]
    assert folder == tmp_path / "drive" / "MyDrive" / "vgg_book" / "checkpoints" and folder.is_dir()
    assert default_checkpoint_dir() == folder


# --- the format and the content are checked before anything is loaded ----------------------

def _rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is ...:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("written_by, expected", [
    ("vgg_lib.checkpoint/3", r"written by a newer vgg_lib \(format 'vgg_lib.checkpoint/3'\).*pip install -U"),
    ("someone.else/1", r"format 'someone.else/1', which is not a vgg_lib checkpoint format"),
    (..., r"no 'format' field"),
])
def test_an_unknown_or_newer_format_is_refused(tmp_path, written_by, expected):
    path = _rewrite(save_checkpoint(tmp_path / "run.pt", small_model()), format=written_by)
    with pytest.raises(CheckpointError, match=expected):
        read_checkpoint(path)


@pytest.mark.parametrize("changes, expected", [
    (dict(model=[1, 2, 3]), r"'model' is a list, not a state dict"),
    (dict(model=torch.zeros(3)), r"'model' is a Tensor, not a state dict"),
    (dict(model={"features.0.weight": 1.5}), r"'model' is not a state dict: 1 entr.*'features.0.weight' \(float\)"),
    (dict(history=[1.0, 2.0]), r"'history' is a list, not a dict"),
    (dict(training_state="epoch 3"), r"'training_state' is a str, not a dict"),
])
def test_malformed_content_is_a_checkpoint_error(tmp_path, changes, expected):
    path = _rewrite(save_checkpoint(tmp_path / "run.pt", small_model()), **changes)
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path, small_model())


def test_the_training_state_is_checked_for_what_resuming_needs():
    whole = {"recipe": {"epochs": 3}, "history": {"epochs": []},
             "training_state": dict(epoch=1, step=3, train_images=96, scaler={}, data_generator=None,
                                    rng={"python": 0, "numpy": 0, "torch": 0})}
    checkpoint_module.check_training_state(whole, "run.pt")
    for key, expected in (("rng", r"lacks rng"), ("epoch", "lacks epoch"), ("scaler", "lacks scaler")):
        damaged = dict(whole, training_state={k: v for k, v in whole["training_state"].items() if k != key})
        with pytest.raises(CheckpointError, match=expected):
            checkpoint_module.check_training_state(damaged, "run.pt")
    with pytest.raises(CheckpointError, match=r"lacks rng\['numpy'\]"):
        checkpoint_module.check_training_state(
            dict(whole, training_state=dict(whole["training_state"], rng={"python": 0, "torch": 0})), "run.pt")
    with pytest.raises(CheckpointError, match="lacks history"):
        checkpoint_module.check_training_state(dict(whole, history=None), "run.pt")
    with pytest.raises(CheckpointError, match="no training state"):
        checkpoint_module.check_training_state(dict(whole, training_state=None), "run.pt")


# --- the checkpoint folder, checked before training; leftovers of killed writes ------------

def test_an_unwritable_checkpoint_folder_names_the_setting(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("VGG_CHECKPOINT_DIR", str(tmp_path / "a-file"))
    with pytest.raises(CheckpointError, match=r"Cannot write checkpoints into .*a-file.*"
                                              r"VGG_CHECKPOINT_DIR is '.*a-file'.*set VGG_CHECKPOINT_DIR"):
        checkpoint_module.check_checkpoint_folder(default_checkpoint_dir() / "run.pt")
    with pytest.raises(CheckpointError, match=r"is a folder; name a file in it, e\.g\. .*run\.pt"):
        checkpoint_module.check_checkpoint_folder(tmp_path)


def _dead_pid():
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporary_files_of_killed_writes_are_removed_by_the_next_write(tmp_path):
    import os
    import time

    from vgg_lib.atomic_write import temporary_path, write_atomically

    path = tmp_path / "run.pt"
    dead, alive, old = (temporary_path(path, pid) for pid in (_dead_pid(), os.getppid(), os.getppid() + 10**6))
    for leftover in (dead, alive, old):
        leftover.write_bytes(b"half a checkpoint")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    other = tmp_path / ".other.pt.123.tmp"
    other.write_bytes(b"someone else's")
    write_atomically(path, lambda handle: handle.write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, alive.name, other.name])
    alive.unlink()
    dead.write_bytes(b"left by a run killed mid-save")
    checkpoint_module.check_checkpoint_folder(path)  # what fit (and so a resume) calls first
    assert not dead.exists() and path.read_bytes() == b"new"
