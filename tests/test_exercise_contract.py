"""Every exercise of every chapter keeps one contract (book/contributing.md):

* a starter cell, outside any solution, sets ``answer = None`` and then calls
  ``check("<id>", answer)`` at the top level of the cell (no ``if`` around it), so that an
  unanswered exercise runs and reports "no answer yet";
* the id is registered, and the id's prefix, the exercise module (``vgg_lib/exercises/<name>.py``)
  and the notebook (``notebooks/NN_<name>.ipynb``) share one name;
* every registered exercise has its starter cell in its chapter.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from vgg_lib import exercises
from vgg_lib.teaching.code_cells import parse
from vgg_lib.teaching.directives import regions
from vgg_lib.teaching.exercises import read_exercises
from vgg_lib.teaching.notebooks import toc_notebooks

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = toc_notebooks(ROOT)


def chapter_name(path):
    match = re.fullmatch(r"\d+_(?P<name>\w+)", Path(path).stem)
    assert match, f"{path}: chapter notebooks are named NN_<name>.ipynb"
    return match["name"]


def _is_check_of_answer(node):
    """``check("<id>", answer)`` or ``vgg_lib.check("<id>", answer)`` as a statement."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    if (name == "check" and len(call.args) == 2 and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str) and isinstance(call.args[1], ast.Name)
            and call.args[1].id == "answer"):
        return call.args[0].value
    return None


def starter_ids(source):
    """Ids checked by the cell's top-level ``answer = None`` ... ``check(id, answer)`` pairs."""
    found, placeholder = [], False
    for node in parse(source).body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["answer"]
                and isinstance(node.value, ast.Constant) and node.value.value is None):
            placeholder = True
            continue
        exercise_id = _is_check_of_answer(node)
        if exercise_id is not None and placeholder:
            found.append(exercise_id)
            placeholder = False
    return found


def guarded_check_ids(source):
    """Ids of ``check(id, answer)`` calls nested inside a statement (an ``if``, a loop...)."""
    nested = []
    for statement in parse(source).body:
        if isinstance(statement, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            for node in ast.walk(statement):
                exercise_id = _is_check_of_answer(node)
                if exercise_id is not None:
                    nested.append(exercise_id)
    return nested


def cells_outside_solutions(path):
    nb = nbformat.read(path, as_version=4)
    pieces, found = regions(nb, str(path))
    inside = {pieces[i].cell_index for r in found if r.kind == "solution" for i in range(r.start, r.stop)}
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code" and i not in inside]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_has_an_unguarded_starter_cell(path):
    starters, guarded = {}, []
    for index, source in cells_outside_solutions(path):
        for exercise_id in starter_ids(source):
            starters[exercise_id] = index
        guarded += [(index, exercise_id) for exercise_id in guarded_check_ids(source)]
    assert not guarded, f"{path.name}: check(id, answer) inside an if/loop in cells {guarded}"
    for exercise in read_exercises(path):
        for exercise_id in exercise.checks:
            assert exercise_id in starters, (
                f"{path.name}, exercise {exercise.label}: no starter cell 'answer = None' + "
                f"check({exercise_id!r}, answer) outside its solution")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_ids_module_and_notebook_share_one_name(path):
    name = chapter_name(path)
    ids = [i for e in read_exercises(path) for i in e.checks]
    registered = set(exercises.exercise_ids())
    assert set(ids) <= registered, f"{path.name}: unregistered ids {sorted(set(ids) - registered)}"
    assert all(i.split("/", 1)[0] == name for i in ids), (path.name, ids)
    if ids:
        assert name in exercises.CHAPTER_MODULES
        assert (ROOT / "vgg_lib" / "exercises" / f"{name}.py").is_file()
    # every exercise registered for this chapter is asked in it, with a starter cell
    starters = {i for _, source in cells_outside_solutions(path) for i in starter_ids(source)}
    own = {i for i in registered if i.split("/", 1)[0] == name}
    assert own <= starters, f"{path.name}: registered but never asked: {sorted(own - starters)}"


def test_every_exercise_module_belongs_to_a_chapter():
    names = {chapter_name(path) for path in CHAPTERS}
    assert set(exercises.CHAPTER_MODULES) <= names
    modules = {p.stem for p in (ROOT / "vgg_lib" / "exercises").glob("*.py")}
    assert modules - {"__init__", "registry", "checking"} == set(exercises.CHAPTER_MODULES)
    for exercise_id in exercises.exercise_ids():
        assert exercise_id.split("/", 1)[0] in exercises.CHAPTER_MODULES, exercise_id


def test_the_contract_test_catches_a_guard_and_a_missing_placeholder():
    assert starter_ids('answer = None  # yours\ncheck("x/y", answer)') == ["x/y"]
    assert starter_ids('answer = None\nif answer is not None:\n    check("x/y", answer)') == []
    assert guarded_check_ids('answer = None\nif answer is not None:\n    check("x/y", answer)') == ["x/y"]
    assert starter_ids('check("x/y", answer)') == []
    assert starter_ids('answer = None\nvgg_lib.check("x/y", answer)') == ["x/y"]
