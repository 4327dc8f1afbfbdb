"""Full-profile run records of the training chapters, in one timed GPU session.

Trains, through the chapters' own code path (the study engine, ``vgg_lib.experiments.studies``,
which seeds each run, builds its ``ModelSpec``, calls ``fit`` and makes its run record,
``vgg_lib.experiments.runs``), in this order of priority:

1. chapter 5's ``full`` profile (``vgg_lib.training.profiles.FULL``: VGG-16-BN at full width,
   30 epochs, batch 256, 45,000 training / 5,000 validation / 10,000 test images), seeds 0, 1, 2;
2. chapter 8's depth study, ``DEPTH_STUDY["full"]`` (``depth_study_plan``): the equal-epochs view
   in the order A, D, E, B, C, A-LRN, B-5x5, then the equal-compute view's own runs, seeds 0, 1, 2
   of one configuration before the next;
3. chapter 6's Experiment 1 with ``SETTINGS["full"].long`` (configuration A at quarter width,
   plain and batch norm, learning rates 0.01 and 0.05, seeds 0, 1, 2), in the chapter's fp32.

Chapters 5 and 8 run in precision "auto" (bf16 autocast on a GPU that has it) with ``fit``'s
default channels_last on CUDA; the validation split after every epoch, the test set once per run.
Every finished run appends its record (format "vgg_lib.run-record/1", one JSON object per line)
to ``$OUT/records.jsonl`` and a one-line summary to ``$OUT/log.txt`` and stdout, so a run cut off
by a time limit loses only the run in progress. A run starts only when its estimated time (from
the runs already measured: same network, scaled by steps; else the slowest-per-step measured
network, scaled by multiply-adds and by weight layers, whichever is larger; x1.15) fits into
what is left of ``--budget`` seconds (counted from the script's start, data decoding included)
with 20 s to spare, and never with fewer than 60 s left; a configuration of the depth study
starts only when all its seeds fit.

How it ran (2026-12-04): the session's worktree copied into an ignored folder ``.gpu/`` of the
checkout the device tool sends (``vgg_lib/``, this script, ``cifar10-full-jpeg.npz`` and
``unpack_jpeg.py`` from ``shared/data``, ``CODE.json`` naming the commit), carried with
``carry=[".gpu"]``, on one NVIDIA H200 (the ``nvidia-h200`` kind; its image's python3 and
torch), one command with ``timeout_s=540`` inside a session budget of 900 s of device time
(machine start and idle included), then given back::

    PYTHONUNBUFFERED=1 PYTHONPATH=.gpu python3 .gpu/benchmarks/full_profile_gpu.py \
        --jpeg .gpu/data/cifar10-full-jpeg.npz --out $OUT --budget 520

and a second time, the same day, with what was left of the session's device time, adding
``--done results/gpu-2026-12-04/records.jsonl --budget 265`` (``timeout_s=285``).

Results: ``results/gpu-2026-12-04/`` (records.jsonl, log.txt).

Rehearsal on a CPU, end to end in about a minute (``--tiny``: width 1/16, one epoch, 512
training / 256 validation / 256 test images; the numbers mean nothing)::

    .venv/bin/python benchmarks/full_profile_gpu.py --jpeg ../shared/data/cifar10-full-jpeg.npz \
        --out /tmp/out --tiny --budget 120
"""

import time

STARTED = time.perf_counter()  # the budget counts from here, imports included

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from vgg_lib.architecture.configs import weight_layer_count  # noqa: E402
from vgg_lib.device import resolve_precision  # noqa: E402
from vgg_lib.experiments import runs as run_records  # noqa: E402
from vgg_lib.experiments.batch_norm import SETTINGS as BATCH_NORM_SETTINGS  # noqa: E402
from vgg_lib.experiments.depth_study import DEPTH_STUDY, VIEWS, depth_study_plan  # noqa: E402
from vgg_lib.experiments.studies import StudyRun, run_study  # noqa: E402
from vgg_lib.training.cifar10 import load_cifar10  # noqa: E402
from vgg_lib.training.data import ENV_NPZ  # noqa: E402
from vgg_lib.training.profiles import estimate_seconds, forward_macs, make_profile  # noqa: E402

