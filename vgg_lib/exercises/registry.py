"""The exercise registry: every self-checked exercise of the book, by id.

Each chapter's exercises live in ``vgg_lib/exercises/<notebook name>.py`` (``building_vgg.py`` for
``notebooks/01_building_vgg.ipynb``) as ``Exercise`` objects whose expected value is *computed*
by ``vgg_lib`` itself, not typed in, and whose ids start with that same name
(``building_vgg/vgg16-parameters``). Importing ``vgg_lib.exercises`` imports every chapter module,
so the registry is complete whenever it is used; this module imports none of them.
"""

from dataclasses import dataclass
from typing import Callable

ANSWER_KINDS = ("integer", "number", "fraction")


@dataclass
class Exercise:
    """One checkable exercise.

    kind: "integer" (exact), "number" (relative tolerance ``rel_tol``), or "fraction"
    (a share such as 0.125, also accepted as "12.5%" or 12.5).
    read_off: True when the exercise asks the student to read its answer off an earlier output
    of the chapter, so that output may show it; otherwise no student copy may show the answer
    (vgg_lib/teaching/answer_leaks.py, tests/teaching/test_answer_leaks.py).
    same_number_elsewhere: phrases in which the chapter uses the answer's number for something
    else ("150 crops" beside a receptive field of 150 pixels); those are not the answer shown.
    """

    id: str
    expected: Callable[[], float]
    hint: str
    kind: str = "number"
    rel_tol: float = 0.01
    abs_tol: float = 0.0
    read_off: bool = False
    same_number_elsewhere: tuple = ()

    def __post_init__(self):
        if self.kind not in ANSWER_KINDS:
            raise ValueError(f"Exercise {self.id!r}: kind must be one of {ANSWER_KINDS}, not {self.kind!r}.")
        if not callable(self.expected):
            raise TypeError(f"Exercise {self.id!r}: expected must be a function that computes the answer "
                            f"(e.g. lambda: count_parameters(vgg('D'))), not a typed-in value.")


def withheld():
    """``expected`` of every exercise in a summative grading run (vgg_lib/teaching/job_library.py):
    the notebook's environment holds no expected value to give away."""
    raise LookupError("The expected values are withheld while this notebook is graded summatively.")


_REGISTRY = {}
_EXPECTED = {}  # computed answers, by exercise id: building a VGG-16 for every check is slow


def register(*exercises):
    for exercise in exercises:
        _REGISTRY[exercise.id] = exercise
        _EXPECTED.pop(exercise.id, None)
    return exercises


def expected_value(exercise):
    """The exercise's answer, computed once per id (building a VGG-16 for every check is slow)."""
    if _REGISTRY.get(exercise.id) is not exercise:  # not registered: nothing to cache it under
        return float(exercise.expected())
    if exercise.id not in _EXPECTED:
        _EXPECTED[exercise.id] = float(exercise.expected())
    return _EXPECTED[exercise.id]


def exercise_ids():
    return sorted(_REGISTRY)


def get_exercise(exercise_id):
    if exercise_id not in _REGISTRY:
        raise KeyError(f"No exercise {exercise_id!r}. Known exercises: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[exercise_id]
