"""How fast this machine trains and evaluates a network, measured in a second or two: the rates
behind a profile's time estimate on the machine that runs it (``Profile.estimate_here``), so that
no page promises a time the reader's machine cannot keep.

``measure_rates(spec, recipe, device)`` trains a fresh network of ``spec`` for a few steps of
``recipe`` (its batch size, augmentation and optimiser, through ``fit``, after a warm-up that is
not timed) and evaluates it on a few batches, all on random images of CIFAR-10's shape, and
returns images per second for each. A rate measured while other work shares the machine is
lower than on a quiet one: the estimate is for the machine as it is now.
"""

import time
from dataclasses import dataclass

import torch

from ..device import resolve_precision, synchronise
from ..evaluation.engine import evaluate
from .data import CIFAR10Data
from .loop import fit


@dataclass(frozen=True)
class Rates:
    train: float      # training images per second: augmentation, forward, backward, optimiser step
    evaluate: float   # evaluation images per second: one forward pass, eval mode
    precision: str    # the precision they were measured in ("auto" resolved on this device)
    steps: int        # training steps timed (after the warm-up)


def _random_data(images, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (images, 3, 32, 32), generator=generator, dtype=torch.uint8).to(device)
    y = (torch.arange(images) % 10).to(device)
    return CIFAR10Data(x, y, x, y, classes=[str(i) for i in range(10)], source="random images",
                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def measure_rates(spec, recipe, device, precision="auto", steps=6, warmup=2, eval_batches=2):
    """``Rates`` of ``spec``'s network trained with ``recipe`` on ``device`` in ``precision``:
    ``warmup`` steps untimed (memory, kernel choice), then ``steps`` steps timed; evaluation
    over ``eval_batches`` batches of 512 (one warm-up batch first). A couple of seconds on a CPU
    for the quick profile; the network is thrown away."""
    if steps < 1 or warmup < 0 or eval_batches < 1:
        raise ValueError(f"measure_rates: steps={steps}, warmup={warmup}, eval_batches={eval_batches}; "
                         "use steps >= 1, warmup >= 0 and eval_batches >= 1.")
    device = torch.device(device)
    batch = recipe.batch_size
    data = _random_data(batch * (warmup + steps), device)
    model = spec.build().to(device)
    quiet = dict(precision=precision, progress=False, test=False, eval_every_epoch=False, epochs=1)
    if warmup:
        fit(model, data, recipe, max_steps=warmup, **quiet)
    synchronise(device)
    # the steps alone (the epoch's own clock in the history): a recipe's set-up, such as a
    # whitened first layer's patch statistics (of these few random images, not of a run's 5,000),
    # is no part of the per-image rate
    history = fit(model, data, recipe, max_steps=steps, **quiet)
    synchronise(device)
    train = steps * batch / history.epochs[-1]["seconds"]
    evaluation = _random_data(512 * eval_batches, device, seed=1)
    evaluate(model, _first_batch(evaluation), precision=precision)   # warm-up
    synchronise(device)
    start = time.perf_counter()
    evaluate(model, evaluation, precision=precision)
    synchronise(device)
    evaluate_rate = 512 * eval_batches / (time.perf_counter() - start)
    return Rates(train, evaluate_rate, resolve_precision(precision, device), steps)


def _first_batch(data):
    return CIFAR10Data(data.x_train, data.y_train, data.x_test[:512], data.y_test[:512],
                       data.classes, data.source, data.mean, data.std)
