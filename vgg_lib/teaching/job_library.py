"""The vgg_lib a graded notebook imports: a copy, made once per grading run.

Jobs never see the grader's own vgg_lib folder (it may sit in the book's repository, beside the
solutions); they import a read-only copy of the package. For ``grade --summative`` the copy's
exercise catalogue (``vgg_lib/exercises/<chapter>.py``) is replaced by one that registers the
same ids, kinds, tolerances and hints with ``expected=withheld``: the notebook's environment then
holds no expected value at all, and ``get_exercise(id).expected()`` raises. ``check`` records
answers either way while grading (vgg_lib/exercises/checking.py); the grader decides.
"""

import compileall
import os
import shutil
from pathlib import Path

import vgg_lib

from .. import exercises
from ..exercises import registry

_STUB_HEADER = '''"""Withheld for summative grading (vgg_lib/teaching/job_library.py): ids, kinds and hints only."""

from .registry import Exercise, register, withheld

register(
'''


def catalogue_stub(module):
    """Source of a catalogue module registering ``module``'s exercises without their answers."""
    lines = [_STUB_HEADER]
    for exercise_id in exercises.exercise_ids():
        if exercise_id.startswith(f"{module}/"):
            e = registry.get_exercise(exercise_id)
            lines.append(f"    Exercise(id={e.id!r}, expected=withheld, hint={e.hint!r}, kind={e.kind!r}, "
                         f"rel_tol={e.rel_tol!r}, abs_tol={e.abs_tol!r}, read_off={e.read_off!r}, "
                         f"same_number_elsewhere={e.same_number_elsewhere!r}),\n")
    return "".join(lines) + ")\n"


def make_library(folder, summative=False):
    """Copy vgg_lib into ``folder``/vgg_lib (summative: without expected values), compiled, and
    readable by anyone; returns ``folder``."""
    folder = Path(folder)
    target = folder / "vgg_lib"
    shutil.copytree(Path(vgg_lib.__file__).resolve().parent, target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if summative:
        for module in exercises.CHAPTER_MODULES:
            (target / "exercises" / f"{module}.py").write_text(catalogue_stub(module), encoding="utf-8")
    compileall.compile_dir(target, quiet=2, workers=1)
    for top, dirs, files in os.walk(folder):
        os.chmod(top, 0o755)
        for name in files:
            os.chmod(os.path.join(top, name), 0o644)
    return folder