DEPTH_ORDER = ("A", "D", "E", "B", "C", "A-LRN", "B-5x5")
MARGIN = 1.15        # estimates are multiplied by this
SPARE_SECONDS = 20   # a run must end this long before the budget
LAST_START = 60      # no run starts with fewer seconds left than this
TINY = dict(width=1 / 16, epochs=1, train_images=512, validation=256, test_images=256)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jpeg", type=Path, default=None,
                        help="cifar10-full-jpeg.npz (unpack_jpeg.py beside it): decode it first")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    parser.add_argument("--budget", type=float, default=520.0,
                        help="seconds from the script's start within which every run must end")
    parser.add_argument("--tiny", action="store_true", help="a rehearsal: seconds of work per run")
    parser.add_argument("--done", type=Path, default=None,
                        help="records.jsonl of an earlier session: its runs are not run again "
                             "(and their times start the estimates)")
    return parser.parse_args(argv)


def elapsed():
    return time.perf_counter() - STARTED


class Log:
    def __init__(self, out):
        out.mkdir(parents=True, exist_ok=True)
        self.text = open(out / "log.txt", "a", encoding="utf-8")
        self.records = open(out / "records.jsonl", "a", encoding="utf-8")

    def __call__(self, line):
        line = f"[{elapsed():6.1f} s] {line}"
        print(line, flush=True)
        self.text.write(line + "\n")
        self.text.flush()
        os.fsync(self.text.fileno())

    def record(self, record):
        self.records.write(json.dumps(record.to_dict(), sort_keys=True, allow_nan=False) + "\n")
        self.records.flush()
        os.fsync(self.records.fileno())


def unpack(jpeg, log):
    script = jpeg.parent / "unpack_jpeg.py"
    target = Path(tempfile.gettempdir()) / "cifar10-full.npz"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(script), str(jpeg), str(target)], check=True)
    log(f"decoded {jpeg.name} into {target} in {time.perf_counter() - started:.1f} s")
    os.environ[ENV_NPZ] = str(target)


def stamp_code_version(log):
    """Records name the code by vgg_lib's git commit; the copy carried to the device is not a git
    checkout of it, so take the commit from CODE.json beside vgg_lib (written when it was copied)
    when the sources' hash there matches the sources here, and say "modified" otherwise."""
    here = run_records.code_version()
    stamp = run_records.PACKAGE.parent / "CODE.json"
    if stamp.is_file():
        copied = json.loads(stamp.read_text())
        version = {"git": copied["git"], "modified": copied["sources"] != here["sources"],
                   "sources": here["sources"]}
        run_records.code_version = lambda: version
    log(f"code: {run_records.code_version()}")


# --- the plan ------------------------------------------------------------------------------

class Group:
    """Runs that belong together (one table row: the seeds of one setting), on one data set."""

    def __init__(self, chapter, name, runs, data_key, precision, whole=False):
        self.chapter, self.name, self.runs = chapter, name, runs
        self.data_key, self.precision, self.whole = data_key, precision, whole


def plan(tiny, train_images_available):
    """The groups of runs in order of priority, and the ``load_cifar10`` keywords of each data set."""
    profile = make_profile("full")
    depth = DEPTH_STUDY["full"]
    long = BATCH_NORM_SETTINGS["full"].long
    ch5_spec, ch5_recipe = profile.model, profile.recipe
    ch5_data = profile.data_kwargs()
    depth_data = depth.data_kwargs(profile.device)
    ch6_data = long.data_kwargs(profile.device)
    if tiny:
        shrink = dict(train_images=TINY["train_images"], validation=TINY["validation"],
                      test_images=TINY["test_images"])
        ch5_spec = ch5_spec.replace(width=TINY["width"])
        ch5_recipe = ch5_recipe.replace(epochs=TINY["epochs"])
        depth = depth.replace(spec=depth.spec.replace(width=TINY["width"]),
                              recipe=depth.recipe.replace(epochs=TINY["epochs"]), **shrink)
        long = long.replace(spec=long.spec.replace(width=TINY["width"]),
                            recipe=long.recipe.replace(epochs=TINY["epochs"]), **shrink)
        for kwargs in (ch5_data, depth_data, ch6_data):
            kwargs.update(shrink)
        train_images_available = TINY["train_images"]
    datasets = {"chapter 5": ch5_data, "chapter 8": depth_data, "chapter 6": ch6_data}
    groups = [Group("chapter 5", "full profile",
                    [StudyRun("full profile", ch5_spec, ch5_recipe.replace(seed=seed))
                     for seed in (0, 1, 2)], "chapter 5", "auto")]
    study = depth_study_plan(depth, train_images_available)
    for view in VIEWS:
        for config in DEPTH_ORDER:
            runs = [run for run in study[view] if run.label == config]
            groups.append(Group("chapter 8", f"{view}, {config}", runs, "chapter 8", "auto",
                                whole=True))
    settings = BATCH_NORM_SETTINGS["full"]
    for label, batch_norm in (("plain", False), ("batch norm", True)):
        for lr in settings.lrs:
            spec = long.spec.replace(config="A", batch_norm=batch_norm)
            runs = [StudyRun(label, spec, long.recipe.replace(lr=lr, seed=seed))
                    for seed in long.seeds]
            groups.append(Group("chapter 6", f"experiment 1, {label}, lr {lr:g}", runs,
                                "chapter 6", settings.precision, whole=True))
    return groups, datasets, profile.device


