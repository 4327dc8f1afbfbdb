"""Chapter 11's experiments, seed by seed, resumable.

For every seed: pretrain the network on the source task (the six animals); keep its untrained
twin (the same initial weights, never trained: the random-features control); pool every block's
features for the target task (the four vehicles); fit a linear probe per block, network and label
budget; fine-tune the pretrained network, and train its untrained twin from scratch, at every
budget. A finished seed is one run record (``vgg_lib.experiments.runs``: the pretraining is the
seed's training run, its identity also names the target task and the settings the derived numbers
depend on, and the probes and target runs are stored in its metrics as numbers derived from the
pretrained network, with a digest of its weights) and one checkpoint of that network
(``source_seed<N>.pt``), in the study's folder; run again, the study reads them and trains only
the seeds that are missing. A stored record of other settings or data is a ``RecordError`` that
names what differs, raised before anything trains.

The book ships the quick settings' seeds, records and networks, in ``results/transfer-quick/``
(``runs.shipped_folder``; ``make results CHAPTER=11`` makes them): a seed is read from there
first, then from the study's folder, and computed only when neither has it. A shipped record of
another run, or one without its network, is reported and not used (the seed is computed);
``VGG_RECORDS=off`` and an installed vgg_lib (Colab) read none.
"""

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..experiments.networks import DIGEST, load_network, save_network
from ..experiments.provenance import Provenance
from ..experiments.runs import (Stopwatch, find_record, identity, make_record, record_path,
                                shipped_for, shipped_record, shipped_records_on, write_record)
from ..experiments.studies import study_folder as named_study_folder
from ..training.cifar10 import load_cifar10
from ..training.loop import fit
from ..training.reproducibility import seed_everything
from .features import pooled_block_features
from .fine_tuning import from_scratch, with_new_head
from .probes import choose_probe
from .split import SOURCE_CLASSES, TARGET_CLASSES, class_split, labelled_indices, labelled_subset

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


def seed_identity(settings, source, target, seed):
    """What decides a seed's results: the pretraining run (network, recipe with ``seed``, source
    images) and the settings of everything derived from it (``transfer``), with the target
    task's images; as stored (tuples as lists)."""
    transfer = {k: v for k, v in settings.seed_fields().items()
                if k not in ("spec", "recipe", "train_images")}
    wanted = dict(identity("transfer", settings.spec, settings.recipe.replace(seed=seed),
                           settings.train_images, source),
                  transfer=transfer, target=target.fingerprint())
    return json.loads(json.dumps(wanted))


def study_name(settings):
    """The study's name: ``transfer-<settings.name>`` (its folders are named so)."""
    return f"transfer-{settings.name}"


def study_folder(settings):
    """``<checkpoint folder>/studies/transfer-<settings.name>``."""
    return named_study_folder(study_name(settings))


def network_path(folder, seed):
    """Where the pretrained network of ``seed`` is kept beside its record."""
    return Path(folder) / f"source_seed{seed}.pt"


def seed_record(settings, source, target, seed, folder, step_callback=None):
    """Everything of one seed (see the module's docstring) as its run record; the pretrained
    network is saved in ``folder`` (its history is the record's)."""
    with Stopwatch() as watch:
        trained, history = pretrain(settings, source, seed, step_callback)
        digest = save_network(network_path(folder, seed), trained, settings.recipe.replace(seed=seed))
        probes = []
        for network, model in (("trained", trained), ("random", untrained_twin(settings, seed))):
            features = block_features(model, target)
            probes += probe_rows(features, target, settings.budgets, seed, settings.l2_grid, network)
        training = training_rows(trained, target, settings, seed, step_callback)
    return make_record(seed_identity(settings, source, target, seed), history,
                       seconds=watch.seconds, cpu_seconds=watch.cpu_seconds, model=trained,
                       derived={"probes": probes, "training": training,
                                "source_val_accuracy": history.final_val_accuracy,
                                DIGEST: digest})


