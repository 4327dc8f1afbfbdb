"""``fit``: the training loop of the book, one for every data object that yields its batches
(CIFAR-10's tensors, ``vgg_lib.training.data``; folders of images, ``vgg_lib.training.folders``),
in one process or data-parallel under torchrun (``vgg_lib.training.distributed``).

Each step takes one augmented, normalised batch from the data, runs the forward and backward
pass under mixed precision where the hardware gains from it, and one step of SGD with momentum
(the paper's optimiser). CIFAR-10 lives on the training device as one uint8 tensor: no
DataLoader, no worker processes, no PIL; folders of images are decoded by DataLoader workers.
After every epoch the validation split is evaluated (``vgg_lib.evaluation``), at the end the
test set once; an atomic checkpoint after every epoch lets an interrupted run resume exactly.
"""

import math
import numbers
import os
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..device import autocast, default_channels_last, resolve_precision
from ..evaluation.engine import evaluate
from ..evaluation.protocols import Protocol, centre_crop, shifted_flips
from . import airbench
from .checkpoint import (check_checkpoint_folder, check_resumable, load_checkpoint,
                         read_checkpoint, save_checkpoint)
from .data import training_subset
from .history import History
from .plateau import WARMUP_START, Plateau
from .recipe import SCHEDULES, TrainConfig
from .reproducibility import rng_states, seed_everything, set_rng_states

DATA_MEMBERS = ("device", "classes", "source", "mean", "std", "image_size", "train_images",
                "split_size", "normalize", "fingerprint", "check", "training_batches",
                "evaluation_batches")


# --- learning-rate schedules ----------------------------------------------------------------