# --- estimates -----------------------------------------------------------------------------

def steps_of(run, train_images):
    images = train_images if run.train_images is None else run.train_images
    batch = min(run.recipe.batch_size, images)
    return run.recipe.epochs * (images // batch), batch


def estimate(run, train_images, measured, device, validation, test_images):
    """Seconds ``run`` will take, from ``measured`` = [(run, steps, batch, seconds)]."""
    steps, batch = steps_of(run, train_images)
    same = [m for m in measured if m[0].spec == run.spec and m[0].recipe.batch_size == batch]
    if same:
        ref, ref_steps, _, seconds = same[-1]
        return seconds * steps / ref_steps
    if measured:
        ref, ref_steps, ref_batch, seconds = max(measured, key=lambda m: m[3] / m[1])
        by_macs = (steps * batch * forward_macs(run.spec)) / (ref_steps * ref_batch * forward_macs(ref.spec))
        by_layers = (steps * weight_layer_count(run.spec.config)) / (ref_steps * weight_layer_count(ref.spec.config))
        return seconds * max(by_macs, by_layers)
    hardware = "a100" if device.type == "cuda" else "cpu"
    return estimate_seconds(run.spec, run.recipe, train_images, validation, test_images, hardware)


def forecast(groups, datasets, measured, device, done, budget):
    """One line: how long every run not yet done would take, by ``estimate``, against the time
    left (the plan's subset that fits is decided run by run)."""
    total, names = 0.0, set()
    for group in groups:
        kwargs = datasets[group.data_key]
        images = kwargs["train_images"] or 50_000 - kwargs["validation"]
        for run in group.runs:
            if run.name not in done and run.name not in names:
                names.add(run.name)
                total += MARGIN * estimate(run, images, measured, device, kwargs["validation"],
                                           kwargs["test_images"] or 10_000)
    return (f"forecast after the first run: {len(names)} runs still to do, ~{total:.0f} s "
            f"(x{MARGIN} margin) against {budget - elapsed():.0f} s left: "
            + ("all fit" if total < budget - elapsed() - SPARE_SECONDS else "only a subset fits"))


# --- the session ---------------------------------------------------------------------------

def run_key(label, seed, epochs, lr, train_images):
    return (label, seed, epochs, float(lr), train_images)


def recorded_runs(path, groups, datasets):
    """{run name: seconds} of the planned runs that ``path`` (a records.jsonl) already holds,
    matched by label, seed, epochs, peak learning rate and training images."""
    keys = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        identity = record["identity"]
        keys[run_key(identity["label"], record["seed"], identity["recipe"]["epochs"],
                     identity["recipe"]["lr"], identity["data"]["train"]["images"])] = record["seconds"]
    found = {}
    for group in groups:
        kwargs = datasets[group.data_key]
        images = kwargs["train_images"] or 50_000 - kwargs["validation"]
        for run in group.runs:
            key = run_key(run.label, run.seed, run.recipe.epochs, run.recipe.lr,
                          run.train_images or images)
            if key in keys:
                found[run.name] = (run, images, keys[key])
    return found


def summary(group, result):
    record = result.record
    metrics = record.metrics
    val = metrics["val_accuracy"][-1] if metrics["val_accuracy"] else None
    test = metrics["test_accuracy"]
    rate = metrics["images_seen"] / metrics["train_seconds"] if metrics["train_seconds"] else 0
    fmt = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    return (f"DONE {group.chapter} | {result.label} | seed {result.seed} | "
            f"images/epoch {result.run.train_images or 'all'} | val {fmt(val)} | test {fmt(test)} | "
            f"epochs {len(metrics['val_accuracy'])} | {record.seconds:.1f} s | "
            f"{rate:,.0f} img/s | {record.precision} | {metrics['status']}")


def main(argv=None):
    args = parse_args(argv)
    log = Log(args.out)
    log(f"python {platform.python_version()}, torch {torch.__version__}, "
        f"cuda {torch.version.cuda}, device {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}"
        f", budget {args.budget:.0f} s{', TINY rehearsal' if args.tiny else ''}")
    if args.jpeg is not None:
        unpack(args.jpeg, log)
    stamp_code_version(log)
    groups, datasets, device = plan(args.tiny, 50_000 - DEPTH_STUDY["full"].validation)
    log(f"precision auto -> {resolve_precision('auto', device)} on {device}; chapter 6: "
        f"{BATCH_NORM_SETTINGS['full'].precision}")
    loaded, measured, done, skipped = {}, [], set(), []
    if args.done is not None:
        for name, (run, images, seconds) in recorded_runs(args.done, groups, datasets).items():
            done.add(name)
            measured.append((run, *steps_of(run, images), seconds))
        log(f"{len(done)} planned runs already recorded in {args.done}: not run again")
    for group in groups:
        if group.data_key not in loaded:
            started = time.perf_counter()
            loaded.clear()  # one data set on the GPU at a time
            loaded[group.data_key] = load_cifar10(**datasets[group.data_key])
            log(f"loaded {group.data_key}'s data ({datasets[group.data_key]}) in "
                f"{time.perf_counter() - started:.1f} s")
        data = loaded[group.data_key]
        kwargs = datasets[group.data_key]
        train_images = len(data.x_train)
        todo = [run for run in group.runs if run.name not in done]
        if not todo:
            continue
        guesses = [MARGIN * estimate(run, train_images, measured, device, kwargs["validation"],
                                     len(data.x_test)) for run in todo]
        left = args.budget - elapsed()
        if group.whole and sum(guesses) > left - SPARE_SECONDS:
            skipped += [(group.chapter, group.name, r.seed) for r in todo]
            log(f"skip {group.chapter}: {group.name} ({len(todo)} runs, ~{sum(guesses):.0f} s, "
                f"{left:.0f} s left)")
            continue
        for run, guess in zip(todo, guesses):
            left = args.budget - elapsed()
            if left < LAST_START or guess > left - SPARE_SECONDS:
                skipped.append((group.chapter, group.name, run.seed))
                log(f"skip {group.chapter}: {group.name}, seed {run.seed} (~{guess:.0f} s, "
                    f"{left:.0f} s left)")
                continue
            log(f"start {group.chapter}: {group.name}, seed {run.seed} ({run.name}; ~{guess:.0f} s)")
            try:
                (result,) = run_study([run], data, None, progress=False, precision=group.precision)
            except Exception:  # a run that fails is logged; the others still run
                log("FAILED " + run.name + "\n" + traceback.format_exc())
                continue
            log.record(result.record)
            done.add(run.name)
            steps, batch = steps_of(run, train_images)
            measured.append((run, steps, batch, result.record.seconds))
            log(summary(group, result))
            if len(measured) == 1:
                log(forecast(groups, datasets, measured, device, done, args.budget))
    left_out = {}
    for chapter, name, seed in skipped:
        left_out.setdefault(f"{chapter}: {name}", []).append(str(seed))
    log(f"finished: {len(done)} runs recorded, {len(skipped)} not run"
        + "".join(f"\n    not run: {name}, seeds {', '.join(seeds)}" for name, seeds in left_out.items()))


if __name__ == "__main__":
    main()
