"""Studies: many training runs (configurations x seeds x budgets), resumable, one JSON per run.

A study is a list of ``StudyRun`` objects, each one fresh network trained once: a label (the row
of a table it belongs to, e.g. "D"), a ``ModelSpec``, a ``TrainConfig`` (its ``seed`` seeds the
initial weights, the data order and the augmentation) and how many of the data's training images
it trains on. ``run_study(runs, data, folder)`` trains the runs in order and writes one small
JSON file per *finished* run into ``folder``; run again, it reads the runs that are stored and
trains only the others, so a study interrupted after 20 of 36 runs resumes at run 21. A stored
file is reused only when it records the very same run (model, recipe, training images, and a
fingerprint of the data); a file that records another run is an error that names what differs,
raised before anything is trained, never silently reused.

``equal_compute_images`` is the equal-compute budget: how many training images per epoch give a
configuration the same multiply-adds x images seen as a reference run. ``DEPTH_STUDY`` holds the
settings of chapter 8's study (notebooks/08_depth_study.ipynb) for both profiles, in one
commented place, and ``depth_study_plan`` turns them into runs.
"""

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..architecture.spec import ModelSpec
from ..atomic_write import write_atomically
from .checkpoint import default_checkpoint_dir
from .data import CIFAR10Data, balanced_subset, data_fingerprint
from .loop import fit
from .profiles import forward_macs
from .recipe import TrainConfig
from .reproducibility import seed_everything
from .sweeps import mean_std

RESULT_FORMAT = "vgg_lib.study-run/1"
# fit's options that decide where a run is stored or how it is reported: the study sets them.
_STUDY_OWNS = ("checkpoint_path", "resume", "progress", "step_callback", "max_steps", "test",
               "train_eval_images")


class StudyMismatch(ValueError):
    """A stored result belongs to another run than the one the study asks for."""


# --- what to run ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyRun:
    label: str                 # the row it belongs to: "A", "B-5x5", ...
    spec: ModelSpec            # the network
    recipe: TrainConfig        # the recipe; recipe.seed is the run's seed
    train_images: int = None   # the first ``train_images`` of a fixed class-balanced order of
                               # the data's training images (nested: 2,000 are part of 4,000);
                               # None: all of them
    train_eval_images: int = None  # fit's train_eval_images: training images evaluated in eval
                                   # mode after every epoch (None: none)

    def __post_init__(self):
        if not isinstance(self.spec, ModelSpec):
            raise TypeError(f"StudyRun {self.label!r}: spec must be a ModelSpec, not a "
                            f"{type(self.spec).__name__}.")
        if not isinstance(self.recipe, TrainConfig):
            raise TypeError(f"StudyRun {self.label!r}: recipe must be a TrainConfig, not a "
                            f"{type(self.recipe).__name__}.")
        n = self.train_images
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"StudyRun {self.label!r}: train_images={n!r}; use a whole number "
                             ">= 1, or None for all the training images.")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(self.label)):
            raise ValueError(f"StudyRun label {self.label!r}: use letters, digits, '.', '_' and "
                             "'-' only (it names the run's result file).")

    @property
    def seed(self):
        return self.recipe.seed

    @property
    def name(self):
        """The result file's stem: label, images per epoch, epochs and seed."""
        images = "all" if self.train_images is None else str(self.train_images)
        return f"{self.label}_{images}img_{self.recipe.epochs}ep_seed{self.seed}"


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


# --- the data of one run ------------------------------------------------------------------------

def training_subset(data, images, seed=0):
    """``data`` with only the first ``images`` training images of a class-balanced order fixed
    by ``seed`` (nested: a smaller subset is part of a larger one). Validation and test images
    and the normalisation (mean, std of all of ``data``'s training images) stay as they are, so
    that only the number of training images changes. ``None``: ``data`` itself."""
    if images is None or images == len(data.x_train):
        return data
    if images > len(data.x_train):
        raise ValueError(f"A run asks for {images:,} training images but the data has "
                         f"{len(data.x_train):,}: load more (load_cifar10(train_subset=...)) or "
                         "ask for fewer.")
    keep = balanced_subset(data.y_train.cpu().numpy(), images, seed)
    index = __import__("torch").from_numpy(keep).to(data.x_train.device)
    return CIFAR10Data(data.x_train[index], data.y_train[index], data.x_test, data.y_test,
                       list(data.classes), data.source, data.mean, data.std, data.x_val, data.y_val)


