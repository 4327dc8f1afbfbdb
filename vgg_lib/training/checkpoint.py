"""Checkpoints that survive a killed process and load without running pickled code.

``save_checkpoint`` writes to a temporary file in the same folder and renames it over the old
one with ``os.replace`` (atomic on one file system): a run killed mid-save leaves the previous
checkpoint intact, never half a file. ``load_checkpoint`` uses ``torch.load(weights_only=True)``,
which only rebuilds tensors and plain containers, so everything stored here is tensors, numbers,
strings, lists and dicts.
"""

import os
import pickle
import struct
import zipfile
from pathlib import Path

import torch

from ..atomic_write import write_atomically
from ..architecture.spec import ModelSpec
from ..architecture.weights import load_state_dict_checked

FORMAT = "vgg_lib.checkpoint/2"  # /2 stores the model's spec and the training recipe
READABLE_FORMATS = ("vgg_lib.checkpoint/1", FORMAT)
ENV_CHECKPOINT_DIR = "VGG_CHECKPOINT_DIR"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit what it is loaded into."""


def default_checkpoint_dir():
    """``VGG_CHECKPOINT_DIR`` if set (in Colab: a folder on the mounted Google Drive), else
    ``checkpoints/`` in the book's repository when vgg_lib runs from a checkout (git-ignored),
    else ``checkpoints/`` in the current folder. The folder is created when first saved to."""
    if os.environ.get(ENV_CHECKPOINT_DIR):
        return Path(os.environ[ENV_CHECKPOINT_DIR]).expanduser()
    repository = Path(__file__).resolve().parents[2]  # vgg_lib/training/checkpoint.py
    if (repository / "_toc.yml").is_file() and (repository / "vgg_lib").is_dir():
        return repository / "checkpoints"
    return Path.cwd() / "checkpoints"


def keep_checkpoints_on_drive(folder="vgg_book/checkpoints", mount_point="/content/drive"):
    """In Google Colab: mount Google Drive (Colab asks you to log in) and point
    ``VGG_CHECKPOINT_DIR`` at ``MyDrive/<folder>``, so checkpoints survive a disconnected
    session. Elsewhere it changes nothing and says where checkpoints go. Returns the folder.

    The chapters call it only when the reader sets their ``KEEP_CHECKPOINTS_ON_DRIVE`` flag, before
    the first training cell: a login prompt must never interrupt "Run all"."""
    import sys

    if "google.colab" not in sys.modules:
        print(f"Not in Google Colab: checkpoints stay in {default_checkpoint_dir()}.")
        return default_checkpoint_dir()
    from google.colab import drive

    drive.mount(mount_point)
    target = Path(mount_point) / "MyDrive" / folder
    target.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_CHECKPOINT_DIR] = str(target)
    print(f"Checkpoints go to {target} on your Google Drive.")
    return target


def _history_dict(history):
    if history is None or isinstance(history, dict):
        return history
    return history.to_dict()


def check_checkpoint_folder(path):
    """Fail now, not after an epoch of training, when ``path``'s folder cannot be written."""
    folder = Path(path).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError as error:
        writable, reason = False, f" ({error.strerror})"
    else:
        reason = ""
    if not writable:
        raise CheckpointError(f"Cannot write checkpoints into {folder}{reason}. Pick a writable "
                              f"folder: set {ENV_CHECKPOINT_DIR} or pass another checkpoint_path.")


def save_checkpoint(path, model, optimizer=None, scheduler=None, history=None, extra=None,
                    training_state=None, recipe=None):
    """Atomically save the model's state dict, its ``ModelSpec`` (``model.spec``, when it was
    built from one) and, when given, the optimizer's and the scheduler's state, a ``History``
    (stored as a plain dict), the ``recipe`` (a ``TrainConfig``), ``extra`` (your own plain data)
    and ``training_state`` (what ``fit`` needs to resume: RNG states, epoch...)."""
    spec = getattr(model, "spec", None)
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_spec": spec.to_dict() if spec is not None else None,
        "recipe": recipe.to_dict() if recipe is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": _history_dict(history),
        "extra": extra,
        "training_state": training_state,
    }
    return write_atomically(path, lambda handle: torch.save(payload, handle))


def read_checkpoint(path, map_location="cpu"):
    """The checkpoint's contents as a dict (``weights_only=True``), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train first (fit(..., checkpoint_path=...)) "
                              "or check the folder (default_checkpoint_dir() is "
                              f"{default_checkpoint_dir()}).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError,
            ValueError, struct.error) as error:  # struct.error: a few junk bytes (legacy format)
        raise CheckpointError(
            f"Could not read {path} as a checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). The file is truncated, "
            "corrupt, or holds Python objects that weights_only=True refuses to unpickle. "
            "Delete it and train again."
        ) from error
    if isinstance(payload, dict) and "model" not in payload and payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()):
        payload = {"format": "state_dict", "model": payload}  # a bare model.state_dict() file
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} holds a {type(payload).__name__} without a 'model' entry; "
                              "it was not written by save_checkpoint or torch.save(model.state_dict()).")
    written_by = payload.get("format")
    if written_by != "state_dict" and written_by not in READABLE_FORMATS:
        raise CheckpointError(f"{path} has format {written_by!r}; this vgg_lib reads "
                              f"{', '.join(READABLE_FORMATS)}. Update vgg_lib (a newer format) "
                              "or train again.")
    return payload


def load_checkpoint(path, model, optimizer=None, scheduler=None, payload=None):
    """Load a checkpoint into ``model`` (and ``optimizer`` / ``scheduler`` when given) and
    return its contents as a dict (keys: model, model_spec, recipe, optimizer, scheduler,
    history, extra, training_state). A checkpoint of another configuration raises a
    ``ValueError`` saying what differs. ``payload``: the contents already read with
    ``read_checkpoint``, so the file is not read twice."""
    if payload is None:
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        payload = read_checkpoint(path, map_location=device)
    load_state_dict_checked(model, payload["model"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if payload.get(name) is None:
            raise CheckpointError(f"{path} holds no {name} state; load it without one or "
                                  "save the checkpoint with it.")
        try:
            target.load_state_dict(payload[name])
        except (ValueError, KeyError) as error:
            raise CheckpointError(f"The {name} state in {path} does not fit this {name} "
                                  f"({error}). Was it saved for another model?") from error
    return payload


def load_model(path, device=None):
    """The model a checkpoint holds, rebuilt from the ``ModelSpec`` stored in it, with its
    weights, in eval mode, on ``device`` (default: the CPU)."""
    payload = read_checkpoint(path)
    if not payload.get("model_spec"):
        raise CheckpointError(f"{path} stores weights but no model spec, so the model cannot be "
                              "rebuilt from it alone; build the model yourself and use "
                              "load_checkpoint(path, model).")
    try:
        spec = ModelSpec.from_dict(payload["model_spec"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"The model spec stored in {path} is not readable: {error}") from error
    model = spec.build(init_weights=False)
    load_state_dict_checked(model, payload["model"])
    return model.to(device or "cpu").eval()
