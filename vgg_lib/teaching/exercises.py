"""The list of exercises, read from the chapters themselves.

    python -m vgg_lib.teaching.exercises              # one line per exercise
    python -m vgg_lib.teaching.exercises --markdown   # the tables of book/instructors.md

Level and time come from the bold lead-in that opens the exercise's text, which students see
too; the title is the rest of the lead-in (or the directive's own title)::

    **(Warm-up, 5 min)** How many ...           **Core · 15–20 min: the first layer.** Suppose ...

Levels: Warm-up, Core, Stretch, Open-ended (Beginner, Intermediate and Advanced are understood as
the first three). Without a time, the level's usual time is listed and marked "(typical)".
Self-checks are the ``check("<id>", ...)`` calls inside the exercise, starter cells included.
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import nbformat

from .directives import regions
from .notebooks import chapter_command

LEVELS = {"warm-up": "Warm-up", "core": "Core", "stretch": "Stretch", "open-ended": "Open-ended"}
_SYNONYMS = {"warmup": "warm-up", "beginner": "warm-up", "intermediate": "core", "advanced": "stretch",
             "open ended": "open-ended", "project": "open-ended"}
TYPICAL_MINUTES = {"warm-up": (5, 10), "core": (15, 20), "stretch": (30, 45), "open-ended": (45, 90)}
_LEAD_IN = re.compile(r"^\s*\*\*(?P<lead>.+?)\*\*[.:]?\s*(?P<rest>.*)$", re.DOTALL)
_PLAIN_LEAD_IN = re.compile(r"^\(?(?P<lead>(?:warm-?up|core|stretch|open[- ]ended|beginner|intermediate|advanced)"
                            r"(?:\s*[,·]\s*[^).:]*)?)(?:\)[.:]?|[.:])\s+(?P<rest>.*)$", re.DOTALL | re.IGNORECASE)
_LEVEL = re.compile(r"\b(warm-?up|core|stretch|open[- ]ended|beginner|intermediate|advanced|project)\b", re.IGNORECASE)
_MINUTES = re.compile(r"~?\s*(?:about\s+)?(?P<low>\d+)(?:\s*(?:-|–|to)\s*(?P<high>\d+))?\s*min(?:utes)?\b",
                      re.IGNORECASE)
_CHECK_CALL = re.compile(r"\bcheck\(\s*(['\"])(?P<id>[^'\"]+)\1")


@dataclass
class ExerciseInfo:
    notebook: Path
    chapter: str  # the notebook's first heading
    label: str
    title: str
    level: Optional[str] = None  # a key of LEVELS
    minutes: Optional[Tuple[int, int]] = None  # as written in the exercise
    checks: List[str] = field(default_factory=list)
    has_solution: bool = False

    @property
    def level_name(self):
        return LEVELS.get(self.level, "not set")

    @property
    def time(self):
        low, high = self.minutes or TYPICAL_MINUTES.get(self.level, (None, None))
        if low is None:
            return "not set"
        text = f"{low} min" if low == high else f"{low}–{high} min"
        return text if self.minutes else f"{text} (typical)"


def chapter_title(nb, fallback):
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _first_sentence(text, limit=70):
    sentence = re.split(r"(?<=[.?!:])\s", " ".join(text.split()), maxsplit=1)[0].rstrip(":")
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0]
        for delimiter in "$`":  # never cut inside math or code
            if sentence.count(delimiter) % 2:
                sentence = sentence[:sentence.rindex(delimiter)].rstrip()
        sentence += " …"
    return sentence


def describe(text):
    """(level, minutes, title) from an exercise's prose: see the module's docstring."""
    prose = "\n".join(line for line in text.splitlines() if line.strip()).strip()
    lead_in = _LEAD_IN.match(prose) or _PLAIN_LEAD_IN.match(prose)
    if not lead_in:
        return None, None, _first_sentence(prose)
    lead, level, minutes = lead_in["lead"], None, None
    found = _LEVEL.search(lead)
    if found:
        word = found[1].lower()
        level = _SYNONYMS.get(word, word)
        lead = lead[:found.start()] + lead[found.end():]
    found = _MINUTES.search(lead)
    if found:
        minutes = (int(found["low"]), int(found["high"] or found["low"]))
        lead = lead[:found.start()] + lead[found.end():]
    title = re.sub(r"^[\s(),·:;.–-]+|[\s(),·:;.–-]+$", "", re.sub(r"\(\s*[,·]?\s*\)", "", lead))
    title = title or _first_sentence(lead_in["rest"])
    return level, minutes, title[:1].upper() + title[1:]


def read_exercises(path):
    nb = nbformat.read(path, as_version=4)
    chapter = chapter_title(nb, Path(path).stem)
    pieces, found = regions(nb, str(path))
    solved = {region.label for region in found if region.kind == "solution"}
    exercises = []
    for region in (r for r in found if r.kind == "exercise"):
        prose = "".join(p.text for p in region.pieces if p.kind == "text")
        level, minutes, title = describe(prose)
        starters = []  # code cells between the exercise and the next directive (its solution, usually)
        for piece in pieces[region.stop:]:
            if piece.kind == "directive":
                break
            if piece.kind == "code":
                starters.append(piece.text)
        text = region.text + "".join(starters)
        exercises.append(ExerciseInfo(
            Path(path), chapter, region.label, region.title or title, level, minutes,
            checks=list(dict.fromkeys(m["id"] for m in _CHECK_CALL.finditer(text))),
            has_solution=region.label in solved))
    return exercises


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(notebooks, root):
    lines = []
    for path in notebooks:
        exercises = read_exercises(path)
        doc = "/" + Path(path).resolve().relative_to(Path(root).resolve()).with_suffix("").as_posix()
        lines += [f"**{{doc}}`{doc}`**", ""]
        if not exercises:
            lines += ["No exercises yet.", ""]
            continue
        lines += ["| | Exercise | Level | Time | Self-check | Solution |", "| --- | --- | --- | --- | --- | --- |"]
        for e in exercises:
            number = f"{{numref}}`{e.label}`" if e.label else ""
            checks = ", ".join(f"`{c}`" for c in e.checks) or "open-ended"
            lines.append(f"| {number} | {_cell(e.title)} | {e.level_name} | {e.time} | {checks} | "
                         f"{'yes' if e.has_solution else 'no'} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    def listing(path):
        return [f"{path.name}  {e.label:<28} {e.level_name:<10} {e.time:<20} "
                f"{', '.join(e.checks) or 'open-ended'}" for e in read_exercises(path)]

    return chapter_command("vgg_lib.teaching.exercises", __doc__,
                           "print the tables for book/instructors.md", markdown, listing, argv)


if __name__ == "__main__":
    sys.exit(main())
