"""Student copies: no solution text survives anywhere, and the copy still runs to the end."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from vgg_lib.teaching import student_copy
from vgg_lib.teaching.directives import DirectiveError

REPO = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))

SETUP = """from vgg_lib.exercises import Exercise, check, register
register(Exercise(id="test/forty-two", expected=lambda: 6 * 7, kind="integer", hint="Multiply six by seven."))
base = 6"""


def _solved(source, secret_output):
    return new_code_cell(source, execution_count=9, outputs=[new_output("stream", text=secret_output)])


def synthetic_chapter():
    """Every way a solution can be written, each marked with a SECRET that must disappear."""
    return new_notebook(cells=[
        new_markdown_cell("# A synthetic chapter"),
        new_code_cell(SETUP, execution_count=1, outputs=[]),
        new_markdown_cell("## Exercises\n\n```{exercise-start}\n:label: ex-gated\n```\n"
                          "**(Warm-up, 5 min)** What is six times seven?\n```{exercise-end}\n```"),
        new_code_cell('answer = None  # replace None with your answer\ncheck("test/forty-two", answer)',
                      execution_count=2, outputs=[new_output("stream", text="✏️ no answer yet\n")]),
        new_markdown_cell("```{solution-start} ex-gated\n:class: dropdown\n```\nSECRET-MARKDOWN-1: multiply."),
        _solved('secret_value = base * 7  # SECRET-CODE-1\ncheck("test/forty-two", secret_value)', "SECRET-OUTPUT-1\n"),
        new_markdown_cell("SECRET-MARKDOWN-2 between the cells\n```{solution-end}\n```\n\n"
                          "Text after the solution, SHOWN-1.\n\n"
                          "````{solution} ex-gated\n:class: dropdown\nSECRET-MARKDOWN-3\n```python\nx = 1\n```\n"
                          "SECRET-MARKDOWN-4\n````\n\nSHOWN-2 closes the cell."),
        new_code_cell("# SECRET-CODE-2 in a tagged cell\nprint('SECRET-OUTPUT-2')", metadata={"tags": ["solution"]},
                      execution_count=10, outputs=[new_output("stream", text="SECRET-OUTPUT-2\n")]),
        new_markdown_cell("How a solution is written (an example, not a solution):\n\n"
                          "`````markdown\n```{solution-start} label\n```\nSHOWN-3\n```{solution-end}\n```\n`````"),
        new_code_cell("shown = base + 1\nprint('SHOWN-OUTPUT', shown)", execution_count=3,
                      outputs=[new_output("stream", text="SHOWN-OUTPUT 7\n")]),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _everything(nb):
    return json.dumps(nb, ensure_ascii=False)


@pytest.mark.parametrize("keep_outputs", [False, True])
def test_no_solution_text_survives_anywhere(keep_outputs):
    copy = student_copy.make_student_copy(synthetic_chapter(), keep_outputs=keep_outputs)
    text = _everything(copy)
    assert "SECRET" not in text
    directives = [c.source for c in copy.cells if c.cell_type == "markdown" and "`````markdown" not in c.source]
    assert not re.search(r"\{solution(-start|-end)?\}", "\n".join(directives))
    for shown in ["SHOWN-1", "SHOWN-2", "SHOWN-3", "What is six times seven?", "answer = None", "shown = base + 1"]:
        assert shown in text
    assert ("SHOWN-OUTPUT 7" in text) == keep_outputs


def test_the_original_is_left_as_it_was():
    nb = synthetic_chapter()
    before = _everything(nb)
    student_copy.make_student_copy(nb)
    assert _everything(nb) == before


def test_the_student_copy_runs_to_the_end_and_reports_no_answer_yet(tmp_path):
    copy = student_copy.make_student_copy(synthetic_chapter())
    NotebookClient(copy, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in c.outputs) for c in copy.cells if c.cell_type == "code"]
    assert any("✏️ test/forty-two: no answer yet" in out for out in outputs)
    assert outputs[-1] == "SHOWN-OUTPUT 7\n"


def test_a_cell_that_needs_a_solution_variable_is_refused(tmp_path, capsys):
    nb = synthetic_chapter()
    nb.cells.append(new_code_cell("print(secret_value + 1)"))
    assert student_copy.solution_only_names(nb) == [(10, "secret_value", 5)]
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    assert student_copy.main([str(tmp_path / "chapter.ipynb"), "-o", str(tmp_path / "student")]) == 1
    assert "reads 'secret_value', which only the solution in cell 5 defines" in capsys.readouterr().out
    assert not (tmp_path / "student" / "chapter.ipynb").exists()


def test_redefining_the_name_outside_the_solution_is_fine():
    nb = synthetic_chapter()
    nb.cells.append(new_code_cell("secret_value = 1\nprint(secret_value)"))
    assert student_copy.solution_only_names(nb) == []


@pytest.mark.parametrize("cells, message", [
    (["```{solution-start} a\n```\nnever closed"], "has no {solution-end}"),
    (["```{solution-end}\n```"], "without a matching {solution-start}"),
    (["```{exercise-start}\n:label: a\n```", "```{solution-start} a\n```"], "still open"),
])
def test_unbalanced_directives_are_refused_with_the_cell(cells, message):
    nb = new_notebook(cells=[new_markdown_cell(c) for c in cells])
    with pytest.raises(DirectiveError, match=re.escape(message)):
        student_copy.make_student_copy(nb, path="x.ipynb")


def _solution_code_cells(nb):
    """Code cells after a "{solution-start}" and before the next "{solution-end}", found by plain
    text search (independent of the directive parser under test)."""
    inside, found = False, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for marker in re.findall(r"\{solution-(start|end)\}", cell.source):
                inside = marker == "start"
        elif inside or "solution" in cell.metadata.get("tags", []):
            found.append(cell)
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapters_lose_every_solution_cell(path):
    nb = nbformat.read(path, as_version=4)
    solutions = _solution_code_cells(nb)
    others = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and c not in solutions)
    copy = _everything(student_copy.make_student_copy(nb, str(path), keep_outputs=True))
    for cell in solutions:
        for line in (line.strip() for line in cell.source.splitlines()):
            if len(line) >= 12 and line not in others:
                assert json.dumps(line, ensure_ascii=False)[1:-1] not in copy, f"{path.name}: {line!r} survived"
        for output in cell.outputs:
            text = output.get("text", "") or output.get("data", {}).get("text/plain", "")
            for line in (line.strip() for line in text.splitlines()):
                if len(line) >= 12 and line not in others and line not in _outputs_outside(nb, solutions):
                    assert json.dumps(line, ensure_ascii=False)[1:-1] not in copy, f"{path.name}: output {line!r}"


def _outputs_outside(nb, solutions):
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                     for c in nb.cells if c.cell_type == "code" and c not in solutions for o in c.outputs)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_chapter_needs_a_solution_to_run(path):
    assert student_copy.solution_only_names(nbformat.read(path, as_version=4), path.name) == []


def test_chapter_one_student_copy_runs_top_to_bottom(tmp_path):
    assert student_copy.main([str(REPO / "notebooks" / "01_building_vgg.ipynb"), "-o", str(tmp_path)]) == 0
    copy = nbformat.read(tmp_path / "01_building_vgg.ipynb", as_version=4)
    NotebookClient(copy, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in copy.cells if c.cell_type == "code" for o in c.outputs)
    assert "no answer yet" in printed
    assert not re.search(r"✅ \S+: correct", printed)  # no solution ran
