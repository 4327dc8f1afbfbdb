"""Exercise checks: equivalent forms accepted, wrong answers refused, no answer ever printed."""

import json
import re

import numpy as np
import pytest
import torch
import torchvision

from vgg_lib import count_parameters, vgg
from vgg_lib.exercises import registry
from vgg_lib.exercises import Exercise, check, exercise_ids, grade
from vgg_lib.exercises.checking import AnswerFormatError, parse_number


def _torchvision_vgg16():
    with torch.device("meta"):
        return torchvision.models.vgg16()


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def synthetic(registered_exercises):
    """``add(**fields)``: one exercise (with a hint) registered for one test, its id returned."""
    return lambda **fields: registered_exercises(Exercise(hint="Think again.", **fields))[0]


VGG16_FORMS = [lambda n: n, lambda n: f"{n:,}", lambda n: f"{n:_}", lambda n: f"{n:,}".replace(",", " "),
               lambda n: np.int64(n), lambda n: torch.tensor(n), lambda n: float(n),
               lambda n: f"{n / 1e6:.1f}M", lambda n: f"{n / 1e6:.2f}M", lambda n: f"{n / 1e6:.0f}M",
               lambda n: f"{n / 1e6:.1f} million", lambda n: f"{n / 1e9:.3f}B", lambda n: f"{n:.3e}"]


@pytest.mark.parametrize("form", range(len(VGG16_FORMS)))
def test_a_count_is_accepted_in_every_equivalent_form(form):
    n = _count(_torchvision_vgg16())  # the reference: torchvision's VGG-16
    assert check("building_vgg/vgg16-parameters", VGG16_FORMS[form](n), quiet=True)


@pytest.mark.parametrize("shift", [-1, 1, 1000, -60_000])
def test_a_count_that_is_off_is_refused(shift):
    n = _count(_torchvision_vgg16()) + shift
    assert not check("building_vgg/vgg16-parameters", n, quiet=True)
    assert not check("building_vgg/vgg16-parameters", f"{n:,}", quiet=True)


def test_a_rounded_count_must_round_to_the_true_one_and_keep_three_figures():
    n = _count(_torchvision_vgg16())
    assert not check("building_vgg/vgg16-parameters", f"{n / 1e6 + 0.1:.1f}M", quiet=True)
    assert not check("building_vgg/vgg16-parameters", float(round(n, -5)), quiet=True)  # a float is taken as exact
    status, detail = grade("building_vgg/vgg16-parameters", f"{n / 1e9:.1f}B")  # two figures: too coarse
    assert status == "unreadable" and "three significant figures" in detail
    assert grade("building_vgg/vgg16-parameters", f"{n / 1e9 + 1:.1f}B")[0] == "unreadable"  # says nothing either way


def test_a_share_is_accepted_as_a_fraction_or_a_percentage():
    model = _torchvision_vgg16()
    share = _count(model.classifier) / _count(model)
    for answer in [share, round(share, 3), f"{100 * share:.1f}%", 100 * share, f"{100 * share:.2f} %",
                   f"{100 * share:.1f} percent", torch.tensor(share)]:
        assert check("building_vgg/classifier-share", answer, quiet=True), answer
    for answer in [1 - share, 0.8, "80%", share + 0.02, f"{100 * share + 2:.1f}%"]:
        assert not check("building_vgg/classifier-share", answer, quiet=True), answer


def test_number_kind_uses_its_relative_tolerance(synthetic):
    exercise_id = synthetic(id="test/number", expected=lambda: 2.5, kind="number", rel_tol=0.01)
    assert check(exercise_id, 2.52, quiet=True) and check(exercise_id, "2.48", quiet=True)
    assert not check(exercise_id, 2.53, quiet=True) and not check(exercise_id, "2.47", quiet=True)
    assert check(exercise_id, "250%", quiet=True)  # a percentage of a plain number is read as a number


def test_arithmetic_strings_are_evaluated_exactly_and_safely(synthetic):
    count = synthetic(id="test/count", expected=lambda: 3 * 3 * 64 * 64, kind="integer")
    share = synthetic(id="test/share", expected=lambda: 1 - 27 / 49, kind="fraction", rel_tol=0.001)
    assert check(count, "3*3*64*64", quiet=True) and check(count, "3 × 3 × 64 × 64", quiet=True)
    assert check(share, "1 - 27/49", quiet=True) and check(share, "22/49", quiet=True)
    for hostile in ["__import__('os').system('true')", "2**1000000", "(lambda: 1)()", "x + 1"]:
        assert grade(count, hostile)[0] == "unreadable"


@pytest.mark.parametrize("answer", [None, ...])
def test_no_answer_yet_is_reported_without_failing(answer, capsys):
    assert not check("building_vgg/vgg16-parameters", answer)
    out = capsys.readouterr().out
    assert "no answer yet" in out and "Traceback" not in out


@pytest.mark.parametrize("answer", ["abc", "1,2", "", [1, 2], {"a": 1}, True, float("nan"), float("inf"),
                                    torch.ones(3), np.zeros(2), "1/0", "1e400"])
