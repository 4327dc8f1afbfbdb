"""pyproject.toml claims only versions that something tests: its lower bounds are the oldest of
CI's (requirements.txt, Python 3.11) and Colab today's (tests/colab_today.py's table, the one place
Colab's versions are written), and the README's table of tested versions says the same."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import colab_today

REPO = Path(__file__).resolve().parents[1]
CI_PYTHON = "3.11"  # README: "On a fresh machine with Python 3.11"


def _project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins():
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def _lower_bound(specifier):
    bounds = [Version(s.version) for s in SpecifierSet(specifier) if s.operator == ">="]
    assert len(bounds) == 1, f"{specifier}: expected one lower bound"
    return bounds[0]


def test_lower_bounds_are_the_oldest_tested_versions():
    dependencies = {Requirement(r).name: Requirement(r) for r in _project()["dependencies"]}
    pins = _pins()
    for name in ("torch", "torchvision"):
        colab = colab_today.COLAB[name]
        tested = min(Version(colab), Version(pins[name]))
        assert _lower_bound(str(dependencies[name].specifier)) == tested, name
        assert Version(pins[name]) in dependencies[name].specifier  # CI's pin satisfies it
        assert Version(colab) in dependencies[name].specifier  # and so does Colab's torch
    python = min(Version(CI_PYTHON), Version(colab_today.COLAB["python"]))
    assert _lower_bound(_project()["requires-python"]) == python


def test_the_widgets_extra_never_upgrades_colabs_ipywidgets():
    (requirement,) = [Requirement(r) for r in _project()["optional-dependencies"]["widgets"]]
    colab, ci = colab_today.COLAB["ipywidgets"], _pins()["ipywidgets"]
    assert Version(colab) in requirement.specifier and Version(ci) in requirement.specifier
    assert _lower_bound(str(requirement.specifier)) == min(Version(colab), Version(ci))


def test_the_readme_names_the_tested_versions():
    readme = (REPO / "README.md").read_text()
    pins = _pins()
    columns = colab_today.HEADLINE
    header = "| command | " + " | ".join("Python" if c == "python" else c for c in columns) + " | what runs |"
    ci = [CI_PYTHON, *(pins[c] for c in columns[1:])]
    colab = [colab_today.COLAB[c] for c in columns]
    assert header in readme
    assert "| `make test` (CI) | " + " | ".join(ci) + " |" in readme
    assert "| `make colab-today` | " + " | ".join(colab) + " |" in readme
    assert colab_today.SOURCE in readme
    assert "colab-today:" in (REPO / "Makefile").read_text()


def test_the_stand_in_installs_the_whole_table():
    pins = colab_today.pins()
    assert len(pins) == len(colab_today.COLAB) - 1  # every package of the table, Python aside
    for name in colab_today.HEADLINE[1:]:
        assert f"{name}=={colab_today.COLAB[name]}" in pins
