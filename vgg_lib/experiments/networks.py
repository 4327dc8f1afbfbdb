"""A run's trained network, kept beside its run record where a later chapter needs the weights
(chapter 7 looks into chapter 5's network, chapter 11 probes its pretrained ones).

The network is a weights-only checkpoint (``training.checkpoint.save_checkpoint``: the state
dict, the ``ModelSpec`` and the recipe; it loads with ``weights_only=True``), and its record keeps
the sha256 of its weights (``network_digest``), so a network that is not the one the record's
numbers came from (another run's, a changed or corrupt file) is an error naming the file and the
fix (``load_network``), never used silently. ``studies.StudyRun(keep_network=True)`` keeps one
beside a study run's record (``network_path``); chapter 11's seeds keep theirs
(``transfer.study``).
"""

from pathlib import Path

from ..training.checkpoint import CheckpointError, load_model, save_checkpoint
from ..training.data import tensor_digest

DIGEST = "network_sha256"   # the key of a record's metrics that holds the network's digest


def network_digest(model):
    """sha256 of the network's weights and buffers, in state-dict order: what a record keeps of
    the network its numbers were derived from."""
    return tensor_digest(*model.state_dict().values())


def network_path(folder, name):
    """Where the network of the run whose record is ``folder/<name>.json`` is kept: ``<name>.pt``."""
    return Path(folder) / f"{name}.pt"


def save_network(path, model, recipe=None):
    """Save ``model`` (its weights and ``ModelSpec``; ``recipe`` too when given) to ``path``,
    atomically; returns its digest."""
    save_checkpoint(path, model, recipe=recipe)
    return network_digest(model)


def load_network(path, expected, whose, fix, device=None):
    """The network in ``path`` (rebuilt from its ``ModelSpec``, in eval mode, on ``device``),
    when its weights' digest is ``expected`` (None: not checked, a record made before digests);
    else ``CheckpointError`` naming the file, ``whose`` network it should be (e.g. "the record
    beside it") and ``fix``, as it does when the file is missing, truncated or corrupt."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}, the network of {whose}, is missing. {fix}")
    try:
        model = load_model(path, device)
    except CheckpointError as error:
        cause = error.__cause__ or error
        reason = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
        raise CheckpointError(f"{path} cannot be loaded as the network of {whose} ({reason}): it is "
                              f"truncated, corrupt or not a network. {fix}") from error
    if expected is not None and network_digest(model) != expected:
        raise CheckpointError(f"{path} is not the network of {whose} (its weights differ from the "
                              f"sha256 the record keeps). {fix}")
    return model


def trained_network(result, device=None):
    """The trained network of a study run that keeps its network (``RunResult``): the model when
    it trained in this call, else the one beside its record (``result.network``), checked against
    the record's digest. ``CheckpointError`` naming the file and the fix when it cannot be used."""
    if result.model is not None:
        return result.model.to(device or "cpu").eval()
    if result.network is None:
        raise CheckpointError(f"The run {result.name} keeps no network beside its record; train it "
                              "with StudyRun(keep_network=True).")
    record = Path(result.network).with_suffix(".json")
    if result.source == "shipped":
        fix = (f"Restore the book's copy (git checkout -- results/{record.parent.name}/"
               f"{Path(result.network).name}) or make it again (make results).")
    else:
        fix = f"Delete it and {record.name} beside it to train the run again."
    return load_network(result.network, result.record.metrics.get(DIGEST),
                        f"the record {record.parent.name}/{record.name}", fix, device)
