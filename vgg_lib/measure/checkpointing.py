"""Gradient checkpointing over VGG's feature stack: memory bought back with recomputation.

Between the forward and the backward pass, training keeps every tensor the backward pass needs
(``saved_tensors.measure_saved_activations`` counts them). Gradient checkpointing (Chen et al.
2016, "Training Deep Nets with Sublinear Memory Cost") cuts the layers into *segments* and keeps
only each segment's input; the backward pass runs a segment's forward again, one segment at a
time, to get back what it needs. With k segments the memory falls from the whole stack's to the
kept inputs plus the largest segment, and the price is one more forward pass of the recomputed
segments.

``checkpointed(model, segments)`` gives a VGG (or an ``nn.Sequential``) whose ``features`` run
under ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``, sharing every module and
parameter with ``model`` (which is left as it was; the state-dict keys stay the same).
``segments`` is a number k (cut as ``checkpoint_sequential`` cuts: equal numbers of modules), the
string ``"blocks"`` (a cut after every max-pool but the last), or the explicit indices of the
modules where later segments start. As in ``checkpoint_sequential``, every segment but the last
is checkpointed: the last one's backward comes first, so recomputing it would buy nothing.

The pitfall: a segment must not begin with a module that writes in place (torchvision's VGGs,
and this book's, use ``ReLU(inplace=True)``). It would overwrite the very tensor the checkpoint
keeps to recompute the segment, and the backward pass would fail inside autograd with "one of
the variables needed for gradient computation has been modified by an inplace operation".
A number k or ``"blocks"`` never cuts there (a cut that would land on an in-place module moves
past it, so a layer and its ReLU stay together); explicit starts that do are refused, with the
fix, before anything runs.

``checkpointing_table(model, ...)`` measures every way of cutting side by side: what the
saved-tensor counter finds kept after the forward pass, the most held while the backward pass
recomputes, the multiply-adds run twice, the time of a training step, and on a GPU
``torch.cuda.max_memory_allocated``.
"""

import copy
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..architecture.model import VGG
from ..architecture.naming import features_of, paper_names
from ..device import synchronise
from ..tables import text_table
from .counting import layer_macs, megabytes
from .saved_tensors import measure_saved_activations
from .shape_trace import trace_shapes

# The ways of cutting VGG's feature stack that chapter 4 compares (1: no checkpointing).
SEGMENTINGS = (1, 2, 4, 8, "blocks")


def writes_in_place(module):
    """True for a module that overwrites its input (``ReLU(inplace=True)``, ``Dropout(inplace=True)``)."""
    return getattr(module, "inplace", False) is True


def _label(segments):
    return "per block" if segments == "blocks" else f"k={segments}"


