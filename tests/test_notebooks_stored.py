"""The site renders the outputs stored in the notebooks, so each must read as one clean run."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def code_cells(notebook):
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    return json.loads(request.param.read_text())


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 1


def test_executed_top_to_bottom_once(notebook):
    counts = [c["execution_count"] for c in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1)), "re-run it with `make notebooks` before committing"


def test_no_error_outputs(notebook):
    errors = [o for c in code_cells(notebook) for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors


def test_first_code_cell_is_the_colab_set_up(notebook):
    assert "colab-setup" in code_cells(notebook)[0].get("metadata", {}).get("tags", [])


def test_starts_with_a_title(notebook):
    assert "".join(notebook["cells"][0]["source"]).startswith("# ")


def test_every_exercise_has_a_solution(notebook):
    text = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    exercises = re.findall(r"```\{exercise-start\}\s*\n:label:\s*(\S+)", text)
    solutions = re.findall(r"```\{solution-start\}\s+(\S+)", text)
    assert exercises, "each chapter has exercises"
    assert sorted(exercises) == sorted(solutions)
    assert text.count("{exercise-start}") == text.count("{exercise-end}")
    assert text.count("{solution-start}") == text.count("{solution-end}")
