"""What the grader spends on one submission is bounded (issue #27, section 3): an answer is read
in microseconds whatever it is, at most MAX_ANSWERS records are graded, and none after the
submission's deadline (its own time limit; submissions.run_submission sets it). No kernel runs
here: the records are given as the bytes a results file would hold."""

import json
import time

import pytest

from vgg_lib import exercises
from vgg_lib.exercises import checking
from vgg_lib.teaching import submissions
from support import exercises_registered

ATTACK = "(" + "9" * 190 + "**64)**64"  # 0.15 s of the grader's CPU each, before the bound
EXERCISE = exercises.Exercise(id="test/b-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply.")


@pytest.fixture(autouse=True)
def registered():
    with exercises_registered(EXERCISE):
        yield


def _records(answer, count):
    return b"".join(json.dumps({"exercise": EXERCISE.id, "answer": answer}).encode() + b"\n" for _ in range(count))


def test_numbers_past_a_float_are_refused_before_they_are_computed():
    for answer in (ATTACK, "9" * 190 + "*" + "9" * 190 + "*" + "9" * 190, "(2**64)**64"):
        with pytest.raises(checking.AnswerFormatError, match="too large"):
            checking.read_answer(answer)
    assert checking.read_answer("(2**5)**3").value == 32768  # powers that are answers still are


def test_a_results_file_full_of_the_attack_costs_the_grader_little():
    data = _records(ATTACK, 4000)
    assert len(data) < submissions.MAX_RESULTS_BYTES  # as much as a results file may hold
    start = time.process_time()
    entries, problems = submissions.read_results(data, {EXERCISE.id})
    spent = time.process_time() - start
    assert len(entries) == submissions.MAX_ANSWERS and {e["status"] for e in entries} == {"unreadable"}
    assert problems == {f"past the {submissions.MAX_ANSWERS:,}-answer limit": 4000 - submissions.MAX_ANSWERS}
    assert spent < 5, f"{spent:.1f} s of the grader's time (it was about ten minutes before the bound)"


def test_no_answer_is_graded_after_the_submission_s_deadline():
    entries, problems = submissions.read_results(_records(42, 3), {EXERCISE.id}, deadline=time.monotonic() - 1)
    assert entries == [] and problems == {"past the time limit": 3}
    entries, _ = submissions.read_results(_records(42, 3), {EXERCISE.id}, deadline=time.monotonic() + 60)
    assert [e["status"] for e in entries] == ["correct"] * 3
