"""Run records: one small JSON file per finished training run, the one format that studies,
sweeps, chapter 11's transfer study (a seed: its pretraining run, with the numbers derived from
the pretrained network) and the chapters' single runs store and read.

A record holds what decides the run (its ``identity``: the label of the row it belongs to, the
``ModelSpec``, the ``TrainConfig`` with its seed, the number of training images, and the data
fingerprint, by content: counts and sha256 of the train, validation and test images and labels,
no file paths), what it ran on (resolved precision, device, torch version, the code's version,
the machine), what it cost (wall and CPU time) and what it gave (the history, epoch by epoch and
step by step, and the final metrics) and, for a run trained with a ``TrainingProbe`` (a
``StudyRun``'s ``probe_steps``), the probe's gradient series (``TrainingProbe.to_dict``), which
``RunRecord.restored_probe`` reads back. Records are written atomically, so a killed process
leaves the old file or the new one.

A record is reused only when it matches the run asked for: ``recorded(folder, identity, train)``
reads ``folder/<name>.json`` when it matches, else trains (``train()``) and writes it. A record
that does not match, or a file that is truncated, corrupt or not a run record, raises
``RecordError`` naming the file, the differing field and the fix; it is never silently reused.
The folder is a parameter: a study's checkpoint folder, or the repository's ``results/<study>/``
for the records the book ships (``shipped_folder``; ``VGG_RESULTS_DIR`` moves it, ``VGG_RECORDS=off``
reads none), which are only read: ``shipped_record`` names a shipped record of another run and
leaves the run to be trained.
"""

import functools
import hashlib
import json
import math
import os
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..atomic_write import write_atomically
from ..device import machine
from ..training.checkpoint import default_checkpoint_dir
from ..training.data import without_folders
from ..training.diagnostics import GRADIENT_FIELDS, TrainingProbe
from ..training.history import History

FORMAT = "vgg_lib.run-record/1"
PACKAGE = Path(__file__).resolve().parents[1]
ENV_RESULTS_DIR = "VGG_RESULTS_DIR"   # where the shipped records are (default: <repo>/results)
ENV_RECORDS = "VGG_RECORDS"           # "off": read no shipped record, train instead
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RecordError(ValueError):
    """A run record cannot be used: unreadable, not a run record, or of another run."""


def identity(label, spec, recipe, train_images, data):
    """What decides a run's result, as plain data: ``label`` (its row), ``spec`` (a
    ``ModelSpec``), ``recipe`` (a ``TrainConfig``, seed included), ``train_images`` (None: all
    of ``data``'s) and ``data``'s fingerprint; as JSON stores it (a tuple such as the recipe's
    ``scale_jitter`` as a list), so that it compares equal to its record's."""
    return json.loads(json.dumps({"label": label, "spec": spec.to_dict(), "recipe": recipe.to_dict(),
                                  "train_images": train_images, "data": data.fingerprint()}))


@dataclass(frozen=True)
class RunRecord:
    """One finished run (see the module docstring); ``to_dict``/``from_dict`` are its JSON."""

    identity: dict
    precision: str
    device: str
    torch: str
    code: dict
    machine: dict
    seconds: float        # wall time of the whole run: training, validation, the test
    cpu_seconds: float    # CPU time of this process over the run (all its threads)
    threads: int
    history: dict         # History.to_dict(), without folders
    metrics: dict         # final numbers: see ``final_metrics``
    format: str = field(default=FORMAT)
    probe: dict = None    # TrainingProbe.to_dict() of a run trained with a probe, else None

    @property
    def seed(self):
        return self.identity["recipe"]["seed"]

    def to_dict(self):
        # a run without a probe has no "probe" key: its record reads as before the field existed
        return {"format": self.format, "seed": self.seed,
                **{k: v for k, v in asdict(self).items()
                   if k != "format" and not (k == "probe" and v is None)}}

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values.pop("seed", None)
        return cls(**values)

    def restored_history(self):
        return History.from_dict(self.history)

    def restored_probe(self, steps):
        """The run's ``TrainingProbe`` at ``steps`` (a container: a ``StudyRun``'s
        ``probe_steps``), as recorded: its series, no model. None when ``steps`` is None, when
        the record kept no probe, or one of other steps (made with other ``probe_steps``)."""
        if steps is None or self.probe is None:
            return None
        taken = range(1, len(self.history["steps"]) + 1)   # a loss per step the run took
        if self.probe["steps"] != [step for step in taken if step in steps]:
            return None
        return TrainingProbe.from_dict(self.probe)


def final_metrics(history, model=None, images_seen=None, macs=None):
    """The numbers a table reads from a run: accuracies (the validation split's per epoch, the
    test set's once), the last epoch's training accuracy and loss, how it ended, and its size."""
    return {"val_accuracy": [e.get("val_accuracy") for e in history.epochs],
            "train_accuracy": [e["train_accuracy"] for e in history.epochs],
            "train_loss": [e["train_loss"] for e in history.epochs],
            "test_accuracy": history.final_test_accuracy, "status": history.status,
            "diverged": history.diverged,
            "train_seconds": sum(e["seconds"] for e in history.epochs),
            "images_seen": images_seen,
            "parameters": None if model is None else sum(p.numel() for p in model.parameters()),
            "macs": macs}


