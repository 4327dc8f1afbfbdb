"""Shared test fixtures."""

import os

import pytest


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
