"""Exercise checks: a student passes an answer, gets right/wrong and a hint, never the answer.

Each chapter's exercises live in ``vgg_lib/exercises/<chapter>.py`` as ``Exercise`` objects
whose expected value is *computed* (by ``vgg_lib`` itself), not typed in. In a notebook::

    from vgg_lib import check
    check("receptive_fields/three-3x3", answer)

Conventions the student copies and the grader rely on (book/instructors.md has the details):

* The exercise's starter cell leaves a placeholder, ``answer = None  # your answer``, followed by
  ``check("<id>", answer)``. ``check`` on ``None`` (or ``...``) says "no answer yet" and returns
  False without raising, so a student copy runs from top to bottom before anything is answered.
* The solution cell (inside ``{solution-start}``...``{solution-end}``) sets ``answer`` to the right
  value and calls ``check`` again, so the stored notebook shows a ✅.
* Answers may be ints, floats, tensors or numpy scalars with one element, or strings such as
  ``"1,234,567"``, ``"1.23M"``, ``"12.5%"``, ``"3/8"`` or ``"3*3*64*64"``. For an ``integer``
  exercise a rounded string ("1.23M", "1.23e6") counts when it has at least three significant
  figures and the exact count rounds to it.
* When the environment variable ``VGG_CHECK_LOG`` names a file, every call appends one JSON line
  ``{"exercise": id, "answer": ..., "status": ...}`` to it (``logged_answer`` below); the line
  never holds the expected value.
* While a notebook is graded (``python -m vgg_lib.teaching.grade`` sets ``VGG_CHECK_GRADING=1``
  and ``VGG_CHECK_LOG``), ``check`` decides nothing: it records the answer, says so, and never
  computes an expected value (that would run inside the submission's limits, and in a summative
  run there is none to compute). The grader checks every recorded answer in its own process.
"""

import ast
import json
import math
import operator
import os
import re
from dataclasses import dataclass
from typing import Optional

from .registry import expected_value, get_exercise

STATUSES = ("correct", "wrong", "unanswered", "unreadable")
GRADING_VARIABLE = "VGG_CHECK_GRADING"  # "1" while the grader runs the notebook: record, do not judge


class AnswerFormatError(ValueError):
    pass


@dataclass
class Answer:
    """A student's answer read as a number.

    resolution: for a rounded string such as "1.23M", half a unit of its last digit (5,000);
    None when the answer is exact (a Python number, "1,234,567", "3/8").
    """

    value: float
    percent: bool = False
    resolution: Optional[float] = None
    significant_figures: Optional[int] = None


_SUFFIXES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "mio": 1e6,
             "g": 1e9, "b": 1e9, "billion": 1e9, "bn": 1e9}
_DECIMAL = re.compile(r"(?P<sign>[-+]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?(?:e(?P<exp>[-+]?\d+))?")
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


MAX_BITS = 1100  # past float's range (2**1024): no answer is that large, and bigger numbers cost time


def _within_range(op, left, right):
    """Refuse, before computing it, a result that could not be an answer anyway: a power or a
    product past MAX_BITS. Without this, "(" + "9"*190 + "**64)**64" costs 0.15 s to evaluate."""
    if op is ast.Pow:
        if abs(right) > 64 or (abs(left) > 1 and right > 0 and right * math.log2(abs(left)) > MAX_BITS):
            raise AnswerFormatError("That power is too large to be an answer here.")
    elif op is ast.Mult and isinstance(left, int) and isinstance(right, int) \
            and left.bit_length() + right.bit_length() > MAX_BITS:
        raise AnswerFormatError("That number is too large to be an answer here.")


def _arithmetic(node):
    """Evaluate numbers, + - * / ** and brackets; nothing else (no names, no calls), and no
    number past MAX_BITS, so that any answer costs microseconds."""
    if isinstance(node, ast.Expression):
        return _arithmetic(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, int) and node.value.bit_length() > MAX_BITS:
            raise AnswerFormatError("That number is too large to be an answer here.")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _arithmetic(node.left), _arithmetic(node.right)
        _within_range(type(node.op), left, right)
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_arithmetic(node.operand))
    raise AnswerFormatError("only numbers and + - * / ** ( ) are understood")


