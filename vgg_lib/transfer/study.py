"""Chapter 11's experiments, seed by seed, resumable.

For every seed: pretrain the network on the source task (the six animals); keep its untrained
twin (the same initial weights, never trained: the random-features control); pool every block's
features for the target task (the four vehicles); fit a linear probe per block, network and label
budget; fine-tune the pretrained network, and train its untrained twin from scratch, at every
budget. A finished seed is one JSON file (and its pretrained network one checkpoint) in the
study's folder; run again, the study reads them and trains only the seeds that are missing. A
stored file written with other settings or data is an error that names what differs.
"""

import json
import time
from pathlib import Path

import torch

from ..atomic_write import write_atomically
from ..experiments.runs import RecordError, differences
from ..experiments.studies import study_folder as named_study_folder
from ..training.checkpoint import load_model, save_checkpoint
from ..training.cifar10 import load_cifar10
from ..training.loop import fit
from ..training.reproducibility import seed_everything
from .features import pooled_block_features
from .fine_tuning import from_scratch, with_new_head
from .probes import choose_probe
from .split import SOURCE_CLASSES, TARGET_CLASSES, class_split, labelled_indices, labelled_subset

RESULT_FORMAT = "vgg_lib.transfer-seed/1"
PIXELS = "pixels"   # the probe on each image's mean colour: "block 0" of the chapter's plots


def load_tasks(settings, device="cpu"):
    """(source, target): CIFAR-10 split into the six animals and the four vehicles, each with
    its validation split; the target carries the source's normalisation."""
    data = load_cifar10(**settings.data_kwargs(device))
    source = class_split(data, SOURCE_CLASSES)
    return source, class_split(data, TARGET_CLASSES, source.mean, source.std)


def budget_name(budget):
    """"10", "100" or "all": a label budget as the tables and files name it."""
    return "all" if budget is None else str(budget)


def pretrain(settings, source, seed, step_callback=None):
    """The source network of ``seed``: ``settings.spec`` trained on ``source`` with
    ``settings.recipe``. Returns (model in evaluation mode, history); the source's test set
    is evaluated once, at the end."""
    model = untrained_twin(settings, seed).train()
    history = fit(model, source, settings.recipe.replace(seed=seed),
                  precision=settings.precision, progress=False, eval_every_epoch=False,
                  step_callback=step_callback)
    return model.eval(), history


def untrained_twin(settings, seed):
    """The random-features control: the network of ``seed`` as it was before pretraining."""
    seed_everything(seed)
    return settings.spec.build().eval()


def block_features(model, target):
    """``{split: {layer: (N, C)}}`` for the target's training, validation and test images: the
    images' mean colour (``PIXELS``) and every block's pooled features."""
    found = {}
    for split in ("train", "val", "test"):
        images, _ = target.split(split)
        found[split] = {PIXELS: images.float().mean(dim=(2, 3)).cpu() / 255,
                        **pooled_block_features(model, images, target.normalize)}
    return found


def probe_rows(features, target, budgets, seed, l2_grid, network):
    """One row per layer and budget: the probe's network ("trained", "random", or "none" for
    the pixels), layer, budget, chosen penalty, validation and test accuracy."""
    labels = {split: target.split(split)[1].cpu() for split in ("train", "val", "test")}
    rows = []
    for budget in budgets:
        index = labelled_indices(target, budget, seed).cpu()
        for layer, train in features["train"].items():
            if network != "trained" and layer == PIXELS:
                continue  # the pixels do not depend on the network: probed once
            probe = choose_probe(train[index], labels["train"][index], features["val"][layer],
                                 labels["val"], len(target.classes), l2_grid)
            rows.append(dict(network="none" if layer == PIXELS else network, layer=layer,
                             budget=budget_name(budget), l2=probe.l2,
                             val=probe.validation[probe.l2],
                             test=probe.accuracy(features["test"][layer], labels["test"])))
    return rows


def training_rows(pretrained, target, settings, seed, step_callback=None):
    """Fine-tuning ``pretrained`` and training its untrained twin from scratch, at every label
    budget: one row each (method, budget, validation and test accuracy, seconds)."""
    rows = []
    for budget in settings.budgets:
        data = labelled_subset(target, budget, seed)
        for method in ("fine-tune", "scratch"):
            if method == "fine-tune":
                model = with_new_head(pretrained, len(target.classes), seed)
                recipe = settings.fine_tune[budget]
            else:
                model = from_scratch(settings.spec, len(target.classes), seed)
                recipe = settings.scratch[budget]
            started = time.perf_counter()
            history = fit(model, data, recipe.replace(seed=seed), precision=settings.precision,
                          progress=False, eval_every_epoch=False, step_callback=step_callback)
            rows.append(dict(method=method, budget=budget_name(budget),
                             val=history.final_val_accuracy, test=history.final_test_accuracy,
                             seconds=time.perf_counter() - started,
                             images_seen=len(history.steps) * history.config["batch_size"]))
    return rows


