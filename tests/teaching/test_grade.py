"""The grader on synthetic submissions: right, wrong, raising, looping and not a notebook.

The exercises are registered in the submissions (for the students' own feedback) and, by the
``registered`` fixture, in this process, where the grader checks the answers itself. Hostile
submissions: tests/test_grade_isolation.py."""

import csv
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vgg_lib import exercises as checks
from vgg_lib.teaching import grade, jobs, sandbox, submissions
from support import exercises_registered

# The strongest sandbox here; these tests are about grading, tests/teaching/ about the sandboxes.
MODE = next(m for m in ("bwrap", "user", "none") if jobs.sandbox_problem(m) is None)

SETUP = """from vgg_lib.exercises import Exercise, check, register
register(Exercise(id="test/g-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply."),
         Exercise(id="test/g-share", expected=lambda: 1 / 8, kind="fraction", hint="Divide."))"""


def _submission(*cells):
    return new_notebook(cells=[new_markdown_cell("# Homework"), new_code_cell(SETUP)] +
                        [new_code_cell(c) for c in cells],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


TEST_EXERCISES = (checks.Exercise(id="test/g-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply."),
                  checks.Exercise(id="test/g-share", expected=lambda: 1 / 8, kind="fraction", hint="Divide."))


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The test exercises in the grader's registry (removed afterwards)."""
    with exercises_registered(*TEST_EXERCISES):
        yield


def reference_notebook(folder):
    """The 'chapter' the submissions were handed out from: its checks are what is graded."""
    path = folder / "homework.ipynb"
    nbformat.write(_submission('answer = None\ncheck("test/g-count", answer)', 'answer = None\ncheck("test/g-share", answer)'),
                   path)
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    reference = reference_notebook(tmp_path_factory.mktemp("chapter"))
    folder = tmp_path_factory.mktemp("submissions")
    nbformat.write(_submission('check("test/g-count", "42")', 'check("test/g-share", "12.5%")'),
                   folder / "ada.ipynb")
    nbformat.write(_submission('check("test/g-count", 41)', 'check("test/g-count", 40)',
                               'answer = None\ncheck("test/g-share", answer)'), folder / "bert.ipynb")
    (folder / "chen").mkdir()
    nbformat.write(_submission("1 / 0", 'check("test/g-count", 6 * 7)', 'check("test/g-share", undefined_name)'),
                   folder / "chen" / "homework.ipynb")
    (folder / "dana.ipynb").write_text("this is not a notebook")
    out = tmp_path_factory.mktemp("out")
    code = grade.main([str(folder), "--report", str(out / "report.md"), "--csv", str(out / "scores.csv"),
                       "--timeout", "300", "--executed", str(out / "executed"), "--exercises-from", str(reference),
                       "--sandbox", MODE])
    rows = list(csv.DictReader(open(out / "scores.csv", encoding="utf-8")))
    return code, (out / "report.md").read_text(encoding="utf-8"), rows, out


def _row(rows, student, exercise):
    return next(r for r in rows if r["student"] == student and r["exercise"] == exercise)


def test_the_command_succeeds_and_grades_every_exercise_seen(graded):
    code, report, rows, _ = graded
    assert code == 0
    assert {r["exercise"] for r in rows} == {"test/g-count", "test/g-share"}
    assert {r["student"] for r in rows} == {"ada", "bert", "chen", "dana"}


def test_a_correct_submission_scores_full_marks(graded):
    _, report, rows, _ = graded
    assert [_row(rows, "ada", e)["status"] for e in ("test/g-count", "test/g-share")] == ["correct", "correct"]
    assert "| ada | ada.ipynb | 2/2 | ✅ | ✅ | ran to the end" in report


def test_wrong_and_unanswered_exercises_score_nothing_and_count_tries(graded):
    _, report, rows, _ = graded
    count, share = _row(rows, "bert", "test/g-count"), _row(rows, "bert", "test/g-share")
    assert (count["status"], count["attempts"], count["score"]) == ("wrong", "2", "0")
    assert (share["status"], share["score"]) == ("unanswered", "0")
    assert "| bert | bert.ipynb | 0/2 | ❌ (2 tries) | ✏️ |" in report


def test_a_raising_cell_does_not_stop_the_later_checks(graded):
    _, report, rows, out = graded
    assert _row(rows, "chen", "test/g-count")["status"] == "correct"
    assert _row(rows, "chen", "test/g-share")["status"] == "not run"  # its own cell raised NameError
    assert _row(rows, "chen", "test/g-count")["run"] == "error in cell 2: ZeroDivisionError: division by zero"
    assert (out / "executed" / "chen" / "homework.ipynb").exists()


def test_a_file_that_is_not_a_notebook_is_reported(graded):
    _, report, rows, _ = graded
    assert _row(rows, "dana", "test/g-count")["status"] == "missing"
    assert "| dana | dana.ipynb | 0/2 |" in report and "unreadable notebook" in report


def test_the_report_counts_outcomes_per_exercise(graded):
    _, report, _, _ = graded
    assert "| `test/g-count` | 2 | 1 | 0 | 1 |" in report  # ada, chen right; bert wrong; dana missing
    assert "| `test/g-share` | 1 | 0 | 1 | 2 |" in report


def test_a_looping_notebook_is_stopped_at_the_limit_and_keeps_earlier_checks(tmp_path):
    path = tmp_path / "eve.ipynb"
    nbformat.write(_submission('check("test/g-count", 42)', "while True:\n    pass", 'check("test/g-share", 0.125)'),
                   path)
    start = time.monotonic()
    submission = grade.run_one("eve", path, timeout=10, sandbox=sandbox.choose(MODE))
    assert time.monotonic() - start < 10 + 30  # the limit, plus starting and stopping the kernel
    assert submission.outcome == "stopped at the 10 s time limit in cell 3"
    assert submission.result("test/g-count").status == "correct"
    assert submission.result("test/g-share").status == "not run"


def test_bad_arguments_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path), "--report", str(tmp_path / "r.md")])
    assert "no .ipynb files under" in capsys.readouterr().err


def test_exercises_come_from_the_reference_notebooks_only(tmp_path):
    # Changed on purpose (issue #15): what a submission mentions, and ids the registry does not
    # know ("test/g-extra"), no longer change what everyone is graded on.
    reference = tmp_path / "chapter.ipynb"
    nbformat.write(_submission('check("test/g-extra", answer)', 'check("test/g-count", answer)',
                               '# check("test/g-share", answer)\nprint(\'check("test/g-share", 1)\')'), reference)
    submitted = submissions.Submission("fay", tmp_path / "fay.ipynb", checks_in_source=["test/g-count", "test/g-own"])
    assert submissions.exercises_to_grade([submitted], [reference]) == ["test/g-count"]
    assert submitted.result("test/g-extra").status == "missing"
    assert submitted.result("test/g-own").status == "not run"
