"""No student copy gives an exercise's answer away (issue #27, section 4).

For every chapter in _toc.yml (chapters added later included) and every exercise its code checks
(from the registry), neither the prose of a student copy nor the outputs a ``--keep-outputs``
copy keeps may hold the answer in a form a student would type or read: ``138357544``,
``138,357,544``, ``138.4M``, ``0.80 %``, ``44.9%`` ... (vgg_lib/teaching/answer_leaks.py says
which forms). An exercise that asks the student to read its answer off an earlier output says so
in the registry (``read_off``). ``test_the_count`` prints how many values were checked.
"""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from vgg_lib import exercises
from vgg_lib.exercises import checking, get_exercise, registry
from vgg_lib.teaching import answer_leaks, student_copy
from vgg_lib.teaching.notebooks import find_root, toc_notebooks
from vgg_lib.teaching.submissions import chapters_from
from support import exercises_registered

ROOT = find_root(Path(__file__).parent)
CHAPTERS = toc_notebooks(ROOT)


def _forms(exercise_id):
    return set(answer_leaks.answer_forms(get_exercise(exercise_id)))


def test_the_forms_are_those_students_type_and_read():
    assert {"138357544", "138,357,544", "138.4M", "138.36 M", "138 million"} <= _forms("building_vgg/vgg16-parameters")
    assert {"0.80 %", "0.80%", "0.8%"} <= _forms("layer_by_layer/fc-mac-share")
    assert {"44.9%", "45%", "0.449", "44.90 percent"} <= _forms("small_filters/weight-saving")
    assert {"212", "590,080", "8,448"} <= _forms("receptive_fields/unpadded-pool5") | \
        _forms("layer_by_layer/conv3-2-parameters") | _forms("building_vgg/bn-extra-parameters")
    assert "7" not in _forms("receptive_fields/three-3x3")  # "7×7" is everywhere: not looked for
    for exercise_id in exercises.exercise_ids():
        exercise = get_exercise(exercise_id)
        for form in answer_leaks.answer_forms(exercise):
            assert checking.is_correct(exercise, form), (exercise_id, form)  # each one would score


def _independent_renderings(value):
    """The answer printed the ways Python code in a chapter prints numbers (tests/test_checks.py
    has the same list for feedback lines)."""
    forms = {f"{value:.3g}", f"{value:.4g}", f"{value:,.2f}"}
    if float(value).is_integer():
        forms |= {str(int(value)), f"{int(value):,}", f"{value / 1e6:.1f}M", f"{value / 1e6:.2f}M"}
    if 0 < abs(value) < 1:
        forms |= {f"{100 * value:.1f}%", f"{100 * value:.2f}%", f"{value:.3f}", f"{value:.4f}"}
    return forms


@pytest.mark.parametrize("exercise_id", exercises.exercise_ids())
def test_whatever_python_prints_for_an_answer_is_looked_for(exercise_id):
    """A second, simpler list of renderings: each one that the check accepts must be among the
    forms looked for, unless it is a whole number below 100 or a decimal of one figure."""
    exercise = get_exercise(exercise_id)
    value = registry.expected_value(exercise)
    forms = set(answer_leaks.answer_forms(exercise))
    for rendering in _independent_renderings(value):
        try:
            accepted = checking.is_correct(exercise, rendering)
        except checking.AnswerFormatError:
            continue
        rough = answer_leaks.significant_figures(rendering) < 2 and "%" not in rendering
        if accepted and not answer_leaks.too_common(rendering) and not rough:
            assert rendering in forms, (exercise_id, rendering)


def test_answers_are_found_however_they_are_typeset():
    saving, params = "small_filters/weight-saving", "building_vgg/vgg16-parameters"
    for text in ("## The saving: 44.9%, not 81%", "a saving of $44.9\\%$", "0.449 of them"):
        assert answer_leaks.find(text, [saving]), text
    for text in ("$138{,}357{,}544$", "138\u202f357\u202f544 weights", "138\\,357\\,544", "about 138.4 M"):
        assert answer_leaks.find(text, [params]), text
    for text in ("1,138,357,544", "138,357,5440", "0.4491", "conv3_2 of 1,590,080", "v138.4M"):
        assert not answer_leaks.find(text, [saving, params, "layer_by_layer/conv3-2-parameters"]), text


