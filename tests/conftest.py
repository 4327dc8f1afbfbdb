"""Shared test fixtures, and the kinds of tests (pytest markers, registered in pyproject.toml).

A test's kind decides when it runs: ``make test-fast`` runs the unit tests only, leaving out
``notebooks`` (nbval re-executing the chapters), ``book`` (the site build and checks of the built
book), ``browser`` (the built site in headless Chromium) and ``slow`` (tests of a minute or more:
torchrun launches, the Colab stand-in, sandboxed grading). Whole files get their kind here, in one
table; single slow tests carry ``@pytest.mark.slow`` where they are."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vgg_lib.teaching import book_pdf

ROOT = Path(__file__).resolve().parent.parent
FILE_KINDS = {
    "test_book_build.py": ("book", "slow"),
    "test_site_browser.py": ("book", "browser", "slow"),
    "test_book_pdf.py": ("book", "slow"),     # prints the built book (book_build) as one PDF
    "test_colab_standin.py": ("slow",),
    "test_grade.py": ("slow",),            # grades notebooks: a kernel per submission
    "test_grade_isolation.py": ("slow",),  # the same, each in its sandbox
    "test_full_marks.py": ("slow",),       # every chapter graded: right in each sandbox, blank in one
    "test_sandbox_attacks.py": ("slow",),  # hostile submissions graded in each sandbox
    "test_summative.py": ("slow",),
    "test_user_sandbox.py": ("slow",),
    "test_grader_budget.py": ("slow",),
    "test_distributed.py": ("slow",),      # torchrun launches
}
# Single tests that execute a chapter (in files whose other tests are quick).
SLOW_TESTS = {"test_chapter_one_student_copy_runs_top_to_bottom",
              "test_the_student_copy_runs_to_the_end_and_reports_no_answer_yet"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
            item.add_marker(pytest.mark.slow)
        for kind in FILE_KINDS.get(path.name, ()):
            item.add_marker(getattr(pytest.mark, kind))
        if getattr(item, "originalname", None) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


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
def registered_exercises():
    """``add(*exercises)`` registers exercises for one test; they are removed afterwards."""
    from contextlib import ExitStack

    from support import exercises_registered

    with ExitStack() as stack:
        yield lambda *exercises: stack.enter_context(exercises_registered(*exercises))


@pytest.fixture
def no_hooks_left():
    """``check(model)``: True when no module of ``model`` keeps a forward, forward-pre or
    backward hook (every capture and probe of the package removes its hooks again)."""
    def check(model):
        return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                        or m._backward_pre_hooks) for m in model.modules())

    return check


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and much faster on a busy machine: the whole session
    runs on one (a test that needs more sets them itself, and restores them)."""
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
