"""Gradient checkpointing over VGG's feature stack (vgg_lib/measure/checkpointing.py, chapter 4).

Small networks (an eighth of the channels, 32x32 images) keep the real passes fast; the memory
of full-size VGG-16 at 224x224 is measured on the meta device. Speed is the benchmark's business
(benchmarks/checkpointing.py), never a test's.
"""

import copy

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from vgg_lib import vgg
from vgg_lib.measure.checkpointing import (CheckpointedSequential, checkpointed,
                                           checkpointing_table, format_checkpointing_table,
                                           memory_rows, segment_starts, writes_in_place)
from vgg_lib.measure.counting import meta_model, saved_for_backward
from vgg_lib.measure.saved_tensors import measure_saved_activations
from vgg_lib.measure.shape_trace import trace_shapes


def small_vgg(batch_norm=False, seed=0):
    torch.manual_seed(seed)
    return vgg("D", batch_norm=batch_norm, width=0.125, head="compact", num_classes=10)


def gradients(model, x):
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(x).square().sum().backward()
    return [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]


@pytest.mark.parametrize("batch_norm, segments", [
    (False, 2), (False, 8), (False, "blocks"), (False, "every 4th conv"), (False, 31),
    (True, 4), (True, "blocks"), (True, "every 4th conv")])
def test_segments_give_the_gradients_of_no_checkpointing(segments, batch_norm):
    model = small_vgg(batch_norm)
    if segments == "every 4th conv":  # explicit starts
        segments = tuple(i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d))[1::4]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain = gradients(copy.deepcopy(model), x)
    wrapped = checkpointed(model, segments)
    assert len(wrapped.features.starts) >= 1
    cut = gradients(wrapped, x)
    assert len(plain) == len(cut)
    for a, b in zip(plain, cut):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_batch_norm_running_statistics_are_updated_once_per_step():
    model = small_vgg(batch_norm=True)
    twin = copy.deepcopy(model)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model(x).sum().backward()
    checkpointed(twin, "blocks")(x).sum().backward()
    for a, b in zip(model.buffers(), twin.buffers()):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert all(m.momentum == 0.1 for m in twin.modules() if isinstance(m, nn.BatchNorm2d))


def test_out_of_place_stack_is_cut_as_checkpoint_sequential_cuts_it():
    torch.manual_seed(0)
    layers = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(6, 6), nn.Tanh())])
    x = torch.randn(5, 6)
    for k in (1, 2, 3, 4, 8):
        size = len(layers) // k
        assert segment_starts(layers, k) == tuple(range(size, size * k, size))
        ours = gradients(CheckpointedSequential(layers, k), x)
        x_t = x.clone().requires_grad_(True)
        layers.zero_grad(set_to_none=True)
        checkpoint_sequential(layers, k, x_t, use_reentrant=False).square().sum().backward()
        theirs = [p.grad.clone() for p in layers.parameters()] + [x_t.grad.clone()]
        assert len(theirs) == len(ours)
        for a, b in zip(theirs, ours):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_the_model_is_left_as_it_was_and_shares_its_parameters():
    model = small_vgg()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    wrapped = checkpointed(model, 4)
    assert type(model.features) is nn.Sequential and model.features is not wrapped.features
    assert list(wrapped.state_dict()) == list(model.state_dict())
    assert all(a is b for a, b in zip(wrapped.parameters(), model.parameters()))
    assert all(a is b for a, b in zip(wrapped.features, model.features))
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), before)
        torch.testing.assert_close(model(x), before)


def test_whole_numbers_of_segments_never_start_at_an_in_place_layer():
    for batch_norm in (False, True):
        features = meta_model("D", batch_norm=batch_norm).features
        for k in range(1, len(features) + 1):
            starts = segment_starts(features, k)
            assert len(starts) <= k - 1
            assert list(starts) == sorted(set(starts))
            assert not any(writes_in_place(features[s]) for s in starts)
    assert segment_starts(meta_model("D").features, 8) == (4, 7, 9, 12, 16, 19, 21)
    assert segment_starts(meta_model("D").features, "blocks") == (5, 10, 17, 24)


