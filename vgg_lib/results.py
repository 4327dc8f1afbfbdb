"""The records the book ships, made and checked: ``make results [CHAPTER=10] [VERIFY=N]``, or
``python -m vgg_lib.results [--chapter 10] [--verify N] [--part I/K]``.

Without ``--verify`` it trains every run of a chapter's records study (one ``ChapterRecords``,
or several on different data, as chapter 6's two budgets) that has no record in
``results/<study>/`` yet and writes its record there (``experiments.studies.run_study``: one JSON
per finished run, atomically, so it resumes where it stopped; a record of another run is an error
naming the field, never overwritten). ``--part 1/2`` trains every second run only, starting with
the first, so two processes (one thread each) share the work. Chapter 11's records are the seeds
of its transfer study (``transfer.study.run_transfer_study``: a record and the pretrained network
per seed), made and verified seed by seed the same way (``TransferRecords``).

``--verify N`` trains N recorded runs of the chapter again, chosen at random (``--seed``,
printed), each on the
threads its record was made with (where this machine has that many cores), and compares
their final numbers (test and validation accuracy, training loss and accuracy in eval mode, those
the study measures; of a transfer seed, ``transfer_numbers``) with the record: identical where the
machine's CPU model and recorded CPU features (``device.RECORDED_FLAGS``), the precision, torch's
version and the number of threads are the record's (``exact``: on a CPU, the same threads in fp32
compute the same bits every time); elsewhere within a tolerance derived from the recorded seed
spread: ``TOLERANCE_STDS`` standard deviations of that metric over the run's row's seeds (of a
transfer number, over the recorded seeds). A probed run's gradient probe is compared too where
the run must be identical. Exit status 1 when a run does not reproduce.
"""

import argparse
import random
import sys
import tempfile
from dataclasses import dataclass, field, replace
from functools import partial

import torch

from .device import machine
from .experiments import (batch_norm, depth_study, layer_by_layer, residual_networks, test_protocol,
                          training_cifar10)
from .experiments.runs import record_path, recorded_threads, results_dir
from .experiments.statistics import std
from .experiments.studies import run_study
from .experiments.transfer_features import SETTINGS as TRANSFER_SETTINGS
from .training.cifar10 import load_cifar10
from .training.profiles import make_profile
from .transfer import study as transfer

# Another machine, precision or torch: within 4 seed standard deviations of the run's row. The
# same seed on another CPU starts from the same weights and data order and drifts apart through
# rounding, so it differs from its record by less than another seed would; 4 (the book's claims
# rule, experiments.statistics) keeps a verify of 2 runs x 4 numbers from failing by chance on a
# record that reproduces, while a change to what the code computes still moves a run further.
TOLERANCE_STDS = 4.0
METRICS = ("test_accuracy", "val_accuracy", "train_eval_loss", "train_eval_accuracy")
# Chapter 11's numbers that do not vary with the seed (the pixels' probe with every label) have
# no spread, yet round otherwise on another CPU: at least 10 of the 4,000 target test images.
TRANSFER_FLOOR = 0.0025


