"""Grade submitted notebooks: run each in a sandbox, then check its answers in the grader.

    python -m vgg_lib.teaching.grade submissions/ --report report.md --csv scores.csv --timeout 600 \\
        --exercises-from notebooks/01_building_vgg.ipynb

``submissions/`` holds one notebook per student (``alice.ipynb``) or one folder per student
(``alice/01_building_vgg.ipynb``, ...). Each notebook is copied into its own scratch folder and
runs there from top to bottom in a fresh kernel, inside a sandbox (vgg_lib/teaching/sandbox.py:
bubblewrap where it works, else a new session with resource limits, which the report's header
then says), with a time limit for the whole notebook, carrying on past cells that raise.

Correctness is decided here, not in the notebook: each ``check("<id>", answer)`` call in the
kernel only records the exercise id and the answer it was given (vgg_lib/exercises/checking.py,
``logged_answer``); the grader reads those records defensively and checks every answer again
against the registry (``vgg_lib.exercises``) in its own process. A status the kernel claims, a
replaced ``check`` or a forged line therefore earns nothing a real answer would not. The last
answer to each exercise counts. Records that are malformed (not UTF-8, not a JSON object, too
long, an unknown exercise) are counted in that submission's row and otherwise ignored.

Each submission is graded against the exercises of its chapter: the registered ``check("<id>"``
calls in the code of the ``--exercises-from`` notebooks (else of the book's chapters in
_toc.yml), never what the submission itself mentions. With several chapters, a submission
belongs to the chapter with its notebook's file name, else the one whose exercises its code
calls most. The report and CSV are rewritten atomically after every notebook, so a crash leaves
the results so far. What the isolation does and does not protect: book/instructors.md.
"""

import argparse
import ast
import csv
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..exercises import checking, exercise_ids
from ..atomic_write import write_atomically
from . import sandbox as sandboxes

SYMBOLS = {"correct": "✅", "wrong": "❌", "unanswered": "✏️", "unreadable": "⚠️", "not run": "⏹", "missing": "∅"}
LEGEND = ("✅ correct · ❌ wrong · ✏️ no answer yet · ⚠️ answer not readable as a number · "
          "⏹ check did not run (the notebook stopped, or the cell raised, before it) · "
          "∅ no check for this exercise in the submission")
MAX_NOTEBOOK_BYTES = 32 << 20
MAX_EXECUTED_BYTES = 128 << 20
MAX_RESULTS_BYTES = 1 << 20
MAX_RESULT_LINE = 4096
MAX_POWERS = 2  # "2**5" and "(2**5)**3" are answers; a tower of powers is an attack on the grader
# Runs grade_one.py as a script without its folder on sys.path (its neighbours would shadow modules
# such as ``exercises``) and without importing vgg_lib, and with it torch, for nothing.
_BOOT = ("import runpy, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
         "sys.argv[:] = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
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
    executed: object = None  # the executed notebook, when it could be read
    chapter: object = None  # the Chapter it is graded against

    def result(self, exercise_id):
        entries = [e["status"] for e in self.log if e.get("exercise") == exercise_id]
        if entries:
            return Result(entries[-1], len(entries))
        return Result("not run" if exercise_id in self.checks_in_source else "missing")

    @property
    def run_summary(self):
        if not self.problems:
            return self.outcome
        ignored = sum(self.problems.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.problems.items()))
        return f"{self.outcome}; {ignored} results line(s) ignored ({kinds})"


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


# Reading what comes back from the sandbox: untrusted.

def _read_regular(path, limit):
    """The bytes of ``path`` if it is a regular file (not a link, fifo, device): at most ``limit``+1."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{Path(path).name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1)
    finally:
        os.close(fd)


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


def read_results(path, known):
    """([{"exercise", "status"}], {problem: count}) from a kernel's results file."""
    entries, problems = [], {}

    def problem(kind):
        problems[kind] = problems.get(kind, 0) + 1

    try:
        data = _read_regular(path, MAX_RESULTS_BYTES)
    except FileNotFoundError:
        return entries, problems
    except OSError:
        problem("results file not a regular file")
        return entries, problems
    if len(data) > MAX_RESULTS_BYTES:
        problem("past the 1 MB results limit")
        data = data[:MAX_RESULTS_BYTES]
    for raw in data.split(b"\n"):
        if not raw.strip():
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