@pytest.fixture(scope="module")
def checked():
    """{chapter: (exercises checked, forms checked)}, filled by the chapter tests."""
    return {}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_student_copy_shows_an_answer(path, checked):
    nb = nbformat.read(path, as_version=4)
    (chapter,) = chapters_from([path])
    forms = answer_leaks.all_forms(chapter.exercises)
    shown = []
    for keep_outputs in (False, True):
        copy = student_copy.make_student_copy(nb, str(path), keep_outputs=keep_outputs)
        for index, cell in enumerate(copy.cells):
            texts = [cell.source] if cell.cell_type == "markdown" else \
                [answer_leaks.output_text(o) for o in cell.get("outputs", [])]
            for text in texts:
                shown += [f"cell {index} ({cell.cell_type}): {leak.exercise} as {leak.form!r} in "
                          f"{leak.context!r}" for leak in answer_leaks.find(text, chapter.exercises, forms)]
    assert not shown, f"{path.name}:\n" + "\n".join(sorted(set(shown)))
    looked_for = [e for e in chapter.exercises if not get_exercise(e).read_off]
    checked[path.name] = (len(looked_for), sum(len(forms[e]) for e in looked_for))


def test_the_count(checked, capsys):
    if not checked:
        pytest.skip("no chapter ran")
    exercises_checked = sum(n for n, _ in checked.values())
    forms_checked = sum(f for _, f in checked.values())
    with capsys.disabled():
        print(f"\nanswer leaks: {exercises_checked} answers of {len(checked)} chapters, {forms_checked} forms, "
              f"in the prose of each student copy and the outputs of each --keep-outputs copy")
    assert exercises_checked > 0


READ_OFF = (exercises.Exercise(id="test/leak-read-off", expected=lambda: 123456, kind="integer", hint="Read it.",
                               read_off=True),
            exercises.Exercise(id="test/leak-hidden", expected=lambda: 654321, kind="integer", hint="Add.",
                               same_number_elsewhere=("654321 apples",)))


@pytest.fixture
def synthetic_exercises():
    with exercises_registered(*READ_OFF):
        yield


def test_kept_outputs_leave_out_answers_but_not_those_to_read_off(synthetic_exercises):
    nb = new_notebook(cells=[
        new_markdown_cell("# A chapter"),
        new_code_cell("print(123456, 654321)", execution_count=1,
                      outputs=[new_output("stream", text="123456 654321\n")]),
        new_code_cell("print(123456)", execution_count=2, outputs=[new_output("stream", text="123,456\n")]),
        new_code_cell("print('654321 apples')", execution_count=3,
                      outputs=[new_output("stream", text="654321 apples\n"),
                               new_output("display_data", data={"image/png": "iVBORw0KGgo="})]),
        new_markdown_cell("```{exercise-start}\n:label: a\n```\n**(Warm-up)** Read it off.\n```{exercise-end}\n```"),
        new_code_cell('answer = None\ncheck("test/leak-read-off", answer)'),
        new_code_cell('answer = None\ncheck("test/leak-hidden", answer)'),
    ])
    copy = student_copy.make_student_copy(nb, keep_outputs=True)
    outputs = [[o.get("text", "") or "image" for o in c.get("outputs", [])] for c in copy.cells if c.cell_type == "code"]
    assert outputs[0] == [f"{student_copy.LEFT_OUT}: it shows the answer to test/leak-hidden. Run this cell to see "
                          "it, once you have tried the exercise.]\n"]
    assert outputs[1] == ["123,456\n"]  # read off on purpose
    assert outputs[2] == ["654321 apples\n", "image"]  # the same number, meaning something else
    assert student_copy.outputs_left_out(copy) == 1
