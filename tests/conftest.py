"""Shared test fixtures."""

import os

import pytest
import torch


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