@dataclass(frozen=True)
class ChapterRecords:
    """A chapter's records study, as ``make results`` makes and verifies it."""

    name: str             # the study: its records are results/<name>/
    runs: list            # its StudyRuns, each once
    data_kwargs: dict     # load_cifar10's keyword arguments for its data
    precision: str        # stated, not "auto": a record means the same run on any CPU
    threads: int = 1      # torch threads per run (None: leave torch's setting)
    fit_options: dict = field(default_factory=dict)   # the other fit options the chapter uses

    def make(self, chapter, folder, part, parts):
        """Train the runs of part ``part`` of ``parts`` that ``folder`` has no record of."""
        data = load_cifar10(**self.data_kwargs)
        mine = self.runs[part - 1::parts]
        print(f"chapter {chapter}: {len(mine)} of the {len(self.runs)} runs of {self.name} "
              f"(part {part}/{parts}) into {folder}", flush=True)
        results = run_study(mine, data, folder, shipped=None, **self._fit_options())
        print(f"chapter {chapter}: {sum(not r.reused for r in results)} trained, "
              f"{sum(r.reused for r in results)} already recorded")

    def verify(self, chapter, folder, count, seed, only=None):
        """Train ``count`` recorded runs again (chosen with ``seed``; ``only``: these runs
        instead) and compare; the number of numbers that did not reproduce. ``RecordsMissing``
        when a run has no record."""
        if not all((folder / f"{run.name}.json").is_file() for run in self.runs):
            raise RecordsMissing(f"not every run of {self.name} is recorded")
        data = load_cifar10(**self.data_kwargs)
        recorded = run_study(self.runs, data, folder, shipped=None, progress=False, **self._fit_options())
        chosen = (choose(self.runs, count, seed, chapter, lambda run: run.name) if only is None
                  else [i for i, run in enumerate(self.runs) if run in only])
        failed = 0
        for i in chosen:
            stored = recorded[i]
            with recorded_threads(stored.record):
                (again,) = run_study([self.runs[i]], data, None, shipped=None, progress=False,
                                     **self._fit_options())
            before, after = final_numbers(stored), final_numbers(again)
            spreads = {key: spread(recorded, stored.run, key) for key in before   # METRICS and
                       if None not in (before[key], after[key])}   # chapter 9's protocols, if measured
            identical = exact(stored.record, again.record)
            failed += compare(stored.name, before, after, spreads, identical)
            if identical and stored.record.probe is not None:   # elsewhere it drifts as the run does
                ok = stored.record.probe == again.record.probe
                failed += not ok
                print(f"  {stored.name} probe ({len(stored.record.probe['steps'])} steps): "
                      f"{'ok' if ok else 'DIFFERENT'} (identical)", flush=True)
        return failed

    def _fit_options(self):
        return dict(self.fit_options, precision=self.precision)


@dataclass(frozen=True)
class RecordsOnSeveralData:
    """A records study whose runs train on different data (chapter 6: Experiment 1 on the long
    budget's, Experiments 2 and 3 on the short one's): one ``ChapterRecords`` per data, one
    study folder; a verify chooses among all their runs."""

    parts: tuple          # ChapterRecords of the same name, precision and threads

    @property
    def name(self):
        return self.parts[0].name

    @property
    def threads(self):
        return self.parts[0].threads

    def make(self, chapter, folder, part, parts):
        for records in self.parts:
            records.make(chapter, folder, part, parts)

    def verify(self, chapter, folder, count, seed):
        runs = [run for records in self.parts for run in records.runs]
        chosen = [runs[i] for i in choose(runs, count, seed, chapter, lambda run: run.name)]
        return sum(records.verify(chapter, folder, None, seed, only=[r for r in chosen if r in records.runs])
                   for records in self.parts if any(r in records.runs for r in chosen))


@dataclass(frozen=True)
class TransferRecords:
    """Chapter 11's records: the seeds of its transfer study, each a run record and the
    pretrained network it was derived from (``transfer.study``), made in the settings'
    precision (fp32) on ``threads`` threads."""

    settings: object      # a TransferSettings
    threads: int = 1

    @property
    def name(self):
        return transfer.study_name(self.settings)

    def make(self, chapter, folder, part, parts):
        """Compute the seeds of part ``part`` of ``parts`` that ``folder`` has no record of."""
        seeds = self.settings.seeds[part - 1::parts]
        print(f"chapter {chapter}: {len(seeds)} of the {len(self.settings.seeds)} seeds of "
              f"{self.name} (part {part}/{parts}) into {folder}", flush=True)
        source, target = transfer.load_tasks(self.settings)
        results = transfer.run_transfer_study(self.settings.replace(seeds=seeds), source, target,
                                              folder, shipped=None)
        print(f"chapter {chapter}: {sum(r['origin'] == 'trained' for r in results)} computed, "
              f"{sum(r['origin'] != 'trained' for r in results)} already recorded")

    def verify(self, chapter, folder, count, seed):
        """Compute ``count`` recorded seeds again (chosen with ``seed``, in a temporary folder)
        and compare every number; the number of numbers that did not reproduce."""
        seeds = self.settings.seeds
        if not all(record_path(folder, transfer.seed_record_name(s)).is_file() for s in seeds):
            raise RecordsMissing(f"not every seed of {self.name} is recorded")
        source, target = transfer.load_tasks(self.settings)
        recorded = transfer.run_transfer_study(self.settings, source, target, folder,
                                               progress=False, shipped=None)
        numbers = [transfer_numbers(r["record"]) for r in recorded]
        failed = 0
        for i in choose(seeds, count, seed, chapter, lambda s: f"seed{s}"):
            stored = recorded[i]["record"]
            with recorded_threads(stored), tempfile.TemporaryDirectory() as scratch:
                again = transfer.seed_record(self.settings, source, target, seeds[i], scratch)
            spreads = {key: std([n[key] for n in numbers]) for key in numbers[i]}
            failed += compare(f"seed{seeds[i]}", numbers[i], transfer_numbers(again), spreads,
                              exact(stored, again), floor=TRANSFER_FLOOR, quiet=True)
        return failed


