"""Grade submitted notebooks: run each in a sandbox, then check its answers in the grader.

    python -m vgg_lib.teaching.grade submissions/ --report report.md --csv scores.csv --timeout 600 \\
        --exercises-from notebooks/01_building_vgg.ipynb

``submissions/`` holds one notebook per student (``alice.ipynb``) or one folder per student
(``alice/01_building_vgg.ipynb``, ...). Each notebook is copied into its own scratch folder and
runs there from top to bottom in a fresh kernel, in a sandbox (vgg_lib/teaching/sandbox.py:
bubblewrap, else, as root, a user of its own per notebook; else grading is refused unless
``--sandbox none``), with a time limit for the whole notebook, carrying on past cells that
raise. The notebook's ``check`` calls only record answers; the grader decides them
(vgg_lib/teaching/submissions.py), and with ``--summative`` the notebook's environment holds no
expected value at all (vgg_lib/teaching/job_library.py).

Only the grader writes the report and the CSV (report.py), atomically after every notebook, with
"Grading in progress" until every notebook is accounted for. A grader that is stopped part-way
leaves the results so far and a state file beside the report (``.<report>.grading.json``); run
the same command again and it grades only the notebooks still missing, then finishes the report.
What the isolation does and does not protect: book/instructors.md.
"""

import argparse
import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..atomic_write import write_atomically
from . import jobs
from .job_watch import read_regular
from . import sandbox as sandboxes
from .report import csv_text, report_markdown, text, write_text
from .submissions import (STARTUP_SECONDS, Submission, assign_chapter, chapters_from, find_submissions,
                          known_exercises, run_submission)


def state_path(report):
    report = Path(report)
    return report.with_name(f".{report.name}.grading.json")


def _fingerprint(path):
    try:
        return hashlib.sha256(read_regular(path, 64 << 20)).hexdigest()
    except OSError:
        return None


def _relative(path, folder):
    return os.fsdecode(Path(path).relative_to(folder))


_SAVED = ("student", "outcome", "seconds", "checks_in_source", "log", "problems", "notes")


def save_state(path, settings, submissions, folder, fingerprints):
    graded = [{"path": _relative(s.notebook, folder), "sha256": fingerprints[s.notebook],
               **{key: getattr(s, key) for key in _SAVED}} for s in submissions]
    content = json.dumps({"version": 1, "settings": settings, "graded": graded})  # ensure_ascii keeps any name
    write_atomically(path, lambda handle: handle.write(content.encode("ascii")))


