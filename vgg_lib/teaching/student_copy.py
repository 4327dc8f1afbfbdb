"""Student copies: the chapters with every solution removed.

    python -m vgg_lib.teaching.student_copy notebooks/ -o student/
    python -m vgg_lib.teaching.student_copy notebooks/01_building_vgg.ipynb -o student/ --keep-outputs

Removed: everything from a ``{solution-start}`` directive to its ``{solution-end}`` (markdown
blocks and whole code cells), whole ``{solution}`` directives, and cells tagged ``solution``.
Outputs are cleared unless ``--keep-outputs``; then the solution cells' outputs go, and so does
every output that shows the answer to one of the chapter's exercises (vgg_lib/teaching/
answer_leaks.py), replaced by a line asking the student to run the cell once they have tried
the exercise: the student who reads before running keeps the figures and tables, and still
meets each exercise before its answer.
A copy is refused (exit 1) when a later cell reads a name that only a solution defines, since
the student's notebook would then stop with a NameError before the next exercise.
"""

import argparse
import copy
import sys
from pathlib import Path

import nbformat

from ..exercises import exercise_ids as exercise_ids_known
from . import answer_leaks, code_cells
from .directives import regions
from .submissions import check_ids

SOLUTION_TAG = "solution"
LEFT_OUT = "[Output left out of the student copy"


def _solution_pieces(nb, path):
    pieces, found = regions(nb, path)
    removed = set()
    for region in found:
        if region.kind == "solution":
            removed.update(range(region.start, region.stop))
    for i, piece in enumerate(pieces):
        if SOLUTION_TAG in nb.cells[piece.cell_index].metadata.get("tags", []):
            removed.add(i)
    return pieces, removed


def solution_cells(nb, path="notebook"):
    """Indices of the code cells that belong to a solution."""
    pieces, removed = _solution_pieces(nb, path)
    return sorted({pieces[i].cell_index for i in removed if pieces[i].kind == "code"})


def _left_out(exercise_ids):
    return nbformat.v4.new_output(
        "stream", name="stdout",
        text=f"{LEFT_OUT}: it shows the answer to {', '.join(exercise_ids)}. "
             f"Run this cell to see it, once you have tried the exercise.]\n")


def _without_answers(cell, exercise_ids, forms):
    """``cell``'s outputs, each one that shows an answer of ``exercise_ids`` replaced by a note."""
    outputs, shown = [], []
    for output in cell.outputs:
        leaks = answer_leaks.find(answer_leaks.output_text(output), exercise_ids, forms)
        if leaks:
            shown += [leak.exercise for leak in leaks if leak.exercise not in shown]
        else:
            outputs.append(output)
    return outputs + ([_left_out(shown)] if shown else [])


def outputs_left_out(student):
    """How many cells of a student copy had outputs left out because they showed an answer."""
    return sum(any(str(o.get("text", "")).startswith(LEFT_OUT) for o in c.get("outputs", [])) for c in student.cells)


def make_student_copy(nb, path="notebook", keep_outputs=False):
    """A copy of ``nb`` without solutions, and with kept outputs that show no exercise's answer
    (``nb`` is left as it is)."""
    pieces, removed = _solution_pieces(nb, path)
    kept_text = {}
    for i, piece in enumerate(pieces):
        if i not in removed:
            kept_text.setdefault(piece.cell_index, []).append(piece.text)
    student = copy.deepcopy(nb)
    exercise_ids = check_ids(nb, set(exercise_ids_known())) if keep_outputs else []
    forms = answer_leaks.all_forms(exercise_ids)
    cells = []
    for index, cell in enumerate(student.cells):
        if index not in kept_text:
            continue
        if cell.cell_type == "markdown":
            cell.source = "".join(kept_text[index]).strip("\n")
            if not cell.source.strip():
                continue
        elif cell.cell_type == "code" and not keep_outputs:
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "code":
            cell.outputs = _without_answers(cell, exercise_ids, forms)
        cells.append(cell)
    student.cells = cells
    return student


def solution_only_names(nb, path="notebook"):
    """[(cell index, name, defining solution cell)] for every name a non-solution code cell reads
    that only solution cells define before it (and no earlier non-solution cell does)."""
    solutions = set(solution_cells(nb, path))
    defined_by_solution, defined, problems = {}, set(), []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = code_cells.parse(cell.source, f"{path}, cell {index}")
        if index in solutions:
            for name in code_cells.defined_names(tree) - defined:
                defined_by_solution.setdefault(name, index)
            continue
        for name in sorted(code_cells.free_names(tree) & set(defined_by_solution) - defined):
            problems.append((index, name, defined_by_solution[name]))
        defined |= code_cells.defined_names(tree)
    return problems


def notebook_files(inputs):
    files = []
    for item in map(Path, inputs):
        files.extend(sorted(item.glob("*.ipynb")) if item.is_dir() else [item])
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vgg_lib.teaching.student_copy",
                                     description="Write copies of the chapters without their solutions.")
    parser.add_argument("inputs", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("-o", "--output", required=True, help="folder for the student copies")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep the stored outputs of the cells that remain (default: clear them)")
    args = parser.parse_args(argv)

    output = Path(args.output)
    files = notebook_files(args.inputs)
    if not files:
        parser.error(f"no notebooks found in {', '.join(args.inputs)}")
    failed = 0
    for path in files:
        nb = nbformat.read(path, as_version=4)
        problems = solution_only_names(nb, path)
        if problems:
            failed += 1
            for index, name, defined_in in problems:
                print(f"{path}: cell {index} reads {name!r}, which only the solution in cell {defined_in} "
                      f"defines; define it outside the solution so the student copy still runs.")
            continue
        student = make_student_copy(nb, path, keep_outputs=args.keep_outputs)
        output.mkdir(parents=True, exist_ok=True)
        nbformat.write(student, output / path.name)
        left_out = outputs_left_out(student)
        print(f"{output / path.name}: {len(nb.cells) - len(student.cells)} of {len(nb.cells)} cells removed"
              + (f", the outputs of {left_out} left out: they show an exercise's answer" if left_out else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