def _split_digest(images, labels):
    import hashlib

    digest = hashlib.sha256()
    digest.update(labels.detach().cpu().contiguous().numpy().tobytes())
    step = max(1, len(images) // 64)
    digest.update(images[::step].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def run_fingerprint(run, data):
    """Everything that decides what ``run`` computes on ``data``, as plain data: its model,
    recipe and number of training images, and fingerprints of its training, validation and
    test images. A stored result is reused only when this matches exactly. Where the images
    were read from is left out: the same file moved to another folder is the same data."""
    training = {k: v for k, v in data_fingerprint(data).items() if k != "source"}
    return {"label": run.label, "model": run.spec.to_dict(), "recipe": run.recipe.to_dict(),
            "train_images": run.train_images, "data": training,
            **({} if run.train_eval_images is None else {"train_eval_images": run.train_eval_images}),
            "validation": {"images": len(data.x_val), "sha256": _split_digest(data.x_val, data.y_val)},
            "test": {"images": len(data.x_test), "sha256": _split_digest(data.x_test, data.y_test)},
            "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]}


def _differences(stored, wanted, prefix=""):
    found = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "<missing>"), wanted.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: stored {a!r} vs now {b!r}")
    return found


# --- results ---------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What a finished run leaves behind (the content of its JSON file)."""

    run: StudyRun
    val_accuracy: list       # validation accuracy after each epoch
    train_accuracy: list     # training accuracy of each epoch (on the augmented batches)
    train_loss: list         # mean training loss of each epoch
    test_accuracy: float     # measured once, at the end (None if the run diverged)
    status: str              # History.status
    diverged: bool
    seconds: float           # wall time of the whole run: training, validation, the test
    train_seconds: float     # the training epochs alone
    images_seen: int         # training images through the network (epochs x whole batches)
    parameters: int
    macs: int                # forward multiply-adds per image
    device: str
    threads: int
    reused: bool = field(default=False)  # read from its file rather than trained in this call
    train_eval_loss: list = None      # after each epoch, in eval mode, on the run's
    train_eval_accuracy: list = None  # train_eval_images (None when it has none)

    @property
    def compute(self):
        """Training compute in forward multiply-adds x images seen (x3 for the FLOPs' backward)."""
        return self.macs * self.images_seen


def _result_path(folder, run):
    return Path(folder) / f"{run.name}.json"


def _read_result(path, run, fingerprint):
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
        if stored.get("format") != RESULT_FORMAT:
            raise ValueError(f"format {stored.get('format')!r}, not {RESULT_FORMAT!r}")
        fields_ = stored["result"]
        stored_fingerprint = stored["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise StudyMismatch(f"{path} is not a readable study result ({error}). Delete it to "
                            "train that run again.") from error
    differences = _differences(stored_fingerprint, fingerprint)
    if differences:
        raise StudyMismatch(
            f"{path} holds the result of another run than {run.name} asks for ("
            + "; ".join(differences[:6]) + ("; ..." if len(differences) > 6 else "")
            + "). Delete the file to train the run again, or give the study another folder.")
    try:
        return RunResult(run=run, reused=True, **fields_)
    except TypeError as error:  # fields missing or unknown: written by another version
        raise StudyMismatch(f"{path} does not hold the fields of a study result ({error}). "
                            "Delete it to train that run again.") from error


def _write_result(path, result, fingerprint):
    fields_ = {k: getattr(result, k) for k in ("val_accuracy", "train_accuracy", "train_loss",
                                               "test_accuracy", "status",
                                               "diverged", "seconds", "train_seconds",
                                               "images_seen", "parameters", "macs", "device",
                                               "threads", "train_eval_loss",
                                               "train_eval_accuracy")}
    text = json.dumps({"format": RESULT_FORMAT, "fingerprint": fingerprint, "result": fields_},
                      indent=1, sort_keys=True)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def study_folder(name):
    """Where study ``name`` keeps its results: ``<checkpoint folder>/studies/<name>`` (the
    checkpoint folder is ``VGG_CHECKPOINT_DIR`` when set, see ``default_checkpoint_dir``)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
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


def _steps(run, data):
    images = len(data.x_train) if run.train_images is None else run.train_images
    batch = min(run.recipe.batch_size, images)
    return run.recipe.epochs * (images // batch), batch


def run_study(runs, data, folder, progress=True, **fit_options):
    """Train every run of ``runs`` (``StudyRun`` objects; a run listed twice trains once) on
    ``data`` that has no stored result in ``folder`` yet, and return one ``RunResult`` per
    distinct run, in order. Before anything is trained, every stored file is checked: one
    that records another run raises ``StudyMismatch``. Each finished run is written at once
    (atomically), so an interrupted study loses at most the run it was training.

    ``progress``: one progress bar over the images of all the runs still to train. The other
    keyword arguments go to ``fit`` (``precision``, ``channels_last``, ``compile``,
    ``eval_batch_size``)."""
    import torch

    owned = sorted(set(fit_options) & set(_STUDY_OWNS))
    if owned:
        raise TypeError(f"run_study sets {', '.join(owned)} itself (each run is stored as a "
                        "result file and trained from scratch); leave them out.")
    runs = _unique(runs)
    if not runs:
        raise ValueError("The study has no runs: give at least one StudyRun.")
    folder = Path(folder)
    # Check everything before training anything: the data of every run, every stored file.
    plans = []
    for run in runs:
        run_data = training_subset(data, run.train_images)
        fingerprint = run_fingerprint(run, run_data)
        path = _result_path(folder, run)
        stored = _read_result(path, run, fingerprint) if path.exists() else None
        plans.append((run, run_data, fingerprint, path, stored))
    to_train = [plan for plan in plans if plan[4] is None]
    total = sum(_steps(run, run_data)[0] * _steps(run, run_data)[1]
                for run, run_data, *_ in to_train)
    bar = None
    if progress and to_train:
        from tqdm.auto import tqdm

        # one refresh a second at most: a study runs for minutes, and a busy notebook kernel
        # should not queue thousands of widget updates (nbval waits only seconds for them)
        bar = tqdm(total=total, unit="img", unit_scale=True, dynamic_ncols=True, mininterval=1.0,
                   desc=f"{len(to_train)} of {len(plans)} runs to train")
    results = []
    try:
        for run, run_data, fingerprint, path, stored in plans:
            if stored is not None:
                results.append(stored)
                continue
            steps, batch = _steps(run, run_data)
            if bar is not None:
                bar.set_postfix_str(run.name, refresh=False)

            def advance(step, model, loss, batch=batch):
                if bar is not None:
                    bar.update(batch)

            seed_everything(run.seed)
            model = run.spec.build()
            started = time.perf_counter()
            history = fit(model, run_data, run.recipe, progress=False, step_callback=advance,
                          train_eval_images=run.train_eval_images, **fit_options)
            seconds = time.perf_counter() - started
            result = RunResult(
                run=run, val_accuracy=[e["val_accuracy"] for e in history.epochs],
                train_accuracy=[e["train_accuracy"] for e in history.epochs],
                train_loss=[e["train_loss"] for e in history.epochs],
                test_accuracy=history.final_test_accuracy, status=history.status,
                diverged=history.diverged, seconds=seconds,
                train_seconds=sum(e["seconds"] for e in history.epochs),
                images_seen=steps * batch,
                parameters=sum(p.numel() for p in model.parameters()),
                macs=forward_macs(run.spec), device=str(run_data.device),
                threads=torch.get_num_threads(),
                **({} if run.train_eval_images is None else dict(
                    train_eval_loss=[e["train_eval_loss"] for e in history.epochs],
                    train_eval_accuracy=[e["train_eval_accuracy"] for e in history.epochs])))
            _write_result(path, result, fingerprint)
            results.append(result)
    finally:
        if bar is not None:
            bar.close()
    return results


# --- summaries ---------------------------------------------------------------------------------------

@dataclass
class StudyRow:
    label: str
    spec: ModelSpec
    seeds: list
    test: list            # test accuracy of each run that did not diverge
    val: list             # final validation accuracy of each run that did not diverge
    diverged: int
    parameters: int
    macs: int
    images_seen: int
    seconds: list         # wall time of each run
    train_accuracy: list = None  # final-epoch training accuracy of each run that did not diverge

    @property
    def test_mean_std(self):
        return mean_std(self.test)

    @property
    def val_mean_std(self):
        return mean_std(self.val)

    @property
    def compute(self):
        return self.macs * self.images_seen

    @property
    def depth(self):
        from ..architecture.configs import weight_layer_count

        return weight_layer_count(self.spec.config)


def summarise_study(results, labels=None):
    """One ``StudyRow`` per label (in the order of ``labels``, default first appearance). The
    runs of one label must share model and number of images seen (seeds differ)."""
    groups = {}
    for result in results:
        groups.setdefault(result.run.label, []).append(result)
    rows = []
    for label in labels or list(groups):
        members = groups.get(label)
        if not members:
            raise KeyError(f"No runs labelled {label!r}; the results have {', '.join(groups)}.")
        if len({(r.run.spec, r.images_seen) for r in members}) > 1:
            raise ValueError(f"The runs labelled {label!r} differ in model or images seen; a row "
                             "averages seeds of one setting only.")
        finished = [r for r in members if not r.diverged]
        rows.append(StudyRow(label, members[0].run.spec, [r.run.seed for r in members],
                             [r.test_accuracy for r in finished],
                             [r.val_accuracy[-1] for r in finished if r.val_accuracy
                              and r.val_accuracy[-1] is not None],
                             len(members) - len(finished), members[0].parameters,
                             members[0].macs, members[0].images_seen,
                             [r.seconds for r in members],
                             [r.train_accuracy[-1] for r in finished if r.train_accuracy]))
    return rows


def _pm(values, scale=100, digits=1):
    mean, std = mean_std(values)
    return "-" if math.isnan(mean) else f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def format_study_table(rows, title=None, paper=None):
    """Plain text: configuration, weight layers, parameters, multiply-adds, images seen, compute,
    test and validation accuracy (mean ± std over seeds), wall time per run; ``paper``: a dict
    label -> text, shown as a last column (e.g. the paper's top-1/top-5 error)."""
    from ..tables import text_table

    header = ["config", "layers", "params", "MMACs", "images seen", "GMAC", "test acc. %",
              "val acc. %", "s / run"]
    body = []
    for row in rows:
        line = [row.label, str(row.depth), f"{row.parameters:,}", f"{row.macs / 1e6:.2f}",
                f"{row.images_seen:,}", f"{row.compute / 1e9:,.0f}", _pm(row.test), _pm(row.val),
                _pm(row.seconds, scale=1, digits=0)]
        if paper is not None:
            line.append(paper.get(row.label, "-"))
        body.append(line)
    if paper is not None:
        header.append("paper top-1 / top-5 err. %")
    seeds = sorted({len(row.seeds) for row in rows})
    notes = [f"mean ± std over {'/'.join(map(str, seeds))} seeds; MMACs: forward multiply-adds per "
             "image / 1e6; GMAC: training compute, MMACs x images seen / 1e3"]
    if any(row.diverged for row in rows):
        notes.append("diverged runs: " + ", ".join(f"{r.label} {r.diverged}" for r in rows if r.diverged))
    return "\n".join([text_table(header, body, title=title)] + notes)


# --- chapter 8's study -----------------------------------------------------------------------------

DEPTH_STUDY_CONFIGS = ("A", "A-LRN", "B", "C", "D", "E", "B-5x5")

# Simonyan & Zisserman (2015), Table 3: ImageNet (ILSVRC-2012) validation error in %, top-1 and
# top-5, single test scale; rows (configuration, training scale S, test scale Q, top-1, top-5).
# "[256;512]" is scale jittering (S drawn from that range for every image).
PAPER_TABLE_3 = (
    ("A", "256", "256", 29.6, 10.4),
    ("A-LRN", "256", "256", 29.7, 10.5),
    ("B", "256", "256", 28.7, 9.9),
    ("C", "256", "256", 28.1, 9.4),
    ("C", "[256;512]", "384", 27.3, 8.8),
    ("D", "256", "256", 27.0, 8.8),
    ("D", "[256;512]", "384", 25.6, 8.1),
    ("E", "256", "256", 27.3, 9.0),
    ("E", "[256;512]", "384", 25.5, 8.0),
)
# Section 4.1 of the paper: the shallow control, B with each pair of 3x3 layers replaced by one
# 5x5 layer, "was measured to have 7% higher top-1 error than that of B (on a center crop)".
PAPER_CONTROL_TOP1_EXCESS = 7

# Chapter 8's study, both profiles, in one place. Every run: batch norm after every convolution
# (so that all depths train from a random start; the paper instead initialised B-E from a
# trained A, Section 3.1), the compact head (global average pooling + one linear layer, as in
# chapters 5-6), ten classes. Seeds 0, 1, 2 seed the weights, the data order and augmentation.
DEPTH_STUDY = {
    # Sized to run all 7 configurations x 3 seeds x both budget views (36 distinct runs: A's and
    # A-LRN's equal-compute runs are their equal-epoch runs) in about 5.5 minutes on one CPU
    # thread by the rates benchmarks/depth_study_speed.py measured (estimate_study_seconds),
    # less on two; the chapter prints the time it measured. The recipe is chapter 5's quick profile (Nesterov,
    # label smoothing 0.1, no crop padding) with one peak learning rate for every configuration,
    # chosen on the validation split (DEPTH_STUDY_LR_TUNING); the flip at test time is off (it
    # doubles evaluation).
    "quick": dict(width=0.125, train_images=8_000, validation=2_000, test_images=5_000,
                  seeds=(0, 1, 2),
                  recipe=TrainConfig(epochs=3, batch_size=128, lr=0.1, weight_decay=5e-4,
                                     label_smoothing=0.1, nesterov=True, tta_flip=False,
                                     crop_padding=0)),
    # Full width on all of CIFAR-10's training images but the 5,000 of the validation split, on
    # a GPU: chapter 5's full-profile recipe, shortened to 15 epochs per run.
    "full": dict(width=1.0, train_images=None, validation=5_000, test_images=None,
                 seeds=(0, 1, 2),
                 recipe=TrainConfig(epochs=15, batch_size=256, lr=0.1, weight_decay=5e-4,
                                    label_smoothing=0.1, nesterov=True, tta_flip=False,
                                    crop_padding=4)),
}
VIEWS = ("equal epochs", "equal compute")
# The quick study's peak learning rate, chosen before the study on the validation split only:
# configurations A, D and E, the quick settings above otherwise, seeds 0 and 1; (lr, config,
# final validation accuracy per seed). The highest mean over all six runs wins (0.1: 50.0%,
# 0.2: 49.3%, 0.3: 49.3%): close, and E gains the most from the lowest rate. 2026-12-01, the
# book's 2-core machine, one thread per run beside other work (times therefore not quoted).
DEPTH_STUDY_LR_TUNING = (
    (0.1, "A", (0.5590, 0.5495)), (0.1, "D", (0.5085, 0.4795)), (0.1, "E", (0.4695, 0.4345)),
    (0.2, "A", (0.5740, 0.5520)), (0.2, "D", (0.4970, 0.4985)), (0.2, "E", (0.4310, 0.4070)),
    (0.3, "A", (0.5465, 0.5625)), (0.3, "D", (0.5165, 0.4860)), (0.3, "E", (0.4295, 0.4170)),
)
# Training and evaluation images per second of each configuration at the quick study's width
# (0.125), batch 128, on one thread of the book's 2-core AMD EPYC machine, 2026-12-01, beside
# other work (benchmarks/depth_study_speed.py). LRN costs no multiply-adds but a lot of time.
QUICK_IMAGES_PER_SECOND = {"A": (3695, 12650), "A-LRN": (1306, 3091), "B": (3209, 9834),
                           "C": (2688, 9012), "D": (2432, 8864), "E": (2029, 6541),
                           "B-5x5": (3904, 14228)}


def depth_study_spec(config, settings):
    return ModelSpec(config=config, batch_norm=True, width=settings["width"], head="compact",
                     num_classes=10)


def depth_study_plan(settings, train_images, configs=DEPTH_STUDY_CONFIGS, reference="A"):
    """The runs of chapter 8's study, per budget view: ``{"equal epochs": [...], "equal
    compute": [...]}``. ``train_images``: how many training images the loaded data has (all of
    them are trained on in the equal-epoch view). In the equal-compute view every configuration
    trains as many epochs as the reference, on the class-balanced subset of the training images
    (``equal_compute_images``) that gives it the reference's multiply-adds x images seen: a
    deeper network takes fewer optimiser steps and sees fewer distinct images. A run that is
    the same in both views (the reference, and A-LRN, whose multiply-adds are A's) is the same
    ``StudyRun`` in both lists and trains once."""
    unknown = [c for c in (*configs, reference) if c not in DEPTH_STUDY_CONFIGS]
    if unknown:
        raise ValueError(f"Unknown configuration(s) {unknown} for the depth study; choose from "
                         f"{', '.join(DEPTH_STUDY_CONFIGS)}.")
    recipe, seeds = settings["recipe"], settings["seeds"]
    reference_spec = depth_study_spec(reference, settings)
    plan = {view: [] for view in VIEWS}
    for config in configs:
        spec = depth_study_spec(config, settings)
        images = equal_compute_images(spec, reference_spec, train_images, recipe.batch_size)
        for seed in seeds:
            seeded = recipe.replace(seed=seed)
            plan["equal epochs"].append(StudyRun(config, spec, seeded, None))
            plan["equal compute"].append(
                StudyRun(config, spec, seeded, None if images == train_images else images))
    return plan


def estimate_study_seconds(runs, train_images, validation, test_images, hardware="t4"):
    """Expected time of ``runs`` (each distinct run once), as an estimate: training images seen
    plus evaluation (the validation split after every epoch, the test set once).
    ``hardware="cpu-1-thread"``: from ``QUICK_IMAGES_PER_SECOND`` (measured at the quick study's
    width only); "t4" or "a100": from multiply-adds at ``profiles.EFFECTIVE_TFLOPS``, plus the
    per-step floor of a GPU."""
    from .profiles import EFFECTIVE_TFLOPS, GPU_SECONDS_PER_STEP_FLOOR, train_flop_per_image

    total = 0.0
    for run in _unique(runs):
        images = train_images if run.train_images is None else run.train_images
        batch = min(run.recipe.batch_size, images)
        steps = run.recipe.epochs * (images // batch)
        evaluated = run.recipe.epochs * validation + test_images
        evaluated *= 2 if run.recipe.tta_flip else 1
        if hardware == "cpu-1-thread":
            if run.spec.config not in QUICK_IMAGES_PER_SECOND or run.spec.width != 0.125:
                raise ValueError("The CPU rates were measured at width 0.125 only; estimate other "
                                 "widths with hardware='t4' or 'a100', or measure them with "
                                 "benchmarks/depth_study_speed.py.")
            train_rate, eval_rate = QUICK_IMAGES_PER_SECOND[run.spec.config]
            total += steps * batch / train_rate + evaluated / eval_rate
        elif hardware in ("t4", "a100"):
            flop = train_flop_per_image(run.spec)
            total += (steps * batch * flop + evaluated * flop / 3) / (EFFECTIVE_TFLOPS[hardware] * 1e12)
            total += steps * GPU_SECONDS_PER_STEP_FLOOR
        else:
            raise ValueError(f"hardware={hardware!r}; choose 'cpu-1-thread', 't4' or 'a100'.")
    return total
