"""Fixtures of the teaching tests."""

import os

import pytest

from vgg_lib.teaching import jobs, sandbox


@pytest.fixture(scope="session")
def sandbox_or_skip():
    """``sandbox_or_skip(mode)``: the sandbox ``mode`` ("bwrap", "user", "none"), or a skip saying
    why this machine cannot offer it; a failure instead for the modes in VGG_REQUIRE_SANDBOXES
    (CI requires "bwrap user")."""
    required = os.environ.get("VGG_REQUIRE_SANDBOXES", "").replace(",", " ").split()
    problems = {}

    def get(mode):
        if mode not in problems:
            problems[mode] = jobs.sandbox_problem(mode)
        if problems[mode]:
            if mode in required:
                pytest.fail(f"the {mode} sandbox is required here (VGG_REQUIRE_SANDBOXES) but {problems[mode]}")
            pytest.skip(f"the {mode} sandbox is not available here: {problems[mode]}")
        return sandbox.choose(mode)
    return get
