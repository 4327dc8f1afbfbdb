"""Find MyST directives (exercises and solutions) in a notebook's markdown cells.

A chapter marks exercises and solutions with sphinx-exercise's directives, either whole
(```` ```{exercise} ````) or gated, spread over several cells::

    ```{exercise-start} Optional title
    :label: rf-stack
    ```
    ... markdown and code cells ...
    ```{exercise-end}
    ```

The notebook is read as one stream of *pieces*: every code cell is a piece, and every markdown
cell is cut into top-level blocks (plain text, a fenced code block, or a directive). Fences are
tracked, so an example of a directive inside a code block is not mistaken for a real one.
"""

import re
from dataclasses import dataclass, field
from typing import List, Optional

_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*?)\s*$")
_DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.-]+)\}\s*(?P<argument>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")


@dataclass
class Piece:
    """A code cell, or one top-level block of a markdown cell.

    kind: "code" (a code cell), "text", "fence" (a fenced code block in markdown) or "directive".
    """

    kind: str
    text: str
    cell_index: int
    name: Optional[str] = None  # directive name, e.g. "exercise-start"
    argument: str = ""  # what follows the directive name on its first line (a title or a label)
    options: dict = field(default_factory=dict)  # ":label: x" lines at the top of a directive
    tags: tuple = ()  # the cell's tags (code cells)


def split_markdown(source, cell_index=0):
    """Cut markdown ``source`` into top-level text, fence and directive pieces (text kept verbatim)."""
    lines = source.splitlines(keepends=True)
    pieces, text, i = [], [], 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i].rstrip("\n"))
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            text.append(lines[i])
            i += 1
            continue
        if text:
            pieces.append(Piece("text", "".join(text), cell_index))
            text = []
        fence = match["fence"]
        end = i + 1
        closing = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        while end < len(lines) and not closing.match(lines[end].rstrip("\n")):
            end += 1
        block = lines[i:end + 1]  # an unclosed fence runs to the end of the cell, as in CommonMark
        directive = _DIRECTIVE_INFO.match(match["info"].strip())
        if directive:
            options = {}
            for line in block[1:]:
                option = _OPTION.match(line.strip())
                if not option:
                    break
                options[option["key"]] = option["value"].strip()
            pieces.append(Piece("directive", "".join(block), cell_index, name=directive["name"],
                                argument=directive["argument"].strip(), options=options))
        else:
            pieces.append(Piece("fence", "".join(block), cell_index))
        i = end + 1
    if text:
        pieces.append(Piece("text", "".join(text), cell_index))
    return pieces


def notebook_pieces(nb):
    """Every code cell and every block of every markdown cell, in reading order."""
    pieces = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            pieces.extend(split_markdown(cell.source, index))
        else:
            tags = tuple(cell.get("metadata", {}).get("tags", ()))
            pieces.append(Piece(cell.cell_type, cell.source, index, tags=tags))
    return pieces


@dataclass
class Region:
    """The pieces of one exercise or one solution, from its opening directive to its closing one."""

    kind: str  # "exercise" or "solution"
    label: str  # an exercise's :label:, or the exercise label a solution answers
    title: str
    start: int  # index of the first piece (in notebook_pieces order)
    stop: int  # index one past the last piece
    pieces: List[Piece]

    @property
    def text(self):
        return "".join(piece.text for piece in self.pieces)


class DirectiveError(ValueError):
    pass


def regions(nb, path="notebook"):
    """Exercise and solution regions of ``nb``: whole directives and start/end pairs.

    Raises DirectiveError for a start without an end (or the reverse), naming the cell, because
    a student copy must never guess where a solution stops.
    """
    pieces = notebook_pieces(nb)
    found, open_region = [], None
    for i, piece in enumerate(pieces):
        if piece.kind != "directive" or piece.name is None:
            continue
        kind, _, part = piece.name.partition("-")
        if kind not in ("exercise", "solution") or part not in ("", "start", "end"):
            continue
        where = f"{path}, cell {piece.cell_index}"
        if part == "end":
            if open_region is None or open_region[0] != kind:
                raise DirectiveError(f"{where}: {{{piece.name}}} without a matching {{{kind}-start}} before it.")
            _, first, label, title = open_region
            found.append(Region(kind, label, title, first, i + 1, pieces[first:i + 1]))
            open_region = None
            continue
        if open_region is not None:
            raise DirectiveError(f"{where}: {{{piece.name}}} opens while the {{{open_region[0]}-start}} "
                                 f"of cell {pieces[open_region[1]].cell_index} is still open; "
                                 f"close it with {{{open_region[0]}-end}} first.")
        if kind == "exercise":
            label, title = piece.options.get("label", ""), piece.argument
        else:  # a solution's argument is the label of its exercise
            label, title = piece.argument, piece.options.get("label", "")
        if part == "start":
            open_region = (kind, i, label, title)
        else:
            found.append(Region(kind, label, title, i, i + 1, [piece]))
    if open_region is not None:
        raise DirectiveError(f"{path}, cell {pieces[open_region[1]].cell_index}: {{{open_region[0]}-start}} "
                             f"has no {{{open_region[0]}-end}} after it.")
    return pieces, found
