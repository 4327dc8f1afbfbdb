"""Checkpoints that survive a killed process and load without running pickled code.

``save_checkpoint`` writes to a temporary file in the same folder and renames it over the old
one with ``os.replace`` (atomic on one file system): a run killed mid-save leaves the previous
checkpoint intact, never half a file. ``load_checkpoint`` uses ``torch.load(weights_only=True)``,
which only rebuilds tensors and plain containers, so everything stored here is tensors, numbers,
strings, lists and dicts. ``check_resumable`` refuses to continue a checkpoint of another run
(recipe, length, data by content, model) with the one error type ``ResumeMismatch``.
"""

import os
import pickle
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import torch

from ..atomic_write import remove_stale_temporaries, temporary_path, write_atomically
from ..architecture.model import ModelSpec
from ..architecture.weights import load_state_dict_checked
from .recipe import TrainConfig

FORMAT = "vgg_lib.checkpoint/2"  # /2 stores the model's spec and the training recipe
READABLE_FORMATS = ("vgg_lib.checkpoint/1", FORMAT)
ENV_CHECKPOINT_DIR = "VGG_CHECKPOINT_DIR"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit what it is loaded into."""


class ResumeMismatch(CheckpointError, ValueError):
    """A checkpoint belongs to another run (recipe, data, model or length) than the one resuming."""


TRAINING_STATE_KEYS = ("epoch", "step", "train_images", "scaler", "data_generator", "rng")
RNG_KEYS = ("python", "numpy", "torch")


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
    if "google.colab" not in sys.modules:
        print(f"Not in Google Colab: checkpoints stay in {default_checkpoint_dir()}.")
        return default_checkpoint_dir()
    from google.colab import drive  # exists only in Colab

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


def _where_from():
    value = os.environ.get(ENV_CHECKPOINT_DIR)
    return (f" ({ENV_CHECKPOINT_DIR} is {value!r})" if value else
            f" ({ENV_CHECKPOINT_DIR} is not set; the default folder is {default_checkpoint_dir()})")


def check_checkpoint_folder(path):
    """Fail now, not after an epoch of training, when checkpoints cannot be written to ``path``:
    its folder is made and a probe file written and deleted there (``os.access`` says yes to
    root on a read-only mount). Temporary files of interrupted earlier writes are removed."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint_path {path} is a folder; name a file in it, e.g. "
                              f"{path / 'run.pt'}{_where_from()}.")
    folder = path.parent
    probe = temporary_path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"probe")
        probe.unlink()
    except OSError as error:
        raise CheckpointError(
            f"Cannot write checkpoints into {folder} ({error.strerror or error}){_where_from()}. "
            f"Pick a writable folder: set {ENV_CHECKPOINT_DIR} (in Colab, a folder on the "
            "mounted Google Drive) or pass another checkpoint_path.") from error
    remove_stale_temporaries(path)


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
    check_format(payload.get("format"), path)
    check_payload(payload, path)
    return payload


def _format_version(name):
    prefix = FORMAT.rsplit("/", 1)[0] + "/"
    if isinstance(name, str) and name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


def check_format(written_by, path):
    """Refuse a checkpoint whose ``format`` this vgg_lib cannot read, saying why."""
    if written_by == "state_dict" or written_by in READABLE_FORMATS:
        return
    version, ours = _format_version(written_by), _format_version(FORMAT)
    if version is not None and version > ours:
        raise CheckpointError(
            f"{path} was written by a newer vgg_lib (format {written_by!r}); this one reads "
            f"{', '.join(READABLE_FORMATS)}. Update vgg_lib (pip install -U vgg_lib; in Colab "
            "restart the runtime and run the set-up cell again), or train again.")
    if written_by is None:
        raise CheckpointError(
            f"{path} has a 'model' entry but no 'format' field, so it was not written by "
            "vgg_lib's save_checkpoint. Save a bare model.state_dict() (which loads), or use "
            "save_checkpoint.")
    raise CheckpointError(f"{path} has format {written_by!r}, which is not a vgg_lib checkpoint "
                          f"format; this vgg_lib reads {', '.join(READABLE_FORMATS)}. Train again, "
                          "or load the file with the code that wrote it.")


