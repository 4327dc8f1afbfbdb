"""The grading report (Markdown, one table per chapter) and the scores as CSV.

Any name, a file's with a line break, ``|`` or bytes that are not UTF-8 included, keeps the
tables whole. Both are written by the grader alone (vgg_lib/teaching/grade.py), atomically.
"""

import csv
import io
import os

from ..atomic_write import write_atomically
from .submissions import SYMBOLS

LEGEND = ("✅ correct · ❌ wrong · ✏️ no answer yet · ⚠️ answer not readable as a number · "
          "⏹ check did not run (the notebook stopped, or the cell raised, before it) · "
          "∅ no check for this exercise in the submission")


def text(value):
    """Any name (a file's, with newlines or undecodable bytes) as readable, valid UTF-8."""
    value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = os.fsencode(value).decode("utf-8", "backslashreplace")
    return value


def escape(value):
    """``value`` for one Markdown table cell: no line breaks, no column breaks, no markup."""
    value = text(value).replace("\\", "\\\\")
    value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    for char in "|`*_[]<>#":
        value = value.replace(char, "\\" + char)
    return value


def report_markdown(submissions, chapters, timeout, folder, sandbox_description, pending=0, mode="formative"):
    exercises = list(dict.fromkeys(e for c in chapters for e in c.exercises))
    lines = ["# Grading report", ""]
    if pending:
        lines += [f"**Grading in progress: {len(submissions)} notebook(s) graded, {pending} still to run.**", ""]
    lines += [f"{len(submissions)} notebook(s) from `{escape(folder)}`, each run with a {timeout} s limit; "
              f"{len(exercises)} exercise(s) graded, 1 point each, by chapter ({mode}).", "",
              f"Isolation: {sandbox_description}", ""]
    for chapter in chapters:
        mine = [s for s in submissions if s.chapter is chapter]
        if not mine:
            continue
        lines += [f"## {escape(chapter.name)}", "",
                  "| Student | Notebook | Score | " + " | ".join(f"`{e}`" for e in chapter.exercises) + " | Run |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in chapter.exercises) + " | --- |"]
        for s in mine:
            results = [s.result(e) for e in chapter.exercises]
            cells = [SYMBOLS[r.status] + (f" ({r.attempts} tries)" if r.attempts > 1 else "") for r in results]
            score, total = s.score
            lines.append(f"| {escape(s.student)} | {escape(s.notebook.name)} | {score}/{total} | " +
                         " | ".join(cells) + f" | {escape(s.run_summary)}, {s.seconds:.0f} s |")
        lines.append("")
    unmatched = [s for s in submissions if s.chapter is None]
    if unmatched:
        lines += ["## Not matched to a chapter", "",
                  "Name these after their chapter's notebook (e.g. `01_building_vgg.ipynb`), or grade them "
                  "with `--exercises-from` that chapter alone.", "", "| Student | Notebook | Run |", "| --- | --- | --- |"]
        lines += [f"| {escape(s.student)} | {escape(s.notebook.name)} | {escape(s.run_summary)}, {s.seconds:.0f} s |"
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
            writer.writerow([text(s.student), text(s.notebook.name), "", "no chapter", 0, 0, text(s.run_summary), ""])
        for e in s.chapter.exercises if s.chapter else []:
            r = s.result(e)
            writer.writerow([text(s.student), text(s.notebook.name), e, r.status, r.attempts, r.score,
                             text(s.run_summary), chapter])
    return handle.getvalue()


def write_text(path, content):
    write_atomically(path, lambda handle: handle.write(content.encode("utf-8", "surrogateescape")))
