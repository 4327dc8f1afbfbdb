"""Hostile submissions against the grader (issue #15): each case below was once enough to fake a
score, damage another student's work or stop the whole run.

Cheap on purpose: tiny chapter-1-like notebooks, one grading run per sandbox for all of them, two
at a time in the sandboxes (``--jobs 2``: each hostile notebook then runs beside another
student's) and one at a time without one (there a process that escaped could write into the job
beside it, a risk the instructor accepts with ``--sandbox none``).
Each sandbox that this machine cannot offer is skipped with the reason (bwrap: bubblewrap missing
or unable to create namespaces; user: the grader is not root, or its probe refused); a sandbox
named in VGG_REQUIRE_SANDBOXES (CI: "bwrap user", .ci/run) fails instead. The no-sandbox cases
run everywhere. The attacks of issue #27 are in tests/teaching/test_sandbox_attacks.py."""

import csv
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vgg_lib import exercises as checks
from vgg_lib.exercises import checking, registry
from vgg_lib.teaching import grade, jobs, sandbox, submissions
from support import exercises_registered

SETUP = """from vgg_lib.exercises import Exercise, check, register
register(Exercise(id="test/h-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply."),
         Exercise(id="test/h-share", expected=lambda: 1 / 8, kind="fraction", hint="Divide."))"""
TEST_EXERCISES = (checks.Exercise(id="test/h-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply."),
                  checks.Exercise(id="test/h-share", expected=lambda: 1 / 8, kind="fraction", hint="Divide."),
                  checks.Exercise(id="test/h-other", expected=lambda: 3, kind="integer", hint="Count."))
MARKER = "vgg-grade-escapee-"  # in the command line of every process a hostile submission leaves


@pytest.fixture(scope="module", autouse=True)
def registered():
    with exercises_registered(*TEST_EXERCISES):
        yield