def check_payload(payload, path):
    """``CheckpointError`` naming every entry of a checkpoint whose type is not what
    ``save_checkpoint`` writes: the weights a dict of tensors, the rest dicts (or None)."""
    problems = []
    state = payload.get("model")
    if not isinstance(state, dict) or not state:
        problems.append(f"'model' is a {type(state).__name__}, not a state dict "
                        "(model.state_dict(): parameter names -> tensors)")
    else:
        odd = [f"{k!r} ({type(v).__name__})" for k, v in state.items()
               if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if odd:
            problems.append(f"'model' is not a state dict: {len(odd)} entr(y/ies) are not named "
                            f"tensors, e.g. {', '.join(odd[:3])}")
    for name in ("model_spec", "recipe", "optimizer", "scheduler", "history", "training_state"):
        value = payload.get(name)
        if value is not None and not isinstance(value, dict):
            problems.append(f"'{name}' is a {type(value).__name__}, not a dict")
    history = payload.get("history")
    if isinstance(history, dict) and not isinstance(history.get("epochs", []), list):
        problems.append("'history' has no list of epochs")
    if problems:
        raise CheckpointError(f"{path} is not a well-formed checkpoint: " + "; ".join(problems)
                              + ". It was not written by save_checkpoint, or was changed since; "
                              "delete it and train again.")


def check_training_state(payload, path, required=TRAINING_STATE_KEYS):
    """``CheckpointError`` unless ``payload`` holds everything ``fit`` needs to resume: the
    training state (the ``required`` entries: epoch, step, random-number states...), the recipe
    and the history."""
    state = payload.get("training_state")
    if not state:
        raise CheckpointError(f"{path} holds model weights but no training state; it cannot be "
                              "resumed (it was not written by fit). Load its weights with "
                              "load_checkpoint or load_model, and train with a new checkpoint_path.")
    missing = [key for key in required if key not in state]
    rng = state.get("rng")
    if isinstance(rng, dict):
        missing += [f"rng[{key!r}]" for key in RNG_KEYS if key not in rng]
    elif "rng" not in missing:
        missing.append("rng (the random-number states)")
    for name in ("recipe", "history"):
        if not payload.get(name):
            missing.append(name)
    if missing:
        raise CheckpointError(
            f"{path} cannot be resumed: it lacks {', '.join(missing)}, which fit needs to "
            "continue exactly where the run stopped. The file is damaged or not written by fit; "
            "delete it (or pass another checkpoint_path) to start a new run.")


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


def check_resumable(saved, recipe, train_images, path, data=None, model=None):
    """``ResumeMismatch`` unless the checkpoint ``saved`` (read from ``path``) belongs to the
    very run ``fit`` is asked to continue: the same recipe and length, the same number of
    training images, the same data (``data``: its ``fingerprint`` and ``source``), the same
    model; ``CheckpointError`` when it is damaged."""
    check_training_state(saved, path)
    try:
        stored = TrainConfig.from_dict(saved["recipe"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"The recipe stored in {path} is not readable ({error}); delete "
                              "the checkpoint to start a new run.") from error
    state = saved["training_state"]
    done = state["epoch"]
    if not isinstance(done, int) or not 0 <= done <= stored.epochs:
        raise CheckpointError(f"{path} says it has trained {done!r} epochs of a "
                              f"{stored.epochs}-epoch run, which cannot be; the file is damaged. "
                              "Delete it to start a new run.")
    new_run = "delete the checkpoint (or pass another checkpoint_path) to start a new run"
    if stored.epochs != recipe.epochs:
        raise ResumeMismatch(
            f"Cannot resume from {path}: it has trained {done} epoch{'' if done == 1 else 's'} "
            f"of a {stored.epochs}-epoch run, "
            f"and this call asks for epochs={recipe.epochs}. The learning-rate schedule spans "
            f"all of a run's epochs, so a run cannot be lengthened or shortened: call fit with "
            f"epochs={stored.epochs} to finish it, load its weights with load_model(path) to use "
            f"them, or {new_run}.")
    differences = [f"{name}: checkpoint {getattr(stored, name)!r} vs now {getattr(recipe, name)!r}"
                   for name in recipe.differences(stored)]
    stored_images = state.get("train_images")
    if stored_images != train_images:
        differences.append(f"train_images: checkpoint {stored_images!r} vs now {train_images!r}")
    if differences:
        raise ResumeMismatch(
            f"Cannot resume from {path}: it belongs to a run with another recipe ("
            + "; ".join(differences) + f"). Call fit with the same recipe, or {new_run}."
        )
    stored_data = state.get("data")
    if stored_data is not None and not isinstance(stored_data, dict):
        raise CheckpointError(f"{path} has a damaged data fingerprint ({stored_data!r}); delete it "
                              "to start a new run.")
    if data is not None and (stored_data is None or "fingerprint" not in stored_data):
        warnings.warn(f"{path} was written before checkpoints recorded their training data by "
                      "content, so resuming cannot check that this is the same data; it is "
                      "resumed on trust.", stacklevel=3)
    elif data is not None and stored_data["fingerprint"] != data["fingerprint"]:
        stored, now = stored_data["fingerprint"], data["fingerprint"]
        differ = [name for name in sorted(set(stored) | set(now)) if stored.get(name) != now.get(name)]
        raise ResumeMismatch(
            f"Cannot resume from {path}: it was trained on other images ({stored_data.get('source')}"
            f", {stored.get('train', {}).get('images')} training images) than the data given now "
            f"({data['source']}, {now['train']['images']} images): {', '.join(differ)} differ "
            "(another file, subset or seed). Load the same data (same VGG_CIFAR10_NPZ, "
            f"train_images and seed), or {new_run}.")
    spec, stored_spec = getattr(model, "spec", None), saved.get("model_spec")
    if spec is not None and stored_spec:
        changed = [f"{k}: checkpoint {v!r} vs now {getattr(spec, k, None)!r}"
                   for k, v in stored_spec.items() if getattr(spec, k, None) != v]
        if changed:
            raise ResumeMismatch(f"Cannot resume from {path}: it was trained with another model "
                                 f"({'; '.join(changed)}). Build the model with the checkpoint's "
                                 f"settings, or {new_run}.")