def segment_starts(layers, segments):
    """Where the segments after the first begin: indices into ``layers`` (an ``nn.Sequential``).

    ``segments``: a number k (k - 1 cuts, placed as ``checkpoint_sequential`` places them, every
    ``len(layers) // k`` modules; a cut that lands on an in-place module moves past it, and cuts
    that meet merge, so there may be fewer than k segments); ``"blocks"`` (after every max-pool
    but a final one); or the starts themselves, a sequence of increasing indices (refused where a
    segment would begin with an in-place module)."""
    layers = list(layers)
    n = len(layers)
    if n == 0:
        raise ValueError("There are no layers to cut into segments: the nn.Sequential is empty.")
    names = paper_names(layers)
    if isinstance(segments, str):
        if segments != "blocks":
            raise ValueError(f"segments={segments!r}: use a number of segments (1 to {n}), "
                             "'blocks' (a cut after every max-pool), or a list of start indices.")
        starts = [i + 1 for i, layer in enumerate(layers[:-1]) if isinstance(layer, nn.MaxPool2d)]
        if not any(isinstance(layer, nn.MaxPool2d) for layer in layers):
            raise ValueError("segments='blocks' cuts after every max-pool, and these layers have "
                             "none: give a number of segments instead.")
        return tuple(starts)
    if isinstance(segments, bool) or not isinstance(segments, (int, list, tuple)):
        raise TypeError(f"segments={segments!r}: use a whole number of segments (1 to {n}), "
                        "'blocks', or a list of the indices where segments start.")
    if isinstance(segments, int):
        if not 1 <= segments <= n:
            raise ValueError(f"segments={segments}: the feature stack has {n} modules, so use 1 "
                             f"(no checkpointing) to {n} (one module per segment).")
        size = n // segments
        starts = []
        for start in range(size, size * segments, size):
            while start < n and writes_in_place(layers[start]):
                start += 1  # keep a layer and the in-place ReLU after it in one segment
            if start < n and (not starts or start > starts[-1]):
                starts.append(start)
        return tuple(starts)
    starts = tuple(segments)
    if any(isinstance(s, bool) or not isinstance(s, int) for s in starts):
        raise TypeError(f"segments={segments!r}: the starts of segments are module indices "
                        "(whole numbers).")
    if any(not 0 < s < n for s in starts) or list(starts) != sorted(set(starts)):
        raise ValueError(f"segments={segments!r}: give increasing indices between 1 and {n - 1} "
                         f"(where the second, third, ... segment begins; the stack has {n} modules).")
    for s in starts:
        if writes_in_place(layers[s]):
            raise ValueError(
                f"A segment would begin at layers[{s}] ({names[s]}), an in-place "
                f"{type(layers[s]).__name__}: it would overwrite the tensor the checkpoint keeps "
                f"to recompute that segment, and the backward pass would fail with 'one of the "
                f"variables needed for gradient computation has been modified by an inplace "
                f"operation'. Start the segment one module later ({s + 1}), so that "
                f"{names[s - 1]} and its {type(layers[s]).__name__} stay together, or build the "
                "model with inplace=False.")
    return starts


@contextmanager
def running_statistics_frozen(modules):
    """Batch norm layers among ``modules`` normalise with the batch's statistics as usual but do
    not update their running mean and variance (nor count the batch). The recomputation of a
    checkpointed segment runs under it: the forward pass has already updated them once, and a
    second update would count every training batch twice."""
    norms = [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in norms]
    try:
        for m in norms:
            m.momentum = 0.0  # running = (1 - 0) x running + 0 x batch: unchanged
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


class CheckpointedSequential(nn.Sequential):
    """The modules of ``layers`` (the same objects, at the same indices), run in segments: each
    segment but the last under ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``."""

    def __init__(self, layers, segments):
        starts = segment_starts(layers, segments)
        super().__init__(*layers)
        self.starts = starts

    def segments(self):
        """``(start, end)`` of every segment, the last one included."""
        bounds = (0, *self.starts, len(self))
        return list(zip(bounds[:-1], bounds[1:]))

    def _run(self, start, end, x):
        for index in range(start, end):
            x = self[index](x)
        return x

    def forward(self, x):
        *checkpointed, (start, end) = self.segments()
        for first, stop in checkpointed:
            modules = [self[index] for index in range(first, stop)]
            x = checkpoint(self._run, first, stop, x, use_reentrant=False,
                           context_fn=lambda modules=modules: (nullcontext(),
                                                               running_statistics_frozen(modules)))
        return self._run(start, end, x)

    def extra_repr(self):
        return f"segment starts={list(self.starts)}"


def checkpointed(model, segments):
    """``model`` with its feature stack checkpointed in ``segments`` (see ``segment_starts``):
    a ``VGG`` sharing ``model``'s modules and parameters, or a ``CheckpointedSequential`` when
    ``model`` is an ``nn.Sequential``. ``model`` itself is not changed."""
    if isinstance(model, nn.Sequential):
        return CheckpointedSequential(model, segments)
    if not isinstance(model, VGG):
        raise TypeError(f"checkpointed() takes a vgg_lib VGG (vgg_lib.vgg16() ...) or an "
                        f"nn.Sequential of layers, not a {type(model).__name__}.")
    features = CheckpointedSequential(features_of(model), segments)
    wrapped = VGG(features, model.avgpool, model.classifier, config=model.config, spec=model.spec)
    wrapped.min_input_size = model.min_input_size  # the segments hide the poolings from VGG's count
    wrapped.training = model.training
    return wrapped


# --- measuring ----------------------------------------------------------------------------------