def _notebook(*cells):
    return new_notebook(cells=[new_markdown_cell("# Homework"), new_code_cell(SETUP)] +
                        [new_code_cell(c) for c in cells],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _sandbox_or_skip(mode):
    problem = jobs.sandbox_problem(mode)
    required = os.environ.get("VGG_REQUIRE_SANDBOXES", "").replace(",", " ").split()
    if problem and mode not in required:
        pytest.skip(f"the {mode} sandbox is not available here: {problem}")
    assert problem is None, problem
    return sandbox.choose(mode)


def _escapees(marker):
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


def _scratch_folders():
    return set(Path(tempfile.gettempdir()).glob("vgg-grade-*"))


FORGER = [
    # Replace check and the function it calls: the kernel then says "correct" to a wrong answer.
    "import vgg_lib.exercises.checking as c\nc.grade = lambda *a, **k: ('correct', '')\nc.check('test/h-count', 41)",
    # Forged lines: a bare status, an unknown status, a list, bad UTF-8, an oversized line, an
    # unknown exercise, a tower of powers that would take the grader forever.
    """import json, os
log = os.environ["VGG_CHECK_LOG"]
with open(log, "ab") as f:
    f.write(b'{"exercise": "test/h-share", "status": "correct"}\\n')
    f.write(b'{"exercise": "test/h-share", "status": "perfect", "answer": 0.5}\\n')
    f.write(b'["test/h-share", "correct"]\\n')
    f.write(b'{"exercise": "test/h-share", "answer": "\\xff\\xfe"}\\n')
    f.write(b'{"exercise": "test/h-share", "answer": "' + b'1' * 10000 + b'"}\\n')
    f.write(b'{"exercise": "test/nonexistent", "answer": 1}\\n')
    f.write(b'{"exercise": "test/h-count", "answer": "((((9**64)**64)**64)**64)**64"}\\n')""",
    # Ids in a comment or a string must not change anyone's denominator.
    '# check("test/h-other", 3)\ntext = \'check("test/h-other", 3)\'',
]


def _hostile_folder(folder, out, deleter):
    victim = folder / "zoe.ipynb"
    nbformat.write(_notebook('check("test/h-count", 42)', 'check("test/h-share", "12.5%")'), victim)
    nbformat.write(_notebook(*FORGER), folder / "a_forger.ipynb")
    if deleter:  # without a sandbox it would succeed: nothing protects files there
        nbformat.write(_notebook(f"""import os, pathlib
victim, report = {str(victim)!r}, {str(out / "report.md")!r}
found = []
for target in (victim, report):
    for attempt in (lambda: os.remove(target), lambda: open(target, "w").write("gone")):
        try:
            attempt(); found.append("CHANGED " + target)
        except OSError:
            pass
for pid in os.listdir("/proc"):
    for what in ("cmdline", "environ", "cwd"):
        try:
            seen = os.readlink(f"/proc/{{pid}}/cwd") if what == "cwd" else open(f"/proc/{{pid}}/{{what}}", "rb").read().decode("latin-1")
        except OSError:
            continue
        if {str(folder)!r} in seen or {str(out)!r} in seen:
            found.append("SEEN via /proc/" + pid + "/" + what)
try:
    found += ["LISTED " + n for n in os.listdir({str(folder)!r})]
except OSError:
    pass
print("FOUND:", found)"""), folder / "b_deleter.ipynb")
    nbformat.write(_notebook('check("test/h-count", 42)', "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
                             'check("test/h-share", 0.125)'), folder / "c_parent_killer.ipynb")
    targets = [str(out / "report.md"), str(out / "scores.csv")]
    escapee = ("import glob, os, time\n"
               "# started in a session of its own (start_new_session below)\n"
               "while True:\n"
               "    for log in [os.environ['VGG_CHECK_LOG']] + glob.glob('/tmp/vgg-grade-*/job-*/box/results.jsonl'):\n"
               "        try:\n"
               "            open(log, 'a').write('{\"exercise\": \"test/h-count\", \"answer\": 41}\\n')\n"
               "        except OSError:\n"
               "            pass\n"
               f"    for path in {targets!r}:\n"
               "        try:\n"
               "            open(path, 'a').write('pwned\\n')\n"
               "        except OSError:\n"
               "            pass\n"
               "    time.sleep(0.2)\n"
               f"# {MARKER}\n")
    nbformat.write(_notebook('check("test/h-count", 42)',
                             f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {escapee!r}], "
                             f"start_new_session=True)\nsubprocess.Popen(['setsid', 'sh', '-c', 'sleep 600; : {MARKER}'])\n"
                             "import time; time.sleep(1)"),
                   folder / "d_escaper.ipynb")
    nbformat.write(_notebook('check("test/h-count", 42)'), folder / "new\nline|pipe`.ipynb")
    return victim


def _grade(tmp_path_factory, mode):
    folder, out = tmp_path_factory.mktemp("submissions"), tmp_path_factory.mktemp("out")
    reference = tmp_path_factory.mktemp("chapter") / "homework.ipynb"
    nbformat.write(_notebook('answer = None\ncheck("test/h-count", answer)', 'answer = None\ncheck("test/h-share", answer)'),
                   reference)
    victim = _hostile_folder(folder, out, deleter=mode != "none")
    victim_bytes = victim.read_bytes()
    before = _scratch_folders()
    start = time.monotonic()
    code = grade.main([str(folder), "--report", str(out / "report.md"), "--csv", str(out / "scores.csv"),
                       "--timeout", "60", "--exercises-from", str(reference), "--executed", str(out / "executed"),
                       "--sandbox", mode, "--jobs", "1" if mode == "none" else "2"])
    seconds = time.monotonic() - start
    report_bytes = (out / "report.md").read_bytes()
    if _escapees(MARKER):  # an escaped process: long enough for it to write again (it writes every 0.2 s)
        time.sleep(1.5)
    return {"mode": mode, "code": code, "folder": folder, "out": out, "victim": victim, "victim_bytes": victim_bytes,
            "seconds": seconds, "report": report_bytes.decode("utf-8"), "report_bytes": report_bytes,
            "rows": list(csv.DictReader(open(out / "scores.csv", encoding="utf-8", newline=""))),
            "scratch_left": _scratch_folders() - before}


