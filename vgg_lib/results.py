"""The records the book ships, made and checked: ``make results [CHAPTER=10] [VERIFY=N]``, or
``python -m vgg_lib.results [--chapter 10] [--verify N] [--part I/K]``.

Without ``--verify`` it trains every run of a chapter's records study (one ``ChapterRecords``,
or several on different data, as chapter 6's two budgets) that has no record in
``results/<study>/`` yet and writes its record there (``experiments.studies.run_study``: one JSON
per finished run, atomically, so it resumes where it stopped; a record of another run is an error
naming the field, never overwritten). ``--part 1/2`` trains every second run only, starting with
the first, so two processes (one thread each) share the work.

``--verify N`` trains N recorded runs of the chapter again, chosen at random (``--seed``,
printed), each on the
threads its record was made with (where this machine has that many cores), and compares
their final numbers (test and validation accuracy, training loss and accuracy in eval mode) with
the record (those the study measures): identical where the machine's CPU model and recorded CPU
features (``device.RECORDED_FLAGS``), the precision, torch's version and the number of threads
are the record's (``exact``: on a CPU, the same threads in fp32 compute the same bits every
time); elsewhere within a tolerance derived from the recorded seed spread of the run's row:
``TOLERANCE_STDS`` standard deviations of that metric over the row's seeds. Exit status 1 when a
run does not reproduce.
"""

import argparse
import os
import random
import sys
from dataclasses import dataclass, field, replace

import torch

from .device import machine
from .experiments import batch_norm, depth_study, residual_networks
from .experiments.runs import results_dir
from .experiments.statistics import std
from .experiments.studies import run_study
from .training.cifar10 import load_cifar10

# Another machine, precision or torch: within 4 seed standard deviations of the run's row. The
# same seed on another CPU starts from the same weights and data order and drifts apart through
# rounding, so it differs from its record by less than another seed would; 4 (the book's claims
# rule, experiments.statistics) keeps a verify of 2 runs x 4 numbers from failing by chance on a
# record that reproduces, while a change to what the code computes still moves a run further.
TOLERANCE_STDS = 4.0
METRICS = ("test_accuracy", "val_accuracy", "train_eval_loss", "train_eval_accuracy")


@dataclass(frozen=True)
class ChapterRecords:
    """A chapter's records study, as ``make results`` makes and verifies it."""

    name: str             # the study: its records are results/<name>/
    runs: list            # its StudyRuns, each once
    data_kwargs: dict     # load_cifar10's keyword arguments for its data
    precision: str        # stated, not "auto": a record means the same run on any CPU
    threads: int = 1      # torch threads per run (None: leave torch's setting)
    fit_options: dict = field(default_factory=dict)   # the other fit options the chapter uses


def residual_networks_study():
    settings = residual_networks.RESIDUAL_STUDY["records"]
    return ChapterRecords(residual_networks.residual_study_name("records"),
                          residual_networks.residual_study_plan(settings),
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


def batch_norm_quick():
    """Chapter 6's runs in the quick profile (its 50 grid points: Experiment 1 on the long
    budget's data, Experiments 2 and 3 on the short one's), in fp32 as the chapter trains them,
    one thread per run. The "paper init + A" runs train their donor, the plain A of the same
    seed, first (``batch_norm.donor_trained_again``)."""
    settings, cpu = batch_norm.SETTINGS["quick"], torch.device("cpu")
    plan = batch_norm.batch_norm_plan(settings, batch_norm.donor_trained_again(settings, cpu))
    name = batch_norm.batch_norm_study_name("quick")
    return [ChapterRecords(name, plan["sweep"], settings.long.data_kwargs(cpu), settings.precision),
            ChapterRecords(name, plan["depth"] + plan["remedies"], settings.short.data_kwargs(cpu),
                           settings.precision)]


# chapter -> a function returning its ChapterRecords (or a list of them, on different data);
# each study's records are results/<name>/
CHAPTERS = {"6": batch_norm_quick, "8": depth_study_quick, "10": residual_networks_study}


def chapter_records(chapter):
    """The ``ChapterRecords`` of ``chapter``, as a list."""
    found = CHAPTERS[chapter]()
    return list(found) if isinstance(found, (list, tuple)) else [found]


def final_numbers(result):
    """The final metrics a verify compares, of a ``RunResult``."""
    numbers = {"test_accuracy": result.test_accuracy, "val_accuracy": result.val_accuracy[-1]}
    for key in ("train_eval_loss", "train_eval_accuracy"):
        numbers[key] = (result.history.epochs[-1].get(key) if result.history.epochs else None)
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vgg_lib.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", action="append", choices=sorted(CHAPTERS, key=int),
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
    for chapter in options.chapter or sorted(CHAPTERS, key=int):
        sets, verified = chapter_records(chapter), []
        for study in sets:
            name, runs = study.name, study.runs
            if study.threads is not None:
                torch.set_num_threads(study.threads)
            data = load_cifar10(**study.data_kwargs)
            folder = root / name
            fit_options = dict(study.fit_options, precision=study.precision)
            if not options.verify:
                mine = runs[part - 1::parts]
                print(f"chapter {chapter}: {len(mine)} of the {len(runs)} runs of {name} "
                      f"(part {part}/{parts}) into {folder}", flush=True)
                results = run_study(mine, data, folder, shipped=None, **fit_options)
                print(f"chapter {chapter}: {sum(not r.reused for r in results)} trained, "
                      f"{sum(r.reused for r in results)} already recorded")
                continue
            if not all((folder / f"{run.name}.json").is_file() for run in runs):
                parser.error(f"chapter {chapter}: not every run of {name} is recorded; make them "
                             f"first (make results CHAPTER={chapter}).")
            recorded = run_study(runs, data, folder, shipped=None, progress=False, **fit_options)
            verified += [(recorded, i, data, fit_options) for i in range(len(runs))]
        if not options.verify:
            continue
        chosen = sorted(random.Random(options.seed).sample(range(len(verified)), options.verify))
        print(f"chapter {chapter}: verifying {options.verify} of {len(verified)} runs (seed "
              f"{options.seed}): {', '.join(verified[i][0][verified[i][1]].name for i in chosen)}",
              flush=True)
        for i in chosen:
            recorded, index, data, fit_options = verified[i]
            stored = recorded[index]
            threads = torch.get_num_threads()
            if stored.record.threads <= (os.cpu_count() or 1):
                torch.set_num_threads(stored.record.threads)   # as recorded, so it can be exact
            try:
                (again,) = run_study([stored.run], data, None, shipped=None, progress=False,
                                     **fit_options)
            finally:
                torch.set_num_threads(threads)
            identical = exact(stored.record, again.record)
            before, after = final_numbers(stored), final_numbers(again)
            for key in METRICS:
                if before[key] is None and after[key] is None:
                    continue   # the study does not measure it (runs without train_eval_images)
                measured = None not in (before[key], after[key])
                allowed = TOLERANCE_STDS * spread(recorded, stored.run, key) if measured else 0.0
                ok = (before[key] == after[key] if identical or not measured
                      else abs(before[key] - after[key]) <= allowed)
                failed += not ok
                rule = "identical" if identical else f"within {allowed:.4g} ({TOLERANCE_STDS:g} seed stds)"
                print(f"  {stored.name} {key}: recorded {before[key]!r}, now {after[key]!r}: "
                      f"{'ok' if ok else 'DIFFERENT'} ({rule})", flush=True)
    if failed:
        print(f"{failed} numbers did not reproduce.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
