"""benchmarks/evaluation_speed.py's check of what each evaluation lever does to the outputs: the
batch size and inference_mode must leave each image's outputs bit for bit alone (what the
benchmark's reading of its timings says), and folding batch norm must compute the same function
up to rounding, so that its timing is of the same network. How fast each is, is the benchmark's
business."""

import torch

from support import colour_data, load_benchmark, tiny_model


def test_batch_size_and_mode_keep_the_outputs_and_folding_keeps_the_function():
    benchmark = load_benchmark("evaluation_speed")
    model = benchmark.with_statistics_worth_folding(tiny_model().eval())
    same, difference = benchmark.check_outputs(model, colour_data(n_val=40), [7, 16, 40], "fp32")
    assert len(same) == 6 and all(same.values()), same
    assert 0 <= difference < 1e-4
    folded = benchmark.folded(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # a copy was folded