@pytest.fixture(scope="module")
def in_bwrap(tmp_path_factory):
    _sandbox_or_skip("bwrap")
    return _grade(tmp_path_factory, "bwrap")


@pytest.fixture(scope="module")
def as_user(tmp_path_factory):
    _sandbox_or_skip("user")
    return _grade(tmp_path_factory, "user")


@pytest.fixture(scope="module")
def without_sandbox(tmp_path_factory):
    return _grade(tmp_path_factory, "none")


def _row(rows, notebook, exercise):
    return next(r for r in rows if r["notebook"] == notebook and r["exercise"] == exercise)


FIXTURES = {"bwrap": "in_bwrap", "user": "as_user", "none": "without_sandbox"}


@pytest.fixture(params=list(FIXTURES))
def run(request):
    return request.getfixturevalue(FIXTURES[request.param])


@pytest.fixture(params=["bwrap", "user"])
def sandboxed(request):
    return request.getfixturevalue(FIXTURES[request.param])


def test_the_run_finishes_and_the_report_says_which_isolation(run):
    assert run["code"] == 0 and run["scratch_left"] == set()
    assert {"bwrap": "Isolation: Each notebook ran in a bubblewrap sandbox",
            "user": "Isolation: Each notebook ran as a user of its own",
            "none": "Isolation: **No sandbox** (turned off with --sandbox none)"}[run["mode"]] in run["report"]
    assert "Grading in progress" not in run["report"]


def test_a_replaced_check_and_forged_lines_earn_nothing(run):
    rows = run["rows"]
    count, share = _row(rows, "a_forger.ipynb", "test/h-count"), _row(rows, "a_forger.ipynb", "test/h-share")
    assert (count["status"], count["attempts"]) == ("unreadable", "2")  # 41 (wrong), then the power tower
    assert (share["status"], share["attempts"]) == ("wrong", "1")  # 0.5, whatever status it claimed
    assert "| a\\_forger.ipynb | 0/2 |" in run["report"]
    assert ("5 results line(s) ignored (1 not UTF-8, 1 not a JSON object, 1 too long, 1 unknown exercise, "
            "1 without an answer)") in count["run"]


def test_ids_in_comments_do_not_change_the_denominator(run):
    assert {r["exercise"] for r in run["rows"]} == {"test/h-count", "test/h-share"}
    assert "test/h-other" not in run["report"]


def test_a_submission_that_kills_its_parent_keeps_its_checks_and_stops_only_itself(run):
    rows = run["rows"]
    assert _row(rows, "c_parent_killer.ipynb", "test/h-count")["status"] == "correct"
    assert _row(rows, "c_parent_killer.ipynb", "test/h-share")["status"] == "not run"
    assert _row(rows, "c_parent_killer.ipynb", "test/h-count")["run"].startswith(
        "the runner was killed by SIGKILL in cell 3, not by the grader: by the notebook's own code")


def test_whatever_a_submission_starts_dies_with_it(run):
    assert _escapees(MARKER) == []
    assert (run["out"] / "report.md").read_bytes() == run["report_bytes"]  # not rewritten afterwards
    assert b"pwned" not in (run["out"] / "scores.csv").read_bytes()


def test_the_next_student_is_untouched(run):
    rows = run["rows"]
    assert [(_row(rows, "zoe.ipynb", e)["status"], _row(rows, "zoe.ipynb", e)["attempts"])
            for e in ("test/h-count", "test/h-share")] == [("correct", "1"), ("correct", "1")]


