"""Checkpoints that survive a killed process and load without running pickled code.

``save_checkpoint`` writes to a temporary file in the same folder and renames it over the old
one with ``os.replace`` (atomic on one file system): a run killed mid-save leaves the previous
checkpoint intact, never half a file. ``load_checkpoint`` uses ``torch.load(weights_only=True)``,
which only rebuilds tensors and plain containers, so everything stored here is tensors, numbers,
strings, lists and dicts.
"""

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .atomic_write import write_atomically
from .weights import load_state_dict_checked

FORMAT = "vgg_lib.checkpoint/1"
ENV_CHECKPOINT_DIR = "VGG_CHECKPOINT_DIR"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit what it is loaded into."""


def default_checkpoint_dir():
    """``VGG_CHECKPOINT_DIR`` if set (in Colab: a folder on the mounted Google Drive), else
    ``checkpoints/`` in the book's repository when vgg_lib runs from a checkout (git-ignored),
    else ``checkpoints/`` in the current folder. The folder is created when first saved to."""
    if os.environ.get(ENV_CHECKPOINT_DIR):
        return Path(os.environ[ENV_CHECKPOINT_DIR]).expanduser()
    repository = Path(__file__).resolve().parent.parent
    if (repository / "_toc.yml").is_file() and (repository / "vgg_lib").is_dir():
        return repository / "checkpoints"
    return Path.cwd() / "checkpoints"


def _history_dict(history):
    if history is None or isinstance(history, dict):
        return history
    return history.to_dict()


def save_checkpoint(path, model, optimizer=None, scheduler=None, history=None, extra=None,
                    training_state=None):
    """Atomically save the model's state dict and, when given, the optimizer's, the scheduler's,
    a ``History`` (stored as a plain dict), ``extra`` (your own plain data, e.g. the model's
    configuration) and ``training_state`` (what ``fit`` needs to resume: RNG states, epoch...)."""
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
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
            ValueError) as error:
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
    return payload


def load_checkpoint(path, model, optimizer=None, scheduler=None):
    """Load a checkpoint into ``model`` (and ``optimizer`` / ``scheduler`` when given) and
    return its contents as a dict (keys: model, optimizer, scheduler, history, extra,
    training_state). A checkpoint of another configuration raises a ``ValueError`` saying what
    differs."""
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