class RecordsMissing(Exception):
    """A verify asked for before every record exists."""


def residual_networks_study():
    """Chapter 10's records: its 50 runs, the two it probes (E-8, plain and residual, seed 0)
    with their gradient probe at the chapter's steps, kept in their records."""
    settings = residual_networks.RESIDUAL_STUDY["records"]
    steps = residual_networks.probed_steps(settings, settings.train_images)
    return ChapterRecords(residual_networks.residual_study_name("records"),
                          residual_networks.residual_study_plan(settings, probe_steps=steps),
                          settings.data_kwargs(torch.device("cpu")), settings.precision,
                          settings.threads, {"eval_every_epoch": False})


def depth_study_quick():
    """Chapter 8's quick study (its 36 distinct runs), in fp32 whatever the CPU, as the records
    the chapter ships were made (those on 2 threads, a verify of them too: see ``exact``)."""
    settings = depth_study.DEPTH_STUDY["quick"]
    plan = depth_study.depth_study_plan(settings, settings.train_images)
    runs = {run.name: run for view in depth_study.VIEWS for run in plan[view]}
    return ChapterRecords(depth_study.depth_study_name("quick"), list(runs.values()),
                          settings.data_kwargs(torch.device("cpu")), "fp32")


def depth_study_plateau(pilots=False):
    """Chapter 8's long budget, each run ended by the paper's plateau schedule, in fp32 on one
    thread per run (``--part 1/2`` and ``--part 2/2`` share two cores, and a verify on the same CPU
    is bit-exact): its 21 runs (a run's length depends on its seed: seeds 0, 1 and 2 took 1.9, 2.3
    and 2.3 CPU-hours, 6.4 in all), or (``pilots``) the pilot runs that chose its settings (32
    CPU-minutes). A verify of one run takes 10-30 minutes of CPU time (2026-12-05, the book's
    2-core Xeon)."""
    settings = depth_study.DEPTH_STUDY["plateau"]
    runs = (depth_study.plateau_pilot_plan(settings) if pilots
            else depth_study.plateau_budget_plan(settings, 50_000 - settings.validation))
    return ChapterRecords(depth_study.depth_study_name("plateau") + ("_pilot" if pilots else ""), runs,
                          settings.data_kwargs(torch.device("cpu")), "fp32", threads=1)


def batch_norm_quick():
    """Chapter 6's runs in the quick profile (its 50 grid points: Experiment 1 on the long
    budget's data, Experiments 2 and 3 on the short one's), in fp32 as the chapter trains them,
    one thread per run. The "paper init + A" runs train their donor, the plain A of the same
    seed, first (``batch_norm.donor_trained_again``)."""
    settings, cpu = batch_norm.SETTINGS["quick"], torch.device("cpu")
    plan = batch_norm.batch_norm_plan(settings, batch_norm.donor_trained_again(settings, cpu))
    name = batch_norm.batch_norm_study_name("quick")
    return RecordsOnSeveralData((
        ChapterRecords(name, plan["sweep"], settings.long.data_kwargs(cpu), settings.precision),
        ChapterRecords(name, plan["depth"] + plan["remedies"], settings.short.data_kwargs(cpu),
                       settings.precision)))