def steps_to_train(settings, source, target):
    """Optimiser steps of one seed: pretraining, and fine-tuning and scratch at every budget
    (``fit`` drops an incomplete last batch; a batch larger than the images shrinks to them)."""
    def steps(recipe, images):
        return recipe.epochs * (images // min(recipe.batch_size, images))

    total = steps(settings.recipe, len(source.y_train))
    for budget in settings.budgets:
        images = len(target.y_train) if budget is None else budget * len(target.classes)
        total += steps(settings.fine_tune[budget], images) + steps(settings.scratch[budget], images)
    return total


def fingerprint(settings, source, target):
    """What decides a seed's results: the settings and both tasks' training images."""
    return {"settings": settings.seed_fields(), "source": source.fingerprint(),
            "target": target.fingerprint()}


def study_folder(settings):
    """``<checkpoint folder>/studies/transfer-<settings.name>``."""
    return named_study_folder(f"transfer-{settings.name}")


def read_seed(path, wanted):
    """The stored result of one seed, or None when there is no file; ``RecordError`` when
    the file is unreadable or was computed with other settings or data."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("format") != RESULT_FORMAT:
            raise ValueError(f"format {stored.get('format')!r}, not {RESULT_FORMAT!r}")
        result, found = stored["result"], stored["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise RecordError(f"{path} is not a readable result of this study ({error}). Delete "
                          "it to compute that seed again.") from error
    found = differences(found, json.loads(json.dumps(wanted)))  # tuples -> lists, as stored
    if found:
        raise RecordError(f"{path} was computed with other settings or data ("
                          + "; ".join(found[:5]) + ("; ..." if len(found) > 5 else "")
                          + "). Delete it (and its checkpoint) to compute that seed again, or "
                          "give the study another folder.")
    return result


def run_seed(settings, source, target, seed, folder, step_callback=None):
    """Everything of one seed (see the module's docstring), stored in ``folder``; returns the
    result: ``{"seed", "source", "probes", "training", "seconds"}``."""
    folder = Path(folder)
    started = time.perf_counter()
    trained, history = pretrain(settings, source, seed, step_callback)
    save_checkpoint(folder / f"source_seed{seed}.pt", trained, history=history,
                    recipe=settings.recipe.replace(seed=seed))
    probes = []
    for network, model in (("trained", trained), ("random", untrained_twin(settings, seed))):
        features = block_features(model, target)
        probes += probe_rows(features, target, settings.budgets, seed, settings.l2_grid, network)
    result = dict(seed=seed, probes=probes,
                  source=dict(test=history.final_test_accuracy, val=history.final_val_accuracy,
                              seconds=sum(e["seconds"] for e in history.epochs)),
                  training=training_rows(trained, target, settings, seed, step_callback))
    result["seconds"] = time.perf_counter() - started
    result["threads"] = torch.get_num_threads()
    text = json.dumps({"format": RESULT_FORMAT, "fingerprint": fingerprint(settings, source, target),
                       "result": result}, indent=1, sort_keys=True)
    write_atomically(folder / f"seed{seed}.json", lambda handle: handle.write(text.encode("utf-8")))
    return result


def run_transfer_study(settings, source, target, folder=None, progress=True):
    """Every seed of ``settings``: read from ``folder`` (default ``study_folder(settings)``)
    when stored, computed otherwise. Every stored file is checked before anything trains.
    Returns the seeds' results in the order of ``settings.seeds``."""
    folder = Path(folder) if folder is not None else study_folder(settings)
    wanted = fingerprint(settings, source, target)
    stored = {seed: read_seed(folder / f"seed{seed}.json", wanted) for seed in settings.seeds}
    missing = [seed for seed in settings.seeds if stored[seed] is None]
    bar = None
    if progress and missing:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing) * steps_to_train(settings, source, target), unit="step",
                   mininterval=1.0, dynamic_ncols=True,
                   desc=f"{len(missing)} of {len(settings.seeds)} seeds to compute")
    try:
        for seed in missing:
            callback = None if bar is None else (lambda step, model, loss: bar.update(1))
            stored[seed] = run_seed(settings, source, target, seed, folder, callback)
    finally:
        if bar is not None:
            bar.close()
    return [stored[seed] for seed in settings.seeds]


def pretrained_network(settings, seed, folder=None, device="cpu"):
    """The pretrained source network of ``seed``, from the study's folder."""
    folder = Path(folder) if folder is not None else study_folder(settings)
    return load_model(folder / f"source_seed{seed}.pt", device).eval()


def stored_seeds(settings, folder=None):
    """The seeds of ``settings`` whose result file is in ``folder`` (not yet checked)."""
    folder = Path(folder) if folder is not None else study_folder(settings)
    return [seed for seed in settings.seeds if (folder / f"seed{seed}.json").is_file()]