class _KeepInput(nn.Module):
    """Saves its input for backward, as a checkpoint keeps a segment's input; passes it on."""

    class _Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return grad

    def forward(self, x):
        return self._Function.apply(x)


def _meta_twin(model):
    """A copy of ``model`` on the meta device (shapes, no numbers), made without copying weights."""
    memo = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        twin = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(twin, tensor.requires_grad) if isinstance(
            tensor, nn.Parameter) else twin
    return copy.deepcopy(model, memo)


@dataclass(frozen=True)
class CheckpointingRow:
    """One way of cutting the feature stack, measured (bytes for the whole batch)."""

    segments: object          # what was asked: a number k, "blocks", or explicit starts
    starts: tuple             # where the segments after the first begin (feature indices)
    start_names: tuple        # the paper's names of those modules (conv2_2, pool3, ...)
    kept_bytes: int           # saved for backward when the forward pass ends (saved-tensor counter)
    peak_bytes: int           # the most kept at once, the backward pass's recomputation included
    recomputed_macs: int      # forward multiply-adds the backward pass runs again
    forward_macs: int         # multiply-adds of one forward pass
    batch_size: int
    seconds: float = None     # one training step (forward + backward), fastest of the repeats
    cuda_peak_bytes: int = None  # torch.cuda.max_memory_allocated during a step, above the start
    plain_seconds: float = None   # a step of the model without checkpointing
    forward_seconds: float = None  # a training-mode forward pass of the model without checkpointing

    @property
    def label(self):
        return _label(self.segments) if isinstance(self.segments, (int, str)) else str(self.starts)

    @property
    def segment_count(self):
        return len(self.starts) + 1

    @property
    def recomputed_share(self):
        return self.recomputed_macs / self.forward_macs

    @property
    def expected_seconds(self):
        """A step without checkpointing plus the recomputed share of a measured forward pass."""
        if self.plain_seconds is None or self.forward_seconds is None:
            return None
        return self.plain_seconds + self.recomputed_share * self.forward_seconds


def _feature_index(path, prefix):
    if prefix and not path.startswith(prefix):
        return None
    head = path[len(prefix):].split(".")[0]
    return int(head) if head.isdigit() else None


def memory_rows(model, segmentings=SEGMENTINGS, image_size=224, batch_size=1):
    """The memory side of ``checkpointing_table``, measured on a meta twin of ``model`` (no
    weights copied, nothing computed): one ``CheckpointingRow`` per way of cutting, without times.

    ``kept_bytes`` is the saved-tensor counter on the checkpointed model: the input of every
    checkpointed segment, and everything the last segment and the head save. ``peak_bytes`` adds
    the backward pass: when it reaches checkpointed segment i, what came after i has been freed,
    the inputs of segments 0..i are still kept, and segment i's forward runs again, keeping what
    it saves (counted with the same counter, on that segment alone) until its backward is done."""
    twin = model if next(model.parameters()).device.type == "meta" else _meta_twin(model)
    features = features_of(twin)
    prefix = "" if isinstance(twin, nn.Sequential) else "features."
    trace = trace_shapes(twin, image_size, batch_size=1)
    layer_inputs, macs = {}, {}
    for layer in trace:
        index = _feature_index(layer.module, prefix)
        if index is not None:
            layer_inputs.setdefault(index, (layer.input_shape, layer.element_size))
            macs[index] = macs.get(index, 0) + layer_macs(layer)
    forward_macs = sum(layer_macs(layer) for layer in trace)
    names = paper_names(list(features))
    rows = []
    for segments in segmentings:
        wrapped = checkpointed(twin, segments)
        cut = features_of(wrapped)
        kept = measure_saved_activations(wrapped, image_size, batch_size).total_bytes
        peak, inputs_before = kept, 0
        recomputed = 0
        for start, end in cut.segments()[:-1]:
            shape, element_size = layer_inputs[start]
            segment = nn.Sequential(_KeepInput(), *[features[i] for i in range(start, end)])
            recompute = measure_saved_activations(segment, image_size=shape[1:], batch_size=batch_size,
                                                  in_channels=shape[0]).total_bytes
            peak = max(peak, inputs_before + recompute)
            inputs_before += batch_size * element_size * torch.Size(shape).numel()
            recomputed += sum(macs.get(i, 0) for i in range(start, end))
        rows.append(CheckpointingRow(segments, cut.starts, tuple(names[s] for s in cut.starts),
                                     kept, peak, recomputed * batch_size, forward_macs * batch_size,
                                     batch_size))
    return rows


