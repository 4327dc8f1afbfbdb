"""Studies: many training runs (configurations x seeds x budgets x learning rates), resumable,
one run record per run (``vgg_lib.experiments.runs``). The one many-run engine of the book:
sweeps (``vgg_lib.experiments.sweeps``) are a use of it.

A study is a list of ``StudyRun`` objects, each one fresh network trained once: a label (the row
of a table it belongs to, e.g. "D"), a ``ModelSpec``, a ``TrainConfig`` (its ``seed`` seeds the
initial weights, the data order and the augmentation) and how many of the data's training images
it trains on. ``run_study(runs, data, folder)`` trains the runs in order and writes the record of
each *finished* run into ``folder``; run again, it reads the runs that are recorded and trains
only the others, so a study interrupted after 20 of 36 runs resumes at run 21. A record is reused
only when it records the very same run (model, recipe, training images, and the data by
content); a record of another run is an error that names what differs, raised before anything is
trained, never silently reused. Without a folder nothing is stored: every run trains, and its
model and probe can be kept (``keep_models``, ``StudyRun.probe_steps``).

``equal_compute_images`` is the equal-compute budget: how many training images per epoch give a
configuration the same multiply-adds x images seen as a reference run.
"""

import math
import re
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..architecture.model import ModelSpec
from ..training.checkpoint import default_checkpoint_dir
from ..training.data import training_subset
from ..training.diagnostics import GRADIENT_FIELDS, TrainingProbe
from ..training.loop import fit
from ..training.profiles import estimate_seconds, forward_macs
from ..training.recipe import TrainConfig
from ..training.reproducibility import seed_everything
from .networks import DIGEST, network_digest, network_path, save_network
from .runs import (NAME, Stopwatch, check_record, final_metrics, identity, make_record, read_record,
                   read_records, record_path, shipped_for, shipped_record, shipped_records_on,
                   write_record)
from .study_tables import (StudyRow, compare, format_study_table, row_of,  # noqa: F401
                           summarise_study)  # re-exported: a study's table, where chapters import it

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,+_-]*")  # a table row's label: "A", "batch norm"
# fit's options that decide where a run is stored or how it is reported: the study sets them.
_STUDY_OWNS = ("checkpoint_path", "resume", "progress", "step_callback", "max_steps", "test",
               "train_eval_images")


# --- what to run ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyRun:
    """One fresh network trained once (see the module docstring); its ``name`` names its record."""

    label: str                 # the row it belongs to: "A", "B-5x5", ...
    spec: ModelSpec            # the network (None: the one ``build`` returns)
    recipe: TrainConfig        # the recipe; recipe.seed is the run's seed
    train_images: int = None   # the first ``train_images`` of a fixed class-balanced order of the
                               # data's training images (2,000 are part of 4,000); None: all
    build: object = field(default=None, compare=False)  # build(seed) -> the network, for starts
                               # a ModelSpec does not describe (copied weights); the label names it
    probe_steps: tuple = field(default=None, compare=False)  # record a TrainingProbe at these steps
    probe_fields: tuple = field(default=GRADIENT_FIELDS, compare=False)  # what its record keeps
    train_eval_images: int = None  # fit's: training images evaluated in eval mode every epoch
    derive: object = None  # derive(model, data, precision) -> numbers of the trained network kept
                           # in its record's metrics; derive.identity() joins the run's identity
    keep_network: bool = field(default=False, compare=False)  # save the trained network beside
                           # its record (networks.network_path), its sha256 in the record's metrics

    def __post_init__(self):
        if not isinstance(self.spec, ModelSpec) and not (self.spec is None and callable(self.build)):
            raise TypeError(f"StudyRun {self.label!r}: spec must be a ModelSpec (or None with a "
                            f"build function), not a {type(self.spec).__name__}.")
        if not isinstance(self.recipe, TrainConfig):
            raise TypeError(f"StudyRun {self.label!r}: recipe must be a TrainConfig, not a "
                            f"{type(self.recipe).__name__}.")
        n = self.train_images
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"StudyRun {self.label!r}: train_images={n!r}; use a whole number "
                             ">= 1, or None for all the training images.")
        if not LABEL.fullmatch(str(self.label)):
            raise ValueError(f"StudyRun label {self.label!r}: use letters, digits, spaces and "
                             "'.', ',', '+', '_', '-' only (it names the run's record).")

    @property
    def seed(self):
        return self.recipe.seed

    @property
    def name(self):
        """The record's name: label, images per epoch, epochs, peak learning rate and seed."""
        images = "all" if self.train_images is None else str(self.train_images)
        label = re.sub(r"[^A-Za-z0-9._-]+", "-", self.label)
        return f"{label}_{images}img_{self.recipe.epochs}ep_lr{self.recipe.lr:g}_seed{self.seed}"


