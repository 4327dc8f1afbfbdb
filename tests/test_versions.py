"""pyproject.toml claims only versions that something tests: its lower bounds are the oldest of
CI's (requirements.txt, Python 3.11) and Colab today's (tests/colab_today.py), and the README's
table of tested versions says the same."""

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
    for name, colab in (("torch", colab_today.COLAB_TORCH), ("torchvision", colab_today.COLAB_TORCHVISION)):
        tested = min(Version(colab), Version(pins[name]))
        assert _lower_bound(str(dependencies[name].specifier)) == tested, name
        assert Version(pins[name]) in dependencies[name].specifier  # CI's pin satisfies it
        assert Version(colab + ".0") in dependencies[name].specifier  # and so does Colab's torch
    python = min(Version(CI_PYTHON), Version(colab_today.COLAB_PYTHON))
    assert _lower_bound(_project()["requires-python"]) == python


def test_the_readme_names_the_tested_versions():
    readme = (REPO / "README.md").read_text()
    pins = _pins()
    assert f"| `make test` (CI) | {CI_PYTHON} | {pins['torch']} | {pins['torchvision']} |" in readme
    assert (f"| `make colab-today` | {colab_today.COLAB_PYTHON} | {colab_today.COLAB_TORCH} | "
            f"{colab_today.COLAB_TORCHVISION} |") in readme
    assert colab_today.AS_OF in readme
    assert "colab-today:" in (REPO / "Makefile").read_text()
