"""Submissions: what is graded in each, running it, and deciding its answers in the grader.

Each ``check("<id>", answer)`` in a graded notebook only records the exercise id and the answer
(vgg_lib/exercises/checking.py); the grader reads those records defensively and checks every
answer again, against the registry (``vgg_lib.exercises``), in its own process: a status the
kernel claims, a replaced ``check`` or a forged line earns nothing a real answer would not. The
last answer to each exercise counts. What the grader spends on a submission is bounded: an answer
is read in microseconds (vgg_lib/exercises/checking.py refuses numbers past float's range before
computing them), at most MAX_ANSWERS records are graded, and grading stops at the submission's
own deadline (its time limit, with GRADING_SECONDS at least for its records); what is left is
counted in its row. Which exercises are graded comes from the chapters handed out, never from
what the submission mentions.
"""

import ast
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..exercises import checking, exercise_ids
from .job_watch import read_regular

SYMBOLS = {"correct": "✅", "wrong": "❌", "unanswered": "✏️", "unreadable": "⚠️", "not run": "⏹", "missing": "∅"}
MAX_NOTEBOOK_BYTES = 32 << 20
MAX_RESULTS_BYTES = 1 << 20
MAX_RESULT_LINE = 4096
MAX_ANSWERS = 1000  # records graded per submission: a chapter has a dozen exercises
MAX_POWERS = 2  # "2**5" and "(2**5)**3" are answers; a tower of powers is an attack on the grader
GRADING_SECONDS = 5  # of the grader's time for a submission's records, even past its time limit
STARTUP_SECONDS = 30  # allowed beyond --timeout for starting and stopping the sandbox and kernel


@dataclass
class Result:
    """One exercise of one submission: the last status the grader gave it, and how many answers."""

    status: str
    attempts: int = 0

    @property
    def score(self):
        return 1 if self.status == "correct" else 0


@dataclass
class Chapter:
    name: str
    exercises: list  # registered exercise ids, in the notebook's order
    notebook: str = ""  # its file name, to match submissions by


@dataclass
class Submission:
    student: str
    notebook: Path
    outcome: str = "ran to the end"  # or what stopped it / went wrong
    seconds: float = 0.0
    checks_in_source: list = field(default_factory=list)  # registered ids its code calls check on
    log: list = field(default_factory=list)  # [{"exercise": id, "status": status}, ...] decided here
    problems: dict = field(default_factory=dict)  # what was wrong with its results: count
    notes: list = field(default_factory=list)  # what its sandbox could not give it ("network not isolated")
    executed: object = None  # the executed notebook's text, when one came back
    chapter: object = None  # the Chapter it is graded against

    def result(self, exercise_id):
        entries = [e["status"] for e in self.log if e.get("exercise") == exercise_id]
        if entries:
            return Result(entries[-1], len(entries))
        return Result("not run" if exercise_id in self.checks_in_source else "missing")

    @property
    def score(self):
        exercises = self.chapter.exercises if self.chapter else []
        return sum(self.result(e).score for e in exercises), len(exercises)

    @property
    def run_summary(self):
        text = "; ".join([self.outcome] + self.notes)
        if not self.problems:
            return text
        ignored = sum(self.problems.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.problems.items()))
        return f"{text}; {ignored} results line(s) ignored ({kinds})"


# Which exercises a notebook checks: real calls in code, not comments or strings.

def _called_ids(source):
    """Ids of the ``check("<id>", ...)`` calls (also ``vgg_lib.check``, ``checks.check``) in a code
    cell, read with ``ast``; comments and strings do not count. A cell that does not parse counts
    nothing."""
    from . import code_cells

    try:
        tree = code_cells.parse(source)
    except Exception:
        return []
    ids = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else None
            if name == "check":
                ids.append((node.lineno, node.col_offset, node.args[0].value))
    return [i for _, _, i in sorted(ids)]


def check_ids(nb, known=None):
    """Exercise ids of the ``check("<id>", ...)`` calls in a notebook's code cells, in order;
    only registered ones when ``known`` (a set of ids) is given."""
    ids = []
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and isinstance(cell.get("source"), str):
            ids += _called_ids(cell.source)
    ids = list(dict.fromkeys(ids))
    return [i for i in ids if i in known] if known is not None else ids


def known_exercises():
    return set(exercise_ids())


def chapters_from(notebooks):
    """[Chapter] of the given (instructor's) notebooks: their registered checks."""
    known = known_exercises()
    return [Chapter(Path(p).stem, check_ids(nbformat.read(p, as_version=4), known), Path(p).name)
            for p in notebooks]


def exercises_to_grade(submissions, reference_notebooks=()):
    """The registered exercises of the reference notebooks, in order. (The submissions are not
    asked: what a submission mentions never changes what is graded.)"""
    return list(dict.fromkeys(e for c in chapters_from(reference_notebooks) for e in c.exercises))


def assign_chapter(submission, chapters):
    for chapter in chapters:
        if chapter.notebook and chapter.notebook == submission.notebook.name:
            return chapter
    overlap = [(len(set(c.exercises) & set(submission.checks_in_source)), -i, c) for i, c in enumerate(chapters)]
    best = max(overlap, key=lambda t: t[:2], default=None)
    if best and best[0]:
        return best[2]
    return chapters[0] if len(chapters) == 1 else None


def find_submissions(folder):
    """[(student, notebook path)] for ``folder/<student>.ipynb`` and ``folder/<student>/*.ipynb``;
    links are listed too (and reported as unreadable), never followed."""
    folder = Path(folder)
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        for name in sorted(files):
            if name.endswith(".ipynb"):
                path = Path(top) / name
                relative = path.relative_to(folder)
                found.append((relative.parts[0] if len(relative.parts) > 1 else path.stem, path))
    return sorted(found, key=lambda item: str(item[1]))