def slim_head_study():
    """Chapter 4's slim-head study (2 heads x its seeds), in fp32 on one thread: the runs are
    small (a verify of one takes a minute or two), and one thread makes a verify on the same CPU
    bit-exact whatever else the machine runs, and lets ``--part 1/2`` and ``--part 2/2`` share two
    cores."""
    settings = layer_by_layer.SLIM_HEAD_STUDY
    return ChapterRecords(layer_by_layer.SLIM_HEAD_STUDY_NAME, layer_by_layer.slim_head_plan(settings),
                          settings.data_kwargs(torch.device("cpu")), "fp32", threads=1)


def training_quick(ablation=False):
    """Chapter 5's quick profile, seeds 0-2 (seed 0 with its network), or (``ablation``) its
    runs without each of its tricks, in fp32 on one thread: one-thread runs (``--part 1/3`` ...)
    share the cores, and a verify on the same CPU is bit-exact whatever else the machine runs."""
    profile = make_profile("quick", "cpu")
    plan = training_cifar10.ablation_plan if ablation else training_cifar10.profile_plan
    name = training_cifar10.ABLATION_STUDY if ablation else training_cifar10.training_study_name("quick")
    return ChapterRecords(name, plan(profile), profile.data_kwargs(), "fp32", threads=1)


def transfer_quick():
    """Chapter 11's quick seeds (those the page computes from nothing), fp32, one thread."""
    return TransferRecords(TRANSFER_SETTINGS["quick"])


def test_protocol_quick():
    """Chapter 9's quick runs (fixed and jittered scale, five seeds each, every protocol
    evaluated on the trained network), in fp32 on one thread, as the chapter trains them (no
    validation pass before the last epoch's)."""
    settings = test_protocol.SETTINGS["quick"]
    return ChapterRecords(test_protocol.protocol_study_name("quick"),
                          test_protocol.protocol_study_plan(settings),
                          settings.data_kwargs(torch.device("cpu")), "fp32", 1,
                          {"eval_every_epoch": False})


# chapter -> a function returning what makes and verifies its records (ChapterRecords for a
# study of StudyRuns, RecordsOnSeveralData for one on several data sets, TransferRecords for
# chapter 11's seeds); each in results/<name>/
# "8-plateau" (chapter 8's long budget) and "5-ablation": kept apart so that a verify of "8" or "5" stays short.
CHAPTERS = {"4": slim_head_study, "5": training_quick, "5-ablation": partial(training_quick, ablation=True),
            "6": batch_norm_quick, "8": depth_study_quick,
            "8-plateau": depth_study_plateau, "8-plateau-pilots": partial(depth_study_plateau, pilots=True),
            "9": test_protocol_quick,
            "10": residual_networks_study, "11": transfer_quick}


def chapter_order(chapter):
    """Sort key of ``CHAPTERS``' keys: by chapter number, then the part: "8", "8-plateau", "8-plateau-pilots", "9"."""
    number, _, part = chapter.partition("-")
    return int(number), part


def final_numbers(result):
    """The final metrics a verify compares, of a ``RunResult``."""
    numbers = {"test_accuracy": result.test_accuracy, "val_accuracy": result.val_accuracy[-1]}
    for key in ("train_eval_loss", "train_eval_accuracy"):
        numbers[key] = (result.history.epochs[-1].get(key) if result.history.epochs else None)
    for name, evaluated in result.metrics.get("protocols", {}).items():   # chapter 9's
        numbers[f"{name} accuracy"] = evaluated["accuracy"]
    return numbers


def spread(results, run, key):
    """The standard deviation of ``key`` over the recorded seeds of ``run``'s row: the runs that
    are ``run`` but for the seed (chapter 8's label B has two rows, one per budget view)."""
    unseeded = replace(run, recipe=run.recipe.replace(seed=0))
    return std([final_numbers(r)[key] for r in results
                if replace(r.run, recipe=r.run.recipe.replace(seed=0)) == unseeded])


def same_kind(record):
    """Whether this machine, precision aside, is the record's: CPU model and recorded CPU
    features (virtual machines often report one generic model name for CPUs of different
    generations, whose kernels round differently), and torch version (a verify trains on the
    CPU)."""
    here = machine()
    return (record.machine.get("cpu") == here["cpu"]
            and sorted(record.machine.get("flags", [])) == sorted(here["flags"])
            and record.torch == torch.__version__)


