"""Plain-text tables, one way for the whole book (deterministic, so nbval can compare them)."""


def text_table(header, rows, align=None, title=None):
    """Columns padded to their widest cell and separated by two spaces, a rule under the header.

    ``align``: one character per column, "l" (or "<") for left and "r" (or ">") for right; by
    default the first column is left-aligned and the others right-aligned (numbers). ``title``:
    a line above the table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if any(len(row) != len(header) for row in cells):
        raise ValueError(f"Every row needs {len(header)} cells, one per column of {list(header)}.")
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    align = [{"<": "l", ">": "r"}.get(a, a) for a in (align or "l" + "r" * (len(header) - 1))]

    def line(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(row, widths, align)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(cells[0]), rule] + [line(row) for row in cells[1:]]
    return "\n".join(([title] if title else []) + lines)