def test_in_place_relu_at_a_boundary_fails_inside_autograd_with_the_raw_api():
    # What the helper protects against: torch's own checkpoint_sequential cuts VGG-16's features
    # into 8 segments of 3 modules, the second starting with relu1_2 (in place).
    model = small_vgg()
    x = torch.randn(2, 3, 32, 32)
    out = checkpoint_sequential(model.features, 8, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_in_place_relu_at_a_boundary_is_refused_before_anything_runs():
    model = small_vgg()
    with pytest.raises(ValueError) as caught:
        checkpointed(model, (3, 6, 9))
    message = str(caught.value)
    assert "layers[3] (relu1_2)" in message and "in-place ReLU" in message
    assert "modified by an inplace operation" in message and "(4)" in message
    # the same cut without in-place ReLUs is fine
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x = torch.randn(2, 3, 32, 32)
    checkpointed(model, (3, 6, 9))(x).sum().backward()


@pytest.mark.parametrize("segments, error, words", [
    (0, ValueError, "use 1 (no checkpointing) to 31"),
    (-2, ValueError, "use 1 (no checkpointing) to 31"),
    (32, ValueError, "use 1 (no checkpointing) to 31"),
    (2.5, TypeError, "whole number"),
    (True, TypeError, "whole number"),
    (None, TypeError, "whole number"),
    ("pools", ValueError, "'blocks'"),
    ((0, 5), ValueError, "increasing indices between 1 and 30"),
    ((10, 5), ValueError, "increasing indices"),
    ((5, 5), ValueError, "increasing indices"),
    ((31,), ValueError, "between 1 and 30"),
    ((5.0,), TypeError, "module indices"),
])
def test_bad_segments_are_refused_clearly(segments, error, words):
    with pytest.raises(error, match=None) as caught:
        checkpointed(meta_model("D"), segments)
    assert words in str(caught.value)


def test_other_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="vgg_lib VGG"):
        checkpointed(nn.Conv2d(3, 8, 3), 2)
    with pytest.raises(ValueError, match="have none"):
        segment_starts(nn.Sequential(nn.Linear(3, 3), nn.Tanh()), "blocks")
    with pytest.raises(ValueError, match="empty"):
        segment_starts(nn.Sequential(), 1)
    with pytest.raises(ValueError, match="repeats"):
        checkpointing_table(small_vgg(), (1,), image_size=32, repeats=0)


def test_memory_falls_with_k_for_vgg16_at_224():
    rows = memory_rows(meta_model("D"), (1, 2, 4, 8, "blocks"))
    peaks = [row.peak_bytes for row in rows[:4]]
    assert all(a > b for a, b in zip(peaks, peaks[1:])), peaks
    plain = rows[0]
    assert plain.kept_bytes == plain.peak_bytes == measure_saved_activations(meta_model("D")).total_bytes
    assert plain.recomputed_macs == 0 and all(row.recomputed_macs > 0 for row in rows[1:])
    assert all(row.kept_bytes < plain.kept_bytes and row.kept_bytes <= row.peak_bytes for row in rows[1:])
    blocks = rows[-1]
    assert blocks.peak_bytes < plain.peak_bytes / 2 and blocks.segment_count == 5
    assert all(0 < row.recomputed_share < 1 for row in rows[1:])


def test_kept_memory_is_the_boundaries_and_what_the_last_segment_saves():
    # Per block: the checkpoint keeps the inputs of segments 1-4 (the image and pool1-pool3's
    # outputs); block 5 and the head save what they save without checkpointing (trace rules).
    model = meta_model("D")
    (row,) = memory_rows(model, ("blocks",), batch_size=2)
    trace = trace_shapes(model, 224)
    boundaries = trace.input_bytes + sum(trace[f"pool{i}"].output_bytes for i in (1, 2, 3))
    saved = saved_for_backward(trace)
    tail = sum(nbytes for module, nbytes in saved.items()
               if not module.startswith("features.") or int(module.split(".")[1]) >= 24)
    assert row.kept_bytes == 2 * (boundaries + tail)


def test_memory_rows_of_a_real_model_match_its_checkpointed_forward_pass():
    model = small_vgg()
    rows = memory_rows(model, (1, 4, "blocks"), image_size=32, batch_size=2)
    for row in rows:
        measured = measure_saved_activations(checkpointed(model, row.segments), 32, batch_size=2)
        assert row.kept_bytes == measured.total_bytes
    assert next(model.parameters()).device.type == "cpu"


def test_the_table_times_real_steps_and_leaves_the_model_as_it_was():
    model = small_vgg().eval()
    rows = checkpointing_table(model, (1, "blocks"), image_size=32, batch_size=2, repeats=1)
    assert [r.segments for r in rows] == [1, "blocks"]
    assert all(r.seconds is not None and r.seconds > 0 and r.cuda_peak_bytes is None for r in rows)
    assert rows[0].seconds == rows[0].plain_seconds  # no checkpointing: the plain step itself
    assert rows[1].expected_seconds == rows[1].plain_seconds + rows[1].recomputed_share * rows[1].forward_seconds
    assert [(r.kept_bytes, r.peak_bytes) for r in rows] == [
        (r.kept_bytes, r.peak_bytes) for r in memory_rows(model, (1, "blocks"), 32, 2)]
    assert not model.training and all(p.grad is None for p in model.parameters())
    text = format_checkpointing_table(rows)
    assert "per block (5)" in text and "step s" in text and "expected s" in text
    assert "step s" not in format_checkpointing_table(rows, times=False)


def test_the_chapter_exercises_expect_what_a_hand_calculation_gives():
    from vgg_lib import check

    # the cut in front of pool1 keeps relu1_2's output: 64 x 224 x 224 float32 values per image
    assert check("layer_by_layer/checkpoint-boundary-memory", 32 * 64 * 224 * 224 * 4 / 1e6, quiet=True)
    assert not check("layer_by_layer/checkpoint-boundary-memory", 32 * 64 * 112 * 112 * 4 / 1e6, quiet=True)
    rows = memory_rows(meta_model("D", batch_norm=True), (1, 2, 4, 8), batch_size=32)
    fitting = [row.segments for row in rows if row.peak_bytes <= 2e9]
    assert fitting == [8] and check("layer_by_layer/smallest-k-for-budget", 8, quiet=True)
    removed = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000 - (512 * 1000 + 1000)
    assert check("layer_by_layer/slim-head-removed-parameters", removed, quiet=True)
