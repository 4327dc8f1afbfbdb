"""Looking inside a VGG while it trains: activation statistics and gradient norms, layer by layer.

For every ReLU the probe records the statistics of what goes in (the convolution's output, after
batch norm when there is one) and of what comes out:

* ``pre_mean``, ``pre_std``   -- mean and standard deviation of the ReLU's input
* ``post_mean``, ``post_std`` -- the same for its output
* ``zero_fraction``           -- share of outputs that are exactly zero
* ``dead_fraction``           -- share of units (channels of a convolution, features of a linear
  layer) that output zero for *every* image and position of the batch: dead for that batch

and for every weight layer (convolution or linear) ``grad_norm``, the Euclidean norm of the loss
gradient with respect to its weight, and ``weight_norm``. Layers are named as in the paper
(``conv3_2``; ``fc6``..``fc8``, or ``fc`` for a one-layer head), so the ReLU after ``conv3_2`` is
reported under ``conv3_2`` too.

Hooks are registered only inside ``with probe:`` (or inside the one-shot functions) and are removed
on the way out, also when training raises.
"""

import math

import torch
from torch import nn

from ..architecture.naming import classifier_names, feature_names

ACTIVATION_FIELDS = ("pre_mean", "pre_std", "post_mean", "post_std", "zero_fraction",
                     "dead_fraction")
GRADIENT_FIELDS = ("grad_norm", "weight_norm")
FIELDS = ACTIVATION_FIELDS + GRADIENT_FIELDS


def weight_layers(model):
    """``{name: (weight layer, ReLU after it or None)}`` in forward order.

    For a VGG (anything with ``features`` and ``classifier``) the names follow the paper; for any
    other model they are the module paths from ``named_modules``, and each convolution or linear
    layer is paired with the next ReLU module when one comes before the next weight layer.
    """
    if hasattr(model, "features") and hasattr(model, "classifier"):
        names = feature_names(model)
        sequence = [(names[i], m) for i, m in enumerate(model.features)]
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        fc_names = iter(classifier_names(len(linears)))
        sequence += [(next(fc_names) if isinstance(m, nn.Linear) else "", m) for m in model.classifier]
    else:
        sequence = list(model.named_modules())
    layers, current = {}, None
    for name, module in sequence:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            current = name
            layers[name] = [module, None]
        elif isinstance(module, nn.ReLU) and current is not None and layers[current][1] is None:
            layers[current][1] = module
    if not layers:
        raise ValueError("The model has no nn.Conv2d or nn.Linear layer to diagnose.")
    return {name: tuple(pair) for name, pair in layers.items()}


def _unit_alive(output):
    """Per unit (dimension 1): did it fire anywhere in the batch?"""
    dims = [d for d in range(output.dim()) if d != 1]
    return (output > 0).amax(dim=dims) if dims else output > 0


def pre_activation_summary(pre):
    """Mean and standard deviation of a ReLU's input, as 0-d tensors (no device sync)."""
    pre = pre.detach().float()
    return {"pre_mean": pre.mean(), "pre_std": pre.std(correction=0)}


def post_activation_summary(post):
    """Mean, standard deviation, zero and dead-unit fractions of a ReLU's output."""
    post = post.detach().float()
    return {
        "post_mean": post.mean(),
        "post_std": post.std(correction=0),
        "zero_fraction": (post == 0).float().mean(),
        "dead_fraction": 1 - _unit_alive(post).float().mean(),
    }


class ActivationHooks:
    """Forward hooks on the ReLUs of ``weight_layers(model)``; the latest statistics per layer.

    Only forward passes in training mode with gradients enabled are recorded, so the evaluation
    passes that ``fit`` makes between epochs do not overwrite what the training step saw.
    ``with ActivationHooks(model) as hooks: ...`` removes the hooks on exit.
    """

    def __init__(self, model, training_only=True):
        self.model = model
        self.training_only = training_only
        self.latest = {}
        self._handles = []

    def _record(self, module):
        return not self.training_only or (module.training and torch.is_grad_enabled())

    def attach(self):
        if self._handles:
            raise RuntimeError("These hooks are already attached; use one `with` block at a time.")
        pending = {}
        for name, (_, relu) in weight_layers(self.model).items():
            if relu is None:
                continue

            def pre_hook(module, inputs, name=name):
                # Summarised now: an in-place ReLU overwrites its input right after this hook.
                if self._record(module):
                    pending[name] = pre_activation_summary(inputs[0])

            def post_hook(module, inputs, output, name=name):
                if self._record(module) and name in pending:
                    self.latest[name] = {**pending.pop(name), **post_activation_summary(output)}

            self._handles.append(relu.register_forward_pre_hook(pre_hook))
            self._handles.append(relu.register_forward_hook(post_hook))
        return self

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def attached(self):
        return bool(self._handles)

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.remove()
        return False