def load_state(path, settings, folder):
    """{(relative path, sha256): Submission} of an interrupted run with the same settings."""
    try:
        state = json.loads(read_regular(path, 256 << 20).decode("ascii"))
        if state.get("settings") != settings:
            return {}
        return {(g["path"], g["sha256"]): Submission(notebook=Path(folder) / g["path"], **{k: g[k] for k in _SAVED})
                for g in state["graded"] if g.get("sha256")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def protected_paths(args, references):
    """What no notebook may read: the submissions, the outputs and the chapters graded against
    (jobs.Grading adds the book's repository and, summatively, vgg_lib itself)."""
    paths = [args.submissions, args.report, state_path(args.report)] + [p for p in (args.csv, args.executed) if p]
    return paths + [Path(p).resolve().parent for p in references]


def run_one(student, path, timeout=600, sandbox=None, limits=None, kernel="python3", summative=False):
    """Grade one notebook on its own (no report): a Submission."""
    sandbox = sandbox or sandboxes.choose()
    limits = limits or sandboxes.Limits(seconds=timeout + STARTUP_SECONDS)
    with jobs.Grading(sandbox, limits, [path], summative) as grading:
        return run_submission(student, path, grading, timeout, kernel)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m vgg_lib.teaching.grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", help="folder of submitted notebooks")
    parser.add_argument("--report", default="report.md", help="markdown report to write (default report.md)")
    parser.add_argument("--csv", help="also write one row per student and exercise to this CSV file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--exercises-from", nargs="*", default=[], metavar="NOTEBOOK",
                        help="the chapters assigned (default: the book's chapters in _toc.yml)")
    parser.add_argument("--executed", help="folder to save the executed notebooks in, to look at")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel to run them with")
    parser.add_argument("--sandbox", choices=sandboxes.MODES, default=None,
                        help="bwrap, user (as root: a user of its own per notebook), none, or auto: the "
                             "strongest that works, else refuse (default; or $VGG_GRADE_SANDBOX)")
    parser.add_argument("--memory-mb", type=int, default=sandboxes.Limits.memory_mb,
                        help="resident memory of a notebook's processes together (default %(default)s MB)")
    parser.add_argument("--summative", action="store_true",
                        help="the notebooks run without any expected value within reach (tests, exams)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks graded at once (default 1; each has its own limits)")
    parser.add_argument("--restart", action="store_true",
                        help="grade every notebook again, ignoring an interrupted run's state file")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error("--timeout must be at least 1 second")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.memory_mb < 256:
        parser.error("--memory-mb must be at least 256 (a kernel with torch takes about 400 MB)")
    found = find_submissions(args.submissions)
    if not found:
        parser.error(f"no .ipynb files under {args.submissions}")
    references = args.exercises_from
    if not references:
        from .notebooks import find_root, toc_notebooks

        try:
            references = toc_notebooks(find_root())
        except FileNotFoundError as error:
            parser.error(f"{error} Or name the assigned chapters with --exercises-from.")
    chapters = chapters_from(references)
    try:
        sandbox = sandboxes.choose(args.sandbox)
    except sandboxes.Refused as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    umask = os.umask(0o077)  # the report, the scores and the executed notebooks: the grader's eyes only
    try:
        return _grade(args, found, chapters, references, sandbox)
    except sandboxes.Refused as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    finally:
        os.umask(umask)


def _grade(args, found, chapters, references, sandbox):
    limits = sandboxes.Limits(seconds=args.timeout + STARTUP_SECONDS, memory_mb=args.memory_mb)
    mode = "summative" if args.summative else "formative"
    settings = {"submissions": os.fsdecode(Path(args.submissions).resolve()), "timeout": args.timeout,
                "memory_mb": args.memory_mb, "kernel": args.kernel, "sandbox": sandbox.kind, "mode": mode,
                "chapters": [[c.name, c.exercises, c.notebook] for c in chapters]}
    state = state_path(args.report)
    earlier = {} if args.restart else load_state(state, settings, args.submissions)
    if earlier:
        print(f"resuming an interrupted run ({state}): {len(earlier)} notebook(s) already graded; "
              f"--restart grades all again")
    if args.executed:
        Path(args.executed).mkdir(parents=True, exist_ok=True)
    submissions = []

    def write(pending):
        report = report_markdown(submissions, chapters, args.timeout, args.submissions, sandbox.description,
                                 pending, mode)
        write_text(args.report, report)
        if args.csv:
            write_text(args.csv, csv_text(submissions))

    outputs = [Path(p) for p in (args.report, args.csv) if p]
    new = [p for p in outputs if not os.path.lexists(p)]
    write(pending=len(found))  # before any notebook runs, so that the sandbox can hide the files
    known, fingerprints = known_exercises(), {}
    try:
        grading = jobs.Grading(sandbox, limits, protected_paths(args, references), args.summative).__enter__()
    except sandboxes.Refused:
        for path in new:  # nothing was graded: leave no report saying otherwise
            path.unlink(missing_ok=True)
        raise
    graded = {}

    def record(index, submission):
        student, path = found[index]
        submission.chapter = assign_chapter(submission, chapters)
        print(f"{text(student)!r} / {text(path.name)!r}: {submission.run_summary} ({submission.seconds:.0f} s)")
        graded[index] = submission
        submissions[:] = [graded[i] for i in sorted(graded)]
        save_state(state, settings, submissions, args.submissions, fingerprints)
        write(pending=len(found) - len(graded))

    def run(index):
        student, path = found[index]
        submission = run_submission(student, path, grading, args.timeout, args.kernel, known)
        _keep_executed(args, path, submission)
        return submission

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            running = {}
            for index, (student, path) in enumerate(found):
                fingerprints[path] = _fingerprint(path)
                submission = earlier.get((_relative(path, args.submissions), fingerprints[path]))
                if submission is None:
                    running[pool.submit(run, index)] = index
                else:
                    record(index, submission)
            try:
                for future in as_completed(running):
                    record(running[future], future.result())
            except BaseException:
                grading.stop()  # kill the jobs still running; they are graded again next time
                raise
    finally:
        grading.__exit__(None, None, None)
    write(pending=0)
    state.unlink(missing_ok=True)
    print(f"wrote {args.report}" + (f" and {args.csv}" if args.csv else ""))
    return 0


def _keep_executed(args, path, submission):
    if not (args.executed and submission.executed):
        return
    try:
        target = Path(args.executed) / path.relative_to(args.submissions)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, submission.executed)
    except Exception as error:
        print(f"  could not keep the executed notebook: {type(error).__name__}")


if __name__ == "__main__":
    sys.exit(main())