def lr_factor(step, total_steps, schedule="onecycle"):
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    onecycle: linear warm-up from 1/25 of the peak over the first 25% of the steps, then linear
    decay to zero. cosine: linear warm-up over the first 5%, then half a cosine down to zero.
    constant: always 1. (plateau, the paper's, depends on the validation accuracies as well:
    ``vgg_lib.training.plateau``.)
    """
    if schedule == "constant":
        return 1.0
    if schedule == "onecycle":
        warmup = max(1, round(0.25 * total_steps))
        if step < warmup:
            return WARMUP_START + (1 - WARMUP_START) * step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    if schedule == "cosine":
        warmup = max(1, round(0.05 * total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "plateau":
        raise ValueError("schedule='plateau' follows the validation accuracy, not the step alone: "
                         "its multiplier is a vgg_lib.training.plateau.Plateau, which fit makes.")
    raise ValueError(f"schedule={schedule!r}; choose one of {', '.join(SCHEDULES)}.")


def make_optimizer(model, recipe):
    """The recipe's optimiser, with weight decay on weights only, not on biases or BatchNorm
    parameters. ``sgd``: SGD with momentum (the paper's; ``nesterov=True`` for Nesterov's
    variant). ``adam``: Adam (Kingma & Ba, 2015) with PyTorch's default betas; its weight decay is
    the L2 term added to the gradient, as in ``torch.optim.Adam``; momentum and nesterov unused.
    Batch norm (airbench's settings): ``bn_scale=False`` leaves its scales out; ``bn_bias_lr``
    other than 1 puts its biases in a third group whose learning rate is ``recipe.lr`` times it
    (the schedule scales every group's)."""
    norms = airbench.batch_norms(model)
    left_out = {id(m.weight) for m in norms if m.weight is not None} if not recipe.bn_scale else set()
    biases = [m.bias for m in norms if m.bias is not None and m.bias.requires_grad]
    own_group = {id(p) for p in biases} if recipe.bn_bias_lr != 1 else set()
    trained = [p for p in model.parameters() if p.requires_grad and id(p) not in left_out]
    decay = [p for p in trained if p.ndim > 1]
    no_decay = [p for p in trained if p.ndim <= 1 and id(p) not in own_group]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if own_group:
        groups.append({"params": biases, "weight_decay": 0.0, "lr": recipe.lr * recipe.bn_bias_lr})
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)


def recipe_protocol(recipe, image_size):
    """How ``fit`` evaluates: each image's shorter side rescaled to the recipe's ``eval_scale``
    (None: not rescaled), its centre ``crop`` (None: the images' own side), with its mirror
    image when ``tta_flip``, and with its translations by ``tta_shift`` pixels too when that is
    set (``shifted_flips``). For CIFAR-10 by default: the images as they are."""
    crop = recipe.crop or image_size
    if recipe.tta_shift:
        return shifted_flips(recipe.tta_shift, crop, recipe.eval_scale or crop)
    return centre_crop(recipe.eval_scale or crop, crop, flip=recipe.tta_flip)


# --- the loop -------------------------------------------------------------------------------

def check_fit_inputs(model, data, recipe, *, max_steps=None, eval_batch_size=512, step_callback=None,
                     checkpoint_path=None, protocol=None, eval_every_epoch=True):
    """Before anything is trained: a clear error for what ``fit`` cannot use, instead of a
    failure deep inside torch (or a NaN after the first step)."""
    if not isinstance(model, torch.nn.Module):
        hint = (" Build it first: vgg(spec) or spec.build()." if type(model).__name__ == "ModelSpec"
                else " Build one with vgg(...).")
        raise TypeError(f"fit trains a model (a torch.nn.Module), not a {type(model).__name__}.{hint}")
    if not all(hasattr(data, name) for name in DATA_MEMBERS):
        raise TypeError(f"fit takes the data as a CIFAR10Data (data = load_cifar10()) or a "
                        f"FolderData (load_image_folder(root)), not a {type(data).__name__}.")
    for name, value in (("max_steps", max_steps), ("eval_batch_size", eval_batch_size)):
        if value is None and name == "max_steps":
            continue
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r}: use a whole number >= 1"
                             + (" (or None for the whole run)." if name == "max_steps" else "."))
    if step_callback is not None and not callable(step_callback):
        raise TypeError(f"step_callback must be a function step_callback(step, model, loss), not "
                        f"a {type(step_callback).__name__}.")
    if checkpoint_path is not None and not isinstance(checkpoint_path, (str, os.PathLike)):
        raise TypeError(f"checkpoint_path must be a file path (str or Path), not a "
                        f"{type(checkpoint_path).__name__}.")
    if protocol is not None and not isinstance(protocol, Protocol):
        raise TypeError(f"protocol={protocol!r}: use a protocol of vgg_lib.evaluation.protocols "
                        "(centre_crop(...), dense(...), ...), or None for the recipe's.")
    if recipe.schedule == "plateau" and not (eval_every_epoch and data.split_size("val")):
        raise ValueError("schedule='plateau' decides the learning rate from the validation "
                         "accuracy after every epoch, and this run has none: "
                         + ("set eval_every_epoch=True." if data.split_size("val") else
                            "load the data with a validation split (validation=5000, say)."))
    data.check(model, recipe)
    airbench.check_recipe_fits(model, data, recipe)