def test_in_a_sandbox_a_submission_cannot_see_or_change_the_others(sandboxed):
    assert sandboxed["victim"].read_bytes() == sandboxed["victim_bytes"]
    executed = nbformat.read(sandboxed["out"] / "executed" / "b_deleter.ipynb", as_version=4)
    assert "FOUND: []" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_any_file_name_keeps_the_table_and_the_csv_whole(run):
    name = "new\nline|pipe`.ipynb"
    assert _row(run["rows"], name, "test/h-count")["status"] == "correct"  # the CSV keeps the real name
    assert "| new\\nline\\|pipe\\`.ipynb | 1/2 |" in run["report"]
    header = next(line for line in run["report"].splitlines() if line.startswith("| Student"))
    columns = header.count(" | ")
    for line in run["report"].splitlines():
        if line.startswith("| ") and "ipynb" in line:
            assert line.replace("\\|", "").count(" | ") == columns, line


# Cheap unit tests: no kernel.

def test_malformed_results_are_counted_for_that_submission_only(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_bytes(b'{"exercise": "test/h-count", "status": "splendid", "answer": 42}\n'
                        b'[1, 2]\n"text"\n\xff\xfe\n{"exercise": "test/h-count", "answer": NaN}\n'
                        b'{"exercise": 7, "answer": 42}\n' + b"x" * 5000 + b"\n"
                        b'{"exercise": "test/h-share", "answer": {"float": "nan"}}\n'
                        b'{"exercise": "test/h-share", "answer": {"bool": true}}\n')
    entries, problems = submissions.read_results(results.read_bytes(), {"test/h-count", "test/h-share"})
    assert entries == [{"exercise": "test/h-count", "status": "correct"},
                       {"exercise": "test/h-count", "status": "unanswered"},  # NaN is no answer
                       {"exercise": "test/h-share", "status": "unreadable"},
                       {"exercise": "test/h-share", "status": "unreadable"}]
    assert problems == {"not a JSON object": 2, "not UTF-8": 1, "unknown exercise": 1, "too long": 1}


def test_a_results_link_is_not_followed(tmp_path):
    canary = tmp_path / "canary"
    canary.write_text('{"exercise": "test/h-count", "answer": 42}\n')
    (tmp_path / "results.jsonl").symlink_to(canary)
    with pytest.raises(OSError):
        jobs.read_regular(tmp_path / "results.jsonl", 100)


def test_logged_answers_are_judged_as_the_kernel_would():
    import numpy as np
    import torch

    cases = [(42, "correct"), ("42", "correct"), ("4.2e1", "correct"), (42.0, "correct"),
             (torch.tensor(42.0), "correct"), (np.int64(42), "correct"), ("6*7", "correct"), ("1,234", "wrong"),
             (None, "unanswered"), (True, "unreadable"), (float("nan"), "unreadable"), (torch.ones(2), "unreadable"),
             ([42], "unreadable")]
    for answer, status in cases:
        assert checks.grade("test/h-count", answer)[0] == status, answer
        assert submissions.grade_answer("test/h-count", json.loads(json.dumps(checking.logged_answer(answer)))) == status
    for attack in ["((((9**64)**64)**64)**64)**64", "4" * 500]:  # the grader's time, its log's size
        start = time.monotonic()
        assert submissions.grade_answer("test/h-count", json.loads(json.dumps(checking.logged_answer(attack)))) == "unreadable"
        assert submissions.grade_answer("test/h-count", attack) == "unreadable"
        assert time.monotonic() - start < 1


def test_a_crash_on_one_submission_keeps_the_others(tmp_path, monkeypatch):
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("amy", "bob", "cid"):
        nbformat.write(_notebook('check("test/h-count", 42)'), folder / f"{name}.ipynb")
    reference = tmp_path / "homework.ipynb"
    nbformat.write(_notebook('check("test/h-count", None)'), reference)

    def fake_run(submission, *args):
        if submission.student == "bob":
            raise RuntimeError("the grader broke")
        if submission.student == "cid":
            raise KeyboardInterrupt  # the grader itself is stopped here
        submission.log = [{"exercise": "test/h-count", "status": "correct"}]

    monkeypatch.setattr(submissions, "_run", fake_run)
    with pytest.raises(KeyboardInterrupt):
        grade.main([str(folder), "--report", str(tmp_path / "report.md"), "--csv", str(tmp_path / "s.csv"),
                    "--exercises-from", str(reference), "--sandbox", "none"])
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Grading in progress: 2 notebook(s) graded, 1 still to run." in report
    assert "| amy | amy.ipynb | 1/1 | ✅ |" in report
    assert "| bob | bob.ipynb | 0/1 | ∅ | the grader failed on this notebook: RuntimeError: the grader broke" in report
    assert [r["student"] for r in csv.DictReader(open(tmp_path / "s.csv", encoding="utf-8"))] == ["amy", "bob"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_with_several_chapters_each_submission_is_graded_against_its_own(tmp_path):
    one = submissions.Chapter("one", ["test/h-count"], "one.ipynb")
    two = submissions.Chapter("two", ["test/h-share", "test/h-other"], "two.ipynb")
    by_name = submissions.Submission("a", Path("two.ipynb"), checks_in_source=["test/h-count"])
    by_calls = submissions.Submission("b", Path("b.ipynb"), checks_in_source=["test/h-other"])
    nothing = submissions.Submission("c", Path("c.ipynb"))
    assert [submissions.assign_chapter(s, [one, two]) for s in (by_name, by_calls, nothing)] == [two, two, None]
    assert submissions.assign_chapter(nothing, [one]) is one


@pytest.fixture(params=["bwrap", "user", "none"])
def mode(request):
    return _sandbox_or_skip(request.param)


def test_the_file_size_limit_stops_the_cell_and_the_memory_limit_the_notebook(tmp_path, mode):
    """Memory is resident memory (of all the job's processes), not address space: a notebook that
    maps much and uses little runs; one that uses more than the limit is stopped there, keeping
    the answers it gave before."""
    path = tmp_path / "greedy.ipynb"
    nbformat.write(_notebook('check("test/h-count", 42)', "open('big', 'wb').write(b'0' * (2 << 20))",
                             "import mmap\nmapped = mmap.mmap(-1, 2 << 30)  # 2 GB of address space, unused",
                             'check("test/h-share", 0.125)', "hog = b'x' * (1536 << 20)", 'check("test/h-other", 3)'),
                   path)
    limits = sandbox.Limits(seconds=120, file_mb=1, memory_mb=1024)
    submission = grade.run_one("greedy", path, timeout=90, sandbox=mode, limits=limits)
    assert submission.outcome == "stopped in cell 6: the notebook used more than the 1024 MB memory limit (resident)"
    assert [submission.result(e).status for e in ("test/h-count", "test/h-share", "test/h-other")] == \
        ["correct", "correct", "not run"]
    executed = nbformat.reads(submission.executed, as_version=4)
    outputs = "".join(o.get("evalue", "") for c in executed.cells for o in c.get("outputs", []))
    assert "File too large" in outputs


@pytest.fixture(scope="module")
def frozen(tmp_path_factory, offered_sandboxes):
    """{mode: a future of (seconds, Submission)}: a notebook that stops its own runner, graded in
    every sandbox this machine offers, all at once and all finished on return. Each sits out its
    20 s hard limit (for the whole sandbox, kernel start included: it leaves the first check time
    to run, as a kernel and vgg_lib's import take a few seconds, and ends long before the 60 s
    cell limit), so together they wait once instead of once per sandbox."""
    path = tmp_path_factory.mktemp("frozen") / "frozen.ipynb"
    nbformat.write(_notebook('check("test/h-count", 42)', "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)",
                             'check("test/h-share", 0.125)'), path)

    def grade_in(kind):
        start = time.monotonic()
        submission = grade.run_one("frozen", path, timeout=60, sandbox=sandbox.choose(kind),
                                   limits=sandbox.Limits(seconds=20))
        return time.monotonic() - start, submission

    with ThreadPoolExecutor(max_workers=len(offered_sandboxes)) as pool:
        return {kind: pool.submit(grade_in, kind) for kind in offered_sandboxes}


def test_a_job_that_stops_its_own_runner_is_killed_at_the_hard_limit(mode, frozen):
    seconds, submission = frozen[mode.kind].result()
    assert seconds < 20 + 10
    assert submission.outcome == "stopped at the 60 s time limit in cell 3 (the sandbox was killed)"
    assert submission.result("test/h-count").status == "correct"
    assert submission.result("test/h-share").status == "not run"


def test_the_book_chapters_are_graded_on_their_registered_self_checks():
    from vgg_lib.teaching.notebooks import find_root
    from vgg_lib.teaching.exercises import read_exercises
    from vgg_lib.teaching.notebooks import toc_notebooks

    notebooks = toc_notebooks(find_root(Path(__file__).parent))
    known = set(checks.exercise_ids())
    for notebook, chapter in zip(notebooks, submissions.chapters_from(notebooks)):
        listed = [c for e in read_exercises(notebook) for c in e.checks]  # the instructors' page's list
        assert set(chapter.exercises) == set(listed) & known, notebook.name
        assert chapter.notebook == notebook.name


def test_a_linked_submission_is_not_followed(tmp_path):
    secret = tmp_path / "instructor_notes.ipynb"
    nbformat.write(_notebook('check("test/h-count", 42)'), secret)
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "mallory.ipynb").symlink_to(secret)
    [(student, path)] = grade.find_submissions(tmp_path / "subs")
    submission = grade.run_one(student, path, timeout=10, sandbox=sandbox.choose("none"))
    assert submission.outcome == "unreadable notebook: OSError" and submission.log == []


def test_outputs_inside_a_read_only_folder_are_covered(tmp_path):
    import sys

    inside, outside = Path(sys.prefix) / "lib", tmp_path
    args = sandbox.bwrap_command(tmp_path, ["true"], tmp_path, hidden=[inside, outside])
    assert ["--tmpfs", str(inside.resolve())] == args[args.index(str(inside.resolve())) - 1:][:2]
    assert str(outside.resolve()) not in args[args.index("--bind"):][3:]


def test_a_small_chapter_one_submission_is_graded_against_the_whole_chapter(tmp_path, monkeypatch):
    """The real registry and the default chapters (_toc.yml), without --exercises-from."""
    from vgg_lib.teaching.notebooks import find_root
    from vgg_lib.teaching.exercises import read_exercises
    from vgg_lib.teaching.notebooks import toc_notebooks

    root = find_root(Path(__file__).parent)
    chapter = toc_notebooks(root)[0]
    ids = [c for e in read_exercises(chapter) for c in e.checks]
    right = registry.expected_value(checks.get_exercise(ids[0]))  # cached: the grader needs it too
    folder = tmp_path / "subs" / "student"
    folder.mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("import vgg_lib"),
                                       new_code_cell(f"answer = {right!r}\nvgg_lib.check({ids[0]!r}, answer)"),
                                       new_code_cell(f"answer = None\nvgg_lib.check({ids[1]!r}, answer)")],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}}), folder / chapter.name)
    monkeypatch.chdir(root)
    assert grade.main([str(tmp_path / "subs"), "--report", str(tmp_path / "report.md"), "--csv",
                       str(tmp_path / "scores.csv"), "--timeout", "120"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "scores.csv", encoding="utf-8")))
    assert [(r["exercise"], r["status"]) for r in rows] == \
        [(ids[0], "correct"), (ids[1], "unanswered")] + [(i, "missing") for i in ids[2:]]
    assert f"| 1/{len(ids)} |" in (tmp_path / "report.md").read_text(encoding="utf-8")
