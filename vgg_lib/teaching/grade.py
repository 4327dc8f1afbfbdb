"""Grade submitted notebooks by running them and reading back their exercise checks.

    python -m vgg_lib.teaching.grade submissions/ --report report.md --csv scores.csv --timeout 600

``submissions/`` holds one notebook per student (``alice.ipynb``) or one folder per student
(``alice/01_building_vgg.ipynb``, ...). Each notebook runs from top to bottom in a fresh kernel
(in a scratch folder, with a time limit for the whole notebook), carrying on past cells that
raise. Every ``check(...)`` call appends its result to the file named by ``VGG_CHECK_LOG``
(see vgg_lib/exercises/checking.py); the last result of each exercise counts. A notebook that loops is
stopped at the time limit; the checks it had already run still count.

The exercises graded are those whose ``check("<id>", ...)`` calls appear in any submission, or
in the notebooks given with ``--exercises-from`` (the chapters the students started from).
Submissions run with your permissions: grade them in a container or a throw-away account.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

SYMBOLS = {"correct": "✅", "wrong": "❌", "unanswered": "✏️", "unreadable": "⚠️", "not run": "⏹", "missing": "∅"}
LEGEND = ("✅ correct · ❌ wrong · ✏️ no answer yet · ⚠️ answer not readable as a number · "
          "⏹ check did not run (the notebook stopped, or the cell raised, before it) · "
          "∅ no check for this exercise in the submission")
_CHECK_CALL = re.compile(r"\bcheck\(\s*(['\"])(?P<id>[^'\"]+)\1")


@dataclass
class Result:
    """One exercise of one submission: the last status its check reported, and how many calls."""

    status: str
    attempts: int = 0

    @property
    def score(self):
        return 1 if self.status == "correct" else 0


@dataclass
class Submission:
    student: str
    notebook: Path
    outcome: str = "ran to the end"  # or what stopped it / went wrong
    seconds: float = 0.0
    checks_in_source: list = field(default_factory=list)
    log: list = field(default_factory=list)  # [{"exercise": id, "status": status}, ...] in order
    executed: object = None  # the executed notebook, when it could be read

    def result(self, exercise_id):
        entries = [e["status"] for e in self.log if e.get("exercise") == exercise_id]
        if entries:
            return Result(entries[-1], len(entries))
        return Result("not run" if exercise_id in self.checks_in_source else "missing")


def check_ids(nb):
    """Exercise ids of the ``check("<id>", ...)`` calls in a notebook's code cells, in order."""
    ids = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            ids += [m["id"] for m in _CHECK_CALL.finditer(cell.source)]
    return list(dict.fromkeys(ids))


def _first_error(nb):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                value = output.get("evalue", "").splitlines()[0] if output.get("evalue") else ""
                return f"error in cell {index}: {output.get('ename', 'Error')}: {value[:120]}".rstrip(": ")
    return None


def run_submission(student, path, timeout=600, kernel_name="python3"):
    """Run one notebook with a time limit for the whole of it; never raises."""
    submission = Submission(student, Path(path))
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook...
        submission.outcome = f"unreadable notebook: {type(error).__name__}"
        return submission
    submission.checks_in_source = check_ids(nb)
    with tempfile.TemporaryDirectory(prefix="vgg-grade-") as scratch:
        log = Path(scratch) / "checks.jsonl"
        work = Path(scratch) / "work"
        work.mkdir()
        deadline = []

        def remaining(cell):
            if not deadline:
                deadline.append(time.monotonic() + timeout)
            return max(1, int(deadline[0] - time.monotonic() + 0.999))

        started = [None]

        def on_cell_start(cell, cell_index):
            started[0] = cell_index

        client = NotebookClient(nb, kernel_name=kernel_name, timeout_func=remaining, allow_errors=True,
                                shutdown_kernel="immediate", record_timing=False, on_cell_start=on_cell_start,
                                resources={"metadata": {"path": str(work)}})
        env = {**os.environ, "VGG_CHECK_LOG": str(log), "MPLBACKEND": "Agg"}
        start = time.monotonic()
        try:
            client.execute(env=env, stderr=subprocess.DEVNULL)  # the kernel's own chatter, not cell output
            submission.outcome = _first_error(nb) or "ran to the end"
        except CellTimeoutError:
            submission.outcome = f"stopped at the {timeout} s time limit in cell {started[0]}"
        except DeadKernelError:
            submission.outcome = "the kernel died (out of memory, or the code exited the kernel)"
        except Exception as error:
            submission.outcome = f"could not run: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
        submission.seconds = time.monotonic() - start
        submission.executed = nb
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                try:
                    submission.log.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return submission