def fit(model, data, recipe=None, *, precision="auto", channels_last=None, compile=False,
        checkpoint_path=None, resume=False, progress=True, max_steps=None, step_callback=None,
        eval_every_epoch=True, eval_batch_size=512, test=True, distributed=None, workers=4,
        protocol=None, train_eval_images=None, **recipe_changes):
    """Train ``model`` on ``data`` (a ``CIFAR10Data`` or a ``FolderData``) with ``recipe`` (a
    ``TrainConfig``; the default one when None) and return a ``History``. Keyword arguments
    named like the recipe's fields change them for this call: ``fit(model, data,
    profile.recipe, epochs=3)``.

    The model moves to the data's device. ``precision``: "auto" (fastest on this hardware, see
    ``vgg_lib.device.resolve_precision``), "fp32", "bf16" or "fp16". ``channels_last=None``
    picks the faster layout for the device. ``compile=True`` wraps the model in
    ``torch.compile``. ``workers``: DataLoader processes decoding a folder's images (per process).

    ``checkpoint_path``: save an atomic checkpoint after every epoch, holding the weights, the
    model's ``ModelSpec`` and the recipe. ``resume=True`` continues from it when it exists (and
    starts afresh when it does not), refusing a checkpoint of another recipe, data or model
    (``ResumeMismatch``); a resumed run ends with exactly the weights of an uninterrupted one on
    the same machine. ``max_steps`` stops after that many optimiser steps in total (the schedule
    is still the one for ``epochs``), e.g. to simulate an interrupted run.
    ``step_callback(step, model, loss)`` runs after ``backward()`` and before the optimiser
    step, so gradients can be inspected (with ``whiten_first_layer``, the first layer's as
    preconditioned); steps count from 1.

    The recipe's airbench settings (``whiten_first_layer``, ``dirac_init``, ``bn_scale``,
    ``bn_bias_lr``, ``bn_momentum``, ``lookahead``, ``alternating_flip``; all off by default, see
    ``vgg_lib.training.airbench``) change how a fresh run starts and how it trains, never the
    network's architecture; what they change on the model for the run only (a gradient hook,
    frozen batch-norm scales, the batch norms' momentum) is undone when fit returns.

    Evaluation follows the book's rule: the validation split (when the data has one) after every
    epoch (``eval_every_epoch=False``: after the last one only), the test set once, when the run
    has finished (``history.test``); ``test=False`` leaves the test set alone, as tuning runs
    must. With ``schedule="plateau"`` (the paper's, ``vgg_lib.training.plateau``) the run has
    finished when the schedule ends it, its validation accuracy having stopped improving after
    the last decrease (``history.stopped_by_schedule``), or at ``epochs``, the cap.
    ``protocol``: how (default: the recipe's ``eval_scale``, ``crop``, ``tta_flip`` and
    ``tta_shift``, ``recipe_protocol``). ``train_eval_images=n`` (CIFAR's tensors): after every
    epoch also evaluate ``n`` fixed training images (class-balanced, chosen with seed 0:
    ``train_eval_data``), unaugmented, in eval mode and by the same protocol as the validation
    split (``train_eval_loss``, ``train_eval_accuracy`` in each epoch's record): how well the
    network fits its training data at the end of the epoch, unlike ``train_loss``, the running
    average over an epoch of moving weights and augmented batches. It changes nothing the run
    computes.

    A non-finite loss ends the run: ``history.diverged`` is True and ``history.status`` says
    "diverged at step N".

    ``distributed``: a ``vgg_lib.training.distributed.Distributed`` to train data-parallel under
    torchrun (``recipe.batch_size`` is then the global batch); None trains in this process.
    """
    if recipe is not None and not isinstance(recipe, TrainConfig):
        raise TypeError(f"recipe must be a TrainConfig (e.g. profile.recipe), not a "
                        f"{type(recipe).__name__}; pass single settings as keywords instead.")
    recipe = (recipe or TrainConfig()).replace(**recipe_changes)
    check_fit_inputs(model, data, recipe, max_steps=max_steps, eval_batch_size=eval_batch_size,
                     step_callback=step_callback, checkpoint_path=checkpoint_path, protocol=protocol,
                     eval_every_epoch=eval_every_epoch)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from.")
    if checkpoint_path is not None:
        check_checkpoint_folder(checkpoint_path)
    train_eval = None if train_eval_images is None else train_eval_data(data, train_eval_images)
    device = torch.device(data.device)
    model.to(device)
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    is_main = distributed is None or distributed.is_main
    progress = progress and is_main  # data parallelism: rank 0 alone shows progress and saves

    train_images = data.train_images
    # The last incomplete batch is dropped; a batch larger than the data shrinks to fit it.
    recipe = recipe.replace(batch_size=min(recipe.batch_size, train_images))
    epochs, batch_size = recipe.epochs, recipe.batch_size
    if distributed is not None:  # data parallelism: the global batch must split evenly
        distributed.check_batch_size(batch_size)
    steps_per_epoch = train_images // batch_size
    total_steps = epochs * steps_per_epoch
    protocol = protocol or recipe_protocol(recipe, data.image_size)
    config = dict(recipe.to_dict(), train_images=train_images, test_images=data.split_size("test"),
                  steps_per_epoch=steps_per_epoch, precision=precision,
                  channels_last=channels_last, device=str(device), data_source=data.source,
                  evaluation=protocol.name, **(distributed.describe() if distributed else {}))

    optimizer = make_optimizer(model, recipe)
    # The plateau schedule (the paper's) is told each epoch's validation accuracy; its state
    # travels in the scheduler's state_dict, so a resumed run goes on where it stood.
    plateau = (Plateau(steps_per_epoch, recipe.plateau_patience, recipe.plateau_decreases)
               if recipe.schedule == "plateau" else None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, plateau or partial(lr_factor, total_steps=total_steps, schedule=recipe.schedule))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator()  # data order and augmentation, on the CPU (see augment.py)
    whitening = airbench.first_layer_whitening(data) if recipe.whiten_first_layer else None
    lookahead = airbench.Lookahead(model, total_steps) if recipe.lookahead else None

    history, start_epoch, step = History(config), 0, 0
    data_generator_state = None  # a resumed run's (see training_batches below)
    stamp = None if checkpoint_path is None else dict(fingerprint=data.fingerprint(), source=data.source)
    if resume and Path(checkpoint_path).is_file():
        saved = read_checkpoint(checkpoint_path, map_location=device)
        check_resumable(saved, recipe, train_images, checkpoint_path, data=stamp, model=model)
        load_checkpoint(checkpoint_path, model, optimizer, scheduler, payload=saved)
        state = saved["training_state"]
        history = History.from_dict(saved["history"])
        history.config.update(precision=precision, channels_last=channels_last, device=str(device))
        start_epoch, step = state["epoch"], state["step"]
        scaler.load_state_dict(state["scaler"])
        data_generator_state = state["data_generator"]
        set_rng_states(state["rng"])
        if lookahead is not None:
            lookahead.average = state.get("lookahead")
    else:
        seed_everything(recipe.seed)
        airbench.initialise(model, recipe, whitening)  # dirac, whitening: after the seed
    generator.manual_seed(recipe.seed)

    # What the recipe changes on the model for this run only (airbench.run_changes: the first
    # layer's gradient hook, frozen batch-norm scales, their momentum) is undone when fit returns.
    run_scoped, bar = ExitStack(), None
    run_scoped.enter_context(airbench.run_changes(model, recipe, whitening))
    try:
        training_model = model if distributed is None else distributed.wrap(model)  # DDP
        training_model = torch.compile(training_model) if compile else training_model
        train_step = make_train_step(training_model, model, recipe, optimizer, scheduler, scaler,
                                     device, precision, history, step_callback, distributed)
        # The data draws what it keeps for the whole run (alternating flips' sides) from the
        # freshly seeded generator, in a resumed run too; a resumed run's saved state, which
        # comes after those draws, then replaces it.
        batches = data.training_batches(recipe, generator, channels_last=channels_last,
                                        share=distributed.shard if distributed else None,
                                        workers=workers)
        if data_generator_state is not None:
            generator.set_state(data_generator_state)
        validate = partial(evaluate, model, data, protocol=protocol, batch_size=eval_batch_size,
                           precision=precision, channels_last=channels_last, workers=workers,
                           distributed=distributed)
        last_step = total_steps if max_steps is None else min(total_steps, max_steps)
        bar = tqdm(total=last_step, initial=step, unit="step", dynamic_ncols=True) if progress else None
        model.train()
        for epoch in range(start_epoch, epochs):
            if step >= last_step or history.stopped_by_schedule:
                break
            epoch_batches = batches(epoch)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, started = 0, time.perf_counter()
            for _ in range(steps_per_epoch):
                if step >= last_step:
                    break
                x, labels = next(epoch_batches)
                step += 1
                done = train_step(x, labels, step)
                if done is None:
                    break
                loss, logits, loss_value = done
                if lookahead is not None:
                    lookahead.update(step)
                loss_sum += loss.detach() * len(labels)
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += len(labels)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"epoch {epoch + 1}/{epochs}, loss {loss_value:.3f}, "
                                        f"{seen / (time.perf_counter() - started):,.0f} img/s",
                                        refresh=False)
            if history.diverged:
                break
            if lookahead is not None and step == total_steps:
                lookahead.finish()  # the end of the run: the network takes the average
            if distributed is not None:  # data parallelism: totals over every rank's share
                loss_sum, correct, seen = distributed.sum(loss_sum, correct, seen)
            seconds = time.perf_counter() - started
            record = dict(epoch=epoch + 1, train_loss=(loss_sum / max(seen, 1)).item(),
                          train_accuracy=correct.item() / max(seen, 1), val_loss=None,
                          val_accuracy=None, lr=optimizer.param_groups[0]["lr"],
                          seconds=seconds, images_per_second=seen / seconds if seconds else 0.0)
            complete = seen == steps_per_epoch * batch_size
            # Per epoch the model is evaluated on the validation split only, never on the test set.
            if data.split_size("val") and (eval_every_epoch or (complete and epoch + 1 == epochs)):
                record["val_loss"], record["val_accuracy"] = validate(split="val")
            if train_eval is not None:  # the end-of-epoch fit, measured like validation
                record["train_eval_loss"], record["train_eval_accuracy"] = evaluate(
                    model, train_eval, "train", protocol=protocol, batch_size=eval_batch_size,
                    precision=precision, channels_last=channels_last, workers=workers,
                    distributed=distributed)
            history.epochs.append(record)
            if bar is not None:
                checked = record["val_accuracy"]
                bar.set_postfix_str(
                    f"epoch {epoch + 1}/{epochs}, loss {record['train_loss']:.3f}, "
                    f"train acc {record['train_accuracy']:.1%}"
                    + (f", val acc {checked:.1%}" if checked is not None else "")
                    + f", {record['images_per_second']:,.0f} img/s")
            if not complete:
                history.stopped_at_step = step
                break
            if plateau is not None and plateau.end_of_epoch(record["val_accuracy"]):
                history.stopped_by_schedule = True  # stopped improving after the last decrease
            if checkpoint_path is not None and is_main:
                save_checkpoint(checkpoint_path, model, optimizer, scheduler, history,
                                recipe=recipe,
                                training_state=dict(epoch=epoch + 1, step=step,
                                                    train_images=train_images, data=stamp,
                                                    scaler=scaler.state_dict(),
                                                    data_generator=generator.get_state(),
                                                    rng=rng_states(),
                                                    **({"lookahead": lookahead.average}
                                                       if lookahead is not None else {})))
            if history.stopped_by_schedule:
                break
        if step >= last_step and last_step < total_steps and history.stopped_at_step is None:
            history.stopped_at_step = step
        if test and history.finished and history.test is None and data.split_size("test"):
            # The test set, once per run, at its end: it reports the run and decides nothing.
            test_loss, test_accuracy = validate(split="test")
            history.test = dict(loss=test_loss, accuracy=test_accuracy)
            if bar is not None:
                bar.set_postfix_str(bar.postfix + f", test acc {test_accuracy:.1%}")
    finally:
        if bar is not None:
            bar.close()
        run_scoped.close()
    return history