def seed_result(record, origin="stored", folder=None):
    """A seed's numbers as the chapter reads them: ``{"seed", "source", "probes", "training",
    "seconds", "threads"}``, with where they came from: ``origin`` ("shipped", "stored" or
    "trained", as ``experiments.provenance`` counts them), ``record`` (the ``RunRecord``) and
    ``network`` (the path of its pretrained network, in ``folder``)."""
    metrics = record.metrics
    return dict(seed=record.seed, probes=metrics["probes"], training=metrics["training"],
                source=dict(test=metrics["test_accuracy"], val=metrics["source_val_accuracy"],
                            seconds=metrics["train_seconds"]),
                seconds=record.seconds, threads=record.threads, origin=origin, record=record,
                network=None if folder is None else str(network_path(folder, record.seed)))


def seed_record_name(seed):
    """The name of a seed's record in the study's folder: ``seed<seed>`` (``seed<seed>.json``)."""
    return f"seed{seed}"


def shipped_seed(shipped, settings, seed, wanted):
    """``(record, "shipped")`` when the folder ``shipped`` holds the record of ``seed`` of these
    settings (``wanted``: its identity) and the network it was derived from; else None, saying
    why when the folder has a record of the seed that cannot be used."""
    found = shipped_record(shipped, seed_record_name(seed), wanted, settings.precision)
    if found is None:
        return None
    path = network_path(shipped, seed)
    if not path.is_file():
        print(f"Not using the shipped record {shipped.name}/{seed_record_name(seed)}.json: its "
              f"network {path.name} is not beside it; computing the seed instead.")
        return None
    return found


def run_transfer_study(settings, source, target, folder=None, progress=True, shipped="auto"):
    """Every seed of ``settings``: read from the records the book ships (``shipped``, read
    only; "auto": ``runs.shipped_for(folder)``, i.e. ``results/transfer-<name>/`` for the study's
    default folder; ``VGG_RECORDS=off``: none), else from ``folder`` (default
    ``study_folder(settings)``) when stored, computed into ``folder`` otherwise. Every stored
    file is checked before anything trains. Returns the seeds' results (``seed_result``) in the
    order of ``settings.seeds``."""
    folder = Path(folder) if folder is not None else study_folder(settings)
    shipped = shipped_for(folder) if isinstance(shipped, str) and shipped == "auto" else shipped
    shipped = Path(shipped) if shipped is not None and shipped_records_on() else None
    stored = {}
    for seed in settings.seeds:
        wanted = seed_identity(settings, source, target, seed)
        found = shipped_seed(shipped, settings, seed, wanted)
        if found is None:
            record = find_record(folder, seed_record_name(seed), wanted, settings.precision)
            found = None if record is None else (record, "stored")
        stored[seed] = found
    missing = [seed for seed in settings.seeds if stored[seed] is None]
    bar = None
    if progress and missing:
        bar = tqdm(total=len(missing) * steps_to_train(settings, source, target), unit="step",
                   mininterval=1.0, dynamic_ncols=True,
                   desc=f"{len(missing)} of {len(settings.seeds)} seeds to compute")
    try:
        for seed in missing:
            callback = None if bar is None else (lambda step, model, loss: bar.update(1))
            record = seed_record(settings, source, target, seed, folder, callback)
            write_record(record_path(folder, seed_record_name(seed)), record)
            stored[seed] = (record, "trained")
    finally:
        if bar is not None:
            bar.close()
    return [seed_result(record, origin, shipped if origin == "shipped" else folder)
            for record, origin in (stored[seed] for seed in settings.seeds)]


def transfer_provenance(results, settings):
    """Where the seeds of ``results`` came from (``experiments.provenance.Provenance``)."""
    return Provenance.of_records([(r["origin"], r["record"]) for r in results], study_name(settings))


def pretrained_network(result, device="cpu"):
    """The pretrained source network of a seed's result (``seed_result``), from the folder its
    record was read from; ``CheckpointError`` when it is not the network the record's numbers
    were derived from (another seed's, or weights changed since)."""
    expected = result["record"].metrics.get(DIGEST)   # None: recorded before digests
    return load_network(result["network"], expected, f"seed {result['seed']}'s record beside it",
                        "Delete both files to compute the seed again.", device)


def stored_seeds(settings, folder=None):
    """The seeds of ``settings`` whose result file is in ``folder`` (not yet checked)."""
    folder = Path(folder) if folder is not None else study_folder(settings)
    return [seed for seed in settings.seeds if record_path(folder, seed_record_name(seed)).is_file()]
