"""benchmarks/training_speed.py's breakdown of a training step by kind of layer.

The breakdown groups torch.profiler's operator names by substrings; a torch release that renames
an operator would move its time to "the rest" without a word, so a real (tiny) run of ``fit``
must give every kind of layer a VGG-BN has some time. How much is the benchmark's business,
never a test's.
"""

import pytest
import torch

from support import colour_data, load_benchmark
from vgg_lib.architecture.model import ModelSpec
from vgg_lib.training.profiles import QUICK, Profile


@pytest.mark.parametrize("variant", ["as-is", "both"])
def test_every_kind_of_layer_of_a_vgg_bn_step_gets_its_time(variant):
    benchmark = load_benchmark("training_speed")
    tiny = ModelSpec(config="A", batch_norm=True, width=0.125, head="compact", num_classes=10)
    profile = Profile(name="quick", **dict(QUICK, model=tiny), device=torch.device("cpu"))
    seconds, wall, largest_rest = benchmark.step_breakdown(
        profile, colour_data(n_train=64), batch_size=16, steps=4, warmup=1, precision="fp32",
        variant=variant)
    kinds = [kind for kind, _ in benchmark.KINDS]
    assert list(seconds) == kinds + ["the rest"]
    assert all(seconds[kind] > 0 for kind in kinds), seconds
    assert 0 < sum(seconds.values()) and wall > 0
    assert len(largest_rest) <= 4 and all(spent >= 0 for _, spent in largest_rest)