def test_unreadable_answers_get_a_warning_not_an_exception(answer, capsys):
    assert not check("building_vgg/vgg16-parameters", answer)
    out = capsys.readouterr().out
    assert out.startswith("⚠️ building_vgg/vgg16-parameters:") and len(out.splitlines()) == 1


def test_parse_number_keeps_its_contract():
    assert parse_number("138,357,544") == (138357544.0, False)
    assert parse_number("44.9%") == (44.9, True)
    assert parse_number("1.5k") == (1500.0, False)
    assert parse_number("2 ** 5") == (32.0, False)
    with pytest.raises(AnswerFormatError, match="commas"):
        parse_number("0,449")


def test_an_unknown_exercise_is_a_clear_error():
    with pytest.raises(KeyError, match="Known exercises: .*building_vgg/vgg16-parameters"):
        check("building_vgg/no-such-exercise", 1)


def test_exercises_must_compute_their_answer_and_name_a_known_kind():
    with pytest.raises(TypeError, match="function that computes"):
        Exercise(id="x", expected=42, hint="h")
    with pytest.raises(ValueError, match="kind must be one of"):
        Exercise(id="x", expected=lambda: 1, hint="h", kind="percentage")


def test_checks_are_logged_for_the_grader_without_the_answer(tmp_path, monkeypatch, synthetic):
    exercise_id = synthetic(id="test/logged", expected=lambda: 987654, kind="integer")
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("VGG_CHECK_LOG", str(log))
    for answer in [None, 5, "abc", 987654]:
        check(exercise_id, answer, quiet=True)
    lines = log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    # The student's own answer is logged (the grader checks it again); the status only for show.
    assert entries == [{"exercise": exercise_id, "answer": a, "status": s} for a, s in
                       ((None, "unanswered"), (5, "wrong"), ("abc", "unreadable"), (987654, "correct"))]
    assert not any("987654" in line for line in lines[:3])  # never the expected value


def _renderings(value):
    """Ways an answer could be spelled out in a feedback line."""
    forms = {f"{value:.3g}", f"{value:.4g}", f"{value:.5g}"}
    if float(value).is_integer():
        n = int(value)
        forms |= {str(n), f"{n:,}", f"{n:_}"}
        if abs(n) >= 10_000:
            forms |= {f"{n / 1e6:.1f}M", f"{n / 1e6:.2f}M", f"{n / 1e9:.2f}B"}
    if 0 < abs(value) < 1:
        forms |= {f"{100 * value:.1f}%", f"{100 * value:.0f}%", f"{value:.2f}", f"{value:.3f}"}
    return forms


def _mentions(text, form):
    return re.search(r"(?<![\d.,_])" + re.escape(form) + r"(?![\d_]|[.,]\d)", text) is not None


def _feedback(exercise_id, answers, capsys):
    for answer in answers:
        check(exercise_id, answer)
    return capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_feedback_tells_right_or_wrong_and_nothing_about_the_answer(exercise_id, capsys, monkeypatch):
    """The same wrong answers get word-for-word the same feedback whatever the expected value is,
    so the feedback carries no information about it beyond "not this"."""
    exercise = registry.get_exercise(exercise_id)
    expected = registry.expected_value(exercise)
    answers = [expected * 1.5 + 1, -expected - 1, "abc", None, [1], "1,2"]
    real = _feedback(exercise_id, answers, capsys)
    monkeypatch.setitem(registry._EXPECTED, exercise_id, expected * 7 + 13)
    assert _feedback(exercise_id, answers, capsys) == real
    assert "✅" not in real and real.count("❌") == 2


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_no_hint_spells_out_its_answer(exercise_id):
    exercise = registry.get_exercise(exercise_id)
    expected = registry.expected_value(exercise)
    if float(expected).is_integer() and abs(expected) < 10:
        forms = set()  # a lone digit also appears in "3x3" and friends: judged by reading, not by regex
    else:
        forms = _renderings(expected)
    leaked = sorted(form for form in forms if _mentions(exercise.hint, form))
    assert not leaked, f"{exercise_id}: the hint mentions the answer as {leaked}: {exercise.hint}"


def test_the_leak_detector_would_catch_a_leaking_hint():
    assert any(_mentions("It is about 138.4M, give or take.", form) for form in _renderings(138357544.0))
    assert any(_mentions("Roughly 44.9% of them.", form) for form in _renderings(0.4489795918))
    assert not any(_mentions("Three 3x3 layers, 1,385 weights.", form) for form in _renderings(138357544.0))


def test_the_result_is_true_when_correct_and_shows_nothing_in_a_notebook():
    from IPython.core.formatters import DisplayFormatter

    n = count_parameters(vgg("D"))
    right = check("building_vgg/vgg16-parameters", n, quiet=True)
    wrong = check("building_vgg/vgg16-parameters", n + 1, quiet=True)
    empty = check("building_vgg/vgg16-parameters", None, quiet=True)
    assert right and right == True and right.status == "correct"  # noqa: E712
    assert not wrong and wrong == False and wrong.status == "wrong"  # noqa: E712
    assert not empty and empty.status == "unanswered"
    assert "building_vgg/vgg16-parameters" in repr(wrong)
    # IPython's formatter produces no data for it, so ipykernel sends no "Out[...]" result
    assert DisplayFormatter().format(right) == ({}, {})