def _step(model, x, backward=True):
    model.zero_grad(set_to_none=True)
    out = model(x).sum()
    if backward:
        out.backward()


def time_step(model, x, repeats=2, backward=True):
    """Seconds of the fastest of ``repeats`` training steps (forward, backward) of ``model`` on
    ``x``, and on a GPU the most memory allocated during one, above what was allocated before.
    ``backward=False`` times the forward pass alone (in the model's mode, gradients enabled)."""
    device = x.device
    times, cuda_peak = [], None
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        synchronise(device)
        started = time.perf_counter()
        _step(model, x, backward)
        synchronise(device)
        times.append(time.perf_counter() - started)
        if device.type == "cuda":
            cuda_peak = torch.cuda.max_memory_allocated(device) - before
    model.zero_grad(set_to_none=True)
    return min(times), cuda_peak


def checkpointing_table(model, segmentings=SEGMENTINGS, image_size=224, batch_size=1, repeats=2):
    """Every way of cutting in ``segmentings`` measured side by side, in one run: the memory of
    ``memory_rows`` and, unless ``model`` is on the meta device, the time of a training step
    (forward and backward, the fastest of ``repeats`` after one warm-up step) and on a GPU
    ``torch.cuda.max_memory_allocated``. Each row also gets the step and the forward pass of
    the model without checkpointing, measured once (``expected_seconds`` adds the recomputed
    share of that forward pass to that step). The images are random, seeded; the model is put
    in training mode for the steps and given back in its mode, without gradients."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}: use a whole number of timed steps, at least 1.")
    rows = memory_rows(model, segmentings, image_size, batch_size)
    parameter = next(model.parameters())
    if parameter.device.type == "meta":
        return rows
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, channels, height, width, generator=generator).to(parameter)
    was_training = model.training
    try:
        model.train()
        _step(model, x)  # warm-up: the first step pays for allocations and kernel choices
        plain, plain_cuda_peak = time_step(model, x, repeats)
        forward, _ = time_step(model, x, repeats, backward=False)
        timed = []
        for row in rows:
            if row.segment_count == 1:  # no checkpointing: the step just measured
                seconds, cuda_peak = plain, plain_cuda_peak
            else:
                seconds, cuda_peak = time_step(checkpointed(model, row.segments), x, repeats)
            timed.append(CheckpointingRow(**{**row.__dict__, "seconds": seconds,
                                             "cuda_peak_bytes": cuda_peak, "plain_seconds": plain,
                                             "forward_seconds": forward}))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return timed


def format_checkpointing_table(rows, times=True):
    """Plain text: segments, where they start, memory kept after the forward pass and at the
    peak (MB, 10^6 bytes, for the whole batch), the share of the forward pass run again, and
    with ``times`` the step time, the time expected from the recomputation (a step without
    checkpointing plus that share of a forward pass) and the GPU's peak where measured."""
    header = ["segments", "starts at", "kept after forward MB", "peak MB", "forward run again"]
    gpu = times and any(row.cuda_peak_bytes is not None for row in rows)
    if times:
        header += ["step s", "expected s"]
    if gpu:
        header.append("GPU peak MB")
    body = []
    for row in rows:
        line = [f"{row.label} ({row.segment_count})", ", ".join(row.start_names) or "-",
                f"{megabytes(row.kept_bytes):.1f}", f"{megabytes(row.peak_bytes):.1f}",
                f"{100 * row.recomputed_share:.0f}%"]
        if times:
            line += ["-" if value is None else f"{value:.2f}"
                     for value in (row.seconds, row.expected_seconds)]
        if gpu:
            line.append("-" if row.cuda_peak_bytes is None else f"{megabytes(row.cuda_peak_bytes):.0f}")
        body.append(line)
    return text_table(header, body, align="ll" + "r" * (len(header) - 2))
