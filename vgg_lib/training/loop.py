"""``fit``: the training loop of the book, with the whole dataset on the training device.

Each step indexes a batch out of the uint8 image tensor, augments it with one gather
(``vgg_lib.training.augment``), normalises it and runs SGD with momentum (the paper's optimiser) under
mixed precision where the hardware gains from it. No DataLoader, no worker processes, no PIL:
on a GPU the data never leaves it, on a CPU no core is spent decoding images.
"""

import math
import numbers
import os
import time
import warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from ..device import autocast, default_channels_last, resolve_precision
from .augment import random_crop_flip, random_scale_crop_flip
from .checkpoint import (CheckpointError, ResumeMismatch, check_checkpoint_folder,
                         check_training_state, load_checkpoint, read_checkpoint, save_checkpoint,
                         TRAINING_STATE_KEYS)
from .data import balanced_subset, check_normalisation, data_fingerprint
from .history import History
from .recipe import SCHEDULES, TrainConfig
from .reproducibility import rng_states, seed_everything, set_rng_states


# --- learning-rate schedules ----------------------------------------------------------------

def lr_factor(step, total_steps, schedule="onecycle"):
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    onecycle: linear warm-up from 1/25 of the peak over the first 25% of the steps, then linear
    decay to zero. cosine: linear warm-up over the first 5%, then half a cosine down to zero.
    constant: always 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "onecycle":
        warmup = max(1, round(0.25 * total_steps))
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    if schedule == "cosine":
        warmup = max(1, round(0.05 * total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    raise ValueError(f"schedule={schedule!r}; choose one of {', '.join(SCHEDULES)}.")


def make_optimizer(model, recipe):
    """The recipe's optimiser, with weight decay on weights only, not on biases or BatchNorm
    parameters. ``sgd``: SGD with momentum (the paper's; ``nesterov=True`` for Nesterov's
    variant). ``adam``: Adam (Kingma & Ba, 2015) with PyTorch's default betas; its weight decay is
    the L2 term added to the gradient, as in ``torch.optim.Adam``; momentum and nesterov unused."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)


# --- evaluation -----------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, data, batch_size=512, tta_flip=False, split="test", precision="auto",
             channels_last=None, indices=None):
    """(mean cross-entropy, accuracy) of ``model`` on the split ``split`` of ``data``: "test",
    "val" (the validation split) or "train"; ``indices``: only those images of the split.

    ``tta_flip=True`` averages the logits of each image and its mirror image (test-time
    augmentation), which costs a second forward pass and usually adds a little accuracy."""
    images, labels = data.split(split)
    if indices is not None:
        indices = torch.as_tensor(indices, device=images.device)
        images, labels = images.index_select(0, indices), labels.index_select(0, indices)
    device = images.device
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    try:
        for start in range(0, len(images), batch_size):
            x = data.normalize(images[start:start + batch_size], channels_last=channels_last)
            y = labels[start:start + batch_size]
            with autocast(device, precision):
                logits = model(x).float()
                if tta_flip:
                    logits = (logits + model(x.flip(3)).float()) / 2
            total_loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    return total_loss.item() / len(images), correct.item() / len(images)


# --- the loop -------------------------------------------------------------------------------

def _check_resumable(saved, recipe, train_images, path, fingerprint=None, model=None,
                     required=TRAINING_STATE_KEYS):
    check_training_state(saved, path, required)
    try:
        stored = TrainConfig.from_dict(saved["recipe"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"The recipe stored in {path} is not readable ({error}); delete "
                              "the checkpoint to start a new run.") from error
    state = saved["training_state"]
    done = state["epoch"]
    if not isinstance(done, int) or not 0 <= done <= stored.epochs:
        raise CheckpointError(f"{path} says it has trained {done!r} epochs of a "
                              f"{stored.epochs}-epoch run, which cannot be; the file is damaged. "
                              "Delete it to start a new run.")
    new_run = "delete the checkpoint (or pass another checkpoint_path) to start a new run"
    if stored.epochs != recipe.epochs:
        raise ResumeMismatch(
            f"Cannot resume from {path}: it has trained {done} epoch{'' if done == 1 else 's'} "
            f"of a {stored.epochs}-epoch run, "
            f"and this call asks for epochs={recipe.epochs}. The learning-rate schedule spans "
            f"all of a run's epochs, so a run cannot be lengthened or shortened: call fit with "
            f"epochs={stored.epochs} to finish it, load its weights with load_model(path) to use "
            f"them, or {new_run}.")
    differences = [f"{name}: checkpoint {getattr(stored, name)!r} vs now {getattr(recipe, name)!r}"
                   for name in recipe.differences(stored)]
    stored_images = state.get("train_images")
    if stored_images != train_images:
        differences.append(f"train_images: checkpoint {stored_images!r} vs now {train_images!r}")
    if differences:
        raise ResumeMismatch(
            f"Cannot resume from {path}: it belongs to a run with another recipe ("
            + "; ".join(differences) + f"). Call fit with the same recipe, or {new_run}."
        )
    stored_data = state.get("data")
    if stored_data is not None and not isinstance(stored_data, dict):
        raise CheckpointError(f"{path} has a damaged data fingerprint ({stored_data!r}); delete it "
                              "to start a new run.")
    if fingerprint is not None and stored_data is None:
        warnings.warn(f"{path} was written before checkpoints recorded their training data, so "
                      "resuming cannot check that this is the same data; it is resumed on trust.",
                      stacklevel=3)
    elif fingerprint is not None and stored_data.get("sha256") != fingerprint["sha256"]:
        raise ResumeMismatch(
            f"Cannot resume from {path}: it was trained on other images ({stored_data.get('source')}"
            f", {stored_data.get('train_images')} training images, fingerprint "
            f"{stored_data.get('sha256')}) than the data given now ({fingerprint['source']}, "
            f"{fingerprint['train_images']} images, fingerprint {fingerprint['sha256']}): another "
            "file, subset or seed. Load the same data (same VGG_CIFAR10_NPZ, train_subset and "
            f"seed), or {new_run}.")
    spec, stored_spec = getattr(model, "spec", None), saved.get("model_spec")
    if spec is not None and stored_spec:
        changed = [f"{k}: checkpoint {v!r} vs now {getattr(spec, k, None)!r}"
                   for k, v in stored_spec.items() if getattr(spec, k, None) != v]
        if changed:
            raise ResumeMismatch(f"Cannot resume from {path}: it was trained with another model "
                                 f"({'; '.join(changed)}). Build the model with the checkpoint's "
                                 f"settings, or {new_run}.")


def check_fit_inputs(model, data, *, max_steps=None, eval_batch_size=512, step_callback=None,
                     checkpoint_path=None):
    """Before anything is trained: a clear error for what ``fit`` cannot use, instead of a
    failure deep inside torch (or a NaN after the first step)."""
    if not isinstance(model, torch.nn.Module):
        hint = (" Build it first: vgg(spec) or spec.build()." if type(model).__name__ == "ModelSpec"
                else " Build one with vgg(...).")
        raise TypeError(f"fit trains a model (a torch.nn.Module), not a {type(model).__name__}.{hint}")
    if not all(hasattr(data, name) for name in ("x_train", "y_train", "x_test", "y_test", "normalize")):
        raise TypeError(f"fit takes the data as a CIFAR10Data (data = load_cifar10()), not a "
                        f"{type(data).__name__}.")
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
    check_normalisation(data.mean, data.std, "this data (its mean and std)")
    images, labels = data.x_train, data.y_train
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"data.x_train is a {images.dtype} tensor of shape {tuple(images.shape)}; "
                         "fit expects uint8 images of shape (N, C, H, W), as load_cifar10 gives.")
    if len(labels) != len(images) or len(labels) == 0:
        raise ValueError(f"data has {len(images)} training images and {len(labels)} labels; "
                         "fit needs one label per image, and at least one image.")
    highest = int(labels.max())
    spec = getattr(model, "spec", None)
    if spec is not None and highest >= spec.num_classes:
        raise ValueError(f"The labels go up to {highest}, but the model has {spec.num_classes} "
                         f"outputs (num_classes={spec.num_classes}); build it with "
                         f"num_classes={max(highest + 1, len(getattr(data, 'classes', None) or ()))}.")
    if spec is not None and images.shape[1] != spec.in_channels:
        raise ValueError(f"The images have {images.shape[1]} channels but the model takes "
                         f"{spec.in_channels} (in_channels={spec.in_channels}).")
    if getattr(data, "classes", None) is not None and len(data.classes) <= highest:
        raise ValueError(f"data.classes names {len(data.classes)} classes but the labels go up to "
                         f"{highest}; give one name per label.")


def fit(model, data, recipe=None, *, precision="auto", channels_last=None, compile=False,
        checkpoint_path=None, resume=False, progress=True, max_steps=None, step_callback=None,
        eval_every_epoch=True, eval_batch_size=512, test=True, distributed=None,
        train_eval_images=None, **recipe_changes):
    """Train ``model`` on ``data`` (a ``CIFAR10Data``) with ``recipe`` (a ``TrainConfig``; the
    default one when None) and return a ``History``. Keyword arguments named like the recipe's
    fields change them for this call: ``fit(model, data, profile.recipe, epochs=3)``.

    The model moves to the data's device. ``precision``: "auto" (fastest on this hardware, see
    ``vgg_lib.device.resolve_precision``), "fp32", "bf16" or "fp16". ``channels_last=None``
    picks the faster layout for the device. ``compile=True`` wraps the model in
    ``torch.compile``.

    ``checkpoint_path``: save an atomic checkpoint after every epoch, holding the weights, the
    model's ``ModelSpec`` and the recipe. ``resume=True`` continues from it when it exists (and
    starts afresh when it does not), refusing a checkpoint of another recipe; a resumed run ends
    with exactly the weights of an uninterrupted one on the same machine. ``max_steps`` stops
    after that many optimiser steps in total (the schedule is still the one for ``epochs``), e.g.
    to simulate an interrupted run. ``step_callback(step, model, loss)`` runs after
    ``backward()`` and before the optimiser step, so gradients can be inspected; steps count
    from 1.

    Evaluation follows the book's rule: the validation split (``data.x_val``, when it has one)
    after every epoch (``eval_every_epoch=False``: after the last one only), the test set once,
    when the run has finished (``history.test``); ``test=False`` leaves the test set alone, as
    tuning runs must. ``train_eval_images=n``: after every epoch also evaluate ``n`` fixed
    training images (class-balanced, ``train_eval_indices``), unaugmented and in eval mode, as
    the validation split is (``train_eval_loss``, ``train_eval_accuracy`` in each epoch's
    record): how well the network fits its training data at the end of the epoch, unlike
    ``train_loss``, the running average over an epoch of moving weights and augmented batches.
    It changes nothing the run computes.

    A non-finite loss ends the run: ``history.diverged`` is True and ``history.status`` says
    "diverged at step N".

    ``distributed``: a ``vgg_lib.training.distributed.Distributed`` to train data-parallel under
    torchrun (``recipe.batch_size`` is then the global batch); None trains in this process.
    """
    if recipe is not None and not isinstance(recipe, TrainConfig):
        raise TypeError(f"recipe must be a TrainConfig (e.g. profile.recipe), not a "
                        f"{type(recipe).__name__}; pass single settings as keywords instead.")
    recipe = (recipe or TrainConfig()).replace(**recipe_changes)
    check_fit_inputs(model, data, max_steps=max_steps, eval_batch_size=eval_batch_size,
                     step_callback=step_callback, checkpoint_path=checkpoint_path)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from.")
    if checkpoint_path is not None:
        check_checkpoint_folder(checkpoint_path)
    if recipe.scale_jitter is not None and recipe.scale_jitter[0] < data.x_train.shape[-1]:
        raise ValueError(f"scale_jitter={recipe.scale_jitter}: the smallest scale must be at least "
                         f"the images' {data.x_train.shape[-1]} pixels (the crops keep that size), "
                         f"e.g. scale_jitter=({data.x_train.shape[-1]}, "
                         f"{data.x_train.shape[-1] * 3 // 2}).")
    if recipe.scale_jitter is not None and distributed is not None:
        raise ValueError("scale_jitter is not implemented for data-parallel runs yet: train in "
                         "one process, or set scale_jitter=None.")
    device = data.x_train.device
    train_eval = None if train_eval_images is None else train_eval_indices(data, train_eval_images)
    model.to(device)
    precision = resolve_precision(precision, device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)

    # --- data parallelism (training/distributed.py): rank 0 alone shows progress and saves ---
    if distributed is not None:
        progress = progress and distributed.is_main
    # ---
    train_images = len(data.x_train)
    # The last incomplete batch is dropped; a batch larger than the data shrinks to fit it.
    recipe = recipe.replace(batch_size=min(recipe.batch_size, train_images))
    epochs, batch_size, tta_flip = recipe.epochs, recipe.batch_size, recipe.tta_flip
    steps_per_epoch = train_images // batch_size
    total_steps = epochs * steps_per_epoch
    config = dict(recipe.to_dict(), train_images=train_images, test_images=len(data.x_test),
                  steps_per_epoch=steps_per_epoch, precision=precision,
                  channels_last=channels_last, device=str(device), data_source=data.source)
    if distributed is not None:  # data parallelism: the global batch must split evenly
        distributed.check_batch_size(batch_size)
        config.update(distributed.describe())

    optimizer = make_optimizer(model, recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total_steps=total_steps, schedule=recipe.schedule))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator()  # data order and augmentation, on the CPU (see augment.py)

    history, start_epoch, step = History(config), 0, 0
    fingerprint = data_fingerprint(data) if checkpoint_path is not None else None
    if resume and Path(checkpoint_path).is_file():
        saved = read_checkpoint(checkpoint_path, map_location=device)
        _check_resumable(saved, recipe, train_images, checkpoint_path,
                         fingerprint=fingerprint, model=model)
        load_checkpoint(checkpoint_path, model, optimizer, scheduler, payload=saved)
        state = saved["training_state"]
        history = History.from_dict(saved["history"])
        history.config.update(precision=precision, channels_last=channels_last, device=str(device))
        start_epoch, step = state["epoch"], state["step"]
        scaler.load_state_dict(state["scaler"])
        generator.set_state(state["data_generator"])
        set_rng_states(state["rng"])
    else:
        seed_everything(recipe.seed)
        generator.manual_seed(recipe.seed)

    training_model = model if distributed is None else distributed.wrap(model)  # DDP
    training_model = torch.compile(training_model) if compile else training_model
    train_step = make_train_step(training_model, model, recipe, optimizer, scheduler, scaler, device,
                                 precision, history, step_callback, distributed)
    last_step = total_steps if max_steps is None else min(total_steps, max_steps)
    bar = _progress_bar(progress, last_step, step)
    model.train()
    try:
        for epoch in range(start_epoch, epochs):
            if step >= last_step:
                break
            order = torch.randperm(train_images, generator=generator).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen, started = 0, time.perf_counter()
            for i in range(steps_per_epoch):
                if step >= last_step:
                    break
                index = order[i * batch_size:(i + 1) * batch_size]
                if distributed is not None:  # this rank's share of the global batch
                    images, labels = distributed.local_batch(data, index, recipe, generator)
                    x = data.normalize(images, channels_last=channels_last)
                else:
                    x, labels = training_batch(data, index, recipe, generator, channels_last)
                step += 1
                done = train_step(x, labels, step)
                if done is None:
                    break
                loss, logits, loss_value = done
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
            if distributed is not None:  # data parallelism: totals over every rank's share
                loss_sum, correct, seen = distributed.sum(loss_sum, correct, seen)
            seconds = time.perf_counter() - started
            record = dict(epoch=epoch + 1, train_loss=(loss_sum / max(seen, 1)).item(),
                          train_accuracy=correct.item() / max(seen, 1), val_loss=None,
                          val_accuracy=None, lr=optimizer.param_groups[0]["lr"],
                          seconds=seconds, images_per_second=seen / seconds if seconds else 0.0)
            complete = seen == steps_per_epoch * batch_size
            # Per epoch the model is evaluated on the validation split only, never on the test set.
            if len(data.x_val) and (eval_every_epoch or (complete and epoch + 1 == epochs)):
                record["val_loss"], record["val_accuracy"] = evaluate(
                    model, data, eval_batch_size, tta_flip=tta_flip, split="val",
                    precision=precision, channels_last=channels_last)
            if train_eval is not None:  # the end-of-epoch fit, measured like validation
                record["train_eval_loss"], record["train_eval_accuracy"] = evaluate(
                    model, data, eval_batch_size, tta_flip=tta_flip, split="train",
                    precision=precision, channels_last=channels_last, indices=train_eval)
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
            if checkpoint_path is not None and (distributed is None or distributed.is_main):
                save_checkpoint(checkpoint_path, model, optimizer, scheduler, history,
                                recipe=recipe,
                                training_state=dict(epoch=epoch + 1, step=step,
                                                    train_images=train_images,
                                                    data=fingerprint,
                                                    scaler=scaler.state_dict(),
                                                    data_generator=generator.get_state(),
                                                    rng=rng_states()))
        if step >= last_step and last_step < total_steps and history.stopped_at_step is None:
            history.stopped_at_step = step
        if test and history.finished and history.test is None:
            # The test set, once per run, at its end: it reports the run and decides nothing.
            test_loss, test_accuracy = evaluate(model, data, eval_batch_size, tta_flip=tta_flip,
                                                split="test", precision=precision,
                                                channels_last=channels_last)
            history.test = dict(loss=test_loss, accuracy=test_accuracy)
            if bar is not None:
                bar.set_postfix_str(bar.postfix + f", test acc {test_accuracy:.1%}")
    finally:
        if bar is not None:
            bar.close()
    return history


def train_eval_indices(data, images):
    """The fixed training images ``fit(..., train_eval_images=images)`` evaluates after every
    epoch: ``images`` of them, class-balanced, chosen with seed 0 (the same for every run on
    the same data)."""
    if not isinstance(images, numbers.Integral) or isinstance(images, bool) or images < 1:
        raise ValueError(f"train_eval_images={images!r}: use a whole number >= 1 (or None).")
    labels = data.y_train.detach().cpu().numpy()
    if images > len(labels):
        raise ValueError(f"train_eval_images={images:,} but the data has {len(labels):,} "
                         "training images: ask for at most that many.")
    return torch.from_numpy(balanced_subset(labels, images, seed=0))


def training_batch(data, index, recipe, generator, channels_last=False):
    """(normalised images, labels) of one training batch: the training images of ``data`` at
    ``index``, augmented as ``recipe`` says with random numbers from ``generator``. This is the
    whole data path of ``fit`` on one process (``benchmarks/training_speed.py`` times it).
    ``index_select`` rather than ``x_train[index]``: the same images, but on the book's 2-core
    test machine 0.015 ms instead of 0.28 ms for a batch of 128."""
    images, labels = data.x_train.index_select(0, index), data.y_train.index_select(0, index)
    if recipe.augment and recipe.scale_jitter is not None:
        images = random_scale_crop_flip(images, *recipe.scale_jitter, generator=generator)
    elif recipe.augment:
        images = random_crop_flip(images, padding=recipe.crop_padding, generator=generator,
                                  channels_last=channels_last)
    return data.normalize(images, channels_last=channels_last), labels


def make_train_step(training_model, model, recipe, optimizer, scheduler, scaler, device, precision,
                    history, step_callback=None, distributed=None):
    """The optimiser step both training loops share (``fit`` and the ImageFolder loop).

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


def _progress_bar(progress, total, initial):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
