"""Shared test fixtures."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vgg_lib.teaching import book_pdf

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def environment_is_left_as_found(request):
    """Fail a test that changes the book's environment variables (VGG_*) for the tests after it.

    nbval's kernels inherit pytest's environment: a VGG_PROFILE leaked by a unit test once made
    every training chapter run the GPU profile on CI's CPU."""
    before = {k: v for k, v in os.environ.items() if k.startswith("VGG_")}
    yield
    after = {k: v for k, v in os.environ.items() if k.startswith("VGG_")}
    if after != before:
        os.environ.update(before)
        for key in set(after) - set(before):
            del os.environ[key]
        pytest.fail(f"{request.node.nodeid} changed the environment: {before} -> {after}")


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_SUMMARY = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def summary(request):
    """Lines a test adds for pytest's closing summary (the book PDF's page count)."""
    return request.config.stash.setdefault(_SUMMARY, [])


def pytest_terminal_summary(terminalreporter, config):
    for line in config.stash.get(_SUMMARY, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def book_build(tmp_path_factory):
    """The site, built once per test session from a copy of the repository (so the tests neither
    read nor leave a stale _build in it): (completed jupyter-book process, html folder).
    tests/test_book_build.py checks the build, tests/test_site_browser.py reads it in a browser,
    tests/test_book_pdf.py prints it as one PDF. Run by this interpreter (the project's .venv)."""
    source = tmp_path_factory.mktemp("site") / "book"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("_build", ".git", ".venv*", "*.pt", "checkpoints", "student"))
    # The project's venv is not copied (gigabytes), but its like must not reach the book: packages
    # ship .md and .bib files, which Sphinx would read as pages and warn about.
    (source / ".venv" / "site-packages" / "somepackage").mkdir(parents=True)
    (source / ".venv" / "site-packages" / "somepackage" / "README.md").write_text("# Not a page of the book\n")
    result = subprocess.run([*book_pdf.JUPYTER_BOOK, "build", str(source), "--builder", "html", "-n", "-W", "--keep-going"],
                            capture_output=True, text=True, timeout=1200)
    return result, source / "_build" / "html"
