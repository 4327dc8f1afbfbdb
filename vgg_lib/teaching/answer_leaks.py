"""Exercise answers written out in a chapter: found, so that student copies can leave them out.

An answer *shows* in a text when it holds one of the answer's forms that a student would type
or read and that ``check`` would accept: the exact count (``138357544``, ``138,357,544``), a
rounding with at least three significant figures (``138.4M``, ``138 million``, ``1.38e+08``), a share as a
percentage at any precision the check accepts (``44.9%``, ``0.80 %``, ``0.8%``) or as a decimal
with two significant figures or more (``0.449``), a number to its tolerance (``7.81``). Not
looked for: forms whose value is a whole number below 100 (``7`` in "7×7", ``3`` in "block 3",
``100%``), and decimals with one significant figure (``0.2``, ``0.5``): no chapter's tables could
be written without them, and a tolerance can make such a round number "correct".

Two declarations in the exercise registry (vgg_lib/exercises/registry.py) refine this: an
exercise with ``read_off=True`` asks the student to read its answer off an earlier output, which
may then show it; ``same_number_elsewhere`` lists phrases in which the chapter uses the answer's
number for something else ("150 crops"), which do not count.
"""

import re
from dataclasses import dataclass

from ..exercises import checking, get_exercise
from ..exercises.registry import expected_value

_SCALES = [(1e3, ("k", " thousand")), (1e6, ("M", " M", " million")), (1e9, ("G", " G", "B", " billion")),
           (1e12, ("T", " T", " trillion"))]
_SEPARATORS = re.compile(r"(?<=\d)(?:\{,\}|\\,|[\u2009\u202f\u00a0_])(?=\d{3})")


def normalise(text):
    """One spelling for the ways a number is typeset: LaTeX ``{,}``, ``\\,`` and thin spaces as
    thousands separators become commas, ``\\%`` becomes %, the typographic minus a hyphen."""
    text = _SEPARATORS.sub(",", text)
    return text.replace("\\%", "%").replace("\u2212", "-").replace("\\ ", " ")


def _accepted(exercise, form):
    try:
        return checking.is_correct(exercise, form.strip())
    except checking.AnswerFormatError:
        return False


def _value(form):
    try:
        return checking.read_answer(form.strip()).value
    except checking.AnswerFormatError:
        return None


def too_common(form):
    """A whole number below 100, however written: "7", "7.0", and "100%" (which reads as 1)."""
    try:
        answer = checking.read_answer(form.strip())
    except checking.AnswerFormatError:
        return False
    value = answer.value / 100 if answer.percent else answer.value
    return float(value).is_integer() and abs(value) < 100


def significant_figures(form):
    """Significant figures as written: "0.80 %" has two, "138.4M" four, "1.38e+08" three."""
    digits = re.match(r"[-+]?[\d,]*\.?\d*", form.strip()).group(0)
    return len(digits.replace(",", "").replace(".", "").replace("-", "").replace("+", "").lstrip("0"))


def answer_forms(exercise, expected=None):
    """The forms of ``exercise``'s answer that a text must not hold (see the module's docstring)."""
    value = expected_value(exercise) if expected is None else expected
    plain, percents = set(), set()
    if value == round(value) and abs(value) >= 100:
        plain |= {str(int(round(value))), f"{int(round(value)):,}"}
    for precision in range(1, 7):
        plain |= {f"{value:.{precision - 1}f}", f"{value:,.{precision - 1}f}", f"{value:.{precision}g}"}
        if abs(value) >= 1e3:  # as Python's "e" and "g" formats print it
            plain.add(f"{value:.{precision - 1}e}")
        if exercise.kind != "integer":
            percent = [f"{100 * value:.{precision - 1}f}", f"{100 * value:.{precision}g}"]
            percents |= {f"{number}{sign}" for number in percent for sign in ("%", " %", " percent")}
        for scale, suffixes in _SCALES:
            scaled = f"{value / scale:.{precision - 1}f}"
            if abs(value) >= scale and significant_figures(scaled) >= 3:
                plain |= {scaled + suffix for suffix in suffixes}
    candidates = {form for form in plain if significant_figures(form) >= 2} | percents
    return sorted(form for form in candidates if not too_common(form) and _accepted(exercise, form))


def _pattern(form):
    return re.compile(r"(?<![\w.,])" + re.escape(form) + r"(?![\w]|[.,]\d)")


@dataclass
class Leak:
    exercise: str
    form: str
    context: str


def find(text, exercise_ids, forms=None):
    """[Leak] for every answer of ``exercise_ids`` (read-off ones excepted) that ``text`` shows.
    ``forms``: {id: answer_forms} already computed, to save time."""
    text = normalise(text)
    found = []
    for exercise_id in exercise_ids:
        exercise = get_exercise(exercise_id)
        if exercise.read_off:
            continue
        here = text
        for phrase in exercise.same_number_elsewhere:
            here = re.sub(r"\s+".join(map(re.escape, phrase.split())), " ", here)
        for form in forms[exercise_id] if forms and exercise_id in forms else answer_forms(exercise):
            match = _pattern(form).search(here)
            if match:
                found.append(Leak(exercise_id, form, here[max(0, match.start() - 40):match.end() + 20]))
    return found


def output_text(output):
    """What a stored output shows as text: a stream, an error, or a result's text forms."""
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return "\n".join([str(output.get("evalue", ""))] + [str(t) for t in output.get("traceback", [])])
    data = output.get("data", {})
    return "\n".join(str(data[key]) if not isinstance(data[key], list) else "".join(data[key])
                     for key in ("text/plain", "text/html", "text/markdown", "text/latex") if key in data)


def all_forms(exercise_ids):
    """{id: answer_forms} for ``exercise_ids``."""
    return {i: answer_forms(get_exercise(i)) for i in exercise_ids}