def equal_compute_images(spec, reference, reference_images, batch_size=128, image_size=32):
    """Training images per epoch that give ``spec`` the training compute of ``reference``
    trained on ``reference_images`` per epoch for as many epochs: multiply-adds per image x
    images seen kept equal (training costs about 3 forward passes per image for every
    configuration, so the ratio of forward MACs is the ratio of training compute). Rounded to
    whole batches of ``batch_size`` (the loop drops an incomplete last batch), at least one;
    ``reference_images`` itself when that comes to as many batches as the reference's."""
    for name, value in (("reference_images", reference_images), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r}: use a whole number >= 1.")
    reference_steps = reference_images // batch_size
    steps = max(1, round(reference_steps * forward_macs(reference, image_size)
                         / forward_macs(spec, image_size)))
    # as many steps as the reference (the same multiply-adds, e.g. A and A-LRN): its very images
    return reference_images if steps == reference_steps else steps * batch_size


# --- results ---------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """A finished run: its ``history`` and ``record`` (what is stored; None for a run made by
    hand), the ``model`` when it trained in this call (with ``keep_models``), and the ``probe`` of
    its ``probe_steps``, recorded now or read from its record (None when that kept none)."""

    run: StudyRun
    history: object
    record: object = None
    model: object = None
    probe: object = None
    reused: bool = False   # read from its record rather than trained in this call
    source: str = "trained"  # "shipped" (results/), "stored" (in the folder), "trained" here
    network: object = None   # of a run that keeps its network: the file beside its record
                             # (networks.trained_network loads it), None when not stored

    @property
    def metrics(self):
        return self.record.metrics if self.record is not None else final_metrics(self.history)

    label = property(lambda self: self.run.label)
    seed = property(lambda self: self.run.seed)
    lr = property(lambda self: self.run.recipe.lr)
    name = property(lambda self: self.run.name)
    spec = property(lambda self: self.run.spec or ModelSpec.from_dict(self.record.identity["spec"]))
    diverged = property(lambda self: self.metrics["diverged"])
    status = property(lambda self: self.metrics["status"])
    val_accuracy = property(lambda self: self.metrics["val_accuracy"])
    train_accuracy = property(lambda self: self.metrics["train_accuracy"])
    train_loss = property(lambda self: self.metrics["train_loss"])
    test_accuracy = property(lambda self: self.metrics["test_accuracy"])
    images_seen = property(lambda self: self.metrics["images_seen"])
    parameters = property(lambda self: self.metrics["parameters"])
    macs = property(lambda self: self.metrics["macs"])
    train_seconds = property(lambda self: self.metrics["train_seconds"])
    # after each epoch, in eval mode, on the run's train_eval_images (None when it has none)
    train_eval_loss = property(lambda self: self._per_epoch("train_eval_loss"))
    train_eval_accuracy = property(lambda self: self._per_epoch("train_eval_accuracy"))

    def _per_epoch(self, key):
        values = [epoch.get(key) for epoch in self.history.epochs]
        return None if not values or values[0] is None else values
    seconds = property(lambda self: self.record.seconds)

    @property
    def compute(self):
        """Training compute in forward multiply-adds x images seen (x3 for the FLOPs' backward)."""
        return self.macs * self.images_seen


def relabel(results, prefix, replacing=""):
    """The same results under labels with ``prefix`` in front ("A, " + "plain"), in place of
    ``replacing`` where a label starts with it ("E, plain" -> "Kaiming init, plain"), for tables
    and plots that put the runs of several studies side by side."""
    return [replace(r, run=replace(r.run, label=prefix + r.run.label.removeprefix(replacing)))
            for r in results]


def recorded_results(path):
    """The runs of a records file (``runs.read_records``) as ``RunResult``s, read, not trained."""
    results = []
    for record in read_records(path):
        run_identity = record.identity
        run = StudyRun(run_identity["label"], ModelSpec.from_dict(run_identity["spec"]),
                       TrainConfig.from_dict(run_identity["recipe"]), run_identity["train_images"])
        results.append(RunResult(run, record.restored_history(), record, reused=True, source="shipped"))
    return results


def study_folder(name):
    """Where study ``name`` keeps its records: ``<checkpoint folder>/studies/<name>`` (the
    checkpoint folder is ``VGG_CHECKPOINT_DIR`` when set, see ``default_checkpoint_dir``)."""
    if not NAME.fullmatch(str(name)):
        raise ValueError(f"Study name {name!r}: use letters, digits, '.', '_' and '-' only.")
    return default_checkpoint_dir() / "studies" / name


def _unique(runs):
    """The runs once each, in order; the same name for two different runs is an error."""
    seen = {}
    for run in runs:
        if not isinstance(run, StudyRun):
            raise TypeError(f"A study is a list of StudyRun objects, not of {type(run).__name__}.")
        if run.name in seen and seen[run.name] != run:
            raise ValueError(f"Two different runs of the study are both named {run.name!r} "
                             f"({seen[run.name]} and {run}); give them different labels.")
        seen.setdefault(run.name, run)
    return list(seen.values())


def _steps(run, train_images):
    images = train_images if run.train_images is None else run.train_images
    batch = min(run.recipe.batch_size, images)
    return run.recipe.epochs * (images // batch), batch


def run_study(runs, data, folder=None, *, shipped="auto", progress=True, keep_models=False,
              log=None, train=True, **fit_options):
    """Train every run of ``runs`` (``StudyRun`` objects; a run listed twice trains once) on
    ``data`` that has no record yet, and return one ``RunResult`` per distinct run, in order.
    A record is looked for in ``shipped`` first (read only; "auto": ``runs.shipped_for(folder)``,
    the repository's ``results/<name>`` for ``study_folder(<name>)``; ``VGG_RECORDS=off``: none),
    where one of another run is named, field by field, and the run trains; then in ``folder``,
    where one of another run raises ``RecordError`` before anything trains (as does an
    unreadable file in either). Each finished run's record is written at once (atomically) into
    ``folder`` only, so an interrupted study loses at most the run it was training.
    ``folder=None``: nothing is stored. ``train=False``: read only, the runs without a record
    are left out of the result (a study too long to train where the page is read).

    A run that keeps its network (``StudyRun.keep_network``) saves it beside its record before
    the record is written, and its record is used only with that network beside it (else the run
    trains again); ``RunResult.network`` names the file, ``networks.trained_network`` loads it.

    ``progress``: one progress bar over the images of all the runs still to train. ``log``: a
    function given one line per finished run. ``keep_models``: the results of the runs trained
    here keep their networks. The other keyword arguments go to ``fit`` (``precision``,
    ``channels_last``, ``compile``, ``eval_batch_size``); an explicit ``precision`` must also
    be the one a reused record was computed in."""
    owned = sorted(set(fit_options) & set(_STUDY_OWNS))
    if owned:
        raise TypeError(f"run_study sets {', '.join(owned)} itself (each run is stored as a "
                        "record and trained from scratch); leave them out.")
    runs = _unique(runs)
    if not runs:
        raise ValueError("The study has no runs: give at least one StudyRun.")
    precision = fit_options.get("precision")
    if folder is not None and any(run.spec is None for run in runs):
        raise ValueError("A run made by a build function has no ModelSpec to record: give each "
                         "run its spec, or no folder (then nothing is stored).")
    # Check everything before training anything: the data of every run, every stored record.
    shipped = shipped_for(folder) if isinstance(shipped, str) and shipped == "auto" else shipped
    shipped = shipped if shipped_records_on() else None
    plans = []
    for run in runs:
        run_data = training_subset(data, run.train_images)
        wanted = _identity(run, run.spec, run_data) if run.spec else None
        path = None if folder is None else record_path(folder, run.name)
        stored = _look_up(run, wanted, shipped, folder, path, precision)
        plans.append((run, run_data, path, stored))
    if not train:
        plans = [plan for plan in plans if plan[3] is not None]
    to_train = [plan for plan in plans if plan[3] is None]
    total = sum(math.prod(_steps(run, run_data.train_images)) for run, run_data, *_ in to_train)
    bar = None
    if progress and to_train:
        # one refresh a second at most: a study runs for minutes, and a busy notebook kernel
        # should not queue thousands of widget updates (nbval waits only seconds for them)
        # the total counts a plateau run's cap of epochs; such a run stops sooner (see _train)
        capped = any(run.recipe.schedule == "plateau" for run, *_ in to_train)
        bar = tqdm(total=total, unit="img", unit_scale=True, dynamic_ncols=True, mininterval=1.0,
                   desc=f"{len(to_train)} of {len(plans)} runs to train"
                        + (" (total: the plateau runs' caps; they stop sooner)" if capped else ""))
    results = []
    try:
        for run, run_data, path, stored in plans:
            if stored is not None:
                results.append(_read(run, stored, shipped, folder))
                continue
            result = _train(run, run_data, bar, keep_models, fit_options)
            if path is not None:
                if run.keep_network:   # before the record: a record implies its network
                    result.network = network_path(folder, run.name)
                    save_network(result.network, result.model, run.recipe)
                write_record(path, result.record)
            if log is not None:
                log(f"{run.label:>12}  lr {run.recipe.lr:<6g} seed {run.seed}:  {result.status}")
            results.append(result)
    finally:
        if bar is not None:
            bar.close()
    return results


def _train(run, run_data, bar, keep_models, fit_options):
    steps, batch = _steps(run, run_data.train_images)
    if bar is not None:
        bar.set_postfix_str(run.name, refresh=False)
    seed_everything(run.seed)
    model = run.build(run.seed) if run.build is not None else run.spec.build()
    spec = run.spec or model.spec
    if getattr(model, "spec", spec) != spec:
        raise ValueError(f"StudyRun {run.label!r}: its build function made a {model.spec.describe()}"
                         f", not its spec's {spec.describe()}; give it the spec its build makes.")
    probe = TrainingProbe(model, steps=run.probe_steps) if run.probe_steps is not None else None

    def after_backward(step, model, loss):
        if probe is not None:
            probe(step, model, loss)
        if bar is not None:
            bar.update(batch)

    with Stopwatch() as watch, (probe if probe is not None else nullcontext()):
        history = fit(model, run_data, run.recipe, progress=False, step_callback=after_backward,
                      train_eval_images=run.train_eval_images, **fit_options)
        derived = run.derive and run.derive(model, run_data, fit_options.get("precision", "auto"))
    if bar is not None:   # a run that stopped before its cap: the bar moves on by the rest of it
        bar.update((steps - len(history.steps)) * batch)
    if run.keep_network:
        derived = {**(derived or {}), DIGEST: network_digest(model)}
    record = make_record(_identity(run, spec, run_data), history,
                         seconds=watch.seconds, cpu_seconds=watch.cpu_seconds, model=model,
                         images_seen=len(history.steps) * batch, macs=forward_macs(spec), probe=probe,
                         probe_fields=run.probe_fields, derived=derived)
    return RunResult(run, history, record, model if keep_models or run.keep_network else None, probe)


def recorded_run(run, data, folder=None, *, shipped="auto", precision=None):
    """The ``RunResult`` of ``run`` (a ``StudyRun`` with its spec) on ``data``, read from its
    record as ``run_study`` reads it (the shipped record first, then ``folder``'s), or None when
    neither holds it: nothing is trained (chapter 7 looks for chapter 5's network so)."""
    shipped = shipped_for(folder) if isinstance(shipped, str) and shipped == "auto" else shipped
    shipped = shipped if shipped_records_on() else None
    wanted = _identity(run, run.spec, training_subset(data, run.train_images))
    path = None if folder is None else record_path(folder, run.name)
    stored = _look_up(run, wanted, shipped, folder, path, precision)
    return None if stored is None else _read(run, stored, shipped, folder)


def _look_up(run, wanted, shipped, folder, path, precision):
    """``(record, source)`` of ``run`` (identity ``wanted``): from ``shipped`` (another run's
    record there is named and skipped), else from ``path`` in ``folder`` (another run's is a
    ``RecordError``); None when neither has it, or not with the network the run keeps."""
    stored = _with_network(run, shipped_record(shipped, run.name, wanted, precision), shipped) if wanted else None
    if stored is None and path is not None and path.exists():
        stored = _with_network(run, (check_record(read_record(path), wanted, path, precision),
                                     "stored"), folder)
    return stored


def _read(run, stored, shipped, folder):
    """The ``RunResult`` of ``run`` from its ``(record, source)``."""
    record, source = stored
    return RunResult(run, record.restored_history(), record, reused=True, source=source,
                     probe=record.restored_probe(run.probe_steps),
                     network=_network_of(run, shipped if source == "shipped" else folder))


def _network_of(run, folder):
    """The file of the network beside ``run``'s record in ``folder`` (None: it keeps none)."""
    return network_path(folder, run.name) if run.keep_network and folder is not None else None


def _with_network(run, stored, folder):
    """``stored`` (a found ``(record, source)``, or None), or None, saying why, when ``run`` keeps
    its network and ``folder`` has none beside the record (the run is trained again)."""
    if stored is None or not run.keep_network:
        return stored
    path = network_path(folder, run.name)
    if stored[0].metrics.get(DIGEST) is None or not path.is_file():
        print(f"Not using the record {Path(folder).name}/{run.name}.json: "
              + ("it keeps no digest of its network" if path.is_file()
                 else f"its network {path.name} is not beside it") + "; training the run instead.")
        return None
    return stored


def _identity(run, spec, run_data):
    """The run's record identity; ``train_eval_images``, ``derived`` only when set (as before)."""
    extra = {"train_eval_images": run.train_eval_images, "derived": run.derive and run.derive.identity()}
    return dict(identity(run.label, spec, run.recipe, run.train_images, run_data),
                **{key: value for key, value in extra.items() if value is not None})


def estimate_study_seconds(runs, train_images, validation, test_images, hardware="t4", rates=None):
    """Expected time of ``runs`` (each distinct run once), as an estimate
    (``vgg_lib.training.profiles.estimate_seconds``): from multiply-adds on ``hardware`` ("t4",
    "a100", "cpu"), or from measured ``rates``: ``{"width": w, "images_per_second": {config:
    (training, evaluation)}}``, which hold for networks of that width only."""
    total = 0.0
    for run in _unique(runs):
        measured = None
        if rates is not None:
            if run.spec.config not in rates["images_per_second"] or run.spec.width != rates["width"]:
                raise ValueError(f"The rates were measured at width {rates['width']:g} for "
                                 f"{', '.join(rates['images_per_second'])} only; estimate "
                                 f"{run.spec.describe()} with hardware='t4' or 'a100', or "
                                 "measure it (benchmarks/depth_study_speed.py).")
            measured = rates["images_per_second"][run.spec.config]
        images = train_images if run.train_images is None else run.train_images
        total += estimate_seconds(run.spec, run.recipe, images, validation, test_images, hardware,
                                  rates=measured)
    return total