def _read_string(answer):
    text = answer.strip().lower().replace("_", "").replace("\u2009", "").replace("\u00a0", "")
    text = text.replace("\u2212", "-").replace("\u00d7", "*")  # typographic minus and times
    percent = text.endswith("%") or text.endswith("percent")
    text = text.removesuffix("percent").rstrip().rstrip("%").rstrip()
    words = text.split()
    scale = 1.0
    if len(words) == 2 and words[1] in _SUFFIXES:  # "1.23 million"
        text, scale = words[0], _SUFFIXES[words[1]]
    text = text.replace(" ", "")
    if "," in text:
        if not _THOUSANDS.fullmatch(text):
            raise AnswerFormatError(f"Could not read {answer!r}: commas may only separate thousands "
                                    f"(1,234,567); write decimals with a point (0.125).")
        text = text.replace(",", "")
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if scale == 1.0 and text.endswith(suffix) and _DECIMAL.fullmatch(text[:-len(suffix)] or "x"):
            text, scale = text[:-len(suffix)], _SUFFIXES[suffix]
            break
    decimal = _DECIMAL.fullmatch(text)
    if decimal and (decimal["int"] or decimal["frac"]):
        if scale == 1.0 and "." not in text and decimal["exp"] is None:  # "1234567": exact
            return Answer(int(text), percent)
        digits = (decimal["int"] or "") + (decimal["frac"] or "")
        exponent = int(decimal["exp"] or 0) - len(decimal["frac"] or "")
        try:
            value, resolution = float(text) * scale, 0.5 * 10.0 ** exponent * scale
        except OverflowError:
            raise AnswerFormatError(f"{answer!r} is too large to be an answer here.") from None
        return Answer(value, percent, resolution, len(digits.lstrip("0")) or 1)
    try:
        value = _arithmetic(ast.parse(text, mode="eval"))
        value = value * scale if scale != 1.0 else value
        float(value)  # OverflowError for an absurdly large integer
        return Answer(value, percent)
    except (SyntaxError, AnswerFormatError, ZeroDivisionError, OverflowError, ValueError) as error:
        detail = f" ({error})" if isinstance(error, (AnswerFormatError, ZeroDivisionError)) else ""
        raise AnswerFormatError(f"Could not read {answer!r} as a number{detail}; try e.g. 27, "
                                f"'1,234,567', '1.2M', '12.5%' or '3/8'.") from None


def read_answer(answer):
    """Read ``answer`` (a number, a one-element tensor or array, or a string) as an ``Answer``.

    The examples in its error messages are fixed strings; tests/test_checks.py makes sure that no
    exercise's answer is among them."""
    if answer is None or answer is Ellipsis:
        raise AnswerFormatError("No answer yet.")
    if isinstance(answer, bool):
        raise AnswerFormatError("Answer with a number, not True/False.")
    if hasattr(answer, "item") and not isinstance(answer, (int, float, str)):  # tensor, numpy scalar
        try:
            answer = answer.item()
        except (ValueError, RuntimeError):
            raise AnswerFormatError("Answer with a single number, not a tensor or array of several.") from None
    if isinstance(answer, str):
        result = _read_string(answer)
    else:
        try:
            result = Answer(answer if isinstance(answer, int) else float(answer))
        except (TypeError, ValueError):
            raise AnswerFormatError(f"Answer with a number or a string like '12.5%', "
                                    f"not a {type(answer).__name__}.") from None
    if not math.isfinite(result.value):
        raise AnswerFormatError("That is not a finite number.")
    return result


def parse_number(answer):
    """Turn 1234567, "1,234,567", "1.23M", "12.5%" or "2 ** 5" style input into
    (value, was_percent). Raises AnswerFormatError for anything else."""
    result = read_answer(answer)
    return float(result.value), result.percent


class NotPreciseEnough(AnswerFormatError):
    pass


def is_correct(exercise, answer):
    """True when ``answer`` matches ``exercise``; AnswerFormatError when it cannot be judged."""
    result = read_answer(answer)
    value, expected = result.value, expected_value(exercise)
    if exercise.kind == "fraction":
        candidates = [value / 100] if result.percent or abs(value) > 1 else [value]
        return any(math.isclose(c, expected, rel_tol=exercise.rel_tol, abs_tol=exercise.abs_tol)
                   for c in candidates)
    if result.percent:
        value /= 100
    if exercise.kind == "integer":
        if value == round(value) and int(round(value)) == round(expected):
            return True
        if result.resolution is None:
            return False
        if result.significant_figures < 3:  # said whatever the value, so it tells nothing
            raise NotPreciseEnough("Give at least three significant figures (for example '12.3M'), "
                                   "or the exact number.")
        return abs(value - round(expected)) <= result.resolution * (1 + 1e-9)
    return math.isclose(value, expected, rel_tol=exercise.rel_tol, abs_tol=exercise.abs_tol)