def gradient_norms(model):
    """``{name: {"grad_norm": ..., "weight_norm": ...}}`` per weight layer, as 0-d tensors.

    Call it after ``loss.backward()`` and before ``optimizer.step()``; a layer without a gradient
    yet reports ``nan``.
    """
    norms = {}
    for name, (layer, _) in weight_layers(model).items():
        weight = layer.weight.detach()
        grad = layer.weight.grad
        norms[name] = {
            "grad_norm": grad.detach().float().norm() if grad is not None
            else torch.tensor(math.nan, device=weight.device),
            "weight_norm": weight.float().norm(),
        }
    return norms


def _to_floats(layer_stats):
    names = list(layer_stats)
    keys = [(name, field) for name in names for field in layer_stats[name]]
    if not keys:
        return {}
    values = torch.stack([layer_stats[n][f].to("cpu") for n, f in keys]).tolist()
    result = {name: {} for name in names}
    for (name, field), value in zip(keys, values):
        result[name][field] = value
    return result


def _merge(*parts):
    merged = {}
    for part in parts:
        for name, stats in part.items():
            merged.setdefault(name, {}).update(stats)
    return merged


def probe_batch(model, x, y, loss_fn=None):
    """One forward and backward pass on ``(x, y)`` in training mode, without an optimizer step.

    Returns ``{name: {field: float}}`` with all of ``FIELDS`` for layers followed by a ReLU and the
    gradient fields for the others. Gradients the model had before are restored afterwards, the
    training/eval mode too, and all hooks are removed. Batch-norm running statistics *are*
    updated by the forward pass, as in a real training step.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    saved = {p: (p.grad.clone() if p.grad is not None else None) for p in model.parameters()}
    model.train()
    try:
        for p in model.parameters():
            p.grad = None
        with torch.enable_grad(), ActivationHooks(model) as hooks:
            loss = loss_fn(model(x), y)
            loss.backward()
        stats = _merge(hooks.latest, gradient_norms(model))
    finally:
        for p, grad in saved.items():
            p.grad = grad
        model.train(was_training)
    return _to_floats(stats)


class ProbeRecords:
    """What a ``TrainingProbe`` recorded: ``records``, one ``{"step", "loss", "layers": {name:
    {field: value}}}`` per kept step, read with ``series``. A probe read back from a run record
    (``experiments.runs``: ``ProbeRecords(record.metrics["probe"]["records"])``) is one of
    these, without the model and hooks that recorded it (its JSON stored a NaN as None, read
    back as NaN)."""

    def __init__(self, records=()):
        def number(value):
            return math.nan if value is None else value

        self.records = [{"step": r["step"], "loss": number(r["loss"]),
                         "layers": {name: {f: number(v) for f, v in stats.items()}
                                    for name, stats in r["layers"].items()}}
                        for r in records]

    def layer_names(self):
        return list(self.records[0]["layers"]) if self.records else []

    def series(self, field):
        """``(steps, names, values)``: ``values[i][j]`` is ``field`` at ``steps[i]`` for layer ``names[j]``.

        Layers that do not have ``field`` (a head without a ReLU has no activation statistics)
        are left out.
        """
        if field not in FIELDS:
            raise ValueError(f"Unknown field {field!r}. Choose one of: {', '.join(FIELDS)}.")
        if not self.records:
            raise ValueError("Nothing recorded yet: did fit run with step_callback=probe, "
                             "and do `steps`/`every` include any of its steps?")
        names = [n for n in self.layer_names() if field in self.records[0]["layers"][n]]
        steps = [r["step"] for r in self.records]
        values = [[r["layers"][n].get(field, math.nan) for n in names] for r in self.records]
        return steps, names, values


class TrainingProbe(ProbeRecords):
    """A ``step_callback`` for ``fit`` that records activations and gradients at chosen steps.

    ``steps``: the step numbers to keep (any container, e.g. ``range(0, 20)``), or ``None`` for
    every step; ``every``: keep only steps divisible by it as well. Use it as::

        probe = TrainingProbe(model, steps=range(200), every=10)
        with probe:
            fit(model, data, ..., step_callback=probe)
        probe.series("grad_norm")   # steps, layer names, values[step, layer]

    The callback runs after ``loss.backward()`` and before ``optimizer.step()``, so the gradients
    it reads belong to the activations recorded in the same step. If the training loop scales
    the loss (mixed precision), divide ``grad_norm`` by the scale or train in full precision.
    """

    def __init__(self, model, steps=None, every=1):
        if every < 1:
            raise ValueError(f"every={every!r}: use a positive whole number of steps.")
        super().__init__()
        self.model = model
        self.steps = steps
        self.every = every
        self._hooks = ActivationHooks(model)

    def wants(self, step):
        return (self.steps is None or step in self.steps) and step % self.every == 0

    def __enter__(self):
        self._hooks.attach()
        return self

    def __exit__(self, *exc):
        self._hooks.remove()
        return False

    def __call__(self, step, model=None, loss=None):
        if not self._hooks.attached:
            raise RuntimeError("Attach the probe first: `with probe: fit(..., step_callback=probe)`.")
        latest, self._hooks.latest = self._hooks.latest, {}
        if not self.wants(step):
            return
        stats = _to_floats(_merge(latest, gradient_norms(self.model)))
        loss = float(loss) if loss is not None else math.nan
        self.records.append({"step": step, "loss": loss, "layers": stats})

