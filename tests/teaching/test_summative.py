"""``grade --summative``: the graded notebook's environment holds no expected value at all
(issue #27, section 4), where the formative default lets ``get_exercise(id).expected()`` answer.
Run in the bwrap and user sandboxes this machine offers (skipped with the reason otherwise);
without a sandbox it is refused, since the notebook could read the grader's own vgg_lib."""

import csv
import inspect
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import vgg_lib
from vgg_lib.exercises import building_vgg
from vgg_lib.teaching import grade
from vgg_lib.teaching.notebooks import find_root

CHAPTER = find_root(Path(__file__).parent) / "notebooks" / "01_building_vgg.ipynb"
EXERCISE = "building_vgg/vgg16-parameters"
REAL_CATALOGUE = inspect.getsourcefile(building_vgg)


def _looker(folder):
    """A chapter-1 submission that asks the registry for the answer, and reads the catalogue."""
    nb = new_notebook(cells=[
        new_code_cell("import inspect, vgg_lib\nfrom vgg_lib.exercises import building_vgg, get_exercise"),
        new_code_cell("source = inspect.getsource(building_vgg)\nprint('withheld' in source, 'count_parameters' in source)"),
        new_code_cell(f"try:\n    print('real catalogue:', len(open({REAL_CATALOGUE!r}).read()))\n"
                      f"except OSError as error:\n    print('real catalogue: blocked', type(error).__name__)"),
        new_code_cell(f"vgg_lib.check({EXERCISE!r}, get_exercise({EXERCISE!r}).expected())"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    (folder / "student").mkdir(parents=True)
    nbformat.write(nb, folder / "student" / CHAPTER.name)
    return folder


def _grade(folder, out, mode, *extra):
    code = grade.main([str(folder), "--report", str(out / "report.md"), "--csv", str(out / "s.csv"), "--executed",
                       str(out / "executed"), "--exercises-from", str(CHAPTER), "--sandbox", mode, *extra])
    if code:
        return code, None, ""
    (row,) = [r for r in csv.DictReader(open(out / "s.csv", encoding="utf-8")) if r["exercise"] == EXERCISE]
    executed = nbformat.read(out / "executed" / "student" / CHAPTER.name, as_version=4)
    return code, row, "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("mode", ["bwrap", "user"])
def test_summative_grading_leaves_no_expected_value_within_reach(mode, tmp_path, sandbox_or_skip):
    sandbox_or_skip(mode)
    folder = _looker(tmp_path / "submissions")
    _, formative, _ = _grade(folder, tmp_path / "formative", mode)
    assert formative["status"] == "correct"  # formative: the registry answers (book/instructors.md says so)
    code, summative, printed = _grade(folder, tmp_path / "summative", mode, "--summative")
    assert code == 0 and summative["status"] == "not run"
    assert "error in cell 3: LookupError: The expected values are withheld" in summative["run"]
    assert "True False" in printed  # the catalogue it sees registers ids and hints, and computes nothing
    assert "real catalogue: blocked" in printed
    assert "(summative)" in (tmp_path / "summative" / "report.md").read_text(encoding="utf-8")


def test_summative_grading_without_a_sandbox_is_refused(tmp_path, capsys):
    folder = _looker(tmp_path / "submissions")
    code, _, _ = _grade(folder, tmp_path / "out", "none", "--summative")
    assert code == 2
    assert "--summative needs a sandbox" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.md").exists()
    assert Path(vgg_lib.__file__).exists()
