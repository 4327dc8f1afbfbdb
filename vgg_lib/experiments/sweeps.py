"""The same training run repeated over learning rates and seeds, and summarised with its spread.

One seed is an anecdote: two runs that differ only in their seed can end several points apart.
``train_grid`` trains a fresh model for every (learning rate, seed) pair, a use of the study
engine (``vgg_lib.experiments.studies``); ``summarise`` turns the runs into mean and standard
deviation per learning rate, and ``format_sweep_table`` prints them as plain, deterministic text.
"""

import math
from contextlib import nullcontext
from dataclasses import dataclass

from ..tables import text_table
from ..training.diagnostics import FIELDS
from ..training.recipe import TrainConfig
from .runs import recorded_threads
from .statistics import mean_std, plus_minus
from .studies import StudyRun, run_study


def grid_runs(build, label, lrs, seeds, recipe=None, probe_steps=None, spec=None, **changes):
    """The ``StudyRun``s of ``train_grid`` (one per learning rate in ``lrs`` and seed in
    ``seeds``, in that order), for a plan that lists them without training them."""
    if not lrs or not seeds:
        raise ValueError("Give at least one learning rate and one seed.")
    recipe = (recipe or TrainConfig()).replace(**changes)
    return [StudyRun(label, spec, recipe.replace(lr=lr, seed=seed), build=build,
                     probe_steps=probe_steps if seed == seeds[0] else None, probe_fields=FIELDS)
            for lr in lrs for seed in seeds]


def train_grid(build, data, label, lrs, seeds, recipe=None, probe_steps=None, keep_models=True,
               log=print, spec=None, folder=None, shipped="auto", **fit_options):
    """Train ``build(seed)`` once per learning rate in ``lrs`` and seed in ``seeds``; a list of
    ``RunResult`` (label, lr, seed, history, model, probe), in that order.

    ``build(seed)`` returns a fresh model; it runs right after ``seed_everything(seed)``, so each
    seed starts from its own initial weights and the same seed always from the same ones (the
    seed is passed on for builds that need more, e.g. a trained model of the same seed).
    ``probe_steps``: record activation and gradient statistics (a ``TrainingProbe``, every field
    of it, kept in the run's record) at these steps in the runs of the first seed. ``log`` gets one line per run trained (``None``:
    silent). Every run follows ``recipe`` (a ``TrainConfig``; the default one when None) with
    its own learning rate and seed; keyword arguments named like its fields change it, the
    others go to ``fit``.

    ``folder``: keep each run's record there (``run_study``: a run recorded there, or shipped in
    ``shipped``, "auto": the repository's ``results/<name>`` for ``study_folder(<name>)``, is
    read instead of trained, probe included; it has no ``model``: ``retrained``). A
    record needs the network's ``spec`` (the ``ModelSpec`` that ``build`` makes; the label
    names what else ``build`` does, e.g. another initialisation). Without a folder nothing is
    stored.
    """
    fit_options.pop("progress", None)  # one run after the other, no bar (the log says each)
    changes = {k: fit_options.pop(k) for k in list(fit_options) if k in TrainConfig.field_names()}
    runs = grid_runs(build, label, lrs, seeds, recipe, probe_steps, spec, **changes)
    return run_study(runs, data, folder, shipped=shipped, progress=False, keep_models=keep_models,
                     log=log, **fit_options)


def retrained(result, data, **fit_options):
    """``result`` (a ``RunResult``) with its network: itself when it trained in this call with
    ``keep_models``, else its run trained once more on ``data`` (the data it was trained on),
    seeded as before and on the threads of its record (where this machine has as many cores), so
    the same run: on the kind of machine and in the precision of its record the very same numbers,
    elsewhere numbers that drift apart through rounding. For a later cell that needs the trained
    network of a run read from its record. ``fit_options`` as for ``run_study``."""
    if result.model is not None:
        return result
    with recorded_threads(result.record) if result.record is not None else nullcontext():
        (again,) = run_study([result.run], data, None, progress=False, keep_models=True, log=None,
                             **fit_options)   # a CPU's sums round by how they are split: its threads
    return again


def first_step_below(history, threshold, window=8):
    """The first step at which the mean training loss of the last ``window`` steps is below
    ``threshold``, or None if that never happened (a run stuck on a plateau, or diverged).

    With ten classes a network that has learned nothing sits at a loss of ln 10 = 2.30; the step
    at which the loss leaves that plateau measures how long training stalled.
    """
    losses = history.steps
    total = 0.0
    for step, loss in enumerate(losses, start=1):
        if not math.isfinite(loss):
            return None
        total += loss - (losses[step - 1 - window] if step > window else 0.0)
        if total / min(step, window) < threshold:
            return step
    return None


@dataclass
class Summary:
    label: str
    lr: float
    runs: int
    diverged: int
    val: list    # final validation accuracy of each run that did not diverge (what choices use)
    test: list   # test accuracy of each run that did not diverge (measured once, at its end)
    below: list = None  # first_step_below of every run (None: never), when asked for
    loss_below: float = None
    window: int = 8

    @property
    def val_mean_std(self):
        return mean_std(self.val)

    @property
    def test_mean_std(self):
        return mean_std(self.test)


def summarise(runs, loss_below=None, window=8):
    """One ``Summary`` per (label, learning rate), in the order the runs came.

    Accuracies are taken from the runs that did not diverge; ``diverged`` counts the others.
    ``loss_below``: also record, for every run, ``first_step_below(history, loss_below, window)``.
    """
    groups = {}
    for run in runs:
        groups.setdefault((run.label, run.lr), []).append(run)
    summaries = []
    for (label, lr), members in groups.items():
        finished = [r for r in members if not r.diverged]
        below = (None if loss_below is None
                 else [first_step_below(r.history, loss_below, window) for r in members])
        summaries.append(Summary(label, lr, len(members), len(members) - len(finished),
                                 [r.history.final_val_accuracy for r in finished
                                  if r.history.final_val_accuracy is not None],
                                 [r.history.final_test_accuracy for r in finished], below,
                                 loss_below, window))
    return summaries


def _steps(below):
    """"12 / 40 / never": the runs' steps, smallest first."""
    found = sorted(step for step in below if step is not None)
    return " / ".join([str(step) for step in found] + ["never"] * (len(below) - len(found)))


def format_sweep_table(summaries, title=None):
    """Plain-text table: model, learning rate, validation and test accuracy (%) at the end of the
    runs, diverged runs, and, for summaries made with ``loss_below``, the step at which each
    run's loss got below it."""
    header = ["model", "lr", "val acc. %", "test acc. %", "diverged"]
    def accuracy(values, summary):
        if values:
            return plus_minus(values, widths=(5, 4))
        return "diverged" if summary.diverged == summary.runs else "-"

    rows = [[s.label, f"{s.lr:g}", accuracy(s.val, s), accuracy(s.test, s), f"{s.diverged}/{s.runs}"]
            for s in summaries]
    if summaries and all(s.below is not None for s in summaries):
        header.append(f"steps to loss < {summaries[0].loss_below:g}")
        for row, s in zip(rows, summaries):
            row.append(_steps(s.below))
    lines = [text_table(header, rows, title=title)]
    seeds = {s.runs for s in summaries}
    notes = [f"accuracy: mean ± standard deviation over {', '.join(str(n) for n in sorted(seeds))} seeds"]
    if len(header) > 5:
        notes.append(f"steps: first step at which the mean training loss of the last "
                     f"{summaries[0].window} steps is below {summaries[0].loss_below:g}, per seed")
    return "\n".join(lines + notes)
