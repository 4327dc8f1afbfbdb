"""The tiny study every test of chapter 11's engine, summaries and figures reads."""

import pytest
import torch

import vgg_lib.transfer.study as study

from transfer_support import tiny_settings, tiny_tasks


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("transfer")
    source, target = tiny_tasks()
    results = study.run_transfer_study(tiny_settings(), source, target, folder, progress=False)
    torch.set_num_threads(threads)
    return folder, results
