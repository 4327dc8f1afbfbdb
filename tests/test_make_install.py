"""`make` installs into the project's own virtual environment and nowhere else (README: the two
commands are the whole set-up). Checked with make's dry-run and question modes on a throw-away
VENV, so nothing is installed: a Python older than 3.11 is refused in one line before any venv
exists; the venv is made once and reused; the requirements are reinstalled only when
requirements.txt or pyproject.toml are newer than the venv's stamp; and the book, the tests, the
notebooks and the PDF all run with the venv's interpreter."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def make(*args, **env):
    if shutil.which("make") is None:
        pytest.fail("make is missing: apt-get install -y make", pytrace=False)
    return subprocess.run(["make", "-C", str(ROOT), "--no-print-directory", *args], capture_output=True, text=True,
                          env={**_outside_make(), **env}, timeout=60)


def _outside_make():
    """This environment without what an enclosing `make test` passes down to a sub-make."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def fake_python(folder, version):
    """A 'python' that answers every question with ``version``, as an old interpreter would."""
    path = folder / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def existing_venv(folder, stamp_age_s=None):
    """A venv folder whose python is this interpreter, installed (stamped) ``stamp_age_s`` ago."""
    venv = folder / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    if stamp_age_s is not None:
        stamp = venv / ".installed"
        stamp.touch()
        when = time.time() - stamp_age_s
        os.utime(stamp, (when, when))
    return venv


@pytest.mark.parametrize("target", ["install", "book", "test"])
def test_an_old_python_gets_one_clear_line(tmp_path, target):
    old = fake_python(tmp_path, "3.9")
    result = make(target, f"PYTHON={old}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "needs Python 3.11 or newer" in lines[0] and f"{old} is 3.9" in lines[0]
    assert "PYTHON=python3.12" in lines[0]  # what to do
    assert not (tmp_path / "venv").exists()


def test_no_python_at_all_gets_the_same_line(tmp_path):
    result = make("install", f"PYTHON={tmp_path / 'nothing'}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0 and "is not a working Python" in result.stderr
    assert len((result.stdout + result.stderr).strip().splitlines()) == 1


def test_a_fresh_machine_gets_a_venv_and_everything_installed_into_it(tmp_path):
    venv = tmp_path / "venv"
    plan = make("-n", "install", f"PYTHON={sys.executable}", f"VENV={venv}").stdout
    assert f"{sys.executable} -m venv --system-site-packages --without-pip {venv}" in plan
    assert f"{venv}/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt" in plan
    assert (f"{venv}/bin/python -m pip install -q --disable-pip-version-check --no-deps "
            f"$({venv}/bin/python -c 'import setuptools' 2>/dev/null && echo --no-build-isolation) -e .") in plan
    assert " pip install" not in plan.replace(f"{venv}/bin/python -m pip install", "")  # no other pip


def test_an_installed_venv_is_reused_as_it_is(tmp_path):
    venv = existing_venv(tmp_path, stamp_age_s=-60)  # stamped after every file it depends on
    assert make("-q", "install", f"VENV={venv}").returncode == 0  # up to date: nothing to do
    plan = make("-n", "install", f"VENV={venv}").stdout
    assert "-m venv" not in plan and "pip install" not in plan


@pytest.mark.parametrize("changed", ["requirements.txt", "pyproject.toml"])
def test_a_changed_requirement_reinstalls_into_the_same_venv(tmp_path, changed):
    newest = max((ROOT / name).stat().st_mtime for name in ("requirements.txt", "pyproject.toml"))
    venv = existing_venv(tmp_path, stamp_age_s=time.time() - newest + 60)  # older than the newest file
    assert make("-q", "install", f"VENV={venv}").returncode == 1  # out of date
    plan = make("-n", "install", f"VENV={venv}").stdout
    assert "-m venv" not in plan and f"{venv}/bin/python -m pip install" in plan


def test_every_command_runs_inside_the_venv(tmp_path):
    venv = existing_venv(tmp_path, stamp_age_s=-60)
    python = f"{venv}/bin/python"
    for target, expected in (("book", "from jupyter_book.cli.main import main"), ("pdf", "-m vgg_lib.teaching.book_pdf"),
                             ("test", "-m pytest"), ("notebooks", "from nbclient.cli import main"),
                             ("colab-today", "tests/colab_today.py")):
        plan = make("-n", target, f"VENV={venv}").stdout
        commands = [line.strip() for line in plan.splitlines() if expected in line]
        assert commands, f"make {target} runs no {expected!r}"
        assert all(python in command for command in commands), (target, commands)
    # and what those start (kernels, scripts) finds the venv first on its PATH
    env = subprocess.run(["make", "-C", str(ROOT), "--no-print-directory", "-f", "Makefile", "-f", "-", "env-check",
                          f"VENV={venv}"], input="env-check:\n\t@echo $$PATH; echo $$VIRTUAL_ENV\n",
                         capture_output=True, text=True, env=_outside_make(), timeout=60).stdout.splitlines()
    assert env[0].split(":")[0] == f"{venv}/bin" and env[1] == str(venv)