# Deciding the answers: untrusted input, bounded work.

class _Unreadable(Exception):
    pass


def answer_value(logged):
    """The answer a kernel logged (see ``checking.logged_answer``) as a Python value for
    ``checking.grade``; raises _Unreadable for anything else."""
    if logged is None or isinstance(logged, bool):
        return logged
    if isinstance(logged, (int, float)):
        return logged
    if isinstance(logged, str):
        if len(logged) > checking.MAX_LOGGED_CHARACTERS or logged.count("**") + logged.count("^") > MAX_POWERS:
            raise _Unreadable
        return logged
    if isinstance(logged, dict) and len(logged) == 1:
        (key, value), = logged.items()
        if key == "bool" and isinstance(value, bool):
            return value
        if key == "float" and value in ("nan", "inf", "-inf"):
            return float(value)
    raise _Unreadable


def grade_answer(exercise_id, logged):
    """correct / wrong / unanswered / unreadable, decided here from the logged answer alone."""
    try:
        status, _ = checking.grade(exercise_id, answer_value(logged))
    except (_Unreadable, ArithmeticError, ValueError, TypeError, RecursionError, MemoryError):
        return "unreadable"
    return status if status in checking.STATUSES else "unreadable"


def read_results(data, known, deadline=None):
    """([{"exercise", "status"}], {problem: count}) from the bytes of a kernel's results file,
    grading at most MAX_ANSWERS records and none after ``deadline`` (time.monotonic())."""
    entries, problems = [], {}

    def problem(kind):
        problems[kind] = problems.get(kind, 0) + 1

    if len(data) > MAX_RESULTS_BYTES:
        problem("past the 1 MB results limit")
        data = data[:MAX_RESULTS_BYTES]
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        if len(entries) >= MAX_ANSWERS:
            problem(f"past the {MAX_ANSWERS:,}-answer limit")
            continue
        if deadline is not None and time.monotonic() > deadline:
            problem("past the time limit")
            continue
        if len(raw) > MAX_RESULT_LINE:
            problem("too long")
            continue
        try:
            record = json.loads(raw.decode("utf-8"), parse_constant=lambda name: None)
        except UnicodeDecodeError:
            problem("not UTF-8")
            continue
        except (ValueError, RecursionError):
            problem("not JSON")
            continue
        if not isinstance(record, dict):
            problem("not a JSON object")
            continue
        exercise = record.get("exercise")
        if not isinstance(exercise, str) or exercise not in known:
            problem("unknown exercise")
            continue
        if "answer" not in record:
            problem("without an answer")
            continue
        entries.append({"exercise": exercise, "status": grade_answer(exercise, record["answer"])})
    return entries, problems


def clean(text, limit=300):
    """Text from inside a sandbox, safe to show: printable, one line, not too long."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return text[:limit] + ("…" if len(text) > limit else "")


def job_outcome(finished, timeout, memory_mb):
    """How the run ended, in words, naming the real cause where the grader knows it."""
    where = f" in cell {finished.cell}" if finished.cell is not None else ""
    if finished.refused:
        return f"not run: {clean(finished.refused, 160)}"
    if finished.timed_out:
        return f"stopped at the {timeout} s time limit{where} (the sandbox was killed)"
    if finished.over_memory:
        return f"stopped{where}: the notebook used more than the {memory_mb} MB memory limit (resident)"
    if finished.outcome:
        return clean(finished.outcome)
    killed_by = -finished.returncode if finished.returncode < 0 else finished.returncode - 128  # bwrap: 128 + n
    if killed_by in {int(s) for s in signal.valid_signals()}:
        return (f"the runner was killed by {signal.Signals(killed_by).name}{where}, not by the grader: by the "
                f"notebook's own code, or by the system for lack of memory")
    last = f": {clean(finished.log_tail, 160)}" if finished.log_tail else ""
    return f"the runner stopped without a report (exit status {finished.returncode}){where}{last}"


def run_submission(student, path, grading, timeout=600, kernel_name="python3", known=None):
    """Run one notebook with ``grading`` (a jobs.Grading) and grade its answers here; never raises
    for a submission."""
    submission = Submission(student, Path(path))
    start = time.monotonic()
    try:
        _run(submission, grading, timeout, kernel_name, known, start)
    except Exception as error:  # a bug of ours, or the machine: this submission only
        submission.outcome = f"the grader failed on this notebook: {type(error).__name__}: {clean(error, 120)}"
    submission.seconds = time.monotonic() - start
    return submission


def _run(submission, grading, timeout, kernel_name, known, start):
    known = known_exercises() if known is None else known
    try:
        data = read_regular(submission.notebook, MAX_NOTEBOOK_BYTES)
        if len(data) > MAX_NOTEBOOK_BYTES:
            raise ValueError("larger than 32 MB")
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        code = [c for c in nb.cells if c.get("cell_type") == "code"]
    except Exception as error:  # not JSON, not a notebook, a link...
        submission.outcome = f"unreadable notebook: {type(error).__name__}"
        return
    submission.checks_in_source = check_ids(nb, known)
    finished = grading.run(nbformat.writes(nb), timeout, kernel_name)
    submission.outcome = job_outcome(finished, timeout, grading.limits.memory_mb) if code else "no code cells"
    if finished.confined is not None and not finished.confined.get("network"):
        submission.notes.append("network not isolated (no network namespace on this machine)")
    deadline = max(start + grading.limits.seconds, time.monotonic() + GRADING_SECONDS)
    submission.log, submission.problems = read_results(finished.results, known, deadline)
    if finished.results_problem:
        submission.problems[finished.results_problem] = 1
    submission.executed = finished.executed