def _clean(text, limit=300):
    """Text from inside a sandbox, safe to show: printable, one line, not too long."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return text[:limit] + ("…" if len(text) > limit else "")


def _job_outcome(box, finished, timeout):
    progress = None
    try:
        progress = int(_read_regular(box / "progress", 20).decode("ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    where = f" in cell {progress}" if progress is not None else ""
    if finished.timed_out:
        return f"stopped at the {timeout} s time limit{where} (the sandbox was killed)"
    try:
        reported = json.loads(_read_regular(box / "outcome.json", 65536).decode("utf-8"))
        if isinstance(reported, dict) and isinstance(reported.get("outcome"), str):
            return _clean(reported["outcome"])
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        pass
    last = ""
    try:
        lines = _read_regular(box.parent / "runner.log", 1 << 20)[-2000:].decode("utf-8", "replace").split("\n")
        last = next((f": {_clean(line, 160)}" for line in reversed(lines) if line.strip()), "")
    except OSError:
        pass
    return f"the run ended without a report (exit status {finished.returncode}){where}; killed, or out of memory{last}"


def run_submission(student, path, timeout=600, kernel_name="python3", sandbox=None, limits=None,
                   hidden=(), known=None):
    """Run one notebook in a sandbox and grade its answers here; never raises for a submission."""
    submission = Submission(student, Path(path))
    start = time.monotonic()
    try:
        _run(submission, timeout, kernel_name, sandbox, limits, hidden, known)
    except Exception as error:  # a bug of ours, or the machine: this submission only
        submission.outcome = f"the grader failed on this notebook: {type(error).__name__}: {_clean(error, 120)}"
    submission.seconds = time.monotonic() - start
    return submission


def _run(submission, timeout, kernel_name, sandbox, limits, hidden, known):
    known = known_exercises() if known is None else known
    try:
        data = _read_regular(submission.notebook, MAX_NOTEBOOK_BYTES)
        if len(data) > MAX_NOTEBOOK_BYTES:
            raise ValueError("larger than 32 MB")
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        code = [c for c in nb.cells if c.get("cell_type") == "code"]
    except Exception as error:  # not JSON, not a notebook, a link...
        submission.outcome = f"unreadable notebook: {type(error).__name__}"
        return
    submission.checks_in_source = check_ids(nb, known)
    sandbox = sandbox or sandboxes.choose()
    limits = limits or sandboxes.Limits(seconds=timeout + STARTUP_SECONDS)
    scratch = Path(tempfile.mkdtemp(prefix="vgg-grade-"))
    try:
        box = scratch / "box"
        box.mkdir()
        nbformat.write(nb, box / "submission.ipynb")
        (box / "job.json").write_text(json.dumps({"timeout": timeout, "kernel": kernel_name}), encoding="utf-8")
        runner = (f"{sandboxes.LIBRARY}/vgg_lib/teaching/grade_one.py" if sandbox.kind == "bwrap"
                  else str(Path(__file__).resolve().with_name("grade_one.py")))
        command = [os.path.realpath(sys.executable), "-c", _BOOT, runner, sandboxes.BOX]
        finished = sandboxes.run(sandbox, box, command, limits, scratch / "runner.log", hidden)
        submission.outcome = _job_outcome(box, finished, timeout) if code else "no code cells"
        submission.log, submission.problems = read_results(box / "results.jsonl", known)
        try:
            submission.executed = nbformat.reads(_read_regular(box / "executed.ipynb", MAX_EXECUTED_BYTES)
                                                 .decode("utf-8"), as_version=4)
        except Exception:
            submission.executed = None
    finally:
        _remove(scratch)


def _remove(folder):
    """Remove a scratch folder even where the job took the permissions away from its own files."""
    for top, dirs, _ in os.walk(folder):
        for name in dirs:
            path = os.path.join(top, name)
            try:
                if not os.path.islink(path):  # a link is removed, never followed
                    os.chmod(path, 0o700)
            except OSError:
                pass
    shutil.rmtree(folder, ignore_errors=True)


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


# The report.

def _text(value):
    """Any name (a file's, with newlines or undecodable bytes) as readable, valid UTF-8."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


def _escape(text):
    """``text`` for one Markdown table cell: no line breaks, no column breaks, no markup."""
    text = _text(text).replace("\\", "\\\\")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    for char in "|`*_[]<>#":
        text = text.replace(char, "\\" + char)
    return text


def _score(submission):
    exercises = submission.chapter.exercises if submission.chapter else []
    return sum(submission.result(e).score for e in exercises), len(exercises)


def report_markdown(submissions, chapters, timeout, folder, sandbox_description, pending=0):
    exercises = list(dict.fromkeys(e for c in chapters for e in c.exercises))
    lines = ["# Grading report", ""]
    if pending:
        lines += [f"**Grading in progress: {len(submissions)} notebook(s) graded, {pending} still to run.**", ""]
    lines += [f"{len(submissions)} notebook(s) from `{_escape(folder)}`, each run with a {timeout} s limit; "
              f"{len(exercises)} exercise(s) graded, 1 point each, by chapter.", "",
              f"Isolation: {sandbox_description}", ""]
    for chapter in chapters:
        mine = [s for s in submissions if s.chapter is chapter]
        if not mine:
            continue
        lines += [f"## {_escape(chapter.name)}", "",
                  "| Student | Notebook | Score | " + " | ".join(f"`{e}`" for e in chapter.exercises) + " | Run |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in chapter.exercises) + " | --- |"]
        for s in mine:
            results = [s.result(e) for e in chapter.exercises]
            cells = [SYMBOLS[r.status] + (f" ({r.attempts} tries)" if r.attempts > 1 else "") for r in results]
            score, total = _score(s)
            lines.append(f"| {_escape(s.student)} | {_escape(s.notebook.name)} | {score}/{total} | " +
                         " | ".join(cells) + f" | {_escape(s.run_summary)}, {s.seconds:.0f} s |")
        lines.append("")
    unmatched = [s for s in submissions if s.chapter is None]
    if unmatched:
        lines += ["## Not matched to a chapter", "",
                  "Name these after their chapter's notebook (e.g. `01_building_vgg.ipynb`), or grade them "
                  "with `--exercises-from` that chapter alone.", "", "| Student | Notebook | Run |", "| --- | --- | --- |"]
        lines += [f"| {_escape(s.student)} | {_escape(s.notebook.name)} | {_escape(s.run_summary)}, {s.seconds:.0f} s |"
                  for s in unmatched]
        lines.append("")
    lines += [LEGEND, "", "## By exercise", "", "| Exercise | Correct | Wrong | No answer | Did not run |",
              "| --- | --- | --- | --- | --- |"]
    for chapter in chapters:
        for e in chapter.exercises:
            statuses = [s.result(e).status for s in submissions if s.chapter is chapter]
            lines.append(f"| `{e}` | {statuses.count('correct')} | "
                         f"{statuses.count('wrong') + statuses.count('unreadable')} | {statuses.count('unanswered')}"
                         f" | {statuses.count('not run') + statuses.count('missing')} |")
    return "\n".join(lines) + "\n"


def csv_text(submissions):
    handle = io.StringIO()
    writer = csv.writer(handle)
    writer.writerow(["student", "notebook", "exercise", "status", "attempts", "score", "run", "chapter"])
    for s in submissions:
        chapter = s.chapter.name if s.chapter else ""
        if s.chapter is None:
            writer.writerow([_text(s.student), _text(s.notebook.name), "", "no chapter", 0, 0, _text(s.run_summary), ""])
        for e in s.chapter.exercises if s.chapter else []:
            r = s.result(e)
            writer.writerow([_text(s.student), _text(s.notebook.name), e, r.status, r.attempts, r.score,
                             _text(s.run_summary), chapter])
    return handle.getvalue()


def write_csv(path, submissions):
    write_atomically(path, lambda handle: handle.write(csv_text(submissions).encode("utf-8")))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vgg_lib.teaching.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", help="folder of submitted notebooks")
    parser.add_argument("--report", default="report.md", help="markdown report to write (default report.md)")
    parser.add_argument("--csv", help="also write one row per student and exercise to this CSV file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--exercises-from", nargs="*", default=[], metavar="NOTEBOOK",
                        help="the chapters assigned (default: the book's chapters in _toc.yml)")
    parser.add_argument("--executed", help="folder to save the executed notebooks in, to look at")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel to run them with")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default=None,
                        help="bwrap, none, or auto: bwrap where it works (default; or $VGG_GRADE_SANDBOX)")
    parser.add_argument("--memory-mb", type=int, default=sandboxes.Limits.memory_mb,
                        help="address space per process in the sandbox (default %(default)s MB)")
    args = parser.parse_args(argv)

    if args.timeout < 1:
        parser.error("--timeout must be at least 1 second")
    found = find_submissions(args.submissions)
    if not found:
        parser.error(f"no .ipynb files under {args.submissions}")
    if args.exercises_from:
        chapters = chapters_from(args.exercises_from)
    else:
        from .notebooks import find_root, toc_notebooks

        try:
            chapters = chapters_from(toc_notebooks(find_root()))
        except FileNotFoundError as error:
            parser.error(f"{error} Or name the assigned chapters with --exercises-from.")
    try:
        sandbox = sandboxes.choose(args.sandbox)
    except (RuntimeError, ValueError) as error:
        parser.error(str(error))
    limits = sandboxes.Limits(seconds=args.timeout + STARTUP_SECONDS, memory_mb=args.memory_mb)
    outputs = [Path(p) for p in (args.report, args.csv, args.executed) if p]
    hidden = [Path(args.submissions)] + [p if p.is_dir() else p.parent for p in outputs]
    known = known_exercises()
    submissions = []

    def write(pending):
        report = report_markdown(submissions, chapters, args.timeout, args.submissions, sandbox.description, pending)
        write_atomically(args.report, lambda handle: handle.write(report.encode("utf-8")))
        if args.csv:
            write_csv(args.csv, submissions)

    for number, (student, path) in enumerate(found, 1):
        submission = run_submission(student, path, args.timeout, args.kernel, sandbox, limits, hidden, known)
        submission.chapter = assign_chapter(submission, chapters)
        print(f"{_text(student)!r} / {_text(path.name)!r}: {submission.run_summary} ({submission.seconds:.0f} s)")
        submissions.append(submission)
        if args.executed and submission.executed is not None:
            try:
                target = Path(args.executed) / path.relative_to(args.submissions)
                target.parent.mkdir(parents=True, exist_ok=True)
                text = nbformat.writes(submission.executed)
                write_atomically(target, lambda handle: handle.write(text.encode("utf-8", "surrogateescape")))
            except Exception as error:
                print(f"  could not keep the executed notebook: {type(error).__name__}")
        write(pending=len(found) - number)
    write(pending=0)
    print(f"wrote {args.report}" + (f" and {args.csv}" if args.csv else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
