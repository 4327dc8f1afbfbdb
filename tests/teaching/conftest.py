"""Fixtures of the teaching tests, and a line at the end of the run saying which grading
sandboxes ran and, for each one skipped, why."""

import os

import pytest

from vgg_lib.teaching import jobs, sandbox

_PROBLEMS = {}  # mode: why it cannot be had here (None: it can), for the tests that asked


def _problem(mode):
    if mode not in _PROBLEMS:
        _PROBLEMS[mode] = jobs.sandbox_problem(mode)
    return _PROBLEMS[mode]


@pytest.fixture(scope="session")
def sandbox_or_skip():
    """``sandbox_or_skip(mode)``: the sandbox ``mode`` ("bwrap", "user", "none"), or a skip saying
    why this machine cannot offer it; a failure instead for the modes in VGG_REQUIRE_SANDBOXES
    (CI requires "bwrap user": .ci/run)."""
    required = os.environ.get("VGG_REQUIRE_SANDBOXES", "").replace(",", " ").split()

    def get(mode):
        problem = _problem(mode)
        if problem:
            if mode in required:
                pytest.fail(f"the {mode} sandbox is required here (VGG_REQUIRE_SANDBOXES) but {problem}")
            pytest.skip(f"the {mode} sandbox is not available here: {problem}")
        return sandbox.choose(mode)
    return get


@pytest.fixture(scope="session")
def offered_sandboxes():
    """The sandboxes this machine offers, strictest first (of "bwrap", "user", "none")."""
    return [mode for mode in ("bwrap", "user", "none") if _problem(mode) is None]


def pytest_terminal_summary(terminalreporter):
    if _PROBLEMS:
        terminalreporter.write_line("grading sandboxes: " + "; ".join(
            f"{mode} ran" if problem is None else f"{mode} SKIPPED ({problem})" for mode, problem in _PROBLEMS.items()))