def exact(stored, again):
    """Whether a run trained again (``again``, a ``RunRecord``) must reproduce ``stored`` bit for
    bit: the same kind of machine (``same_kind``), the same precision and the same number of
    threads (a CPU's kernels split their sums by thread, and a sum split otherwise rounds
    otherwise)."""
    return (same_kind(stored) and stored.precision == again.precision
            and stored.threads == again.threads)


def transfer_numbers(record):
    """The numbers a verify compares, of a transfer seed's ``RunRecord``: the source network's
    test and validation accuracy, every probe's and target run's test accuracy."""
    metrics = record.metrics
    numbers = {"source test_accuracy": metrics["test_accuracy"],
               "source val_accuracy": metrics["source_val_accuracy"]}
    for row in metrics["probes"]:
        numbers[f"probe {row['network']} {row['layer']} {row['budget']}/class"] = row["test"]
    for row in metrics["training"]:
        numbers[f"{row['method']} {row['budget']}/class"] = row["test"]
    return numbers


def choose(items, count, seed, chapter, name):
    """The indices of ``count`` of ``items`` chosen at random with ``seed``, announced."""
    chosen = sorted(random.Random(seed).sample(range(len(items)), count))
    print(f"chapter {chapter}: verifying {count} of {len(items)} runs (seed {seed}): "
          f"{', '.join(name(items[i]) for i in chosen)}", flush=True)
    return chosen


def compare(name, before, after, spreads, identical, floor=0.0, quiet=False):
    """Compare the recorded numbers ``before`` with ``after`` (dicts of the same keys): equal
    when ``identical``, else within ``TOLERANCE_STDS`` x ``spreads[key]`` (at least ``floor``).
    Prints a line per number (``quiet``: only those that differ, and a summary); returns how
    many differ."""
    failed = 0
    for key in before:
        if before[key] is None and after[key] is None:
            continue   # the study does not measure it (runs without train_eval_images)
        measured = None not in (before[key], after[key])
        allowed = max(TOLERANCE_STDS * spreads[key], floor) if measured else 0.0
        ok = (before[key] == after[key] if identical or not measured
              else abs(before[key] - after[key]) <= allowed)
        failed += not ok
        rule = "identical" if identical else f"within {allowed:.4g} ({TOLERANCE_STDS:g} seed stds)"
        if not (quiet and ok):
            print(f"  {name} {key}: recorded {before[key]!r}, now {after[key]!r}: "
                  f"{'ok' if ok else 'DIFFERENT'} ({rule})", flush=True)
    if quiet:
        rule = "identical" if identical else f"within {TOLERANCE_STDS:g} seed stds"
        print(f"  {name}: {len(before) - failed} of {len(before)} numbers ok ({rule})", flush=True)
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vgg_lib.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", action="append", choices=sorted(CHAPTERS, key=chapter_order),
                        help="the chapter whose records to make (default: all)")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="train N recorded runs again and compare (nothing is written)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the choice of runs to verify")
    parser.add_argument("--part", default="1/1", metavar="I/K",
                        help="make only every K-th run, starting with the I-th (default 1/1)")
    options = parser.parse_args(argv)
    root = results_dir()
    if root is None:
        parser.error("No results folder: run from the book's repository, or set VGG_RESULTS_DIR "
                     "(and not VGG_RECORDS=off).")
    try:
        part, parts = (int(n) for n in options.part.split("/"))
    except ValueError:
        part, parts = 0, 0
    if not 1 <= part <= parts:
        parser.error(f"--part {options.part}: use I/K with 1 <= I <= K, e.g. 1/2 and 2/2.")
    failed = 0
    for chapter in options.chapter or sorted(CHAPTERS, key=chapter_order):
        study = CHAPTERS[chapter]()
        if study.threads is not None:
            torch.set_num_threads(study.threads)
        folder = root / study.name
        if not options.verify:
            study.make(chapter, folder, part, parts)
            continue
        try:
            failed += study.verify(chapter, folder, options.verify, options.seed)
        except RecordsMissing as missing:
            parser.error(f"chapter {chapter}: {missing}; make them first "
                         f"(make results CHAPTER={chapter}).")
    if failed:
        print(f"{failed} numbers did not reproduce.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