def make_record(run_identity, history, *, seconds, cpu_seconds, model=None, images_seen=None,
                macs=None, derived=None, probe=None, probe_fields=GRADIENT_FIELDS):
    """The record of a run that ``fit`` just finished (``history``), on this machine.
    ``derived``: further numbers computed from the trained network after ``fit`` (chapter 11's
    probes and fine-tuning runs), stored in ``metrics`` beside the final ones. ``probe``: the
    ``TrainingProbe`` that watched the run; its series of ``probe_fields`` are kept (``to_dict``;
    by default the gradient fields, two float32 numbers per probed step per weight layer)."""
    config = dict(history.config)
    config["data_source"] = without_folders(str(config.get("data_source", "")))
    stored = dict(history.to_dict(), config=config)
    return RunRecord(identity=run_identity, precision=config.get("precision"),
                     device=config.get("device"), torch=torch.__version__, code=code_version(),
                     machine=machine(), seconds=seconds, cpu_seconds=cpu_seconds,
                     threads=torch.get_num_threads(), history=_finite(stored),
                     metrics=_finite({**final_metrics(history, model, images_seen, macs),
                                      **(derived or {})}),
                     probe=None if probe is None else _finite(probe.to_dict(probe_fields)))


class Stopwatch:
    """Wall and CPU time of a ``with`` block: ``.seconds``, ``.cpu_seconds``."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu


@functools.lru_cache(maxsize=1)
def code_version():
    """The code that computes: ``{"git": commit, "modified": bool}`` when vgg_lib runs from a git
    checkout, and always ``{"sources": sha256 of every vgg_lib/*.py}`` (which changes with any
    edit, committed or not)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    version = {"git": None, "modified": None, "sources": digest.hexdigest()}
    try:
        def git(*arguments):
            return subprocess.run(["git", "-C", str(PACKAGE), *arguments], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()

        version["git"] = git("rev-parse", "HEAD")
        version["modified"] = bool(git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (an installed package, Colab): the sources' hash stands alone
    return version


def _finite(value):
    """JSON has no NaN or infinity: a diverged run's losses are stored as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# --- files ------------------------------------------------------------------------------------

def shipped_records_on():
    """False when ``VGG_RECORDS=off`` (or 0, no, false): read no shipped record, train."""
    return os.environ.get(ENV_RECORDS, "").strip().lower() not in ("off", "0", "no", "false")


def results_dir():
    """The folder of the records the book ships: ``VGG_RESULTS_DIR`` when set, else
    ``results/`` of the repository vgg_lib runs from (None when it runs from an installed
    package, as in Colab, or when ``VGG_RECORDS=off``: then nothing shipped is read)."""
    if not shipped_records_on():
        return None
    if os.environ.get(ENV_RESULTS_DIR):
        return Path(os.environ[ENV_RESULTS_DIR]).expanduser()
    repository = PACKAGE.parent
    if (repository / "_toc.yml").is_file() and (repository / "results").is_dir():
        return repository / "results"
    return None


def record_path(folder, name):
    """``folder/<name>.json``; ``name``: letters, digits, '.', '_' and '-'."""
    if not NAME.fullmatch(str(name)):
        raise ValueError(f"Record name {name!r}: use letters, digits, '.', '_' and '-' only.")
    return Path(folder) / f"{name}.json"


def write_record(path, record):
    """Write ``record`` to ``path`` atomically (the folder is made when missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record.to_dict(), indent=1, sort_keys=True, allow_nan=False)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
    return Path(path)


def read_record(path):
    """The ``RunRecord`` in ``path``; ``RecordError`` naming the file and the fix when it is
    truncated, corrupt or not a run record of this format."""
    path = Path(path)
    fix = f"Delete {path} to train that run again (or regenerate the records)."
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise RecordError(f"{path} is not a text file ({error.reason}). {fix}") from error
    except json.JSONDecodeError as error:
        raise RecordError(f"{path} is not complete JSON (line {error.lineno}, column {error.colno}: "
                          f"{error.msg}); it is truncated or corrupt. {fix}") from error
    if not isinstance(values, dict) or values.get("format") != FORMAT:
        found = values.get("format") if isinstance(values, dict) else type(values).__name__
        raise RecordError(f"{path} is not a run record of this vgg_lib (format {found!r}, "
                          f"expected {FORMAT!r}). {fix}")
    try:
        record = RunRecord.from_dict(values)
    except TypeError as error:
        raise RecordError(f"{path} does not hold the fields of a run record ({error}). {fix}") from error
    for name, kind in (("identity", dict), ("history", dict), ("metrics", dict)):
        if not isinstance(getattr(record, name), kind):
            raise RecordError(f"{path}: the field {name!r} is a {type(getattr(record, name)).__name__}, "
                              f"not a {kind.__name__}. {fix}")
    if record.probe is not None:
        try:
            TrainingProbe.from_dict(record.probe)
        except (ValueError, TypeError, AttributeError) as error:
            raise RecordError(f"{path}: its probe cannot be read ({error}). {fix}") from error
    return record


def read_records(path):
    """The ``RunRecord``s of a records file, one JSON record per line (as a session on another
    machine writes them: benchmarks/full_profile_gpu.py); ``RecordError`` naming the file, the
    line and the fix when a line is not a complete run record."""
    path = Path(path)
    fix = f"Copy {path} again from the repository (or from the session that wrote it)."
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
            if not isinstance(values, dict) or values.get("format") != FORMAT:
                raise ValueError(f"not a run record of format {FORMAT!r}")
            record = RunRecord.from_dict(values)
        except (ValueError, TypeError) as error:
            raise RecordError(f"{path}, line {number}: {error}. {fix}") from error
        records.append(record)
    return records


def differences(stored, wanted, prefix=""):
    """Every field (dotted, e.g. "recipe.lr") in which two identities differ, with both values."""
    found = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "<missing>"), wanted.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: stored {a!r} vs now {b!r}")
    return found


def mismatches(record, wanted, precision=None):
    """The fields in which ``record`` is not of the run ``wanted`` (an ``identity``) computed in
    ``precision`` (None or "auto": any); empty when it is."""
    found = differences(record.identity, wanted)
    if precision not in (None, "auto") and record.precision != precision:
        found.append(f"precision: stored {record.precision!r} vs now {precision!r}")
    return found


def check_record(record, wanted, path, precision=None):
    """``RecordError`` unless ``record`` is of the run ``wanted`` (an ``identity``) and, when
    ``precision`` is given (not "auto"), was computed in it."""
    found = mismatches(record, wanted, precision)
    if found:
        raise RecordError(
            f"{path} records another run than the one asked for ("
            + "; ".join(found[:6]) + ("; ..." if len(found) > 6 else "")
            + "). Delete the file to train the run again, or use another folder.")
    return record


def find_record(folder, name, wanted, precision=None):
    """The matching record ``folder/<name>.json``, None when there is none; ``RecordError``
    when the file is unusable or records another run."""
    path = record_path(folder, name)
    if not path.exists():
        return None
    return check_record(read_record(path), wanted, path, precision)


def recorded(folder, name, wanted, train, precision=None):
    """Read the record ``folder/<name>.json`` if it matches ``wanted``; else call ``train()``
    (which returns a ``RunRecord``), write its record and return it. ``(record, reused)``."""
    record = find_record(folder, name, wanted, precision)
    if record is not None:
        return record, True
    record = train()
    write_record(record_path(folder, name), record)
    return record, False


# --- the records the repository ships --------------------------------------------------------

def shipped_folder(name):
    """Where the book ships the records of study ``name``, read only: ``<results>/<name>``
    (``runs.results_dir``: ``VGG_RESULTS_DIR`` or the repository's ``results/``); None when
    there is none (an installed vgg_lib, as in Colab) or ``VGG_RECORDS=off``."""
    if not NAME.fullmatch(str(name)):
        raise ValueError(f"Study name {name!r}: use letters, digits, '.', '_' and '-' only.")
    folder = results_dir()
    return None if folder is None else folder / name


def shipped_for(folder):
    """The shipped records of the study kept in ``folder``: ``shipped_folder(<name>)`` when
    ``folder`` is ``<checkpoint folder>/studies/<name>`` (``studies.study_folder``), else None."""
    if folder is None or Path(folder).parent != default_checkpoint_dir() / "studies":
        return None
    return shipped_folder(Path(folder).name)


def shipped_record(shipped, name, wanted, precision=None):
    """``(record, "shipped")`` when the folder ``shipped`` holds the record ``name`` of the run
    ``wanted`` (an ``identity``) computed in ``precision``; None when it holds none, and None,
    printing which fields differ, when it holds another run's (the caller trains the run)."""
    if shipped is None:
        return None
    path = record_path(shipped, name)
    if not path.exists():
        return None
    record = read_record(path)   # RecordError naming the file and the fix when unreadable
    found = mismatches(record, wanted, precision)
    if found:
        print(f"Not using the shipped record {path.parent.name}/{path.name}: it records another run "
              f"({'; '.join(found[:6])}{'; ...' if len(found) > 6 else ''}); training it instead.")
        return None
    return record, "shipped"


@contextmanager
def recorded_threads(record):
    """Compute on the threads ``record`` was made with (where this machine has that many
    cores), so that a run trained again (a verify, a network a chapter needs) can be the same
    bits; torch's setting is restored after."""
    threads = torch.get_num_threads()
    if record.threads <= (os.cpu_count() or 1):
        torch.set_num_threads(record.threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