def train_eval_data(data, images):
    """The fixed training images ``fit(..., train_eval_images=images)`` evaluates after every
    epoch, as a data object whose training split they are: ``images`` of them, class-balanced,
    chosen with seed 0 (the same for every run on the same data; ``training_subset``)."""
    if not isinstance(images, numbers.Integral) or isinstance(images, bool) or images < 1:
        raise ValueError(f"train_eval_images={images!r}: use a whole number >= 1 (or None).")
    if not hasattr(data, "x_train"):
        raise ValueError(f"train_eval_images works on CIFAR's tensors (a CIFAR10Data), not on a "
                         f"{type(data).__name__}: leave it None for a folder of images.")
    if images > data.train_images:
        raise ValueError(f"train_eval_images={images:,} but the data has {data.train_images:,} "
                         "training images: ask for at most that many.")
    return training_subset(data, images, seed=0)


def make_train_step(training_model, model, recipe, optimizer, scheduler, scaler, device, precision,
                    history, step_callback=None, distributed=None):
    """The optimiser step of ``fit``.

    ``train_step(x, labels, step)`` runs the forward pass under ``precision``, records the loss
    in ``history.steps``, and either marks the run diverged and returns None (a non-finite loss:
    no update is applied) or back-propagates, calls ``step_callback(step, model, loss)`` on the
    true gradients, steps the optimiser and the schedule and returns ``(loss, logits, loss
    value)`` for the epoch's totals."""
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def train_step(x, labels, step):
        with autocast(device, precision):
            logits = training_model(x)
            loss = loss_fn(logits.float(), labels)
        # data parallelism: the global batch's mean loss, so all ranks stop together
        loss_value = loss.item() if distributed is None else distributed.mean(loss).item()
        history.steps.append(loss_value)
        if not math.isfinite(loss_value):
            history.diverged, history.diverged_at_step = True, step
            return None
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if step_callback is not None:
            scaler.unscale_(optimizer)  # the callback sees the true gradients
            step_callback(step, model, loss_value)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        return loss, logits, loss_value

    return train_step