def feedback(exercise_id, status, detail=""):
    """The line a student sees. It is built from the status and the hint only, never the answer."""
    if status == "correct":
        return f"✅ {exercise_id}: correct."
    if status == "unanswered":
        return f"✏️ {exercise_id}: no answer yet. Replace None with your answer and run this cell again."
    if status == "unreadable":
        return f"⚠️ {exercise_id}: {detail}"
    return f"❌ {exercise_id}: not yet. Hint: {get_exercise(exercise_id).hint}"


def logged_answer(answer):
    """``answer`` as JSON for the grader's log: None (no answer yet), an int, a finite float, a
    string (at most MAX_LOGGED_CHARACTERS), ``{"bool": b}``, ``{"float": "nan"|"inf"|"-inf"}``, or
    ``{"unreadable": reason}``. Tensors and numpy scalars of one element become their number.
    The grader (vgg_lib/teaching/grade.py) reads it back and checks it itself."""
    if answer is None or answer is Ellipsis:
        return None
    if hasattr(answer, "item") and not isinstance(answer, (bool, int, float, str)):
        try:
            answer = answer.item()
        except Exception:
            return {"unreadable": "Answer with a single number, not a tensor or array of several."}
    if isinstance(answer, bool):
        return {"bool": bool(answer)}
    if isinstance(answer, str):
        if len(answer) > MAX_LOGGED_CHARACTERS:
            return {"unreadable": f"Answers are at most {MAX_LOGGED_CHARACTERS} characters."}
        return str(answer)
    if isinstance(answer, int):
        return int(answer) if abs(int(answer)).bit_length() <= 1024 else {"unreadable": "That number is too large."}
    try:
        value = float(answer)
    except Exception:
        return {"unreadable": f"Answer with a number or a string like '12.5%', not a {type(answer).__name__}."}
    return value if math.isfinite(value) else {"float": repr(value)}


MAX_LOGGED_CHARACTERS = 200


def _log(exercise_id, status, answer=None):
    path = os.environ.get("VGG_CHECK_LOG")
    if path:
        record = {"exercise": exercise_id, "answer": logged_answer(answer)}
        record.update({"status": status} if status else {})
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")


def grade(exercise_id, answer):
    """(status, detail) for ``answer``: status is one of STATUSES."""
    exercise = get_exercise(exercise_id)
    if answer is None or answer is Ellipsis:
        return "unanswered", ""
    try:
        return ("correct" if is_correct(exercise, answer) else "wrong"), ""
    except AnswerFormatError as error:
        return "unreadable", str(error)


class CheckResult:
    """What ``check`` returns: true when the answer is correct (or, while grading, recorded for the
    grader), with the ``status`` behind it.

    It shows nothing when it ends a notebook cell: the ✅/❌ line ``check`` printed says it all,
    and a stray ``True`` under it would only puzzle a student."""

    __slots__ = ("exercise_id", "status")

    def __init__(self, exercise_id, status):
        self.exercise_id, self.status = exercise_id, status

    def __bool__(self):
        return self.status in ("correct", "recorded")

    def __eq__(self, other):
        if isinstance(other, CheckResult):
            return (self.exercise_id, self.status) == (other.exercise_id, other.status)
        return bool(self) == other if isinstance(other, bool) else NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"CheckResult({self.exercise_id!r}, {self.status!r})"

    def _ipython_display_(self):
        """IPython calls this instead of printing the value: nothing to add to the feedback."""


def check(exercise_id, answer, quiet=False):
    """Check ``answer`` for exercise ``exercise_id``; prints feedback and returns a
    ``CheckResult``, true when the answer is correct.

    Never raises for a student's answer (None, text, a tensor...): only an unknown exercise id
    raises KeyError, since that is a mistake in the notebook rather than in the answer.
    While grading (``VGG_CHECK_GRADING=1``) it only records the answer (status "recorded",
    true; "unanswered" for None), and the grader decides.
    """
    if os.environ.get(GRADING_VARIABLE) == "1":
        get_exercise(exercise_id)  # an unknown id is still the notebook's mistake
        status = "unanswered" if answer is None or answer is Ellipsis else "recorded"
        _log(exercise_id, None, answer)
        if not quiet:
            print(feedback(exercise_id, status) if status == "unanswered" else
                  f"📝 {exercise_id}: answer recorded; the grader checks it.")
        return CheckResult(exercise_id, status)
    status, detail = grade(exercise_id, answer)
    _log(exercise_id, status, answer)
    if not quiet:
        print(feedback(exercise_id, status, detail))
    return CheckResult(exercise_id, status)
