"""The package's layout follows the book's parts, and imports only go one way between them
(book/contributing.md states the rules this test enforces):

    architecture  <-  measure  <-  training          exercises  <-  teaching
                            ^----  inspection

* ``architecture`` (Table 1, the model) imports no other part;
* ``measure`` (chapters 2-4) imports ``architecture``;
* ``training`` (chapters 5-6) imports ``architecture`` and ``measure`` (FLOP counts);
* ``inspection`` (chapter 7) imports ``architecture`` and ``measure``;
* ``exercises`` may import all four; ``teaching`` may import everything; nothing imports
  ``teaching``;
* the top-level helpers (``device``, ``tables``, ``atomic_write``) import no part, and every
  part may import them; ``vgg_lib/__init__.py`` (the students' face) imports no ``teaching``;
* the top-level commands (``train``: ``python -m vgg_lib.train``) may import ``architecture``,
  ``measure``, ``training``, ``inspection`` and the helpers; nothing imports a command.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vgg_lib"
PARTS = ("architecture", "measure", "training", "inspection", "transfer", "exercises", "teaching")
HELPERS = ("device", "tables", "atomic_write")
COMMANDS = ("train",)  # python -m vgg_lib.<command>
ALLOWED = {
    "architecture": set(),
    "measure": {"architecture"},
    "training": {"architecture", "measure"},
    "inspection": {"architecture", "measure"},
    "transfer": {"architecture", "measure", "training", "inspection"},
    "exercises": {"architecture", "measure", "training", "inspection", "transfer"},
    "teaching": {"architecture", "measure", "training", "inspection", "transfer", "exercises"},
    "helper": set(),
    "face": {"architecture", "measure", "training", "inspection", "transfer", "exercises"},
    "command": {"architecture", "measure", "training", "inspection"},
}


def part_of(path):
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) > 1:
        return relative.parts[0]
    if relative.stem in COMMANDS:
        return "command"
    return "face" if relative.name == "__init__.py" else "helper"


def imported_vgg_lib_modules(path):
    """Dotted names below vgg_lib that ``path`` imports, at any depth of the file (lazy imports
    inside functions count too)."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    package = list(relative.parts[:-1]) if relative.name != "__init__" else list(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name[len("vgg_lib."):] for a in node.names if a.name.startswith("vgg_lib.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("vgg_lib"):
                    base = node.module[len("vgg_lib."):] if "." in node.module else ""
                else:
                    continue
            else:
                base_parts = package[:len(package) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            if base:
                found.append(base)
            else:  # from vgg_lib import x / from .. import x: x is a part or a helper
                found += [a.name for a in node.names]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_tree_has_the_parts_and_helpers():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} == set(PARTS)
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    known = set(HELPERS) | set(COMMANDS)
    assert top == known, f"top-level modules other than the helpers and commands: {sorted(top - known)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_direction_of_the_parts(path):
    part = part_of(path)
    for module in imported_vgg_lib_modules(path):
        target = module.split(".")[0]
        assert target not in COMMANDS, (
            f"{path.relative_to(PACKAGE)} imports the command vgg_lib.{module}; nothing imports a "
            "command (see book/contributing.md)")
        if target in HELPERS or target == part:
            continue
        assert target in PARTS, f"{path.relative_to(PACKAGE)} imports unknown vgg_lib.{module}"
        assert target in ALLOWED[part], (
            f"{path.relative_to(PACKAGE)} ({part}) imports vgg_lib.{module}: {part} may import "
            f"{', '.join(sorted(ALLOWED[part])) or 'no other part'} (see book/contributing.md)")


def test_the_import_reader_sees_relative_and_lazy_imports(tmp_path, monkeypatch):
    module = PACKAGE / "measure" / "counting.py"
    found = imported_vgg_lib_modules(module)
    assert "architecture.model" in found and "tables" in found
    lazy = PACKAGE / "training" / "profiles.py"
    assert "measure.counting" in imported_vgg_lib_modules(lazy)  # imported inside a function