def find_submissions(folder):
    """[(student, notebook path)] for ``folder/<student>.ipynb`` and ``folder/<student>/*.ipynb``."""
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        relative = path.relative_to(folder)
        found.append((relative.parts[0] if len(relative.parts) > 1 else path.stem, path))
    return found


def exercises_to_grade(submissions, reference_notebooks=()):
    ids = []
    for path in reference_notebooks:
        ids += check_ids(nbformat.read(path, as_version=4))
    for submission in submissions:
        ids += submission.checks_in_source
    return list(dict.fromkeys(ids))


def _escape(text):
    return str(text).replace("|", "\\|")


def report_markdown(submissions, exercises, timeout, folder):
    lines = ["# Grading report", "",
             f"{len(submissions)} notebook(s) from `{folder}`, each run with a {timeout} s limit; "
             f"{len(exercises)} exercise(s) graded, 1 point each.", "",
             "| Student | Notebook | Score | " + " | ".join(f"`{e}`" for e in exercises) + " | Run |",
             "| --- | --- | --- | " + " | ".join("---" for _ in exercises) + " | --- |"]
    for s in submissions:
        results = [s.result(e) for e in exercises]
        cells = [SYMBOLS[r.status] + (f" ({r.attempts} tries)" if r.attempts > 1 else "") for r in results]
        lines.append(f"| {_escape(s.student)} | {_escape(s.notebook.name)} | {sum(r.score for r in results)}/"
                     f"{len(exercises)} | " + " | ".join(cells) + f" | {_escape(s.outcome)}, {s.seconds:.0f} s |")
    lines += ["", LEGEND, "", "## By exercise", "", "| Exercise | Correct | Wrong | No answer | Did not run |",
              "| --- | --- | --- | --- | --- |"]
    for e in exercises:
        statuses = [s.result(e).status for s in submissions]
        lines.append(f"| `{e}` | {statuses.count('correct')} | {statuses.count('wrong') + statuses.count('unreadable')}"
                     f" | {statuses.count('unanswered')} | {statuses.count('not run') + statuses.count('missing')} |")
    return "\n".join(lines) + "\n"


def write_csv(path, submissions, exercises):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "notebook", "exercise", "status", "attempts", "score", "run"])
        for s in submissions:
            for e in exercises:
                r = s.result(e)
                writer.writerow([s.student, s.notebook.name, e, r.status, r.attempts, r.score, s.outcome])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vgg_lib.teaching.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", help="folder of submitted notebooks")
    parser.add_argument("--report", default="report.md", help="markdown report to write (default report.md)")
    parser.add_argument("--csv", help="also write one row per student and exercise to this CSV file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--exercises-from", nargs="*", default=[], metavar="NOTEBOOK",
                        help="grade every check in these notebooks, even where a submission dropped it")
    parser.add_argument("--executed", help="folder to save the executed notebooks in, to look at")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel to run them with")
    args = parser.parse_args(argv)

    if args.timeout < 1:
        parser.error("--timeout must be at least 1 second")
    found = find_submissions(args.submissions)
    if not found:
        parser.error(f"no .ipynb files under {args.submissions}")
    submissions = []
    for student, path in found:
        submission = run_submission(student, path, args.timeout, args.kernel)
        print(f"{student} / {path.name}: {submission.outcome} ({submission.seconds:.0f} s)")
        submissions.append(submission)
        if args.executed and submission.executed is not None:
            target = Path(args.executed) / path.relative_to(args.submissions)
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(submission.executed, target)
    exercises = exercises_to_grade(submissions, args.exercises_from)
    Path(args.report).write_text(report_markdown(submissions, exercises, args.timeout, args.submissions),
                                 encoding="utf-8")
    if args.csv:
        write_csv(args.csv, submissions, exercises)
    print(f"wrote {args.report}" + (f" and {args.csv}" if args.csv else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
