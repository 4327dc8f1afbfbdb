"""benchmarks/evaluation_speed.py's check of what each evaluation lever does to the outputs: the
batch size and inference_mode must leave them bit for bit alone (the book relies on it when it
chooses EVAL_BATCH_SIZE), and folding batch norm must compute the same function up to rounding,
so that its timing is of the same network. How fast each is, is the benchmark's business."""

import torch

from support import colour_data, load_benchmark, tiny_model


def test_batch_size_and_mode_keep_the_outputs_and_folding_keeps_the_function():
    benchmark = load_benchmark("evaluation_speed")
    model = tiny_model().eval()
    for layer in model.modules():   # statistics worth folding, as the benchmark's network has
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.1, 0.1)
            layer.running_var.uniform_(0.5, 2.0)
    same, difference = benchmark.check_outputs(model, colour_data(n_val=40), [7, 16, 40], "fp32")
    assert len(same) == 6 and all(same.values()), same
    assert 0 <= difference < 1e-4
    folded = benchmark.folded(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # a copy was folded
