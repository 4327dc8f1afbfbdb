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
