"""A student who answers everything right gets full marks, and one who answers nothing gets none
(issue #27, section 2): for every chapter in _toc.yml, under the grader's default limits (600 s,
6144 MB of resident memory). The answered copies are graded in every sandbox this machine offers
(a sandbox that keeps a chapter's solution from running, e.g. by hiding the data or a folder it
writes to, costs marks there). The unanswered copies run only ``answer = None``, ``check(...)``
and what those cells read, so their outcome does not depend on the sandbox: they are graded once,
in the strictest sandbox this machine offers (bubblewrap, else a user of its own, else none),
which saves CI a minute (22 notebooks instead of 66; each costs a kernel and an import of torch),
and in the same grading run as the answered copies there (two students, one run).

The fully answered copy of a chapter is built from the solutions the chapter already holds: each
solution cell that checks a registered exercise, with the earlier cells that define what it
reads (its imports, the models it measures), in their order. The unanswered copy is the student
copy's starter cells (``answer = None``, ``check(...)``) with what they need. Chapters and
exercises added later are picked up by themselves. Sandboxes this machine cannot offer are
skipped with the reason; those in VGG_REQUIRE_SANDBOXES fail instead (CI: .ci/run).
"""

import csv
import time
from pathlib import Path

import nbformat
import pytest

from vgg_lib.teaching import code_cells, grade, student_copy
from vgg_lib.teaching.notebooks import find_root, toc_notebooks
from vgg_lib.teaching.submissions import chapters_from, check_ids, known_exercises

ROOT = find_root(Path(__file__).parent)
CHAPTERS = toc_notebooks(ROOT)


def _slice(nb, seeds):
    """``nb`` cut down to the code cells ``seeds`` and, before them, the latest cell defining each
    name they read, and so on (markdown and everything else left out)."""
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    trees = {i: code_cells.parse(nb.cells[i].source) for i in code}
    defines = {i: code_cells.defined_names(trees[i]) for i in code}
    needed, pending = set(seeds), list(seeds)
    while pending:
        cell = pending.pop()
        for name in code_cells.free_names(trees[cell]):
            earlier = [i for i in code if i < cell and name in defines[i]]
            if earlier and earlier[-1] not in needed:
                needed.add(earlier[-1])
                pending.append(earlier[-1])
    sliced = nbformat.v4.new_notebook(metadata=nb.metadata)
    sliced.cells = [nbformat.v4.new_code_cell(nb.cells[i].source) for i in sorted(needed)]
    return sliced


def answered_copy(path):
    nb = nbformat.read(path, as_version=4)
    known = known_exercises()
    seeds = [i for i in student_copy.solution_cells(nb, str(path)) if check_ids(
        nbformat.v4.new_notebook(cells=[nb.cells[i]]), known)]
    return _slice(nb, seeds)


def unanswered_copy(path):
    copy = student_copy.make_student_copy(nbformat.read(path, as_version=4), str(path))
    known = known_exercises()
    return _slice(copy, [i for i, cell in enumerate(copy.cells) if cell.cell_type == "code" and check_ids(
        nbformat.v4.new_notebook(cells=[cell]), known)])


def _submissions(folder, students):
    for student, make in students:
        (folder / student).mkdir()
        for path in CHAPTERS:
            nbformat.write(make(path), folder / student / path.name)
    return folder


@pytest.fixture(scope="module")
def graded(tmp_path_factory, offered_sandboxes):
    """``graded(mode)``: the csv rows of one grading run (exit status 0) in sandbox ``mode``, and
    how many notebooks it ran in how long: the answered copies and, in the strictest sandbox, the
    unanswered ones too (one run of two students there, not two runs)."""
    runs = {}

    def get(mode):
        if mode not in runs:
            students = [("answered", answered_copy)]
            students += [("unanswered", unanswered_copy)] if mode == offered_sandboxes[0] else []
            folder, out = _submissions(tmp_path_factory.mktemp("submissions"), students), tmp_path_factory.mktemp("out")
            start = time.monotonic()
            code = grade.main([str(folder), "--report", str(out / "report.md"), "--csv", str(out / "s.csv"),
                               "--sandbox", mode, "--jobs", "2"] + ["--exercises-from"] + [str(p) for p in CHAPTERS])
            assert code == 0
            rows = list(csv.DictReader(open(out / "s.csv", encoding="utf-8")))
            seconds = time.monotonic() - start
            runs[mode] = rows, f"{len(students) * len(CHAPTERS)} notebooks in {seconds:.0f} s, 2 at a time"
        return runs[mode]
    return get


def _by_chapter(rows, student):
    """{chapter: {exercise: row}} of ``student``, each chapter's exercises exactly its registered ones."""
    expected = {c.name: c.exercises for c in chapters_from(CHAPTERS)}
    found = {}
    for chapter, exercises in expected.items():
        found[chapter] = {r["exercise"]: r for r in rows if r["student"] == student and r["chapter"] == chapter}
        assert set(found[chapter]) == set(exercises), chapter
    return found


@pytest.mark.parametrize("mode", ["bwrap", "user", "none"])
def test_right_answers_get_full_marks(mode, graded, capsys, sandbox_or_skip):
    sandbox_or_skip(mode)
    rows, took = graded(mode)
    lines = []
    for chapter, answered in _by_chapter(rows, "answered").items():
        wrong = {e: (r["status"], r["run"]) for e, r in answered.items() if r["status"] != "correct"}
        assert not wrong, f"{chapter}: {wrong}"
        lines.append(f"{chapter}: {len(answered)}/{len(answered)}")
    with capsys.disabled():
        print(f"\n[{mode}] answered: " + "; ".join(lines) + f" ({took})")


def test_no_answers_get_none_in_the_strictest_sandbox(graded, capsys, offered_sandboxes):
    mode = offered_sandboxes[0]
    rows, took = graded(mode)
    lines = []
    for chapter, unanswered in _by_chapter(rows, "unanswered").items():
        assert {r["status"] for r in unanswered.values()} == {"unanswered"}, (chapter, unanswered)
        lines.append(f"{chapter}: 0/{len(unanswered)}")
    with capsys.disabled():
        print(f"\n[{mode}] unanswered: " + "; ".join(lines) + f" ({took})")
